package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"
)

// The web UI's sign-in with an OIDC provider: the authorization-code flow
// with PKCE (S256), a state and a nonce. Nothing is kept on the server: the
// flow's secrets travel in a short-lived cookie sealed with the gateway's
// key, and the result is a token that Authenticator.Verify accepts, so the
// same groups and policy apply to the UI as to the API.

// Sealer encrypts and authenticates short strings with the gateway's key
// (gateway.Sealer); aad binds a sealed value to its one use.
type Sealer interface {
	Seal(aad, plain string) string
	Unseal(aad, sealed string) (string, error)
}

// Errors of Finish. Each is wrapped in a sentence for the user, who sees it
// on the page; none ever holds a token, a code or a verifier.
var (
	// ErrNoSignIn: the callback came without a live sign-in cookie from
	// Start in this browser (missing, expired or not sealed by us).
	ErrNoSignIn = errors.New("no sign-in is in progress in this browser")
	// ErrSignInMismatch: the callback's state (or issuer) is not the one of
	// the sign-in this browser started.
	ErrSignInMismatch = errors.New("the identity provider's answer does not belong to the sign-in this browser started")
	// ErrSignInRefused: the identity provider declined, or refused the code.
	ErrSignInRefused = errors.New("the identity provider refused the sign-in")
)

const (
	// UIFlowTTL is how long a started sign-in may take at the provider.
	UIFlowTTL = 10 * time.Minute
	// DefaultMaxSessionToken is the longest token kept as it is in the UI
	// session cookie. The gateway seals it with a CSRF token and an expiry
	// (about 4/3 of the size plus 110 bytes), and browsers keep cookies of
	// up to 4096 bytes.
	DefaultMaxSessionToken = 2900

	flowCookie = "mcpgw_oidc_flow"
	// flowAAD and sessionAAD bind sealed values to their use; they hold a
	// NUL, which no other sealed value of the gateway's key does.
	flowAAD    = "\x00mcpgw-oidc-flow"
	sessionAAD = "\x00mcpgw-oidc-session"
	// sessionPrefix starts a compact session: the principal of a verified
	// provider token that was too large for a cookie. It never starts
	// like an API key (mcpgw_) or holds a dot, as a JWT does.
	sessionPrefix = "mcpgw-session:"
)

// reservedParams are the authorization request's own parameters, which
// UILoginConfig.Params may not override.
var reservedParams = []string{"client_id", "redirect_uri", "response_type", "scope", "state", "nonce",
	"code_challenge", "code_challenge_method", "response_mode", "request", "request_uri"}

// UILoginConfig is the web UI's OAuth client at one of the OIDC issuers.
type UILoginConfig struct {
	// Issuer is one of the issuers the Authenticator verifies.
	Issuer string
	// ClientID is the UI's client at the provider; its redirect URI is
	// <public URL>/ui/callback.
	ClientID string
	// ClientSecret, when set, authenticates the client (client_secret_basic);
	// empty means a public client that relies on PKCE alone.
	ClientSecret string
	// Scopes are asked for besides openid, e.g. a scope that puts groups
	// into tokens or names the gateway's API (api://mcpgw/.default).
	Scopes []string
	// Params are extra authorization request parameters, e.g. resource
	// (RFC 8707) for providers that issue access tokens per resource, or
	// audience (Auth0).
	Params map[string]string
	// Name is the provider's name on the sign-in button; default the
	// issuer's host.
	Name string
}

// UILoginOptions are the collaborators and limits of an OIDCLogin.
type UILoginOptions struct {
	// Sealer seals the sign-in cookie and compact sessions: the gateway's
	// cookie key. Required.
	Sealer Sealer
	// MaxSessionToken is the longest provider token returned as it is;
	// a longer one becomes a compact session (subject, groups, issuer,
	// expiry). Default DefaultMaxSessionToken.
	MaxSessionToken int
}

// OIDCLogin is the web UI's sign-in with an OIDC provider (the gateway's
// UILogin hook).
type OIDCLogin struct {
	cfg  UILoginConfig
	opts UILoginOptions
	a    *Authenticator
	iv   *issuerVerifier

	mu       sync.Mutex
	endpoint oauth2.Endpoint // from discovery, once it succeeded
}

// NewOIDCLogin returns the UI sign-in with cfg.Issuer, which must be one of
// a's OIDC issuers, and makes a accept the compact sessions it issues. Call
// it before a verifies any token.
func NewOIDCLogin(a *Authenticator, cfg UILoginConfig, opts UILoginOptions) (*OIDCLogin, error) {
	if a == nil || a.oidc == nil {
		return nil, errors.New("auth: ui sign-in: no OIDC issuer is configured")
	}
	iv, ok := a.oidc.issuers[cfg.Issuer]
	if !ok {
		return nil, fmt.Errorf("auth: ui sign-in: issuer %q is not one of the configured issuers", cfg.Issuer)
	}
	if strings.TrimSpace(cfg.ClientID) == "" {
		return nil, fmt.Errorf("auth: ui sign-in: issuer %q: client id is required", cfg.Issuer)
	}
	for k := range cfg.Params {
		if slices.Contains(reservedParams, k) {
			return nil, fmt.Errorf("auth: ui sign-in: issuer %q: parameter %q is set by the gateway itself", cfg.Issuer, k)
		}
	}
	if opts.Sealer == nil {
		return nil, errors.New("auth: ui sign-in: a sealer is required")
	}
	if opts.MaxSessionToken <= 0 {
		opts.MaxSessionToken = DefaultMaxSessionToken
	}
	if cfg.Name == "" {
		u, _ := url.Parse(cfg.Issuer) // NewOIDC checked it
		cfg.Name = u.Host
	}
	a.sessions = opts.Sealer
	return &OIDCLogin{cfg: cfg, opts: opts, a: a, iv: iv}, nil
}

// Name labels the sign-in button.
func (l *OIDCLogin) Name() string { return "Sign in with " + l.cfg.Name }

// uiFlow is the sealed content of the sign-in cookie.
type uiFlow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Redirect string `json:"r"`
	Expires  int64  `json:"e"`
}

// Start sends the browser to the provider's authorization endpoint with a
// fresh state, nonce and PKCE challenge, and keeps them in a sealed
// HttpOnly cookie that only the callback receives. The cookie is
// SameSite=Lax, not Strict: the provider's redirect back is a cross-site
// navigation, which must carry it.
func (l *OIDCLogin) Start(w http.ResponseWriter, r *http.Request, callbackURL string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		http.Error(w, "sign-in starts with GET", http.StatusMethodNotAllowed)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	conf, err := l.oauthConfig(ctx, callbackURL)
	if err != nil {
		zerolog.Ctx(r.Context()).Warn().Err(err).Str("issuer", l.cfg.Issuer).Msg("ui sign-in cannot start")
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, l.Name()+" is not available right now: "+err.Error()+". Go back and try again, or sign in with an API key.", http.StatusBadGateway)
		return
	}
	f := uiFlow{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier(),
		Redirect: callbackURL, Expires: l.a.now().Add(UIFlowTTL).Unix()}
	raw, _ := json.Marshal(f)
	cookiePath := "/"
	if u, err := url.Parse(callbackURL); err == nil && u.Path != "" {
		cookiePath = u.Path
	}
	http.SetCookie(w, &http.Cookie{
		Name: flowCookie, Value: l.opts.Sealer.Seal(flowAAD, string(raw)), Path: cookiePath,
		MaxAge: int(UIFlowTTL / time.Second), HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: r.TLS != nil || strings.HasPrefix(strings.ToLower(callbackURL), "https://"),
	})
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(f.Verifier), oauth2.SetAuthURLParam("nonce", f.Nonce)}
	for k, v := range l.cfg.Params {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, conf.AuthCodeURL(f.State, opts...), http.StatusFound)
}

// Finish checks the callback against the sign-in cookie (state, issuer,
// expiry), exchanges the code with the PKCE verifier, checks the ID
// token's signature, audience and nonce, and verifies the access token (or,
// failing that, the ID token) with the gateway's OIDC verifier. It returns
// that token, or a compact session of its principal when the token is too
// large for a cookie. Its errors are sentences for the user.
func (l *OIDCLogin) Finish(r *http.Request, callbackURL string) (string, error) {
	if r.Method != http.MethodGet {
		return "", fmt.Errorf("%w: the callback must be a GET", ErrSignInMismatch)
	}
	f, err := l.readFlow(r)
	if err != nil {
		return "", err
	}
	q := r.URL.Query()
	if st := q.Get("state"); st == "" || subtle.ConstantTimeCompare([]byte(st), []byte(f.State)) != 1 {
		return "", fmt.Errorf("%w (state mismatch); start the sign-in again", ErrSignInMismatch)
	}
	// RFC 9207: a provider that names itself must be the one asked.
	if iss := q.Get("iss"); iss != "" && iss != l.cfg.Issuer {
		return "", fmt.Errorf("%w (it comes from another issuer); start the sign-in again", ErrSignInMismatch)
	}
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("%w: %s", ErrSignInRefused, describeOAuthError(e))
	}
	code := q.Get("code")
	if code == "" {
		return "", fmt.Errorf("%w: its answer holds no authorization code", ErrSignInRefused)
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	conf, err := l.oauthConfig(ctx, f.Redirect)
	if err != nil {
		return "", err
	}
	tok, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, l.a.oidc.opts.HTTPClient), code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && (re.ErrorCode == "invalid_client" || re.ErrorCode == "unauthorized_client") {
			return "", fmt.Errorf("%w: it did not accept the gateway's client %q (%s); the administrator should check its client id and secret",
				ErrSignInRefused, l.cfg.ClientID, describeTokenError(re))
		}
		if errors.As(err, &re) {
			return "", fmt.Errorf("%w: it did not accept the authorization code (%s)", ErrSignInRefused, describeTokenError(re))
		}
		return "", fmt.Errorf("the identity provider's token endpoint cannot be reached: %v", stripURLQuery(err))
	}
	idToken, _ := tok.Extra("id_token").(string)
	if idToken == "" {
		return "", fmt.Errorf("the identity provider returned no ID token: is the openid scope allowed for client %q?", l.cfg.ClientID)
	}
	if err := l.checkIDToken(ctx, idToken, f.Nonce); err != nil {
		return "", err
	}
	raw, p, err := l.verifyTokens(ctx, tok.AccessToken, idToken)
	if err != nil {
		return "", err
	}
	if len(raw) <= l.opts.MaxSessionToken {
		return raw, nil
	}
	return l.compact(raw, p)
}

// readFlow opens the sign-in cookie.
func (l *OIDCLogin) readFlow(r *http.Request) (uiFlow, error) {
	var f uiFlow
	c, err := r.Cookie(flowCookie)
	if err != nil || c.Value == "" {
		return f, fmt.Errorf("%w: its sign-in cookie is missing (a sign-in must finish within %s, in the browser that started it, with cookies enabled); start the sign-in again",
			ErrNoSignIn, UIFlowTTL)
	}
	plain, err := l.opts.Sealer.Unseal(flowAAD, c.Value)
	if err != nil || json.Unmarshal([]byte(plain), &f) != nil || f.State == "" || f.Verifier == "" {
		return uiFlow{}, fmt.Errorf("%w: its sign-in cookie was not made by this gateway; start the sign-in again", ErrNoSignIn)
	}
	if !l.a.now().Before(time.Unix(f.Expires, 0)) {
		return uiFlow{}, fmt.Errorf("%w: the sign-in started more than %s ago; start it again", ErrNoSignIn, UIFlowTTL)
	}
	return f, nil
}

// oauthConfig is the OAuth client with the provider's endpoints, read by
// discovery at the first sign-in and kept once it succeeded.
func (l *OIDCLogin) oauthConfig(ctx context.Context, redirect string) (*oauth2.Config, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.endpoint.AuthURL == "" {
		prov, err := oidc.NewProvider(oidc.ClientContext(ctx, l.a.oidc.opts.HTTPClient), l.cfg.Issuer)
		if err != nil {
			msg := err.Error() // may quote the provider's answer: keep it short
			if len(msg) > 200 {
				msg = msg[:200] + "…"
			}
			return nil, fmt.Errorf("the identity provider %s cannot be reached (%s)", l.cfg.Issuer, msg)
		}
		ep := prov.Endpoint()
		if ep.AuthURL == "" || ep.TokenURL == "" {
			return nil, fmt.Errorf("the identity provider %s does not publish an authorization and a token endpoint", l.cfg.Issuer)
		}
		ep.AuthStyle = oauth2.AuthStyleInHeader
		if l.cfg.ClientSecret == "" {
			ep.AuthStyle = oauth2.AuthStyleInParams // a public client sends only its id
		}
		l.endpoint = ep
	}
	return &oauth2.Config{
		ClientID: l.cfg.ClientID, ClientSecret: l.cfg.ClientSecret, Endpoint: l.endpoint,
		RedirectURL: redirect, Scopes: append([]string{oidc.ScopeOpenID}, l.cfg.Scopes...),
	}, nil
}

// checkIDToken verifies the ID token's signature (with the issuer's cached
// keys), issuer, audience (the UI's client id), expiry and nonce.
func (l *OIDCLogin) checkIDToken(ctx context.Context, raw, nonce string) error {
	ks, err := l.iv.keySet(ctx)
	if err != nil {
		return fmt.Errorf("the identity provider's keys cannot be read: %v", err)
	}
	v := oidc.NewVerifier(l.cfg.Issuer, ks, &oidc.Config{
		ClientID: l.cfg.ClientID, SupportedSigningAlgs: signingAlgs, Now: l.a.oidc.opts.Now,
	})
	t, err := v.Verify(oidc.ClientContext(ctx, l.a.oidc.opts.HTTPClient), raw)
	if err != nil {
		return fmt.Errorf("the identity provider's ID token is not valid: %v", err)
	}
	if t.Nonce == "" || subtle.ConstantTimeCompare([]byte(t.Nonce), []byte(nonce)) != 1 {
		return fmt.Errorf("%w (the ID token's nonce is not this sign-in's); start the sign-in again", ErrSignInMismatch)
	}
	return nil
}

// verifyTokens verifies the access token with the gateway's OIDC verifier,
// and the ID token when the access token does not pass (it is opaque, or
// not meant for the gateway's audience), and returns the one that passed.
func (l *OIDCLogin) verifyTokens(ctx context.Context, access, id string) (string, *Principal, error) {
	var errs []string
	for _, c := range []struct{ kind, raw string }{{"access token", access}, {"ID token", id}} {
		if c.raw == "" {
			errs = append(errs, c.kind+": none was issued")
			continue
		}
		if !looksLikeJWT(c.raw) {
			errs = append(errs, c.kind+": it is not a JWT")
			continue
		}
		p, err := l.a.oidc.Verify(ctx, c.raw)
		if err == nil && p.Issuer != l.cfg.Issuer {
			err = fmt.Errorf("it was issued by %s", p.Issuer)
		}
		if err == nil {
			return c.raw, p, nil
		}
		errs = append(errs, c.kind+": "+strings.TrimPrefix(err.Error(), ErrInvalidToken.Error()+": "))
	}
	return "", nil, fmt.Errorf("the identity provider's tokens are not accepted by this gateway (%s); the issuer's audience must be one its access tokens carry",
		strings.Join(errs, "; "))
}

// uiSession is a compact session: the principal of a verified token.
type uiSession struct {
	Subject string   `json:"s"`
	Groups  []string `json:"g,omitempty"`
	Issuer  string   `json:"i"`
	Expires int64    `json:"e"`
}

// compact keeps only what the policy needs of a verified token that is
// too large for a cookie, until the token's own expiry.
func (l *OIDCLogin) compact(raw string, p *Principal) (string, error) {
	exp, ok := tokenExpiry(raw)
	if !ok {
		return "", errors.New("the identity provider's token has no expiry")
	}
	b, _ := json.Marshal(uiSession{Subject: p.Subject, Groups: p.Groups, Issuer: p.Issuer, Expires: exp.Unix()})
	s := sessionPrefix + l.opts.Sealer.Seal(sessionAAD, string(b))
	if len(s) > l.opts.MaxSessionToken {
		return "", fmt.Errorf("your identity is too large to keep in a browser cookie (%d groups); ask for fewer groups in the token, or sign in with an API key", len(p.Groups))
	}
	return s, nil
}

// verifySession opens a compact session of an OIDCLogin. It lasts until
// the expiry of the token it was made from, and only while its issuer is
// still configured.
func (a *Authenticator) verifySession(token string) (*Principal, error) {
	if a.sessions == nil || a.oidc == nil {
		return nil, fmt.Errorf("%w: UI sessions are not enabled", ErrInvalidToken)
	}
	plain, err := a.sessions.Unseal(sessionAAD, strings.TrimPrefix(token, sessionPrefix))
	var s uiSession
	if err != nil || json.Unmarshal([]byte(plain), &s) != nil || s.Subject == "" {
		return nil, fmt.Errorf("%w: the UI session was not issued by this gateway", ErrInvalidToken)
	}
	if !a.now().Before(time.Unix(s.Expires, 0)) {
		return nil, fmt.Errorf("%w: the UI session expired at %s", ErrInvalidToken, time.Unix(s.Expires, 0).UTC().Format(time.RFC3339))
	}
	if _, ok := a.oidc.issuers[s.Issuer]; !ok {
		return nil, fmt.Errorf("%w: issuer %q is not configured", ErrInvalidToken, s.Issuer)
	}
	return &Principal{Subject: s.Subject, Groups: s.Groups, Issuer: s.Issuer, Method: "oidc"}, nil
}

// keySet returns the issuer's cached key set, running discovery if needed.
func (iv *issuerVerifier) keySet(ctx context.Context) (oidc.KeySet, error) {
	if _, err := iv.ready(ctx, false); err != nil {
		return nil, err
	}
	iv.mu.Lock()
	defer iv.mu.Unlock()
	return iv.keys, nil
}

// tokenExpiry reads exp of a JWT whose signature was already verified.
func tokenExpiry(raw string) (time.Time, bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var c struct {
		Exp any `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil {
		return time.Time{}, false
	}
	return numericDate(c.Exp)
}

// describeOAuthError puts an authorization error code (RFC 6749 4.1.2.1)
// into words. The code comes from the browser's URL, so only well-formed
// codes are repeated, and never the free-text description.
func describeOAuthError(code string) string {
	switch code {
	case "access_denied":
		return "access was denied, or the consent declined (access_denied)"
	case "login_required", "consent_required", "interaction_required":
		return "it needs you to sign in or consent there first (" + code + ")"
	case "temporarily_unavailable", "server_error":
		return "it is not available right now (" + code + "); try again later"
	case "unauthorized_client", "invalid_client", "invalid_request", "invalid_scope", "unsupported_response_type":
		return "the gateway's client is not set up for this sign-in (" + code + "); ask the administrator to check the client id, its redirect URI and scopes"
	}
	if len(code) <= 64 && strings.Trim(code, "abcdefghijklmnopqrstuvwxyz_") == "" {
		return "(" + code + ")"
	}
	return "(an error it did not name properly)"
}

// describeTokenError is the token endpoint's error code and description,
// never its raw body.
func describeTokenError(re *oauth2.RetrieveError) string {
	if re.ErrorCode == "" {
		if re.Response != nil {
			return "HTTP " + re.Response.Status
		}
		return "no error code"
	}
	s := re.ErrorCode
	if d := strings.TrimSpace(re.ErrorDescription); d != "" {
		if len(d) > 200 {
			d = d[:200] + "…"
		}
		s += ": " + d
	}
	return s
}

// stripURLQuery keeps a transport error's text without the query of a URL
// it names.
func stripURLQuery(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		u := ue.URL
		if i := strings.IndexByte(u, '?'); i >= 0 {
			u = u[:i]
		}
		return ue.Op + " " + u + ": " + ue.Err.Error()
	}
	return err.Error()
}

func randomString() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
