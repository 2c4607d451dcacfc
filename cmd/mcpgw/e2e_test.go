package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// buildMcpgw builds this package's binary into dir. Only TestEndToEnd runs
// the binary, so it is built once per test run, next to its data.
func buildMcpgw(t *testing.T, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "mcpgw")
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// cleanEnv is the test's environment without MCPGW_* settings, so that a
// developer's own settings cannot change what the children do.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MCPGW_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// gatewayProc is a running `mcpgw serve`.
type gatewayProc struct {
	cmd  *exec.Cmd
	url  string
	log  string // file holding the child's stderr
	done chan struct{}
	err  error // the result of Wait, once done is closed
}

func startGateway(t *testing.T, bin, data string) *gatewayProc {
	t.Helper()
	port := freePort(t)
	g := &gatewayProc{url: fmt.Sprintf("http://127.0.0.1:%d", port), log: filepath.Join(t.TempDir(), "serve.log"), done: make(chan struct{})}
	logFile, err := os.Create(g.log)
	if err != nil {
		t.Fatal(err)
	}
	g.cmd = exec.Command(bin, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data", data, "--log-level", "debug")
	g.cmd.Dir = t.TempDir()
	g.cmd.Env = cleanEnv()
	g.cmd.Stdout, g.cmd.Stderr = logFile, logFile
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		g.err = g.cmd.Wait()
		logFile.Close()
		close(g.done)
	}()
	t.Cleanup(func() {
		select {
		case <-g.done:
		default:
			g.cmd.Process.Kill()
			<-g.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(g.log)
			t.Logf("serve log:\n%s", b)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-g.done:
			b, _ := os.ReadFile(g.log)
			t.Fatalf("mcpgw serve exited early: %v\n%s", g.err, b)
		default:
		}
		resp, err := http.Get(g.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("mcpgw serve not ready after 20s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and returns the exit code.
func (g *gatewayProc) stop(t *testing.T) int {
	t.Helper()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.done:
	case <-time.After(15 * time.Second):
		t.Fatal("mcpgw serve did not stop within 15s of SIGTERM")
	}
	return exitCode(g.err)
}

func exitCode(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	default:
		return -1
	}
}

// cli runs mcpgw commands against one gateway.
type cli struct {
	bin string
	env []string
	dir string
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

func (c cli) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env, cmd.Dir = c.env, c.dir
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := exitCode(err)
	if code < 0 {
		t.Fatalf("mcpgw %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// want fails unless r exited with code and stderr is one sentence holding
// every piece in stderr (when code is not 0).
func (r result) want(t *testing.T, what string, code int, stderr ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: %s\nwant exit %d", what, r, code)
	}
	if code == 0 {
		return
	}
	msg := strings.TrimSpace(r.stderr)
	if !strings.HasPrefix(msg, "mcpgw: ") || !strings.HasSuffix(msg, ".") || strings.Count(msg, "\n") > 0 {
		t.Errorf("%s: stderr is not one sentence: %q", what, r.stderr)
	}
	for _, s := range stderr {
		if !strings.Contains(msg, s) {
			t.Errorf("%s: stderr does not say %q: %q", what, s, msg)
		}
	}
	if r.stdout != "" {
		t.Errorf("%s: a failure printed on stdout: %q", what, r.stdout)
	}
}

type listed struct {
	Services []struct {
		ServerName   string   `json:"server_name"`
		Path         string   `json:"path"`
		Enabled      bool     `json:"enabled"`
		NumTools     int      `json:"num_tools"`
		Tags         []string `json:"tags"`
		HealthStatus string   `json:"health_status"`
	} `json:"services"`
	TotalCount int `json:"total_count"`
}

func parseList(t *testing.T, what string, b []byte) listed {
	t.Helper()
	var l listed
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatalf("%s is not a service list: %v\n%s", what, err, b)
	}
	return l
}

// csa finds customer-support-assistant in a list, failing when absent.
func csa(t *testing.T, what string, l listed) (enabled bool) {
	t.Helper()
	for _, s := range l.Services {
		if s.ServerName == "customer-support-assistant" {
			if s.Path != "/customer-support-assistant/" || s.NumTools != 2 || len(s.Tags) != 5 {
				t.Errorf("%s: entry %+v", what, s)
			}
			return s.Enabled
		}
	}
	t.Fatalf("%s does not show customer-support-assistant: %+v", what, l)
	return false
}

func listServicesMCP(t *testing.T, url, token string) listed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := transport.NewStreamableHTTP(url+"/mcpgw/mcp", transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	if err != nil {
		t.Fatal(err)
	}
	c := client.NewClient(tr)
	defer c.Close()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "e2e", Version: "1"}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize /mcpgw/mcp: %v", err)
	}
	req := mcp.CallToolRequest{}
	req.Params.Name = "list_services"
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("list_services: %v", err)
	}
	if res.IsError || len(res.Content) != 1 {
		t.Fatalf("list_services: %+v", res)
	}
	return parseList(t, "list_services", []byte(res.Content[0].(mcp.TextContent).Text))
}

// TestEndToEnd runs the real binary as a user would from the README:
// serve, register the seed config, see it in every surface, change it with
// every path command, stop with SIGTERM and restart.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the mcpgw binary")
	}
	tmp := t.TempDir()
	bin := buildMcpgw(t, tmp)
	data := filepath.Join(tmp, "data")
	gw := startGateway(t, bin, data)
	tokenFile := filepath.Join(data, "admin.token")
	c := cli{bin: bin, dir: tmp, env: cleanEnv("MCPGW_REGISTRY_URL="+gw.url, "MCPGW_TOKEN_FILE="+tokenFile)}

	// The commands run in tmp, so the seed file is named absolutely.
	seed, err := filepath.Abs(filepath.Join("..", "..", "testdata", "gateway-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	seedBytes, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	// The placeholder host becomes a closed loopback port: the gateway's
	// health checker probes what is registered, and tests send nothing
	// (not even a DNS query) off this machine.
	real := filepath.Join(tmp, "gateway-config.json")
	if err := os.WriteFile(real, bytes.ReplaceAll(seedBytes, []byte("<YOUR-GATEWAY-ID>.gateway.bedrock-agentcore.us-east-1.amazonaws.com"), []byte("127.0.0.1:9")), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("admin token file", func(t *testing.T) {
		fi, err := os.Stat(tokenFile)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("admin.token mode %v, want 0600", fi.Mode().Perm())
		}
	})
	t.Run("version", func(t *testing.T) {
		r := c.run(t, "", "version")
		r.want(t, "version", 0)
		if !strings.HasPrefix(r.stdout, "mcpgw ") || !strings.Contains(r.stdout, runtime.Version()) {
			t.Errorf("version printed %q", r.stdout)
		}
		r = c.run(t, "", "version", "--json")
		var v map[string]string
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v["version"] == "" || v["go"] != runtime.Version() {
			t.Errorf("version --json printed %q", r.stdout)
		}
	})
	t.Run("register", func(t *testing.T) {
		c.run(t, "", "register", "--config", seed).want(t, "register the seed unchanged", 2, "proxy_pass_url", "<YOUR-GATEWAY-ID>")
		c.run(t, "", "register").want(t, "register without --config", 2, "--config")
		c.run(t, "", "register", "--config", filepath.Join(tmp, "absent.json")).want(t, "register a missing file", 2, "absent.json")
		c.run(t, "{", "register", "--config", "-").want(t, "register malformed JSON from stdin", 2, "not a JSON object")
		c.run(t, "", "register", "--config", real, "--bogus-flag").want(t, "unknown flag", 2, "bogus-flag")

		r := c.run(t, "", "register", "--config", real)
		r.want(t, "register", 0)
		if want := "Registered customer-support-assistant at /customer-support-assistant/ (2 tools).\n"; r.stdout != want {
			t.Errorf("register printed %q, want %q", r.stdout, want)
		}
		c.run(t, "", "register", "--config", real).want(t, "register again", 1, "409", "already registered at /customer-support-assistant/", "overwrite")
		c.run(t, "", "register", "--config", real, "--overwrite").want(t, "register --overwrite", 0)

		// A second server from stdin, with an unknown field: a warning.
		r = c.run(t, `{"server_name": "weather", "path": "weather", "proxy_pass_url": "http://127.0.0.1:9/mcp", "owner": "sre"}`,
			"register", "--config", "-", "--json")
		r.want(t, "register from stdin", 0)
		if !strings.Contains(r.stderr, `warning: unknown field "owner" kept as is`) {
			t.Errorf("no warning on stderr: %q", r.stderr)
		}
		var out struct {
			Server struct{ Path string } `json:"server"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Server.Path != "/weather" {
			t.Errorf("register --json printed %q", r.stdout)
		}
	})
	t.Run("list everywhere", func(t *testing.T) {
		r := c.run(t, "", "list", "--json")
		r.want(t, "list --json", 0)
		if l := parseList(t, "list --json", []byte(r.stdout)); !csa(t, "list --json", l) || l.TotalCount != 2 {
			t.Errorf("list --json: %+v", l)
		}
		r = c.run(t, "", "list")
		r.want(t, "list", 0)
		if !strings.HasPrefix(r.stdout, "NAME") || !strings.Contains(r.stdout, "customer-support-assistant  /customer-support-assistant/") {
			t.Errorf("list printed:\n%s", r.stdout)
		}
		resp, err := http.Get(gw.url + "/api/v1/servers")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		csa(t, "REST list", parseList(t, "REST list", b))
		tok, _ := os.ReadFile(tokenFile)
		csa(t, "list_services", listServicesMCP(t, gw.url, strings.TrimSpace(string(tok))))
	})
	t.Run("path commands", func(t *testing.T) {
		for _, args := range [][]string{
			{"show", "customer-support-assistant"},
			{"show", "/customer-support-assistant/"},
			{"show", "/customer-support-assistant"},
			{"show", "--path", "customer-support-assistant/"},
			{"show", "customer-support-assistant", "--path", "/customer-support-assistant", "--json"},
		} {
			r := c.run(t, "", args...)
			r.want(t, strings.Join(args, " "), 0)
			var d map[string]any
			if err := json.Unmarshal([]byte(r.stdout), &d); err != nil || d["path"] != "/customer-support-assistant/" {
				t.Errorf("%v printed %q", args, r.stdout)
			}
			if strings.Contains(r.stdout, "CUSTOMER_SUPPORT_AUTH_TOKEN") || !strings.Contains(r.stdout, `"Authorization": "***"`) {
				t.Errorf("%v shows the header value: %s", args, r.stdout)
			}
		}
		c.run(t, "", "show").want(t, "show without a path", 2, "PATH is required")
		c.run(t, "", "show", "a", "--path", "b").want(t, "show with two paths", 2, "disagree")
		c.run(t, "", "show", "nope").want(t, "show unknown", 1, "404", "/nope")

		r := c.run(t, "", "disable", "/customer-support-assistant")
		r.want(t, "disable", 0)
		if r.stdout != "/customer-support-assistant/ is now disabled.\n" {
			t.Errorf("disable printed %q", r.stdout)
		}
		if csa(t, "list after disable", parseList(t, "list", []byte(c.run(t, "", "list", "--json").stdout))) {
			t.Error("still enabled after disable")
		}
		resp, err := http.Post(gw.url+"/customer-support-assistant/mcp", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("relay of a disabled service: %d, want 404", resp.StatusCode)
		}
		r = c.run(t, "", "enable", "--path", "customer-support-assistant/")
		r.want(t, "enable", 0)
		if r.stdout != "/customer-support-assistant/ is now enabled.\n" {
			t.Errorf("enable printed %q", r.stdout)
		}
		r = c.run(t, "", "disable", "customer-support-assistant", "--json")
		r.want(t, "disable --json", 0)
		var s map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || s["enabled"] != false {
			t.Errorf("disable --json printed %q", r.stdout)
		}
		c.run(t, "", "enable", "customer-support-assistant/").want(t, "enable again", 0)
		c.run(t, "", "enable", "nope").want(t, "enable unknown", 1, "404", "/nope")

		r = c.run(t, "", "remove", "weather/")
		r.want(t, "remove", 0)
		if r.stdout != "Removed /weather.\n" {
			t.Errorf("remove printed %q", r.stdout)
		}
		c.run(t, "", "show", "--path", "/weather").want(t, "show removed", 1, "404", "no service is registered at /weather")
		c.run(t, "", "remove", "weather").want(t, "remove twice", 1, "404")
	})
	t.Run("reaching the gateway", func(t *testing.T) {
		closed := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		c.run(t, "", "list", "--registry-url", closed).want(t, "wrong --registry-url", 1, "could not reach the gateway")
		c.run(t, "", "list", "--registry-url", "not a url").want(t, "bad --registry-url", 2, "not an absolute http(s) URL")
		bad := filepath.Join(tmp, "bad.token")
		if err := os.WriteFile(bad, []byte("mcpgw_not-the-key\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c.run(t, "", "disable", "customer-support-assistant", "--token-file", bad).want(t, "wrong token", 1, "401")
		c.run(t, "", "disable", "customer-support-assistant", "--token-file", filepath.Join(tmp, "absent.token")).want(t, "missing token file", 2, "absent.token")
		typo := cli{bin: bin, dir: tmp, env: cleanEnv("MCPGW_REGISTRY_URL="+gw.url, "MCPGW_TOKEN_FILE="+filepath.Join(tmp, "typo.token"))}
		typo.run(t, "", "list").want(t, "MCPGW_TOKEN_FILE names a missing file", 2, "typo.token")
		// Without MCPGW_TOKEN_FILE and without a local data dir the client
		// is anonymous: reads work, writes are refused.
		anon := cli{bin: bin, dir: tmp, env: cleanEnv("MCPGW_REGISTRY_URL=" + gw.url)}
		anon.run(t, "", "list").want(t, "anonymous list", 0)
		anon.run(t, "", "remove", "customer-support-assistant").want(t, "anonymous remove", 1, "401")
	})
	t.Run("serve refuses a bad configuration", func(t *testing.T) {
		r := c.run(t, "", "serve", "--listen", "0.0.0.0:0", "--data", filepath.Join(tmp, "other"))
		if r.code != 2 || !strings.Contains(r.stderr, "--insecure-no-auth") {
			t.Errorf("serve on 0.0.0.0 without auth: %s", r)
		}
	})

	// The log to a file is written in batches (internal/logbuf): the event
	// of a request made just before SIGTERM must still be in it.
	last, _ := http.NewRequest(http.MethodPost, gw.url+"/customer-support-assistant/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	last.Header.Set("X-Request-Id", "e2e-last-request-before-sigterm")
	if resp, err := http.DefaultClient.Do(last); err == nil {
		resp.Body.Close()
	}

	tokenBefore, _ := os.ReadFile(tokenFile)
	if code := gw.stop(t); code != 0 {
		b, _ := os.ReadFile(gw.log)
		t.Fatalf("SIGTERM: exit %d, want 0\n%s", code, b)
	}
	if b, _ := os.ReadFile(gw.log); !strings.Contains(string(b), "shutting down") || !strings.Contains(string(b), `"request_id":"e2e-last-request-before-sigterm"`) {
		t.Errorf("no shutdown or no event of the last request in the log:\n%s", b)
	}

	// A restart on the same data keeps the registration and the admin key.
	gw2 := startGateway(t, bin, data)
	c.env = cleanEnv("MCPGW_REGISTRY_URL="+gw2.url, "MCPGW_TOKEN_FILE="+tokenFile)
	r := c.run(t, "", "list", "--json")
	r.want(t, "list after restart", 0)
	l := parseList(t, "list after restart", []byte(r.stdout))
	if !csa(t, "list after restart", l) || l.TotalCount != 1 {
		t.Errorf("after restart: %+v", l)
	}
	if tokenAfter, _ := os.ReadFile(tokenFile); !bytes.Equal(tokenBefore, tokenAfter) {
		t.Error("a restart replaced the admin token")
	}
	c.run(t, "", "disable", "customer-support-assistant").want(t, "the old token still administers", 0)
	if code := gw2.stop(t); code != 0 {
		t.Errorf("second SIGTERM: exit %d", code)
	}
}
