package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/upstream"
	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

// progressLog records what one client received, in order: each progress
// notification and, once CallTool returned, the result.
type progressLog struct {
	mu     sync.Mutex
	events []string // "progress <token> <progress>/<total>" or "result"
	tokens []any
	at     []time.Time
}

func (l *progressLog) listen(c *client.Client) {
	c.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method != "notifications/progress" {
			return
		}
		f := n.Params.AdditionalFields
		l.mu.Lock()
		defer l.mu.Unlock()
		l.events = append(l.events, fmt.Sprintf("progress %v %v/%v", f["progressToken"], f["progress"], f["total"]))
		l.tokens = append(l.tokens, f["progressToken"])
		l.at = append(l.at, time.Now())
	})
}

func (l *progressLog) result() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, "result")
}

func (l *progressLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

// invokeWithProgress calls invoke_tool with _meta.progressToken = token.
func invokeWithProgress(ctx context.Context, c *client.Client, path, tool string, args map[string]any, token any) (*mcp.CallToolResult, error) {
	req := mcp.CallToolRequest{}
	req.Params.Name = "invoke_tool"
	req.Params.Arguments = map[string]any{"service_path": path, "tool_name": tool, "arguments": args}
	if token != nil {
		req.Params.Meta = &mcp.Meta{ProgressToken: token}
	}
	return c.CallTool(ctx, req)
}

// TestInvokeToolForwardsProgress: invoke_tool relays the upstream's
// progress notifications to its caller, under the caller's own token, in
// order and before the result. Two callers run at once with the same token
// over one pooled upstream session (same credentials), each with a different
// number of steps, so a notification routed to the wrong caller, or lost,
// shows up as a wrong sequence. A caller that asks for no progress gets none.
func TestInvokeToolForwardsProgress(t *testing.T) {
	for _, tc := range []struct {
		name     string
		upstream upstreamtest.Options
		version  string // of the callers on /mcpgw/mcp; "" is the stateless 2026-07-28
	}{
		{"streamable upstream, session-based caller", upstreamtest.Options{}, "2025-06-18"},
		{"streamable upstream, stateless caller", upstreamtest.Options{}, ""},
		{"legacy SSE upstream", upstreamtest.Options{SSE: true}, "2025-06-18"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			up := upstreamtest.New(t, tc.upstream)
			doc := map[string]any{"server_name": "progress", "path": "/progress", "proxy_pass_url": up.URL}
			if tc.upstream.SSE {
				doc["supported_transports"] = []string{"sse"}
			}
			e.register(t, doc)
			// The pool's SSE session holds a stream open to the upstream:
			// close it before the upstream's server waits for its requests.
			t.Cleanup(e.gw.invoker.(*upstream.Sessions).Close)
			hdr := map[string]string{"Authorization": "Bearer " + e.admin}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			steps := []int{4, 3}
			logs := make([]*progressLog, len(steps))
			errs := make([]error, len(steps))
			var wg sync.WaitGroup
			for i, n := range steps {
				c := connect(t, e.srv.URL+"/mcpgw/mcp", hdr, tc.version)
				logs[i] = &progressLog{}
				logs[i].listen(c)
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := invokeWithProgress(ctx, c, "/progress", "progress", map[string]any{"steps": n, "delay_ms": 60}, "same-token")
					if err == nil && (res.IsError || resultText(t, res) != "done") {
						err = fmt.Errorf("result %+v", res)
					}
					errs[i] = err
					logs[i].result()
				}()
			}
			wg.Wait()
			for i, n := range steps {
				if errs[i] != nil {
					t.Fatalf("caller %d: %v", i, errs[i])
				}
				var want []string
				for k := 1; k <= n; k++ {
					want = append(want, fmt.Sprintf("progress same-token %d/%d", k, n))
				}
				want = append(want, "result")
				if got := logs[i].snapshot(); strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("caller %d received:\n%s\nwant:\n%s", i, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}
			if !tc.upstream.SSE {
				// Streamable HTTP marks its handshakes; both calls must
				// have shared one upstream session for the routing by
				// token to have been put to the test.
				if n := handshakes(up); n != 1 {
					t.Errorf("%d upstream handshakes, want 1 session shared by both callers", n)
				}
			}

			// Without a progress token the caller gets the result alone.
			c := connect(t, e.srv.URL+"/mcpgw/mcp", hdr, tc.version)
			quiet := &progressLog{}
			quiet.listen(c)
			if _, err := invokeWithProgress(ctx, c, "/progress", "progress", map[string]any{"steps": 2, "delay_ms": 10}, nil); err != nil {
				t.Fatal(err)
			}
			quiet.result()
			if got := quiet.snapshot(); len(got) != 1 {
				t.Errorf("a caller without a progress token received %v", got)
			}
		})
	}
}

// TestInvokeToolProgressNotBuffered: each progress notification reaches the
// caller when the upstream sends it, not together with the result.
func TestInvokeToolProgressNotBuffered(t *testing.T) {
	e := newEnv(t, Options{})
	up := upstreamtest.New(t, upstreamtest.Options{})
	e.register(t, map[string]any{"server_name": "progress", "path": "/progress", "proxy_pass_url": up.URL})
	c := connect(t, e.srv.URL+"/mcpgw/mcp", map[string]string{"Authorization": "Bearer " + e.admin}, "2025-06-18")
	l := &progressLog{}
	l.listen(c)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := invokeWithProgress(ctx, c, "/progress", "progress", map[string]any{"steps": 3, "delay_ms": 300}, 42); err != nil {
		t.Fatal(err)
	}
	done := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.at) != 3 {
		t.Fatalf("received %v", l.events)
	}
	// A numeric token comes back as the caller sent it (a JSON number).
	if tok, ok := l.tokens[0].(float64); !ok || tok != 42 {
		t.Errorf("progress token %#v, want the caller's 42", l.tokens[0])
	}
	// The steps are 300 ms apart and the last one is followed by a 300 ms
	// pause: a gateway that held the notifications until the result would
	// deliver the first one at most a few ms before it.
	if gap := done.Sub(l.at[0]); gap < 500*time.Millisecond {
		t.Errorf("first progress arrived only %v before the result; invoke_tool buffers it", gap)
	}
}

// TestInvokeToolProgressServerEverything: a real third-party upstream's
// long-running operation, called through invoke_tool on the one gateway
// URL: its progress reaches the caller under the caller's token, one step at
// a time as the upstream sends it, before the result.
func TestInvokeToolProgressServerEverything(t *testing.T) {
	upURL := startEverything(t)
	e := newEnv(t, Options{})
	e.register(t, map[string]any{"server_name": "everything", "path": "/everything", "proxy_pass_url": upURL})
	t.Cleanup(e.gw.invoker.(*upstream.Sessions).Close)
	for _, version := range []string{"2025-06-18", ""} {
		t.Run("caller protocol "+version, func(t *testing.T) {
			c := connect(t, e.srv.URL+"/mcpgw/mcp", map[string]string{"Authorization": "Bearer " + e.admin}, version)
			l := &progressLog{}
			l.listen(c)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := invokeWithProgress(ctx, c, "/everything", "trigger-long-running-operation",
				map[string]any{"duration": 1.2, "steps": 3}, "caller-token-7")
			done := time.Now()
			if err != nil {
				t.Fatalf("invoke_tool: %v", err)
			}
			l.result()
			if txt := resultText(t, res); res.IsError || !strings.Contains(txt, "Long running operation completed") {
				t.Fatalf("result %q (isError %v)", txt, res.IsError)
			}
			want := "progress caller-token-7 1/3\nprogress caller-token-7 2/3\nprogress caller-token-7 3/3\nresult"
			if got := strings.Join(l.snapshot(), "\n"); got != want {
				t.Fatalf("received:\n%s\nwant:\n%s", got, want)
			}
			// Steps are 400 ms apart: forwarding that waited for the
			// result would deliver the first one together with it.
			l.mu.Lock()
			defer l.mu.Unlock()
			if gap := done.Sub(l.at[0]); gap < 500*time.Millisecond {
				t.Fatalf("first progress arrived only %v before the result; invoke_tool buffers it", gap)
			}
		})
	}
}
