package gateway

import (
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// A client connected to /mcpgw/mcp hears notifications/tools/list_changed
// when the set of services changes, so it can list them again.
func TestMetaNotifiesServiceChanges(t *testing.T) {
	env := newEnv(t, Options{})
	got := make(chan struct{}, 16)
	connectListening(t, env.srv.URL+"/mcpgw/mcp", func(n mcp.JSONRPCNotification) {
		if n.Method == "notifications/tools/list_changed" {
			got <- struct{}{}
		}
	})
	select {
	case <-got:
		t.Fatal("notified before any change")
	case <-time.After(200 * time.Millisecond):
	}
	// The GET stream may open just after Initialize returns: register until
	// one notification arrives.
	for i := 0; ; i++ {
		env.register(t, map[string]any{"server_name": "n", "path": "/n" + string(rune('a'+i)), "proxy_pass_url": "http://127.0.0.1:9/mcp"})
		select {
		case <-got:
			return
		case <-time.After(300 * time.Millisecond):
		}
		if i == 10 {
			t.Fatal("no notifications/tools/list_changed after registering services")
		}
	}
}
