package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
)

// scrape reads /metrics as Prometheus does and parses the text format.
func scrape(t *testing.T, e *testEnv) map[string]*dto.MetricFamily {
	t.Helper()
	resp, body := e.do(t, "GET", "/metrics", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// series returns the value of the series of family name whose labels
// include want, and how many series matched.
func series(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, int) {
	f := fams[name]
	if f == nil {
		return 0, 0
	}
	var v float64
	n := 0
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, w := range want {
			if have[k] != w {
				continue next
			}
		}
		n++
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Histogram != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return v, n
}

// labelValues lists the values label takes in family name.
func labelValues(fams map[string]*dto.MetricFamily, name, label string) []string {
	seen := map[string]bool{}
	if f := fams[name]; f != nil {
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					seen[lp.GetValue()] = true
				}
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// mcpExchange opens an MCP session on path with hdr and returns a function
// that sends one JSON-RPC request in it.
func mcpExchange(t *testing.T, e *testEnv, path string, hdr map[string]string) func(body string) (*http.Response, []byte) {
	t.Helper()
	h := map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
	for k, v := range hdr {
		h[k] = v
	}
	resp, body := e.do(t, "POST", path, []byte(initializeBody), h)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize %s: %d %s", path, resp.StatusCode, body)
	}
	if sid := resp.Header.Get("Mcp-Session-Id"); sid != "" {
		h["Mcp-Session-Id"] = sid
	}
	h["MCP-Protocol-Version"] = "2025-06-18"
	e.do(t, "POST", path, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`), h)
	return func(body string) (*http.Response, []byte) { return e.do(t, "POST", path, []byte(body), h) }
}

func toolCall(id int, tool string, args string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q,"arguments":%s}}`, id, tool, args)
}

// driveTraffic sends requests that touch every metric: tool calls that
// succeed, are denied and name unknown tools, unknown methods and paths, an
// unreachable upstream, bad tokens, finder queries on both surfaces.
func driveTraffic(t *testing.T, e *uiEnv) {
	t.Helper()
	passthrough := map[string]string{"Authorization": "Bearer " + "cognito-test-access-token"}
	call := mcpExchange(t, e.testEnv, "/customer-support-assistant/mcp", passthrough)
	if resp, body := call(toolCall(2, "LambdaUsingSDK___check_warranty_status", `{"serial_number":"MNO33333333"}`)); resp.StatusCode != 200 || !bytes.Contains(body, []byte("Warranty")) {
		t.Fatalf("warranty call: %d %s", resp.StatusCode, body)
	}
	for i := 0; i < 5; i++ { // made-up tool names share one label value
		call(toolCall(10+i, fmt.Sprintf("made_up_tool_%d", i), `{}`))
	}
	for i := 0; i < 5; i++ { // made-up methods share one label value
		call(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"custom/method-%d"}`, 20+i, i))
	}
	for i := 0; i < 5; i++ { // unregistered paths share one server label value
		e.do(t, "POST", fmt.Sprintf("/no-such-server-%d/mcp", i), []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`), nil)
	}

	e.register(t, map[string]any{"server_name": "gone", "path": "/gone", "proxy_pass_url": "http://127.0.0.1:1/mcp"})
	if resp, body := e.do(t, "POST", "/gone/mcp", []byte(initializeBody), map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("unreachable upstream: %d %s", resp.StatusCode, body)
	}

	e.do(t, "GET", "/api/v1/servers", nil, map[string]string{"X-Authorization": "Bearer mcpgw_not-a-real-key"})
	e.do(t, "POST", "/api/v1/servers/gone/disable", nil, nil) // no token: unauthenticated

	if resp, body := e.do(t, "GET", "/api/v1/search?q=warranty", nil, nil); resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("check_warranty_status")) {
		t.Fatalf("finder over REST: %d %s", resp.StatusCode, body)
	}
	meta := mcpExchange(t, e.testEnv, "/mcpgw/mcp", nil)
	if resp, body := meta(toolCall(3, "intelligent_tool_finder", `{"natural_language_query":"warranty"}`)); resp.StatusCode != 200 || !bytes.Contains(body, []byte("check_warranty_status")) {
		t.Fatalf("finder over MCP: %d %s", resp.StatusCode, body)
	}

	// Last, because a stored policy makes the gateway deny by default:
	// alice may use only the warranty tool.
	doc := `{"group_mappings":{"support-team":["support"]},"scopes":{"support":[{"server":"customer-support-assistant","methods":["*"],"tools":["LambdaUsingSDK___check_warranty_status"]}]}}`
	servers, _ := e.reg.List(context.Background())
	if _, err := e.policy.Replace(context.Background(), []byte(doc), servers); err != nil {
		t.Fatal(err)
	}
	key, err := auth.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.PutAPIKey(context.Background(), registry.APIKey{Name: "alice", Hash: auth.HashKey(key), Groups: []string{"support-team"}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	alice := mcpExchange(t, e.testEnv, "/customer-support-assistant/mcp", map[string]string{
		"Authorization": passthrough["Authorization"], "X-Authorization": "Bearer " + key})
	if _, body := alice(toolCall(4, "LambdaUsingSDK___get_customer_profile", `{"customer_id":"CUST001"}`)); !bytes.Contains(body, []byte("access denied")) {
		t.Fatalf("alice's denied call: %s", body)
	}
}

func TestMetrics(t *testing.T) {
	e := newUIEnv(t, Options{})
	e.health.set("customer-support-assistant", registry.Health{Status: registry.HealthAuthRequired, LastChecked: time.Now()})
	driveTraffic(t, e)
	fams := scrape(t, e.testEnv)
	const seed = seedServerPath

	checks := []struct {
		name   string
		family string
		labels map[string]string
		min    float64
		max    float64 // 0: no upper bound
	}{
		{"a relayed tool call", "mcpgw_requests_total", map[string]string{"server": seed, "method": "tools/call", "code": "200"}, 7, 0},
		{"its duration", "mcpgw_request_duration_seconds", map[string]string{"server": seed, "method": "tools/call"}, 7, 0},
		{"the successful tool call", "mcpgw_tool_calls_total", map[string]string{"server": seed, "tool": "LambdaUsingSDK___check_warranty_status", "outcome": "ok"}, 1, 1},
		{"made-up tools in one bucket", "mcpgw_tool_calls_total", map[string]string{"server": seed, "tool": "_other"}, 5, 5},
		{"the denied call", "mcpgw_tool_calls_total", map[string]string{"server": seed, "tool": "LambdaUsingSDK___get_customer_profile", "outcome": "denied"}, 1, 1},
		{"made-up methods in one bucket", "mcpgw_requests_total", map[string]string{"server": seed, "method": "_other"}, 5, 5},
		{"unknown paths in one bucket", "mcpgw_requests_total", map[string]string{"server": "_unknown", "code": "404"}, 5, 5},
		{"the unreachable upstream", "mcpgw_upstream_errors_total", map[string]string{"server": "/gone", "kind": "unreachable"}, 1, 1},
		{"the meta server's finder call", "mcpgw_tool_calls_total", map[string]string{"server": "/mcpgw", "tool": "intelligent_tool_finder", "outcome": "ok"}, 1, 1},
		{"finder queries on both surfaces", "mcpgw_finder_queries_total", nil, 2, 2},
		{"an invalid token", "mcpgw_auth_decisions_total", map[string]string{"result": "invalid_token"}, 1, 1},
		{"a missing token", "mcpgw_auth_decisions_total", map[string]string{"result": "unauthenticated"}, 1, 0},
		{"a policy denial", "mcpgw_auth_decisions_total", map[string]string{"result": "denied"}, 1, 0},
		{"allowed requests", "mcpgw_auth_decisions_total", map[string]string{"result": "allowed"}, 5, 0},
		{"the seed's health", "mcpgw_server_health", map[string]string{"server": seed, "status": registry.HealthAuthRequired}, 1, 1},
		{"only one current status", "mcpgw_server_health", map[string]string{"server": seed}, 1, 1},
		{"registered servers", "mcpgw_registered_servers", nil, 2, 2},
		{"Go runtime", "go_goroutines", nil, 1, 0},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			v, n := series(fams, c.family, c.labels)
			if n == 0 || v < c.min || c.max > 0 && v > c.max {
				t.Fatalf("%s%v = %v over %d series, want %v..%v", c.family, c.labels, v, n, c.min, c.max)
			}
		})
	}

	t.Run("bounded label values", func(t *testing.T) {
		for _, m := range labelValues(fams, "mcpgw_requests_total", "method") {
			if m != "_other" && m != "_none" && !knownMethods[m] {
				t.Errorf("method label %q is not a known MCP method", m)
			}
		}
		servers := labelValues(fams, "mcpgw_requests_total", "server")
		for _, s := range servers {
			if s != "_unknown" && s != "/mcpgw" && s != seed && s != "/gone" {
				t.Errorf("server label %q is not a registered path", s)
			}
		}
		for _, tool := range labelValues(fams, "mcpgw_tool_calls_total", "tool") {
			if strings.HasPrefix(tool, "made_up") {
				t.Errorf("tool label %q is not a registered tool", tool)
			}
		}
		if got := labelValues(fams, "mcpgw_server_health", "status"); len(got) != len(healthStatuses) {
			t.Errorf("health statuses %v, want %v", got, healthStatuses)
		}
	})

	t.Run("health follows the source", func(t *testing.T) {
		e.health.set("customer-support-assistant", registry.Health{Status: registry.HealthUnhealthy, Reason: "connection refused"})
		fams := scrape(t, e.testEnv)
		if v, _ := series(fams, "mcpgw_server_health", map[string]string{"server": seed, "status": registry.HealthUnhealthy}); v != 1 {
			t.Fatalf("unhealthy = %v", v)
		}
		if _, err := e.reg.SetEnabled(context.Background(), "customer-support-assistant", false); err != nil {
			t.Fatal(err)
		}
		fams = scrape(t, e.testEnv)
		if v, _ := series(fams, "mcpgw_server_health", map[string]string{"server": seed, "status": registry.HealthDisabled}); v != 1 {
			t.Fatalf("disabled = %v", v)
		}
	})
}

// TestMetricsRegistryIsPrivate checks that two gateways in one process keep
// separate counters (no global registry).
func TestMetricsRegistryIsPrivate(t *testing.T) {
	a, b := newEnv(t, Options{}), newEnv(t, Options{})
	for i := 0; i < 3; i++ {
		a.do(t, "GET", "/no-such/mcp", nil, nil)
	}
	va, _ := series(scrape(t, a), "mcpgw_requests_total", map[string]string{"server": "_unknown"})
	vb, _ := series(scrape(t, b), "mcpgw_requests_total", map[string]string{"server": "_unknown"})
	if va != 3 || vb != 0 {
		t.Fatalf("a counted %v, b counted %v; want 3 and 0", va, vb)
	}
}

// promQLNames extracts the metric names a PromQL expression selects:
// identifiers that are not functions, keywords, label names or Grafana
// variables.
func promQLNames(expr string) []string {
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`"(?:[^"\\]|\\.)*"`),                                               // strings (label values)
		regexp.MustCompile(`\$\{?[A-Za-z_]+\}?`),                                              // Grafana variables
		regexp.MustCompile(`\{[^}]*\}`),                                                       // label matchers
		regexp.MustCompile(`\[[^\]]*\]`),                                                      // ranges
		regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`), // grouping labels
		regexp.MustCompile(`\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[a-z]*\b`),                        // numbers and durations
	} {
		expr = re.ReplaceAllString(expr, " ")
	}
	keywords := map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
	var out []string
	for _, m := range regexp.MustCompile(`[A-Za-z_:][\w:]*(\s*\()?`).FindAllString(expr, -1) {
		if strings.HasSuffix(m, "(") || keywords[strings.ToLower(m)] {
			continue // a function or aggregation
		}
		out = append(out, m)
	}
	return out
}

func TestPromQLNames(t *testing.T) {
	cases := map[string][]string{
		`sum by (server) (rate(mcpgw_requests_total{server=~"$server",code=~"5.."}[$__rate_interval]))`:   {"mcpgw_requests_total"},
		`histogram_quantile(0.95, sum by (le, server) (rate(mcpgw_request_duration_seconds_bucket[5m])))`: {"mcpgw_request_duration_seconds_bucket"},
		`4 * sum by (server) (mcpgw_server_health{status="healthy"}) + go_goroutines`:                     {"mcpgw_server_health", "go_goroutines"},
		`label_values(mcpgw_requests_total, server)`:                                                      {"mcpgw_requests_total", "server"},
		`a / on (server) group_left b unless c offset 5m`:                                                 {"a", "b", "c"},
	}
	for expr, want := range cases {
		got := promQLNames(expr)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("promQLNames(%q) = %v, want %v", expr, got, want)
		}
	}
}

// dashboardQueries returns every PromQL expression of a Grafana dashboard:
// panel targets and query variables.
func dashboardQueries(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s is not JSON: %v", file, err)
	}
	var out []string
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				if v["type"] == "datasource" && k == "query" {
					continue // a data source variable: its query is a plugin type
				}
				walk(c, k)
			}
		case []any:
			for _, c := range v {
				walk(c, key)
			}
		case string:
			if key == "expr" || key == "query" || key == "definition" {
				out = append(out, v)
			}
		}
	}
	walk(doc, "")
	return out
}

// TestDashboardUsesExportedMetrics parses the Grafana dashboard in deploy/
// and checks that every metric its queries select is one the gateway
// exports, after traffic that gives every metric a series.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	e := newUIEnv(t, Options{})
	driveTraffic(t, e)
	fams := scrape(t, e.testEnv)
	exported := map[string]bool{}
	for name, f := range fams {
		exported[name] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			exported[name+"_bucket"], exported[name+"_sum"], exported[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			exported[name+"_sum"], exported[name+"_count"] = true, true
		}
	}
	queries := dashboardQueries(t, "../deploy/grafana/dashboards/mcpgw.json")
	if len(queries) < 10 {
		t.Fatalf("found only %d queries in the dashboard", len(queries))
	}
	used := map[string]bool{}
	for _, q := range queries {
		names := promQLNames(q)
		if strings.HasPrefix(strings.TrimSpace(q), "label_values(") && len(names) > 1 {
			names = names[:1] // the second argument is a label name
		}
		for _, n := range names {
			used[n] = true
			if !exported[n] {
				t.Errorf("the dashboard queries %q, which the gateway does not export (in %s)", n, q)
			}
		}
	}
	// Every SPEC metric has a panel.
	for _, n := range []string{"mcpgw_requests_total", "mcpgw_request_duration_seconds_bucket", "mcpgw_tool_calls_total",
		"mcpgw_upstream_errors_total", "mcpgw_auth_decisions_total", "mcpgw_server_health", "mcpgw_registered_servers", "mcpgw_finder_queries_total"} {
		if !used[n] {
			t.Errorf("no dashboard panel uses %s", n)
		}
	}
}

// TestDeployFiles checks that the compose file, the Prometheus scrape
// configuration and the Grafana provisioning agree with each other.
func TestDeployFiles(t *testing.T) {
	read := func(f string) string {
		b, err := os.ReadFile("../deploy/" + f)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	compose, prom := read("compose.yaml"), read("prometheus.yml")
	read("grafana/provisioning/datasources/prometheus.yaml")
	read("grafana/provisioning/dashboards/mcpgw.yaml")
	for _, want := range []string{"./prometheus.yml:/etc/prometheus/prometheus.yml", "./grafana/dashboards:/var/lib/grafana/dashboards", "./grafana/provisioning:/etc/grafana/provisioning", "7860:7860"} {
		if !strings.Contains(compose, want) {
			t.Errorf("compose.yaml lacks %q", want)
		}
	}
	for _, want := range []string{"job_name: mcpgw", "metrics_path: /metrics", `"mcpgw:7860"`} {
		if !strings.Contains(prom, want) {
			t.Errorf("prometheus.yml lacks %q", want)
		}
	}
	for _, q := range dashboardQueries(t, "../deploy/grafana/dashboards/mcpgw.json") {
		if strings.Contains(q, "job=") && !strings.Contains(q, `job="mcpgw"`) {
			t.Errorf("dashboard query selects a job the scrape config does not define: %s", q)
		}
	}
}
