package auth_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/auth/authtest"
)

// aeadSealer is a Sealer like the gateway's: AES-GCM, the aad bound in.
type aeadSealer struct{ aead cipher.AEAD }

func newSealer(t *testing.T) *aeadSealer {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return &aeadSealer{aead: aead}
}

func (s *aeadSealer) Seal(aad, plain string) string {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(plain), []byte(aad)))
}

func (s *aeadSealer) Unseal(aad, sealed string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", errors.New("bad seal")
	}
	n := s.aead.NonceSize()
	p, err := s.aead.Open(nil, b[:n], b[n:], []byte(aad))
	return string(p), err
}

// uiLoginRig is a real provider with the UI's clients, and a server that
// plays the gateway's part: /start calls the login's Start.
type uiLoginRig struct {
	prov  *authtest.Provider
	clock *clock
	srv   *httptest.Server
	cb    string // the callback URL registered at the provider

	handler atomic.Pointer[http.Handler]
}

const (
	uiAudience     = "http://127.0.0.1/mcpgw"
	uiClient       = "mcpgw-ui"
	uiClientSecret = "ui-secret"
	uiPublicClient = "mcpgw-ui-public"
)

func newUILoginRig(t *testing.T) *uiLoginRig {
	t.Helper()
	r := &uiLoginRig{clock: newClock()}
	// The server's address is needed before the provider starts (it is the
	// registered redirect URI) and its handler after (it needs the issuer).
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if h := r.handler.Load(); h != nil {
			(*h).ServeHTTP(w, req)
			return
		}
		http.NotFound(w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.cb = r.srv.URL + "/callback"
	big := strings.Repeat("x", 4000) // like a Keycloak token's resource_access and profile claims
	r.prov = authtest.StartProvider(t, authtest.ProviderOptions{
		Resources: []string{uiAudience},
		Scopes:    []string{"mcp:tools"},
		WebClients: []authtest.WebClient{
			{ID: uiClient, Secret: uiClientSecret, RedirectURIs: []string{r.cb}},
			{ID: uiPublicClient, RedirectURIs: []string{r.cb}},
		},
		Users: map[string]authtest.User{
			"alice": {Groups: []string{"support"}},
			"bob":   {Groups: []string{"weather", "/teams/ops"}, Claims: map[string]any{"resource_access": map[string]any{"blob": big}}},
		},
	})
	return r
}

// login builds an Authenticator for the provider (with audiences) and the
// UI sign-in cfg on it, and routes /start to it.
func (r *uiLoginRig) login(t *testing.T, audiences []string, cfg auth.UILoginConfig) (*auth.Authenticator, *auth.OIDCLogin) {
	t.Helper()
	o := newOIDC(t, auth.OIDCOptions{}, auth.IssuerConfig{Issuer: r.prov.Issuer, Audiences: audiences})
	a := auth.NewAuthenticator(noKeys{}, auth.Options{OIDC: o, Now: r.clock.Now})
	cfg.Issuer = r.prov.Issuer
	l, err := auth.NewOIDCLogin(a, cfg, auth.UILoginOptions{Sealer: newSealer(t)})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/start", func(w http.ResponseWriter, req *http.Request) { l.Start(w, req, r.cb) })
	var h http.Handler = mux
	r.handler.Store(&h)
	return a, l
}

func newBrowserClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second}
}

// callback is the browser's request to the callback URL, with the cookies
// c holds for it.
func callback(c *http.Client, u *url.URL) *http.Request {
	req := httptest.NewRequest(http.MethodGet, u.String(), nil)
	if c != nil {
		for _, ck := range c.Jar.Cookies(u) {
			req.AddCookie(ck)
		}
	}
	return req
}

func TestUILoginWithRealProvider(t *testing.T) {
	r := newUILoginRig(t)
	ctx := context.Background()
	resource := map[string]string{"resource": uiAudience}
	a, l := r.login(t, []string{uiAudience}, auth.UILoginConfig{ClientID: uiClient, ClientSecret: uiClientSecret, Params: resource, Name: "Test IdP"})
	start := r.srv.URL + "/start"

	if got := l.Name(); got != "Sign in with Test IdP" {
		t.Errorf("Name() = %q", got)
	}

	t.Run("sign-in yields the user's token with groups", func(t *testing.T) {
		c := newBrowserClient(t)
		authURL := r.prov.Begin(t, c, start)
		q := authURL.Query()
		if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" {
			t.Fatalf("authorization request lacks PKCE S256, nonce or state: %v", q)
		}
		cbURL := r.prov.SignIn(t, c, authURL, "alice")
		tok, err := l.Finish(callback(c, cbURL), r.cb)
		if err != nil {
			t.Fatalf("Finish: %v", err)
		}
		if strings.HasPrefix(tok, "mcpgw-session:") {
			t.Fatalf("a small access token was compacted")
		}
		if claims := authtest.Decode(t, tok); claims["aud"] != uiAudience || claims["sub"] != "alice" {
			t.Fatalf("Finish returned a token with claims %v, want alice's access token for %s", claims, uiAudience)
		}
		p, err := a.Verify(ctx, tok)
		if err != nil {
			t.Fatalf("Authenticator.Verify of the sign-in's token: %v", err)
		}
		if p.Subject != "alice" || !slices.Equal(p.Groups, []string{"support"}) || p.Issuer != r.prov.Issuer || p.Method != "oidc" {
			t.Fatalf("principal = %+v", p)
		}

		// The same callback again: the provider refuses a used code.
		_, err = l.Finish(callback(c, cbURL), r.cb)
		if !errors.Is(err, auth.ErrSignInRefused) || !strings.Contains(err.Error(), "invalid_grant") {
			t.Fatalf("replayed code: %v, want ErrSignInRefused with invalid_grant", err)
		}
		if strings.Contains(err.Error(), cbURL.Query().Get("code")) {
			t.Fatalf("the error repeats the code: %v", err)
		}
	})

	t.Run("the flow cookie is sealed, HttpOnly, Lax and only for the callback", func(t *testing.T) {
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(start)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := resp.Location()
		var flow *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == "mcpgw_oidc_flow" {
				flow = ck
			}
		}
		if flow == nil {
			t.Fatalf("Start set no flow cookie: %v", resp.Header["Set-Cookie"])
		}
		if !flow.HttpOnly || flow.SameSite != http.SameSiteLaxMode || flow.Path != "/callback" || flow.MaxAge != 600 {
			t.Fatalf("flow cookie = %+v, want HttpOnly, SameSite=Lax, Path=/callback, Max-Age=600", flow)
		}
		if st := loc.Query().Get("state"); st == "" || strings.Contains(flow.Value, st) || strings.Contains(flow.Value, loc.Query().Get("nonce")) {
			t.Fatalf("the flow cookie holds the state or nonce in the clear")
		}
	})

	t.Run("callbacks that do not belong to this browser's sign-in are refused", func(t *testing.T) {
		c := newBrowserClient(t)
		cbURL := r.prov.SignIn(t, c, r.prov.Begin(t, c, start), "alice")
		with := func(k, v string) *url.URL {
			u := *cbURL
			q := u.Query()
			q.Set(k, v)
			u.RawQuery = q.Encode()
			return &u
		}
		for _, tc := range []struct {
			name string
			req  *http.Request
			want error
		}{
			{"wrong state", callback(c, with("state", "forged")), auth.ErrSignInMismatch},
			{"other issuer", callback(c, with("iss", "http://127.0.0.1:1")), auth.ErrSignInMismatch},
			{"no flow cookie", callback(nil, cbURL), auth.ErrNoSignIn},
			{"forged flow cookie", func() *http.Request {
				req := callback(nil, cbURL)
				req.AddCookie(&http.Cookie{Name: "mcpgw_oidc_flow", Value: newSealer(t).Seal("\x00mcpgw-oidc-flow", `{"s":"x","v":"y","e":9999999999}`)})
				return req
			}(), auth.ErrNoSignIn},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := l.Finish(tc.req, r.cb)
				if !errors.Is(err, tc.want) {
					t.Fatalf("Finish = %v, want %v", err, tc.want)
				}
			})
		}
		// None of that spent the code: the right callback still signs in.
		if _, err := l.Finish(callback(c, cbURL), r.cb); err != nil {
			t.Fatalf("the genuine callback after the refused ones: %v", err)
		}
	})

	t.Run("a sign-in cookie older than ten minutes is refused", func(t *testing.T) {
		c := newBrowserClient(t)
		cbURL := r.prov.SignIn(t, c, r.prov.Begin(t, c, start), "alice")
		r.clock.Advance(auth.UIFlowTTL + time.Second)
		defer r.clock.Advance(-auth.UIFlowTTL - time.Second)
		_, err := l.Finish(callback(c, cbURL), r.cb)
		if !errors.Is(err, auth.ErrNoSignIn) || !strings.Contains(err.Error(), "more than 10m0s ago") {
			t.Fatalf("Finish = %v, want ErrNoSignIn for an expired sign-in", err)
		}
	})

	t.Run("a code injected into another sign-in fails PKCE at the provider", func(t *testing.T) {
		// The attacker's code (from their own sign-in) is delivered to the
		// victim's callback with the victim's state: the state check passes,
		// but the code was bound to another PKCE challenge.
		attacker := newBrowserClient(t)
		stolen := r.prov.SignIn(t, attacker, r.prov.Begin(t, attacker, start), "mallory")
		victim := newBrowserClient(t)
		victimAuth := r.prov.Begin(t, victim, start)
		u := *stolen
		q := u.Query()
		q.Set("state", victimAuth.Query().Get("state"))
		u.RawQuery = q.Encode()
		_, err := l.Finish(callback(victim, &u), r.cb)
		if !errors.Is(err, auth.ErrSignInRefused) || !strings.Contains(err.Error(), "invalid_grant") {
			t.Fatalf("Finish with an injected code = %v, want the provider's invalid_grant", err)
		}
	})

	t.Run("declined sign-in", func(t *testing.T) {
		c := newBrowserClient(t)
		cbURL := r.prov.Decline(t, c, r.prov.Begin(t, c, start))
		_, err := l.Finish(callback(c, cbURL), r.cb)
		if !errors.Is(err, auth.ErrSignInRefused) || !strings.Contains(err.Error(), "access_denied") {
			t.Fatalf("Finish after cancelling = %v, want ErrSignInRefused with access_denied", err)
		}
		if strings.Contains(err.Error(), "End-User aborted") {
			t.Fatalf("the error repeats the callback's free-text description: %v", err)
		}
	})

	t.Run("a token too large for a cookie becomes a compact session", func(t *testing.T) {
		c := newBrowserClient(t)
		tok, err := l.Finish(callback(c, r.prov.SignIn(t, c, r.prov.Begin(t, c, start), "bob")), r.cb)
		if err != nil {
			t.Fatalf("Finish: %v", err)
		}
		if !strings.HasPrefix(tok, "mcpgw-session:") || len(tok) > auth.DefaultMaxSessionToken {
			t.Fatalf("Finish returned %d bytes (%.20q…), want a compact session", len(tok), tok)
		}
		p, err := a.Verify(ctx, tok)
		if err != nil {
			t.Fatalf("Verify compact session: %v", err)
		}
		if p.Subject != "bob" || !slices.Equal(p.Groups, []string{"weather", "/teams/ops", "ops"}) || p.Issuer != r.prov.Issuer || p.Method != "oidc" {
			t.Fatalf("compact principal = %+v", p)
		}
		tampered := tok[:len(tok)-2] + "AA"
		if tampered == tok {
			tampered = tok[:len(tok)-2] + "BB"
		}
		if _, err := a.Verify(ctx, tampered); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("tampered compact session = %v, want ErrInvalidToken", err)
		}
		// Another gateway (another key) cannot open it.
		other := auth.NewAuthenticator(noKeys{}, auth.Options{OIDC: newOIDC(t, auth.OIDCOptions{}, auth.IssuerConfig{Issuer: r.prov.Issuer, Audiences: []string{uiAudience}})})
		if _, err := other.Verify(ctx, tok); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("compact session at a gateway without UI sessions = %v, want ErrInvalidToken", err)
		}
		// It ends with the provider's token (300 s in this provider; the
		// test clock stood still since the rig started).
		r.clock.Advance(6 * time.Minute)
		defer r.clock.Advance(-6 * time.Minute)
		if _, err := a.Verify(ctx, tok); !errors.Is(err, auth.ErrInvalidToken) || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("compact session after the token's expiry = %v, want ErrInvalidToken (expired)", err)
		}
	})
}

func TestUILoginPublicClientAndIDToken(t *testing.T) {
	r := newUILoginRig(t)
	ctx := context.Background()
	start := r.srv.URL + "/start"

	t.Run("public client: PKCE alone, and the ID token when the access token is opaque", func(t *testing.T) {
		// Without a resource indicator the provider issues an opaque access
		// token; an issuer whose audiences include the UI's client id
		// accepts the ID token instead.
		a, l := r.login(t, []string{uiAudience, uiPublicClient}, auth.UILoginConfig{ClientID: uiPublicClient})
		c := newBrowserClient(t)
		tok, err := l.Finish(callback(c, r.prov.SignIn(t, c, r.prov.Begin(t, c, start), "alice")), r.cb)
		if err != nil {
			t.Fatalf("Finish: %v", err)
		}
		if claims := authtest.Decode(t, tok); claims["aud"] != uiPublicClient || claims["sub"] != "alice" {
			t.Fatalf("Finish returned claims %v, want alice's ID token", claims)
		}
		if p, err := a.Verify(ctx, tok); err != nil || p.Subject != "alice" {
			t.Fatalf("Verify = %+v, %v", p, err)
		}
		if !strings.HasSuffix(l.Name(), "with "+strings.TrimPrefix(r.prov.Issuer, "http://")) {
			t.Errorf("default Name() = %q, want the issuer's host", l.Name())
		}
	})

	t.Run("tokens for another audience are refused with the reason", func(t *testing.T) {
		_, l := r.login(t, []string{uiAudience}, auth.UILoginConfig{ClientID: uiPublicClient})
		c := newBrowserClient(t)
		_, err := l.Finish(callback(c, r.prov.SignIn(t, c, r.prov.Begin(t, c, start), "alice")), r.cb)
		if err == nil || !strings.Contains(err.Error(), "not accepted by this gateway") || !strings.Contains(err.Error(), "audience") {
			t.Fatalf("Finish = %v, want the tokens refused for their audience", err)
		}
	})
}

func TestNewOIDCLoginChecksItsConfig(t *testing.T) {
	iss := authtest.NewIssuer(t)
	o := newOIDC(t, auth.OIDCOptions{}, auth.IssuerConfig{Issuer: iss.URL, Audiences: []string{"mcpgw"}})
	withOIDC := auth.NewAuthenticator(noKeys{}, auth.Options{OIDC: o})
	s := newSealer(t)
	for _, tc := range []struct {
		name string
		a    *auth.Authenticator
		cfg  auth.UILoginConfig
		opts auth.UILoginOptions
		want string
	}{
		{"no OIDC", auth.NewAuthenticator(noKeys{}, auth.Options{}), auth.UILoginConfig{Issuer: iss.URL, ClientID: "ui"}, auth.UILoginOptions{Sealer: s}, "no OIDC issuer"},
		{"unknown issuer", withOIDC, auth.UILoginConfig{Issuer: "http://127.0.0.1:1", ClientID: "ui"}, auth.UILoginOptions{Sealer: s}, "not one of the configured issuers"},
		{"no client id", withOIDC, auth.UILoginConfig{Issuer: iss.URL}, auth.UILoginOptions{Sealer: s}, "client id is required"},
		{"reserved param", withOIDC, auth.UILoginConfig{Issuer: iss.URL, ClientID: "ui", Params: map[string]string{"redirect_uri": "http://evil"}}, auth.UILoginOptions{Sealer: s}, `"redirect_uri" is set by the gateway`},
		{"no sealer", withOIDC, auth.UILoginConfig{Issuer: iss.URL, ClientID: "ui"}, auth.UILoginOptions{}, "sealer is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := auth.NewOIDCLogin(tc.a, tc.cfg, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewOIDCLogin = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// A compact session is refused by an Authenticator without UI sessions.
	if _, err := withOIDC.Verify(context.Background(), "mcpgw-session:abc"); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("compact session without UI sign-in = %v, want ErrInvalidToken", err)
	}
}

func TestUILoginStartWithProviderDown(t *testing.T) {
	iss := authtest.NewIssuer(t)
	o := newOIDC(t, auth.OIDCOptions{}, auth.IssuerConfig{Issuer: iss.URL, Audiences: []string{"mcpgw"}})
	l, err := auth.NewOIDCLogin(auth.NewAuthenticator(noKeys{}, auth.Options{OIDC: o}), auth.UILoginConfig{Issuer: iss.URL, ClientID: "ui", Name: "Down IdP"}, auth.UILoginOptions{Sealer: newSealer(t)})
	if err != nil {
		t.Fatal(err)
	}
	iss.Close()
	w := httptest.NewRecorder()
	l.Start(w, httptest.NewRequest(http.MethodGet, "http://127.0.0.1/ui/login/start", nil), "http://127.0.0.1/ui/callback")
	if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), "Sign in with Down IdP is not available right now: the identity provider "+iss.URL+" cannot be reached") {
		t.Fatalf("Start with the provider down: %d %q", w.Code, w.Body.String())
	}
	if w.Header().Get("Set-Cookie") != "" || w.Header().Get("Location") != "" {
		t.Fatalf("Start with the provider down set a cookie or redirected: %v", w.Header())
	}
	w = httptest.NewRecorder()
	l.Start(w, httptest.NewRequest(http.MethodPost, "http://127.0.0.1/ui/login/start", nil), "http://127.0.0.1/ui/callback")
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST to Start: %d, want 405", w.Code)
	}
}
