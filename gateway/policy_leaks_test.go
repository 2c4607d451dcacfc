package gateway

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/auth/authtest"
	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

// The tests of this file each reproduce a way a caller could see or use
// what the policy denies them, found by an audit of every surface; each
// failed before its fix.

// supportSession sets up the seed policy, the AgentCore upstream and an
// initialized session for the support-team caller. front, when set, puts
// a server of its own in front of the upstream: given the upstream's base
// URL, it returns the one to register.
func supportSession(t *testing.T, front func(base string) string) (*authEnv, map[string]string, *authtest.Issuer) {
	iss := authtest.NewIssuer(t)
	env := newAuthEnv(t, []auth.IssuerConfig{{Issuer: iss.URL, Audiences: []string{"mcpgw"}}}, seedPolicy)
	upstream := upstreamtest.NewAgentCore(t, "").Base
	if front != nil {
		upstream = front(upstream)
	}
	env.register(t, map[string]any{
		"server_name": "customer-support-assistant", "path": "/customer-support-assistant",
		"proxy_pass_url": upstream + "/mcp/", "auth_provider": "bedrock-agentcore", "tool_list": seedTools,
	})
	support := iss.Sign(t, iss.Claims("sam", "mcpgw", "support-team"))
	base := map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
		"X-Authorization": "Bearer " + support, "Authorization": "Bearer " + upstreamtest.AgentCoreToken}
	resp, body := env.do(t, http.MethodPost, "/customer-support-assistant/mcp", []byte(initializeBody), base)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("initialize: %d %s", resp.StatusCode, body)
	}
	base["Mcp-Session-Id"] = resp.Header.Get("Mcp-Session-Id")
	base["MCP-Protocol-Version"] = "2025-06-18"
	env.do(t, http.MethodPost, "/customer-support-assistant/mcp", []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`), base)
	return env, base, iss
}

func TestToolsListFilterIgnoresRequestIDs(t *testing.T) {
	env, base, _ := supportSession(t, nil)
	const path = "/customer-support-assistant/mcp"
	for _, id := range []string{`7`, `"\u0061"`, `1.0`, `1e0`, `10E-1`, `-0`} {
		_, body := env.do(t, http.MethodPost, path, []byte(`{"jsonrpc":"2.0","id":`+id+`,"method":"tools/list"}`), base)
		if strings.Contains(string(body), profileTool) || !strings.Contains(string(body), warrantyTool) {
			t.Errorf("id %s: tools/list should hold %s and not %s: %s", id, warrantyTool, profileTool, body)
		}
	}
}

// A caller whose only admin right is admin: true on one server (README:
// "on one server its toggle/refresh/remove") re-registers that server with
// PUT, pointing it at its own host with a $VAR header, and so reads any
// environment variable of the gateway (other servers' upstream tokens).
func TestServerAdminCannotReplaceRegistration(t *testing.T) {
	t.Setenv("OTHER_SERVER_SECRET", "s3cr3t-of-another-server")
	const pol = `
group_mappings:
  weather-ops: [weather-admin]
scopes:
  weather-admin:
    - server: weather
      methods: [ping]
      tools: []
      admin: true
`
	iss := authtest.NewIssuer(t)
	env := newAuthEnv(t, []auth.IssuerConfig{{Issuer: iss.URL, Audiences: []string{"mcpgw"}}}, pol)
	got := make(chan string, 10)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("X-Leak"); v != "" {
			got <- v
		}
		w.WriteHeader(401)
	}))
	defer evil.Close()
	env.register(t, map[string]any{"server_name": "weather", "path": "/weather", "proxy_pass_url": evil.URL + "/orig"})
	ops := iss.Sign(t, iss.Claims("olga", "mcpgw", "weather-ops"))
	h := map[string]string{"Authorization": "Bearer " + ops, "Content-Type": "application/json"}
	body := `{"server_name":"weather","path":"/weather","proxy_pass_url":"` + evil.URL + `/mcp","headers":[{"X-Leak":"${OTHER_SERVER_SECRET}"}]}`
	resp, b := env.do(t, http.MethodPut, "/api/v1/servers/weather", []byte(body), h)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("PUT by a one-server admin: %d %s, want 403", resp.StatusCode, b)
	}
	// Any request relayed there now carries the expanded secret.
	env.do(t, http.MethodPost, "/weather/mcp", []byte(initializeBody), map[string]string{"Authorization": "Bearer " + env.admin, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
	select {
	case v := <-got:
		t.Errorf("the attacker's upstream received X-Leak: %s", v)
	default:
	}
	// Not admin on "*": registering a new server is refused too.
	if resp, _ = env.do(t, http.MethodPost, "/api/v1/servers", []byte(`{"server_name":"x","path":"/x","proxy_pass_url":"`+evil.URL+`"}`), h); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST of a new server by a one-server admin: %d, want 403", resp.StatusCode)
	}
	// What a one-server admin may do still works.
	if resp, b := env.do(t, http.MethodPost, "/api/v1/servers/weather/disable", nil, h); resp.StatusCode != http.StatusOK {
		t.Errorf("disable by the server's admin: %d %s", resp.StatusCode, b)
	}
}

// A pinned server whose upstream changed the definition of a tool the caller
// may not call: get_server_details (REST and meta) shows that tool's name,
// description and schema under pending_tool_changes.
func TestPendingToolsFollowPolicy(t *testing.T) {
	env, base, _ := supportSession(t, nil)
	ctx := context.Background()
	s, err := env.reg.Get(ctx, "customer-support-assistant")
	if err != nil {
		t.Fatal(err)
	}
	desc := "SECRET changed profile tool"
	pending := []registry.Tool{
		{Name: profileTool, ParsedDescription: registry.ParsedDescription{Main: &desc}, Schema: json.RawMessage(`{"type":"object","properties":{"ssn":{"type":"string"}}}`)},
		{Name: warrantyTool, ParsedDescription: registry.ParsedDescription{Main: &desc}},
	}
	if _, err := env.reg.SetToolsPending(ctx, s.Path, s.ToolList, pending); err != nil {
		t.Fatal(err)
	}
	h := map[string]string{"X-Authorization": base["X-Authorization"]}
	resp, body := env.do(t, http.MethodGet, "/api/v1/servers/customer-support-assistant", nil, h)
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), profileTool) {
		t.Errorf("REST details leak the denied tool via pending_tool_changes: %d %s", resp.StatusCode, body)
	}
	var d struct {
		Pending []registry.Tool `json:"pending_tool_changes"`
	}
	if err := json.Unmarshal(body, &d); err != nil || len(d.Pending) != 1 || d.Pending[0].Name != warrantyTool {
		t.Errorf("pending changes of the tools the caller may use should stay: %v %s", err, body)
	}
	// The relay answers a call of the held, denied tool with the held
	// message rather than access denied: an existence oracle.
	_, body = env.do(t, http.MethodPost, "/customer-support-assistant/mcp",
		[]byte(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"`+profileTool+`","arguments":{}}}`), base)
	if strings.Contains(string(body), "awaits approval") || !strings.Contains(string(body), "access denied") {
		t.Errorf("a call of a held tool the caller may not call: %s, want access denied", body)
	}
	_, body = env.do(t, http.MethodPost, "/customer-support-assistant/mcp",
		[]byte(`{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"`+warrantyTool+`","arguments":{}}}`), base)
	if !strings.Contains(string(body), "awaits approval") {
		t.Errorf("a call of a held tool the caller may call: %s, want the held answer", body)
	}
}

// An upstream (or the CDN / reverse proxy in front of it) that compresses
// answers when the client accepts gzip: the caller asks for gzip, the
// gateway forwards Accept-Encoding, the tools/list filter cannot read the
// compressed body and passes it whole.
func TestToolsListFilterNotBypassedByCompression(t *testing.T) {
	var always atomic.Bool // compress whatever the request asked for
	env, base, _ := supportSession(t, func(upstream string) string {
		target, _ := url.Parse(upstream)
		rp := httputil.NewSingleHostReverseProxy(target)
		gz := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !always.Load() && !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				rp.ServeHTTP(w, r)
				return
			}
			r.Header.Del("Accept-Encoding")
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.Header().Del("Content-Length")
			w.Header().Set("Content-Encoding", "gzip")
			w.WriteHeader(rec.Code)
			zw := gzip.NewWriter(w)
			_, _ = zw.Write(rec.Body.Bytes())
			_ = zw.Close()
		}))
		t.Cleanup(gz.Close)
		return gz.URL
	})
	const path = "/customer-support-assistant/mcp"
	// Go's http.Client adds Accept-Encoding: gzip by itself (and decodes
	// the answer transparently): an ordinary Go MCP client gets every tool.
	_, body := env.do(t, http.MethodPost, path, []byte(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`), base)
	if strings.Contains(string(body), profileTool) {
		t.Errorf("tools/list by a default Go client leaked the denied tool: %.200s", body)
	}
	// With gzip (http.DefaultClient decompresses transparently only when
	// it added the header itself, so decode by hand).
	base["Accept-Encoding"] = "gzip"
	resp, body := env.do(t, http.MethodPost, path, []byte(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`), base)
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err == nil {
			body, _ = io.ReadAll(zr)
		}
	}
	if strings.Contains(string(body), profileTool) || !strings.Contains(string(body), warrantyTool) {
		t.Errorf("tools/list with Accept-Encoding: gzip should hold %s and not %s: %s", warrantyTool, profileTool, body)
	}
	// An upstream that compresses unasked: the answer cannot be filtered,
	// so it is refused.
	always.Store(true)
	resp, body = env.do(t, http.MethodPost, path, []byte(`{"jsonrpc":"2.0","id":4,"method":"tools/list"}`), base)
	if resp.StatusCode != http.StatusBadGateway || bytes.Contains(body, []byte(profileTool)) || !bytes.Contains(body, []byte("compressed")) {
		t.Errorf("a compressed answer nobody asked for: %d %s, want 502", resp.StatusCode, body)
	}
}

// A verified caller whose scopes do not name a server learns that it
// exists: the relay answers 403 for a registered server and 404 for an
// unregistered path (the meta tools and REST report both as not found).
func TestRelayHidesServersCallerMayNotSee(t *testing.T) {
	env, base, _ := supportSession(t, nil)
	env.register(t, map[string]any{"server_name": "hidden-billing", "path": "/hidden-billing", "proxy_pass_url": "http://127.0.0.1:1/mcp"})
	r1, b1 := env.do(t, http.MethodPost, "/hidden-billing/mcp", []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`), base)
	r2, b2 := env.do(t, http.MethodPost, "/no-such-server/mcp", []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`), base)
	r3, _ := env.do(t, http.MethodGet, "/api/v1/servers/hidden-billing", nil, map[string]string{"X-Authorization": base["X-Authorization"]})
	hidden := strings.ReplaceAll(string(b1), "hidden-billing", "X")
	absent := strings.ReplaceAll(string(b2), "no-such-server", "X")
	if r1.StatusCode != http.StatusNotFound || r2.StatusCode != http.StatusNotFound || r3.StatusCode != http.StatusNotFound || errorOf(hidden) != errorOf(absent) {
		t.Errorf("the relay tells a hidden server (%d %s) from an absent one (%d %s); REST %d", r1.StatusCode, b1, r2.StatusCode, b2, r3.StatusCode)
	}
}

// The caller's Mcp-Session-Id never reaches the upstream as it came: one
// value is unsealed, an empty one is dropped, several are refused (with an
// empty first value, the relay once sent them all on, the later raw one
// unsealed).
func TestRelayRefusesSeveralSessionIDs(t *testing.T) {
	env := newEnv(t, Options{})
	var mu sync.Mutex
	var seen [][]string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Values("Mcp-Session-Id"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	}))
	defer up.Close()
	env.register(t, map[string]any{"server_name": "s", "path": "/s", "proxy_pass_url": up.URL + "/mcp"})
	for _, tc := range []struct {
		name   string
		sids   []string
		status int
		want   []string // what the upstream saw; nil: not reached
	}{
		{"several values", []string{"", "raw-upstream-session-of-someone-else"}, http.StatusBadRequest, nil},
		{"several sealed", []string{env.gw.sealer.Seal("s\x00anonymous", "a"), env.gw.sealer.Seal("s\x00anonymous", "b")}, http.StatusBadRequest, nil},
		{"one empty value", []string{""}, http.StatusOK, []string{}},
		{"one sealed value", []string{env.gw.sealer.Seal("s\x00anonymous", "up-1")}, http.StatusOK, []string{"up-1"}},
		{"one raw value", []string{"raw-upstream-session-of-someone-else"}, http.StatusNotFound, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			seen = nil
			mu.Unlock()
			req, _ := http.NewRequest(http.MethodPost, env.srv.URL+"/s/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header["Mcp-Session-Id"] = tc.sids
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d %s, want %d", resp.StatusCode, b, tc.status)
			}
			switch {
			case tc.want == nil && len(seen) != 0:
				t.Errorf("the upstream was reached with Mcp-Session-Id %q", seen)
			case tc.want != nil && (len(seen) != 1 || !slices.Equal(seen[0], tc.want) && len(seen[0])+len(tc.want) > 0):
				t.Errorf("the upstream saw Mcp-Session-Id %q, want %q", seen, tc.want)
			}
		})
	}
}

// errorOf is the error sentence of a JSON error body.
func errorOf(body string) string {
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	return e.Error
}

// TestToolsListFilterRefusesWhatItCannotHold checks that an answer larger
// than the filter reads is refused before anything is sent, not passed on
// unfiltered nor cut short after a 200.
func TestToolsListFilterRefusesWhatItCannotHold(t *testing.T) {
	env, base, _ := supportSession(t, func(upstream string) string {
		target, _ := url.Parse(upstream)
		rp := httputil.NewSingleHostReverseProxy(target)
		big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if !bytes.Contains(body, []byte(`"tools/list"`)) || !bytes.Contains(body, []byte(`"id":99`)) {
				r.Body = io.NopCloser(bytes.NewReader(body))
				rp.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":99,"result":{"tools":[{"name":"`+profileTool+`","description":"`)
			_, _ = w.Write(bytes.Repeat([]byte("x"), maxFilteredBody))
			_, _ = io.WriteString(w, `"}]}}`)
		}))
		t.Cleanup(big.Close)
		return big.URL
	})
	resp, body := env.do(t, http.MethodPost, "/customer-support-assistant/mcp", []byte(`{"jsonrpc":"2.0","id":99,"method":"tools/list"}`), base)
	if resp.StatusCode != http.StatusBadGateway || bytes.Contains(body, []byte(profileTool)) || !bytes.Contains(body, []byte("MiB")) {
		t.Errorf("an answer too large to filter: %d %.300s, want 502", resp.StatusCode, body)
	}
}

// TestInvokeToolDoesNotFollowRedirects: a registered upstream (compromised,
// or with an open redirect) must not send the gateway, with the server's
// configured secret headers, to another origin (an internal address, say).
func TestInvokeToolDoesNotFollowRedirects(t *testing.T) {
	t.Setenv("AUDIT2_UPSTREAM_SECRET", "s3cr3t-for-the-registered-upstream-only")
	e := newEnv(t, Options{})
	other := upstreamtest.New(t, upstreamtest.Options{}) // "another origin"
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL, http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	e.register(t, map[string]any{"server_name": "redir", "path": "/redir", "proxy_pass_url": redirector.URL + "/mcp",
		"headers": []map[string]string{{"X-Api-Key": "$AUDIT2_UPSTREAM_SECRET"}}})
	c := connect(t, e.srv.URL+"/mcpgw/mcp", nil, "2025-06-18") // anonymous, local mode
	if res, err := invoke(t, c, "/redir", "echo", map[string]any{"message": "hi"}); err == nil && !res.IsError {
		t.Errorf("invoke_tool through a redirect succeeded: %+v", res)
	}
	for _, h := range other.Headers() {
		if h.Get("X-Api-Key") == "s3cr3t-for-the-registered-upstream-only" {
			t.Fatalf("the configured secret header followed the upstream's redirect to %s", other.URL)
		}
	}
	if len(other.Headers()) > 0 {
		t.Fatalf("invoke_tool followed the redirect to another origin (%d requests)", len(other.Headers()))
	}
}

// TestRelayDoesNotPassRedirectsOn: Go MCP clients (mcp-go, `mcpgw call`)
// follow a redirect and re-send custom headers, X-Authorization (the
// caller's gateway token) among them, to the host the upstream chose. SPEC
// 5: "The caller's ingress token is never forwarded."
func TestRelayDoesNotPassRedirectsOn(t *testing.T) {
	e := newEnv(t, Options{})
	thief := upstreamtest.New(t, upstreamtest.Options{})
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, thief.URL, http.StatusTemporaryRedirect)
	}))
	defer evil.Close()
	e.register(t, map[string]any{"server_name": "evil", "path": "/evil", "proxy_pass_url": evil.URL + "/mcp"})
	if err := tryConnect(e.srv.URL+"/evil/mcp", map[string]string{"X-Authorization": "Bearer " + e.admin}); err == nil {
		t.Error("a session through a redirecting upstream was opened")
	}
	resp, body := e.do(t, http.MethodPost, "/evil/mcp", []byte(initializeBody), map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("Location") != "" || !strings.Contains(string(body), "redirect") {
		t.Errorf("relayed redirect: %d Location %q %s, want 502", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	for _, h := range thief.Headers() {
		if h.Get("X-Authorization") == "Bearer "+e.admin {
			t.Fatalf("the caller's gateway admin token reached %s through a relayed redirect", thief.URL)
		}
	}
}

func tryConnect(url string, headers map[string]string) error {
	tr, err := transport.NewStreamableHTTP(url, transport.WithHTTPHeaders(headers))
	if err != nil {
		return err
	}
	c := client.NewClient(tr)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		return err
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "t", Version: "1"}
	_, err = c.Initialize(ctx, init)
	return err
}

// TestRelayKeepsTheRegisteredQuery: the relay appends the caller's query to
// proxy_pass_url's own; a caller repeating a parameter the admin set
// (tenant, region, key) would win with upstreams that read the last value
// (Express, PHP and others). Such a request is refused; other parameters
// pass.
func TestRelayKeepsTheRegisteredQuery(t *testing.T) {
	e := newEnv(t, Options{})
	var mu sync.Mutex
	var seen string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r.URL.RawQuery
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	}))
	defer up.Close()
	e.register(t, map[string]any{"server_name": "tenant", "path": "/tenant", "proxy_pass_url": up.URL + "/mcp?tenant=acme"})
	for _, tc := range []struct {
		query, want string
		status      int
	}{
		{"?tenant=victim-corp", "", http.StatusBadRequest},
		{"?TENANT=victim-corp", "", http.StatusBadRequest},
		{"?x=1;tenant=victim-corp", "", http.StatusBadRequest},
		{"?t%65nant=victim-corp", "", http.StatusBadRequest},
		{"?debug=1", "tenant=acme&debug=1", http.StatusOK},
		{"", "tenant=acme", http.StatusOK},
	} {
		mu.Lock()
		seen = ""
		mu.Unlock()
		resp, body := e.do(t, http.MethodPost, "/tenant/mcp"+tc.query, []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`),
			map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
		mu.Lock()
		got := seen
		mu.Unlock()
		if resp.StatusCode != tc.status || got != tc.want {
			t.Errorf("query %q: %d %s, upstream saw %q; want %d and %q", tc.query, resp.StatusCode, body, got, tc.status, tc.want)
		}
	}
}

// TestRelayPathsHideServersWhateverTheMethod: a verified caller who may
// not see a server gets, on every relay path and method, the answer an
// unregistered path gets (405, or a transport hint, told it exists).
func TestRelayPathsHideServersWhateverTheMethod(t *testing.T) {
	env, base, _ := supportSession(t, nil)
	env.register(t, map[string]any{"server_name": "hidden-billing", "path": "/hidden-billing", "proxy_pass_url": "http://127.0.0.1:1/mcp"})
	caller := map[string]string{"X-Authorization": base["X-Authorization"]}
	for _, c := range []struct{ method, suffix string }{
		{http.MethodPut, "/mcp"}, {http.MethodPatch, "/mcp"}, {http.MethodGet, "/sse"}, {http.MethodGet, "/messages"}, {http.MethodPost, "/messages"},
	} {
		r1, b1 := env.do(t, c.method, "/hidden-billing"+c.suffix, nil, caller)
		r2, b2 := env.do(t, c.method, "/no-such-server"+c.suffix, nil, caller)
		e1 := errorOf(strings.ReplaceAll(string(b1), "hidden-billing", "X"))
		e2 := errorOf(strings.ReplaceAll(string(b2), "no-such-server", "X"))
		if r1.StatusCode != r2.StatusCode || e1 != e2 {
			t.Errorf("%s %s: a hidden server answers %d %q, an unregistered path %d %q", c.method, c.suffix, r1.StatusCode, e1, r2.StatusCode, e2)
		}
	}
	// The caller's own server still gets the helpful answers.
	if r, b := env.do(t, http.MethodPut, "/customer-support-assistant/mcp", nil, caller); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT on a visible server: %d %s, want 405", r.StatusCode, b)
	}
}

// TestSessionIDsAreBoundToTheCaller: a sealed session id is of use to the
// caller it was issued to only; another caller, even one who may use the
// same server, gets "session not found" instead of riding an upstream
// session set up with someone else's credentials.
func TestSessionIDsAreBoundToTheCaller(t *testing.T) {
	env, base, iss := supportSession(t, nil)
	const path = "/customer-support-assistant/mcp"
	list := []byte(`{"jsonrpc":"2.0","id":5,"method":"tools/list"}`)
	if resp, body := env.do(t, http.MethodPost, path, list, base); resp.StatusCode != http.StatusOK {
		t.Fatalf("the session's own caller: %d %s", resp.StatusCode, body)
	}
	other := maps.Clone(base)
	other["X-Authorization"] = "Bearer " + iss.Sign(t, iss.Claims("sue", "mcpgw", "support-team"))
	if resp, body := env.do(t, http.MethodPost, path, list, other); resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "session not found") {
		t.Errorf("another caller with the session id: %d %s, want 404 session not found", resp.StatusCode, body)
	}
}

// TestMetaSessionIDsAreBoundToTheCaller: an id the meta server issued is
// valid for its caller only, as the relay's are; another caller holding it
// gets 404 instead of that session's notifications.
func TestMetaSessionIDsAreBoundToTheCaller(t *testing.T) {
	e := newEnv(t, Options{})
	hdr := map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream", "Authorization": "Bearer " + e.admin}
	resp, body := e.do(t, http.MethodPost, "/mcpgw/mcp", []byte(initializeBody), hdr)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		t.Fatalf("initialize: %d %s (session %q)", resp.StatusCode, body, sid)
	}
	hdr["Mcp-Session-Id"] = sid
	hdr["MCP-Protocol-Version"] = "2025-06-18"
	ping := []byte(`{"jsonrpc":"2.0","id":2,"method":"ping"}`)
	if resp, body := e.do(t, http.MethodPost, "/mcpgw/mcp", ping, hdr); resp.StatusCode != http.StatusOK {
		t.Fatalf("ping by the session's caller: %d %s", resp.StatusCode, body)
	}
	anon := maps.Clone(hdr)
	delete(anon, "Authorization") // local mode: anyone may use the meta server
	if resp, body := e.do(t, http.MethodPost, "/mcpgw/mcp", ping, anon); resp.StatusCode != http.StatusNotFound {
		t.Errorf("ping by another caller with the session id: %d %s, want 404", resp.StatusCode, body)
	}
}

// TestInvokeToolNeverForwardsTheGatewayToken: with an X-Authorization that
// holds no bearer token, the meta server takes Authorization as the
// gateway token, so invoke_tool must not pass it to a passthrough upstream
// as the caller's upstream token.
func TestInvokeToolNeverForwardsTheGatewayToken(t *testing.T) {
	for _, xa := range []string{"Bearer", "Basic Zm9vOmJhcg==", "none"} {
		t.Run(xa, func(t *testing.T) {
			e := newEnv(t, Options{})
			ac := upstreamtest.NewAgentCore(t, "")
			e.register(t, map[string]any{"server_name": "customer-support-assistant", "path": "/customer-support-assistant",
				"proxy_pass_url": ac.Base + "/mcp/", "auth_provider": "bedrock-agentcore",
				"tool_list": []map[string]any{{"name": warrantyToolName}}})
			c := connect(t, e.srv.URL+"/mcpgw/mcp", map[string]string{"X-Authorization": xa, "Authorization": "Bearer " + e.admin}, "2025-06-18")
			_, _ = invoke(t, c, "/customer-support-assistant", warrantyToolName, map[string]any{"serial_number": "X"})
			if len(ac.Headers()) == 0 {
				t.Fatal("the upstream was not reached: the test checks nothing")
			}
			for _, h := range ac.Headers() {
				if strings.Contains(h.Get("Authorization"), e.admin) {
					t.Fatalf("the caller's gateway token reached the passthrough upstream: %q", h.Get("Authorization"))
				}
			}
		})
	}
}
