package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkRelayCall measures one stateless tools/call relayed through the
// ingress to an upstream that answers at once, over loopback, in one
// process. Its figures include the client's and the upstream's work; what
// it is for is the gateway's allocations per call (allocs/op) and A/B
// comparisons of the relay path. make bench measures the real thing.
func BenchmarkRelayCall(b *testing.B) {
	const answer = `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"Echo: hi"}]}}`
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
		_, _ = io.WriteString(w, answer)
	}))
	b.Cleanup(up.Close)
	env := newEnv(b, Options{})
	env.register(b, map[string]any{"server_name": "bench", "path": "/bench", "proxy_pass_url": up.URL + "/mcp"})

	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}`
	req := fmt.Sprintf("POST /bench/mcp HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"Accept: application/json, text/event-stream\r\nMcp-Protocol-Version: 2026-07-28\r\nContent-Length: %d\r\n\r\n%s",
		strings.TrimPrefix(env.srv.URL, "http://"), len(body), body)
	conn, err := net.Dial("tcp", strings.TrimPrefix(env.srv.URL, "http://"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	br := bufio.NewReader(conn)
	call := func() {
		if _, err := io.WriteString(conn, req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(got) != answer {
			b.Fatalf("status %d, body %s", resp.StatusCode, got)
		}
	}
	call() // connections dialed and pooled before the clock starts
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		call()
	}
}

// cannedTransport answers every request with the same JSON response,
// without a network.
type cannedTransport struct{ body string }

func (c cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}, "Content-Length": {strconv.Itoa(len(c.body))}, "Date": {"Thu, 26 Nov 2026 07:00:00 GMT"}},
		Body:          io.NopCloser(strings.NewReader(c.body)),
		ContentLength: int64(len(c.body)), Request: r}, nil
}

// nullWriter is a ResponseWriter that keeps nothing.
type nullWriter struct{ h http.Header }

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nullWriter) WriteHeader(int)             {}

// BenchmarkRelayHandler measures the gateway's own work on one relayed
// stateless tools/call: ServeHTTP with the request already parsed and an
// upstream that answers from memory, so no network and no HTTP parsing.
func BenchmarkRelayHandler(b *testing.B) {
	const answer = `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"Echo: hi"}]}}`
	f := newFixture(b)
	f.deps.Transport = cannedTransport{answer}
	env := f.serve(b, Options{}, nil)
	env.register(b, map[string]any{"server_name": "bench", "path": "/bench", "proxy_pass_url": "http://127.0.0.1:9/mcp"})
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}`
	hdr := http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json, text/event-stream"},
		"Mcp-Protocol-Version": {"2026-07-28"}, "Mcp-Method": {"tools/call"}, "Mcp-Name": {"echo"},
		"User-Agent": {"Go-http-client/1.1"}, "Accept-Encoding": {"gzip"}, "Content-Length": {strconv.Itoa(len(body))}}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		r, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/bench/mcp", strings.NewReader(body))
		r.Header = hdr
		r.Host = "127.0.0.1:7860"
		r.RemoteAddr = "127.0.0.1:50000"
		w := &nullWriter{h: http.Header{}}
		env.gw.ServeHTTP(w, r)
	}
}
