// Package authtest runs identity providers for tests, on 127.0.0.1 only: a
// hand-driven Issuer (go-jose keys behind an httptest discovery and JWKS
// server) for the edge cases a real provider will not produce (expired,
// forged, rotated, unreachable), and the real oidc-provider npm package
// (StartProvider) for the flows a user runs.
package authtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Issuer is a minimal OIDC issuer: discovery at
// /.well-known/openid-configuration and the key set at /jwks. It signs
// whatever claims a test asks for.
type Issuer struct {
	// URL is the issuer URL (also the iss of the tokens it signs).
	URL string

	srv *httptest.Server
	// JWKSFetches counts the key set requests served.
	JWKSFetches atomic.Int64

	mu        sync.Mutex
	current   *key
	published []*key
	down      bool
}

type key struct {
	kid  string
	priv *rsa.PrivateKey
}

func newKey(t testing.TB) *key {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &key{kid: "k-" + base64.RawURLEncoding.EncodeToString(b[:]), priv: priv}
}

// NewIssuer starts an issuer with one published RSA key; it stops when the
// test ends.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	i := &Issuer{current: newKey(t)}
	i.published = []*key{i.current}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if i.isDown() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, map[string]any{
			"issuer":                                i.URL,
			"jwks_uri":                              i.URL + "/jwks",
			"token_endpoint":                        i.URL + "/token",
			"authorization_endpoint":                i.URL + "/auth",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		i.JWKSFetches.Add(1)
		if i.isDown() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		i.mu.Lock()
		set := jose.JSONWebKeySet{}
		for _, k := range i.published {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: "RS256", Use: "sig"})
		}
		i.mu.Unlock()
		writeJSON(w, set)
	})
	i.srv = httptest.NewServer(mux)
	t.Cleanup(i.srv.Close)
	i.URL = i.srv.URL
	return i
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (i *Issuer) isDown() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.down
}

// SetDown makes discovery and the key set answer 503 (true) or work again.
func (i *Issuer) SetDown(down bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.down = down
}

// Close stops the issuer's server for good: the provider is unreachable.
func (i *Issuer) Close() { i.srv.Close() }

// Rotate publishes a new key and signs with it from now on. The old key stays
// published until Retire.
func (i *Issuer) Rotate(t testing.TB) {
	k := newKey(t)
	i.mu.Lock()
	defer i.mu.Unlock()
	i.current = k
	i.published = append(i.published, k)
}

// Retire unpublishes every key but the current one.
func (i *Issuer) Retire() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.published = []*key{i.current}
}

// Claims returns typical access-token claims for aud, valid for five
// minutes, with groups when given.
func (i *Issuer) Claims(sub, aud string, groups ...string) map[string]any {
	now := time.Now()
	c := map[string]any{
		"iss": i.URL, "sub": sub, "aud": aud, "client_id": sub,
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
	if len(groups) > 0 {
		c["groups"] = groups
	}
	return c
}

// Sign signs claims with the current key (RS256, typ at+jwt).
func (i *Issuer) Sign(t testing.TB, claims map[string]any) string {
	i.mu.Lock()
	k := i.current
	i.mu.Unlock()
	return SignRS256(t, k.priv, k.kid, "at+jwt", claims)
}

// SignUnpublished signs claims with a fresh key the issuer never published,
// under a key id it does not know.
func (i *Issuer) SignUnpublished(t testing.TB, claims map[string]any) string {
	k := newKey(t)
	return SignRS256(t, k.priv, k.kid, "at+jwt", claims)
}

// SignTyp signs claims with the current key and the given typ header.
func (i *Issuer) SignTyp(t testing.TB, typ string, claims map[string]any) string {
	i.mu.Lock()
	k := i.current
	i.mu.Unlock()
	return SignRS256(t, k.priv, k.kid, typ, claims)
}

// CurrentKID is the key id the issuer signs with.
func (i *Issuer) CurrentKID() string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.current.kid
}

// PublicKeyPEM is the current public key as PEM, the "secret" of the
// classic HS256 key-confusion forgery.
func (i *Issuer) PublicKeyPEM(t testing.TB) []byte {
	i.mu.Lock()
	k := i.current
	i.mu.Unlock()
	der, err := x509.MarshalPKIXPublicKey(&k.priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// SignRS256 signs claims with priv under kid and typ.
func SignRS256(t testing.TB, priv *rsa.PrivateKey, kid, typ string, claims map[string]any) string {
	t.Helper()
	return sign(t, jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: priv, KeyID: kid}}, typ, claims)
}

// SignHS256 signs claims with an HMAC secret: the forgery that succeeds
// against verifiers that let the token choose its algorithm.
func SignHS256(t testing.TB, secret []byte, kid string, claims map[string]any) string {
	t.Helper()
	return sign(t, jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: secret, KeyID: kid}}, "JWT", claims)
}

// Unsigned returns claims as an "alg": "none" JWT with an empty signature.
func Unsigned(claims map[string]any, kid string) string {
	h, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": kid})
	p, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
}

func sign(t testing.TB, sk jose.SigningKey, typ string, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	s, err := jose.NewSigner(sk, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Decode returns the unverified claims of a JWT, for assertions.
func Decode(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	return c
}
