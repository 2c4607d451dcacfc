package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
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
	// Authorization is the caller's upstream token only when X-Authorization
	// carried the gateway token; otherwise (absent, or not a bearer token)
	// Authorization was the gateway token, never to be forwarded.
	if h == nil || auth.IngressToken(h, true) == "" {
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
	onProgress, progressDone := progressForwarder(cctx, req)
	// The result goes back as the upstream wrote it: decoded by mcp-go and
	// encoded again it would lose what mcp-go does not know.
	var raw upstream.RawResult
	res, err := g.invoker.CallTool(upstream.WithRawResult(cctx, &raw), s, egressHeaders(ctx, s), tool, arguments, onProgress)
	d := time.Since(start)
	progressDone.wait(ctx)
	if err == nil {
		lg.Info().Bool("is_error", res.IsError).Dur("duration", d).Msg("invoke_tool")
		if raw.JSON != nil {
			return upstreamResult(ctx, raw)
		}
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
func progressForwarder(ctx context.Context, req mcp.CallToolRequest) (upstream.ProgressFunc, *progressWait) {
	if req.Params.Meta == nil || req.Params.Meta.ProgressToken == nil {
		return nil, nil
	}
	if server.ClientSessionFromContext(ctx) == nil {
		return nil, nil
	}
	token := req.Params.Meta.ProgressToken
	pw := &progressWait{led: ledgerFrom(ctx)}
	return func(params map[string]any) {
		params["progressToken"] = token
		if pw.led == nil {
			sendToCaller(ctx, upstream.MethodProgress, params)
			return
		}
		// Counted before it is queued: the stream may write it at once.
		seq := pw.led.sent()
		if !sendToCaller(ctx, upstream.MethodProgress, params) {
			pw.led.wrote(1) // never will be: nothing to wait for
			return
		}
		pw.seq = seq
	}, pw
}

// progressWait is what an invoke_tool call waits for before it returns its
// result: its last forwarded progress notification written to the caller.
// mcp-go v1.2.1 can drop a notification queued just before a tool handler
// returns: the goroutine that writes notifications may already hold it when
// the response is written, and then discards it
// (https://github.com/mark3labs/mcp-go/pull/969). An upstream sends its last
// progress right before its result, so without this wait the caller often
// missed it.
type progressWait struct {
	led *progressLedger
	seq uint64 // the ledger's count after the call's last notification
}

// wait blocks until the caller's session has been written every progress
// notification counted up to the call's last one, or for at most a second
// (a notification written to another client's stream is not counted; see
// progressLedger).
func (pw *progressWait) wait(ctx context.Context) {
	if pw == nil || pw.led == nil || pw.seq == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	pw.led.waitWritten(ctx, pw.seq)
}

// sendToCaller queues a notification for the caller of the current request
// and reports whether it was queued. mcp-go's queue per session is bounded
// and refuses rather than waits when full; waiting here (until ctx ends)
// loses no progress to a momentarily slow reader, and delays only this
// call's upstream stream (for an upstream on the legacy SSE transport, the
// one stream its session's calls share).
func sendToCaller(ctx context.Context, method string, params map[string]any) bool {
	wait := time.Millisecond
	for {
		err := queueNotification(ctx, method, params)
		if !errors.Is(err, server.ErrNotificationChannelBlocked) {
			if err != nil {
				logFrom(ctx).Debug().Err(err).Str("notification", method).Msg("invoke_tool: cannot forward to the caller")
			}
			return err == nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			logFrom(ctx).Warn().Str("notification", method).Msg("invoke_tool: caller's notification queue stayed full; notification dropped")
			return false
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// queueNotification is mcp-go's MCPServer.SendNotificationToClient with the
// notification's _meta kept: mcp-go encodes NotificationParams.Meta as
// "_meta" and drops a "_meta" key of the other params, so a params["_meta"]
// object moves there. Like mcp-go, it never waits for a full queue.
func queueNotification(ctx context.Context, method string, params map[string]any) error {
	session := server.ClientSessionFromContext(ctx)
	if session == nil || !session.Initialized() {
		return server.ErrNotificationNotInitialized
	}
	n := mcp.JSONRPCNotification{JSONRPC: mcp.JSONRPC_VERSION, Notification: mcp.Notification{Method: method}}
	n.Params.AdditionalFields = params
	if meta, ok := params["_meta"].(map[string]any); ok {
		n.Params.Meta = meta
	}
	// A streamable-HTTP caller's POST answers as an event stream once it
	// carries a notification, as mcp-go does for its own.
	if s, ok := session.(server.SessionWithStreamableHTTPConfig); ok {
		s.UpgradeToSSEWhenReceiveNotification()
	}
	select {
	case session.NotificationChannel() <- n:
		return nil
	default:
		return server.ErrNotificationChannelBlocked
	}
}

// progressMethodJSON is how every forwarded progress notification reads on
// the wire (encoding/json writes the method so).
const progressMethodJSON = `"method":"notifications/progress"`

// progressLedger counts, for one caller session on /mcpgw/mcp, the progress
// notifications invoke_tool queued and those written to the session's
// streams. mcp-go queues notifications per session, and any of the
// session's open streams (the POSTs in flight, a GET stream) may write them,
// so the count is kept per session and every stream's writer reports to it.
type progressLedger struct {
	mu             sync.Mutex
	queued, output uint64
	changed        chan struct{} // closed when output grows
	refs           int           // requests of the session in flight
}

// sent counts one notification about to be queued and returns the count.
func (l *progressLedger) sent() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queued++
	return l.queued
}

// waiting reports whether some queued notification is not yet written.
func (l *progressLedger) waiting() bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.output < l.queued
}

// wrote counts n notifications written.
func (l *progressLedger) wrote(n int) {
	if n == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.output += uint64(n)
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// waitWritten blocks until seq notifications have been written, or ctx
// ends.
func (l *progressLedger) waitWritten(ctx context.Context, seq uint64) {
	for {
		l.mu.Lock()
		if l.output >= seq {
			l.mu.Unlock()
			return
		}
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// ledgers are the progress ledgers of the sessions with requests in flight.
type ledgers struct {
	mu sync.Mutex
	m  map[string]*progressLedger
}

// acquire returns the ledger of session sid for one request, and the
// function that ends the request. A request without a session (the
// stateless protocol, or initialize) gets a ledger of its own.
func (ls *ledgers) acquire(sid string) (*progressLedger, func()) {
	if sid == "" {
		return &progressLedger{}, func() {}
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.m == nil {
		ls.m = map[string]*progressLedger{}
	}
	l := ls.m[sid]
	if l == nil {
		l = &progressLedger{}
		ls.m[sid] = l
	}
	l.refs++
	return l, func() {
		ls.mu.Lock()
		defer ls.mu.Unlock()
		if l.refs--; l.refs == 0 {
			delete(ls.m, sid)
		}
	}
}

type ledgerKey struct{}

func withLedger(ctx context.Context, l *progressLedger) context.Context {
	return context.WithValue(ctx, ledgerKey{}, l)
}

func ledgerFrom(ctx context.Context) *progressLedger {
	l, _ := ctx.Value(ledgerKey{}).(*progressLedger)
	return l
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

// upstreamResult is what invoke_tool returns for raw, the upstream's result
// as it sent it: those bytes, written in place of a stand-in by the meta
// response writer.
func upstreamResult(ctx context.Context, raw upstream.RawResult) (*mcp.CallToolResult, error) {
	b := raw.JSON
	if info := server.RequestProtocolInfoFromContext(ctx); info != nil && info.Modern && raw.ResultType == "" {
		// From 2026-07-28 on a result must say its type; an older
		// upstream's does not.
		b = withMember(b, `"resultType":"complete"`)
	}
	if bytes.ContainsAny(b, "\r\n") {
		// Line breaks between JSON tokens would end the line of an
		// event-stream answer; dropping the spacing changes no value.
		var c bytes.Buffer
		if json.Compact(&c, b) == nil {
			b = c.Bytes()
		}
	}
	if in := resultInPlace(ctx, b); in != nil {
		return in, nil
	}
	return mcp.ParseCallToolResult((*json.RawMessage)(&b)) // outside a meta request
}

// withMember returns the JSON object obj with member (`"name":value`) added
// first.
func withMember(obj []byte, member string) []byte {
	i := bytes.IndexByte(obj, '{')
	if i < 0 {
		return obj
	}
	rest := bytes.TrimLeft(obj[i+1:], " \t\r\n")
	out := make([]byte, 0, len(obj)+len(member)+1)
	out = append(out, obj[:i+1]...)
	out = append(out, member...)
	if len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, obj[i+1:]...)
}
