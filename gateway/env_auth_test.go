package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/auth"
)

// authEnv is a real gateway whose ingress is configured as `mcpgw serve`
// configures it: OIDC issuers, API keys, and the policy stored in SQLite.
type authEnv struct {
	*testEnv
	policy *auth.Policy
	log    *lockedLog // info and above
}

// newAuthEnv starts a gateway that accepts tokens of issuers and enforces
// policyDoc (YAML; "" stores none).
func newAuthEnv(t *testing.T, issuers []auth.IssuerConfig, policyDoc string) *authEnv {
	t.Helper()
	f := newFixture(t)
	var oidc *auth.OIDC
	if len(issuers) > 0 {
		var err error
		if oidc, err = auth.NewOIDC(issuers, auth.OIDCOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	logs := &lockedLog{}
	lg := zerolog.New(logs).Level(zerolog.InfoLevel)
	pol := f.withPolicy(t, auth.PolicyOptions{IdentityProvider: oidc != nil, Log: lg}, policyDoc)
	f.deps.Verifier = auth.NewAuthenticator(f.store, auth.Options{OIDC: oidc})
	f.deps.Log = lg
	return &authEnv{testEnv: f.serve(t, Options{}, nil), policy: pol, log: logs}
}

// lockedLog is a log buffer that tests may read while requests write.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// bearer returns headers that present tok as the ingress token in
// X-Authorization, plus extra headers.
func bearer(tok string, extra ...string) map[string]string {
	h := map[string]string{"X-Authorization": "Bearer " + tok, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return h
}

// rpc posts one JSON-RPC message and returns the status and body.
func (e *authEnv) rpc(t *testing.T, path string, headers map[string]string, msg string) (*http.Response, []byte) {
	t.Helper()
	return e.do(t, http.MethodPost, path, []byte(msg), headers)
}

const initializeMsg = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`

// metaClient connects an MCP client to the meta server with headers.
func (e *authEnv) metaClient(t *testing.T, headers map[string]string) *client.Client {
	t.Helper()
	return connect(t, e.srv.URL+"/mcpgw/mcp", headers, "2025-06-18")
}

// callTool calls name with args and returns the result (nil and the error
// when the call was refused at the JSON-RPC level).
func callTool(c *client.Client, name string, args map[string]any) (*mcp.CallToolResult, error) {
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	return c.CallTool(context.Background(), req)
}

// resultText is the text of the first content of res.
func resultText(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if res == nil || len(res.Content) == 0 {
		t.Fatal("result has no content")
	}
	tc, ok := res.Content[0].(mcp.TextContent)
	if !ok {
		t.Fatalf("content is %T", res.Content[0])
	}
	return tc.Text
}

// listedPaths is the paths list_services returns.
func listedPaths(t *testing.T, c *client.Client) map[string]float64 {
	t.Helper()
	_, out := callMeta(t, c, "list_services", nil)
	var l serviceList
	b, _ := json.Marshal(out)
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	m := map[string]float64{}
	for _, s := range l.Services {
		m[s.Path] = float64(s.NumTools)
	}
	return m
}
