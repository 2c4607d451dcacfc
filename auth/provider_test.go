package auth_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/auth/authtest"
)

// TestRealProviderTokens verifies access tokens issued by a real OpenID
// Connect provider (oidc-provider): client_credentials, a JWT for the
// gateway's resource indicator, groups in the "groups" claim.
func TestRealProviderTokens(t *testing.T) {
	const aud, otherAud = "http://127.0.0.1/mcpgw", "http://127.0.0.1/elsewhere"
	support := authtest.Client{ID: "support-bot", Secret: "s3cret-support", Groups: []string{"support"}}
	prov := authtest.StartProvider(t, authtest.ProviderOptions{
		Clients:   []authtest.Client{support},
		Resources: []string{aud, otherAud},
		Scopes:    []string{"mcp:read"},
	})
	o := newOIDC(t, auth.OIDCOptions{}, auth.IssuerConfig{Issuer: prov.Issuer, Audiences: []string{aud}})
	o.Prefetch(context.Background())
	ctx := context.Background()

	tok := prov.Token(t, support, aud)
	if c := authtest.Decode(t, tok); c["aud"] != aud || c["iss"] != prov.Issuer {
		t.Fatalf("provider issued unexpected claims: %v", c)
	}
	p, err := o.Verify(ctx, tok)
	if err != nil {
		t.Fatalf("Verify a real provider's token: %v", err)
	}
	if p.Subject != "support-bot" || !slices.Equal(p.Groups, []string{"support"}) || p.Issuer != prov.Issuer {
		t.Fatalf("principal = %+v", p)
	}

	if _, err := o.Verify(ctx, prov.Token(t, support, otherAud)); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("token for another resource = %v, want ErrInvalidToken", err)
	}
	opaque := prov.Token(t, support, "") // no resource indicator: an opaque token
	a := auth.NewAuthenticator(noKeys{}, auth.Options{OIDC: o})
	if _, err := a.Verify(ctx, opaque); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("opaque token = %v, want ErrInvalidToken", err)
	}
	if _, err := prov.TryToken(authtest.Client{ID: "support-bot", Secret: "wrong"}, aud); err == nil {
		t.Fatal("the provider issued a token for a wrong client secret")
	}
}
