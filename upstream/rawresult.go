package upstream

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/registry"
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
	resultType, isError, ok := resultShape(resp.Result)
	if !ok || resultType == mcp.ResultTypeInputRequired {
		return // not an object of the expected shape: the client reports it
	}
	r.JSON, r.ResultType = resp.Result, resultType // the transport decoded it into bytes of its own
	resp.Result = keptResult
	if isError {
		resp.Result = keptErrorResult
	}
}

// resultShape reads a result's resultType and isError as decoding it into
// a struct with those two fields would, without decoding the rest: the
// result is valid JSON (the transport decoded the answer), and a large one
// would otherwise be scanned twice more. ok is false when b is not an object
// or a member has the wrong type.
func resultShape(b []byte) (resultType mcp.ResultType, isError, ok bool) {
	i := registry.SkipJSONSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", false, false
	}
	i = registry.SkipJSONSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return "", false, true
	}
	for i < len(b) && b[i] == '"' {
		end := registry.SkipJSONValue(b, i)
		key := b[i+1 : max(i+1, end-1)]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if json.Unmarshal(b[i:end], &k) != nil {
				return "", false, false
			}
			key = []byte(k)
		}
		i = registry.SkipJSONSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return "", false, false
		}
		i = registry.SkipJSONSpace(b, i+1)
		vend := registry.SkipJSONValue(b, i)
		v := b[i:vend]
		// encoding/json matches member names without regard to case.
		switch {
		case bytes.EqualFold(key, []byte("resultType")):
			if json.Unmarshal(v, &resultType) != nil { // null leaves it as it was
				return "", false, false
			}
		case bytes.EqualFold(key, []byte("isError")):
			switch string(v) {
			case "true":
				isError = true
			case "false":
				isError = false
			case "null": // leaves the field as it was
			default:
				return "", false, false
			}
		}
		i = registry.SkipJSONSpace(b, vend)
		if i < len(b) && b[i] == ',' {
			i = registry.SkipJSONSpace(b, i+1)
			continue
		}
		return resultType, isError, i < len(b) && b[i] == '}'
	}
	return "", false, false
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
