package gateway

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/auth/authtest"
)

// oidcUIPolicy lets the weather team use only the weather server; admins
// everything.
const oidcUIPolicy = `
group_mappings:
  weather-team: [weather-read]
  mcp-admins: [admin]
scopes:
  weather-read:
    - server: weather
      methods: ["*"]
      tools: ["*"]
  admin:
    - server: "*"
      methods: ["*"]
      tools: ["*"]
      admin: true
`

const (
	uiOIDCClient = "mcpgw-ui"
	uiOIDCSecret = "mcpgw-ui-secret"
)

// oidcUIEnv is a gateway whose UI signs in with a real OIDC provider: an
// issuer for ingress, the policy above, and the UI's confidential client.
type oidcUIEnv struct {
	*testEnv
	prov *authtest.Provider
	base string // the gateway's URL as the browser reaches it
	log  *lockedLog
}

// newOIDCUIEnv starts the provider and the gateway. host is the name the
// browser uses for the gateway ("127.0.0.1", or "localhost" to put the
// gateway on another site than the provider).
func newOIDCUIEnv(t *testing.T, host string) *oidcUIEnv {
	t.Helper()
	// The gateway's address is the provider's registered redirect URI, and
	// the provider's issuer URL is the gateway's configuration: listen first.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() }) // when the test ends before serving (no provider installed)
	base := fmt.Sprintf("http://%s:%d", host, ln.Addr().(*net.TCPAddr).Port)
	prov := authtest.StartProvider(t, authtest.ProviderOptions{
		Resources:  []string{gwAudience},
		Scopes:     []string{"mcp:tools"},
		WebClients: []authtest.WebClient{{ID: uiOIDCClient, Secret: uiOIDCSecret, RedirectURIs: []string{base + "/ui/callback"}}},
		Users: map[string]authtest.User{
			"wendy": {Groups: []string{"weather-team"}},
			"ada":   {Groups: []string{"mcp-admins"}},
		},
	})
	f := newFixture(t)
	o, err := auth.NewOIDC([]auth.IssuerConfig{{Issuer: prov.Issuer, Audiences: []string{gwAudience}}}, auth.OIDCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedLog{}
	lg := zerolog.New(logs)
	pol := f.withPolicy(t, auth.PolicyOptions{IdentityProvider: true, Log: lg}, oidcUIPolicy)
	authn := auth.NewAuthenticator(f.store, auth.Options{OIDC: o})
	login, err := auth.NewOIDCLogin(authn, auth.UILoginConfig{
		Issuer: prov.Issuer, ClientID: uiOIDCClient, ClientSecret: uiOIDCSecret,
		Params: map[string]string{"resource": gwAudience}, Name: "Test IdP",
	}, auth.UILoginOptions{Sealer: f.deps.Sealer})
	if err != nil {
		t.Fatal(err)
	}
	f.deps.Verifier, f.deps.Policy, f.deps.Log = authn, pol, lg
	gw, err := New(Options{}, f.deps)
	if err != nil {
		t.Fatal(err)
	}
	gw.SetUILogin(login)
	if err := gw.Load(f.ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(gw)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	e := &oidcUIEnv{testEnv: &testEnv{gw: gw, srv: srv, reg: f.reg, store: f.store, admin: f.admin}, prov: prov, base: base, log: logs}
	e.register(t, map[string]any{"server_name": "weather", "path": "/weather", "proxy_pass_url": "http://127.0.0.1:9/mcp"})
	e.register(t, map[string]any{"server_name": "customer-support-assistant", "path": "/customer-support-assistant", "proxy_pass_url": "http://127.0.0.1:9/mcp"})
	return e
}

func jarClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

// get requests u with c and returns the response (its body read).
func get(t *testing.T, c *http.Client, u string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	return send(t, c, http.MethodGet, u, hdr)
}

func send(t *testing.T, c *http.Client, method, u string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var dataAttr = regexp.MustCompile(`data-([a-z-]+)="([^"]*)"`)

// pageAttrs are the data attributes of the UI page's body.
func pageAttrs(t *testing.T, page string) map[string]string {
	t.Helper()
	i := strings.Index(page, "<body")
	if i < 0 {
		t.Fatalf("not the UI page:\n%s", page)
	}
	end := strings.Index(page[i:], ">")
	out := map[string]string{}
	for _, m := range dataAttr.FindAllStringSubmatch(page[i:i+end], -1) {
		out[m[1]] = html.UnescapeString(m[2])
	}
	return out
}

// signInUI runs the whole sign-in as user in c: the start, the provider's
// login and consent pages, and the callback, whose response it returns
// (redirects not followed) with the callback URL.
func (e *oidcUIEnv) signInUI(t *testing.T, c *http.Client, user string) (*http.Response, *url.URL) {
	t.Helper()
	cb := e.prov.SignIn(t, c, e.prov.Begin(t, c, e.base+"/ui/login/start"), user)
	if got := cb.Scheme + "://" + cb.Host + cb.Path; got != e.base+"/ui/callback" {
		t.Fatalf("the provider sent the browser to %s, want the gateway's callback", got)
	}
	nc := *c
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, _ := get(t, &nc, cb.String(), nil)
	return resp, cb
}

func sessionOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == sessionCookie {
			return c
		}
	}
	return nil
}

// TestUIOIDCSignIn signs in to the web UI with a real OIDC provider, with
// plain net/http as the browser: the user lands signed in with their
// groups, the policy filters what the cookie session sees, the CSRF rules
// hold, and every broken callback ends on the page with a clear message.
func TestUIOIDCSignIn(t *testing.T) {
	e := newOIDCUIEnv(t, "127.0.0.1")

	t.Run("the page offers the provider", func(t *testing.T) {
		_, page := get(t, http.DefaultClient, e.base+"/", nil)
		if !strings.Contains(page, `<a class="button" href="/ui/login/start">Sign in with Test IdP</a>`) {
			t.Fatalf("no sign-in button for the provider on the page:\n%s", page)
		}
	})

	wendy := jarClient(t)
	t.Run("a user of the weather team signs in and sees only the weather server", func(t *testing.T) {
		resp, cb := e.signInUI(t, wendy, "wendy")
		c := sessionOf(resp)
		if c == nil {
			t.Fatalf("the callback answered %s without a session cookie", resp.Status)
		}
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || c.MaxAge <= 0 {
			t.Fatalf("session cookie = %+v, want HttpOnly, SameSite=Strict, Path=/", c)
		}
		if code := cb.Query().Get("code"); strings.Contains(c.Value, code) {
			t.Fatal("the session cookie holds the code in the clear")
		}
		_, page := get(t, wendy, e.base+"/", nil)
		attrs := pageAttrs(t, page)
		if attrs["signed-in"] != "true" || attrs["subject"] != "wendy" || attrs["admin"] != "false" || attrs["csrf"] == "" || attrs["error"] != "" {
			t.Fatalf("after the sign-in the page says %v, want wendy signed in", attrs)
		}
		resp, body := get(t, wendy, e.base+"/api/v1/servers", map[string]string{"Accept": "application/json"})
		var l serviceList
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &l) != nil {
			t.Fatalf("GET /api/v1/servers with the session: %s %s", resp.Status, body)
		}
		if len(l.Services) != 1 || l.Services[0].Path != "/weather" {
			t.Fatalf("wendy sees %+v, want only /weather", l.Services)
		}
		if resp, _ := get(t, wendy, e.base+"/api/v1/servers/customer-support-assistant", map[string]string{"Accept": "application/json"}); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("wendy reading the customer-support server: %s, want 404", resp.Status)
		}

		// The same callback again: the provider refuses the used code, the
		// page says so, and the session in place stays.
		_, page = get(t, wendy, cb.String(), nil)
		if msg := pageAttrs(t, page)["error"]; !strings.Contains(msg, "invalid_grant") || !strings.HasPrefix(msg, "Sign-in failed: ") {
			t.Fatalf("replayed code: page error %q, want the provider's invalid_grant", msg)
		}
		if strings.Contains(page, cb.Query().Get("code")) {
			t.Fatal("the page repeats the code")
		}
		if _, page := get(t, wendy, e.base+"/", nil); pageAttrs(t, page)["subject"] != "wendy" {
			t.Fatal("a refused callback ended the session in place")
		}
	})

	t.Run("the CSRF rules hold for the OIDC session", func(t *testing.T) {
		ada := jarClient(t)
		if resp, _ := e.signInUI(t, ada, "ada"); sessionOf(resp) == nil {
			t.Fatalf("ada's sign-in set no session: %s", resp.Status)
		}
		_, page := get(t, ada, e.base+"/", nil)
		attrs := pageAttrs(t, page)
		if attrs["subject"] != "ada" || attrs["admin"] != "true" {
			t.Fatalf("ada's page says %v, want an admin", attrs)
		}
		csrf := attrs["csrf"]
		_, wpage := get(t, wendy, e.base+"/", nil)
		wendyCSRF := pageAttrs(t, wpage)["csrf"]
		disable := e.base + "/api/v1/servers/weather/disable"
		for _, tc := range []struct {
			name string
			c    *http.Client
			hdr  map[string]string
			want int
			says string
		}{
			{"no CSRF token", ada, nil, http.StatusForbidden, csrfHeader},
			{"another session's CSRF token", ada, map[string]string{csrfHeader: wendyCSRF}, http.StatusForbidden, csrfHeader},
			{"another origin", ada, map[string]string{csrfHeader: csrf, "Origin": "http://127.0.0.1:1"}, http.StatusForbidden, "origin"},
			{"a cross-site fetch", ada, map[string]string{csrfHeader: csrf, "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden, "cross-site"},
			{"a user the policy does not make admin", wendy, map[string]string{csrfHeader: wendyCSRF}, http.StatusForbidden, "admin"},
			{"the admin with the token", ada, map[string]string{csrfHeader: csrf}, http.StatusOK, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := send(t, tc.c, http.MethodPost, disable, tc.hdr)
				if resp.StatusCode != tc.want || !strings.Contains(body, tc.says) {
					t.Fatalf("POST disable: %s %s, want %d mentioning %q", resp.Status, body, tc.want, tc.says)
				}
			})
		}
		// The session never counts for the relay or the meta server.
		if resp, _ := send(t, ada, http.MethodPost, e.base+"/mcpgw/mcp", map[string]string{"Content-Type": "application/json"}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("POST /mcpgw/mcp with only the UI session: %s, want 401", resp.Status)
		}
	})

	t.Run("broken callbacks end on the page with a clear message", func(t *testing.T) {
		cases := []struct {
			name string
			run  func(t *testing.T) (*http.Client, *url.URL)
			says string
		}{
			{"wrong state", func(t *testing.T) (*http.Client, *url.URL) {
				c := jarClient(t)
				cb := e.prov.SignIn(t, c, e.prov.Begin(t, c, e.base+"/ui/login/start"), "wendy")
				q := cb.Query()
				q.Set("state", "forged-state")
				cb.RawQuery = q.Encode()
				return c, cb
			}, "state mismatch"},
			{"missing sign-in cookie", func(t *testing.T) (*http.Client, *url.URL) {
				c := jarClient(t)
				cb := e.prov.SignIn(t, c, e.prov.Begin(t, c, e.base+"/ui/login/start"), "wendy")
				return jarClient(t), cb // another browser: no PKCE verifier, no state
			}, "no sign-in is in progress in this browser"},
			{"declined consent", func(t *testing.T) (*http.Client, *url.URL) {
				c := jarClient(t)
				return c, e.prov.Decline(t, c, e.prov.Begin(t, c, e.base+"/ui/login/start"))
			}, "access was denied"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				c, cb := tc.run(t)
				nc := *c
				nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
				resp, page := get(t, &nc, cb.String(), nil)
				if resp.StatusCode != http.StatusOK || sessionOf(resp) != nil {
					t.Fatalf("callback: %s (session cookie set: %v), want the page and no session", resp.Status, sessionOf(resp) != nil)
				}
				attrs := pageAttrs(t, page)
				if msg := attrs["error"]; !strings.HasPrefix(msg, "Sign-in failed: ") || !strings.Contains(msg, tc.says) {
					t.Fatalf("page error %q, want it to say %q", msg, tc.says)
				}
				if attrs["signed-in"] != "false" {
					t.Fatalf("page says signed in after a failed callback: %v", attrs)
				}
				if code := cb.Query().Get("code"); code != "" && strings.Contains(page, code) {
					t.Fatal("the page repeats the code")
				}
				for _, leak := range []string{"goroutine ", ".go:", "panic"} {
					if strings.Contains(page, leak) {
						t.Fatalf("the page shows %q", leak)
					}
				}
			})
		}
	})
}

// TestUIOIDCSignInBrowser runs the sign-in in Chromium with the gateway and
// the provider on different sites (localhost and 127.0.0.1), as they are in
// a deployment: the provider's redirect back is a cross-site navigation,
// which must still land on a signed-in page although the session cookie is
// SameSite=Strict.
func TestUIOIDCSignInBrowser(t *testing.T) {
	e := newOIDCUIEnv(t, "localhost")
	ctx := newBrowser(t)
	browse(t, ctx, chromedp.Navigate(e.base+"/"))
	waitJS(t, ctx, "the sign-in button", "document.querySelector('#signin-open')")
	browse(t, ctx, chromedp.Click(chromedp.CSS("#signin-open")), chromedp.Click(chromedp.CSS(`a[href="/ui/login/start"]`)))
	waitJS(t, ctx, "the provider's login page", "document.querySelector('input[name=login]') && location.origin === "+jsString(e.prov.Issuer))
	browse(t, ctx, chromedp.SendKeys(chromedp.CSS("input[name=login]"), "wendy"), chromedp.SendKeys(chromedp.CSS("input[name=password]"), "any"),
		chromedp.Click(chromedp.CSS("button[type=submit]")))
	waitJS(t, ctx, "the provider's consent page", "document.querySelector('input[name=prompt][value=consent]')")
	browse(t, ctx, chromedp.Click(chromedp.CSS("button[type=submit]")))
	waitJS(t, ctx, "the UI signed in as wendy", "location.origin === "+jsString(e.base)+" && document.body.dataset.signedIn === 'true' && document.querySelector('#subject') && document.querySelector('#subject').textContent === 'wendy'")
	waitJS(t, ctx, "the weather server listed", rowExpr("/weather"))
	if evalJS[bool](t, ctx, rowExpr("/customer-support-assistant")+" !== null") {
		t.Fatal("wendy sees the customer-support server")
	}
	if evalJS[bool](t, ctx, "document.cookie.includes('mcpgw_')") {
		t.Fatal("a sign-in cookie is readable from script; it must be HttpOnly")
	}
	if got := evalJS[string](t, ctx, "location.pathname + location.search"); got != "/" {
		t.Fatalf("the browser is left at %q, want / (no code in the address bar)", got)
	}
	// A reload keeps the session; signing out ends it.
	browse(t, ctx, chromedp.Reload())
	waitJS(t, ctx, "signed in after a reload", "document.body.dataset.signedIn === 'true'")
	browse(t, ctx, chromedp.Click(chromedp.CSS("#signout")))
	waitJS(t, ctx, "signed out", "document.querySelector('#signin-open')")
}
