package auth

import (
	"context"
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
)

// DefaultGroupsClaim is the claim groups are read from unless configured.
const DefaultGroupsClaim = "groups"

// Defaults of OIDCOptions.
const (
	DefaultLeeway     = 30 * time.Second
	DefaultMinRefresh = 10 * time.Second
	DefaultMaxKeyAge  = time.Hour
)

// IssuerConfig is one OIDC issuer accepted for ingress.
type IssuerConfig struct {
	// Issuer is the issuer URL exactly as in the tokens' iss claim;
	// discovery is read from Issuer + "/.well-known/openid-configuration".
	Issuer string
	// Audiences: a token must name one of them in aud (or, for tokens
	// without aud such as Cognito access tokens, in client_id).
	Audiences []string
	// GroupsClaim names the claim holding the caller's groups; a dotted
	// name such as realm_access.roles reaches into objects. Default "groups".
	GroupsClaim string
	// ScopeGroups maps an OAuth scope (from scope or scp) to groups the
	// caller is then also in, for providers that grant scopes, not groups.
	ScopeGroups map[string][]string
}

// OIDCOptions tune verification; zero values take the defaults.
type OIDCOptions struct {
	// HTTPClient fetches discovery documents and key sets; default: a
	// client with a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Leeway is the clock skew allowed on exp and nbf; default 30 s.
	Leeway time.Duration
	// MinRefresh is the least time between two fetches of an issuer's
	// discovery document or key set caused by tokens (an unknown key id),
	// so that made-up key ids cannot turn the gateway into a load on the
	// identity provider; default 10 s.
	MinRefresh time.Duration
	// MaxKeyAge is the age after which cached keys are re-read in the
	// background (keeping them if the provider cannot be reached), so that
	// keys the provider withdrew stop verifying; default 1 h.
	MaxKeyAge time.Duration
	// Log receives warnings about unreachable providers.
	Log zerolog.Logger
}

// OIDC verifies JWT access tokens of several issuers with discovery, cached
// key sets and key rotation (coreos/go-oidc for discovery and signature,
// issuer and algorithm checks; audience, exp and nbf are checked here with
// the configured leeway).
type OIDC struct {
	opts    OIDCOptions
	issuers map[string]*issuerVerifier
	order   []string
}

// signingAlgs are the accepted JWS algorithms: asymmetric only, so neither
// "none" nor an HMAC keyed with a public key can ever verify.
var signingAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512, oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.ES256, oidc.ES384, oidc.ES512, oidc.EdDSA,
}

// NewOIDC validates cfgs and returns a verifier for them. It does no network
// I/O: discovery happens in Prefetch or at the first token of each issuer.
func NewOIDC(cfgs []IssuerConfig, opts OIDCOptions) (*OIDC, error) {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Leeway <= 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.MinRefresh == 0 {
		opts.MinRefresh = DefaultMinRefresh
	}
	if opts.MaxKeyAge <= 0 {
		opts.MaxKeyAge = DefaultMaxKeyAge
	}
	o := &OIDC{opts: opts, issuers: map[string]*issuerVerifier{}}
	var errs []error
	for _, c := range cfgs {
		u, err := url.Parse(c.Issuer)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("issuer %q is not an absolute http(s) URL", c.Issuer))
			continue
		}
		if _, dup := o.issuers[c.Issuer]; dup {
			errs = append(errs, fmt.Errorf("issuer %q is configured twice", c.Issuer))
			continue
		}
		if len(c.Audiences) == 0 {
			errs = append(errs, fmt.Errorf("issuer %q has no audience; set the audience its access tokens carry for this gateway", c.Issuer))
			continue
		}
		if c.GroupsClaim == "" {
			c.GroupsClaim = DefaultGroupsClaim
		}
		o.issuers[c.Issuer] = &issuerVerifier{cfg: c, o: o}
		o.order = append(o.order, c.Issuer)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("auth: oidc: %w", err)
	}
	return o, nil
}

// Issuers returns the configured issuer URLs in configuration order.
func (o *OIDC) Issuers() []string { return slices.Clone(o.order) }

// Prefetch runs discovery and reads the key set of every issuer now, so that
// tokens verify from cached keys even if a provider is down later. Failures
// are logged and retried when tokens arrive.
func (o *OIDC) Prefetch(ctx context.Context) {
	var wg sync.WaitGroup
	for _, iss := range o.order {
		iv := o.issuers[iss]
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := iv.ready(ctx, true); err != nil {
				o.opts.Log.Warn().Str("issuer", iss).Err(err).Msg("identity provider not reachable yet; its tokens are refused until it is")
			}
		}()
	}
	wg.Wait()
}

// Verify checks a JWT access token and returns its principal. Every failure
// matches ErrInvalidToken; the error text names the reason but never the
// token.
func (o *OIDC) Verify(ctx context.Context, raw string) (*Principal, error) {
	hdr, claims, err := peek(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	switch strings.ToLower(hdr.Typ) {
	case "", "jwt", "at+jwt", "application/at+jwt":
	default:
		return nil, fmt.Errorf("%w: token type %q is not an access token", ErrInvalidToken, hdr.Typ)
	}
	iv, ok := o.issuers[claims.Iss]
	if !ok {
		return nil, fmt.Errorf("%w: issuer %q is not configured", ErrInvalidToken, claims.Iss)
	}
	v, err := iv.ready(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	tok, err := v.Verify(oidc.ClientContext(ctx, o.opts.HTTPClient), raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	var all map[string]any
	if err := tok.Claims(&all); err != nil {
		return nil, fmt.Errorf("%w: claims: %v", ErrInvalidToken, err)
	}
	if err := o.checkTimes(all); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if !audienceOK(all, iv.cfg.Audiences) {
		return nil, fmt.Errorf("%w: audience %v is not one of %v", ErrInvalidToken, all["aud"], iv.cfg.Audiences)
	}
	p := &Principal{Issuer: iv.cfg.Issuer, Method: "oidc"}
	for _, k := range []string{"sub", "client_id", "azp"} {
		if s, _ := all[k].(string); s != "" {
			p.Subject = s
			break
		}
	}
	if p.Subject == "" {
		return nil, fmt.Errorf("%w: token has no sub or client_id", ErrInvalidToken)
	}
	p.Groups = iv.groups(all)
	return p, nil
}

func (o *OIDC) checkTimes(c map[string]any) error {
	now := o.opts.Now()
	exp, ok := numericDate(c["exp"])
	if !ok {
		return errors.New("token has no exp")
	}
	if !now.Before(exp.Add(o.opts.Leeway)) {
		return fmt.Errorf("token expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if v, present := c["nbf"]; present {
		nbf, ok := numericDate(v)
		if !ok {
			return errors.New("nbf is not a number")
		}
		if now.Add(o.opts.Leeway).Before(nbf) {
			return fmt.Errorf("token is not valid before %s", nbf.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

func numericDate(v any) (time.Time, bool) {
	f, ok := v.(float64)
	if !ok {
		return time.Time{}, false
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), true
}

// audienceOK: aud (a string or a list) must hold one of want; a token with
// no aud at all may name one in client_id, as Cognito access tokens do.
func audienceOK(c map[string]any, want []string) bool {
	var auds []string
	switch a := c["aud"].(type) {
	case string:
		auds = []string{a}
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok {
				auds = append(auds, s)
			}
		}
	case nil:
		if cid, ok := c["client_id"].(string); ok {
			auds = []string{cid}
		}
	}
	for _, a := range auds {
		if slices.Contains(want, a) {
			return true
		}
	}
	return false
}

// groups reads the configured groups claim and adds the groups mapped from
// the token's scopes. Keycloak's full group paths ("/support-team") also
// count by their last segment.
func (iv *issuerVerifier) groups(c map[string]any) []string {
	var out []string
	add := func(g string) {
		if g != "" && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	for _, g := range stringsOf(claimPath(c, iv.cfg.GroupsClaim)) {
		add(g)
		if strings.HasPrefix(g, "/") {
			add(g[strings.LastIndexByte(g, '/')+1:])
		}
	}
	if len(iv.cfg.ScopeGroups) > 0 {
		var scopes []string
		if s, ok := c["scope"].(string); ok {
			scopes = strings.Fields(s)
		}
		switch s := c["scp"].(type) {
		case string:
			scopes = append(scopes, strings.Fields(s)...)
		case []any:
			scopes = append(scopes, stringsOf(s)...)
		}
		for _, s := range scopes {
			for _, g := range iv.cfg.ScopeGroups[s] {
				add(g)
			}
		}
	}
	return out
}

// claimPath finds name in c, first as a whole key, then as a dotted path.
func claimPath(c map[string]any, name string) any {
	if v, ok := c[name]; ok {
		return v
	}
	var cur any = c
	for _, part := range strings.Split(name, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

func stringsOf(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

type jwtHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ"`
	Kid string `json:"kid"`
}

type peekClaims struct {
	Iss string `json:"iss"`
}

// peek reads the header and issuer of a compact JWS without trusting them:
// they only choose the verifier, which then checks everything.
func peek(raw string) (jwtHeader, peekClaims, error) {
	var h jwtHeader
	var c peekClaims
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return h, c, errors.New("not a compact JWT")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &h) != nil {
		return h, c, errors.New("malformed JWT header")
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(pb, &c) != nil {
		return h, c, errors.New("malformed JWT payload")
	}
	return h, c, nil
}

// looksLikeJWT tells a JWT from other bearer tokens without verifying it.
func looksLikeJWT(tok string) bool {
	return strings.Count(tok, ".") == 2
}

// issuerVerifier is one issuer: its discovery result and key cache.
type issuerVerifier struct {
	cfg IssuerConfig
	o   *OIDC

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	keys     *keyCache
	tried    time.Time
	err      error
}

// ready returns the issuer's verifier, running discovery when it has not
// succeeded yet (at most once per MinRefresh unless force).
func (iv *issuerVerifier) ready(ctx context.Context, force bool) (*oidc.IDTokenVerifier, error) {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	if iv.verifier != nil {
		if force {
			if _, err := iv.keys.refresh(ctx, true); err != nil {
				return iv.verifier, err
			}
		}
		return iv.verifier, nil
	}
	now := iv.o.opts.Now()
	if !force && !iv.tried.IsZero() && now.Sub(iv.tried) < iv.o.opts.MinRefresh {
		return nil, fmt.Errorf("identity provider %s is not reachable: %v", iv.cfg.Issuer, iv.err)
	}
	iv.tried = now
	pctx := oidc.ClientContext(ctx, iv.o.opts.HTTPClient)
	prov, err := oidc.NewProvider(pctx, iv.cfg.Issuer)
	if err != nil {
		iv.err = err
		return nil, fmt.Errorf("identity provider %s is not reachable: %w", iv.cfg.Issuer, err)
	}
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := prov.Claims(&meta); err != nil || meta.JWKSURI == "" {
		iv.err = errors.New("discovery document has no jwks_uri")
		return nil, fmt.Errorf("identity provider %s: %w", iv.cfg.Issuer, iv.err)
	}
	iv.keys = newKeyCache(meta.JWKSURI, iv.o.opts)
	iv.verifier = oidc.NewVerifier(iv.cfg.Issuer, iv.keys, &oidc.Config{
		SkipClientIDCheck:    true, // audiences are checked by audienceOK (several, and client_id)
		SkipExpiryCheck:      true, // exp and nbf are checked by checkTimes with the leeway
		SupportedSigningAlgs: signingAlgs,
		Now:                  iv.o.opts.Now,
	})
	iv.err = nil
	if _, err := iv.keys.refresh(ctx, true); err != nil {
		return iv.verifier, err
	}
	return iv.verifier, nil
}
