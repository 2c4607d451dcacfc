package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// ingressHandler is the handler both servers of the conformance suite
// serve: each path exercises one part of HTTP/1.1 framing.
type ingressHandler struct {
	gone     chan string   // paths whose request context ended before the handler returned
	stepped  chan struct{} // /stream waits on it between events
	requests atomic.Int64
}

func newIngressHandler() *ingressHandler {
	return &ingressHandler{gone: make(chan string, 8), stepped: make(chan struct{})}
}

func (h *ingressHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.requests.Add(1)
	switch r.URL.Path {
	case "/echo":
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-Method", r.Method)
		_, _ = w.Write(b)
	case "/small":
		_, _ = io.WriteString(w, "hello")
	case "/big":
		_, _ = io.WriteString(w, strings.Repeat("x", 10000))
	case "/pieces":
		for i := 0; i < 500; i++ {
			_, _ = io.WriteString(w, "0123456789")
		}
		_, _ = io.WriteString(w, strings.Repeat("y", 5000))
		_, _ = io.WriteString(w, "end")
	case "/declared":
		w.Header().Set("Content-Length", "5")
		_, _ = io.WriteString(w, "hello")
	case "/short":
		w.Header().Set("Content-Length", "10")
		_, _ = io.WriteString(w, "hello")
	case "/nocontent":
		w.WriteHeader(http.StatusNoContent)
	case "/ignorebody":
		_, _ = io.WriteString(w, "ok")
	case "/stream":
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-h.stepped:
			case <-time.After(5 * time.Second):
				return
			}
		}
	case "/wait", "/readwait":
		if r.URL.Path == "/readwait" {
			_, _ = io.ReadAll(r.Body)
		}
		select {
		case <-r.Context().Done():
			h.gone <- r.URL.Path
		case <-time.After(5 * time.Second):
		}
	case "/slow":
		time.Sleep(150 * time.Millisecond) // past the ingress's watch delay
		_, _ = io.WriteString(w, "slow")
	case "/localaddr":
		la, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		if la == nil {
			http.Error(w, "no local address", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, la.String())
	case "/panic":
		panic("boom")
	default:
		http.NotFound(w, r)
	}
}

// ingressServers starts h on both servers the suite compares: net/http's
// own, which defines the expected behaviour, and the ingress.
func ingressServers(t testing.TB, h http.Handler, opts IngressOptions) map[string]string {
	t.Helper()
	std := func() *http.Server {
		return &http.Server{Handler: h, ReadHeaderTimeout: opts.ReadHeaderTimeout, IdleTimeout: opts.IdleTimeout, ErrorLog: log.New(io.Discard, "", 0)}
	}
	out := map[string]string{}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := std()
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	out["net/http"] = ln.Addr().String()

	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ing := NewIngress(h, std(), opts)
	go func() { _ = ing.Serve(ln2) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = ing.Shutdown(ctx)
	})
	out["ingress"] = ln2.Addr().String()
	return out
}

// rawConn is a client connection that writes raw bytes and reads answers.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatal(err)
	}
}

// answer reads one response and its whole body.
func (rc *rawConn) answer(method string) (*http.Response, string) {
	rc.t.Helper()
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection (within 2 s).
func (rc *rawConn) closed() bool {
	_ = rc.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := rc.br.ReadByte()
	return err != nil && !isTimeout(err)
}

func TestIngressConformance(t *testing.T) {
	h := newIngressHandler()
	servers := ingressServers(t, h, IngressOptions{})
	type check func(t *testing.T, rc *rawConn)
	expect := func(method string, status int, body string) func(t *testing.T, rc *rawConn) *http.Response {
		return func(t *testing.T, rc *rawConn) *http.Response {
			t.Helper()
			resp, got := rc.answer(method)
			if resp.StatusCode != status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, status, got)
			}
			if body != "*" && got != body {
				t.Fatalf("body %q, want %q", got, body)
			}
			return resp
		}
	}
	// refused sends a request both servers must answer with 400 or more.
	refused := func(raw string) check {
		return func(t *testing.T, rc *rawConn) {
			rc.send(raw)
			method, _, _ := strings.Cut(raw, " ")
			resp, _ := rc.answer(method)
			if resp.StatusCode < 400 {
				t.Fatalf("status %d, want a refusal", resp.StatusCode)
			}
		}
	}
	cases := []struct {
		name string
		run  check
	}{
		{"keep-alive: three requests on one connection", func(t *testing.T, rc *rawConn) {
			rc.send("GET /small HTTP/1.1\r\nHost: a\r\n\r\n")
			resp := expect("GET", 200, "hello")(t, rc)
			if resp.ContentLength != 5 || resp.Header.Get("Date") == "" || resp.Header.Get("Content-Type") == "" {
				t.Fatalf("length %d, headers %v", resp.ContentLength, resp.Header)
			}
			rc.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
			expect("POST", 200, "abc")(t, rc)
			rc.send("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n")
			expect("POST", 200, "def")(t, rc)
		}},
		{"pipelined requests answer in order", func(t *testing.T, rc *rawConn) {
			rc.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n1POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n2")
			expect("POST", 200, "1")(t, rc)
			expect("POST", 200, "2")(t, rc)
		}},
		{"a long answer is chunked", func(t *testing.T, rc *rawConn) {
			rc.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
			resp := expect("GET", 200, strings.Repeat("x", 10000))(t, rc)
			if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
				t.Fatalf("transfer encoding %v", resp.TransferEncoding)
			}
		}},
		{"an answer written in pieces arrives whole", func(t *testing.T, rc *rawConn) {
			rc.send("GET /pieces HTTP/1.1\r\nHost: a\r\n\r\n")
			expect("GET", 200, strings.Repeat("0123456789", 500)+strings.Repeat("y", 5000)+"end")(t, rc)
		}},
		{"HTTP/1.0 gets no chunks and a closed connection", func(t *testing.T, rc *rawConn) {
			rc.send("GET /big HTTP/1.0\r\n\r\n")
			resp := expect("GET", 200, strings.Repeat("x", 10000))(t, rc)
			if len(resp.TransferEncoding) != 0 || !rc.closed() {
				t.Fatalf("transfer encoding %v or connection left open", resp.TransferEncoding)
			}
		}},
		{"a declared length is kept", func(t *testing.T, rc *rawConn) {
			rc.send("GET /declared HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp := expect("GET", 200, "hello")(t, rc); resp.ContentLength != 5 {
				t.Fatalf("length %d", resp.ContentLength)
			}
		}},
		{"an answer shorter than declared closes the connection", func(t *testing.T, rc *rawConn) {
			rc.send("GET /short HTTP/1.1\r\nHost: a\r\n\r\n")
			resp, err := http.ReadResponse(rc.br, nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%v %v", resp, err)
			}
			if b, err := io.ReadAll(resp.Body); err == nil || string(b) != "hello" {
				t.Fatalf("body %q, err %v: want a short body", b, err)
			}
		}},
		{"204 has no body", func(t *testing.T, rc *rawConn) {
			rc.send("GET /nocontent HTTP/1.1\r\nHost: a\r\n\r\nGET /small HTTP/1.1\r\nHost: a\r\n\r\n")
			expect("GET", 204, "")(t, rc)
			expect("GET", 200, "hello")(t, rc)
		}},
		{"HEAD has no body", func(t *testing.T, rc *rawConn) {
			rc.send("HEAD /small HTTP/1.1\r\nHost: a\r\n\r\nGET /small HTTP/1.1\r\nHost: a\r\n\r\n")
			if resp := expect("HEAD", 200, "")(t, rc); resp.ContentLength != 5 {
				t.Fatalf("HEAD Content-Length %d, want 5 (what the GET carries)", resp.ContentLength)
			}
			expect("GET", 200, "hello")(t, rc)
		}},
		{"Connection: close is honoured", func(t *testing.T, rc *rawConn) {
			rc.send("GET /small HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
			resp := expect("GET", 200, "hello")(t, rc)
			if !resp.Close || !rc.closed() {
				t.Fatal("connection not closed")
			}
		}},
		{"Expect: 100-continue", func(t *testing.T, rc *rawConn) {
			rc.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
			line, err := rc.br.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
				t.Fatalf("interim answer %q, %v", line, err)
			}
			if blank, _ := rc.br.ReadString('\n'); blank != "\r\n" {
				t.Fatalf("after 100: %q", blank)
			}
			rc.send("abc")
			expect("POST", 200, "abc")(t, rc)
		}},
		{"an unread small body is skipped", func(t *testing.T, rc *rawConn) {
			rc.send("POST /ignorebody HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789GET /small HTTP/1.1\r\nHost: a\r\n\r\n")
			expect("POST", 200, "ok")(t, rc)
			expect("GET", 200, "hello")(t, rc)
		}},
		{"an unread large body closes the connection", func(t *testing.T, rc *rawConn) {
			rc.send("POST /ignorebody HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\n")
			go func() { _, _ = rc.c.Write(make([]byte, 1<<20)) }()
			expect("POST", 200, "ok")(t, rc)
			if !rc.closed() {
				t.Fatal("connection left open with 9 MB unread")
			}
		}},
		{"missing Host", refused("GET /small HTTP/1.1\r\n\r\n")},
		{"two Host headers", refused("GET /small HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")},
		{"a Host with a slash", refused("GET /small HTTP/1.1\r\nHost: a/b\r\n\r\n")},
		{"a header name with a space", refused("GET /small HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n")},
		{"two different Content-Lengths", refused("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")},
		{"a transfer encoding other than chunked", refused("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n")},
		{"headers over 1 MiB", func(t *testing.T, rc *rawConn) {
			go func() {
				_, _ = io.WriteString(rc.c, "GET /small HTTP/1.1\r\nHost: a\r\nX-Big: "+strings.Repeat("y", 1<<20+8192)+"\r\n\r\n")
			}()
			expect("GET", 431, "*")(t, rc)
		}},
		{"the Host reaches the handler", func(t *testing.T, rc *rawConn) {
			rc.send("POST /echo HTTP/1.1\r\nHost: example.test:8080\r\nContent-Length: 0\r\n\r\n")
			if resp := expect("POST", 200, "")(t, rc); resp.Header.Get("X-Host") != "example.test:8080" {
				t.Fatalf("host %q", resp.Header.Get("X-Host"))
			}
		}},
		{"the listener's address is in the context", func(t *testing.T, rc *rawConn) {
			rc.send("GET /localaddr HTTP/1.1\r\nHost: a\r\n\r\n")
			expect("GET", 200, rc.c.RemoteAddr().String())(t, rc)
		}},
		{"OPTIONS * and absolute targets are net/http's", func(t *testing.T, rc *rawConn) {
			rc.send("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\nGET http://a/small HTTP/1.1\r\nHost: a\r\n\r\nGET /small HTTP/1.1\r\nHost: a\r\n\r\n")
			expect("OPTIONS", 200, "")(t, rc)
			expect("GET", 200, "hello")(t, rc)
			expect("GET", 200, "hello")(t, rc)
		}},
		{"events are flushed one by one", func(t *testing.T, rc *rawConn) {
			rc.send("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
			resp, err := http.ReadResponse(rc.br, nil)
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(resp.Body)
			for i := 0; i < 3; i++ {
				line, err := br.ReadString('\n')
				if err != nil || line != fmt.Sprintf("data: %d\n", i) {
					t.Fatalf("event %d: %q %v", i, line, err)
				}
				_, _ = br.ReadString('\n')
				h.stepped <- struct{}{} // the next event is written only now
			}
		}},
		{"a request sent while the previous one is still running", func(t *testing.T, rc *rawConn) {
			// The second request arrives while the ingress watches the
			// connection for a hang-up: the byte it reads must not be lost.
			rc.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
			time.Sleep(80 * time.Millisecond)
			rc.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nnext")
			expect("GET", 200, "slow")(t, rc)
			if resp := expect("POST", 200, "next")(t, rc); resp.Header.Get("X-Method") != "POST" {
				t.Fatalf("second request read as %q", resp.Header.Get("X-Method"))
			}
		}},
		{"a handler's panic closes only its connection", func(t *testing.T, rc *rawConn) {
			rc.send("GET /panic HTTP/1.1\r\nHost: a\r\n\r\n")
			if !rc.closed() {
				t.Fatal("connection open after a panic")
			}
		}},
	}
	for _, name := range []string{"net/http", "ingress"} {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				tc.run(t, dialRaw(t, servers[name]))
			})
		}
	}
}

// TestIngressClientGone checks that a handler's context ends when its
// client hangs up, with and without a request body.
func TestIngressClientGone(t *testing.T) {
	h := newIngressHandler()
	servers := ingressServers(t, h, IngressOptions{})
	for _, name := range []string{"net/http", "ingress"} {
		for _, tc := range []struct{ path, req string }{
			{"/wait", "GET /wait HTTP/1.1\r\nHost: a\r\n\r\n"},
			{"/readwait", "POST /readwait HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"},
		} {
			t.Run(name+tc.path, func(t *testing.T) {
				rc := dialRaw(t, servers[name])
				before := h.requests.Load()
				rc.send(tc.req)
				for h.requests.Load() == before {
					time.Sleep(time.Millisecond)
				}
				time.Sleep(100 * time.Millisecond) // past the ingress's watch delay
				rc.c.Close()
				select {
				case p := <-h.gone:
					if p != tc.path {
						t.Fatalf("gone %q", p)
					}
				case <-time.After(3 * time.Second):
					t.Fatal("the handler's context did not end when the client hung up")
				}
			})
		}
	}
}

// TestIngressTimeouts checks the idle and header timeouts on both servers.
func TestIngressTimeouts(t *testing.T) {
	h := newIngressHandler()
	servers := ingressServers(t, h, IngressOptions{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	for _, name := range []string{"net/http", "ingress"} {
		t.Run(name+"/idle", func(t *testing.T) {
			rc := dialRaw(t, servers[name])
			rc.send("GET /small HTTP/1.1\r\nHost: a\r\n\r\n")
			rc.answer("GET")
			start := time.Now()
			if !rc.closed() {
				t.Fatal("idle connection not closed")
			}
			if d := time.Since(start); d < 200*time.Millisecond {
				t.Fatalf("closed after %v, before the idle timeout", d)
			}
		})
		t.Run(name+"/slow headers", func(t *testing.T) {
			rc := dialRaw(t, servers[name])
			rc.send("GET /small HTTP/1.1\r\nHost: a\r\n") // never finished
			if !rc.closed() {
				t.Fatal("connection with unfinished headers not closed")
			}
		})
		t.Run(name+"/silent new connection", func(t *testing.T) {
			rc := dialRaw(t, servers[name])
			if !rc.closed() {
				t.Fatal("connection that sends nothing not closed")
			}
		})
	}
}

// TestIngressShutdown checks that Shutdown lets a request in flight
// finish, closes idle connections, and then returns.
func TestIngressShutdown(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		_, _ = io.WriteString(w, "done")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ing := NewIngress(h, &http.Server{Handler: h}, IngressOptions{})
	served := make(chan error, 1)
	go func() { served <- ing.Serve(ln) }()

	idle := dialRaw(t, ln.Addr().String())
	idle.send("GET /fast HTTP/1.1\r\nHost: a\r\n\r\n")
	idle.answer("GET")
	busy := dialRaw(t, ln.Addr().String())
	busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(50 * time.Millisecond)

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- ing.Shutdown(ctx)
	}()
	if !idle.closed() {
		t.Fatal("idle connection not closed by Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if resp, body := busy.answer("GET"); resp.StatusCode != 200 || body != "done" || !resp.Close {
		t.Fatalf("in-flight request: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Fatalf("Serve returned %v", err)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("still accepting after Shutdown")
	}
}

func TestHeaderEndAndHostLines(t *testing.T) {
	for _, tc := range []struct {
		head       string
		end, hosts int
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody", 27, 1},
		{"GET / HTTP/1.1\nHost: a\n\n", 24, 1},
		{"GET / HTTP/1.1\r\nHost: a\r\n", -1, 0},
		{"GET / HTTP/1.1\r\nhOsT: a\r\nX-Host: b\r\nHOST:c\r\n\r\n", 46, 2},
		{"GET / HTTP/1.1\r\nHostile: a\r\n\r\n", 30, 0},
		{"GET / HTTP/1.1\r\n\r\nHost: after the head\r\n\r\n", 18, 0},
	} {
		end := headerEnd([]byte(tc.head))
		if end != tc.end {
			t.Errorf("headerEnd(%q) = %d, want %d", tc.head, end, tc.end)
		}
		if n := countHostLines([]byte(tc.head), end); n != tc.hosts {
			t.Errorf("countHostLines(%q) = %d, want %d", tc.head, n, tc.hosts)
		}
	}
}

// TestByteTables checks validHost's and validHeaderName's tables against
// the grammar written out: RFC 3986 host bytes, RFC 9110 tchar.
func TestByteTables(t *testing.T) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		alnum := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
		wantHost := alnum || strings.ContainsRune("-._~!$&'()*+,;=:[]%", rune(b))
		wantToken := alnum || strings.ContainsRune("!#$%&'*+-.^_`|~", rune(b))
		if hostChars[b] != wantHost || tokenChars[b] != wantToken {
			t.Errorf("byte %#x: host %v (want %v), token %v (want %v)", b, hostChars[b], wantHost, tokenChars[b], wantToken)
		}
		s := string([]byte{b})
		if validHost(s) != wantHost || validHeaderName(s) != wantToken {
			t.Errorf("byte %#x: validHost %v, validHeaderName %v", b, validHost(s), validHeaderName(s))
		}
	}
}
