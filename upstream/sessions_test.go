package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpgw/mcpgw/registry"
)

// legacyUpstream is an MCP server that speaks only the session-based
// protocol (it refuses server/discover), counts handshakes and tool runs,
// and can be told to forget the session on the next call (404), as an
// upstream does after a restart.
type legacyUpstream struct {
	url        string
	inits      atomic.Int32
	runs       atomic.Int32
	forgetNext atomic.Bool
	mu         sync.Mutex
	auths      []string
}

func newLegacyUpstream(t *testing.T) *legacyUpstream {
	t.Helper()
	u := &legacyUpstream{}
	s := server.NewMCPServer("legacy", "1.0.0", server.WithToolCapabilities(true))
	s.AddTool(mcp.NewTool("count", mcp.WithDescription("Counts its runs")),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			u.runs.Add(1)
			return mcp.NewToolResultText("ran"), nil
		})
	st := server.NewStreamableHTTPServer(s)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		_ = json.Unmarshal(body, &msg)
		u.mu.Lock()
		u.auths = append(u.auths, r.Header.Get("Authorization"))
		u.mu.Unlock()
		switch {
		case msg.Method == "server/discover":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":` + string(msg.ID) + `,"error":{"code":-32601,"message":"Method not found"}}`))
			return
		case msg.Method == "initialize":
			u.inits.Add(1)
		case msg.Method == "tools/call" && r.Header.Get("Mcp-Session-Id") != "" && u.forgetNext.CompareAndSwap(true, false):
			http.Error(w, "session not found", http.StatusNotFound)
			return
		}
		st.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	u.url = ts.URL + "/mcp"
	return u
}

func (u *legacyUpstream) server() *registry.Server {
	return &registry.Server{Path: "/legacy", ProxyPassURL: u.url, SupportedTransports: []string{registry.TransportStreamableHTTP}}
}

func newPool(t *testing.T, opts SessionOptions) *Sessions {
	t.Helper()
	p := NewSessions(http.DefaultTransport, "test", opts)
	t.Cleanup(p.Close)
	return p
}

func call(t *testing.T, p *Sessions, s *registry.Server, extra map[string]string) {
	t.Helper()
	res, err := p.CallTool(context.Background(), s, extra, "count", nil, nil)
	if err != nil {
		t.Fatalf("CallTool: %v", err)
	}
	if res.IsError || res.Content[0].(mcp.TextContent).Text != "ran" {
		t.Fatalf("result %+v", res)
	}
}

// TestSessionsReuse: calls with the same credentials share one session,
// also when they start at once; other credentials get their own.
func TestSessionsReuse(t *testing.T) {
	u := newLegacyUpstream(t)
	p := newPool(t, SessionOptions{})
	s := u.server()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call(t, p, s, map[string]string{"Authorization": "Bearer a"})
		}()
	}
	wg.Wait()
	if n := u.inits.Load(); n != 1 {
		t.Errorf("%d initializes for 8 concurrent calls with the same credentials, want 1", n)
	}
	call(t, p, s, map[string]string{"authorization": "Bearer a"}) // header names are case-insensitive
	call(t, p, s, map[string]string{"Authorization": "Bearer b"})
	call(t, p, s, map[string]string{"Authorization": "Bearer b"})
	if n := u.inits.Load(); n != 2 {
		t.Errorf("%d initializes after a second credential, want 2", n)
	}
	if st := p.Stats(); st.Opened != 2 {
		t.Errorf("stats %+v", st)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, a := range u.auths {
		if a != "Bearer a" && a != "Bearer b" {
			t.Errorf("a request carried Authorization %q", a)
		}
	}
}

// TestSessionsReinitializeOnSessionNotFound: when the upstream has
// forgotten the session, the pool opens a new one and sends the call once
// more; the tool runs exactly once.
func TestSessionsReinitializeOnSessionNotFound(t *testing.T) {
	u := newLegacyUpstream(t)
	p := newPool(t, SessionOptions{})
	s := u.server()
	call(t, p, s, nil)
	u.forgetNext.Store(true)
	call(t, p, s, nil)
	if n := u.inits.Load(); n != 2 {
		t.Errorf("%d initializes, want 2 (the second after the 404)", n)
	}
	if n := u.runs.Load(); n != 2 {
		t.Errorf("the tool ran %d times for 2 calls", n)
	}
	call(t, p, s, nil)
	if n := u.inits.Load(); n != 2 {
		t.Errorf("the renewed session was not kept: %d initializes", n)
	}
}

// TestSessionsIdleExpiry: a session unused for longer than IdleTimeout is
// closed, and the next call opens a new one.
func TestSessionsIdleExpiry(t *testing.T) {
	u := newLegacyUpstream(t)
	p := newPool(t, SessionOptions{IdleTimeout: time.Minute})
	now := time.Now()
	var mu sync.Mutex
	p.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := u.server()
	call(t, p, s, nil)
	mu.Lock()
	now = now.Add(30 * time.Second)
	mu.Unlock()
	call(t, p, s, nil)
	if n := u.inits.Load(); n != 1 {
		t.Fatalf("%d initializes within the idle timeout, want 1", n)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	call(t, p, s, nil)
	if n := u.inits.Load(); n != 2 {
		t.Errorf("%d initializes after the idle timeout, want 2", n)
	}
	if st := p.Stats(); st.Dropped != 1 {
		t.Errorf("stats %+v, want one dropped session", st)
	}
}

// TestSessionsBound: the pool closes its least recently used session to
// stay within MaxSessions.
func TestSessionsBound(t *testing.T) {
	u := newLegacyUpstream(t)
	p := newPool(t, SessionOptions{MaxSessions: 2})
	s := u.server()
	for _, tok := range []string{"a", "b", "c", "a"} {
		call(t, p, s, map[string]string{"Authorization": "Bearer " + tok})
	}
	// a, b, c (a evicted), a again (b evicted): 4 sessions opened.
	if n := u.inits.Load(); n != 4 {
		t.Errorf("%d initializes, want 4", n)
	}
	p.mu.Lock()
	n := len(p.m)
	p.mu.Unlock()
	if n != 2 {
		t.Errorf("%d sessions pooled, want 2", n)
	}
}

// TestSessionsFailures: an unreachable upstream and a refused credential
// are errors that leave nothing pooled; a closed pool refuses calls.
func TestSessionsFailures(t *testing.T) {
	p := newPool(t, SessionOptions{ConnectTimeout: 2 * time.Second})
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/mcp"
	dead.Close()
	_, err := p.CallTool(context.Background(), &registry.Server{Path: "/dead", ProxyPassURL: deadURL}, nil, "x", nil, nil)
	if err == nil {
		t.Fatal("a call to a closed port succeeded")
	}
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer refusing.Close()
	_, err = p.CallTool(context.Background(), &registry.Server{Path: "/refusing", ProxyPassURL: refusing.URL + "/mcp"}, nil, "x", nil, nil)
	if err == nil || !strings.Contains(err.Error(), "initialize") {
		t.Fatalf("refused credentials: %v", err)
	}
	p.mu.Lock()
	n := len(p.m)
	p.mu.Unlock()
	if n != 0 {
		t.Errorf("%d failed sessions kept in the pool", n)
	}
	p.Close()
	if _, err := p.CallTool(context.Background(), &registry.Server{Path: "/x", ProxyPassURL: refusing.URL}, nil, "x", nil, nil); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("after Close: %v", err)
	}
}
