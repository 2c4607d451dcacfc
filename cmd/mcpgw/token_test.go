package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/auth/authtest"
)

// TestTokenCommandWithRealProvider gets tokens from a real OpenID Connect
// provider with `mcpgw token`, then uses them with a gateway that trusts
// that provider: the seed's generate_creds.sh + curl steps, in one binary.
func TestTokenCommandWithRealProvider(t *testing.T) {
	t.Setenv("MCPGW_TOKEN_FILE", "")
	t.Setenv("MCPGW_REGISTRY_URL", "")
	const aud = "http://127.0.0.1/mcpgw"
	support := authtest.Client{ID: "support-agent", Secret: "support-secret", Groups: []string{"support-team"}}
	prov := authtest.StartProvider(t, authtest.ProviderOptions{Clients: []authtest.Client{support}, Resources: []string{aud}, Scopes: []string{"mcp:tools"}})
	secret := writeTemp(t, "secret", support.Secret+"\n")
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "ingress.token")

	r := runCmd(t, "", "token", "--issuer", prov.Issuer, "--client-id", support.ID, "--client-secret-file", secret,
		"--audience", aud, "--scope", "mcp:tools", "--out", tokFile, "--print-claims")
	r.want(t, "token --print-claims", 0)
	st, err := os.Stat(tokFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st, err)
	}
	b, _ := os.ReadFile(tokFile)
	tok := strings.TrimSpace(string(b))
	if strings.Count(tok, ".") != 2 || strings.Contains(r.stdout, tok) || strings.Contains(r.stderr, tok) {
		t.Fatalf("the token must go to the file only: %s", r)
	}
	var claims map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &claims); err != nil {
		t.Fatalf("--print-claims: %v\n%s", err, r)
	}
	if claims["aud"] != aud || claims["iss"] != prov.Issuer || claims["scope"] != "mcp:tools" || fmt.Sprint(claims["groups"]) != "[support-team]" {
		t.Fatalf("claims = %v", claims)
	}
	if !strings.Contains(r.stderr, "Wrote the access token for support-agent") {
		t.Fatalf("no confirmation: %s", r)
	}

	r = runCmd(t, "", "token", "--issuer", prov.Issuer, "--client-id", support.ID, "--client-secret-file", secret, "--audience", aud, "--out", tokFile, "--json")
	r.want(t, "token --json", 0)
	var info map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil || info["token_file"] != tokFile || info["expires_at"] == nil || info["token_type"] != "Bearer" {
		t.Fatalf("token --json: %s", r)
	}

	opaque := filepath.Join(dir, "opaque.token")
	runCmd(t, "", "token", "--issuer", prov.Issuer, "--client-id", support.ID, "--client-secret-file", secret, "--out", opaque, "--print-claims").
		want(t, "opaque token with --print-claims", 1, "opaque")
	if b, err := os.ReadFile(opaque); err != nil || len(strings.TrimSpace(string(b))) == 0 {
		t.Fatal("the opaque token was not written")
	}

	wrong := writeTemp(t, "wrong", "not-the-secret")
	runCmd(t, "", "token", "--issuer", prov.Issuer, "--client-id", support.ID, "--client-secret-file", wrong, "--out", filepath.Join(dir, "x")).
		want(t, "wrong secret", 1, "refused", "invalid_client")
	runCmd(t, "", "token", "--issuer", prov.Issuer, "--client-id", support.ID, "--client-secret-file", secret, "--audience", "http://127.0.0.1/unknown", "--out", filepath.Join(dir, "x")).
		want(t, "unknown audience", 1, "invalid_target")
	runCmd(t, "", "token", "--issuer", "http://127.0.0.1:9", "--client-id", "a", "--client-secret-file", secret, "--out", filepath.Join(dir, "x")).
		want(t, "unreachable issuer", 1, "discovery")
	runCmd(t, "", "token", "--client-id", "a", "--client-secret-file", secret).want(t, "no issuer", 2, "--issuer")
	runCmd(t, "", "token", "--issuer", prov.Issuer, "--client-secret-file", secret).want(t, "no client id", 2, "--client-id")
	runCmd(t, "", "token", "--issuer", prov.Issuer, "--client-id", "a").want(t, "no secret file", 2, "--client-secret-file")
	runCmd(t, "", "token", "--issuer", prov.Issuer, "--client-id", "a", "--client-secret-file", filepath.Join(dir, "absent")).want(t, "unreadable secret", 2, "cannot read")
	runCmd(t, "", "token", "--issuer", "keycloak/realms/x", "--client-id", "a", "--client-secret-file", secret).want(t, "relative issuer", 2, "not an absolute")
	if _, err := os.Stat(filepath.Join(dir, "x")); !os.IsNotExist(err) {
		t.Fatal("a failed grant wrote a token file")
	}

	// The token works with a gateway that trusts the provider.
	g := startServe(t, func(c *serveConfig) {
		c.OIDCIssuer, c.OIDCAudience = []string{prov.Issuer}, []string{aud}
	})
	admin := g.adminToken()
	reg := writeTemp(t, "cs.json", `{"server_name":"customer-support-assistant","path":"/customer-support-assistant","proxy_pass_url":"http://127.0.0.1:9/mcp"}`)
	runCmd(t, "", "register", "--config", reg, "--registry-url", g.url, "--token-file", admin).want(t, "register", 0)
	runCmd(t, "", "list", "--registry-url", g.url, "--token-file", tokFile).want(t, "an OIDC caller before any policy", 1, "403")
	runCmd(t, "", "list", "--registry-url", g.url, "--token-file", filepath.Join(dir, "none")).want(t, "a missing token file", 2, "cannot read")
	pol := writeTemp(t, "policy.yaml", cliPolicy)
	runCmd(t, "", "policy", "import", pol, "--registry-url", g.url, "--token-file", admin).want(t, "import", 0)
	r = runCmd(t, "", "list", "--json", "--registry-url", g.url, "--token-file", tokFile)
	r.want(t, "list with the provider's token", 0)
	var l listed
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || len(l.Services) != 1 || l.Services[0].NumTools != 0 {
		t.Fatalf("list: %s", r)
	}
	if strings.Contains(g.log.String(), tok) {
		t.Fatal("the gateway logged the token")
	}
	if !strings.Contains(g.log.String(), `"audit":"access"`) {
		t.Fatalf("no audit events in the log:\n%s", g.log.String())
	}
	var paths []string
	for _, s := range l.Services {
		paths = append(paths, s.Path)
	}
	if !slices.Equal(paths, []string{"/customer-support-assistant"}) {
		t.Fatalf("paths = %q", paths)
	}
}
