package gateway

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// everythingDir holds the pinned @modelcontextprotocol/server-everything
// (package-lock.json) and its loopback launcher; `make test-deps` installs it.
const everythingDir = "../testdata/npm/everything"

// startEverything runs the real third-party MCP server on 127.0.0.1 and a
// kernel-chosen port, and returns its MCP endpoint. It skips when the npm
// packages are not installed, except in CI, where that is a failure.
func startEverything(t *testing.T) string {
	t.Helper()
	pkg := filepath.Join(everythingDir, "node_modules", "@modelcontextprotocol", "server-everything")
	if _, err := os.Stat(pkg); err != nil {
		msg := "server-everything is not installed (" + pkg + "); run `make test-deps`"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is not on PATH")
		}
		t.Skip("node is not on PATH")
	}
	cmd := exec.Command(node, "serve-loopback.mjs")
	cmd.Dir = everythingDir
	cmd.Env = append(os.Environ(), "PORT=0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	var logs bytes.Buffer
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if a, ok := strings.CutPrefix(line, "MCPGW_LISTENING "); ok {
				select {
				case addr <- a:
				default:
				}
			}
			logMu.Lock()
			logs.WriteString(line + "\n")
			logMu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			logMu.Lock()
			t.Logf("server-everything stderr:\n%s", logs.String())
			logMu.Unlock()
		}
	})
	select {
	case a := <-addr:
		if !strings.HasPrefix(a, "127.0.0.1:") {
			t.Fatalf("server-everything listens on %s, not on loopback only", a)
		}
		return "http://" + a + "/mcp"
	case <-time.After(30 * time.Second):
		t.Fatal("server-everything did not start within 30 s")
	}
	return ""
}

// TestRelayServerEverything drives a real third-party upstream through the
// relay: its tools are listed, echo is called, and its long-running
// operation's progress notifications arrive through the gateway before the
// result, as they are sent.
func TestRelayServerEverything(t *testing.T) {
	upURL := startEverything(t)
	env := newEnv(t, Options{})
	env.register(t, map[string]any{"server_name": "everything", "path": "/everything", "proxy_pass_url": upURL})

	for _, version := range []string{"2025-06-18", ""} {
		t.Run("protocol "+version, func(t *testing.T) {
			c := connect(t, env.srv.URL+"/everything/mcp", nil, version)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tools, err := c.ListTools(ctx, mcp.ListToolsRequest{})
			if err != nil {
				t.Fatalf("tools/list: %v", err)
			}
			names := map[string]bool{}
			for _, tl := range tools.Tools {
				names[tl.Name] = true
			}
			for _, want := range []string{"echo", "trigger-long-running-operation", "get-sum"} {
				if !names[want] {
					t.Fatalf("tools/list lacks %s: %v", want, names)
				}
			}
			if got := callEcho(t, c, "through the gateway"); got != "Echo: through the gateway" {
				t.Fatalf("echo = %q", got)
			}

			var mu sync.Mutex
			var arrivals []time.Time
			var progress []float64
			c.OnNotification(func(n mcp.JSONRPCNotification) {
				if n.Method != "notifications/progress" {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				arrivals = append(arrivals, time.Now())
				if p, ok := n.Params.AdditionalFields["progress"].(float64); ok {
					progress = append(progress, p)
				}
			})
			req := mcp.CallToolRequest{}
			req.Params.Name = "trigger-long-running-operation"
			req.Params.Arguments = map[string]any{"duration": 1.2, "steps": 3}
			req.Params.Meta = &mcp.Meta{ProgressToken: "everything-1"}
			res, err := c.CallTool(ctx, req)
			done := time.Now()
			if err != nil {
				t.Fatalf("trigger-long-running-operation: %v", err)
			}
			if txt := res.Content[0].(mcp.TextContent).Text; !strings.Contains(txt, "Long running operation completed") {
				t.Fatalf("result %q", txt)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(arrivals) != 3 || len(progress) != 3 || progress[0] != 1 || progress[2] != 3 {
				t.Fatalf("progress notifications: %v", progress)
			}
			// Steps are 400 ms apart: a relay that buffers would deliver
			// the first one together with the result.
			if gap := done.Sub(arrivals[0]); gap < 500*time.Millisecond {
				t.Fatalf("first progress arrived only %v before the result; the relay buffers", gap)
			}
		})
	}
}
