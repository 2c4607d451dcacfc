package authtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Client is one client_credentials client of the real provider.
type Client struct {
	ID     string   `json:"client_id"`
	Secret string   `json:"client_secret"`
	Groups []string `json:"groups,omitempty"` // put in the tokens' "groups" claim
	Scope  string   `json:"scope,omitempty"`  // scopes it may ask for; default all
}

// ProviderOptions shape the real provider.
type ProviderOptions struct {
	Clients []Client `json:"clients"`
	// Resources are the resource indicators (RFC 8707) clients may ask a
	// JWT access token for; each becomes the token's aud.
	Resources []string `json:"resources"`
	// Scopes the resources grant.
	Scopes []string `json:"scopes"`
	// WebClients are authorization-code clients (PKCE required); setting
	// any turns on the provider's development login and consent pages.
	WebClients []WebClient `json:"web_clients,omitempty"`
	// Users gives login names (any name signs in) groups and extra
	// access-token claims.
	Users map[string]User `json:"users,omitempty"`
}

// WebClient is an authorization-code client of the real provider, such as
// the gateway's web UI.
type WebClient struct {
	ID string `json:"client_id"`
	// Secret makes it a confidential client (client_secret_basic); empty
	// makes it a public client that authenticates with PKCE alone.
	Secret       string   `json:"client_secret,omitempty"`
	RedirectURIs []string `json:"redirect_uris"`
}

// User is an account of the provider's development login.
type User struct {
	Groups []string `json:"groups,omitempty"` // the access tokens' "groups" claim
	// Claims are added to the user's access tokens as they are.
	Claims map[string]any `json:"claims,omitempty"`
}

// Provider is a running oidc-provider.
type Provider struct {
	// Issuer is the issuer URL, http://127.0.0.1:<port>.
	Issuer string
}

// providerDir is testdata/npm/oidc-provider of this module.
func providerDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "npm", "oidc-provider")
}

// StartProvider starts the real OpenID Connect provider (the oidc-provider
// npm package pinned in testdata/npm/oidc-provider) on 127.0.0.1 with a
// free port, and stops it when the test ends. Without node or the installed
// package the test is skipped with a message saying how to install it,
// except in CI (CI=true), where that is a failure.
func StartProvider(t testing.TB, o ProviderOptions) *Provider {
	t.Helper()
	dir := providerDir()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "oidc-provider", "package.json"))
	}
	if err != nil {
		msg := fmt.Sprintf("the real OIDC provider is not installed (%v); run `make test-deps` (npm ci in %s)", err, dir)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cfg, _ := json.Marshal(o)
	cmd := exec.Command(node, "start.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PORT=0", "MCPGW_OIDC_CONFIG="+string(cfg), "NODE_ENV=test")
	dieWithParent(cmd)
	out := &startWatcher{addr: make(chan string, 1)}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start oidc-provider: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	select {
	case a := <-out.addr:
		p := &Provider{Issuer: "http://" + a}
		p.waitReady(t)
		return p
	case <-done:
		t.Fatalf("oidc-provider exited before listening:\n%s", out.text())
	case <-time.After(60 * time.Second):
		t.Fatalf("oidc-provider did not start within 60 s:\n%s", out.text())
	}
	return nil
}

// startWatcher is the provider's stderr: it keeps the first lines for error
// messages and reports the MCPGW_LISTENING address.
type startWatcher struct {
	addr chan string
	mu   sync.Mutex
	buf  []byte
	sent bool
}

func (w *startWatcher) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) < 64<<10 {
		w.buf = append(w.buf, b...)
	}
	if !w.sent {
		for _, line := range strings.Split(string(w.buf), "\n") {
			if a, ok := strings.CutPrefix(line, "MCPGW_LISTENING "); ok && strings.Contains(string(w.buf), a+"\n") {
				w.addr <- strings.TrimSpace(a)
				w.sent = true
				break
			}
		}
	}
	return len(b), nil
}

func (w *startWatcher) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

func (p *Provider) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(p.Issuer + "/.well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("oidc-provider at %s is not answering discovery: %v", p.Issuer, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TokenEndpoint is the provider's token endpoint.
func (p *Provider) TokenEndpoint() string { return p.Issuer + "/token" }

// Token runs the client_credentials grant for c with the resource indicator
// resource and returns the access token (a JWT when resource is given).
func (p *Provider) Token(t testing.TB, c Client, resource string) string {
	t.Helper()
	tok, err := p.TryToken(c, resource)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TryToken is Token returning the provider's refusal as an error.
func (p *Provider) TryToken(c Client, resource string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if resource != "" {
		form.Set("resource", resource)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.TokenEndpoint(), strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.ID), url.QueryEscape(c.Secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("token endpoint answered %s: %w", resp.Status, err)
	}
	if body.AccessToken == "" {
		return "", errors.New("token endpoint refused: " + body.Error + ": " + body.Description)
	}
	return body.AccessToken, nil
}
