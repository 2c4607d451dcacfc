package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// TestInvokeToolResultUnchanged: invoke_tool hands back the upstream's
// result byte for byte (SPEC: "the upstream's CallToolResult, unchanged"):
// members MCP does not define, a content type mcp-go does not know, a
// resource link without description, member order and spacing. A
// 2026-07-28 caller gets a resultType added, which such a result must
// have and this 2025-06-18 upstream's lacks; nothing else changes.
func TestInvokeToolResultUnchanged(t *testing.T) {
	const result = `{"zeta":{"kept":true}, "content":[{"type":"future-kind","payload":"x"},{"type":"resource_link","uri":"file:///a","name":"a"}],"isError":false,"_meta":{"vendor.example/trace":"t1"}}`
	// The same result with line breaks, sent after a progress notification
	// when the caller asks for progress: the gateway's answer is then an
	// event stream, where a line break would cut the event.
	const pretty = "{\n  \"zeta\": {\"kept\": true},\n  \"content\": [{\"type\": \"future-kind\", \"payload\": \"x\"}]\n}"
	e := newEnv(t, Options{})
	e.register(t, map[string]any{"server_name": "hand", "path": "/hand", "proxy_pass_url": handUpstream(t, func(w http.ResponseWriter, call handCall) {
		if call.ProgressToken == nil {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, call.ID, result)
			return
		}
		tok, _ := json.Marshal(call.ProgressToken)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":%s,\"progress\":1}}\n\n", tok)
		fmt.Fprintf(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}\n\n", call.ID, strings.ReplaceAll(pretty, "\n", "\ndata: "))
	})})
	hdr := map[string]string{"Authorization": "Bearer " + e.admin}
	for _, tc := range []struct {
		name     string
		version  string // of the caller; "" is the stateless 2026-07-28
		progress bool
		want     string
	}{
		{"session-based caller", "2025-06-18", false, result},
		{"stateless caller", "", false, `{"resultType":"complete",` + result[1:]},
		{"answer as an event stream, result with line breaks", "2025-06-18", true,
			`{"zeta":{"kept":true},"content":[{"type":"future-kind","payload":"x"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := connect(t, e.srv.URL+"/mcpgw/mcp", hdr, tc.version)
			params := map[string]any{"name": "invoke_tool", "arguments": map[string]any{"service_path": "/hand", "tool_name": "anything"}}
			if tc.progress {
				params["_meta"] = map[string]any{"progressToken": "p1"}
			}
			var header http.Header
			if tc.version == "" { // what mcp-go's client adds to a 2026-07-28 request
				params["_meta"] = map[string]any{mcp.MetaKeyProtocolVersion: "2026-07-28", mcp.MetaKeyClientCapabilities: map[string]any{}}
				header = http.Header{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"invoke_tool"}}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// Through the caller's transport: mcp-go's client would decode
			// the result, and fail on the unknown content type.
			resp, err := c.GetTransport().SendRequest(ctx, transport.JSONRPCRequest{JSONRPC: "2.0", ID: mcp.NewRequestId(int64(1000)), Method: "tools/call", Params: params, Header: header})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Error != nil {
				t.Fatalf("JSON-RPC error %+v", resp.Error)
			}
			if got := string(resp.Result); got != tc.want {
				t.Errorf("result\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestWithMember(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{}`, `{"m":1}`},
		{`{ }`, `{"m":1 }`},
		{`{"a":1}`, `{"m":1,"a":1}`},
		{`{ "a":1}`, `{"m":1, "a":1}`},
		{`[1]`, `[1]`}, // not an object: left alone
	} {
		if got := string(withMember([]byte(tc.in), `"m":1`)); got != tc.want {
			t.Errorf("withMember(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
