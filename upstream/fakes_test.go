package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// seenRequest is one request a fake upstream received.
type seenRequest struct {
	HTTPMethod, RPC, Session, Auth, ProtocolVersion, McpMethod string
}

// fakeUpstream is a real mcp-go MCP server on 127.0.0.1 that records every
// request and can be slowed down, made to fail with a status, stopped
// (connection refused) and started again on the same address.
type fakeUpstream struct {
	URL string
	MCP *server.MCPServer

	addr    string
	handler http.Handler
	ts      *httptest.Server

	mu    sync.Mutex
	reqs  []seenRequest
	delay atomic.Int64 // nanoseconds each request waits
	fail  atomic.Int32 // when set, every request gets this status
}

type fakeOptions struct {
	stateless bool
	sse       bool
	pageSize  int // tools/list page size; 0: one page
	token     string
}

func newFake(t *testing.T, o fakeOptions) *fakeUpstream {
	t.Helper()
	var sopts []server.ServerOption
	sopts = append(sopts, server.WithToolCapabilities(true))
	if o.pageSize > 0 {
		sopts = append(sopts, server.WithPaginationLimit(o.pageSize))
	}
	f := &fakeUpstream{MCP: server.NewMCPServer("fake", "1.0.0", sopts...)}
	f.MCP.AddTool(mcp.NewTool("echo", mcp.WithDescription("Echoes back the input message"),
		mcp.WithString("message", mcp.Required(), mcp.Description("Message to echo"))),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(req.GetString("message", "")), nil
		})
	mux := http.NewServeMux()
	if o.sse {
		sse := server.NewSSEServer(f.MCP, server.WithStaticBasePath(""), server.WithSSEEndpoint("/mcp"), server.WithMessageEndpoint("/mcp/message"))
		mux.Handle("/mcp", sse.SSEHandler())
		mux.Handle("/mcp/message", sse.MessageHandler())
	} else {
		mux.Handle("/mcp", server.NewStreamableHTTPServer(f.MCP, server.WithEndpointPath("/mcp"), server.WithStateLess(o.stateless)))
	}
	f.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var m struct {
			Method string `json:"method"`
		}
		_ = json.Unmarshal(body, &m)
		f.mu.Lock()
		f.reqs = append(f.reqs, seenRequest{HTTPMethod: r.Method, RPC: m.Method, Session: r.Header.Get("Mcp-Session-Id"),
			Auth: r.Header.Get("Authorization"), ProtocolVersion: r.Header.Get("Mcp-Protocol-Version"), McpMethod: r.Header.Get("Mcp-Method")})
		f.mu.Unlock()
		if d := time.Duration(f.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		if code := int(f.fail.Load()); code != 0 {
			http.Error(w, "failing on purpose", code)
			return
		}
		if o.token != "" && r.Header.Get("Authorization") != "Bearer "+o.token {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, `{"message":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	f.URL = "http://" + f.addr + "/mcp"
	f.serve(ln)
	t.Cleanup(f.stop)
	return f
}

func (f *fakeUpstream) serve(ln net.Listener) {
	ts := httptest.NewUnstartedServer(f.handler)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	f.mu.Lock()
	f.ts = ts
	f.mu.Unlock()
}

// stop takes the upstream down: its port refuses connections.
func (f *fakeUpstream) stop() {
	f.mu.Lock()
	ts := f.ts
	f.ts = nil
	f.mu.Unlock()
	if ts != nil {
		ts.CloseClientConnections()
		ts.Close()
	}
}

// start brings the upstream back on the same address.
func (f *fakeUpstream) start(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may linger a moment after Close
		if ln, err = net.Listen("tcp", f.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart fake upstream on %s: %v", f.addr, err)
	}
	f.serve(ln)
}

func (f *fakeUpstream) requests() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.reqs...)
}

// count returns how many requests matched: HTTP method and, when rpc is
// not empty, JSON-RPC method.
func (f *fakeUpstream) count(httpMethod, rpc string) int {
	n := 0
	for _, r := range f.requests() {
		if r.HTTPMethod == httpMethod && (rpc == "" || r.RPC == rpc) {
			n++
		}
	}
	return n
}

// addTools adds n tools named prefix0..prefixN-1 to the fake.
func (f *fakeUpstream) addTools(prefix string, n int) {
	for i := range n {
		f.MCP.AddTool(mcp.NewTool(fmt.Sprintf("%s%d", prefix, i), mcp.WithDescription("tool "+prefix)),
			func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return mcp.NewToolResultText("ok"), nil
			})
	}
}

// rpcHandler is a plain hand-written upstream: it answers each JSON-RPC
// method with the function given, for shapes mcp-go will not produce.
func rpcHandler(answers map[string]func(w http.ResponseWriter, id json.RawMessage)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusOK)
			return
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		if strings.HasPrefix(m.Method, "notifications/") {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		fn := answers[m.Method]
		if fn == nil {
			writeRPC(w, http.StatusOK, m.ID, nil, &rpcError{Code: -32601, Message: "Method not found"})
			return
		}
		fn(w, m.ID)
	})
}

func writeRPC(w http.ResponseWriter, status int, id json.RawMessage, result any, rerr *rpcError) {
	msg := map[string]any{"jsonrpc": "2.0", "id": id}
	if rerr != nil {
		msg["error"] = rerr
	} else {
		msg["result"] = result
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(msg)
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
