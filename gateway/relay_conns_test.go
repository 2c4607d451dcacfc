package gateway

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

// countingUpstream is an mcp-go streamable-HTTP server that counts the TCP
// connections made to it.
func countingUpstream(t testing.TB) (string, *atomic.Int32) {
	t.Helper()
	s := server.NewMCPServer("conns", "1.0.0", server.WithToolCapabilities(true))
	s.AddTool(mcp.NewTool("echo", mcp.WithString("message", mcp.Required())),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("Echo: " + req.GetString("message", "")), nil
		})
	var conns atomic.Int32
	ts := httptest.NewUnstartedServer(server.NewStreamableHTTPServer(s))
	ts.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp", &conns
}

// TestRelayReusesUpstreamConnections: the relay holds pooled keep-alive
// connections to an upstream; it does not dial (or handshake) per call.
func TestRelayReusesUpstreamConnections(t *testing.T) {
	env := newEnv(t, Options{})
	url, conns := countingUpstream(t)
	env.register(t, map[string]any{"server_name": "conns", "path": "/conns", "proxy_pass_url": url})
	c := connect(t, env.srv.URL+"/conns/mcp", nil, "2025-06-18")
	for i := 0; i < 200; i++ {
		callEcho(t, c, "again")
	}
	if n := conns.Load(); n > 2 {
		t.Fatalf("200 sequential calls opened %d upstream connections; want 1 (2 at most)", n)
	}

	// Streamed (event-stream) answers end cleanly too, leaving the
	// connection reusable.
	up := upstreamtest.New(t, upstreamtest.Options{})
	env.register(t, map[string]any{"server_name": "stream", "path": "/stream", "proxy_pass_url": up.URL})
	cs := connect(t, env.srv.URL+"/stream/mcp", nil, "2025-06-18")
	before := len(up.Headers())
	for i := 0; i < 30; i++ {
		req := mcp.CallToolRequest{}
		req.Params.Name = "progress"
		req.Params.Arguments = map[string]any{"steps": 1, "delay_ms": 0}
		req.Params.Meta = &mcp.Meta{ProgressToken: i}
		if _, err := cs.CallTool(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(up.Headers()) - before; got != 30 {
		t.Fatalf("upstream saw %d calls", got)
	}
}
