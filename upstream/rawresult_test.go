package upstream

import (
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
