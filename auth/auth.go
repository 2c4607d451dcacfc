// Package auth decides who is calling the gateway (ingress verification) and
// what they may do (the policy decision). Verification turns a request into a
// Principal; Allowed is the one decision every surface asks.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/registry"
)

// Errors of ingress verification.
var (
	ErrNoToken      = errors.New("no bearer token")
	ErrInvalidToken = errors.New("invalid or expired token")
)

// APIKeyPrefix starts every gateway API key, so keys are recognizable in
// secret scanners and never confused with JWTs.
const APIKeyPrefix = "mcpgw_"

// AdminKeyName is the name of the local admin key created at first start.
const AdminKeyName = "local-admin"

// AdminTokenFile is the file, under the data directory, that holds the local
// admin key (mode 0600).
const AdminTokenFile = "admin.token"

// Principal is a verified caller.
type Principal struct {
	Subject string
	Groups  []string
	Admin   bool
	// Method says how the caller was verified: "api-key", "oidc" or "anonymous".
	Method string
	// Issuer is the OIDC issuer that vouched for the caller ("" otherwise).
	Issuer string
}

// Anonymous is the principal of a request without a token.
var Anonymous = &Principal{Subject: "anonymous", Method: "anonymous"}

// KeyStore is the part of the registry store that API-key verification needs.
type KeyStore interface {
	APIKeyByHash(ctx context.Context, hash string) (registry.APIKey, error)
}

// Options configure ingress verification.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OIDC, when set, verifies JWT access tokens of its issuers.
	OIDC *OIDC
}

// Authenticator verifies ingress tokens.
type Authenticator struct {
	keys KeyStore
	oidc *OIDC
	now  func() time.Time
	// sessions opens the compact UI sessions of an OIDCLogin; nil until
	// NewOIDCLogin sets it.
	sessions Sealer
}

// NewAuthenticator returns an Authenticator that accepts gateway API keys
// found in keys and, when opts.OIDC is set, JWTs of its issuers.
func NewAuthenticator(keys KeyStore, opts Options) *Authenticator {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Authenticator{keys: keys, oidc: opts.OIDC, now: now}
}

// Issuers returns the OIDC issuers accepted for ingress (none without OIDC).
func (a *Authenticator) Issuers() []string {
	if a.oidc == nil {
		return nil
	}
	return a.oidc.Issuers()
}

// IngressToken returns the bearer token that identifies the caller to the
// gateway: X-Authorization, else Authorization, except for passthrough
// servers, where Authorization belongs to the upstream and only
// X-Authorization counts.
func IngressToken(h http.Header, passthrough bool) string {
	if t := bearer(h.Get("X-Authorization")); t != "" {
		return t
	}
	if passthrough {
		return ""
	}
	return bearer(h.Get("Authorization"))
}

func bearer(v string) string {
	v = strings.TrimSpace(v)
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

// Verify turns a bearer token into a Principal. An empty token is
// ErrNoToken; a token that does not verify is ErrInvalidToken.
func (a *Authenticator) Verify(ctx context.Context, token string) (*Principal, error) {
	if token == "" {
		return nil, ErrNoToken
	}
	if strings.HasPrefix(token, sessionPrefix) {
		return a.verifySession(token)
	}
	if !strings.HasPrefix(token, APIKeyPrefix) {
		if a.oidc != nil && looksLikeJWT(token) {
			return a.oidc.Verify(ctx, token)
		}
		return nil, ErrInvalidToken
	}
	k, err := a.keys.APIKeyByHash(ctx, HashKey(token))
	if errors.Is(err, registry.ErrNotFound) {
		return nil, ErrInvalidToken
	}
	if err != nil {
		return nil, fmt.Errorf("auth: verify api key: %w", err)
	}
	if !k.ExpiresAt.IsZero() && !a.now().Before(k.ExpiresAt) {
		return nil, ErrInvalidToken
	}
	return &Principal{Subject: "apikey:" + k.Name, Groups: k.Groups, Admin: k.Admin, Method: "api-key"}, nil
}

// HashKey returns the stored form of an API key: hex SHA-256. Keys carry 256
// bits of randomness, so a fast hash is enough (no password stretching).
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// NewAPIKey returns a fresh random API key.
func NewAPIKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: new api key: %w", err)
	}
	return APIKeyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// KeyWriter is the part of the store that creating keys needs.
type KeyWriter interface {
	KeyStore
	PutAPIKey(ctx context.Context, k registry.APIKey) error
}

// EnsureAdminKey makes sure the local admin key exists: when
// <dataDir>/admin.token holds a key that the store knows, it is kept;
// otherwise a new key is created, stored hashed and written to the file with
// mode 0600. It returns the file's path.
func EnsureAdminKey(ctx context.Context, store KeyWriter, dataDir string) (string, error) {
	file := filepath.Join(dataDir, AdminTokenFile)
	if b, err := os.ReadFile(file); err == nil {
		tok := strings.TrimSpace(string(b))
		if _, err := store.APIKeyByHash(ctx, HashKey(tok)); err == nil {
			return file, nil
		}
	}
	tok, err := NewAPIKey()
	if err != nil {
		return "", err
	}
	if err := store.PutAPIKey(ctx, registry.APIKey{Name: AdminKeyName, Hash: HashKey(tok), Admin: true, Groups: []string{AdminGroup}, CreatedAt: time.Now()}); err != nil {
		return "", fmt.Errorf("auth: store admin key: %w", err)
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("auth: write admin key: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		return "", fmt.Errorf("auth: write admin key: %w", err)
	}
	return file, nil
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal of ctx, or Anonymous.
func FromContext(ctx context.Context) *Principal {
	if p, ok := ctx.Value(ctxKey{}).(*Principal); ok && p != nil {
		return p
	}
	return Anonymous
}
