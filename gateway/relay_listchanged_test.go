package gateway

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

// connectListening initializes an MCP session (2025-06-18) at url with the
// server-to-client GET stream open, calling onNote for every notification.
func connectListening(t *testing.T, url string, onNote func(mcp.JSONRPCNotification)) *client.Client {
	t.Helper()
	tr, err := transport.NewStreamableHTTP(url, transport.WithContinuousListening())
	if err != nil {
		t.Fatal(err)
	}
	c := client.NewClient(tr, client.WithProtocolVersion("2025-06-18"))
	// The GET stream lives on the Start context: it must outlast this call.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.OnNotification(onNote)
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: t.Name(), Version: "1"}
	init.Params.ProtocolVersion = "2025-06-18"
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatal(err)
	}
	return c
}

// recordingHealth is a HealthSource that records Recheck calls.
type recordingHealth struct {
	mu   sync.Mutex
	keys []string
}

func (h *recordingHealth) Health(string) registry.Health {
	return registry.Health{Status: registry.HealthHealthy}
}

func (h *recordingHealth) Recheck(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.keys = append(h.keys, key)
}

func (h *recordingHealth) calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.keys...)
}

// A notifications/tools/list_changed relayed from the upstream makes the
// gateway re-read that server's tools (SPEC section 6).
func TestRelayedListChangedTriggersRecheck(t *testing.T) {
	env := newEnv(t, Options{})
	rec := &recordingHealth{}
	env.gw.health = rec
	up := upstreamtest.New(t, upstreamtest.Options{})
	env.register(t, map[string]any{"server_name": "lc", "path": "/lc", "proxy_pass_url": up.URL})

	got := make(chan struct{}, 1)
	connectListening(t, env.srv.URL+"/lc/mcp", func(n mcp.JSONRPCNotification) {
		if n.Method == "notifications/tools/list_changed" {
			select {
			case got <- struct{}{}:
			default:
			}
		}
	})
	if calls := rec.calls(); len(calls) != 0 {
		t.Fatalf("recheck before any change: %v", calls)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(rec.calls()) == 0 && time.Now().Before(deadline) {
		// The GET stream may open after Initialize returns; adding tools
		// until the notification flows covers that race.
		up.MCP.AddTool(mcp.NewTool("added_"+time.Now().Format("150405.000000")), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText("ok"), nil
		})
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the client never saw notifications/tools/list_changed through the relay")
	}
	calls := rec.calls()
	if len(calls) == 0 || calls[0] != "lc" {
		t.Fatalf("recheck calls %v, want [lc ...]", calls)
	}
}
