package upstream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"
)

// h1Echo is an upstream for the transport tests: it answers by path, and
// counts the connections it accepted.
func h1Echo(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Query", r.URL.RawQuery)
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Auth", r.Header.Get("Authorization"))
		w.Header().Set("X-Expect", r.Header.Get("Expect"))
		w.Header().Set("X-Length", fmt.Sprint(r.ContentLength))
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		for i := range 3 {
			fmt.Fprintf(w, "part%d;", i)
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = w.Write([]byte("final"))
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = w.Write([]byte("bye"))
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("data: first\n\n"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func do(t *testing.T, tr http.RoundTripper, method, url string, body []byte, h http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body, req.ContentLength, req.GetBody = nil, 0, nil
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	_ = resp.Body.Close()
	return resp, string(b)
}

func TestH1Exchanges(t *testing.T) {
	srv, conns := h1Echo(t)
	tr := NewH1Transport(H1Options{})
	defer tr.CloseIdleConnections()
	tests := []struct {
		name, method, path string
		body               []byte
		header             http.Header
		wantStatus         int
		wantBody           string
		wantHeader         map[string]string
	}{
		{name: "post with body", method: "POST", path: "/echo?a=1&b=2", body: []byte(`{"jsonrpc":"2.0"}`),
			header: http.Header{"Authorization": {"Bearer tok"}, "Expect": {"100-continue"}}, wantStatus: 200,
			wantBody: `{"jsonrpc":"2.0"}`, wantHeader: map[string]string{"X-Method": "POST", "X-Query": "a=1&b=2",
				"X-Auth": "Bearer tok", "X-Expect": "", "X-Length": "17"}},
		{name: "get without body", method: "GET", path: "/echo", wantStatus: 200, wantBody: "",
			wantHeader: map[string]string{"X-Method": "GET", "X-Length": "0"}},
		{name: "delete", method: "DELETE", path: "/echo", wantStatus: 200, wantHeader: map[string]string{"X-Method": "DELETE"}},
		{name: "empty post", method: "POST", path: "/echo", body: []byte{}, wantStatus: 200, wantHeader: map[string]string{"X-Length": "0"}},
		{name: "chunked response", method: "GET", path: "/chunked", wantStatus: 200, wantBody: "part0;part1;part2;"},
		{name: "202 without body", method: "POST", path: "/empty", body: []byte(`{}`), wantStatus: 202},
		{name: "204", method: "DELETE", path: "/nocontent", wantStatus: 204},
		{name: "early hints skipped", method: "GET", path: "/hints", wantStatus: 200, wantBody: "final"},
		{name: "large body", method: "POST", path: "/echo", body: bytes.Repeat([]byte("x"), 1<<20), wantStatus: 200,
			wantBody: strings.Repeat("x", 1<<20)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, tr, tc.method, srv.URL+tc.path, tc.body, tc.header)
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if body != tc.wantBody {
				t.Errorf("body %.40q (%d bytes), want %.40q", body, len(body), tc.wantBody)
			}
			for k, v := range tc.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
	// Every exchange above ended its body, so one connection carried them
	// all, one after the other.
	if n := conns.Load(); n != 1 {
		t.Errorf("upstream accepted %d connections for %d sequential exchanges, want 1", n, len(tests))
	}
	if n := tr.Dials(); n != 1 {
		t.Errorf("transport dialed %d times, want 1", n)
	}
}

func TestH1ConnectionReuse(t *testing.T) {
	t.Run("concurrent callers share the pool", func(t *testing.T) {
		srv, conns := h1Echo(t)
		tr := NewH1Transport(H1Options{})
		defer tr.CloseIdleConnections()
		const workers, calls = 8, 50
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range calls {
					want := fmt.Sprintf("w%d-%d", w, i)
					req, _ := http.NewRequest("POST", srv.URL+"/echo", strings.NewReader(want))
					resp, err := tr.RoundTrip(req)
					if err != nil {
						errs <- err
						return
					}
					b, err := io.ReadAll(resp.Body)
					_ = resp.Body.Close()
					if err != nil || string(b) != want {
						errs <- fmt.Errorf("got %q, %v; want %q", b, err, want)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n := conns.Load(); n > workers {
			t.Errorf("%d connections for %d concurrent callers", n, workers)
		}
	})
	t.Run("connection: close is honored", func(t *testing.T) {
		srv, conns := h1Echo(t)
		tr := NewH1Transport(H1Options{})
		for range 3 {
			if _, body := do(t, tr, "GET", srv.URL+"/close", nil, nil); body != "bye" {
				t.Fatalf("body %q", body)
			}
		}
		if n := conns.Load(); n != 3 {
			t.Errorf("%d connections, want 3 (the upstream closes each)", n)
		}
	})
	t.Run("upstream closed the idle connection", func(t *testing.T) {
		srv, conns := h1Echo(t)
		tr := NewH1Transport(H1Options{})
		do(t, tr, "POST", srv.URL+"/echo", []byte("one"), nil)
		srv.CloseClientConnections()
		time.Sleep(20 * time.Millisecond) // let the FIN arrive
		if _, body := do(t, tr, "POST", srv.URL+"/echo", []byte("two"), nil); body != "two" {
			t.Fatalf("body %q, want two", body)
		}
		if n := conns.Load(); n != 2 {
			t.Errorf("%d connections, want 2", n)
		}
	})
	t.Run("idle connections expire", func(t *testing.T) {
		srv, _ := h1Echo(t)
		tr := NewH1Transport(H1Options{IdleTimeout: 50 * time.Millisecond})
		do(t, tr, "GET", srv.URL+"/echo", nil, nil)
		deadline := time.Now().Add(2 * time.Second)
		for {
			tr.mu.Lock()
			n := len(tr.idle)
			tr.mu.Unlock()
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("idle connection not swept after its idle timeout")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// rawUpstream accepts connections and hands each to serve; for exchanges
// httptest cannot produce (a connection closed after the request was read).
func rawUpstream(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestH1Failures(t *testing.T) {
	t.Run("header injection refused", func(t *testing.T) {
		srv, _ := h1Echo(t)
		tr := NewH1Transport(H1Options{})
		for _, h := range []http.Header{
			{"X-Key": {"v\r\nX-Injected: 1"}},
			{"X-Key": {"v\nX-Injected: 1"}},
			{"Bad Name": {"v"}},
			{"Bad:Name": {"v"}},
		} {
			req, _ := http.NewRequest("GET", srv.URL+"/echo", nil)
			maps := req.Header
			for k, v := range h {
				maps[k] = v
			}
			if resp, err := tr.RoundTrip(req); err == nil {
				_ = resp.Body.Close()
				t.Errorf("header %v was sent", h)
			}
		}
	})
	t.Run("refused connection", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		_ = ln.Close()
		req, _ := http.NewRequest("POST", "http://"+addr+"/mcp", strings.NewReader("{}"))
		_, err := NewH1Transport(H1Options{}).RoundTrip(req)
		var ne net.Error
		if err == nil || !errors.As(err, new(*net.OpError)) && !errors.As(err, &ne) {
			t.Fatalf("err = %v, want a network error", err)
		}
	})
	t.Run("upstream hangs up after reading a fresh connection's request", func(t *testing.T) {
		var n atomic.Int64
		url := rawUpstream(t, func(c net.Conn) {
			n.Add(1)
			_, _ = http.ReadRequest(bufio.NewReader(c))
			_ = c.Close()
		})
		req, _ := http.NewRequest("POST", url+"/mcp", strings.NewReader("{}"))
		if _, err := NewH1Transport(H1Options{}).RoundTrip(req); err == nil {
			t.Fatal("no error")
		}
		if n.Load() != 1 {
			t.Errorf("request sent %d times; a request on a new connection is never sent twice", n.Load())
		}
	})
	t.Run("pooled connection dropped without an answer", func(t *testing.T) {
		// The upstream answers a connection's first request and hangs up on
		// its second without a word, as one closing an idle connection at
		// the moment a request arrives does. A GET is sent again on a new
		// connection; a POST (a tools/call) is not: the upstream may have
		// run it, and running it twice is the caller's decision.
		for _, tc := range []struct {
			method              string
			wantErr             bool
			wantReqs, wantDials int64
		}{
			{"GET", false, 3, 2},
			{"POST", true, 2, 1},
		} {
			t.Run(tc.method, func(t *testing.T) {
				var reqs atomic.Int64
				url := rawUpstream(t, func(c net.Conn) {
					defer c.Close()
					br := bufio.NewReader(c)
					for i := 0; ; i++ {
						req, err := http.ReadRequest(br)
						if err != nil {
							return
						}
						_, _ = io.Copy(io.Discard, req.Body)
						reqs.Add(1)
						if i == 1 {
							return
						}
						_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
					}
				})
				tr := NewH1Transport(H1Options{})
				do(t, tr, tc.method, url+"/mcp", []byte("{}"), nil)
				req, _ := http.NewRequest(tc.method, url+"/mcp", strings.NewReader("{}"))
				resp, err := tr.RoundTrip(req)
				if err == nil {
					_ = resp.Body.Close()
				}
				if (err != nil) != tc.wantErr {
					t.Errorf("second call: err = %v, want error %v", err, tc.wantErr)
				}
				if reqs.Load() != tc.wantReqs || tr.Dials() != tc.wantDials {
					t.Errorf("%d requests on %d connections, want %d on %d", reqs.Load(), tr.Dials(), tc.wantReqs, tc.wantDials)
				}
			})
		}
	})
	t.Run("garbage answer", func(t *testing.T) {
		url := rawUpstream(t, func(c net.Conn) {
			_, _ = http.ReadRequest(bufio.NewReader(c))
			_, _ = c.Write([]byte("SSH-2.0-OpenSSH\r\n\r\n"))
			_ = c.Close()
		})
		req, _ := http.NewRequest("GET", url+"/mcp", nil)
		if _, err := NewH1Transport(H1Options{}).RoundTrip(req); err == nil {
			t.Fatal("no error for a malformed response")
		}
	})
	t.Run("cancel while reading an event stream", func(t *testing.T) {
		srv, conns := h1Echo(t)
		tr := NewH1Transport(H1Options{})
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/stream", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		if n, err := resp.Body.Read(buf); err != nil || !strings.Contains(string(buf[:n]), "first") {
			t.Fatalf("first event: %q, %v", buf[:n], err)
		}
		go func() { time.Sleep(30 * time.Millisecond); cancel() }()
		_, err = io.ReadAll(resp.Body)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("read after cancel: %v, want context.Canceled", err)
		}
		_ = resp.Body.Close()
		// The cut stream's connection is spent: the next call dials anew.
		do(t, tr, "GET", srv.URL+"/echo", nil, nil)
		if n := conns.Load(); n != 2 {
			t.Errorf("%d connections, want 2", n)
		}
	})
	t.Run("body closed early", func(t *testing.T) {
		srv, conns := h1Echo(t)
		tr := NewH1Transport(H1Options{})
		req, _ := http.NewRequest("POST", srv.URL+"/echo", bytes.NewReader(bytes.Repeat([]byte("y"), 256<<10)))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if _, err := resp.Body.Read(make([]byte, 8)); err == nil {
			t.Error("read after close succeeded")
		}
		do(t, tr, "GET", srv.URL+"/echo", nil, nil)
		if n := conns.Load(); n != 2 {
			t.Errorf("%d connections, want 2 (a half-read connection is not reused)", n)
		}
	})
	t.Run("chunked request body goes to the fallback", func(t *testing.T) {
		srv, _ := h1Echo(t)
		var used atomic.Bool
		tr := NewH1Transport(H1Options{Fallback: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			used.Store(true)
			return http.DefaultTransport.RoundTrip(r)
		})})
		req, _ := http.NewRequest("POST", srv.URL+"/echo", io.NopCloser(strings.NewReader("abc")))
		req.ContentLength = -1
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(b) != "abc" || !used.Load() {
			t.Errorf("body %q, fallback used %v", b, used.Load())
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestH1TLS(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "%s over %s", r.Method, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	tr := NewH1Transport(H1Options{TLSConfig: &tls.Config{RootCAs: pool}})
	for range 3 {
		if _, body := do(t, tr, "POST", srv.URL, []byte("{}"), nil); body != "POST over HTTP/1.1" {
			t.Fatalf("body %q", body)
		}
	}
	if conns.Load() != 1 {
		t.Errorf("%d TLS connections for 3 calls, want 1", conns.Load())
	}
	// A certificate the transport does not trust is refused.
	req, _ := http.NewRequest("GET", srv.URL, nil)
	if _, err := NewH1Transport(H1Options{}).RoundTrip(req); err == nil {
		t.Error("untrusted certificate accepted")
	}
}

// TestCopyBody checks the request body copy: exactly n bytes, across
// several flushes of the connection's buffer, and io.EOF when the body
// ends early.
func TestCopyBody(t *testing.T) {
	big := strings.Repeat("0123456789", 3000) // 30,000 bytes: more than one 8 KiB buffer
	for _, tc := range []struct {
		name, body string
		n          int64
		want       string
		err        error
	}{
		{"exact", "hello", 5, "hello", nil},
		{"longer than declared: only n bytes go", "hello, world", 5, "hello", nil},
		{"shorter than declared", "hel", 5, "hel", io.EOF},
		{"empty", "", 0, "", nil},
		{"larger than the buffer", big, int64(len(big)), big, nil},
		{"larger than the buffer, read in small steps", big, int64(len(big)) - 1, big[:len(big)-1], nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			w := bufio.NewWriterSize(&out, 8<<10)
			var body io.Reader = strings.NewReader(tc.body)
			if strings.Contains(tc.name, "small steps") {
				body = iotest.OneByteReader(body)
			}
			n, err := copyBody(w, body, tc.n)
			if ferr := w.Flush(); ferr != nil {
				t.Fatal(ferr)
			}
			if err != tc.err || n != int64(len(tc.want)) || out.String() != tc.want {
				t.Fatalf("copied %d bytes, err %v, got %d bytes; want %d, %v", n, err, out.Len(), len(tc.want), tc.err)
			}
		})
	}
}
