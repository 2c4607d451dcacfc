package gateway

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// echoRequest answers with what the server made of the request: method,
// target, host, declared length, header names and values, and the body.
func echoRequest(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
		return
	}
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s %s host=%q len=%d te=%v close=%v\n", r.Method, r.RequestURI, r.Proto, r.Host, r.ContentLength, r.TransferEncoding, r.Close)
	for _, k := range keys {
		fmt.Fprintf(&sb, "%s=%q\n", k, r.Header[k])
	}
	fmt.Fprintf(&sb, "body %x\n", sha256.Sum256(b))
	_, _ = io.WriteString(w, sb.String())
}

// exchange sends raw to addr, closes the sending side, and returns what
// came back: per answer its status class (2 for 2xx, "refused" for 4xx and
// 5xx alike, since the two servers word their refusals differently) and,
// for accepted requests, the echo.
func exchange(t *testing.T, addr string, raw []byte) []string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	go func() {
		_, _ = c.Write(raw)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	var out []string
	br := bufio.NewReader(c)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		b, err := io.ReadAll(resp.Body)
		switch {
		case resp.StatusCode == http.StatusContinue:
			continue
		case resp.StatusCode >= 400:
			out = append(out, "refused")
		case err != nil:
			out = append(out, fmt.Sprintf("%d truncated", resp.StatusCode))
		default:
			out = append(out, fmt.Sprintf("%d %s", resp.StatusCode, b))
		}
	}
}

// FuzzIngressAgreesWithNetHTTP sends the same bytes to net/http's server and
// to the ingress, both serving an echo of the parsed request, and requires
// the same answers: the ingress must not accept what net/http refuses,
// refuse what it accepts, or read a request differently.
func FuzzIngressAgreesWithNetHTTP(f *testing.F) {
	for _, seed := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x/mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST /x/mcp HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
		"POST /x/mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST /x/mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
		"POST /x/mcp HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
		"POST /x/mcp HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n",
		"GET /a HTTP/1.0\r\n\r\n",
		"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\n folded: x\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\nX: a\r\n  b\r\n\r\n",
		"GET /a HTTP/1.1\nHost: a\n\n",
		"GET /a?b=%zz HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /%2e%2e/x HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\nX-Null: a\x00b\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a b\r\n\r\n",
		"GET /a HTTP/1.1\r\nhost: a\r\nHOST: a\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
		"POST /a HTTP/1.1\r\nHost: a\r\nExpect: something\r\nContent-Length: 2\r\n\r\nhi",
		"G\x7fT /a HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET  /a HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a HTTP/1.1 \r\nHost: a\r\n\r\n",
		"GET /a HTTP/2.0\r\nHost: a\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET http://a/b HTTP/1.1\r\nHost: a\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nshort",
	} {
		f.Add([]byte(seed))
	}
	h := http.HandlerFunc(echoRequest)
	servers := ingressServers(f, h, IngressOptions{ReadHeaderTimeout: time.Second, IdleTimeout: time.Second})
	f.Fuzz(func(t *testing.T, raw []byte) {
		std := exchange(t, servers["net/http"], raw)
		ing := exchange(t, servers["ingress"], raw)
		if strings.Join(std, "\n---\n") != strings.Join(ing, "\n---\n") {
			t.Fatalf("input %q\nnet/http answered:\n%s\ningress answered:\n%s", raw, strings.Join(std, "\n---\n"), strings.Join(ing, "\n---\n"))
		}
	})
}
