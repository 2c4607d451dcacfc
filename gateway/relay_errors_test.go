package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

// rpcHeaders are the headers of a raw MCP POST in session sid.
func rpcHeaders(sid string) map[string]string {
	h := map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}
	if sid != "" {
		h["Mcp-Session-Id"] = sid
	}
	return h
}

type rpcError struct {
	ID    json.RawMessage `json:"id"`
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func decodeRPCError(t *testing.T, body []byte) rpcError {
	t.Helper()
	var e rpcError
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == 0 {
		t.Fatalf("want a JSON-RPC error, got %s", body)
	}
	return e
}

func TestRelayErrors(t *testing.T) {
	env := newEnv(t, Options{MaxBodyBytes: 4096})
	up := upstreamtest.New(t, upstreamtest.Options{})
	env.register(t, map[string]any{"server_name": "ok", "path": "/ok", "proxy_pass_url": up.URL})
	env.register(t, map[string]any{"server_name": "off", "path": "/off", "proxy_pass_url": up.URL})
	if _, err := env.reg.SetEnabled(context.Background(), "/off", false); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	env.register(t, map[string]any{"server_name": "dead", "path": "/dead", "proxy_pass_url": "http://" + closed + "/mcp"})
	ping := []byte(`{"jsonrpc":"2.0","id":42,"method":"ping"}`)

	t.Run("unknown and disabled paths are 404 naming the path", func(t *testing.T) {
		for _, p := range []string{"/nowhere/mcp", "/off/mcp", "/off/", "/nowhere/sse"} {
			resp, body := env.do(t, http.MethodPost, p, ping, rpcHeaders(""))
			var e apiError
			if resp.StatusCode != http.StatusNotFound || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, p) {
				t.Fatalf("%s: %d %s", p, resp.StatusCode, body)
			}
		}
	})

	t.Run("refused upstream is 502 with the request id", func(t *testing.T) {
		resp, body := env.do(t, http.MethodPost, "/dead/mcp", ping, rpcHeaders(""))
		if resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if e := decodeRPCError(t, body); string(e.ID) != "42" || !strings.Contains(e.Error.Message, "/dead") {
			t.Fatalf("error %s", body)
		}
		// A GET has no JSON-RPC request: a REST error.
		resp, body = env.do(t, http.MethodGet, "/dead/mcp", nil, map[string]string{"Accept": "text/event-stream"})
		var e apiError
		if resp.StatusCode != http.StatusBadGateway || json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Fatalf("GET: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("body over the limit is 413 and not forwarded", func(t *testing.T) {
		n := len(up.Headers())
		big := []byte(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"` + strings.Repeat("x", 5000) + `"}}`)
		resp, body := env.do(t, http.MethodPost, "/ok/mcp", big, rpcHeaders(""))
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		decodeRPCError(t, body)
		// Without a declared length the limit holds while reading.
		req, _ := http.NewRequest(http.MethodPost, env.srv.URL+"/ok/mcp", io.MultiReader(bytes.NewReader(big)))
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked: status %d: %s", resp.StatusCode, body)
		}
		if got := len(up.Headers()); got != n {
			t.Fatalf("the upstream saw %d requests for bodies over the limit", got-n)
		}
	})

	t.Run("a body that is not JSON-RPC is -32700 and not forwarded", func(t *testing.T) {
		n := len(up.Headers())
		for _, b := range []string{"not json", `{"jsonrpc":"2.0","id":1,"method":`, "", "[]", `{"jsonrpc":"1.0","id":1,"method":"ping"}`, `{"jsonrpc":"2.0","id":1}`, `[{"jsonrpc":"2.0","id":1,"method":"ping"},3]`} {
			resp, body := env.do(t, http.MethodPost, "/ok/mcp", []byte(b), rpcHeaders(""))
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("%q: status %d: %s", b, resp.StatusCode, body)
			}
			if e := decodeRPCError(t, body); e.Error.Code != rpcParseError {
				t.Fatalf("%q: code %d", b, e.Error.Code)
			}
		}
		if got := len(up.Headers()); got != n {
			t.Fatalf("the upstream saw %d requests for invalid bodies", got-n)
		}
	})

	t.Run("MCP headers pass unchanged", func(t *testing.T) {
		c := connect(t, env.srv.URL+"/ok/mcp", nil, "2025-06-18")
		h := rpcHeaders(c.GetSessionId())
		h["Mcp-Method"] = "tools/call"
		h["Mcp-Name"] = "echo"
		h["Last-Event-ID"] = "ev-17"
		body := []byte(`{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"h"}}}`)
		resp, b := env.do(t, http.MethodPost, "/ok/mcp", body, h)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		for k, want := range map[string]string{"Mcp-Method": "tools/call", "Mcp-Name": "echo", "Last-Event-Id": "ev-17", "Mcp-Protocol-Version": "2025-06-18"} {
			if got := up.LastHeader(k); got != want {
				t.Fatalf("%s = %q, want %q", k, got, want)
			}
		}
	})
}

func TestRelayUpstreamTimeout(t *testing.T) {
	env := newEnv(t, Options{UpstreamTimeout: 200 * time.Millisecond})
	up := upstreamtest.New(t, upstreamtest.Options{})
	env.register(t, map[string]any{"server_name": "slow", "path": "/slow", "proxy_pass_url": up.URL})
	c := connect(t, env.srv.URL+"/slow/mcp", nil, "2025-06-18")

	t.Run("no answer in time is 504 with the request id", func(t *testing.T) {
		start := time.Now()
		body := []byte(`{"jsonrpc":"2.0","id":"call-9","method":"tools/call","params":{"name":"slow","arguments":{"ms":3000}}}`)
		resp, b := env.do(t, http.MethodPost, "/slow/mcp", body, rpcHeaders(c.GetSessionId()))
		if resp.StatusCode != http.StatusGatewayTimeout {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		if e := decodeRPCError(t, b); string(e.ID) != `"call-9"` {
			t.Fatalf("error %s", b)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("504 took %v", d)
		}
	})

	t.Run("quick calls are not cut", func(t *testing.T) {
		req := mcp.CallToolRequest{}
		req.Params.Name = "slow"
		req.Params.Arguments = map[string]any{"ms": 20}
		if _, err := c.CallTool(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("progress keeps a stream alive; silence ends it with an error", func(t *testing.T) {
		// Events 100 ms apart outlive a 200 ms timeout: it is an idle timeout.
		req := mcp.CallToolRequest{}
		req.Params.Name = "progress"
		req.Params.Arguments = map[string]any{"steps": 4, "delay_ms": 100}
		req.Params.Meta = &mcp.Meta{ProgressToken: "p"}
		if _, err := c.CallTool(context.Background(), req); err != nil {
			t.Fatalf("a stream with events every 100 ms was cut: %v", err)
		}
		// Events 1 s apart: the client gets an error right after the
		// timeout, not a hang.
		req.Params.Arguments = map[string]any{"steps": 3, "delay_ms": 1000}
		start := time.Now()
		_, err := c.CallTool(context.Background(), req)
		if err == nil || !strings.Contains(err.Error(), "did not answer in time") {
			t.Fatalf("want the gateway's timeout error, got %v", err)
		}
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Fatalf("the error came after %v", d)
		}
	})

	t.Run("the GET stream has no timeout", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		lines := openServerStream(t, ctx, env.srv.URL+"/slow/mcp", c.GetSessionId())
		time.Sleep(500 * time.Millisecond)
		up.MCP.SendNotificationToAllClients("notifications/message", map[string]any{"level": "info", "data": "late"})
		waitFor(t, lines, "late", 3*time.Second)
	})
}

// openServerStream opens the server-to-client GET stream of session sid and
// returns its lines.
func openServerStream(t *testing.T, ctx context.Context, url, sid string) <-chan string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for k, v := range rpcHeaders(sid) {
		req.Header.Set(k, v)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !isEventStream(resp.Header) {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET stream: %d %s", resp.StatusCode, b)
	}
	lines := make(chan string, 64)
	go func() {
		defer resp.Body.Close()
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}

func waitFor(t *testing.T, lines <-chan string, want string, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("stream ended before %q", want)
			}
			if strings.Contains(l, want) {
				return
			}
		case <-deadline:
			t.Fatalf("%q did not arrive within %v", want, d)
		}
	}
}

func TestRelayServerStream(t *testing.T) {
	env := newEnv(t, Options{})
	up := upstreamtest.New(t, upstreamtest.Options{})
	env.register(t, map[string]any{"server_name": "s", "path": "/s", "proxy_pass_url": up.URL})
	c := connect(t, env.srv.URL+"/s/mcp", nil, "2025-06-18")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lines := openServerStream(t, ctx, env.srv.URL+"/s/mcp", c.GetSessionId())
	// The upstream may register the stream a moment after answering its
	// headers; notify until one arrives.
	got := make(chan struct{})
	go func() {
		for i := 0; i < 50; i++ {
			select {
			case <-got:
				return
			case <-time.After(100 * time.Millisecond):
				up.MCP.SendNotificationToAllClients("notifications/message", map[string]any{"level": "info", "data": fmt.Sprintf("server-push-%d", i)})
			}
		}
	}()
	waitFor(t, lines, "server-push-", 6*time.Second)
	close(got)
	if sid := up.LastHeader("Mcp-Session-Id"); sid == "" || sid == c.GetSessionId() {
		t.Fatalf("the upstream got session id %q on the GET; want its own, unsealed", sid)
	}
}

type samplingHandler struct{ calls atomic.Int32 }

func (h *samplingHandler) CreateMessage(ctx context.Context, req mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
	h.calls.Add(1)
	return &mcp.CreateMessageResult{
		SamplingMessage: mcp.SamplingMessage{Role: mcp.RoleAssistant, Content: mcp.NewTextContent("four")},
		Model:           "test-model",
		StopReason:      "endTurn",
	}, nil
}

// TestRelayServerInitiatedRequests: a tool that asks the client for a
// sampling completion works through the relay: the request reaches the
// client on the server stream and the client's response, a POST without a
// method, reaches the upstream.
func TestRelayServerInitiatedRequests(t *testing.T) {
	env := newEnv(t, Options{})
	ask := mcp.NewTool("ask", mcp.WithDescription("Asks the client's model a question"))
	up := upstreamtest.New(t, upstreamtest.Options{Tools: []server.ServerTool{{Tool: ask,
		Handler: func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			res, err := server.ServerFromContext(ctx).RequestSampling(ctx, mcp.CreateMessageRequest{CreateMessageParams: mcp.CreateMessageParams{
				Messages:  []mcp.SamplingMessage{{Role: mcp.RoleUser, Content: mcp.NewTextContent("2+2?")}},
				MaxTokens: 5,
			}})
			if err != nil {
				return mcp.NewToolResultError("sampling failed: " + err.Error()), nil
			}
			b, _ := json.Marshal(res.Content)
			return mcp.NewToolResultText("model " + res.Model + " said " + string(b)), nil
		}}}})
	up.MCP.EnableSampling()
	env.register(t, map[string]any{"server_name": "sampler", "path": "/sampler", "proxy_pass_url": up.URL})

	// mcp-go sends server-initiated requests on the GET stream, which the
	// client opens with continuous listening.
	tr, err := transport.NewStreamableHTTP(env.srv.URL+"/sampler/mcp", transport.WithContinuousListening())
	if err != nil {
		t.Fatal(err)
	}
	h := &samplingHandler{}
	c := client.NewClient(tr, client.WithSamplingHandler(h), client.WithProtocolVersion("2025-06-18"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "sampling-test", Version: "1"}
	init.Params.ProtocolVersion = "2025-06-18"
	if _, err := c.Initialize(ctx, init); err != nil {
		t.Fatal(err)
	}
	n := len(up.Headers())
	req := mcp.CallToolRequest{}
	req.Params.Name = "ask"
	res, err := c.CallTool(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	txt := res.Content[0].(mcp.TextContent).Text
	if res.IsError || !strings.Contains(txt, "model test-model said") || !strings.Contains(txt, "four") {
		t.Fatalf("result %q", txt)
	}
	if h.calls.Load() != 1 {
		t.Fatalf("sampling handler called %d times", h.calls.Load())
	}
	if got := len(up.Headers()) - n; got < 2 {
		t.Fatalf("upstream saw %d requests; want the call and the sampling response", got)
	}
}

// TestRelayRoutingChangesUnderLoad calls several servers concurrently while
// one is removed and another registered: the untouched servers see no error,
// the removed path is 404 afterwards, the new one works at once.
func TestRelayRoutingChangesUnderLoad(t *testing.T) {
	env := newEnv(t, Options{})
	var ups []*upstreamtest.Server
	for _, p := range []string{"a", "b", "gone"} {
		up := upstreamtest.New(t, upstreamtest.Options{Stateless: p == "b"})
		ups = append(ups, up)
		env.register(t, map[string]any{"server_name": p, "path": "/" + p, "proxy_pass_url": up.URL})
	}
	clients := map[string]*client.Client{
		"a": connect(t, env.srv.URL+"/a/mcp", nil, "2025-06-18"),
		"b": connect(t, env.srv.URL+"/b/mcp", nil, "2026-07-28"),
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var calls atomic.Int64
	errs := make(chan error, 16)
	for name, c := range clients {
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func(name string, c *client.Client, w int) {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					req := mcp.CallToolRequest{}
					req.Params.Name = "echo"
					msg := fmt.Sprintf("%s-%d-%d", name, w, i)
					req.Params.Arguments = map[string]any{"message": msg}
					res, err := c.CallTool(context.Background(), req)
					if err != nil {
						errs <- fmt.Errorf("%s: %w", name, err)
						return
					}
					if got := res.Content[0].(mcp.TextContent).Text; got != "Echo: "+msg {
						errs <- fmt.Errorf("%s: got %q", name, got)
						return
					}
					calls.Add(1)
				}
			}(name, c, w)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if err := env.reg.Remove(context.Background(), "/gone"); err != nil {
		t.Fatal(err)
	}
	newUp := upstreamtest.New(t, upstreamtest.Options{})
	env.register(t, map[string]any{"server_name": "new", "path": "/new", "proxy_pass_url": newUp.URL})
	cn := connect(t, env.srv.URL+"/new/mcp", nil, "2025-06-18")
	if got := callEcho(t, cn, "fresh"); got != "Echo: fresh" {
		t.Fatalf("new server: %q", got)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if calls.Load() < 20 {
		t.Fatalf("only %d calls completed", calls.Load())
	}
	resp, body := env.do(t, http.MethodPost, "/gone/mcp", []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`), rpcHeaders(""))
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "/gone/mcp") {
		t.Fatalf("removed path: %d %s", resp.StatusCode, body)
	}
}

// TestRelaySlowUpstreamDoesNotBlockOthers: while one upstream sits on a
// call, another answers at its usual speed.
func TestRelaySlowUpstreamDoesNotBlockOthers(t *testing.T) {
	env := newEnv(t, Options{})
	slowUp := upstreamtest.New(t, upstreamtest.Options{})
	fastUp := upstreamtest.New(t, upstreamtest.Options{})
	env.register(t, map[string]any{"server_name": "slow", "path": "/slow", "proxy_pass_url": slowUp.URL})
	env.register(t, map[string]any{"server_name": "fast", "path": "/fast", "proxy_pass_url": fastUp.URL})
	slow := connect(t, env.srv.URL+"/slow/mcp", nil, "2025-06-18")
	fast := connect(t, env.srv.URL+"/fast/mcp", nil, "2025-06-18")

	const slowFor = time.Second
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := mcp.CallToolRequest{}
			req.Params.Name = "slow"
			req.Params.Arguments = map[string]any{"ms": slowFor.Milliseconds()}
			if _, err := slow.CallTool(context.Background(), req); err != nil {
				t.Errorf("slow call: %v", err)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond) // the slow calls are in flight
	start := time.Now()
	for i := 0; i < 10; i++ {
		callEcho(t, fast, "quick")
	}
	if d := time.Since(start); d > slowFor/2 {
		t.Fatalf("10 calls to the fast server took %v while the slow one was busy", d)
	}
	wg.Wait()
}
