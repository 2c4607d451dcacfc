package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// TestKeepResult: only a tools/call answer that is a final result object is
// kept; the client gets a stand-in with the same isError.
func TestKeepResult(t *testing.T) {
	call := transport.JSONRPCRequest{Method: "tools/call"}
	for _, tc := range []struct {
		name   string
		req    transport.JSONRPCRequest
		resp   *transport.JSONRPCResponse
		kept   string // "" when not kept
		client string // what the client decodes
	}{
		{"result", call, &transport.JSONRPCResponse{Result: json.RawMessage(`{"content":[{"type":"x"}],"z":1}`)},
			`{"content":[{"type":"x"}],"z":1}`, `{"content":[]}`},
		{"error result", call, &transport.JSONRPCResponse{Result: json.RawMessage(` {"content":[],"isError":true}`)},
			` {"content":[],"isError":true}`, `{"content":[],"isError":true}`},
		{"null", call, &transport.JSONRPCResponse{Result: json.RawMessage(`null`)}, "", `null`},
		{"array", call, &transport.JSONRPCResponse{Result: json.RawMessage(`[{}]`)}, "", `[{}]`},
		{"input required", call, &transport.JSONRPCResponse{Result: json.RawMessage(`{"resultType":"input_required","inputRequests":{}}`)},
			"", `{"resultType":"input_required","inputRequests":{}}`},
		{"JSON-RPC error", call, &transport.JSONRPCResponse{Error: &mcp.JSONRPCErrorDetails{Code: -1}}, "", ``},
		{"another method", transport.JSONRPCRequest{Method: "tools/list"}, &transport.JSONRPCResponse{Result: json.RawMessage(`{"tools":[]}`)},
			"", `{"tools":[]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r RawResult
			keepResult(WithRawResult(context.Background(), &r), tc.req, tc.resp)
			if string(r.JSON) != tc.kept {
				t.Errorf("kept %q, want %q", r.JSON, tc.kept)
			}
			if string(tc.resp.Result) != tc.client {
				t.Errorf("client gets %q, want %q", tc.resp.Result, tc.client)
			}
		})
	}
	// Without a RawResult in the context nothing changes.
	resp := &transport.JSONRPCResponse{Result: json.RawMessage(`{"content":[]}`)}
	keepResult(context.Background(), call, resp)
	if string(resp.Result) != `{"content":[]}` {
		t.Errorf("result changed to %s", resp.Result)
	}
}

// FuzzResultShape holds resultShape to what it stands in for: decoding the
// result into a struct of resultType and isError, for any valid JSON (the
// transport hands over nothing else).
func FuzzResultShape(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { } `, `{"content":[],"isError":true}`, `{"isError":false}`, `{"isError":null}`,
		`{"resultType":"complete","content":[{"type":"text","text":"{\"isError\":true}"}]}`,
		`{"resultType":"input_required","inputRequests":{}}`, `{"resultType":null}`,
		`{"resultType":"input_required","resultType":null}`, `{"isError":true,"isError":false}`,
		`{"ISERROR":true,"ResultType":"x"}`, `{"\u0069sError":true}`, `{"is\"Error":true}`,
		`{"isError":"yes"}`, `{"isError":1}`, `{"resultType":5}`, `{"resultType":{"a":1}}`,
		`{"a":{"isError":true},"b":[{"resultType":"input_required"}]}`, `null`, `[]`, `"x"`, `1`,
		"{\n\t\"isError\" :\ttrue ,\r\n \"z\" : [ 1 , { } ] \n}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		var want struct {
			ResultType mcp.ResultType `json:"resultType"`
			IsError    bool           `json:"isError"`
		}
		trimmed := bytes.TrimLeft(b, " \t\r\n")
		wantOK := len(trimmed) > 0 && trimmed[0] == '{' && json.Unmarshal(b, &want) == nil
		rt, isErr, ok := resultShape(b)
		if ok != wantOK || (ok && (rt != want.ResultType || isErr != want.IsError)) {
			t.Fatalf("resultShape(%s) = %q, %v, %v; decoding gives %q, %v, %v", b, rt, isErr, ok, want.ResultType, want.IsError, wantOK)
		}
	})
}
