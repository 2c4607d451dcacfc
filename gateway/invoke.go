package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/upstream"
)

// Invoker calls one tool on an upstream for invoke_tool, with s's
// configured headers overlaid by extra. A non-nil onProgress asks the
// upstream for progress and receives each progress notification's params
// (without a token) before CallTool returns.
type Invoker interface {
	CallTool(ctx context.Context, s *registry.Server, extra map[string]string, name string, args any, onProgress upstream.ProgressFunc) (*mcp.CallToolResult, error)
}

var _ Invoker = (*upstream.Sessions)(nil)

// orDefaultInvoker returns inv, or a session pool over the relay's
// transport when inv is nil.
func orDefaultInvoker(inv Invoker, rt http.RoundTripper, version string) Invoker {
	if inv != nil {
		return inv
	}
	return upstream.NewSessions(rt, version, upstream.SessionOptions{})
}

type callerHeadersKey struct{}

// withCallerHeaders keeps the meta request's headers in ctx: invoke_tool
// needs the caller's Authorization for passthrough servers.
func withCallerHeaders(ctx context.Context, h http.Header) context.Context {
	return context.WithValue(ctx, callerHeadersKey{}, h)
}

func callerHeaders(ctx context.Context) http.Header {
	h, _ := ctx.Value(callerHeadersKey{}).(http.Header)
	return h
}

// egressHeaders are the caller's headers invoke_tool sends upstream: for a
// passthrough server, the caller's Authorization, but only when the caller
// identified to the gateway with X-Authorization; otherwise Authorization
// was the caller's gateway token, which is never forwarded. The server's
// configured headers fill in the rest (SPEC section 5).
func egressHeaders(ctx context.Context, s *registry.Server) map[string]string {
	if !s.Passthrough() {
		return nil
	}
	h := callerHeaders(ctx)
	if h == nil || strings.TrimSpace(h.Get("X-Authorization")) == "" {
		return nil
	}
	if a := h.Get("Authorization"); a != "" {
		return map[string]string{"Authorization": a}
	}
	return nil
}

const invokeSchema = `{"type":"object","properties":{
 "service_path":{"type":"string","description":"The service's path as intelligent_tool_finder or list_services gives it, e.g. /customer-support-assistant"},
 "tool_name":{"type":"string","description":"The tool's name on that service"},
 "arguments":{"type":"object","description":"The tool's arguments, as its input schema describes them"}
},"required":["service_path","tool_name"]}`

// addInvokeTool registers invoke_tool on the meta server.
func (g *Gateway) addInvokeTool(s *server.MCPServer) {
	s.AddTool(mcp.NewToolWithRawSchema("invoke_tool",
		"Call a tool of a registered service through the gateway and return the service's result unchanged, so that this one connection reaches every tool you may use. "+
			"For passthrough services (e.g. Amazon Bedrock AgentCore) send your upstream token in Authorization and your gateway token in X-Authorization; otherwise the service's configured credentials are used.",
		json.RawMessage(invokeSchema)), g.toolInvoke)
}

func (g *Gateway) toolInvoke(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	args := req.GetArguments()
	path, _ := args["service_path"].(string)
	key := registry.PathKey(path)
	if key == "" {
		return errorResult(invalid("service_path", "is required, e.g. /customer-support-assistant")), nil
	}
	tool, _ := args["tool_name"].(string)
	if strings.TrimSpace(tool) == "" {
		return errorResult(invalid("tool_name", "is required")), nil
	}
	arguments, err := toolArguments(args["arguments"])
	if err != nil {
		return errorResult(err), nil
	}
	p := auth.FromContext(ctx)
	s, err := g.invocable(ctx, p, key)
	if err != nil {
		return errorResult(err), nil
	}
	if !g.policy.Allowed(p, s.Path, "tools/call", tool) {
		return errorResult(kinded(errForbidden, "access denied: tool %s on %s is not allowed for %s", tool, s.Path, p.Subject)), nil
	}
	if s.Held(tool) {
		return errorResult(kinded(errForbidden, "%s", heldMessage(s, tool))), nil
	}

	lg := logFrom(ctx).With().Str("server", s.Path).Str("tool", tool).Str("subject", p.Subject).Logger()
	cctx, cancel := context.WithTimeout(ctx, g.invokeTimeout())
	defer cancel()
	start := time.Now()
	res, err := g.invoker.CallTool(cctx, s, egressHeaders(ctx, s), tool, arguments, progressForwarder(cctx, req))
	d := time.Since(start)
	if err == nil {
		lg.Info().Bool("is_error", res.IsError).Dur("duration", d).Msg("invoke_tool")
		return res, nil
	}
	var te *transport.Error
	if !errors.As(err, &te) && !errors.Is(err, context.DeadlineExceeded) {
		// The upstream answered with a JSON-RPC error: pass it on as one.
		lg.Info().Err(err).Dur("duration", d).Msg("invoke_tool: upstream error")
		return nil, fmt.Errorf("upstream %s answered with an error: %v", s.Path, errors.Unwrap(err))
	}
	lg.Warn().Err(err).Dur("duration", d).Msg("invoke_tool: upstream unreachable")
	return errorResult(invokeFailure(s, err)), nil
}

// progressForwarder returns what relays the upstream's progress of an
// invoke_tool call to its caller, or nil when the caller asked for none (no
// _meta.progressToken). Each notification goes to the caller's /mcpgw/mcp
// session under the caller's own token; the upstream saw another one (see
// upstream.Sessions.CallTool). mcp-go writes every notification queued
// before the handler returns ahead of the result, so the caller gets them
// in order and before the result.
func progressForwarder(ctx context.Context, req mcp.CallToolRequest) upstream.ProgressFunc {
	if req.Params.Meta == nil || req.Params.Meta.ProgressToken == nil {
		return nil
	}
	srv := server.ServerFromContext(ctx)
	if srv == nil {
		return nil
	}
	token := req.Params.Meta.ProgressToken
	return func(params map[string]any) {
		params["progressToken"] = token
		sendToCaller(ctx, srv, upstream.MethodProgress, params)
	}
}

// sendToCaller queues a notification for the caller of the current request.
// mcp-go's queue per session is bounded and refuses rather than waits when
// full; waiting here (until ctx ends) loses no progress to a momentarily
// slow reader, and only delays this call's stream.
func sendToCaller(ctx context.Context, srv *server.MCPServer, method string, params map[string]any) {
	wait := time.Millisecond
	for {
		err := srv.SendNotificationToClient(ctx, method, params)
		if !errors.Is(err, server.ErrNotificationChannelBlocked) {
			if err != nil {
				logFrom(ctx).Debug().Err(err).Str("notification", method).Msg("invoke_tool: cannot forward to the caller")
			}
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			logFrom(ctx).Warn().Str("notification", method).Msg("invoke_tool: caller's notification queue stayed full; notification dropped")
			return
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// invocable finds the enabled server p may use at key. A server p may not
// see is reported exactly like one that does not exist.
func (g *Gateway) invocable(ctx context.Context, p *auth.Principal, key string) (*registry.Server, error) {
	notFound := kinded(registry.ErrNotFound, "no enabled service is registered at /%s", key)
	rt, ok := g.routes.Load().byKey[key]
	if !ok {
		s, err := g.reg.Get(ctx, key)
		if err == nil && !s.Enabled && g.policy.Allowed(p, s.Path, auth.ActionRead, "") {
			return nil, kinded(registry.ErrNotFound, "service %s is disabled; an admin can enable it", s.Path)
		}
		return nil, notFound
	}
	if !g.policy.Allowed(p, rt.server.Path, auth.ActionRead, "") {
		return nil, notFound
	}
	return rt.server, nil
}

func (g *Gateway) invokeTimeout() time.Duration {
	if g.opts.UpstreamTimeout > 0 {
		return g.opts.UpstreamTimeout
	}
	return DefaultUpstreamTimeout
}

// toolArguments accepts the arguments as an object, a JSON string of an
// object (some clients stringify nested objects), or nothing.
func toolArguments(v any) (map[string]any, error) {
	switch a := v.(type) {
	case nil:
		return map[string]any{}, nil
	case map[string]any:
		return a, nil
	case string:
		if strings.TrimSpace(a) == "" {
			return map[string]any{}, nil
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(a), &m); err != nil || m == nil {
			return nil, invalid("arguments", "must be an object (or a JSON string of one)")
		}
		return m, nil
	default:
		return nil, invalid("arguments", "must be an object (or a JSON string of one)")
	}
}

// invokeFailure words a failed exchange with the upstream for the caller.
func invokeFailure(s *registry.Server, err error) error {
	switch {
	case errors.Is(err, transport.ErrAuthorizationRequired), errors.Is(err, transport.ErrUnauthorized):
		hint := ""
		if s.Passthrough() {
			hint = "; send your upstream token in Authorization and your gateway token in X-Authorization"
		}
		return kinded(errUpstream, "the upstream of %s refused the credentials (401)%s", s.Path, hint)
	case errors.Is(err, context.DeadlineExceeded):
		return kinded(errUpstream, "the upstream of %s did not answer in time", s.Path)
	default:
		return kinded(errUpstream, "the upstream of %s could not be reached", s.Path)
	}
}

// kindedError is a sentence for the caller that still matches its
// sentinel kind with errors.Is (which decides the status at the edge).
type kindedError struct {
	msg  string
	kind error
}

func (e *kindedError) Error() string { return e.msg }
func (e *kindedError) Unwrap() error { return e.kind }

func kinded(kind error, format string, args ...any) error {
	return &kindedError{msg: fmt.Sprintf(format, args...), kind: kind}
}
