package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// BenchmarkRelayCall measures one stateless tools/call relayed through the
// ingress and the relay's transport, over loopback, in one process. The
// client and the upstream are minimal (raw sockets, a canned answer), so
// that what the process does per call is mostly the gateway's: its
// allocations (allocs/op) and, under perf stat, its instructions. make bench
// measures the real thing.
func BenchmarkRelayCall(b *testing.B) {
	const answer = `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"Echo: hi"}]}}`
	up := cannedUpstream(b, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Thu, 26 Nov 2026 07:00:00 GMT\r\n"+
		"Content-Length: "+strconv.Itoa(len(answer))+"\r\n\r\n"+answer)
	f := newFixture(b)
	f.deps.Log = zerolog.New(io.Discard).Level(zerolog.InfoLevel) // serve's default level
	env := f.serve(b, Options{}, nil)
	env.register(b, map[string]any{"server_name": "bench", "path": "/bench", "proxy_pass_url": "http://" + up + "/mcp"})

	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}`
	req := fmt.Sprintf("POST /bench/mcp HTTP/1.1\r\nHost: %s\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: %d\r\n"+
		"Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMcp-Method: tools/call\r\nMcp-Name: echo\r\n"+
		"Mcp-Protocol-Version: 2026-07-28\r\nAccept-Encoding: gzip\r\n\r\n%s",
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
		status, n := readCanned(b, br)
		got, err := br.Peek(n)
		if err != nil || status != "HTTP/1.1 200 OK" || string(got) != answer {
			b.Fatalf("%s %s %v", status, got, err)
		}
		_, _ = br.Discard(n)
	}
	call() // connections dialed and pooled before the clock starts
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		call()
	}
}

// cannedUpstream serves every request on 127.0.0.1 with the same raw
// response and returns its address. It reads heads and Content-Length
// bodies only: enough for the relay's requests.
func cannedUpstream(b *testing.B, response string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					_, n := readCanned(nil, br)
					if n < 0 {
						return
					}
					if _, err := br.Discard(n); err != nil {
						return
					}
					if _, err := io.WriteString(c, response); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// readCanned reads an HTTP/1.1 head and returns its first line and
// Content-Length (-1 when the head could not be read).
func readCanned(b *testing.B, br *bufio.Reader) (string, int) {
	first, n := "", 0
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if b != nil {
				b.Fatal(err)
			}
			return "", -1
		}
		l := bytes.TrimRight(line, "\r\n") // no string per line: the allocations are to be the gateway's
		switch {
		case first == "" && b != nil:
			first = string(l)
		case first == "":
			first = "-"
		case len(l) == 0:
			return first, n
		case len(l) > 16 && bytes.EqualFold(l[:15], []byte("Content-Length:")):
			n = 0
			for _, c := range bytes.TrimSpace(l[15:]) {
				n = n*10 + int(c-'0')
			}
		}
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
