package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// TestQuoteJSON: quoteJSON gives what encoding/json gives for the JSON
// text as a string.
func TestQuoteJSON(t *testing.T) {
	doc, _ := json.Marshal(map[string]any{"a": `q " b \ <x> & ` + "\n\t\u2028 é", "n": []any{1, nil, true}})
	want, _ := json.Marshal(string(doc))
	if got := quoteJSON(doc); string(got) != string(want) {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// TestPayloadWriter: each placeholder written is replaced by its payload,
// wherever it is in a write and however many there are; text that only
// looks like one, and writes when nothing waits, pass unchanged.
func TestPayloadWriter(t *testing.T) {
	p := &payloads{}
	t1 := p.add([]byte(`{"big":1}`))
	t2 := p.add([]byte(`"quoted \"text\""`))
	fake := payloadPrefix + strings.Repeat("0", 32) + `"`
	rec := httptest.NewRecorder()
	w := &metaWriter{ResponseWriter: rec, p: p}
	in := "event: message\ndata: {\"x\":" + fake + ",\"text\":" + t2 + ",\"structured\":" + t1 + "}\n\n"
	if n, err := w.Write([]byte(in)); err != nil || n != len(in) {
		t.Fatalf("Write = %d, %v; want %d", n, err, len(in))
	}
	want := "event: message\ndata: {\"x\":" + fake + `,"text":"quoted \"text\"","structured":{"big":1}}` + "\n\n"
	if got := rec.Body.String(); got != want {
		t.Fatalf("wrote\n%s\nwant\n%s", got, want)
	}
	if p.pending() {
		t.Fatal("payloads still pending after they were written")
	}
	rec.Body.Reset()
	w.Write([]byte(t1)) // taken already: passes unchanged
	if rec.Body.String() != t1 {
		t.Fatalf("a spent placeholder was replaced again: %s", rec.Body.String())
	}
}

// TestMetaLargeResults: list_services, healthcheck and get_server_details
// answers large enough to be written in place reach the client complete,
// with text and structuredContent the same object and no placeholder
// left, for both protocol generations; the raw body is the JSON the tool
// gave, and the same as for a small answer encoded by mcp-go.
func TestMetaLargeResults(t *testing.T) {
	env := newEnv(t, Options{})
	const n = 150
	var tools []any
	for i := range 200 {
		tools = append(tools, map[string]any{"name": fmt.Sprintf("tool_%d", i), "parsed_description": map[string]any{"main": "Does <things> & \"stuff\"\n" + strings.Repeat("x", 100)},
			"schema": map[string]any{"type": "object", "properties": map[string]any{"q": map[string]any{"type": "string"}}}})
	}
	for i := range n {
		doc := map[string]any{"server_name": fmt.Sprintf("Service %03d <é>", i), "path": fmt.Sprintf("/svc-%03d", i),
			"description": strings.Repeat("A long \"description\" ", 10), "proxy_pass_url": "http://127.0.0.1:9/mcp", "tags": []string{"t", fmt.Sprint(i)}}
		if i == 0 {
			doc["tool_list"] = tools
		}
		env.register(t, doc)
	}
	for _, version := range []string{"2025-06-18", ""} {
		t.Run("protocol "+version, func(t *testing.T) {
			c := connect(t, env.srv.URL+"/mcpgw/mcp", nil, version)
			_, out := callMeta(t, c, "list_services", nil)
			if out["total_count"] != float64(n) || len(out["services"].([]any)) != n {
				t.Fatalf("total_count %v", out["total_count"])
			}
			first := out["services"].([]any)[0].(map[string]any)
			if first["server_name"] != "Service 000 <é>" || first["num_tools"] != float64(200) {
				t.Fatalf("first service %v", first)
			}
			_, health := callMeta(t, c, "healthcheck", nil)
			if len(health) != n {
				t.Fatalf("healthcheck has %d services", len(health))
			}
			_, details := callMeta(t, c, "get_server_details", map[string]any{"service_path": "/svc-000"})
			if tl, _ := details["tool_list"].([]any); len(tl) != 200 {
				t.Fatalf("get_server_details has %d tools", len(tl))
			}
		})
	}

	// The raw response, as a JSON body and as an SSE event (mcp-go answers
	// a session with events once it has sent it a notification, here the
	// tools/list_changed of a registration): no placeholder, and text and
	// structuredContent the same JSON.
	for _, sse := range []bool{false, true} {
		body := rawMetaCall(t, env, "list_services", sse)
		if bytes.Contains(body, []byte("mcpgw-payload-")) {
			t.Fatalf("sse=%v: a placeholder reached the client: %.300s", sse, body)
		}
		var resp struct {
			Result struct {
				Content           []mcp.TextContent `json:"content"`
				StructuredContent json.RawMessage   `json:"structuredContent"`
			} `json:"result"`
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatalf("sse=%v: response is not JSON: %v\n%.300s", sse, err, body)
		}
		if len(resp.Result.StructuredContent) < payloadMin || resp.Result.Content[0].Text != string(resp.Result.StructuredContent) {
			t.Fatalf("sse=%v: text and structuredContent are not the same JSON (%d bytes)", sse, len(resp.Result.StructuredContent))
		}
	}
}

// rawMetaCall calls a meta tool over plain HTTP (session-based protocol)
// and returns the JSON-RPC response. With sse, a server is registered
// between initialize and the call, whose notification makes mcp-go answer
// the session's requests as SSE events; the response is the event's data.
func rawMetaCall(t *testing.T, env *testEnv, tool string, sse bool) []byte {
	t.Helper()
	post := func(body, sid string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, env.srv.URL+"/mcpgw/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`, "")
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	sid := resp.Header.Get("Mcp-Session-Id")
	resp = post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, sid)
	resp.Body.Close()
	if sse {
		env.register(t, map[string]any{"server_name": "late", "path": fmt.Sprintf("/late-%d", time.Now().UnixNano()), "proxy_pass_url": "http://127.0.0.1:9/mcp"})
	}
	resp = post(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"`+tool+`","arguments":{}}}`, sid)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d %s: %.300s", resp.StatusCode, ct, body)
	}
	if !sse {
		if !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("content type %s, want a JSON body", ct)
		}
		return body
	}
	if !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %s, want an event stream", ct)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if data, ok := strings.CutPrefix(line, "data: "); ok && strings.Contains(data, `"id":2`) {
			return []byte(data)
		}
	}
	t.Fatalf("no response event in %.300s", body)
	return nil
}

// TestStandInEncodingIsEveryStandIns checks what the cached encoding relies
// on: a stand-in encodes the same around any placeholder.
func TestStandInEncodingIsEveryStandIns(t *testing.T) {
	enc := standInEncoding()
	if enc.before == nil {
		t.Fatal("the stand-in could not be encoded")
	}
	for i := 0; i < 5; i++ {
		token := newPlaceholder()
		got, err := json.Marshal(standIn(token))
		if err != nil {
			t.Fatal(err)
		}
		want := string(enc.before) + token + string(enc.after)
		if string(got) != want {
			t.Fatalf("stand-in for %s encodes as\n%s\nnot\n%s", token, got, want)
		}
	}
}
