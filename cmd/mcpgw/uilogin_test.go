package main

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/auth/authtest"
)

func TestServeConfigUILogin(t *testing.T) {
	secret := writeTemp(t, "ui-secret", "  s3cret\n")
	empty := writeTemp(t, "empty", "\n")
	for _, tc := range []struct {
		name string
		yaml string
		want *auth.UILoginConfig // nil: no UI sign-in
		errs []string            // from loading the configuration
		read string              // error from reading the secret
	}{
		{name: "no ui keys", yaml: "oidc:\n  - {issuer: 'https://a.example', audience: x}\n"},
		{
			name: "every ui key",
			yaml: fmt.Sprintf(`
oidc:
  - issuer: https://a.example
    audience: x
  - issuer: https://kc.example/realms/mcp
    audience: mcpgw
    ui_client_id: mcpgw-ui
    ui_client_secret_file: %s
    ui_scopes: groups
    ui_params: {resource: "https://mcpgw.example"}
    ui_name: Keycloak
`, secret),
			want: &auth.UILoginConfig{Issuer: "https://kc.example/realms/mcp", ClientID: "mcpgw-ui", ClientSecret: "s3cret",
				Scopes: []string{"groups"}, Params: map[string]string{"resource": "https://mcpgw.example"}, Name: "Keycloak"},
		},
		{
			name: "a public client",
			yaml: "oidc:\n  - {issuer: 'https://a.example', audience: x, ui_client_id: ui}\n",
			want: &auth.UILoginConfig{Issuer: "https://a.example", ClientID: "ui"},
		},
		{name: "ui keys without a client id", yaml: "oidc:\n  - {issuer: 'https://a.example', audience: x, ui_scopes: [groups]}\n",
			errs: []string{"oidc[0]: ui_client_secret_file, ui_scopes, ui_params and ui_name need ui_client_id"}},
		{name: "two issuers for the UI", yaml: "oidc:\n  - {issuer: 'https://a.example', audience: x, ui_client_id: a}\n  - {issuer: 'https://b.example', audience: x, ui_client_id: b}\n",
			errs: []string{"oidc[0], oidc[1]: ui_client_id is set for 2 issuers"}},
		{name: "misspelt key", yaml: "oidc:\n  - {issuer: 'https://a.example', audience: x, ui_client: a}\n", errs: []string{`unknown field "ui_client"`}},
		{name: "missing secret file", yaml: "oidc:\n  - {issuer: 'https://a.example', audience: x, ui_client_id: a, ui_client_secret_file: /nonexistent/secret}\n",
			read: "oidc[0].ui_client_secret_file: open /nonexistent/secret"},
		{name: "empty secret file", yaml: fmt.Sprintf("oidc:\n  - {issuer: 'https://a.example', audience: x, ui_client_id: a, ui_client_secret_file: %s}\n", empty),
			read: "oidc[0].ui_client_secret_file: " + empty + " is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			flagged := defaultServeConfig()
			bindFlags(fs, &flagged)
			file := filepath.Join(t.TempDir(), "mcpgw.yaml")
			if err := os.WriteFile(file, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := loadServeConfig(fs, flagged, file, nil)
			if len(tc.errs) > 0 {
				for _, want := range tc.errs {
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Errorf("load = %v, want an error holding %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			got, ok, err := c.uiLogin()
			if tc.read != "" {
				if err == nil || !strings.Contains(err.Error(), tc.read) {
					t.Fatalf("uiLogin = %v, want an error holding %q", err, tc.read)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if ok {
					t.Fatalf("uiLogin = %+v, want none", got)
				}
				return
			}
			if !ok || !reflect.DeepEqual(got, *tc.want) {
				t.Fatalf("uiLogin = %+v (%v)\nwant %+v", got, ok, *tc.want)
			}
			o, err := auth.NewOIDC(c.oidcIssuers(), auth.OIDCOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := auth.NewOIDCLogin(auth.NewAuthenticator(nil, auth.Options{OIDC: o}), got, auth.UILoginOptions{Sealer: nopSealer{}}); err != nil {
				t.Fatalf("an accepted configuration does not build: %v", err)
			}
		})
	}
}

type nopSealer struct{}

func (nopSealer) Seal(_, p string) string            { return p }
func (nopSealer) Unseal(_, s string) (string, error) { return s, nil }

// TestServeUILogin signs in to the UI of `mcpgw serve` configured with a
// real provider's issuer and the UI's confidential client, the secret read
// from its file; with a wrong secret the page says the client was refused.
func TestServeUILogin(t *testing.T) {
	const aud = "http://127.0.0.1/mcpgw"
	ports := []int{freePort(t), freePort(t)}
	var redirects []string
	for _, p := range ports {
		redirects = append(redirects, fmt.Sprintf("http://127.0.0.1:%d/ui/callback", p))
	}
	prov := authtest.StartProvider(t, authtest.ProviderOptions{
		Resources:  []string{aud},
		WebClients: []authtest.WebClient{{ID: "mcpgw-ui", Secret: "right-secret", RedirectURIs: redirects}},
		Users:      map[string]authtest.User{"ada": {Groups: []string{"mcp-admins"}}},
	})
	serveWith := func(port int, secret string) string {
		file := writeTemp(t, "ui-secret", secret+"\n")
		g := startServe(t, func(c *serveConfig) {
			c.Listen = fmt.Sprintf("127.0.0.1:%d", port)
			c.OIDC = []oidcIssuer{{Issuer: prov.Issuer, Audience: stringOrList{aud}, UIClientID: "mcpgw-ui",
				UIClientSecretFile: file, UIParams: map[string]string{"resource": aud}, UIName: "Test IdP"}}
		})
		return g.url
	}
	page := func(c *http.Client, u string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return html.UnescapeString(string(b))
	}
	newClient := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		return &http.Client{Jar: jar, Timeout: 10 * time.Second}
	}

	good := serveWith(ports[0], "right-secret")
	c := newClient()
	if p := page(c, good+"/"); !strings.Contains(p, `href="/ui/login/start">Sign in with Test IdP</a>`) {
		t.Fatalf("the page offers no OIDC sign-in:\n%s", p)
	}
	cb := prov.SignIn(t, c, prov.Begin(t, c, good+"/ui/login/start"), "ada")
	page(c, cb.String()) // the callback, then / as the browser would
	if p := page(c, good+"/"); !strings.Contains(p, `data-signed-in="true"`) || !strings.Contains(p, `data-subject="ada"`) {
		t.Fatalf("not signed in as ada after the callback:\n%s", p)
	}

	bad := serveWith(ports[1], "wrong-secret")
	c = newClient()
	cb = prov.SignIn(t, c, prov.Begin(t, c, bad+"/ui/login/start"), "ada")
	if p := page(c, cb.String()); !strings.Contains(p, `did not accept the gateway's client "mcpgw-ui" (invalid_client`) || strings.Contains(p, "wrong-secret") {
		t.Fatalf("a wrong client secret: the page does not say the client was refused (or shows the secret):\n%s", p)
	}
}
