// Package gateway is the HTTP surface of mcpgw on one listener: the REST API,
// the /mcpgw meta MCP server, liveness and readiness, and the relay of every
// registered upstream at /{path}/mcp, routed by one atomically swapped table.
package gateway

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/server"
	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
)

// DefaultMaxBodyBytes is the request body limit when Options leave it zero.
const DefaultMaxBodyBytes = 4 << 20

// Options configure the HTTP surface.
type Options struct {
	// MaxBodyBytes limits request bodies (413 above it); 0 means 4 MiB.
	MaxBodyBytes int64
	// PublicURL is the URL clients reach the gateway at (for links and
	// OAuth metadata); empty means derived from each request.
	PublicURL string
	// Version is reported by the meta server.
	Version string
	// AllowedHosts are extra Host header values accepted on a loopback
	// listener besides localhost and loopback IPs.
	AllowedHosts []string
	// UpstreamTimeout bounds one relayed POST exchange; 0 means 60 s.
	UpstreamTimeout time.Duration
}

// Authorizer is the policy decision the gateway asks on every surface.
type Authorizer interface {
	Allowed(p *auth.Principal, server, method, tool string) bool
}

// Verifier turns an ingress bearer token into a principal.
type Verifier interface {
	Verify(ctx context.Context, token string) (*auth.Principal, error)
}

// HealthSource reports the last known health of a server by path key.
type HealthSource interface {
	Health(key string) registry.Health
}

type unknownHealth struct{}

func (unknownHealth) Health(string) registry.Health {
	return registry.Health{Status: registry.HealthUnknown}
}

// Deps are the collaborators of a Gateway. Registry, Verifier, Policy,
// Transport and Sealer are required; Health and Tools may be nil.
type Deps struct {
	Registry  *registry.Service
	Verifier  Verifier
	Policy    Authorizer
	Health    HealthSource
	Tools     ToolLister
	Transport http.RoundTripper
	Sealer    *Sealer
	Log       zerolog.Logger
	// Metrics, when set, receives the gateway's metrics; nil makes a new set.
	Metrics *Metrics
	// Finder answers intelligent_tool_finder and /api/v1/search; nil
	// makes them report that no finder index is configured.
	Finder Finder
	// Invoker calls tools for invoke_tool; nil makes a session pool over
	// Transport.
	Invoker Invoker
}

// Gateway is the http.Handler of the whole listener.
type Gateway struct {
	opts      Options
	reg       *registry.Service
	verify    Verifier
	policy    Authorizer
	health    HealthSource
	lister    ToolLister
	transport http.RoundTripper
	sealer    *Sealer
	log       zerolog.Logger

	routes atomic.Pointer[routeTable]
	loaded atomic.Bool
	meta   http.Handler
	// metaMCP is the meta server itself, to tell its connected clients
	// when the set of services changes.
	metaMCP *server.MCPServer
	api     *http.ServeMux

	metrics *Metrics
	alarms  *alarms // relayed calls' upstream timeouts
	finder  Finder
	invoker Invoker
	uiLogin UILogin       // interactive UI sign-in (OIDC); nil offers API keys only
	uiPoll  time.Duration // how often the UI page polls; 0 means defaultUIPoll
}

// New returns a Gateway. Call Load before serving so that the routing table
// holds the store's servers.
func New(opts Options, d Deps) (*Gateway, error) {
	if d.Registry == nil || d.Verifier == nil || d.Policy == nil || d.Transport == nil || d.Sealer == nil {
		return nil, errors.New("gateway: Registry, Verifier, Policy, Transport and Sealer are required")
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if d.Health == nil {
		d.Health = unknownHealth{}
	}
	g := &Gateway{opts: opts, reg: d.Registry, verify: d.Verifier, policy: d.Policy, health: d.Health,
		lister: d.Tools, transport: d.Transport, sealer: d.Sealer, log: d.Log, metrics: d.Metrics, alarms: newAlarms()}
	if g.metrics == nil {
		g.metrics = NewMetrics()
	}
	g.finder, g.invoker = d.Finder, orDefaultInvoker(d.Invoker, d.Transport, opts.Version)
	g.metrics.bind(g)
	g.routes.Store(&routeTable{byKey: map[string]*route{}})
	g.meta = g.newMetaServer()
	g.api = g.newAPI()
	return g, nil
}

// Load builds the routing table from the store and subscribes it to every
// later change, so routing follows the registry without a restart.
func (g *Gateway) Load(ctx context.Context) error {
	// Subscribe first, then list: a change committed in between is applied
	// by the subscription and then overwritten by the same state from List.
	g.reg.Subscribe(g.apply)
	// MCP has no "services changed" notification; tools/list_changed is the
	// one clients act on, and every meta tool's answers depend on the
	// services. Sending is non-blocking, so this never slows a write.
	g.reg.Subscribe(func(registry.Event) {
		g.metaMCP.SendNotificationToAllClients("notifications/tools/list_changed", nil)
	})
	servers, err := g.reg.List(ctx)
	if err != nil {
		return fmt.Errorf("gateway: load routes: %w", err)
	}
	t := &routeTable{byKey: make(map[string]*route, len(servers))}
	for _, s := range servers {
		if rt := newRoute(s); rt != nil {
			t.byKey[rt.key] = rt
		}
	}
	g.routes.Store(t)
	g.loaded.Store(true)
	return nil
}

// apply is the watcher: it folds one registry event into a new routing table
// and swaps it in. In-flight requests keep the route they already hold.
func (g *Gateway) apply(ev registry.Event) {
	old := g.routes.Load()
	t := &routeTable{byKey: make(map[string]*route, len(old.byKey)+1)}
	for k, v := range old.byKey {
		t.byKey[k] = v
	}
	delete(t.byKey, ev.Key)
	if ev.Kind == registry.EventPut {
		if rt := newRoute(ev.Server); rt != nil {
			t.byKey[rt.key] = rt
		}
	}
	g.routes.Store(t)
}

type routeTable struct {
	byKey map[string]*route
}

// route is one enabled server as the relay needs it.
type route struct {
	key    string
	server *registry.Server
	target *url.URL // the upstream MCP endpoint, parsed once per route
}

func newRoute(s *registry.Server) *route {
	if s == nil || !s.Enabled {
		return nil
	}
	u, err := upstreamEndpoint(s)
	if err != nil {
		return nil
	}
	return &route{key: registry.PathKey(s.Path), server: s, target: u}
}

// lookup finds the route of a relay request path: /{key}/mcp or /{key}/.
func (t *routeTable) lookup(p string) (*route, bool) {
	key, ok := relayKey(p)
	if !ok {
		return nil, false
	}
	rt, ok := t.byKey[key]
	return rt, ok
}

// relayKey extracts the service key of /{key}/mcp[/...] or /{key}/. It
// refuses dot segments and empty segments so that no path trick can name a
// different service than the one it appears to.
func relayKey(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") {
		return "", false
	}
	rest := p[1:]
	var key string
	switch {
	case strings.HasSuffix(rest, "/mcp"):
		key = strings.TrimSuffix(rest, "/mcp")
	case strings.HasSuffix(rest, "/mcp/"):
		key = strings.TrimSuffix(rest, "/mcp/")
	case strings.HasSuffix(rest, "/"):
		key = strings.TrimSuffix(rest, "/")
	default:
		return "", false
	}
	if key == "" {
		return "", false
	}
	for rest := key; ; { // each segment, without allocating a slice of them
		seg, after, more := strings.Cut(rest, "/")
		if seg == "" || seg == "." || seg == ".." {
			return "", false
		}
		if !more {
			return key, true
		}
		rest = after
	}
}

// ServeHTTP implements http.Handler for the whole listener.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ri := &reqInfo{rid: incomingRequestID(r.Header.Get("X-Request-Id"))}
	ri.ridHeader[0] = ri.rid
	w.Header()["X-Request-Id"] = ri.ridHeader[:] // canonical already
	// A hook, not With(): With copies the logger's context into a new
	// 500-byte buffer on every request, most of which log nothing.
	lg := g.log.Hook((*requestIDHook)(ri))
	ctx := context.WithValue(lg.WithContext(r.Context()), reqInfoKey{}, ri)
	r = r.WithContext(ctx)
	ri.sw.ResponseWriter = w
	sw := &ri.sw

	g.dispatch(sw, r)

	status := sw.status
	if status == 0 {
		status = http.StatusOK
	}
	dur := time.Since(start)
	g.metrics.observe(ri, status, dur)
	// MCP traffic gets one info event per request; the REST API, the UI and
	// probes log at debug (writes log their own info events).
	ev := lg.Debug()
	if ri.surface != "" {
		ev = lg.Info().Str("server", ri.serverLabel()).Str("method", ri.method).Str("tool", ri.tool)
		if ri.answered {
			ev = ev.Dur("upstream_latency", ri.upstream)
		}
		if ri.denied {
			ev = ev.Bool("denied", true)
		}
	}
	ev.Str("subject", ri.subject).Str("http_method", r.Method).Str("path", r.URL.Path).Int("status", status).
		Dur("duration", dur).Msg("http request")
}

func (g *Gateway) dispatch(w http.ResponseWriter, r *http.Request) {
	if reason := g.rebinding(r); reason != "" {
		writeError(w, r, http.StatusForbidden, reason, nil)
		return
	}
	p := r.URL.Path
	if r.URL.RawPath != "" && strings.Contains(strings.ToLower(r.URL.RawPath), "%2f") {
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("no service is registered at %q", r.URL.RawPath), nil)
		return
	}
	switch {
	case p == "/healthz":
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	case p == "/readyz":
		g.serveReady(w, r)
	case p == wellKnownResource || strings.HasPrefix(p, wellKnownResource+"/"):
		g.serveResourceMetadata(w, r)
	case p == "/mcpgw/mcp" || p == "/mcpgw/mcp/":
		noteSurface(r.Context(), surfaceMeta)
		g.serveMeta(w, r)
	case strings.HasPrefix(p, "/api/"):
		if g.csrfRefused(w, r) {
			return
		}
		if p == "/api/v1/search" {
			g.metrics.finderQueries.Inc()
		}
		g.api.ServeHTTP(w, r)
	case p == "/metrics":
		g.metrics.Handler().ServeHTTP(w, r)
	case strings.HasPrefix(p, "/static/"):
		g.serveStatic(w, r)
	case strings.HasPrefix(p, "/ui/"):
		if p != "/ui/login" && g.csrfRefused(w, r) {
			return
		}
		g.serveUI(w, r)
	case p == "/":
		if !wantsHTML(r) {
			g.serveIndex(w, r)
			return
		}
		g.serveUI(w, r)
	default:
		routes := g.routes.Load()
		if rt, ok := routes.lookup(p); ok {
			noteRoute(r.Context(), rt)
			g.serveRelay(w, r, rt)
			return
		}
		if rt, kind, ok := routes.lookupLegacy(p); ok {
			noteRoute(r.Context(), rt)
			g.serveLegacy(w, r, rt, kind)
			return
		}
		noteSurface(r.Context(), surfaceUnknown)
		writeNoService(w, r)
	}
}

// writeNoService answers a path where no enabled service is registered, or
// one the caller may not see: the two answers are the same, so that the
// relay does not tell callers which servers exist (REST and the meta tools
// answer not found for both too).
func writeNoService(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, http.StatusNotFound, fmt.Sprintf("no enabled service is registered at %q", r.URL.Path), nil)
}

func (g *Gateway) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := g.reg.Store().Ping(ctx); err != nil {
		writeError(w, r, http.StatusServiceUnavailable, "store is not reachable", nil)
		return
	}
	if !g.loaded.Load() {
		writeError(w, r, http.StatusServiceUnavailable, "routes are not loaded yet", nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "routes": len(g.routes.Load().byKey)})
}

func (g *Gateway) serveIndex(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"name":    "mcpgw",
		"version": g.opts.Version,
		"mcp":     g.publicURL(r) + "/mcpgw/mcp",
		"api":     g.publicURL(r) + "/api/v1/servers",
	})
}

func (g *Gateway) publicURL(r *http.Request) string {
	if g.opts.PublicURL != "" {
		return strings.TrimSuffix(g.opts.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// rebinding implements DNS-rebinding protection: on a loopback listener the
// Host (and any Origin) must name a loopback host, so a web page that
// rebinds its domain to 127.0.0.1 cannot drive the gateway from a browser.
// Origin "null" is refused too: any web page can send it from a sandboxed
// frame, and in local mode the relay asks for no token.
func (g *Gateway) rebinding(r *http.Request) string {
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok || la == nil || !isLoopback(la.String()) {
		return ""
	}
	if !g.hostAllowed(r.Host) {
		return fmt.Sprintf("host %q is not allowed on a loopback listener", r.Host)
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !g.hostAllowed(u.Host) {
			return fmt.Sprintf("origin %q is not allowed on a loopback listener", o)
		}
	}
	return ""
}

func (g *Gateway) hostAllowed(h string) bool {
	if isLoopback(h) {
		return true
	}
	host := h
	if hh, _, err := net.SplitHostPort(h); err == nil {
		host = hh
	}
	for _, a := range g.opts.AllowedHosts {
		if strings.EqualFold(a, h) || strings.EqualFold(a, host) {
			return true
		}
	}
	return false
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = strings.Trim(addr, "[]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// authenticate verifies the caller's ingress token. Without a token the
// caller is anonymous; the policy decides what anonymous may do.
func (g *Gateway) authenticate(r *http.Request, passthrough bool) (*auth.Principal, error) {
	tok := auth.IngressToken(r.Header, passthrough)
	if tok == "" {
		tok = g.sessionToken(r) // the UI's session cookie, on /api/ and /ui/ only
	}
	if tok == "" {
		noteAuth(r.Context(), auth.Anonymous, nil)
		return g.admit(r, auth.Anonymous)
	}
	p, err := g.verify.Verify(r.Context(), tok)
	noteAuth(r.Context(), p, err)
	if err != nil {
		auditRefusedToken(r, err)
		return nil, err
	}
	return g.admit(r, p)
}

// writeUnauthorized answers a failed authentication (see writeAuthError).
func (g *Gateway) writeUnauthorized(w http.ResponseWriter, r *http.Request, err error) {
	g.writeAuthError(w, r, err)
}

// requestID is the id of the request ctx belongs to ("" outside one).
func requestID(ctx context.Context) string {
	if ri := infoFrom(ctx); ri != nil {
		return ri.rid
	}
	return ""
}

func logFrom(ctx context.Context) *zerolog.Logger { return zerolog.Ctx(ctx) }

// requestIDHook adds the request id to each event of a request's logger.
// It is the request's info under another type, so that making the hook
// allocates nothing.
type requestIDHook reqInfo

func (h *requestIDHook) Run(e *zerolog.Event, _ zerolog.Level, _ string) {
	e.Str("request_id", h.rid)
}

// incomingRequestID keeps a caller's X-Request-Id when it is short and
// plain, so ids correlate across hops without letting callers inject text
// into logs; otherwise it makes a new one.
func incomingRequestID(v string) string {
	if n := len(v); n > 0 && n <= 64 {
		ok := true
		for i := 0; i < n && ok; i++ {
			c := v[i]
			ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		}
		if ok {
			return v
		}
	}
	// An id correlates log lines and is no secret: the runtime's
	// per-thread generator will do, at a fraction of crypto/rand's cost.
	var b [12]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint32(b[8:], rand.Uint32())
	return hex.EncodeToString(b[:])
}

// statusWriter records the status code and keeps Flush working for streams.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
