package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
)

// DefaultUpstreamTimeout bounds, unless Options set another, how long the
// relay waits for an upstream's answer to a POST or DELETE and, once an
// answer streams as events, how long it waits between two events. The
// server-to-client GET stream has no timeout.
const DefaultUpstreamTimeout = 60 * time.Second

// JSON-RPC error codes used at the edge.
const (
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	rpcServerError    = -32000
	rpcForbidden      = -32003
	rpcHeaderMismatch = -32020 // the 2026-07-28 protocol's HeaderMismatch
)

// errUpstreamTimeout is the cancellation cause when an upstream exceeded the
// relay timeout, so that 504 is told apart from a caller who went away.
var errUpstreamTimeout = errors.New("upstream timeout")

// relayKind says which MCP transport a relayed request belongs to.
type relayKind int

const (
	// kindStreamable is /{path}/mcp of a streamable-HTTP upstream.
	kindStreamable relayKind = iota
	// kindLegacyStream is the GET event stream of a legacy HTTP+SSE upstream.
	kindLegacyStream
	// kindLegacyMessage is a POST to a legacy upstream's message endpoint.
	kindLegacyMessage
)

// present records that a JSON member exists without copying its value, so
// that a large result (a sampling answer) is not copied to learn that it is
// a result.
type present bool

func (p *present) UnmarshalJSON([]byte) error { *p = true; return nil }

// rpcMessage is the part of a JSON-RPC message the relay reads: the method
// and tool name for policy and metrics, the id to answer errors with.
// Everything else passes as the caller sent it, byte for byte.
type rpcMessage struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  struct {
		Name string `json:"name"`
	} `json:"params"`
	Result present `json:"result"`
	Error  present `json:"error"`
}

// parseRPC reads a POST body as one JSON-RPC message or a batch of them. It
// is the only reading of the body on the relay path: one validity pass, then
// a scan that picks out method, id and tool name without building the rest.
func parseRPC(body []byte) ([]rpcMessage, error) {
	if !validJSON(body) {
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, err
		}
		return nil, errors.New("invalid JSON")
	}
	return scanRPC(body)
}

// checkRoutingHeaders refuses a request whose Mcp-Method or Mcp-Name header
// names another operation than its body does. The 2026-07-28 protocol
// added those headers so that intermediaries can route without reading
// bodies, and requires servers to refuse a disagreement. The gateway judges
// the body; an upstream that trusted a header saying otherwise would run
// what the policy never saw.
func checkRoutingHeaders(h http.Header, msgs []rpcMessage) error {
	mh, hasMethod := h["Mcp-Method"]
	nh, hasName := h["Mcp-Name"]
	if !hasMethod && !hasName {
		return nil
	}
	if len(mh) > 1 || len(nh) > 1 {
		return errors.New("header mismatch: more than one Mcp-Method or Mcp-Name header")
	}
	requests := 0
	for _, m := range msgs {
		if m.Method == "" {
			continue // a response carries neither header
		}
		requests++
		if hasMethod {
			if v, ok := decodeMCPHeader(mh[0]); !ok || v != m.Method {
				return fmt.Errorf("header mismatch: Mcp-Method header %q, body method %q", mh[0], m.Method)
			}
		}
		if hasName && (m.Method == "tools/call" || m.Method == "prompts/get") {
			if v, ok := decodeMCPHeader(nh[0]); !ok || v != m.Params.Name {
				return fmt.Errorf("header mismatch: Mcp-Name header %q, body params.name %q", nh[0], m.Params.Name)
			}
		}
	}
	if requests == 0 && hasMethod {
		// Only responses: an upstream that routed on the header would take
		// them for the request it names.
		return fmt.Errorf("header mismatch: Mcp-Method header %q on a body with no request", mh[0])
	}
	return nil
}

// decodeMCPHeader undoes the protocol's encoding of a header value that
// is not plain ASCII: "=?base64?" + standard Base64 of its UTF-8 + "?=".
func decodeMCPHeader(v string) (string, bool) {
	const prefix, suffix = "=?base64?", "?="
	if len(v) < len(prefix)+len(suffix) || !strings.HasPrefix(v, prefix) || !strings.HasSuffix(v, suffix) {
		return v, true
	}
	b, err := base64.StdEncoding.DecodeString(v[len(prefix) : len(v)-len(suffix)])
	return string(b), err == nil
}

// writeRPCError answers with a JSON-RPC error object; id may be nil.
func writeRPCError(w http.ResponseWriter, r *http.Request, status int, id json.RawMessage, code int, msg string) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(rpcErrorBody(r, id, code, msg))
}

func rpcErrorBody(r *http.Request, id json.RawMessage, code int, msg string) []byte {
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   any             `json:"error"`
	}{"2.0", id, map[string]any{"code": code, "message": msg, "data": map[string]string{"request_id": requestID(r.Context())}}})
	return b
}

// hopHeaders are connection-level headers never relayed (RFC 9110 7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// requestHeadersDropped are caller headers that belong to the gateway, not the
// upstream: the ingress token, gateway cookies, and browser context headers
// that upstreams would judge against their own origin.
// The caller's Mcp-Session-Id is the gateway's sealed id: upstreamRequest
// sends the upstream its own.
var requestHeadersDropped = []string{"X-Authorization", "Cookie", "Origin", "Referer", "Host", "Content-Length", "Mcp-Session-Id"}

// responseHeadersDropped are upstream headers the gateway does not pass on:
// cookies for the gateway's origin would clobber its own, the gateway keeps
// its own request id, and CORS is the gateway's decision, not each
// upstream's (an upstream's "Access-Control-Allow-Origin: *" would open the
// relay to every web page; every Access-Control-* header is dropped).
var responseHeadersDropped = []string{"Set-Cookie", "X-Request-Id"}

// requestSkip and responseSkip are the headers a relayed request and
// response leave behind, by canonical name. Headers parsed off the wire
// have canonical names, so one pass with a set lookup replaces a Del per
// name, each of which canonicalizes its argument again.
var (
	requestSkip  = headerSet(hopHeaders, requestHeadersDropped)
	responseSkip = headerSet(hopHeaders, responseHeadersDropped)
)

func headerSet(lists ...[]string) map[string]bool {
	m := map[string]bool{}
	for _, l := range lists {
		for _, k := range l {
			m[http.CanonicalHeaderKey(k)] = true
		}
	}
	return m
}

// serveRelay relays one request at /{path}/mcp or /{path}/ to the route's
// upstream. A legacy HTTP+SSE upstream is reached there too: GET opens its
// event stream; a POST gets 405, which tells MCP clients to fall back to
// the legacy transport (MCP backwards compatibility).
func (g *Gateway) serveRelay(w http.ResponseWriter, r *http.Request, rt *route) {
	p, ok := g.relayCaller(w, r, rt)
	if !ok {
		return
	}
	if legacySSE(rt.server) {
		if r.Method != http.MethodGet {
			methodNotAllowed(w, r, http.MethodGet)
			return
		}
		g.relay(w, r, rt, kindLegacyStream, p)
		return
	}
	switch r.Method {
	case http.MethodPost, http.MethodGet, http.MethodDelete:
	default:
		methodNotAllowed(w, r, "POST, GET, DELETE")
		return
	}
	g.relay(w, r, rt, kindStreamable, p)
}

// relayCaller authenticates the caller of rt's relay paths and checks
// that it may see the server, before anything else is answered: a server
// the caller may not see answers as one that does not exist, whatever the
// method or path (405 or a transport hint would tell it exists).
func (g *Gateway) relayCaller(w http.ResponseWriter, r *http.Request, rt *route) (*auth.Principal, bool) {
	p, err := g.authenticate(r, rt.server.Passthrough())
	if err != nil {
		g.writeUnauthorized(w, r, err)
		return nil, false
	}
	if !g.policy.Allowed(p, rt.server.Path, auth.ActionRead, "") {
		writeNoService(w, r)
		return nil, false
	}
	return p, true
}

// relay relays one request: the body and headers pass unchanged except for
// credentials (SPEC section 5) and the sealed session id or message
// endpoint, and the response streams back frame by frame. p is the caller,
// authenticated by relayCaller.
func (g *Gateway) relay(w http.ResponseWriter, r *http.Request, rt *route, kind relayKind, p *auth.Principal) {
	passthrough := rt.server.Passthrough()
	var err error
	var body []byte
	var msgs []rpcMessage
	if r.Method == http.MethodPost {
		body, err = readBody(w, r, g.opts.MaxBodyBytes)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeRPCError(w, r, http.StatusRequestEntityTooLarge, nil, rpcInvalidRequest, "request body is larger than the limit of "+humanBytes(mbe.Limit))
				return
			}
			writeRPCError(w, r, http.StatusBadRequest, nil, rpcParseError, "could not read the request body")
			return
		}
		msgs, err = parseRPC(body)
		if err != nil {
			writeRPCError(w, r, http.StatusBadRequest, nil, rpcParseError, "parse error: "+err.Error())
			return
		}
		noteRPC(r.Context(), method(msgs), tool(msgs)) // for the request's log event and metrics
		if err := checkRoutingHeaders(r.Header, msgs); err != nil {
			writeRPCError(w, r, http.StatusBadRequest, firstID(msgs), rpcHeaderMismatch, err.Error())
			return
		}
		for _, m := range msgs {
			if m.Method == "" {
				continue // a response to a server-initiated request
			}
			// The policy first: a caller who may not call a tool must not
			// learn from the held answer that it exists and changed.
			if !g.policy.Allowed(p, rt.server.Path, m.Method, m.Params.Name) {
				what := "method " + m.Method
				if m.Method == "tools/call" {
					what = "tool " + m.Params.Name
				}
				noteDenied(r.Context())
				writeRPCError(w, r, http.StatusOK, m.ID, rpcForbidden, fmt.Sprintf("access denied: %s on %s is not allowed for %s", what, rt.server.Path, p.Subject))
				return
			}
			if m.Method == "tools/call" && rt.server.Held(m.Params.Name) {
				noteDenied(r.Context())
				writeRPCError(w, r, http.StatusOK, m.ID, rpcForbidden, heldMessage(rt.server, m.Params.Name))
				return
			}
		}
	} else if !g.policy.Allowed(p, rt.server.Path, "", "") {
		writeNoService(w, r)
		return
	}

	// Served by the ingress, the request's own context is the one to cancel
	// on an upstream timeout: a context of the relay's own would cost a
	// second cancelation layer (and its channel and child map) per call.
	ctx, cancel := r.Context(), requestCancel(w)
	if cancel == nil {
		var stop context.CancelCauseFunc
		ctx, stop = context.WithCancelCause(ctx)
		defer stop(nil)
		cancel = stop
	}
	out, err := g.upstreamRequest(ctx, r, rt, kind, body, passthrough)
	if err != nil {
		switch {
		case errors.Is(err, errBadSession) && kind == kindLegacyMessage:
			writeRPCError(w, r, http.StatusNotFound, firstID(msgs), rpcInvalidRequest, "unknown message endpoint: open the event stream at /"+rt.key+"/sse again")
		case errors.Is(err, errBadSession):
			g.writeSessionNotFound(w, r, msgs)
		case errors.Is(err, errQueryOverride):
			writeRPCError(w, r, http.StatusBadRequest, firstID(msgs), rpcInvalidRequest, err.Error())
		case errors.Is(err, errSessionHeaders):
			writeRPCError(w, r, http.StatusBadRequest, firstID(msgs), rpcInvalidRequest, err.Error())
		case errors.Is(err, errForbidden):
			writeRPCError(w, r, http.StatusForbidden, firstID(msgs), rpcForbidden, err.Error())
		default:
			writeErr(w, r, err)
		}
		return
	}

	filter := g.mayFilterTools(p, rt)
	if filter {
		// The filter reads answers as they are: ask for them uncompressed
		// (Go clients send Accept-Encoding: gzip on their own).
		delete(out.Header, "Accept-Encoding")
	}

	// The server-to-client GET stream may stay silent for hours; everything
	// else must answer within the timeout (a legacy stream until it has
	// sent its endpoint).
	var idle *alarm
	timeout := g.timeout(rt)
	if r.Method != http.MethodGet || kind == kindLegacyStream {
		idle = g.alarms.after(timeout, func() { cancel(errUpstreamTimeout) })
		defer idle.stop()
	}
	started := time.Now()
	resp, err := g.transport.RoundTrip(out)
	if err != nil {
		g.writeUpstreamError(w, r, rt, msgs, err, context.Cause(ctx))
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		// Passed on, a redirect would send the caller, with its gateway
		// token (clients re-send custom headers), where the upstream says.
		g.writeUpstreamError(w, r, rt, msgs, fmt.Errorf("%w (%d)", errUpstreamRedirect, resp.StatusCode), nil)
		return
	}
	if filter { // policy: tools p may not call leave tools/list results
		filtered, err := g.filterToolsList(resp, p, rt)
		if err != nil {
			g.writeUpstreamError(w, r, rt, msgs, err, nil)
			return
		}
		resp.Body = filtered
	}
	noteUpstream(r.Context(), time.Since(started))
	logFrom(r.Context()).Debug().Str("server", rt.server.Path).Str("method", method(msgs)).Str("tool", tool(msgs)).
		Int("upstream_status", resp.StatusCode).Dur("upstream_latency", time.Since(started)).Msg("relayed")

	stream := isEventStream(resp.Header)
	if kind == kindLegacyStream && resp.StatusCode == http.StatusOK && stream {
		g.relayLegacyStream(ctx, w, r, rt, resp, idle)
		return
	}
	copyResponseHeaders(w.Header(), resp.Header)
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" && kind == kindStreamable {
		w.Header().Set("Mcp-Session-Id", g.sealer.Seal(sessionLabel(r, rt), sid))
	}
	w.WriteHeader(resp.StatusCode)

	c := streamCopy{flush: stream}
	if rc, ok := g.health.(rechecker); ok && stream {
		c.onListChanged = func() { rc.Recheck(rt.key) }
	}
	if stream && idle != nil {
		c.idle, c.idleFor = idle, timeout // between events, the timeout is an idle timeout
	}
	err = c.run(w, resp.Body)
	if err != nil && errors.Is(context.Cause(ctx), errUpstreamTimeout) {
		logFrom(r.Context()).Warn().Str("server", rt.server.Path).Err(err).Msg("upstream stream cut by timeout")
		// Tell the client which request failed rather than leave it
		// waiting for an answer that will not come.
		if id := pendingID(msgs); stream && id != nil && c.atEventBoundary() {
			_, _ = w.Write(sseMessage(rpcErrorBody(r, id, rpcServerError, fmt.Sprintf("upstream of %s did not answer in time", rt.server.Path))))
			_ = http.NewResponseController(w).Flush()
		}
	}
}

// requestCancel is the cancel function of the request's context when the
// ingress serves it, found through wrapping writers, else nil.
func requestCancel(w http.ResponseWriter) context.CancelCauseFunc {
	for {
		switch x := w.(type) {
		case *ingressResponse:
			return x.cancel
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return nil
		}
	}
}

// callerGone reports whether the caller hung up. The relay cancels the
// request's context with errUpstreamTimeout when the upstream is too slow,
// and that is not the caller going away.
func callerGone(r *http.Request) bool {
	err := context.Cause(r.Context())
	return err != nil && !errors.Is(err, errUpstreamTimeout)
}

// rechecker is the health checker's way to re-read a server's tools now.
type rechecker interface{ Recheck(key string) }

// readBody reads a POST body up to limit. A declared length allocates the
// buffer once at its size; above the limit nothing is read at all.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	if r.ContentLength >= 0 {
		b := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}

func firstID(msgs []rpcMessage) json.RawMessage {
	if len(msgs) == 0 {
		return nil
	}
	return msgs[0].ID
}

// pendingID is the id of the first request (not notification or response)
// among msgs: the one a client waits on.
func pendingID(msgs []rpcMessage) json.RawMessage {
	for _, m := range msgs {
		if m.Method != "" && len(m.ID) > 0 && string(m.ID) != "null" {
			return m.ID
		}
	}
	return nil
}

func method(msgs []rpcMessage) string {
	if len(msgs) == 0 {
		return ""
	}
	return msgs[0].Method
}

func tool(msgs []rpcMessage) string {
	if len(msgs) == 0 {
		return ""
	}
	return msgs[0].Params.Name
}

func (g *Gateway) timeout(*route) time.Duration {
	if g.opts.UpstreamTimeout > 0 {
		return g.opts.UpstreamTimeout
	}
	return DefaultUpstreamTimeout
}

// upstreamRequest builds the request to the upstream from the caller's.
func (g *Gateway) upstreamRequest(ctx context.Context, r *http.Request, rt *route, kind relayKind, body []byte, passthrough bool) (*http.Request, error) {
	u := *rt.target
	if kind == kindLegacyMessage {
		t, err := g.messageTarget(r, rt, r.URL.Query().Get("s"))
		if err != nil {
			return nil, err
		}
		u = *t
	} else if r.URL.RawQuery != "" {
		if u.RawQuery != "" {
			if name, ok := repeatsParam(u.RawQuery, r.URL.RawQuery); ok {
				return nil, fmt.Errorf("%w: %q", errQueryOverride, name)
			}
			u.RawQuery += "&" + r.URL.RawQuery
		} else {
			u.RawQuery = r.URL.RawQuery
		}
	}
	out := (&http.Request{
		Method:     r.Method,
		URL:        &u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, headerHint(r.Header, rt.server)),
		Host:       u.Host,
	}).WithContext(ctx)
	if body != nil {
		rb := &replayBody{b: body}
		rb.r.Reset(body)
		out.Body, out.GetBody = rb, rb.again
		out.ContentLength = int64(len(body))
	}
	h := out.Header
	// Headers the caller's Connection header names are hop-by-hop too.
	var listed []string
	for _, f := range r.Header["Connection"] {
		for _, k := range strings.Split(f, ",") {
			if k = strings.TrimSpace(k); k != "" {
				listed = append(listed, http.CanonicalHeaderKey(k))
			}
		}
	}
	for k, vs := range r.Header {
		// For a non-passthrough server Authorization is the caller's ingress
		// token: it is the gateway's, never the upstream's.
		if requestSkip[k] || k == "Authorization" && !passthrough || slices.Contains(listed, k) {
			continue
		}
		h[k] = vs // shared, not copied: h.Set and h.Del replace entries, never edit them
	}
	setEgressHeaders(h, rt.server, passthrough)
	// Canonical names, set directly: Header.Set would canonicalize them again.
	if ri := infoFrom(r.Context()); ri != nil && ri.rid != "" {
		h["X-Request-Id"] = ri.ridHeader[:]
	}
	if sids := r.Header["Mcp-Session-Id"]; len(sids) > 0 && kind == kindStreamable {
		// One value, or none: with several, which one the upstream reads
		// is its choice, and the others would pass unsealed.
		if len(sids) > 1 {
			return nil, errSessionHeaders
		}
		if sids[0] != "" {
			up, err := g.sealer.Unseal(sessionLabel(r, rt), sids[0])
			if err != nil {
				return nil, err
			}
			h["Mcp-Session-Id"] = []string{up}
		}
	}
	return out, nil
}

// errQueryOverride is a caller's query parameter that the registration's
// proxy_pass_url sets already.
var errQueryOverride = errors.New("the server's registration sets the query parameter")

// repeatsParam reports a parameter of the caller's query whose name the
// configured query has too. Upstreams disagree on which of two values
// counts (many take the last), so a caller could otherwise replace a
// tenant, region or key the admin set. Names compare as decoded and
// without case (some frameworks ignore it), split on & and ;.
func repeatsParam(configured, caller string) (string, bool) {
	names := func(q string) []string {
		var out []string
		for _, kv := range strings.FieldsFunc(q, func(r rune) bool { return r == '&' || r == ';' }) {
			k, _, _ := strings.Cut(kv, "=")
			if n, err := url.QueryUnescape(k); err == nil {
				k = n
			}
			out = append(out, strings.ToLower(k))
		}
		return out
	}
	set := names(configured)
	for _, n := range names(caller) {
		if slices.Contains(set, n) {
			return n, true
		}
	}
	return "", false
}

// replayBody is a relayed request's body, already read: one object where
// io.NopCloser of a bytes.Reader and a GetBody closure were three.
type replayBody struct {
	r bytes.Reader
	b []byte
}

func (rb *replayBody) Read(p []byte) (int, error) { return rb.r.Read(p) }
func (rb *replayBody) Close() error               { return nil }

// again is the request's GetBody: it lets the transport resend the
// request on a pooled connection the upstream had closed before reading it.
func (rb *replayBody) again() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(rb.b)), nil
}

// WriteTo lets io.Copy hand the bytes over without a buffer of its own.
func (rb *replayBody) WriteTo(w io.Writer) (int64, error) { return rb.r.WriteTo(w) }

// firstValue is h.Get(k) for a k already canonical.
func firstValue(h http.Header, k string) string {
	if vs := h[k]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// headerHint is the size of the upstream request's header map: the
// caller's headers less the Content-Length and Host it usually sends, plus
// the server's and the request id. A hint above 8 makes Go allocate a map
// table instead of one group, so it matters that it is not generous.
func headerHint(h http.Header, s *registry.Server) int {
	n := len(h) + len(s.Headers) + 1
	for _, k := range [...]string{"Content-Length", "Host", "X-Request-Id"} {
		if _, ok := h[k]; ok {
			n--
		}
	}
	return n
}

// setEgressHeaders adds the server's configured headers, $VAR and ${VAR}
// expanded now. For a passthrough server they fill in only what the caller
// did not send: the caller's own credential wins.
func setEgressHeaders(h http.Header, s *registry.Server, passthrough bool) {
	for _, hd := range s.Headers {
		if passthrough && h.Get(hd.Name) != "" {
			continue
		}
		h.Set(hd.Name, hd.Value.Expand())
	}
}

func copyResponseHeaders(dst, src http.Header) {
	for k, vs := range src {
		if responseSkip[k] || strings.HasPrefix(k, "Access-Control-") {
			continue
		}
		dst[k] = vs
	}
}

func (g *Gateway) writeSessionNotFound(w http.ResponseWriter, r *http.Request, msgs []rpcMessage) {
	writeRPCError(w, r, http.StatusNotFound, firstID(msgs), rpcInvalidRequest, "session not found: the Mcp-Session-Id is not valid for this service; initialize a new session")
}

// errUpstreamRedirect is an upstream answer with a 3xx status.
var errUpstreamRedirect = errors.New("relay: upstream answered with a redirect")

// writeUpstreamError answers 504 for a timeout and 502 for any other
// failure to reach the upstream, as a JSON-RPC error for JSON-RPC requests.
func (g *Gateway) writeUpstreamError(w http.ResponseWriter, r *http.Request, rt *route, msgs []rpcMessage, err, cause error) {
	if callerGone(r) {
		return // nobody to answer
	}
	status, what := http.StatusBadGateway, "could not be reached"
	var ne net.Error
	switch {
	case errors.Is(cause, errUpstreamTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		status, what = http.StatusGatewayTimeout, "did not answer in time"
	case errors.Is(err, errEncodedAnswer):
		what = "answered compressed although asked not to, so its tool list cannot be checked against the policy"
	case errors.Is(err, errUpstreamRedirect):
		what = "answered with a redirect, which the gateway does not pass on: register the address it redirects to"
	case errors.Is(err, errAnswerTooLarge):
		what = fmt.Sprintf("answered with more than %d MiB, more than the gateway checks against the policy", maxFilteredBody>>20)
	}
	logFrom(r.Context()).Warn().Str("server", rt.server.Path).Err(err).Int("status", status).Msg("upstream error")
	msg := fmt.Sprintf("upstream of %s %s", rt.server.Path, what)
	if len(msgs) > 0 {
		writeRPCError(w, r, status, firstID(msgs), rpcServerError, msg)
		return
	}
	writeError(w, r, status, msg, nil)
}

func isEventStream(h http.Header) bool {
	ct := h.Get("Content-Type")
	return len(ct) >= 17 && strings.EqualFold(ct[:17], "text/event-stream")
}

// copyBufs are the relay's copy buffers, reused across requests.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// streamCopy copies an upstream body to the client. Event streams are
// flushed after every read, so each event reaches the client as soon as the
// upstream sends it; an idle timer, when set, is pushed back on every read.
type streamCopy struct {
	flush   bool
	idle    *alarm
	idleFor time.Duration
	wrote   int64
	tail    [4]byte // the last bytes written, to tell an event boundary
	// onListChanged, when set, is called once when the stream carries a
	// notifications/tools/list_changed, so the gateway re-reads the tool
	// list. (A notification split across two reads is missed; the
	// periodic re-read catches it.)
	onListChanged func()
}

var listChanged = []byte(`"notifications/tools/list_changed"`)

func (c *streamCopy) run(w http.ResponseWriter, body io.Reader) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	if !c.flush {
		n, err := io.CopyBuffer(w, body, buf)
		c.wrote += n
		return err
	}
	rc := http.NewResponseController(w)
	_ = rc.Flush() // send headers now: the first event may take a while
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if c.idle != nil {
				c.idle.reset(c.idleFor)
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			c.remember(buf[:n])
			if ferr := rc.Flush(); ferr != nil {
				return ferr
			}
			if c.onListChanged != nil && bytes.Contains(buf[:n], listChanged) {
				c.onListChanged()
				c.onListChanged = nil
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (c *streamCopy) remember(b []byte) {
	c.wrote += int64(len(b))
	if len(b) >= len(c.tail) {
		copy(c.tail[:], b[len(b)-len(c.tail):])
		return
	}
	copy(c.tail[:], c.tail[len(b):])
	copy(c.tail[len(c.tail)-len(b):], b)
}

// atEventBoundary reports whether the bytes written so far end a whole
// event, so that another event may follow without corrupting one.
func (c *streamCopy) atEventBoundary() bool {
	t := string(c.tail[:])
	return c.wrote == 0 || strings.HasSuffix(t, "\n\n") || strings.HasSuffix(t, "\r\n\r\n") || strings.HasSuffix(t, "\r\r")
}

// sseMessage frames one JSON-RPC message as a server-sent event.
func sseMessage(data []byte) []byte {
	b := make([]byte, 0, len(data)+24)
	b = append(b, "event: message\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}
