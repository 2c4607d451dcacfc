package httphead

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// requestSeeds are heads as real MCP clients send them, and the edges of
// the subset on either side.
var requestSeeds = []string{
	// Go's net/http client, as the bench and mcp-go's client send.
	"POST /echo/mcp HTTP/1.1\r\nHost: 127.0.0.1:7860\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 5\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nMcp-Protocol-Version: 2025-11-25\r\nMcp-Session-Id: gw1.abc_DEF-123\r\nAccept-Encoding: gzip\r\n\r\nhello",
	// Node's fetch (undici): lower-case names, keep-alive.
	"POST /mcpgw/mcp HTTP/1.1\r\nhost: localhost:7860\r\nconnection: keep-alive\r\ncontent-type: application/json\r\naccept: application/json, text/event-stream\r\nmcp-protocol-version: 2026-07-28\r\nmcp-method: tools/call\r\nmcp-name: echo\r\nauthorization: Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln\r\ncontent-length: 2\r\n\r\n{}",
	// Python httpx.
	"GET /a/mcp?x=1&y=%20 HTTP/1.1\r\nHost: gw.example\r\nAccept: text/event-stream\r\nAccept-Encoding: gzip, deflate\r\nConnection: Keep-Alive\r\nUser-Agent: python-httpx/0.28.1\r\nLast-Event-ID: 42\r\n\r\n",
	"DELETE /a/mcp HTTP/1.1\r\nHost: h\r\nMcp-Session-Id: s\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n",
	"OPTIONS / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-Spaces: \t a b \t\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nshort",
	// Outside the subset: net/http decides.
	"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
	"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\nx",
	"POST /x HTTP/1.1\r\nHost: h\r\nX-Fold: a\r\n b\r\n\r\n",
	"POST /x HTTP/1.1\nHost: h\n\n",
	"POST /x HTTP/1.0\r\nHost: h\r\n\r\n",
	"POST http://h/x HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST //h/x HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST * HTTP/1.1\r\nHost: h\r\n\r\n",
	"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	"POST /x HTTP/1.1\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: h\r\nX : y\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: h\r\n",
	"POST /%zz HTTP/1.1\r\nHost: h\r\n\r\n",
	"post /x HTTP/1.1\r\nHost: h\r\n\r\n",
}

// responseSeeds are heads as mcp-go, the MCP SDKs and Go's server answer.
var responseSeeds = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: mcp-session-7d1f\r\nDate: Thu, 26 Nov 2026 10:00:00 GMT\r\nContent-Length: 2\r\n\r\n{}",
	"HTTP/1.1 202 Accepted\r\nDate: Thu, 26 Nov 2026 10:00:00 GMT\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\ncontent-length: 3\r\n\r\nabc",
	"HTTP/1.1 201\r\nContent-Length: 1\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
	// Outside the subset: net/http decides.
	"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: x\n\n",
	"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno",
	"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1  200 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
}

// TestParseRequestSubset checks which seeds the fast path takes: the
// differential test below checks how it parses them.
func TestParseRequestSubset(t *testing.T) {
	for i, s := range requestSeeds {
		req, _ := ParseRequest([]byte(s), strings.NewReader(""))
		want := i < 6 // the first six are in the subset, the rest are not
		if (req != nil) != want {
			t.Errorf("seed %d: handled = %v, want %v\n%q", i, req != nil, want, s)
		}
	}
	for i, s := range responseSeeds {
		resp, _ := ParseResponse([]byte(s), &http.Request{Method: http.MethodPost}, strings.NewReader(""))
		want := i < 5
		if (resp != nil) != want {
			t.Errorf("response seed %d: handled = %v, want %v\n%q", i, resp != nil, want, s)
		}
	}
	if resp, _ := ParseResponse([]byte(responseSeeds[0]), &http.Request{Method: http.MethodHead}, strings.NewReader("")); resp != nil {
		t.Error("an answer to HEAD is left to net/http (its Content-Length announces no body)")
	}
}

func TestParseRequestDifferential(t *testing.T) {
	for _, s := range requestSeeds {
		checkRequest(t, []byte(s))
	}
}

func TestParseResponseDifferential(t *testing.T) {
	for _, s := range responseSeeds {
		checkResponse(t, []byte(s), http.MethodPost)
		checkResponse(t, []byte(s), http.MethodHead)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkRequest(t, b) })
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, b []byte, head bool) {
		m := http.MethodPost
		if head {
			m = http.MethodHead
		}
		checkResponse(t, b, m)
	})
}

// checkRequest parses b both ways: when the fast path takes it, net/http
// must accept it too, with the same fields, the same head length and the
// same body.
func checkRequest(t *testing.T, b []byte) {
	t.Helper()
	rest := &after{b: b}
	got, n := ParseRequest(b, rest)
	rest.off = n
	if !handled(t, got != nil, n) {
		return
	}
	want := netHTTPRead(t, b, n, http.ReadRequest)
	type view struct {
		Method, RequestURI, Proto, Host string
		ProtoMajor, ProtoMinor          int
		URL                             any
		Header                          http.Header
		ContentLength                   int64
		Close                           bool
		TransferEncoding                []string
		Trailer                         http.Header
		NoBody                          bool
	}
	g := view{got.Method, got.RequestURI, got.Proto, got.Host, got.ProtoMajor, got.ProtoMinor, *got.URL, got.Header,
		got.ContentLength, got.Close, got.TransferEncoding, got.Trailer, got.Body == http.NoBody}
	w := view{want.Method, want.RequestURI, want.Proto, want.Host, want.ProtoMajor, want.ProtoMinor, *want.URL, want.Header,
		want.ContentLength, want.Close, want.TransferEncoding, want.Trailer, want.Body == http.NoBody}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("parsed differently:\n fast:     %+v\n net/http: %+v\n%q", g, w, b)
	}
	sameBody(t, got.Body, want.Body, b)
}

func checkResponse(t *testing.T, b []byte, method string) {
	t.Helper()
	req := &http.Request{Method: method}
	rest := &after{b: b}
	got, n := ParseResponse(b, req, rest)
	rest.off = n
	if !handled(t, got != nil, n) {
		return
	}
	want := netHTTPRead(t, b, n, func(br *bufio.Reader) (*http.Response, error) { return http.ReadResponse(br, req) })
	type view struct {
		Status, Proto                      string
		StatusCode, ProtoMajor, ProtoMinor int
		Header                             http.Header
		ContentLength                      int64
		Close, Uncompressed                bool
		TransferEncoding                   []string
		Trailer                            http.Header
		NoBody                             bool
		Request                            *http.Request
	}
	g := view{got.Status, got.Proto, got.StatusCode, got.ProtoMajor, got.ProtoMinor, got.Header, got.ContentLength,
		got.Close, got.Uncompressed, got.TransferEncoding, got.Trailer, got.Body == http.NoBody, got.Request}
	w := view{want.Status, want.Proto, want.StatusCode, want.ProtoMajor, want.ProtoMinor, want.Header, want.ContentLength,
		want.Close, want.Uncompressed, want.TransferEncoding, want.Trailer, want.Body == http.NoBody, want.Request}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("parsed differently:\n fast:     %+v\n net/http: %+v\n%q", g, w, b)
	}
	sameBody(t, got.Body, want.Body, b)
}

// handled reports whether the fast path took the head; a head it did not
// take must come with no length.
func handled(t *testing.T, ok bool, n int) bool {
	t.Helper()
	if !ok && n != 0 {
		t.Fatalf("not handled, but a head length of %d", n)
	}
	return ok
}

// netHTTPRead parses b with net/http's read, which must accept it and
// consume exactly the n bytes of head the fast path did.
func netHTTPRead[T any](t *testing.T, b []byte, n int, read func(*bufio.Reader) (T, error)) T {
	t.Helper()
	src := bytes.NewReader(b)
	br := bufio.NewReaderSize(src, 64<<10)
	want, err := read(br)
	if err != nil {
		t.Fatalf("fast path took a head net/http rejects (%v):\n%q", err, b)
	}
	if used := len(b) - br.Buffered() - src.Len(); n != used {
		t.Fatalf("head length %d, net/http read %d:\n%q", n, used, b)
	}
	return want
}

// after reads b from off on: the bytes after the head, as the
// connection's reader delivers them once the head is consumed.
type after struct {
	b   []byte
	off int
}

func (a *after) Read(p []byte) (int, error) {
	if a.off >= len(a.b) {
		return 0, io.EOF
	}
	n := copy(p, a.b[a.off:])
	a.off += n
	return n, nil
}

// sameBody reads both bodies in small steps and compares bytes and the
// error that ends them.
func sameBody(t *testing.T, got, want io.ReadCloser, b []byte) {
	t.Helper()
	gb, gerr := readSteps(got)
	wb, werr := readSteps(want)
	if !bytes.Equal(gb, wb) || !errors.Is(gerr, werr) && !(gerr == nil && werr == nil) {
		t.Fatalf("bodies differ: fast %q (%v), net/http %q (%v)\n%q", gb, gerr, wb, werr, b)
	}
	_ = got.Close()
	_ = want.Close()
	if _, err := got.Read(make([]byte, 1)); !errors.Is(err, http.ErrBodyReadAfterClose) && got != http.NoBody {
		t.Fatalf("read after Close: %v", err)
	}
}

func readSteps(r io.Reader) ([]byte, error) {
	var out []byte
	p := make([]byte, 3)
	for {
		n, err := r.Read(p)
		out = append(out, p[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}
