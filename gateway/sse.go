package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/upstream"
)

// The legacy HTTP+SSE transport (MCP 2024-11-05): the client GETs an event
// stream whose first "endpoint" event names the URL it must POST its
// messages to; answers come back on the stream. The gateway serves the
// stream at /{path}/sse (and /{path}/mcp) and rewrites the endpoint to its
// own /{path}/messages?s=<sealed>, where the sealed value holds the
// upstream's message path and query. Like sealed session ids, it needs no
// shared state, names its service, and cannot be pointed at another host.

const (
	legacyStreamSuffix  = "/sse"
	legacyMessageSuffix = "/messages"
	// endpointMarker starts every sealed message endpoint, so that a
	// sealed session id can never pass for one, nor one for a session id.
	endpointMarker = "endpoint:"
	// maxPreEndpoint bounds what the gateway holds back while it waits for
	// the upstream's endpoint event.
	maxPreEndpoint = 64 << 10
)

// upstreamEndpoint parses the upstream MCP endpoint of s, once per route.
func upstreamEndpoint(s *registry.Server) (*url.URL, error) {
	u, err := url.Parse(upstream.Endpoint(s))
	if err != nil {
		return nil, fmt.Errorf("relay: upstream endpoint of %s: %w", s.Path, err)
	}
	return u, nil
}

// legacySSE reports whether s speaks only the legacy HTTP+SSE transport.
func legacySSE(s *registry.Server) bool {
	return len(s.SupportedTransports) == 1 && s.SupportedTransports[0] == registry.TransportSSE
}

// lookupLegacy finds the route of /{key}/sse (the legacy event stream) or
// /{key}/messages (its message endpoint).
func (t *routeTable) lookupLegacy(p string) (*route, relayKind, bool) {
	var key string
	var kind relayKind
	switch {
	case strings.HasSuffix(p, legacyStreamSuffix):
		key, kind = strings.TrimSuffix(p, legacyStreamSuffix), kindLegacyStream
	case strings.HasSuffix(p, legacyMessageSuffix):
		key, kind = strings.TrimSuffix(p, legacyMessageSuffix), kindLegacyMessage
	default:
		return nil, 0, false
	}
	key, ok := relayKey(key + "/")
	if !ok {
		return nil, 0, false
	}
	rt, ok := t.byKey[key]
	return rt, kind, ok
}

// serveLegacy serves /{key}/sse and /{key}/messages of a legacy upstream.
func (g *Gateway) serveLegacy(w http.ResponseWriter, r *http.Request, rt *route, kind relayKind) {
	p, ok := g.relayCaller(w, r, rt)
	if !ok {
		return
	}
	if !legacySSE(rt.server) {
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("%s speaks streamable HTTP: use /%s/mcp", rt.server.Path, rt.key), nil)
		return
	}
	want := http.MethodGet
	if kind == kindLegacyMessage {
		want = http.MethodPost
	}
	if r.Method != want {
		methodNotAllowed(w, r, want)
		return
	}
	g.relay(w, r, rt, kind, p)
}

// messageTarget unseals the s parameter of /{key}/messages into the
// upstream URL to POST to. It refuses anything that is not a path on the
// upstream's own scheme and host: no sealed value can make the gateway
// send a request elsewhere (SSRF), even if the key leaked.
func (g *Gateway) messageTarget(r *http.Request, rt *route, sealed string) (*url.URL, error) {
	plain, err := g.sealer.Unseal(sessionLabel(r, rt), sealed)
	if err != nil || !strings.HasPrefix(plain, endpointMarker) {
		return nil, errBadSession
	}
	ref, err := url.Parse(strings.TrimPrefix(plain, endpointMarker))
	if err != nil || ref.Scheme != "" || ref.Host != "" || ref.User != nil || !strings.HasPrefix(ref.Path, "/") {
		return nil, errBadSession
	}
	u := rt.target.ResolveReference(ref)
	if !sameOrigin(u, rt.target) {
		return nil, fmt.Errorf("relay: message endpoint is not on the upstream's origin: %w", errForbidden)
	}
	return u, nil
}

// sameOrigin compares scheme, host and port (with the scheme's default).
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && portOf(a) == portOf(b)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// relayLegacyStream relays a legacy upstream's event stream. It holds the
// response back until the upstream's endpoint event, so that a stream that
// never names a usable endpoint gets a clear 502/504 instead of a 200 the
// client would wait on; then it streams on, event by event, unchanged.
func (g *Gateway) relayLegacyStream(ctx context.Context, w http.ResponseWriter, r *http.Request, rt *route, resp *http.Response, deadline *alarm) {
	br := bufio.NewReader(resp.Body)
	var held bytes.Buffer
	var endpoint []byte
	for endpoint == nil {
		ev, err := readEvent(br)
		if err != nil {
			g.writeUpstreamStreamError(ctx, w, r, rt, err)
			return
		}
		if ev.name == "endpoint" {
			if endpoint, err = g.rewriteEndpoint(r, rt, resp.Request.URL, ev); err != nil {
				logFrom(r.Context()).Warn().Str("server", rt.server.Path).Err(err).Msg("refused upstream endpoint")
				writeError(w, r, http.StatusBadGateway, fmt.Sprintf("upstream of %s sent an unusable message endpoint", rt.server.Path), nil)
				return
			}
			break
		}
		held.Write(ev.raw)
		if held.Len() > maxPreEndpoint {
			writeError(w, r, http.StatusBadGateway, fmt.Sprintf("upstream of %s sent no endpoint event", rt.server.Path), nil)
			return
		}
	}
	if deadline != nil {
		deadline.stop() // from here on the stream may stay silent
	}
	copyResponseHeaders(w.Header(), resp.Header)
	w.Header().Del("Content-Length")
	w.WriteHeader(http.StatusOK)
	_, _ = held.WriteTo(w)
	if _, err := w.Write(endpoint); err != nil {
		return
	}
	c := streamCopy{flush: true}
	_ = c.run(w, br)
}

func (g *Gateway) writeUpstreamStreamError(ctx context.Context, w http.ResponseWriter, r *http.Request, rt *route, err error) {
	if callerGone(r) {
		return
	}
	// A read cut by the deadline surfaces as a canceled context.
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		writeError(w, r, http.StatusBadGateway, fmt.Sprintf("upstream of %s closed its event stream before sending the endpoint event", rt.server.Path), nil)
		return
	}
	g.writeUpstreamError(w, r, rt, nil, err, context.Cause(ctx))
}

// rewriteEndpoint turns the upstream's endpoint event into the gateway's:
// the same event with the URL /{key}/messages?s=<sealed path and query>.
func (g *Gateway) rewriteEndpoint(r *http.Request, rt *route, streamURL *url.URL, ev sseEvent) ([]byte, error) {
	data := strings.TrimSpace(ev.data)
	ref, err := url.Parse(data)
	if err != nil || data == "" {
		return nil, fmt.Errorf("endpoint %q is not a URL", data)
	}
	u := streamURL.ResolveReference(ref)
	if !sameOrigin(u, rt.target) || u.User != nil {
		return nil, fmt.Errorf("endpoint %q is not on the upstream's origin %s://%s", data, rt.target.Scheme, rt.target.Host)
	}
	sealed := g.sealer.Seal(sessionLabel(r, rt), endpointMarker+u.RequestURI())
	var b bytes.Buffer
	if ev.id != "" {
		b.WriteString("id: " + ev.id + "\n")
	}
	b.WriteString("event: endpoint\ndata: ")
	b.WriteString(g.basePath() + "/" + rt.key + legacyMessageSuffix + "?s=" + sealed)
	b.WriteString("\n\n")
	return b.Bytes(), nil
}

// basePath is the path prefix of the public URL ("" when the gateway is
// served at the root), so rewritten endpoints work behind a path prefix.
func (g *Gateway) basePath() string {
	if g.opts.PublicURL == "" {
		return ""
	}
	u, err := url.Parse(g.opts.PublicURL)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(u.EscapedPath(), "/")
}

// sseEvent is one parsed server-sent event and its bytes as received.
type sseEvent struct {
	name, data, id string
	raw            []byte
}

// readEvent reads one event (up to its blank line) from an event stream.
// Lines end in LF or CRLF; comments and unknown fields are kept in raw only.
func readEvent(br *bufio.Reader) (sseEvent, error) {
	var ev sseEvent
	var data []string
	for {
		line, err := br.ReadBytes('\n')
		if len(ev.raw)+len(line) > maxPreEndpoint {
			return ev, errors.New("event too large")
		}
		ev.raw = append(ev.raw, line...)
		if err != nil {
			if err == io.EOF {
				return ev, io.ErrUnexpectedEOF
			}
			return ev, err
		}
		s := strings.TrimRight(string(line), "\r\n")
		if s == "" {
			if ev.name == "" && data == nil && ev.id == "" {
				continue // stray blank line: no event yet
			}
			ev.data = strings.Join(data, "\n")
			return ev, nil
		}
		field, value, _ := strings.Cut(s, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.name = value
		case "data":
			data = append(data, value)
		case "id":
			ev.id = value
		}
	}
}
