package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

// firstEvent opens a legacy event stream through the gateway and returns
// the status and the name and data of its first event (or the body of an
// error), closing the stream.
func firstEvent(t *testing.T, streamURL string) (int, string, string) {
	t.Helper()
	status, name, data, stop := openStream(t, streamURL)
	stop()
	return status, name, data
}

// openStream is firstEvent that leaves the stream open until stop.
func openStream(t *testing.T, streamURL string) (status int, name, data string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, streamURL, nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stop = func() { cancel(); resp.Body.Close() }
	sc := bufio.NewScanner(resp.Body)
	if resp.StatusCode != http.StatusOK {
		var b strings.Builder
		for sc.Scan() {
			b.WriteString(sc.Text())
		}
		return resp.StatusCode, "", b.String(), stop
	}
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			name = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			return resp.StatusCode, name, v, stop
		}
	}
	stop()
	t.Fatalf("stream ended without an event: %v", sc.Err())
	return 0, "", "", nil
}

func TestRelayLegacySSE(t *testing.T) {
	env := newEnv(t, Options{})
	up := upstreamtest.New(t, upstreamtest.Options{SSE: true})
	env.register(t, map[string]any{"server_name": "legacy", "path": "/legacy", "proxy_pass_url": up.URL, "supported_transports": []string{"sse"}})
	env.register(t, map[string]any{"server_name": "legacy2", "path": "/legacy2", "proxy_pass_url": up.URL, "supported_transports": []string{"sse"}})
	env.register(t, map[string]any{"server_name": "modern", "path": "/modern", "proxy_pass_url": up.URL})

	for _, stream := range []string{"/legacy/sse", "/legacy/mcp"} {
		t.Run("mcp-go SSE client via "+stream, func(t *testing.T) {
			c, err := client.NewSSEMCPClient(env.srv.URL + stream)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.Start(ctx); err != nil {
				t.Fatalf("start: %v", err)
			}
			defer c.Close()
			init := mcp.InitializeRequest{}
			init.Params.ClientInfo = mcp.Implementation{Name: "sse-test", Version: "1"}
			init.Params.ProtocolVersion = "2024-11-05"
			if _, err := c.Initialize(ctx, init); err != nil {
				t.Fatalf("initialize: %v", err)
			}
			tools, err := c.ListTools(ctx, mcp.ListToolsRequest{})
			if err != nil || len(tools.Tools) < 3 {
				t.Fatalf("tools/list: %v (%d tools)", err, len(tools.Tools))
			}
			if got := callEcho(t, c, "legacy"); got != "Echo: legacy" {
				t.Fatalf("echo = %q", got)
			}
		})
	}

	t.Run("endpoint is rewritten and sealed", func(t *testing.T) {
		status, name, data := firstEvent(t, env.srv.URL+"/legacy/sse")
		if status != http.StatusOK || name != "endpoint" {
			t.Fatalf("status %d, event %q", status, name)
		}
		if !strings.HasPrefix(data, "/legacy/messages?s=") || strings.Contains(data, "sessionId") || strings.Contains(data, "/mcp/message") {
			t.Fatalf("endpoint %q leaks or is not the gateway's", data)
		}
	})

	t.Run("sealed endpoint checks", func(t *testing.T) {
		_, _, data, stop := openStream(t, env.srv.URL+"/legacy/sse")
		defer stop()
		u, _ := url.Parse(data)
		s := u.Query().Get("s")
		ping := []byte(`{"jsonrpc":"2.0","id":3,"method":"ping"}`)
		h := map[string]string{"Content-Type": "application/json"}
		// A bystander that must never be reached through the gateway.
		var hits atomic.Int32
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
		defer other.Close()
		for name, tc := range map[string]struct {
			path string
			want int
		}{
			"tampered":                      {"/legacy/messages?s=" + s[:len(s)-3] + "xyz", http.StatusNotFound},
			"missing":                       {"/legacy/messages", http.StatusNotFound},
			"sealed for another path":       {"/legacy2/messages?s=" + url.QueryEscape(s), http.StatusNotFound},
			"session id as endpoint":        {"/legacy/messages?s=" + env.gw.sealer.Seal("legacy", "/mcp/message"), http.StatusNotFound},
			"sealed absolute URL elsewhere": {"/legacy/messages?s=" + env.gw.sealer.Seal("legacy", endpointMarker+other.URL+"/x"), http.StatusNotFound},
			"sealed scheme-relative URL":    {"/legacy/messages?s=" + env.gw.sealer.Seal("legacy", endpointMarker+"//"+strings.TrimPrefix(other.URL, "http://")+"/x"), http.StatusNotFound},
			"streamable server has no SSE":  {"/modern/messages?s=" + url.QueryEscape(s), http.StatusNotFound},
		} {
			t.Run(name, func(t *testing.T) {
				resp, body := env.do(t, http.MethodPost, tc.path, ping, h)
				if resp.StatusCode != tc.want {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
				}
			})
		}
		if n := hits.Load(); n != 0 {
			t.Fatalf("the gateway sent %d requests to a host that is not the upstream", n)
		}
		resp, body := env.do(t, http.MethodPost, "/legacy/messages?s="+url.QueryEscape(s), []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`), h)
		if resp.StatusCode >= 300 {
			t.Fatalf("valid sealed endpoint: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("wrong methods", func(t *testing.T) {
		for _, tc := range []struct{ method, path string }{
			{http.MethodPost, "/legacy/mcp"}, {http.MethodPost, "/legacy/sse"}, {http.MethodGet, "/legacy/messages"},
		} {
			resp, body := env.do(t, tc.method, tc.path, []byte(`{}`), nil)
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Fatalf("%s %s: %d %s", tc.method, tc.path, resp.StatusCode, body)
			}
		}
		if status, _, body := firstEvent(t, env.srv.URL+"/modern/sse"); status != http.StatusNotFound {
			t.Fatalf("GET /modern/sse: %d %s", status, body)
		}
	})
}

// TestRelayLegacySSERefusesForeignEndpoint: an upstream whose endpoint event
// names another host (an SSRF attempt, or a misconfigured base URL) is
// refused with 502 before the client is told anything.
func TestRelayLegacySSERefusesForeignEndpoint(t *testing.T) {
	env := newEnv(t, Options{})
	for name, endpoint := range map[string]string{
		"absolute other host":  "http://127.0.0.2:9/steal",
		"scheme-relative":      "//127.0.0.2:9/steal",
		"same host other port": "http://127.0.0.1:1/steal",
		"other scheme":         "https://%s/mcp/message",
	} {
		t.Run(name, func(t *testing.T) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				e := endpoint
				if strings.Contains(e, "%s") {
					e = fmt.Sprintf(e, r.Host)
				}
				fmt.Fprintf(w, "event: endpoint\ndata: %s\n\n", e)
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			}))
			defer up.Close()
			path := "/foreign-" + strings.ReplaceAll(name, " ", "-")
			env.register(t, map[string]any{"server_name": name, "path": path, "proxy_pass_url": up.URL + "/sse", "supported_transports": []string{"sse"}})
			status, _, body := firstEvent(t, env.srv.URL+path+"/sse")
			if status != http.StatusBadGateway || !strings.Contains(body, "endpoint") {
				t.Fatalf("status %d: %s", status, body)
			}
		})
	}
}

// TestRelayLegacySSEEndpointTimeout: an upstream that opens its stream but
// never names an endpoint gets 504 within the upstream timeout, not a 200
// the client would wait on forever.
func TestRelayLegacySSEEndpointTimeout(t *testing.T) {
	env := newEnv(t, Options{UpstreamTimeout: 200 * time.Millisecond})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, ": just a comment, no endpoint\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer up.Close()
	env.register(t, map[string]any{"server_name": "mute", "path": "/mute", "proxy_pass_url": up.URL, "supported_transports": []string{"sse"}})
	start := time.Now()
	status, _, body := firstEvent(t, env.srv.URL+"/mute/sse")
	if status != http.StatusGatewayTimeout {
		t.Fatalf("status %d: %s", status, body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
}
