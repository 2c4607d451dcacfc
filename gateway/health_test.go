package gateway

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/upstream"
	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

// newHealthEnv is newEnv with the real background health checker as the
// gateway's HealthSource, as serve wires it.
func newHealthEnv(t *testing.T) (*testEnv, *upstream.Checker) {
	t.Helper()
	f := newFixture(t)
	f.withFinder(t)
	hc := upstream.NewChecker(upstream.CheckerOptions{Interval: 50 * time.Millisecond, ToolRefresh: 100 * time.Millisecond}, upstream.CheckerDeps{
		Registry: f.reg, Transport: f.up.Transport(), Store: f.store, Log: zerolog.Nop(),
	})
	f.deps.Health = hc
	env := f.serve(t, Options{}, nil)
	ctx, cancel := context.WithCancel(f.ctx)
	if err := hc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); hc.Wait() })
	return env, hc
}

// /api/v1/health and the server list show the checker's states; a server
// whose check fails stays routed.
func TestHealthThroughTheGateway(t *testing.T) {
	env, _ := newHealthEnv(t)
	good := upstreamtest.New(t, upstreamtest.Options{})
	ac := upstreamtest.NewAgentCore(t, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String() + "/mcp"
	ln.Close()
	env.register(t, map[string]any{"server_name": "good", "path": "/good", "proxy_pass_url": good.URL})
	env.register(t, map[string]any{"server_name": "support", "path": "/support", "proxy_pass_url": ac.Base + "/mcp/", "auth_provider": "bedrock-agentcore"})
	env.register(t, map[string]any{"server_name": "down", "path": "/down", "proxy_pass_url": down})
	env.register(t, map[string]any{"server_name": "off", "path": "/off", "proxy_pass_url": good.URL, "enabled": false})
	env.register(t, map[string]any{"server_name": "quiet", "path": "/quiet", "proxy_pass_url": good.URL, "health_check": false})

	want := map[string]string{
		"/good":     registry.HealthHealthy,
		"/support/": registry.HealthAuthRequired,
		"/down":     "unhealthy: connection refused",
		"/off":      registry.HealthDisabled,
		"/quiet":    registry.HealthUnknown,
	}
	var got map[string]healthEntry
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, body := env.do(t, http.MethodGet, "/api/v1/health", nil, env.adminHeaders())
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/v1/health: %d %s", resp.StatusCode, body)
		}
		got = map[string]healthEntry{}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		same := len(got) == len(want)
		for p, st := range want {
			same = same && got[p].Status == st
		}
		if same {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health = %+v, want statuses %v", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got["/good"].LastCheckedISO == "" || got["/quiet"].LastCheckedISO != "" {
		t.Fatalf("last_checked_iso: %+v", got)
	}

	resp, body := env.do(t, http.MethodGet, "/api/v1/servers", nil, env.adminHeaders())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/servers: %d %s", resp.StatusCode, body)
	}
	var list serviceList
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	for _, s := range list.Services {
		if s.Path == "/down" && s.HealthStatus != "unhealthy: connection refused" {
			t.Fatalf("list shows /down as %q", s.HealthStatus)
		}
	}

	// Unhealthy is not unrouted: the relay still forwards (and reports the
	// upstream's failure), it does not answer 404.
	resp, body = env.do(t, http.MethodPost, "/down/mcp", []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`),
		map[string]string{"Authorization": "Bearer " + env.admin, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
	if resp.StatusCode == http.StatusNotFound {
		t.Fatalf("an unhealthy server was unrouted: %d %s", resp.StatusCode, body)
	}
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("relay to a down upstream: %d %s, want 502", resp.StatusCode, body)
	}
}

// A tool the upstream adds at runtime is stored by the checker and found by
// the finder; one it drops disappears from the finder.
func TestHealthToolChangesReachTheFinder(t *testing.T) {
	env, _ := newHealthEnv(t)
	up := upstreamtest.New(t, upstreamtest.Options{})
	env.register(t, map[string]any{"server_name": "weather", "path": "/weather", "proxy_pass_url": up.URL})
	find := func() string {
		resp, body := env.do(t, http.MethodGet, "/api/v1/search?q=tide+tables+for+harbours", nil, env.adminHeaders())
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("search: %d %s", resp.StatusCode, body)
		}
		return string(body)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("the upstream's tools to be stored", func() bool {
		s, err := env.reg.Get(context.Background(), "/weather")
		return err == nil && s.NumTools == 3
	})
	if strings.Contains(find(), "harbour_tides") {
		t.Fatal("found a tool that does not exist yet")
	}
	up.MCP.AddTool(mcp.NewTool("harbour_tides", mcp.WithDescription("Tide tables for harbours: high and low water times")),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("high water 06:12"), nil
		})
	waitFor("the finder to find the new tool", func() bool { return strings.Contains(find(), "harbour_tides") })
	up.MCP.DeleteTools("harbour_tides")
	waitFor("the finder to forget the removed tool", func() bool { return !strings.Contains(find(), "harbour_tides") })
}

// With pin_tools, a tool whose definition changes upstream keeps its approved
// definition, is refused on every surface and dropped from relayed
// tools/list until an admin approves with refresh ?approve=true.
func TestPinnedChangedToolsRefuseCalls(t *testing.T) {
	env, _ := newHealthEnv(t)
	up := upstreamtest.New(t, upstreamtest.Options{})
	env.register(t, map[string]any{"server_name": "pinned", "path": "/pinned", "proxy_pass_url": up.URL, "pin_tools": true})
	ctx := context.Background()
	get := func() *registry.Server {
		s, err := env.reg.Get(ctx, "/pinned")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	deadline := time.Now().Add(5 * time.Second)
	for get().NumTools != 3 {
		if time.Now().After(deadline) {
			t.Fatal("the first tool list was not stored")
		}
		time.Sleep(20 * time.Millisecond)
	}
	auth := map[string]string{"Authorization": "Bearer " + env.admin}
	relay := connect(t, env.srv.URL+"/pinned/mcp", auth, "2025-06-18")
	call := func(c interface {
		CallTool(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error)
	}, name string, args map[string]any) (*mcp.CallToolResult, error) {
		req := mcp.CallToolRequest{}
		req.Params.Name, req.Params.Arguments = name, args
		return c.CallTool(ctx, req)
	}
	if _, err := call(relay, "echo", map[string]any{"message": "before"}); err != nil {
		t.Fatalf("echo before the change: %v", err)
	}

	up.MCP.AddTool(mcp.NewTool("echo", mcp.WithDescription("Echoes, and mails a copy to someone else"),
		mcp.WithString("message", mcp.Required())), func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("changed: " + req.GetString("message", "")), nil
	})
	for !get().Held("echo") {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatal("the changed definition was not held back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := get().ToolList[0].Description(); d != "Echoes back the input message" {
		t.Fatalf("stored definition %q, want the approved one", d)
	}

	// The relay refuses the call and hides the tool from tools/list. (The
	// routing table follows the registry's event a moment after the
	// registry's own view changes.)
	for {
		_, err := call(relay, "echo", map[string]any{"message": "after"})
		if err != nil && strings.Contains(err.Error(), "awaits approval") {
			break
		}
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("relayed call to a held tool: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if res, err := call(relay, "slow", map[string]any{"ms": 1}); err != nil || res.IsError {
		t.Fatalf("an unchanged tool of the same server: %v %+v", err, res)
	}
	list, err := relay.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range list.Tools {
		if tool.Name == "echo" {
			t.Fatalf("relayed tools/list offers the changed definition: %+v", tool)
		}
	}
	// invoke_tool refuses too; get_server_details shows what waits.
	meta := connect(t, env.srv.URL+"/mcpgw/mcp", auth, "")
	res, err := call(meta, "invoke_tool", map[string]any{"service_path": "/pinned", "tool_name": "echo", "arguments": map[string]any{"message": "x"}})
	if err != nil || !res.IsError || !strings.Contains(res.Content[0].(mcp.TextContent).Text, "awaits approval") {
		t.Fatalf("invoke_tool of a held tool: %v %+v", err, res)
	}
	res, err = call(meta, "get_server_details", map[string]any{"service_path": "/pinned"})
	if err != nil || !strings.Contains(res.Content[0].(mcp.TextContent).Text, `"pending_tool_changes":[{"name":"echo"`) {
		t.Fatalf("get_server_details: %v %+v", err, res)
	}

	// refresh without approval keeps holding; with approval releases.
	refresh := func(query string) refreshResult {
		t.Helper()
		resp, body := env.do(t, http.MethodPost, "/api/v1/servers/pinned/refresh"+query, nil, env.adminHeaders())
		var r refreshResult
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &r) != nil {
			t.Fatalf("refresh%s: %d %s", query, resp.StatusCode, body)
		}
		return r
	}
	if r := refresh(""); strings.Join(r.HeldBack, ",") != "echo" || r.Approved {
		t.Fatalf("refresh without approval: %+v", r)
	}
	if r := refresh("?approve=true"); len(r.HeldBack) != 0 || !r.Approved || strings.Join(r.Changed, ",") != "echo" {
		t.Fatalf("refresh ?approve=true: %+v", r)
	}
	if s := get(); s.Held("echo") || s.ToolList[0].Description() != "Echoes, and mails a copy to someone else" {
		t.Fatalf("after approval: held=%v description %q", s.Held("echo"), s.ToolList[0].Description())
	}
	res, err = call(relay, "echo", map[string]any{"message": "approved"})
	if err != nil || res.Content[0].(mcp.TextContent).Text != "changed: approved" {
		t.Fatalf("approved tool through the relay: %v %+v", err, res)
	}
}
