package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestCallSendsGatewayTokenOnlyToTheGateway checks where `mcpgw call` sends
// the gateway token it finds by default: to the gateway (the registry
// URL's origin, or a loopback host), never to another MCP server, and not
// on through a redirect to another origin.
func TestCallSendsGatewayTokenOnlyToTheGateway(t *testing.T) {
	t.Setenv("MCPGW_REGISTRY_URL", "https://gw.example.com")
	for _, tc := range []struct {
		url  string
		want bool
	}{
		{"https://gw.example.com/weather/mcp", true},
		{"https://GW.example.com/mcpgw/mcp", true},
		{"http://gw.example.com/weather/mcp", false}, // another scheme, another origin
		{"https://gw.example.com:8443/weather/mcp", false},
		{"https://mcp.someone-else.example/mcp", false},
		{"http://127.0.0.1:7860/weather/mcp", true},
		{"http://localhost:9000/mcp", true},
		{"http://[::1]:9000/mcp", true},
	} {
		if got := gatewayURL(tc.url); got != tc.want {
			t.Errorf("gatewayURL(%q) = %v, want %v", tc.url, got, tc.want)
		}
	}

	// A redirect to another origin (another port is another origin) loses
	// X-Authorization; Go itself drops Authorization there.
	const secret = "mcpgw_THE-LOCAL-ADMIN-KEY"
	var mu sync.Mutex
	var seen []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("X-Authorization"))
		mu.Unlock()
		http.Error(w, "not an MCP server", http.StatusNotFound)
	}))
	defer other.Close()
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/mcp", http.StatusTemporaryRedirect)
	}))
	defer redir.Close()
	tok := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tok, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MCPGW_TOKEN_FILE", tok)
	runCmd(t, "", "call", "--url", redir.URL+"/mcp", "ping") // fails: the target is no MCP server
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("the redirect was not followed: the test checks nothing")
	}
	for _, v := range seen {
		if strings.Contains(v, secret) {
			t.Errorf("the gateway token followed a redirect to another origin: %q", v)
		}
	}
}
