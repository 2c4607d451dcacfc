package upstream

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// RawResult receives a tools/call result as the upstream sent it. mcp-go's
// client decodes every result into an mcp.CallToolResult: members MCP does
// not define are dropped, and a content type it does not know fails the
// call. A caller that passes results on unchanged (invoke_tool) puts a
// RawResult in the call's context with WithRawResult; the session's
// transport then keeps the result's bytes there and hands mcp-go's client a
// stand-in holding only isError, which it decodes in no time.
type RawResult struct {
	// JSON is the result object, byte for byte; nil when the upstream
	// answered with a JSON-RPC error, with something that is not an object,
	// or when no call was made.
	JSON json.RawMessage
	// ResultType is the result's resultType, "" when it has none (before
	// protocol 2026-07-28).
	ResultType mcp.ResultType
}

type rawResultKey struct{}

// WithRawResult returns ctx carrying r: the tools/call made with it leaves
// its result in r (see RawResult).
func WithRawResult(ctx context.Context, r *RawResult) context.Context {
	return context.WithValue(ctx, rawResultKey{}, r)
}

// Stand-ins for a kept result: what the client decodes instead.
var (
	keptResult      = json.RawMessage(`{"content":[]}`)
	keptErrorResult = json.RawMessage(`{"content":[],"isError":true}`)
)

// keepResult moves a tools/call result into the RawResult of ctx, if any.
// A result that asks for more input (a 2026-07-28 multi-round-trip answer)
// is left to the client, which answers it and asks again; the final
// result is kept.
func keepResult(ctx context.Context, req transport.JSONRPCRequest, resp *transport.JSONRPCResponse) {
	r, _ := ctx.Value(rawResultKey{}).(*RawResult)
	if r == nil || req.Method != string(mcp.MethodToolsCall) || resp == nil || resp.Error != nil {
		return
	}
	var probe struct {
		ResultType mcp.ResultType `json:"resultType"`
		IsError    bool           `json:"isError"`
	}
	// Unmarshal accepts null for a struct: only an object is kept.
	if body := bytes.TrimLeft(resp.Result, " \t\r\n"); len(body) == 0 || body[0] != '{' ||
		json.Unmarshal(resp.Result, &probe) != nil || probe.ResultType == mcp.ResultTypeInputRequired {
		return // not an object of the expected shape: the client reports it
	}
	r.JSON, r.ResultType = resp.Result, probe.ResultType // the transport decoded it into bytes of its own
	resp.Result = keptResult
	if probe.IsError {
		resp.Result = keptErrorResult
	}
}

// keepingStreamable and keepingSSE are mcp-go's transports with keepResult
// on every answer. Embedding the concrete transports keeps every method
// mcp-go's client looks for (bidirectional requests, protocol version,
// connection loss) as it was.
type keepingStreamable struct{ *transport.StreamableHTTP }

func (t keepingStreamable) SendRequest(ctx context.Context, req transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	resp, err := t.StreamableHTTP.SendRequest(ctx, req)
	return kept(ctx, req, resp, err)
}

type keepingSSE struct{ *transport.SSE }

func (t keepingSSE) SendRequest(ctx context.Context, req transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	resp, err := t.SSE.SendRequest(ctx, req)
	return kept(ctx, req, resp, err)
}

// kept is a transport's answer to req after keepResult.
func kept(ctx context.Context, req transport.JSONRPCRequest, resp *transport.JSONRPCResponse, err error) (*transport.JSONRPCResponse, error) {
	if err == nil {
		keepResult(ctx, req, resp)
	}
	return resp, err
}

var (
	_ transport.BidirectionalInterface = keepingStreamable{}
	_ transport.HTTPConnection         = keepingStreamable{}
	_ transport.Interface              = keepingSSE{}
)
