package gateway

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/auth/authtest"
	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

// TestPolicyAPIAndHotReload edits the policy through /api/v1/policy and
// checks that each change is in force for the very next request.
func TestPolicyAPIAndHotReload(t *testing.T) {
	iss := authtest.NewIssuer(t)
	env := newAuthEnv(t, []auth.IssuerConfig{{Issuer: iss.URL, Audiences: []string{"mcpgw"}}}, "")
	ac := upstreamtest.NewAgentCore(t, "")
	env.register(t, map[string]any{
		"server_name": "customer-support-assistant", "path": "/customer-support-assistant",
		"proxy_pass_url": ac.Base + "/mcp/", "auth_provider": "bedrock-agentcore", "tool_list": seedTools,
	})
	support := iss.Sign(t, iss.Claims("sam", "mcpgw", "support-team"))
	csMCP := env.srv.URL + "/customer-support-assistant/mcp"
	upstreamHdr := map[string]string{"X-Authorization": "Bearer " + support, "Authorization": "Bearer " + upstreamtest.AgentCoreToken}
	admin := env.adminHeaders()

	// An issuer without a policy: deny by default, admin key still works.
	if resp, _ := env.rpc(t, "/customer-support-assistant/mcp", upstreamHdr, initializeMsg); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("support before any policy: %d, want 403", resp.StatusCode)
	}
	if resp, body := env.do(t, http.MethodGet, "/api/v1/policy", nil, admin); resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "local mode") {
		t.Fatalf("GET policy before any: %d %s", resp.StatusCode, body)
	}

	resp, body := env.do(t, http.MethodPut, "/api/v1/policy", []byte(seedPolicy+"\n  unused:\n    - server: weather\n      methods: [ping]\n"), admin)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT policy: %d %s", resp.StatusCode, body)
	}
	var put struct {
		Policy   auth.PolicyDoc `json:"policy"`
		Warnings []string       `json:"warnings"`
	}
	if err := json.Unmarshal(body, &put); err != nil {
		t.Fatal(err)
	}
	if len(put.Policy.Scopes) != 3 || len(put.Warnings) != 2 {
		t.Fatalf("PUT answer: %s", body)
	}
	c := connect(t, csMCP, upstreamHdr, "2025-06-18")
	if got := toolNames(t, c); !slices.Equal(got, []string{warrantyTool}) {
		t.Fatalf("after the first policy: %q", got)
	}

	wider := strings.Replace(seedPolicy, "tools: [LambdaUsingSDK___check_warranty_status]", `tools: ["*"]`, 1)
	if resp, body := env.do(t, http.MethodPut, "/api/v1/policy", []byte(wider), admin); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT wider policy: %d %s", resp.StatusCode, body)
	}
	if got := toolNames(t, c); !slices.Contains(got, profileTool) {
		t.Fatalf("the same session after widening the policy: %q", got)
	}

	before, _ := env.do(t, http.MethodGet, "/api/v1/policy", nil, admin)
	_, beforeBody := env.do(t, http.MethodGet, "/api/v1/policy", nil, admin)
	if before.StatusCode != http.StatusOK {
		t.Fatalf("GET policy: %d", before.StatusCode)
	}
	resp, body = env.do(t, http.MethodPut, "/api/v1/policy", []byte("scopes:\n  s:\n    - methods: [ping]\n      colour: blue\n"), admin)
	var apiErr struct {
		Error   string `json:"error"`
		Details []struct{ Field, Reason string }
	}
	if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(body, &apiErr) != nil || len(apiErr.Details) != 2 {
		t.Fatalf("invalid PUT: %d %s", resp.StatusCode, body)
	}
	if _, after := env.do(t, http.MethodGet, "/api/v1/policy", nil, admin); string(after) != string(beforeBody) {
		t.Fatalf("an invalid policy changed the stored one:\n%s\n%s", beforeBody, after)
	}
	if got := toolNames(t, c); !slices.Contains(got, profileTool) {
		t.Fatal("an invalid policy changed the policy in force")
	}

	if resp, _ := env.do(t, http.MethodPut, "/api/v1/policy", []byte(seedPolicy), bearer(support)); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("support editing the policy: %d, want 403", resp.StatusCode)
	}
	if resp, _ := env.do(t, http.MethodDelete, "/api/v1/policy", nil, admin); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("DELETE policy: %d", resp.StatusCode)
	}
}

// TestAPIKeysAPI creates, uses, lists and revokes gateway API keys.
func TestAPIKeysAPI(t *testing.T) {
	env := newAuthEnv(t, nil, seedPolicy)
	up := upstreamtest.New(t, upstreamtest.Options{})
	env.register(t, map[string]any{"server_name": "customer-support-assistant", "path": "/customer-support-assistant", "proxy_pass_url": up.URL})
	admin := env.adminHeaders()

	create := func(body string) (*http.Response, map[string]any) {
		t.Helper()
		resp, b := env.do(t, http.MethodPost, "/api/v1/apikeys", []byte(body), admin)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp, m
	}
	resp, k := create(`{"name":"support-bot","groups":["support-team","support-team"],"expires_in":"720h"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %v", resp.StatusCode, k)
	}
	secret, _ := k["key"].(string)
	if !strings.HasPrefix(secret, auth.APIKeyPrefix) || k["expires_at"] == nil || len(k["groups"].([]any)) != 1 {
		t.Fatalf("create answer: %v", k)
	}
	if env.log.String() != "" && strings.Contains(env.log.String(), secret) {
		t.Fatal("the new key was logged")
	}

	c := connect(t, env.srv.URL+"/customer-support-assistant/mcp", map[string]string{"Authorization": "Bearer " + secret}, "2025-06-18")
	if got := toolNames(t, c); len(got) != 0 {
		t.Fatalf("support-bot sees tools the policy does not grant on this server: %q", got)
	}

	resp, body := env.do(t, http.MethodGet, "/api/v1/apikeys", nil, admin)
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), secret) || strings.Contains(string(body), auth.HashKey(secret)) {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	var list struct {
		Keys []apiKeyView `json:"api_keys"`
	}
	if err := json.Unmarshal(body, &list); err != nil || len(list.Keys) != 2 || list.Keys[1].Name != "support-bot" || list.Keys[0].Name != auth.AdminKeyName {
		t.Fatalf("list: %s", body)
	}

	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"name":"support-bot"}`, http.StatusConflict},
		{`{"name":"bad name"}`, http.StatusBadRequest},
		{`{"name":"x","groups":[""]}`, http.StatusBadRequest},
		{`{"name":"x","expires_in":"-1h"}`, http.StatusBadRequest},
		{`{"name":"x","expires_at":"2001-01-01T00:00:00Z"}`, http.StatusBadRequest},
		{`{"name":"x","expires_in":"1h","expires_at":"2999-01-01T00:00:00Z"}`, http.StatusBadRequest},
		{`{"name":"x","scopes":["admin"]}`, http.StatusBadRequest},
		{`not json`, http.StatusBadRequest},
	} {
		if resp, m := create(tc.body); resp.StatusCode != tc.status {
			t.Errorf("create %s = %d %v, want %d", tc.body, resp.StatusCode, m, tc.status)
		}
	}
	if resp, _ := env.do(t, http.MethodPost, "/api/v1/apikeys", []byte(`{"name":"y"}`), map[string]string{"Authorization": "Bearer " + secret}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a non-admin key created a key: %d", resp.StatusCode)
	}

	resp, short := create(`{"name":"short-lived","groups":["mcp-admins"],"expires_in":"1s"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatal(short)
	}
	if resp, _ := env.do(t, http.MethodGet, "/api/v1/servers", nil, map[string]string{"Authorization": "Bearer " + short["key"].(string)}); resp.StatusCode != http.StatusOK {
		t.Fatalf("fresh short-lived key: %d", resp.StatusCode)
	}
	time.Sleep(2100 * time.Millisecond)
	if resp, _ := env.do(t, http.MethodGet, "/api/v1/servers", nil, map[string]string{"Authorization": "Bearer " + short["key"].(string)}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("expired key: %d, want 401", resp.StatusCode)
	}

	if resp, _ := env.do(t, http.MethodDelete, "/api/v1/apikeys/support-bot", nil, admin); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if resp, _ := env.do(t, http.MethodGet, "/api/v1/servers", nil, map[string]string{"Authorization": "Bearer " + secret}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoked key: %d, want 401", resp.StatusCode)
	}
	if resp, _ := env.do(t, http.MethodDelete, "/api/v1/apikeys/support-bot", nil, admin); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("revoke twice: %d", resp.StatusCode)
	}
	if resp, _ := env.do(t, http.MethodDelete, "/api/v1/apikeys/"+auth.AdminKeyName, nil, admin); resp.StatusCode != http.StatusConflict {
		t.Fatalf("revoke the local admin key: %d", resp.StatusCode)
	}
}

// TestLocalModeUnchanged: without a policy or issuer, anonymous callers use
// every server as before and there is no protected-resource metadata.
func TestLocalModeUnchanged(t *testing.T) {
	env := newAuthEnv(t, nil, "")
	up := upstreamtest.New(t, upstreamtest.Options{})
	env.register(t, map[string]any{"server_name": "echo", "path": "/echo", "proxy_pass_url": up.URL})
	c := connect(t, env.srv.URL+"/echo/mcp", nil, "2025-06-18")
	if got := callEcho(t, c, "hi"); got != "Echo: hi" {
		t.Fatalf("anonymous echo in local mode = %q", got)
	}
	if resp, _ := env.do(t, http.MethodGet, "/.well-known/oauth-protected-resource", nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("metadata without an issuer: %d", resp.StatusCode)
	}
	if resp, _ := env.do(t, http.MethodPost, "/api/v1/apikeys", []byte(`{"name":"x"}`), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous key creation in local mode: %d, want 401", resp.StatusCode)
	}
	resp, _ := env.do(t, http.MethodGet, "/api/v1/servers", nil, map[string]string{"Authorization": "Bearer mcpgw_not-a-key"})
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || strings.Contains(ch, "resource_metadata") || !strings.Contains(ch, `error="invalid_token"`) {
		t.Fatalf("bad key in local mode: %d %q", resp.StatusCode, ch)
	}
}

// TestKeyExpiryNeverEarly: expires_in is stored to the second, rounded up,
// so a key lives at least as long as asked even when created late in a
// second.
func TestKeyExpiryNeverEarly(t *testing.T) {
	for _, tc := range []struct {
		name string
		now  time.Time
		in   string
		want time.Time
	}{
		{"late in a second", time.Date(2026, 11, 26, 7, 0, 0, 999_000_000, time.UTC), "1s", time.Date(2026, 11, 26, 7, 0, 2, 0, time.UTC)},
		{"on a second", time.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC), "1s", time.Date(2026, 11, 26, 7, 0, 1, 0, time.UTC)},
		{"hours", time.Date(2026, 11, 26, 7, 0, 0, 1, time.UTC), "720h", time.Date(2026, 12, 26, 7, 0, 1, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := parseKeyRequest([]byte(`{"name":"k","expires_in":"`+tc.in+`"}`), tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if !k.ExpiresAt.Equal(tc.want) {
				t.Errorf("expires_at = %v, want %v", k.ExpiresAt, tc.want)
			}
		})
	}
}
