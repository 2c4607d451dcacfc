package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/auth/authtest"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newOIDC(t *testing.T, opts auth.OIDCOptions, cfgs ...auth.IssuerConfig) *auth.OIDC {
	t.Helper()
	o, err := auth.NewOIDC(cfgs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestOIDCRejectsBadTokens(t *testing.T) {
	iss := authtest.NewIssuer(t)
	other := authtest.NewIssuer(t)
	o := newOIDC(t, auth.OIDCOptions{}, auth.IssuerConfig{Issuer: iss.URL, Audiences: []string{"mcpgw"}})
	ok := func() map[string]any { return iss.Claims("alice", "mcpgw", "support") }
	with := func(k string, v any) map[string]any {
		c := ok()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	now := time.Now()
	for _, tc := range []struct {
		name  string
		token func() string
		valid bool
	}{
		{"valid at+jwt", func() string { return iss.Sign(t, ok()) }, true},
		{"valid typ JWT", func() string { return iss.SignTyp(t, "JWT", ok()) }, true},
		{"valid without typ", func() string { return iss.SignTyp(t, "", ok()) }, true},
		{"valid audience in a list", func() string { return iss.Sign(t, with("aud", []string{"other", "mcpgw"})) }, true},
		{"valid Cognito style: no aud, client_id is the audience", func() string {
			c := with("aud", nil)
			c["client_id"] = "mcpgw"
			return iss.Sign(t, c)
		}, true},
		{"expired within the clock skew", func() string { return iss.Sign(t, with("exp", now.Add(-10*time.Second).Unix())) }, true},
		{"nbf just ahead within the clock skew", func() string { return iss.Sign(t, with("nbf", now.Add(10*time.Second).Unix())) }, true},
		{"expired", func() string { return iss.Sign(t, with("exp", now.Add(-2*time.Minute).Unix())) }, false},
		{"no exp", func() string { return iss.Sign(t, with("exp", nil)) }, false},
		{"exp not a number", func() string { return iss.Sign(t, with("exp", "tomorrow")) }, false},
		{"not yet valid", func() string { return iss.Sign(t, with("nbf", now.Add(5*time.Minute).Unix())) }, false},
		{"wrong audience", func() string { return iss.Sign(t, with("aud", "someone-else")) }, false},
		{"no audience", func() string { return iss.Sign(t, with("aud", nil)) }, false},
		{"issuer not configured", func() string { return other.Sign(t, other.Claims("alice", "mcpgw")) }, false},
		{"claims the configured issuer, signed by another", func() string { return other.Sign(t, ok()) }, false},
		{"unknown kid", func() string { return iss.SignUnpublished(t, ok()) }, false},
		{"alg none", func() string { return authtest.Unsigned(ok(), iss.CurrentKID()) }, false},
		{"HS256 keyed with the public key", func() string { return authtest.SignHS256(t, iss.PublicKeyPEM(t), iss.CurrentKID(), ok()) }, false},
		{"logout token type", func() string { return iss.SignTyp(t, "logout+jwt", ok()) }, false},
		{"tampered payload", func() string {
			a, b := iss.Sign(t, ok()), iss.Sign(t, with("groups", []string{"mcp-admins"}))
			return a[:indexDot(a)] + b[indexDot(b):lastDot(b)] + a[lastDot(a):]
		}, false},
		{"not a JWT", func() string { return "eyJhbGciOiJSUzI1NiJ9.garbage" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := o.Verify(context.Background(), tc.token())
			if tc.valid {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if p.Subject != "alice" || p.Issuer != iss.URL || p.Method != "oidc" {
					t.Fatalf("principal = %+v", p)
				}
				return
			}
			if !errors.Is(err, auth.ErrInvalidToken) {
				t.Fatalf("Verify = %+v, %v; want ErrInvalidToken", p, err)
			}
		})
	}
}

func indexDot(s string) int {
	for i := range s {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

func lastDot(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return i
		}
	}
	return -1
}

func TestOIDCGroups(t *testing.T) {
	iss := authtest.NewIssuer(t)
	for _, tc := range []struct {
		name   string
		cfg    auth.IssuerConfig
		claims map[string]any
		want   []string
	}{
		{"default groups claim", auth.IssuerConfig{}, map[string]any{"groups": []string{"support", "sales"}}, []string{"support", "sales"}},
		{"Keycloak full paths count by their last segment", auth.IssuerConfig{}, map[string]any{"groups": []string{"/org/support"}}, []string{"/org/support", "support"}},
		{"Cognito claim", auth.IssuerConfig{GroupsClaim: "cognito:groups"}, map[string]any{"cognito:groups": []string{"support"}, "groups": []string{"ignored"}}, []string{"support"}},
		{"dotted path", auth.IssuerConfig{GroupsClaim: "realm_access.roles"}, map[string]any{"realm_access": map[string]any{"roles": []string{"support"}}}, []string{"support"}},
		{"single string", auth.IssuerConfig{}, map[string]any{"groups": "support"}, []string{"support"}},
		{"scope mapped to a group", auth.IssuerConfig{ScopeGroups: map[string][]string{"mcp:read": {"support"}}}, map[string]any{"scope": "openid mcp:read"}, []string{"support"}},
		{"Entra scp list mapped", auth.IssuerConfig{ScopeGroups: map[string][]string{"Tools.Use": {"support"}}}, map[string]any{"scp": []string{"Tools.Use"}}, []string{"support"}},
		{"unmapped scope gives nothing", auth.IssuerConfig{ScopeGroups: map[string][]string{"mcp:read": {"support"}}}, map[string]any{"scope": "mcp:write"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Issuer, cfg.Audiences = iss.URL, []string{"mcpgw"}
			o := newOIDC(t, auth.OIDCOptions{}, cfg)
			c := iss.Claims("svc", "mcpgw")
			for k, v := range tc.claims {
				c[k] = v
			}
			p, err := o.Verify(context.Background(), iss.Sign(t, c))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Groups, tc.want) {
				t.Fatalf("groups = %q, want %q", p.Groups, tc.want)
			}
		})
	}
}

func TestOIDCKeyRotationAndOutage(t *testing.T) {
	iss := authtest.NewIssuer(t)
	clk := newClock()
	o := newOIDC(t, auth.OIDCOptions{Now: clk.Now}, auth.IssuerConfig{Issuer: iss.URL, Audiences: []string{"mcpgw"}})
	ctx := context.Background()
	verify := func(tok string) error { _, err := o.Verify(ctx, tok); return err }
	claims := func() map[string]any {
		c := iss.Claims("alice", "mcpgw")
		c["exp"] = clk.Now().Add(3 * time.Hour).Unix()
		return c
	}

	old := iss.Sign(t, claims())
	if err := verify(old); err != nil {
		t.Fatalf("first token: %v", err)
	}
	if n := iss.JWKSFetches.Load(); n != 1 {
		t.Fatalf("key set fetched %d times, want 1", n)
	}
	if err := verify(old); err != nil || iss.JWKSFetches.Load() != 1 {
		t.Fatalf("a cached key must verify without a fetch: %v, %d fetches", err, iss.JWKSFetches.Load())
	}

	t.Run("provider down: cached keys keep working, unknown kids fail closed", func(t *testing.T) {
		iss.SetDown(true)
		defer iss.SetDown(false)
		if err := verify(old); err != nil {
			t.Fatalf("cached key while the provider is down: %v", err)
		}
		clk.Advance(time.Minute) // past MinRefresh: a fetch is attempted and fails
		if err := verify(iss.SignUnpublished(t, claims())); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("unknown kid while down = %v, want ErrInvalidToken", err)
		}
	})

	t.Run("rotation: a new kid is fetched, at most once per MinRefresh", func(t *testing.T) {
		clk.Advance(time.Minute)
		before := iss.JWKSFetches.Load()
		if err := verify(iss.SignUnpublished(t, claims())); err == nil {
			t.Fatal("unpublished key verified")
		}
		iss.Rotate(t)
		fresh := iss.Sign(t, claims())
		if err := verify(fresh); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("a new kid within MinRefresh of the last fetch must wait: %v", err)
		}
		stranger, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			_ = verify(authtest.SignRS256(t, stranger, fmt.Sprintf("made-up-%d", i), "at+jwt", claims()))
		}
		if got := iss.JWKSFetches.Load() - before; got != 1 {
			t.Fatalf("made-up kids caused %d fetches within MinRefresh, want 1", got)
		}
		clk.Advance(auth.DefaultMinRefresh + time.Second)
		if err := verify(fresh); err != nil {
			t.Fatalf("rotated key after MinRefresh: %v", err)
		}
		if err := verify(old); err != nil {
			t.Fatalf("old key still published: %v", err)
		}
	})

	t.Run("withdrawn keys stop verifying after MaxKeyAge", func(t *testing.T) {
		iss.Retire()
		before := iss.JWKSFetches.Load()
		clk.Advance(auth.DefaultMaxKeyAge + time.Minute)
		_ = verify(old) // starts the background re-read
		deadline := time.Now().Add(5 * time.Second)
		for iss.JWKSFetches.Load() == before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		deadline = time.Now().Add(5 * time.Second)
		for verify(old) == nil {
			if time.Now().After(deadline) {
				t.Fatal("a key the provider withdrew still verifies")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("provider gone for good: cached keys keep working", func(t *testing.T) {
		tok := iss.Sign(t, claims())
		if err := verify(tok); err != nil {
			t.Fatal(err)
		}
		iss.Close()
		if err := verify(tok); err != nil {
			t.Fatalf("cached key with the provider gone: %v", err)
		}
	})
}

func TestOIDCProviderUnreachableAtStart(t *testing.T) {
	iss := authtest.NewIssuer(t)
	iss.SetDown(true)
	clk := newClock()
	o := newOIDC(t, auth.OIDCOptions{Now: clk.Now}, auth.IssuerConfig{Issuer: iss.URL, Audiences: []string{"mcpgw"}})
	o.Prefetch(context.Background()) // logs, does not fail
	tok := iss.Sign(t, iss.Claims("alice", "mcpgw"))
	if _, err := o.Verify(context.Background(), tok); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("Verify with the provider down = %v, want ErrInvalidToken", err)
	}
	iss.SetDown(false)
	if _, err := o.Verify(context.Background(), tok); err == nil {
		t.Fatal("discovery was retried within MinRefresh")
	}
	clk.Advance(auth.DefaultMinRefresh + time.Second)
	if _, err := o.Verify(context.Background(), tok); err != nil {
		t.Fatalf("after the provider came back: %v", err)
	}
}

func TestOIDCSeveralIssuers(t *testing.T) {
	a, b := authtest.NewIssuer(t), authtest.NewIssuer(t)
	o := newOIDC(t, auth.OIDCOptions{},
		auth.IssuerConfig{Issuer: a.URL, Audiences: []string{"aud-a"}},
		auth.IssuerConfig{Issuer: b.URL, Audiences: []string{"aud-b"}, GroupsClaim: "roles"})
	ctx := context.Background()
	if got := o.Issuers(); !slices.Equal(got, []string{a.URL, b.URL}) {
		t.Fatalf("Issuers = %q", got)
	}
	ca := a.Claims("alice", "aud-a", "support")
	if p, err := o.Verify(ctx, a.Sign(t, ca)); err != nil || p.Issuer != a.URL || !slices.Equal(p.Groups, []string{"support"}) {
		t.Fatalf("issuer A: %+v %v", p, err)
	}
	cb := b.Claims("bob", "aud-b")
	cb["roles"] = []string{"admins"}
	if p, err := o.Verify(ctx, b.Sign(t, cb)); err != nil || p.Issuer != b.URL || !slices.Equal(p.Groups, []string{"admins"}) {
		t.Fatalf("issuer B: %+v %v", p, err)
	}
	// A's token relabelled as B's: B's keys do not verify A's signature.
	forged := a.Claims("alice", "aud-b")
	forged["iss"] = b.URL
	if _, err := o.Verify(ctx, a.Sign(t, forged)); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("token signed by A claiming B = %v", err)
	}
	// A's audience is not B's: a token of A for B's audience fails.
	if _, err := o.Verify(ctx, a.Sign(t, a.Claims("alice", "aud-b"))); !errors.Is(err, auth.ErrInvalidToken) {
		t.Fatalf("A's token with B's audience = %v", err)
	}
}

func TestNewOIDCValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfgs []auth.IssuerConfig
	}{
		{"relative issuer", []auth.IssuerConfig{{Issuer: "keycloak/realms/x", Audiences: []string{"a"}}}},
		{"no audience", []auth.IssuerConfig{{Issuer: "https://idp.example"}}},
		{"duplicate", []auth.IssuerConfig{{Issuer: "https://idp.example", Audiences: []string{"a"}}, {Issuer: "https://idp.example", Audiences: []string{"b"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := auth.NewOIDC(tc.cfgs, auth.OIDCOptions{}); err == nil {
				t.Fatal("NewOIDC accepted an invalid configuration")
			}
		})
	}
}

func TestAuthenticatorRoutesTokens(t *testing.T) {
	iss := authtest.NewIssuer(t)
	o := newOIDC(t, auth.OIDCOptions{}, auth.IssuerConfig{Issuer: iss.URL, Audiences: []string{"mcpgw"}})
	a := auth.NewAuthenticator(noKeys{}, auth.Options{OIDC: o})
	ctx := context.Background()
	if p, err := a.Verify(ctx, iss.Sign(t, iss.Claims("alice", "mcpgw"))); err != nil || p.Method != "oidc" {
		t.Fatalf("JWT: %+v %v", p, err)
	}
	for _, tok := range []string{"mcpgw_unknown", "opaque-token", "a.b.c"} {
		if _, err := a.Verify(ctx, tok); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("Verify(%q) = %v, want ErrInvalidToken", tok, err)
		}
	}
	if _, err := a.Verify(ctx, ""); !errors.Is(err, auth.ErrNoToken) {
		t.Fatalf("empty token = %v", err)
	}
	if got := a.Issuers(); !slices.Equal(got, []string{iss.URL}) {
		t.Fatalf("Issuers = %q", got)
	}
}
