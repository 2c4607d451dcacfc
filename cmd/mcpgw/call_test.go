package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

// The seed guide's AgentCore walkthrough, end to end with the real binary:
// `mcpgw serve`, `mcpgw register` of testdata/gateway-config.json pointed at
// a fake AgentCore Gateway, then the guide's own `call` commands.

var (
	callBinOnce sync.Once
	callBin     string
	callBinErr  error
)

// callBinary builds mcpgw once for the tests of this file.
func callBinary(t *testing.T) string {
	t.Helper()
	callBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mcpgw-call-test-")
		if err != nil {
			callBinErr = err
			return
		}
		callBin = filepath.Join(dir, "mcpgw")
		out, err := exec.Command("go", "build", "-o", callBin, ".").CombinedOutput()
		if err != nil {
			callBinErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if callBinErr != nil {
		t.Fatal(callBinErr)
	}
	return callBin
}

// callEnviron is the environment of the child processes: no MCPGW_*
// settings and no upstream token from the developer's shell.
func callEnviron(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "MCPGW_") || strings.HasPrefix(kv, "CUSTOMER_SUPPORT_AUTH_TOKEN=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// callServe starts `mcpgw serve` on a kernel-chosen loopback port and
// returns its base URL.
func callServe(t *testing.T, bin, data string) string {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--data", data)
	cmd.Dir = data
	cmd.Env = callEnviron()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs bytes.Buffer
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var ev struct {
				Listen string `json:"listen"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Listen != "" {
				select {
				case addr <- ev.Listen:
				default:
				}
			}
			mu.Lock()
			logs.Write(sc.Bytes())
			logs.WriteByte('\n')
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("mcpgw serve log:\n%s", logs.String())
			mu.Unlock()
		}
	})
	select {
	case a := <-addr:
		return "http://" + a
	case <-time.After(20 * time.Second):
		t.Fatal("mcpgw serve did not start listening within 20 s")
	}
	return ""
}

type callOutcome struct {
	code           int
	stdout, stderr string
}

// callRun runs the binary with args and returns its exit code and output.
func callRun(t *testing.T, bin, dir string, env []string, args ...string) callOutcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("mcpgw %v: %v", args, err)
	}
	return callOutcome{code: code, stdout: out.String(), stderr: errb.String()}
}

// lambdaOutput decodes a call's output like the seed guide's
// `jq '.content[0].text | fromjson'`.
func lambdaOutput(t *testing.T, stdout string) (bool, map[string]any) {
	t.Helper()
	var res struct {
		IsError *bool `json:"isError"`
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.IsError == nil || len(res.Content) == 0 {
		t.Fatalf("output is not {\"isError\":…,\"content\":[…]}: %v\n%s", err, stdout)
	}
	if res.Content[0].Type != "text" {
		t.Fatalf("content[0] is %q, want text", res.Content[0].Type)
	}
	var inner map[string]any
	if err := json.Unmarshal([]byte(res.Content[0].Text), &inner); err != nil {
		t.Fatalf(".content[0].text | fromjson fails: %v\n%s", err, res.Content[0].Text)
	}
	return *res.IsError, inner
}

func TestCallAgentCoreEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := callBinary(t)
	data := t.TempDir()
	base := callServe(t, bin, data)
	adminToken := filepath.Join(data, "admin.token")
	fake := upstreamtest.NewAgentCore(t, "")

	// The seed's registration file, pointed at the fake AgentCore Gateway.
	seed, err := os.ReadFile("../../testdata/gateway-config.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(seed, &doc); err != nil {
		t.Fatal(err)
	}
	doc["proxy_pass_url"] = fake.Base + "/mcp/"
	cfg := filepath.Join(data, "gateway-config.json")
	b, _ := json.MarshalIndent(doc, "", "  ")
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	env := callEnviron()
	if r := callRun(t, bin, data, env, "register", "--config", cfg, "--registry-url", base, "--token-file", adminToken); r.code != 0 {
		t.Fatalf("register: exit %d: %s %s", r.code, r.stdout, r.stderr)
	}

	tokenFile := filepath.Join(data, ".cognito_access_token")
	if err := os.WriteFile(tokenFile, []byte(upstreamtest.AgentCoreToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongToken := filepath.Join(data, "wrong_token")
	if err := os.WriteFile(wrongToken, []byte("expired-or-wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badIngress := filepath.Join(data, "bad_ingress")
	if err := os.WriteFile(badIngress, []byte("mcpgw_not-a-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The ingress token defaults to MCPGW_TOKEN_FILE, as for every client command.
	callEnv := callEnviron("MCPGW_TOKEN_FILE=" + adminToken)
	mcpURL := base + "/customer-support-assistant/mcp"
	slashURL := base + "/customer-support-assistant/"

	t.Run("check_warranty_status as in the seed guide", func(t *testing.T) {
		r := callRun(t, bin, data, callEnv, "call", "--url", mcpURL, "--token-file", tokenFile,
			"call", "--tool", "LambdaUsingSDK___check_warranty_status", "--args", `{"serial_number":"MNO33333333"}`)
		if r.code != 0 {
			t.Fatalf("exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
		if !strings.HasPrefix(r.stdout, "{\n  \"isError\": false,\n  \"content\": [") {
			t.Fatalf("output does not look like the seed guide's:\n%s", r.stdout)
		}
		isErr, inner := lambdaOutput(t, r.stdout)
		if isErr || inner["statusCode"] != float64(200) || !strings.Contains(inner["body"].(string), "Serial Number: MNO33333333") {
			t.Fatalf("isError %v, lambda output %v", isErr, inner)
		}
		if got := fake.LastHeader("Authorization"); got != "Bearer "+upstreamtest.AgentCoreToken {
			t.Fatalf("the upstream got Authorization %q", got)
		}
		if got := fake.LastHeader("X-Authorization"); got != "" {
			t.Fatalf("the ingress token reached the upstream: %q", got)
		}
	})

	t.Run("get_customer_profile at the trailing-slash URL", func(t *testing.T) {
		r := callRun(t, bin, data, callEnv, "call", "--url", slashURL, "--token-file", tokenFile,
			"call", "--tool", "LambdaUsingSDK___get_customer_profile", "--args", `{"customer_id":"CUST001"}`)
		if r.code != 0 {
			t.Fatalf("exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
		isErr, inner := lambdaOutput(t, r.stdout)
		if isErr || inner["statusCode"] != float64(200) || !strings.Contains(inner["body"].(string), "Customer ID: CUST001") {
			t.Fatalf("isError %v, lambda output %v", isErr, inner)
		}
	})

	t.Run("list ping init", func(t *testing.T) {
		r := callRun(t, bin, data, callEnv, "call", "--url", mcpURL, "--token-file", tokenFile, "list")
		if r.code != 0 || !strings.Contains(r.stdout, "LambdaUsingSDK___check_warranty_status") || !strings.Contains(r.stdout, "LambdaUsingSDK___get_customer_profile") {
			t.Fatalf("list: exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
		r = callRun(t, bin, data, callEnv, "call", "--url", slashURL, "--token-file", tokenFile, "ping")
		var ok struct{ OK bool }
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ok) != nil || !ok.OK {
			t.Fatalf("ping: exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
		r = callRun(t, bin, data, callEnv, "call", "--url", mcpURL, "--token-file", tokenFile, "init")
		var init struct {
			ServerInfo struct{ Name string } `json:"serverInfo"`
		}
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &init) != nil || init.ServerInfo.Name != "customer-support-assistant" {
			t.Fatalf("init: exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("wrong or missing upstream token is the upstream's 401", func(t *testing.T) {
		for name, args := range map[string][]string{
			"wrong":   {"--token-file", wrongToken},
			"missing": nil,
		} {
			full := append([]string{"call", "--url", mcpURL}, args...)
			full = append(full, "call", "--tool", "LambdaUsingSDK___check_warranty_status", "--args", `{"serial_number":"MNO33333333"}`)
			r := callRun(t, bin, data, callEnv, full...)
			if r.code != 1 || !strings.Contains(r.stderr, "401") || !strings.Contains(r.stderr, "upstream token missing or invalid") {
				t.Fatalf("%s token: exit %d, stderr %q; want exit 1 with the upstream's 401", name, r.code, r.stderr)
			}
			if strings.Contains(r.stderr, "gateway token") {
				t.Fatalf("%s token: reported as a gateway error: %s", name, r.stderr)
			}
		}
	})

	t.Run("a bad ingress token is the gateway's 401", func(t *testing.T) {
		r := callRun(t, bin, data, callEnv, "call", "--url", mcpURL, "--token-file", tokenFile, "--ingress-token-file", badIngress, "ping")
		if r.code != 1 || !strings.Contains(r.stderr, "401") || !strings.Contains(r.stderr, "gateway token") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("usage errors exit 2 without calling", func(t *testing.T) {
		n := len(fake.Headers())
		for _, args := range [][]string{
			{"call", "--url", mcpURL, "call", "--tool", "LambdaUsingSDK___check_warranty_status", "--args", `{"serial_number":`},
			{"call", "--url", mcpURL, "call", "--tool", "LambdaUsingSDK___check_warranty_status", "--args", `[1]`},
			{"call", "--url", mcpURL, "call", "--args", `{}`},
			{"call", "--url", "not-a-url", "ping"},
			{"call", "ping"},
			{"call", "--url", mcpURL, "--transport", "carrier-pigeon", "ping"},
		} {
			r := callRun(t, bin, data, callEnv, args...)
			if r.code != 2 || r.stderr == "" {
				t.Fatalf("%v: exit %d, stderr %q; want 2", args, r.code, r.stderr)
			}
		}
		if got := len(fake.Headers()); got != n {
			t.Fatalf("usage errors reached the upstream %d times", got-n)
		}
	})

	t.Run("unknown path is a clear 404", func(t *testing.T) {
		r := callRun(t, bin, data, callEnv, "call", "--url", base+"/no-such-service/mcp", "ping")
		if r.code != 1 || !strings.Contains(r.stderr, "404") || !strings.Contains(r.stderr, "/no-such-service/mcp") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
	})

	t.Run("a legacy SSE upstream through the same command", func(t *testing.T) {
		legacy := upstreamtest.New(t, upstreamtest.Options{SSE: true})
		reg, _ := json.Marshal(map[string]any{"server_name": "legacy", "path": "/legacy", "proxy_pass_url": legacy.URL, "supported_transports": []string{"sse"}})
		f := filepath.Join(data, "legacy.json")
		if err := os.WriteFile(f, reg, 0o600); err != nil {
			t.Fatal(err)
		}
		if r := callRun(t, bin, data, env, "register", "--config", f, "--registry-url", base, "--token-file", adminToken); r.code != 0 {
			t.Fatalf("register: exit %d: %s", r.code, r.stderr)
		}
		r := callRun(t, bin, data, callEnv, "call", "--url", base+"/legacy/mcp", "call", "--tool", "echo", "--args", `{"message":"old school"}`)
		if r.code != 0 || !strings.Contains(r.stdout, "Echo: old school") {
			t.Fatalf("auto (falls back to SSE): exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
		r = callRun(t, bin, data, callEnv, "call", "--url", base+"/legacy/sse", "--transport", "sse", "list")
		if r.code != 0 || !strings.Contains(r.stdout, `"echo"`) {
			t.Fatalf("--transport sse: exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
	})
}
