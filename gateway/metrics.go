package gateway

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
)

// Label values that stand for "anything else", so that no caller can grow a
// metric's label set by sending made-up paths, methods or tool names.
const (
	labelUnknownServer = "_unknown"
	labelOther         = "_other"
	labelNone          = "_none" // no JSON-RPC method: a GET stream, a DELETE, a response
	metaServerLabel    = "/mcpgw"
)

// Outcomes of mcpgw_tool_calls_total.
const (
	outcomeOK            = "ok"
	outcomeDenied        = "denied"
	outcomeError         = "error"
	outcomeUpstreamError = "upstream_error"
)

// Results of mcpgw_auth_decisions_total: one per request that asked for
// authentication.
const (
	authAllowed         = "allowed"
	authDenied          = "denied"          // authenticated, but the policy refused
	authUnauthenticated = "unauthenticated" // no token where one is needed
	authInvalidToken    = "invalid_token"
)

// Kinds of mcpgw_upstream_errors_total.
const (
	upstreamUnreachable = "unreachable"
	upstreamTimeout     = "timeout"
	upstreamStatus5xx   = "status_5xx"
)

// knownMethods are the MCP method names that get their own label value;
// everything else counts as _other.
var knownMethods = map[string]bool{
	"initialize": true, "ping": true, "server/discover": true,
	"tools/list": true, "tools/call": true,
	"resources/list": true, "resources/read": true, "resources/templates/list": true,
	"resources/subscribe": true, "resources/unsubscribe": true,
	"prompts/list": true, "prompts/get": true, "completion/complete": true,
	"logging/setLevel": true, "roots/list": true, "sampling/createMessage": true, "elicitation/create": true,
	"tasks/get": true, "tasks/list": true, "tasks/result": true, "tasks/cancel": true,
	"notifications/initialized": true, "notifications/cancelled": true, "notifications/progress": true,
	"notifications/message": true, "notifications/roots/list_changed": true,
	"notifications/tools/list_changed": true, "notifications/resources/list_changed": true,
	"notifications/resources/updated": true, "notifications/prompts/list_changed": true,
}

// metaTools are the tools of the meta server at /mcpgw/mcp, its "tool_list"
// for the tool label.
var metaTools = map[string]bool{
	"list_services": true, "get_server_details": true, "intelligent_tool_finder": true,
	"invoke_tool": true, "healthcheck": true, "register_service": true,
	"remove_service": true, "toggle_service": true, "refresh_service": true,
}

// healthStatuses are the values of the status label of
// mcpgw_server_health: every server has one series per status, 1 for the
// current one and 0 for the others, so a graph shows transitions.
var healthStatuses = []string{
	registry.HealthHealthy, registry.HealthAuthRequired, registry.HealthUnhealthy,
	registry.HealthUnknown, registry.HealthDisabled,
}

// Metrics are the gateway's Prometheus metrics (SPEC section 8), on a
// registry of their own rather than the process-global one, so that two
// gateways in one process (tests) never share counters.
type Metrics struct {
	reg            *prometheus.Registry
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	toolCalls      *prometheus.CounterVec
	upstreamErrors *prometheus.CounterVec
	authDecisions  *prometheus.CounterVec
	finderQueries  prometheus.Counter
	state          *stateCollector

	// Children of the vectors by label values, looked up once: every
	// request counts in two or three series, and client_golang hashes the
	// label values byte by byte on each lookup.
	series   sync.Map // seriesKey → *reqSeries
	tools    sync.Map // toolKey → prometheus.Counter
	authByID map[string]prometheus.Counter
}

type seriesKey struct {
	server, method string
	code           int
}

// reqSeries are the request counter and duration histogram of one server,
// method and status code.
type reqSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

type toolKey struct{ server, tool, outcome string }

// NewMetrics returns the gateway metrics with Go runtime and process
// metrics registered.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgw_requests_total",
			Help: "MCP requests by server path, MCP method and HTTP status code.",
		}, []string{"server", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mcpgw_request_duration_seconds",
			Help: "Duration of MCP requests until the response ended (streams included), by server path and MCP method.",
			// From a cached local answer to a slow tool behind a model.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"server", "method"}),
		toolCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgw_tool_calls_total",
			Help: "tools/call requests by server path, tool and outcome (ok, denied, error, upstream_error).",
		}, []string{"server", "tool", "outcome"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgw_upstream_errors_total",
			Help: "Relayed requests whose upstream failed, by server path and kind (unreachable, timeout, status_5xx).",
		}, []string{"server", "kind"}),
		authDecisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mcpgw_auth_decisions_total",
			Help: "Authentication and policy decisions per request (allowed, denied, unauthenticated, invalid_token).",
		}, []string{"result"}),
		finderQueries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mcpgw_finder_queries_total",
			Help: "Tool finder queries (REST /api/v1/search and the intelligent_tool_finder tool).",
		}),
		state: &stateCollector{},
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.duration, m.toolCalls, m.upstreamErrors, m.authDecisions, m.finderQueries, m.state,
	)
	// The results are a fixed set: start them at zero so that rate() and
	// the dashboard work before the first denial.
	m.authByID = map[string]prometheus.Counter{}
	for _, r := range []string{authAllowed, authDenied, authUnauthenticated, authInvalidToken} {
		m.authByID[r] = m.authDecisions.WithLabelValues(r)
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// CounterFunc exports a counter that another part of the gateway keeps
// (the health checker's check counts, for example), read at scrape time.
// It panics when name is already taken, as a wiring mistake should.
func (m *Metrics) CounterFunc(name, help string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
}

// GaugeFunc exports a gauge read at scrape time.
func (m *Metrics) GaugeFunc(name, help string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// stateCollector reports metrics that are read at scrape time rather than
// counted: the registered servers and their health, straight from the
// registry snapshot and the HealthSource.
type stateCollector struct {
	g *Gateway // set by bind before the gateway serves
}

var (
	healthDesc = prometheus.NewDesc("mcpgw_server_health",
		"Health of each registered server: 1 for its current status, 0 for the others.",
		[]string{"server", "status"}, nil)
	registeredDesc = prometheus.NewDesc("mcpgw_registered_servers",
		"Registered servers, enabled or not.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- healthDesc
	ch <- registeredDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.g
	if g == nil {
		return
	}
	servers, err := g.reg.List(context.Background())
	if err != nil {
		g.log.Warn().Err(err).Msg("metrics: list servers")
		return
	}
	ch <- prometheus.MustNewConstMetric(registeredDesc, prometheus.GaugeValue, float64(len(servers)))
	for _, s := range servers {
		cur := g.healthOf(s).Status
		for _, st := range healthStatuses {
			v := 0.0
			if st == cur {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(healthDesc, prometheus.GaugeValue, v, s.Path, st)
		}
	}
}

// bind lets the scrape-time collector read g. A Metrics serves one gateway.
func (m *Metrics) bind(g *Gateway) { m.state.g = g }

// reqInfo is what one request learns on its way through the gateway: the
// handlers that know a piece fill it in (dispatch the route, authenticate
// the subject, the relay the method, tool and upstream latency) and
// ServeHTTP reads it once for the request's log event and metrics.
type reqInfo struct {
	surface string // surfaceRelay, surfaceMeta, surfaceUnknown, or "" (REST, UI, probes)
	route   *route // the relayed route, when surface is surfaceRelay
	rid     string // the request id (X-Request-Id)
	// ridHeader holds rid as a header value: the response's and the
	// upstream request's X-Request-Id share it (neither is edited in place).
	ridHeader [1]string
	sw        statusWriter // the request's ResponseWriter, kept here to save an allocation
	subject   string
	method    string
	tool      string
	rpc       bool // a JSON-RPC body was read
	authn     bool // authentication was asked
	authErr   bool // the token did not verify
	denied    bool // the policy refused the request (a JSON-RPC error, status 200)
	answered  bool // the upstream answered (upstream is meaningful)
	upstream  time.Duration
}

const (
	surfaceRelay   = "relay"
	surfaceMeta    = "meta"
	surfaceUnknown = "unknown"
)

type reqInfoKey struct{}

func infoFrom(ctx context.Context) *reqInfo {
	ri, _ := ctx.Value(reqInfoKey{}).(*reqInfo)
	return ri
}

// noteRPC records the JSON-RPC method and tool name of the request.
func noteRPC(ctx context.Context, method, tool string) {
	if ri := infoFrom(ctx); ri != nil {
		ri.rpc, ri.method, ri.tool = true, method, tool
	}
}

// noteDenied records that the policy refused the request.
func noteDenied(ctx context.Context) {
	if ri := infoFrom(ctx); ri != nil {
		ri.denied = true
	}
}

// noteUpstream records that the upstream answered, after d.
func noteUpstream(ctx context.Context, d time.Duration) {
	if ri := infoFrom(ctx); ri != nil {
		ri.answered, ri.upstream = true, d
	}
}

// noteAuth records the outcome of ingress verification.
func noteAuth(ctx context.Context, p *auth.Principal, err error) {
	ri := infoFrom(ctx)
	if ri == nil {
		return
	}
	ri.authn = true
	if err != nil {
		ri.authErr = true
		return
	}
	ri.subject = p.Subject
}

// noteRoute records the route a request is relayed to.
func noteRoute(ctx context.Context, rt *route) {
	if ri := infoFrom(ctx); ri != nil {
		ri.surface, ri.route = surfaceRelay, rt
	}
}

// noteSurface records which MCP surface a request reached.
func noteSurface(ctx context.Context, surface string) {
	if ri := infoFrom(ctx); ri != nil {
		ri.surface = surface
	}
}

// serverLabel is the server label of a request: the registered path for a
// relayed one, /mcpgw for the meta server, _unknown for anything else.
func (ri *reqInfo) serverLabel() string {
	switch ri.surface {
	case surfaceRelay:
		return ri.route.server.Path
	case surfaceMeta:
		return metaServerLabel
	default:
		return labelUnknownServer
	}
}

func (ri *reqInfo) methodLabel() string {
	switch {
	case ri.method == "":
		return labelNone
	case knownMethods[ri.method]:
		return ri.method
	default:
		return labelOther
	}
}

// toolLabel is the tool name when the server lists it, else _other.
func (ri *reqInfo) toolLabel() string {
	switch ri.surface {
	case surfaceRelay:
		for _, t := range ri.route.server.ToolList {
			if t.Name == ri.tool {
				return ri.tool
			}
		}
	case surfaceMeta:
		if metaTools[ri.tool] {
			return ri.tool
		}
	}
	return labelOther
}

// observe counts one finished request.
func (m *Metrics) observe(ri *reqInfo, status int, d time.Duration) {
	if ri.authn {
		m.authByID[authResult(ri, status)].Inc()
	}
	if ri.surface == "" {
		return
	}
	server, method := ri.serverLabel(), ri.methodLabel()
	s := m.seriesOf(server, method, status)
	s.requests.Inc()
	s.duration.Observe(d.Seconds())
	if ri.method == "tools/call" && ri.surface != surfaceUnknown {
		m.toolCounter(server, ri.toolLabel(), toolOutcome(ri, status)).Inc()
	}
	if ri.surface == surfaceMeta && ri.tool == "intelligent_tool_finder" && ri.method == "tools/call" {
		m.finderQueries.Inc()
	}
	if ri.surface == surfaceRelay {
		if kind := upstreamErrorKind(ri, status); kind != "" {
			m.upstreamErrors.WithLabelValues(server, kind).Inc()
		}
	}
}

// seriesOf returns the request series of a server, method and status code,
// made on first use. Every label value comes from a bounded set (see
// serverLabel and methodLabel), so the map stays as small as the metric.
func (m *Metrics) seriesOf(server, method string, code int) *reqSeries {
	k := seriesKey{server, method, code}
	if s, ok := m.series.Load(k); ok {
		return s.(*reqSeries)
	}
	s := &reqSeries{
		requests: m.requests.WithLabelValues(server, method, strconv.Itoa(code)),
		duration: m.duration.WithLabelValues(server, method),
	}
	v, _ := m.series.LoadOrStore(k, s)
	return v.(*reqSeries)
}

// toolCounter returns the tool-call counter of a server, tool and outcome,
// made on first use.
func (m *Metrics) toolCounter(server, tool, outcome string) prometheus.Counter {
	k := toolKey{server, tool, outcome}
	if c, ok := m.tools.Load(k); ok {
		return c.(prometheus.Counter)
	}
	v, _ := m.tools.LoadOrStore(k, m.toolCalls.WithLabelValues(server, tool, outcome))
	return v.(prometheus.Counter)
}

func authResult(ri *reqInfo, status int) string {
	switch {
	case ri.authErr:
		return authInvalidToken
	case status == http.StatusUnauthorized:
		return authUnauthenticated
	case ri.denied || status == http.StatusForbidden:
		return authDenied
	default:
		return authAllowed
	}
}

func toolOutcome(ri *reqInfo, status int) string {
	switch {
	case ri.denied || status == http.StatusForbidden:
		return outcomeDenied
	case ri.surface == surfaceRelay && !ri.answered && (status == http.StatusBadGateway || status == http.StatusGatewayTimeout):
		return outcomeUpstreamError
	case status >= 400:
		return outcomeError
	default:
		return outcomeOK
	}
}

// upstreamErrorKind classifies a relayed request's failure: the gateway
// answers 502 when the upstream could not be reached and 504 when it did
// not answer in time; an upstream that answered 5xx itself is status_5xx.
func upstreamErrorKind(ri *reqInfo, status int) string {
	switch {
	case ri.answered && status >= 500:
		return upstreamStatus5xx
	case ri.answered:
		return ""
	case status == http.StatusBadGateway:
		return upstreamUnreachable
	case status == http.StatusGatewayTimeout:
		return upstreamTimeout
	default:
		return ""
	}
}
