package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/auth/authtest"
)

// nullSealer satisfies Sealer for tests that never seal.
type nullSealer struct{}

func (nullSealer) Seal(_, plain string) string             { return plain }
func (nullSealer) Unseal(_, sealed string) (string, error) { return sealed, nil }

// TestCheckIDToken covers what a real provider never gets wrong: the ID
// token of the callback must be signed by the issuer, for the UI's client,
// unexpired, and carry this sign-in's nonce.
func TestCheckIDToken(t *testing.T) {
	iss := authtest.NewIssuer(t)
	o, err := NewOIDC([]IssuerConfig{{Issuer: iss.URL, Audiences: []string{"mcpgw"}}}, OIDCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := NewOIDCLogin(NewAuthenticator(nil, Options{OIDC: o}), UILoginConfig{Issuer: iss.URL, ClientID: "ui"}, UILoginOptions{Sealer: nullSealer{}})
	if err != nil {
		t.Fatal(err)
	}
	idToken := func(mod func(map[string]any)) string {
		c := map[string]any{"iss": iss.URL, "sub": "alice", "aud": "ui", "nonce": "n-1",
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
		if mod != nil {
			mod(c)
		}
		return iss.SignTyp(t, "JWT", c)
	}
	ctx := context.Background()
	if err := l.checkIDToken(ctx, idToken(nil), "n-1"); err != nil {
		t.Fatalf("a good ID token: %v", err)
	}
	for _, tc := range []struct {
		name  string
		raw   string
		nonce string
		want  error
	}{
		{"other nonce", idToken(nil), "n-2", ErrSignInMismatch},
		{"no nonce", idToken(func(c map[string]any) { delete(c, "nonce") }), "n-1", ErrSignInMismatch},
		{"other client", idToken(func(c map[string]any) { c["aud"] = "another-app" }), "n-1", nil},
		{"expired", idToken(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), "n-1", nil},
		{"unpublished key", iss.SignUnpublished(t, map[string]any{"iss": iss.URL, "aud": "ui", "nonce": "n-1", "exp": time.Now().Add(time.Hour).Unix()}), "n-1", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := l.checkIDToken(ctx, tc.raw, tc.nonce)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("checkIDToken = %v, want a refusal (%v)", err, tc.want)
			}
		})
	}
}
