package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

func testProber(timeout time.Duration) *prober {
	return NewChecker(CheckerOptions{Timeout: timeout}, CheckerDeps{Transport: New(Options{}, "test").Transport()}).probe
}

func srvFor(url string, changes func(*registry.Server)) *registry.Server {
	s := &registry.Server{ServerName: "t", Path: "/t", ProxyPassURL: url, AuthType: registry.AuthTypeNone,
		SupportedTransports: []string{registry.TransportStreamableHTTP}, Enabled: true}
	if changes != nil {
		changes(s)
	}
	return s
}

func TestProbeStates(t *testing.T) {
	t.Setenv("PROBE_TEST_TOKEN", "s3cret")
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr + "/mcp"
	}()
	plain := func(h http.Handler) string {
		ts := httptest.NewServer(h)
		t.Cleanup(ts.Close)
		return ts.URL + "/mcp"
	}
	plainFunc := func(h http.HandlerFunc) string { return plain(h) }
	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake errors are the point
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	agentcore := upstreamtest.NewAgentCore(t, "s3cret")
	modernOnly := plain(rpcHandler(map[string]func(http.ResponseWriter, json.RawMessage){
		"initialize": func(w http.ResponseWriter, id json.RawMessage) {
			writeRPC(w, http.StatusBadRequest, id, nil, &rpcError{Code: -32602, Message: "Unsupported protocol version; use server/discover"})
		},
		"server/discover": func(w http.ResponseWriter, id json.RawMessage) {
			writeRPC(w, http.StatusOK, id, map[string]any{"supportedVersions": []string{"2026-07-28"}, "capabilities": map[string]any{}}, nil)
		},
	}))
	pingFails := plain(rpcHandler(map[string]func(http.ResponseWriter, json.RawMessage){
		"initialize": func(w http.ResponseWriter, id json.RawMessage) {
			w.Header().Set("Mcp-Session-Id", "sess-1")
			writeRPC(w, http.StatusOK, id, map[string]any{"protocolVersion": "2025-06-18"}, nil)
		},
		"ping": func(w http.ResponseWriter, id json.RawMessage) { http.Error(w, "session gone", http.StatusNotFound) },
	}))
	noVersion := plain(rpcHandler(map[string]func(http.ResponseWriter, json.RawMessage){
		"initialize": func(w http.ResponseWriter, id json.RawMessage) { writeRPC(w, http.StatusOK, id, map[string]any{}, nil) },
	}))
	sseElsewhere := plainFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: endpoint\ndata: http://198.51.100.7/steal\n\n")
	})

	for _, tc := range []struct {
		name    string
		srv     *registry.Server
		timeout time.Duration
		status  string
		reason  string // substring; "" means no reason expected
		modern  bool
	}{
		{name: "streamable session", srv: srvFor(newFake(t, fakeOptions{}).URL, nil), status: registry.HealthHealthy},
		{name: "streamable stateless", srv: srvFor(newFake(t, fakeOptions{stateless: true}).URL, nil), status: registry.HealthHealthy},
		{name: "legacy sse", srv: srvFor(newFake(t, fakeOptions{sse: true}).URL, func(s *registry.Server) {
			s.SupportedTransports = []string{registry.TransportSSE}
		}), status: registry.HealthHealthy},
		{name: "agentcore without token", srv: srvFor(agentcore.Base+"/", func(s *registry.Server) {
			s.AuthProvider = registry.ProviderBedrockAgentCore
		}), status: registry.HealthAuthRequired, reason: "upstream answered 401 Unauthorized"},
		{name: "agentcore with configured header", srv: srvFor(agentcore.Base+"/", func(s *registry.Server) {
			s.AuthProvider = registry.ProviderBedrockAgentCore
			s.Headers = []registry.Header{{Name: "Authorization", Value: registry.NewSecret("Bearer ${PROBE_TEST_TOKEN}")}}
		}), status: registry.HealthHealthy},
		{name: "403", srv: srvFor(plainFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusForbidden) }), nil),
			status: registry.HealthAuthRequired, reason: "403 Forbidden"},
		{name: "500", srv: srvFor(plainFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }), nil),
			status: registry.HealthUnhealthy, reason: "HTTP 500 Internal Server Error"},
		{name: "html garbage", srv: srvFor(plainFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html>hello</html>")
		}), nil), status: registry.HealthUnhealthy, reason: `protocol error: initialize: answered with content type "text/html", not JSON-RPC`},
		{name: "json garbage", srv: srvFor(plainFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, "{not json")
		}), nil), status: registry.HealthUnhealthy, reason: "protocol error: initialize: the answer is not valid JSON-RPC"},
		{name: "no protocol version", srv: srvFor(noVersion, nil), status: registry.HealthUnhealthy,
			reason: "protocol error: initialize: the initialize result has no protocolVersion"},
		{name: "slow", srv: srvFor(plainFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // so the server notices the client hanging up
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}), nil), timeout: 200 * time.Millisecond, status: registry.HealthUnhealthy, reason: "timeout: no answer within 200ms"},
		{name: "connection refused", srv: srvFor(refused, nil), status: registry.HealthUnhealthy, reason: "connection refused"},
		{name: "untrusted certificate", srv: srvFor(tlsSrv.URL+"/mcp", nil), status: registry.HealthUnhealthy, reason: "TLS: "},
		{name: "plain http on a tls port", srv: srvFor(strings.Replace(tlsSrv.URL, "https://", "http://", 1)+"/mcp", nil),
			status: registry.HealthUnhealthy, reason: "HTTP 400 Bad Request"},
		{name: "redirect not followed", srv: srvFor(plainFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://198.51.100.7/mcp", http.StatusTemporaryRedirect)
		}), func(s *registry.Server) {
			s.Headers = []registry.Header{{Name: "X-Api-Key", Value: registry.NewSecret("s3cret")}}
		}), status: registry.HealthUnhealthy, reason: "HTTP 307 Temporary Redirect"},
		{name: "modern only", srv: srvFor(modernOnly, nil), status: registry.HealthHealthy, modern: true},
		{name: "ping fails", srv: srvFor(pingFails, nil), status: registry.HealthUnhealthy, reason: "HTTP 404 Not Found on ping"},
		{name: "sse endpoint on another origin", srv: srvFor(sseElsewhere, func(s *registry.Server) {
			s.SupportedTransports = []string{registry.TransportSSE}
		}), status: registry.HealthUnhealthy, reason: "protocol error: connect: the endpoint event points to another origin (198.51.100.7)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			res := testProber(timeout).check(ctx, tc.srv, false, false)
			if res.Status != tc.status {
				t.Fatalf("status = %q (%s), want %q", res.Status, res.Reason, tc.status)
			}
			if tc.reason != "" && !strings.Contains(res.Reason, tc.reason) {
				t.Fatalf("reason = %q, want it to contain %q", res.Reason, tc.reason)
			}
			if tc.reason == "" && res.Reason != "" {
				t.Fatalf("unexpected reason %q", res.Reason)
			}
			if res.Modern != tc.modern {
				t.Fatalf("modern = %v, want %v", res.Modern, tc.modern)
			}
			if res.Latency <= 0 {
				t.Fatal("no latency measured")
			}
		})
	}
}

// A session-based check is initialize, notifications/initialized, ping and
// DELETE of that session, all with the configured headers; the secret never
// reaches the reason.
func TestProbeSessionExchange(t *testing.T) {
	t.Setenv("PROBE_TEST_TOKEN", "s3cret")
	f := newFake(t, fakeOptions{token: "s3cret"})
	s := srvFor(f.URL, func(s *registry.Server) {
		s.Headers = []registry.Header{{Name: "Authorization", Value: registry.NewSecret("Bearer $PROBE_TEST_TOKEN")}}
	})
	res := testProber(5*time.Second).check(context.Background(), s, false, false)
	if res.Status != registry.HealthHealthy {
		t.Fatalf("status %s: %s", res.Status, res.Reason)
	}
	var got []string
	session := ""
	for _, r := range f.requests() {
		got = append(got, strings.TrimSpace(r.HTTPMethod+" "+r.RPC))
		if r.Auth != "Bearer s3cret" {
			t.Errorf("%s %s sent Authorization %q, want the expanded configured header", r.HTTPMethod, r.RPC, r.Auth)
		}
		if r.RPC == "ping" {
			session = r.Session
			if r.ProtocolVersion == "" {
				t.Error("ping without Mcp-Protocol-Version")
			}
		}
		if r.HTTPMethod == http.MethodDelete && (r.Session == "" || r.Session != session) {
			t.Errorf("DELETE for session %q, want the checked session %q", r.Session, session)
		}
	}
	if want := "POST initialize,POST notifications/initialized,POST ping,DELETE"; strings.Join(got, ",") != want {
		t.Fatalf("exchange = %s, want %s", strings.Join(got, ","), want)
	}
	// Without the token the same upstream is reachable but needs one.
	t.Setenv("PROBE_TEST_TOKEN", "wrong")
	res = testProber(5*time.Second).check(context.Background(), s, false, false)
	if res.Status != registry.HealthAuthRequired || strings.Contains(res.Reason, "wrong") {
		t.Fatalf("with a wrong token: %s %q", res.Status, res.Reason)
	}
}

// A 2026-07-28 check is server/discover (that revision removed ping), stateless, with the
// version in both header and _meta; mcp-go's modern server accepts it.
func TestProbeModernAgainstMCPGo(t *testing.T) {
	f := newFake(t, fakeOptions{})
	res := testProber(5*time.Second).check(context.Background(), srvFor(f.URL, nil), true, true)
	if res.Status != registry.HealthHealthy || !res.Modern {
		t.Fatalf("modern check: %s %q modern=%v", res.Status, res.Reason, res.Modern)
	}
	if !res.Listed || len(res.Tools) != 1 || res.Tools[0].Name != "echo" {
		t.Fatalf("modern tools/list: listed=%v tools=%+v err=%v", res.Listed, res.Tools, res.ListErr)
	}
	for _, r := range f.requests() {
		if r.Session != "" || r.ProtocolVersion != "2026-07-28" || r.McpMethod != r.RPC || r.HTTPMethod != http.MethodPost {
			t.Errorf("modern request %+v", r)
		}
	}
}

func TestProbeListsEveryPage(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts fakeOptions
		srv  func(url string) *registry.Server
	}{
		{"streamable", fakeOptions{pageSize: 2}, func(u string) *registry.Server { return srvFor(u, nil) }},
		{"sse", fakeOptions{pageSize: 2, sse: true}, func(u string) *registry.Server {
			return srvFor(u, func(s *registry.Server) { s.SupportedTransports = []string{registry.TransportSSE} })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.opts)
			f.addTools("t", 4) // 5 tools in pages of 2
			res := testProber(5*time.Second).check(context.Background(), tc.srv(f.URL), false, true)
			if res.Status != registry.HealthHealthy || !res.Listed {
				t.Fatalf("status %s %q listed=%v err=%v", res.Status, res.Reason, res.Listed, res.ListErr)
			}
			if len(res.Tools) != 5 {
				t.Fatalf("listed %d tools, want 5 over 3 pages", len(res.Tools))
			}
			for _, tool := range res.Tools {
				if tool.Description() == "" || !json.Valid(tool.Schema) {
					t.Fatalf("tool %+v lacks its description or schema", tool)
				}
			}
			if n := f.count(http.MethodPost, "tools/list"); n != 3 {
				t.Fatalf("tools/list requests = %d, want 3 pages", n)
			}
		})
	}
}

// A passthrough upstream that answers the handshake but refuses the
// gateway's own listing is healthy; the listing failure is reported apart.
func TestProbeListingRefused(t *testing.T) {
	u := httptest.NewServer(rpcHandler(map[string]func(http.ResponseWriter, json.RawMessage){
		"initialize": func(w http.ResponseWriter, id json.RawMessage) {
			writeRPC(w, http.StatusOK, id, map[string]any{"protocolVersion": "2025-06-18"}, nil)
		},
		"ping":       func(w http.ResponseWriter, id json.RawMessage) { writeRPC(w, http.StatusOK, id, map[string]any{}, nil) },
		"tools/list": func(w http.ResponseWriter, id json.RawMessage) { http.Error(w, "who are you", http.StatusForbidden) },
	}))
	defer u.Close()
	res := testProber(5*time.Second).check(context.Background(), srvFor(u.URL, nil), false, true)
	if res.Status != registry.HealthHealthy || res.Listed || res.ListErr == nil {
		t.Fatalf("status %s listed=%v err=%v", res.Status, res.Listed, res.ListErr)
	}
	if !strings.Contains(res.ListReason, "403") {
		t.Fatalf("list reason %q", res.ListReason)
	}
}
