package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

func connect(t *testing.T, url string, headers map[string]string, version string) *client.Client {
	t.Helper()
	tr, err := transport.NewStreamableHTTP(url, transport.WithHTTPHeaders(headers))
	if err != nil {
		t.Fatal(err)
	}
	var opts []client.ClientOption
	if version != "" {
		opts = append(opts, client.WithProtocolVersion(version))
	}
	c := client.NewClient(tr, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "relay-test", Version: "1"}
	init.Params.ProtocolVersion = version
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize through %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func callEcho(t *testing.T, c *client.Client, msg string) string {
	t.Helper()
	req := mcp.CallToolRequest{}
	req.Params.Name = "echo"
	req.Params.Arguments = map[string]any{"message": msg}
	res, err := c.CallTool(context.Background(), req)
	if err != nil {
		t.Fatalf("tools/call echo: %v", err)
	}
	return res.Content[0].(mcp.TextContent).Text
}

func TestRelayBothProtocolGenerations(t *testing.T) {
	env := newEnv(t, Options{})
	for _, tc := range []struct {
		name      string
		stateless bool
		version   string
	}{
		{"session 2025-06-18", false, "2025-06-18"},
		{"session 2025-11-25", false, "2025-11-25"},
		{"session 2024-11-05", false, "2024-11-05"},
		{"stateless 2026-07-28", true, "2026-07-28"},
		{"negotiated newest", false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := upstreamtest.New(t, upstreamtest.Options{Stateless: tc.stateless})
			path := "/gen-" + strings.NewReplacer(" ", "-", ".", "-").Replace(tc.name)
			env.register(t, map[string]any{"server_name": tc.name, "path": path, "proxy_pass_url": up.URL})
			c := connect(t, env.srv.URL+path+"/mcp", nil, tc.version)
			tools, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
			if err != nil {
				t.Fatalf("tools/list: %v", err)
			}
			if len(tools.Tools) < 3 {
				t.Fatalf("tools/list returned %d tools", len(tools.Tools))
			}
			if got := callEcho(t, c, "hi"); got != "Echo: hi" {
				t.Fatalf("echo = %q", got)
			}
			if err := c.Ping(context.Background()); err != nil {
				t.Fatalf("ping: %v", err)
			}
			sid := c.GetSessionId()
			if tc.stateless && sid != "" {
				t.Fatalf("stateless upstream gave a session id %q", sid)
			}
			if !tc.stateless && tc.version != "" && sid == "" {
				t.Fatal("session-based upstream gave no session id")
			}
			if sid != "" && strings.Contains(sid, up.LastHeader("Mcp-Session-Id")) {
				t.Fatalf("client sees the upstream session id %q unsealed", sid)
			}
		})
	}
}

func TestRelayStreamsProgressBeforeResult(t *testing.T) {
	env := newEnv(t, Options{})
	up := upstreamtest.New(t, upstreamtest.Options{})
	env.register(t, map[string]any{"server_name": "p", "path": "/p", "proxy_pass_url": up.URL})
	c := connect(t, env.srv.URL+"/p/mcp", nil, "2025-06-18")
	var mu sync.Mutex
	var arrivals []time.Time
	c.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == "notifications/progress" {
			mu.Lock()
			arrivals = append(arrivals, time.Now())
			mu.Unlock()
		}
	})
	req := mcp.CallToolRequest{}
	req.Params.Name = "progress"
	req.Params.Arguments = map[string]any{"steps": 3, "delay_ms": 200}
	req.Params.Meta = &mcp.Meta{ProgressToken: "tok-1"}
	start := time.Now()
	res, err := c.CallTool(context.Background(), req)
	done := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if txt := res.Content[0].(mcp.TextContent).Text; txt != "done" {
		t.Fatalf("result %q", txt)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(arrivals) != 3 {
		t.Fatalf("got %d progress notifications, want 3", len(arrivals))
	}
	// The first notification is sent at once and the result 600 ms later: a
	// buffering relay would deliver them together at the end.
	if gap := done.Sub(arrivals[0]); gap < 300*time.Millisecond {
		t.Fatalf("first progress arrived %v before the result (after %v); the relay buffers", gap, arrivals[0].Sub(start))
	}
}

func TestRelaySealedSessions(t *testing.T) {
	env := newEnv(t, Options{})
	upA := upstreamtest.New(t, upstreamtest.Options{})
	upB := upstreamtest.New(t, upstreamtest.Options{})
	env.register(t, map[string]any{"server_name": "a", "path": "/a", "proxy_pass_url": upA.URL})
	env.register(t, map[string]any{"server_name": "b", "path": "/b", "proxy_pass_url": upB.URL})
	c := connect(t, env.srv.URL+"/a/mcp", nil, "2025-06-18")
	sid := c.GetSessionId()
	if sid == "" {
		t.Fatal("no session id")
	}
	ping := []byte(`{"jsonrpc":"2.0","id":7,"method":"ping"}`)
	hdr := func(s string) map[string]string {
		return map[string]string{"Mcp-Session-Id": s, "Content-Type": "application/json", "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
	}
	resp, body := env.do(t, http.MethodPost, "/a/mcp", ping, hdr(sid))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ping with own session: %d %s", resp.StatusCode, body)
	}
	tampered := sid[:len(sid)-2] + "AA"
	if tampered == sid {
		tampered = sid[:len(sid)-2] + "BB"
	}
	for name, tc := range map[string]struct{ path, sid string }{
		"tampered id":          {"/a/mcp", tampered},
		"id from /a used on b": {"/b/mcp", sid},
		"garbage":              {"/a/mcp", "not-a-session"},
	} {
		t.Run(name, func(t *testing.T) {
			resp, body := env.do(t, http.MethodPost, tc.path, ping, hdr(tc.sid))
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("status %d, want 404: %s", resp.StatusCode, body)
			}
			var m struct {
				ID    json.RawMessage    `json:"id"`
				Error struct{ Code int } `json:"error"`
			}
			if err := json.Unmarshal(body, &m); err != nil || string(m.ID) != "7" || m.Error.Code == 0 {
				t.Fatalf("want a JSON-RPC error for id 7, got %s", body)
			}
		})
	}
	// DELETE ends the session upstream; the sealed id is then unknown there.
	resp, body = env.do(t, http.MethodDelete, "/a/mcp", nil, hdr(sid))
	if resp.StatusCode >= 300 {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}
}
