package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/upstream"
)

// DefaultUpstreamTimeout bounds one relayed POST exchange (a tools/call and
// its streamed progress included) unless a server sets its own.
const DefaultUpstreamTimeout = 60 * time.Second

// JSON-RPC error codes used at the edge.
const (
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	rpcServerError    = -32000
	rpcForbidden      = -32003
)

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
	Result json.RawMessage `json:"result"`
	Error  json.RawMessage `json:"error"`
}

// parseRPC reads a POST body as one JSON-RPC message or a batch of them.
func parseRPC(body []byte) ([]rpcMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, errors.New("empty body")
	}
	var msgs []rpcMessage
	if body[0] == '[' {
		if err := json.Unmarshal(body, &msgs); err != nil {
			return nil, err
		}
		if len(msgs) == 0 {
			return nil, errors.New("empty batch")
		}
	} else {
		var m rpcMessage
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, err
		}
		msgs = []rpcMessage{m}
	}
	for _, m := range msgs {
		if m.JSONRPC != "2.0" {
			return nil, errors.New(`"jsonrpc" must be "2.0"`)
		}
		if m.Method == "" && m.Result == nil && m.Error == nil {
			return nil, errors.New("message has no method, result or error")
		}
	}
	return msgs, nil
}

// writeRPCError answers with a JSON-RPC error object; id may be nil.
func writeRPCError(w http.ResponseWriter, r *http.Request, status int, id json.RawMessage, code int, msg string) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   any             `json:"error"`
	}{"2.0", id, map[string]any{"code": code, "message": msg, "data": map[string]string{"request_id": requestID(r.Context())}}})
	_, _ = w.Write(b)
}

// hopHeaders are connection-level headers never relayed (RFC 9110 7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// requestHeadersDropped are caller headers that belong to the gateway, not the
// upstream: the ingress token, gateway cookies, and browser context headers
// that upstreams would judge against their own origin.
var requestHeadersDropped = []string{"X-Authorization", "Cookie", "Origin", "Referer", "Host", "Content-Length"}

// serveRelay relays one request to the route's upstream: the body and
// headers pass unchanged except for credentials (SPEC section 5) and the
// sealed session id, and the response streams back frame by frame.
func (g *Gateway) serveRelay(w http.ResponseWriter, r *http.Request, rt *route) {
	switch r.Method {
	case http.MethodPost, http.MethodGet, http.MethodDelete:
	default:
		methodNotAllowed(w, r, "POST, GET, DELETE")
		return
	}
	passthrough := rt.server.Passthrough()
	p, err := g.authenticate(r, passthrough)
	if err != nil {
		g.writeUnauthorized(w, r, err)
		return
	}

	var body []byte
	var msgs []rpcMessage
	if r.Method == http.MethodPost {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, g.opts.MaxBodyBytes))
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
		for _, m := range msgs {
			if m.Method == "" {
				continue // a response to a server-initiated request
			}
			if !g.policy.Allowed(p, rt.server.Path, m.Method, m.Params.Name) {
				what := "method " + m.Method
				if m.Method == "tools/call" {
					what = "tool " + m.Params.Name
				}
				writeRPCError(w, r, http.StatusOK, m.ID, rpcForbidden, fmt.Sprintf("access denied: %s on %s is not allowed for %s", what, rt.server.Path, p.Subject))
				return
			}
		}
	} else if !g.policy.Allowed(p, rt.server.Path, "", "") {
		writeError(w, r, http.StatusForbidden, "access to "+rt.server.Path+" is not allowed", nil)
		return
	}

	out, err := g.upstreamRequest(r, rt, body, passthrough)
	if err != nil {
		if errors.Is(err, errBadSession) {
			g.writeSessionNotFound(w, r, msgs)
			return
		}
		writeErr(w, r, err)
		return
	}
	ctx := out.Context()
	if r.Method == http.MethodPost {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, g.timeout(rt))
		defer cancel()
		out = out.WithContext(ctx)
	}
	started := time.Now()
	resp, err := g.transport.RoundTrip(out)
	if err != nil {
		g.writeUpstreamError(w, r, rt, msgs, err)
		return
	}
	defer resp.Body.Close()
	logFrom(r.Context()).Debug().Str("server", rt.server.Path).Str("method", method(msgs)).Str("tool", tool(msgs)).
		Int("upstream_status", resp.StatusCode).Dur("upstream_latency", time.Since(started)).Msg("relayed")

	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" {
		h.Set("Mcp-Session-Id", g.sealer.Seal(rt.key, sid))
	}
	w.WriteHeader(resp.StatusCode)
	if err := copyStream(w, resp.Body, isEventStream(resp.Header)); err != nil && ctx.Err() != nil && r.Context().Err() == nil {
		logFrom(r.Context()).Warn().Str("server", rt.server.Path).Err(err).Msg("upstream stream cut by timeout")
	}
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

func (g *Gateway) timeout(rt *route) time.Duration {
	if g.opts.UpstreamTimeout > 0 {
		return g.opts.UpstreamTimeout
	}
	return DefaultUpstreamTimeout
}

// upstreamRequest builds the request to the upstream from the caller's.
func (g *Gateway) upstreamRequest(r *http.Request, rt *route, body []byte, passthrough bool) (*http.Request, error) {
	target := upstream.Endpoint(rt.server)
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	h := out.Header
	for k, vs := range r.Header {
		h[k] = vs
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
	for _, k := range requestHeadersDropped {
		h.Del(k)
	}
	if !passthrough {
		// For a non-passthrough server Authorization is the caller's ingress
		// token: it is the gateway's, never the upstream's.
		h.Del("Authorization")
	}
	for _, hd := range rt.server.Headers {
		if passthrough && h.Get(hd.Name) != "" {
			continue // the caller's own credential wins for passthrough servers
		}
		h.Set(hd.Name, os.ExpandEnv(hd.Value.Reveal()))
	}
	if sid := r.Header.Get("Mcp-Session-Id"); sid != "" {
		up, err := g.sealer.Unseal(rt.key, sid)
		if err != nil {
			return nil, err
		}
		h.Set("Mcp-Session-Id", up)
	}
	if body != nil {
		out.ContentLength = int64(len(body))
	}
	return out, nil
}

func (g *Gateway) writeSessionNotFound(w http.ResponseWriter, r *http.Request, msgs []rpcMessage) {
	var id json.RawMessage
	if len(msgs) > 0 {
		id = msgs[0].ID
	}
	writeRPCError(w, r, http.StatusNotFound, id, rpcInvalidRequest, "session not found: the Mcp-Session-Id is not valid for this service; initialize a new session")
}

// writeUpstreamError answers 504 for a timeout and 502 for any other
// failure to reach the upstream, as a JSON-RPC error for JSON-RPC requests.
func (g *Gateway) writeUpstreamError(w http.ResponseWriter, r *http.Request, rt *route, msgs []rpcMessage, err error) {
	status, what := http.StatusBadGateway, "could not be reached"
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		status, what = http.StatusGatewayTimeout, "did not answer in time"
	}
	if r.Context().Err() != nil {
		return // the caller went away; nobody to answer
	}
	logFrom(r.Context()).Warn().Str("server", rt.server.Path).Err(err).Int("status", status).Msg("upstream error")
	msg := fmt.Sprintf("upstream of %s %s", rt.server.Path, what)
	if len(msgs) > 0 {
		writeRPCError(w, r, status, msgs[0].ID, rpcServerError, msg)
		return
	}
	writeError(w, r, status, msg, nil)
}

func isEventStream(h http.Header) bool {
	return strings.HasPrefix(strings.ToLower(h.Get("Content-Type")), "text/event-stream")
}

// copyStream copies the upstream body to the client. Event streams are
// flushed after every read, so each event reaches the client as soon as the
// upstream sends it.
func copyStream(w http.ResponseWriter, body io.Reader, flush bool) error {
	if !flush {
		_, err := io.Copy(w, body)
		return err
	}
	rc := http.NewResponseController(w)
	_ = rc.Flush() // send headers now: the first event may take a while
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if ferr := rc.Flush(); ferr != nil {
				return ferr
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
