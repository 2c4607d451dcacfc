package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/mcpgw/mcpgw/auth"
)

// servedGateway is `mcpgw serve` running in this process.
type servedGateway struct {
	url, data string
	log       *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServe runs serve with the default configuration changed by mutate,
// on a free loopback port, until the test ends.
func startServe(t *testing.T, mutate func(*serveConfig)) *servedGateway {
	t.Helper()
	cfg := defaultServeConfig()
	cfg.Listen = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg.Data = t.TempDir()
	cfg.LogLevel = "info"
	if mutate != nil {
		mutate(&cfg)
	}
	if errs := cfg.validate(); len(errs) > 0 {
		t.Fatalf("config: %v", errors.Join(errs...))
	}
	g := &servedGateway{url: "http://" + cfg.Listen, data: cfg.Data, log: &lockedBuffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, g.log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("serve log:\n%s", g.log.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(g.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, g.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready: %v", err)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// adminToken is the gateway's local admin token file.
func (g *servedGateway) adminToken() string { return filepath.Join(g.data, auth.AdminTokenFile) }

// runCmd runs one mcpgw command in this process and returns its output
// and exit code (0, 1 or 2).
func runCmd(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(stdin))
	err := root.Execute()
	code := 0
	if err != nil {
		fmt.Fprintln(&errb, "mcpgw: "+sentence(err.Error()))
		code = exitInvalid
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

const cliPolicy = `
group_mappings:
  support-team: [customer-support-read]
  mcp-admins: [admin]
scopes:
  customer-support-read:
    - server: customer-support-assistant
      methods: [initialize, notifications/initialized, ping, tools/list, tools/call]
      tools: [LambdaUsingSDK___check_warranty_status]
    - server: weather
      methods: [ping]
  admin:
    - server: "*"
      methods: ["*"]
      tools: ["*"]
      admin: true
`

func TestAPIKeyAndPolicyCommands(t *testing.T) {
	t.Setenv("MCPGW_TOKEN_FILE", "")
	t.Setenv("MCPGW_REGISTRY_URL", "")
	g := startServe(t, nil)
	as := func(tokenFile string, args ...string) []string {
		return append(args, "--registry-url", g.url, "--token-file", tokenFile)
	}
	admin := g.adminToken()

	reg := writeTemp(t, "cs.json", `{"server_name":"customer-support-assistant","path":"/customer-support-assistant","proxy_pass_url":"http://127.0.0.1:9/mcp"}`)
	runCmd(t, "", as(admin, "register", "--config", reg)...).want(t, "register", 0)
	reg2 := writeTemp(t, "other.json", `{"server_name":"internal","path":"/internal","proxy_pass_url":"http://127.0.0.1:9/mcp"}`)
	runCmd(t, "", as(admin, "register", "--config", reg2)...).want(t, "register", 0)

	// apikey create prints the key once, on stdout alone.
	r := runCmd(t, "", as(admin, "apikey", "create", "--name", "support-bot", "--group", "support-team", "--expires", "720h")...)
	r.want(t, "apikey create", 0)
	key := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(key, auth.APIKeyPrefix) || strings.Contains(key, "\n") || !strings.Contains(r.stderr, "shown only now") {
		t.Fatalf("apikey create output: %s", r)
	}
	supportFile := writeTemp(t, "support.token", key)

	outFile := filepath.Join(t.TempDir(), "ops.token")
	r = runCmd(t, "", as(admin, "apikey", "create", "--name", "ops", "--admin", "--out", outFile)...)
	r.want(t, "apikey create --out", 0)
	if st, err := os.Stat(outFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	b, _ := os.ReadFile(outFile)
	if !strings.HasPrefix(string(b), auth.APIKeyPrefix) || strings.Contains(r.stdout, strings.TrimSpace(string(b))) {
		t.Fatalf("--out: file %q, stdout %q", b, r.stdout)
	}

	r = runCmd(t, "", as(admin, "apikey", "list")...)
	r.want(t, "apikey list", 0)
	if !strings.Contains(r.stdout, "support-bot") || !strings.Contains(r.stdout, "support-team") || strings.Contains(r.stdout, key) {
		t.Fatalf("apikey list: %s", r)
	}
	r = runCmd(t, "", as(admin, "apikey", "list", "--json")...)
	var keys struct {
		Keys []apiKeyInfo `json:"api_keys"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &keys) != nil || len(keys.Keys) != 3 {
		t.Fatalf("apikey list --json: %s", r)
	}

	runCmd(t, "", as(admin, "apikey", "create")...).want(t, "create without a name", 2, "--name is required")
	runCmd(t, "", as(admin, "apikey", "create", "--name", "x", "--expires", "soon")...).want(t, "bad --expires", 2, "--expires")
	runCmd(t, "", as(admin, "apikey", "create", "--name", "support-bot")...).want(t, "duplicate name", 1, "409")
	runCmd(t, "", as(admin, "apikey", "create", "--name", "bad name")...).want(t, "invalid name", 2, "400")

	// Local mode: no policy yet, every caller sees every server.
	runCmd(t, "", as(admin, "policy", "export")...).want(t, "export without a policy", 1, "local mode")
	r = runCmd(t, "", as(supportFile, "list", "--json")...)
	if r.code != 0 || strings.Count(r.stdout, `"path"`) != 2 {
		t.Fatalf("support in local mode: %s", r)
	}

	bad := writeTemp(t, "bad.yaml", "group_mappings: {support-team: [nope]}\nscopes:\n  s: [{server: x, verbs: [get]}]\n")
	runCmd(t, "", as(admin, "policy", "import", bad)...).want(t, "import a malformed policy", 2, `scope "nope" is not defined`, "verbs: unknown key", "methods: is required")
	runCmd(t, "", as(admin, "policy", "export")...).want(t, "export after a refused import", 1, "local mode")

	file := writeTemp(t, "policy.yaml", cliPolicy)
	r = runCmd(t, "", as(supportFile, "policy", "import", file)...)
	r.want(t, "a non-admin imports", 1, "403")
	r = runCmd(t, "", as(admin, "policy", "import", file)...)
	r.want(t, "import", 0)
	if !strings.Contains(r.stderr, `warning: scopes.customer-support-read[1].server: no registered server has the name or path "weather"`) {
		t.Fatalf("import did not warn about the unknown server: %s", r)
	}

	r = runCmd(t, "", as(admin, "policy", "export")...)
	r.want(t, "export", 0)
	var exported, original auth.PolicyDoc
	if err := yaml.UnmarshalStrict([]byte(r.stdout), &exported); err != nil {
		t.Fatalf("export is not a policy in YAML: %v\n%s", err, r.stdout)
	}
	if err := yaml.Unmarshal([]byte(cliPolicy), &original); err != nil {
		t.Fatal(err)
	}
	eb, _ := json.Marshal(exported)
	ob, _ := json.Marshal(original)
	if !bytes.Equal(eb, ob) {
		t.Fatalf("export differs from the import:\n%s\n%s", eb, ob)
	}
	// The export round-trips through import.
	runCmd(t, "", as(admin, "policy", "import", "-")...).want(t, "import from stdin", 2, "empty")
	runCmd(t, r.stdout, as(admin, "policy", "import", "-")...).want(t, "re-import the export", 0)

	// The policy is in force for the next request.
	r = runCmd(t, "", as(supportFile, "list", "--json")...)
	if r.code != 0 || !strings.Contains(r.stdout, "/customer-support-assistant") || strings.Contains(r.stdout, "/internal") {
		t.Fatalf("support under the policy: %s", r)
	}
	runCmd(t, "", as(supportFile, "apikey", "list")...).want(t, "a non-admin lists keys", 1, "403")

	runCmd(t, "", as(admin, "apikey", "revoke", "support-bot")...).want(t, "revoke", 0)
	runCmd(t, "", as(supportFile, "list")...).want(t, "a revoked key", 1, "401")
	runCmd(t, "", as(admin, "apikey", "revoke", "support-bot")...).want(t, "revoke twice", 1, "404")
	runCmd(t, "", as(admin, "apikey", "revoke", auth.AdminKeyName)...).want(t, "revoke the local admin key", 1, "cannot be revoked")

	if strings.Contains(g.log.String(), key) {
		t.Fatal("an API key was logged")
	}
}
