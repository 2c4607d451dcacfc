package gateway

import (
	"net/http"
	"testing"

	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

// TestRelayHeaderHygiene proves with recording upstreams what reaches an
// upstream (SPEC section 5): never the gateway's ingress token, configured
// headers expanded when sent, passthrough credentials byte for byte.
func TestRelayHeaderHygiene(t *testing.T) {
	env := newEnv(t, Options{})
	ingress := "Bearer " + env.admin
	// Browser-context and gateway headers the caller sends along.
	browser := map[string]string{"Cookie": "mcpgw_session=secret", "Origin": env.srv.URL, "Referer": env.srv.URL + "/ui"}

	t.Run("non-passthrough server", func(t *testing.T) {
		t.Setenv("UPSTREAM_TEST_API_KEY", "key-one")
		t.Setenv("UPSTREAM_TEST_TENANT", "acme")
		up := upstreamtest.New(t, upstreamtest.Options{})
		env.register(t, map[string]any{
			"server_name": "plain", "path": "/plain", "proxy_pass_url": up.URL, "auth_type": "api-key",
			"headers": []map[string]string{{"X-Api-Key": "$UPSTREAM_TEST_API_KEY"}, {"X-Tenant": "t-${UPSTREAM_TEST_TENANT}-1"}},
		})
		hdr := map[string]string{"Authorization": ingress, "X-Authorization": ingress, "X-Caller-Trace": "abc"}
		for k, v := range browser {
			hdr[k] = v
		}
		c := connect(t, env.srv.URL+"/plain/mcp", hdr, "2025-06-18")
		callEcho(t, c, "one")
		seen := up.Headers()
		if len(seen) < 3 {
			t.Fatalf("upstream saw %d requests", len(seen))
		}
		for i, h := range seen {
			for _, k := range []string{"Authorization", "X-Authorization", "Cookie", "Origin", "Referer"} {
				if v := h.Values(k); len(v) > 0 {
					t.Fatalf("request %d: upstream received %s: %q", i, k, v)
				}
			}
			if got := h.Get("X-Api-Key"); got != "key-one" {
				t.Fatalf("request %d: X-Api-Key = %q, want the expanded $UPSTREAM_TEST_API_KEY", i, got)
			}
			if got := h.Get("X-Tenant"); got != "t-acme-1" {
				t.Fatalf("request %d: X-Tenant = %q, want the expanded ${UPSTREAM_TEST_TENANT}", i, got)
			}
			if got := h.Get("X-Caller-Trace"); got != "abc" {
				t.Fatalf("request %d: caller header X-Caller-Trace = %q", i, got)
			}
		}
		if got := up.LastHeader("Mcp-Protocol-Version"); got != "2025-06-18" {
			t.Fatalf("MCP-Protocol-Version = %q", got)
		}
		// Expanded when sent, not when registered: a new value applies to
		// the next request.
		t.Setenv("UPSTREAM_TEST_API_KEY", "key-two")
		callEcho(t, c, "two")
		if got := up.LastHeader("X-Api-Key"); got != "key-two" {
			t.Fatalf("after the variable changed, X-Api-Key = %q", got)
		}
	})

	t.Run("passthrough server", func(t *testing.T) {
		t.Setenv("UPSTREAM_TEST_HELD_TOKEN", "gateway-held")
		up := upstreamtest.New(t, upstreamtest.Options{})
		env.register(t, map[string]any{
			"server_name": "pass", "path": "/pass", "proxy_pass_url": up.URL, "auth_type": "passthrough",
			"headers": []map[string]string{{"Authorization": "Bearer $UPSTREAM_TEST_HELD_TOKEN"}, {"X-Region": "eu-1"}},
		})
		// Not a gateway token: the gateway must not judge it, only carry it.
		const callerAuth = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_==  odd\tspacing"
		hdr := map[string]string{"Authorization": callerAuth, "X-Authorization": ingress, "X-Region": "us-2"}
		for k, v := range browser {
			hdr[k] = v
		}
		c := connect(t, env.srv.URL+"/pass/mcp", hdr, "2025-06-18")
		callEcho(t, c, "one")
		if len(up.Headers()) < 3 {
			t.Fatalf("upstream saw %d requests", len(up.Headers()))
		}
		for i, h := range up.Headers() {
			if got := h.Values("Authorization"); len(got) != 1 || got[0] != callerAuth {
				t.Fatalf("request %d: Authorization = %q, want the caller's byte for byte", i, got)
			}
			if got := h.Get("X-Region"); got != "us-2" {
				t.Fatalf("request %d: X-Region = %q: a configured header overrode the caller's", i, got)
			}
			for _, k := range []string{"X-Authorization", "Cookie", "Origin", "Referer"} {
				if v := h.Values(k); len(v) > 0 {
					t.Fatalf("request %d: upstream received %s: %q", i, k, v)
				}
			}
		}

		// A caller without an upstream token is served by the gateway-held one.
		n := len(up.Headers())
		c2 := connect(t, env.srv.URL+"/pass/mcp", map[string]string{"X-Authorization": ingress}, "2025-06-18")
		callEcho(t, c2, "two")
		if len(up.Headers())-n < 3 {
			t.Fatalf("upstream saw %d requests from the second caller", len(up.Headers())-n)
		}
		for i, h := range up.Headers()[n:] {
			if got := h.Get("Authorization"); got != "Bearer gateway-held" {
				t.Fatalf("request %d: Authorization = %q, want the configured header filled in", i, got)
			}
			if got := h.Get("X-Region"); got != "eu-1" {
				t.Fatalf("request %d: X-Region = %q", i, got)
			}
		}
	})

	t.Run("upstream 401 passes back with its challenge", func(t *testing.T) {
		up := upstreamtest.NewAgentCore(t, "")
		env.register(t, map[string]any{"server_name": "ac", "path": "/ac", "proxy_pass_url": up.Base + "/mcp/", "auth_provider": "bedrock-agentcore"})
		resp, body := env.do(t, http.MethodPost, "/ac/mcp", []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`),
			map[string]string{"Authorization": "Bearer wrong", "X-Authorization": ingress, "Content-Type": "application/json"})
		if resp.StatusCode != http.StatusUnauthorized || string(body) != `{"message":"Unauthorized"}` {
			t.Fatalf("status %d body %s: want the upstream's own 401", resp.StatusCode, body)
		}
		if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token", error_description="upstream token missing or invalid"` {
			t.Fatalf("WWW-Authenticate = %q", got)
		}
		if got := up.LastHeader("Authorization"); got != "Bearer wrong" {
			t.Fatalf("upstream saw Authorization %q", got)
		}
	})
}
