package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/upstream"
	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

// progressLog records what one client received, in order: each progress
// notification and, once CallTool returned, the result.
type progressLog struct {
	mu     sync.Mutex
	events []string // "progress <token> <progress>/<total>[ meta <step>]" or "result"
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
		ev := fmt.Sprintf("progress %v %v/%v", f["progressToken"], f["progress"], f["total"])
		if step, ok := n.Params.Meta[upstreamtest.ProgressMetaKey]; ok {
			ev += fmt.Sprintf(" meta %v", step) // the upstream's _meta came through
		}
		l.events = append(l.events, ev)
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
// order and before the result, with the upstream's _meta. Two callers run at once with the same token
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
					want = append(want, fmt.Sprintf("progress same-token %d/%d meta %d", k, n, k))
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

// TestInvokeToolLastProgressNotLost: an upstream that sends its last
// progress notification right before its result (no pause) still has every
// notification reach the caller before the result, call after call. mcp-go
// alone drops such a last notification about half the time (see
// progressWait). With a GET stream open on the caller's session, which
// competes for the session's notifications, every notification still
// arrives and the call is not held up waiting for one written there.
func TestInvokeToolLastProgressNotLost(t *testing.T) {
	e := newEnv(t, Options{})
	e.register(t, map[string]any{"server_name": "progress", "path": "/progress", "proxy_pass_url": burstUpstream(t)})
	hdr := map[string]string{"Authorization": "Bearer " + e.admin}
	for _, tc := range []struct {
		name    string
		version string
		listen  bool
	}{
		{"session-based", "2025-06-18", false},
		{"stateless", "", false},
		{"session-based with a GET stream", "2025-06-18", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *client.Client
			if tc.listen {
				c = connectWithGETStream(t, e.srv.URL+"/mcpgw/mcp", hdr, tc.version)
			} else {
				c = connect(t, e.srv.URL+"/mcpgw/mcp", hdr, tc.version)
			}
			l := &progressLog{}
			l.listen(c)
			const steps = 4
			for i := range 25 {
				token := fmt.Sprintf("t%d", i)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				start := time.Now()
				_, err := invokeWithProgress(ctx, c, "/progress", "progress", map[string]any{"steps": steps, "delay_ms": 0}, token)
				took := time.Since(start)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				l.result()
				if took > 900*time.Millisecond {
					t.Errorf("call %d took %v: it waited for a notification it had already had written", i, took)
				}
			}
			if tc.listen {
				time.Sleep(200 * time.Millisecond) // the GET stream's are not ordered with the results
			}
			events := l.snapshot()
			got := map[string]int{}
			for _, ev := range events {
				got[ev]++
			}
			for i := range 25 {
				for k := 1; k <= steps; k++ {
					if ev := fmt.Sprintf("progress t%d %d/%d", i, k, steps); got[ev] != 1 {
						t.Fatalf("%q received %d times; all received:\n%s", ev, got[ev], strings.Join(events, "\n"))
					}
				}
			}
			if tc.listen {
				return
			}
			// Without a GET stream, each call's progress precedes its result.
			pos := 0
			for i := range 25 {
				for k := 1; k <= steps; k++ {
					if want := fmt.Sprintf("progress t%d %d/%d", i, k, steps); events[pos] != want {
						t.Fatalf("event %d is %q, want %q", pos, events[pos], want)
					}
					pos++
				}
				if events[pos] != "result" {
					t.Fatalf("event %d is %q, want the result of call %d", pos, events[pos], i)
				}
				pos++
			}
		})
	}
}

// burstUpstream is a minimal MCP server whose tools/call answers with one
// SSE write: a progress notification per step, then the result at once.
// (mcp-go's own server can drop notifications queued just before a handler
// returns, so it cannot be the upstream of a test that counts them.)
func burstUpstream(t *testing.T) string {
	return handUpstream(t, func(w http.ResponseWriter, call handCall) {
		steps, _ := call.Arguments["steps"].(float64)
		tok, _ := json.Marshal(call.ProgressToken)
		var b strings.Builder
		for k := 1; k <= int(steps) && call.ProgressToken != nil; k++ {
			fmt.Fprintf(&b, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":%s,\"progress\":%d,\"total\":%d}}\n\n", tok, k, int(steps))
		}
		fmt.Fprintf(&b, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"done\"}]}}\n\n", call.ID)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, b.String())
	})
}

// handCall is a tools/call as handUpstream passes it on.
type handCall struct {
	ID            json.RawMessage
	Arguments     map[string]any
	ProgressToken any
}

// handUpstream is a minimal MCP server (session-based streamable HTTP,
// protocol 2025-06-18, written by hand) that answers tools/call with
// onCall, so that a test controls every byte of the answer.
func handUpstream(t *testing.T, onCall func(w http.ResponseWriter, call handCall)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Arguments map[string]any `json:"arguments"`
				Meta      struct {
					ProgressToken any `json:"progressToken"`
				} `json:"_meta"`
			} `json:"params"`
		}
		if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch msg.Method {
		case "initialize":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Mcp-Session-Id", "hand-1")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"hand","version":"1"}}}`, msg.ID)
		case "tools/call":
			onCall(w, handCall{ID: msg.ID, Arguments: msg.Params.Arguments, ProgressToken: msg.Params.Meta.ProgressToken})
		case "":
			w.WriteHeader(http.StatusBadRequest)
		default:
			if msg.ID == nil {
				w.WriteHeader(http.StatusAccepted) // a notification
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"Method not found"}}`, msg.ID)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp"
}

// connectWithGETStream is connect with the client's GET stream open, as
// many MCP clients keep one.
func connectWithGETStream(t *testing.T, url string, headers map[string]string, version string) *client.Client {
	t.Helper()
	tr, err := transport.NewStreamableHTTP(url, transport.WithHTTPHeaders(headers), transport.WithContinuousListening())
	if err != nil {
		t.Fatal(err)
	}
	c := client.NewClient(tr, client.WithProtocolVersion(version))
	// The GET stream lives on the Start context: it must outlast this call.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: t.Name(), Version: "1"}
	init.Params.ProtocolVersion = version
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatalf("initialize through %s: %v", url, err)
	}
	return c
}
