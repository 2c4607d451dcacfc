package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/auth/authtest"
	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

const (
	warrantyTool = "LambdaUsingSDK___check_warranty_status"
	profileTool  = "LambdaUsingSDK___get_customer_profile"
	csPath       = "/customer-support-assistant/"
	gwAudience   = "http://127.0.0.1/mcpgw"
)

// seedPolicy is SPEC section 5's policy: the support team may use only the
// warranty tool of the customer-support server; mcp-admins everything.
const seedPolicy = `
group_mappings:
  support-team: [customer-support-read]
  mcp-admins: [admin]
scopes:
  customer-support-read:
    - server: customer-support-assistant
      methods: [initialize, notifications/initialized, ping, tools/list, tools/call]
      tools: [LambdaUsingSDK___check_warranty_status]
  admin:
    - server: "*"
      methods: ["*"]
      tools: ["*"]
      admin: true
`

// seedTools is the tool_list of the customer-support registration.
var seedTools = []map[string]any{
	{"name": warrantyTool, "parsed_description": map[string]any{"main": "Check the warranty status"}},
	{"name": profileTool, "parsed_description": map[string]any{"main": "Retrieve customer profile"}},
}

// TestIngressWithRealProvider runs the seed guide's flows against a real
// OpenID Connect provider: client-credentials tokens with groups, the
// two-token flow to a passthrough AgentCore upstream, fine-grained access
// for a support group, 401/403 on every surface, and spoofing attempts.
func TestIngressWithRealProvider(t *testing.T) {
	support := authtest.Client{ID: "support-agent", Secret: "support-secret", Groups: []string{"support-team"}}
	admin := authtest.Client{ID: "admin-agent", Secret: "admin-secret", Groups: []string{"mcp-admins"}}
	sales := authtest.Client{ID: "sales-agent", Secret: "sales-secret", Groups: []string{"sales"}}
	bare := authtest.Client{ID: "bare-agent", Secret: "bare-secret"}
	prov := authtest.StartProvider(t, authtest.ProviderOptions{
		Clients:   []authtest.Client{support, admin, sales, bare},
		Resources: []string{gwAudience, "http://127.0.0.1/not-the-gateway"},
		Scopes:    []string{"mcp:tools"},
	})
	other := authtest.NewIssuer(t) // issuer B: a second, hand-driven provider
	env := newAuthEnv(t, []auth.IssuerConfig{
		{Issuer: prov.Issuer, Audiences: []string{gwAudience}},
		{Issuer: other.URL, Audiences: []string{"mcpgw-b"}},
	}, seedPolicy)
	withFinder(t, env.testEnv)

	ac := upstreamtest.NewAgentCore(t, "")
	env.register(t, map[string]any{
		"server_name": "customer-support-assistant", "path": "/customer-support-assistant",
		"proxy_pass_url": ac.Base + "/mcp/", "auth_provider": "bedrock-agentcore", "tool_list": seedTools,
	})
	weather := upstreamtest.New(t, upstreamtest.Options{Name: "weather"})
	env.register(t, map[string]any{"server_name": "weather", "path": "/weather", "proxy_pass_url": weather.URL})

	supportTok := prov.Token(t, support, gwAudience)
	adminTok := prov.Token(t, admin, gwAudience)
	upstreamAuth := "Bearer " + upstreamtest.AgentCoreToken
	csMCP := env.srv.URL + "/customer-support-assistant/mcp"

	t.Run("two-token flow: ingress in X-Authorization, upstream token passed untouched", func(t *testing.T) {
		c := connect(t, csMCP, map[string]string{"X-Authorization": "Bearer " + supportTok, "Authorization": upstreamAuth}, "2025-06-18")
		res, err := callTool(c, warrantyTool, map[string]any{"serial_number": "MNO33333333"})
		if err != nil || res.IsError {
			t.Fatalf("warranty call: %v %+v", err, res)
		}
		if !strings.Contains(resultText(t, res), "MNO33333333") {
			t.Fatalf("warranty result: %s", resultText(t, res))
		}
		if got := ac.LastHeader("Authorization"); got != upstreamAuth {
			t.Fatalf("upstream saw Authorization %q, want the caller's upstream token", got)
		}
		if got := ac.LastHeader("X-Authorization"); got != "" {
			t.Fatalf("the ingress token reached the upstream: %q", got)
		}
	})

	t.Run("support sees and calls only the warranty tool", func(t *testing.T) {
		c := connect(t, csMCP, map[string]string{"X-Authorization": "Bearer " + supportTok, "Authorization": upstreamAuth}, "2025-06-18")
		if got := toolNames(t, c); !slices.Equal(got, []string{warrantyTool}) {
			t.Fatalf("tools/list through the relay = %q, want only %s", got, warrantyTool)
		}
		before := len(ac.Headers())
		res, err := callTool(c, profileTool, map[string]any{"customer_id": "CUST001"})
		if err == nil {
			t.Fatalf("profile call was not refused: %+v", res)
		}
		if !strings.Contains(err.Error(), profileTool) {
			t.Fatalf("refusal does not name the tool: %v", err)
		}
		if n := len(ac.Headers()); n != before {
			t.Fatalf("the refused call reached the upstream (%d requests, want %d)", n, before)
		}

		m := env.metaClient(t, bearer(supportTok))
		if got := listedPaths(t, m); len(got) != 1 || got[csPath] != 1 {
			t.Fatalf("list_services for support = %v, want only %s with 1 tool", got, csPath)
		}
		_, d := callMeta(t, m, "get_server_details", map[string]any{"service_path": csPath})
		tools, _ := d["tool_list"].([]any)
		if len(tools) != 1 || tools[0].(map[string]any)["name"] != warrantyTool {
			t.Fatalf("get_server_details tool_list = %v", d["tool_list"])
		}
		if res, out := callMeta(t, m, "get_server_details", map[string]any{"service_path": "/weather"}); !res.IsError {
			t.Fatalf("support sees the weather server: %v", out)
		}
		if got := toolNames(t, m); slices.Contains(got, "register_service") {
			t.Fatalf("support sees admin tools: %q", got)
		}
		found := findMCP(t, env.testEnv, bearer(supportTok), map[string]any{"natural_language_query": "customer profile warranty status echo weather", "top_n": 50})
		if got := names(found); !slices.Equal(got, []string{csPath + " " + warrantyTool}) {
			t.Fatalf("finder for support = %q, want only the warranty tool", got)
		}
		before = len(ac.Headers())
		res, out := callMeta(t, m, "invoke_tool", map[string]any{"service_path": csPath, "tool_name": profileTool, "arguments": map[string]any{"customer_id": "CUST001"}})
		if !res.IsError || !strings.Contains(fmt.Sprint(out), profileTool) {
			t.Fatalf("invoke_tool of the profile tool for support: %v", out)
		}
		if n := len(ac.Headers()); n != before {
			t.Fatal("a refused invoke_tool reached the upstream")
		}
		_, body := env.do(t, http.MethodGet, "/api/v1/servers", nil, bearer(supportTok))
		var l serviceList
		if err := json.Unmarshal(body, &l); err != nil || len(l.Services) != 1 || l.Services[0].Path != csPath {
			t.Fatalf("REST list for support = %s", body)
		}
		resp, _ := env.rpc(t, "/weather/mcp", bearer(supportTok), initializeMsg)
		if resp.StatusCode != http.StatusNotFound { // as if /weather did not exist
			t.Fatalf("support relaying to /weather = %d, want 404", resp.StatusCode)
		}
		if strings.Contains(env.log.String(), supportTok) {
			t.Fatal("a token was logged")
		}
		if !strings.Contains(env.log.String(), `"decision":"deny"`) || !strings.Contains(env.log.String(), `"tool":"`+profileTool+`"`) {
			t.Fatalf("no audit event for the refused call:\n%s", env.log.String())
		}
	})

	t.Run("admin sees and calls everything", func(t *testing.T) {
		c := connect(t, csMCP, map[string]string{"X-Authorization": "Bearer " + adminTok, "Authorization": upstreamAuth}, "2025-06-18")
		if got := toolNames(t, c); !slices.Contains(got, profileTool) || !slices.Contains(got, warrantyTool) || !slices.Contains(got, "echo") {
			t.Fatalf("admin tools/list = %q, want every tool of the upstream", got)
		}
		res, err := callTool(c, profileTool, map[string]any{"customer_id": "CUST001"})
		if err != nil || res.IsError || !strings.Contains(resultText(t, res), "John Smith") {
			t.Fatalf("admin profile call: %v %+v", err, res)
		}
		m := env.metaClient(t, bearer(adminTok))
		if got := listedPaths(t, m); len(got) != 2 || got[csPath] != 2 {
			t.Fatalf("list_services for admin = %v", got)
		}
		if got := toolNames(t, m); !slices.Contains(got, "register_service") {
			t.Fatalf("admin does not see admin tools: %q", got)
		}
		found := findMCP(t, env.testEnv, bearer(adminTok), map[string]any{"natural_language_query": "customer profile", "top_n": 50})
		if got := names(found); !slices.Contains(got, csPath+" "+profileTool) {
			t.Fatalf("finder for admin = %q, want the profile tool too", got)
		}
		w := connect(t, env.srv.URL+"/weather/mcp", bearer(adminTok), "2025-06-18")
		if got := callEcho(t, w, "hi"); got != "Echo: hi" {
			t.Fatalf("admin echo = %q", got)
		}
	})

	t.Run("no matching group: 403 on every path", func(t *testing.T) {
		for _, c := range []authtest.Client{sales, bare} {
			tok := prov.Token(t, c, gwAudience)
			for _, tc := range []struct{ method, path, body string }{
				{http.MethodPost, "/mcpgw/mcp", initializeMsg},
				{http.MethodPost, "/customer-support-assistant/mcp", initializeMsg},
				{http.MethodGet, "/customer-support-assistant/mcp", ""},
				{http.MethodPost, "/weather/mcp", initializeMsg},
				{http.MethodGet, "/api/v1/servers", ""},
				{http.MethodGet, "/api/v1/servers/weather", ""},
				{http.MethodGet, "/api/v1/health", ""},
				{http.MethodGet, "/api/v1/policy", ""},
			} {
				var body []byte
				if tc.body != "" {
					body = []byte(tc.body)
				}
				resp, out := env.do(t, tc.method, tc.path, body, bearer(tok, "Authorization", upstreamAuth))
				if resp.StatusCode != http.StatusForbidden {
					t.Errorf("%s %s %s = %d, want 403: %s", c.ID, tc.method, tc.path, resp.StatusCode, out)
				}
			}
		}
	})

	t.Run("missing or bad token: 401 with resource metadata", func(t *testing.T) {
		expired := other.Claims("carol", "mcpgw-b", "support-team")
		expired["exp"] = 1
		forgedA := other.Claims("mallory", gwAudience, "mcp-admins")
		forgedA["iss"] = prov.Issuer // B's key, A's name
		for _, tc := range []struct {
			name    string
			headers map[string]string
		}{
			{"no token (Authorization is the upstream's on a passthrough server)", map[string]string{"Authorization": upstreamAuth}},
			{"token for another audience", bearer(prov.Token(t, support, "http://127.0.0.1/not-the-gateway"))},
			{"opaque token", bearer(prov.Token(t, support, ""))},
			{"garbage", bearer("not-a-token")},
			{"expired token of issuer B", bearer(other.Sign(t, expired))},
			{"token signed by B claiming issuer A", bearer(other.Sign(t, forgedA))},
			{"unknown key of issuer B", bearer(other.SignUnpublished(t, other.Claims("mallory", "mcpgw-b", "mcp-admins")))},
			{"alg none", bearer(authtest.Unsigned(other.Claims("mallory", "mcpgw-b", "mcp-admins"), other.CurrentKID()))},
			{"HS256 keyed with B's public key", bearer(authtest.SignHS256(t, other.PublicKeyPEM(t), other.CurrentKID(), other.Claims("mallory", "mcpgw-b", "mcp-admins")))},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := len(ac.Headers())
				resp, _ := env.rpc(t, "/customer-support-assistant/mcp", tc.headers, initializeMsg)
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401", resp.StatusCode)
				}
				want := `resource_metadata="` + env.srv.URL + `/.well-known/oauth-protected-resource/customer-support-assistant/mcp"`
				if ch := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, want) {
					t.Fatalf("WWW-Authenticate = %q, want it to contain %s", ch, want)
				}
				if len(ac.Headers()) != before {
					t.Fatal("an unauthenticated request reached the upstream")
				}
			})
		}
		resp, _ := env.rpc(t, "/mcpgw/mcp", nil, initializeMsg)
		if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(ch, "/.well-known/oauth-protected-resource/mcpgw/mcp") {
			t.Fatalf("anonymous meta: %d %q", resp.StatusCode, ch)
		}
		resp, _ = env.do(t, http.MethodGet, "/api/v1/servers", nil, nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("anonymous REST list: %d", resp.StatusCode)
		}

		for _, tc := range []struct{ path, resource string }{
			{"/.well-known/oauth-protected-resource/customer-support-assistant/mcp", env.srv.URL + "/customer-support-assistant/mcp"},
			{"/.well-known/oauth-protected-resource/mcpgw/mcp", env.srv.URL + "/mcpgw/mcp"},
			{"/.well-known/oauth-protected-resource", env.srv.URL},
		} {
			resp, body := env.do(t, http.MethodGet, tc.path, nil, nil)
			var md struct {
				Resource             string   `json:"resource"`
				AuthorizationServers []string `json:"authorization_servers"`
			}
			if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &md) != nil {
				t.Fatalf("GET %s: %d %s", tc.path, resp.StatusCode, body)
			}
			if md.Resource != tc.resource || !slices.Equal(md.AuthorizationServers, []string{prov.Issuer, other.URL}) {
				t.Fatalf("metadata at %s = %s", tc.path, body)
			}
			// Built from the request's Host (no --public-url): no shared
			// cache may keep it for the next caller.
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("metadata at %s: Cache-Control %q, want no-store", tc.path, cc)
			}
		}
		if resp, _ := env.do(t, http.MethodGet, "/.well-known/oauth-protected-resource/nothing-here/mcp", nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("metadata for an unknown path: %d", resp.StatusCode)
		}
	})

	t.Run("issuer B's tokens work with B's audience and groups", func(t *testing.T) {
		tok := other.Sign(t, other.Claims("carol", "mcpgw-b", "support-team"))
		c := connect(t, csMCP, map[string]string{"X-Authorization": "Bearer " + tok, "Authorization": upstreamAuth}, "2025-06-18")
		if got := toolNames(t, c); !slices.Equal(got, []string{warrantyTool}) {
			t.Fatalf("tools/list for B's support user = %q", got)
		}
		// A's audience on B's token: refused.
		resp, _ := env.rpc(t, "/customer-support-assistant/mcp", bearer(other.Sign(t, other.Claims("carol", gwAudience, "support-team"))), initializeMsg)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("B's token with A's audience: %d", resp.StatusCode)
		}
	})

	t.Run("client headers cannot claim identity or groups", func(t *testing.T) {
		spoof := []string{"X-User", "admin-agent", "X-Groups", "mcp-admins", "X-Scopes", "admin", "X-Forwarded-User", "admin", "Authorization", upstreamAuth}
		c := connect(t, csMCP, bearer(supportTok, spoof...), "2025-06-18")
		if got := toolNames(t, c); !slices.Equal(got, []string{warrantyTool}) {
			t.Fatalf("spoofed headers widened tools/list: %q", got)
		}
		if _, err := callTool(c, profileTool, map[string]any{"customer_id": "CUST001"}); err == nil {
			t.Fatal("spoofed headers allowed the profile tool")
		}
		anon := map[string]string{"X-User": "admin-agent", "X-Groups": "mcp-admins", "X-Scopes": "admin", "Content-Type": "application/json"}
		for _, p := range []string{"/api/v1/servers", "/api/v1/policy"} {
			if resp, _ := env.do(t, http.MethodGet, p, nil, anon); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("anonymous with spoofed headers GET %s = %d, want 401", p, resp.StatusCode)
			}
		}
	})

	t.Run("path tricks cannot reach a server the caller may not use", func(t *testing.T) {
		before := len(weather.Headers())
		for _, p := range []string{
			"/customer-support-assistant/../weather/mcp",
			"/customer-support-assistant/mcp/../../weather/mcp",
			"/customer-support-assistant%2F..%2Fweather/mcp",
			"/weather%2Fmcp",
			"/customer-support-assistant%2fweather/mcp",
			"/WEATHER/mcp",
			"/Weather/mcp",
			"/weather./mcp",
			"/weather../mcp",
			"/./weather/mcp",
			"//weather/mcp",
			"/weather/mcp",
			"/weather/",
			"/weather/sse",
		} {
			req, err := http.NewRequest(http.MethodPost, env.srv.URL+p, strings.NewReader(initializeMsg))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range bearer(supportTok) {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode < 400 {
				t.Errorf("POST %s as support = %d", p, resp.StatusCode)
			}
		}
		if n := len(weather.Headers()); n != before {
			t.Fatalf("path tricks reached the weather upstream %d times", n-before)
		}
	})
}
