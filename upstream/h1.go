package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpgw/mcpgw/internal/httphead"
	"github.com/mcpgw/mcpgw/internal/sockio"
)

// H1Options configure an H1Transport.
type H1Options struct {
	// MaxIdlePerHost bounds the idle connections kept per upstream; 0 means 256.
	MaxIdlePerHost int
	// IdleTimeout closes a connection idle this long; 0 means 90 s.
	IdleTimeout time.Duration
	// DialTimeout bounds a TCP connect; 0 means 10 s.
	DialTimeout time.Duration
	// TLSConfig is used for https upstreams; nil means the system roots.
	TLSConfig *tls.Config
	// Fallback serves the requests H1Transport does not (a body of unknown
	// length, trailers, other schemes); nil means http.DefaultTransport.
	Fallback http.RoundTripper
}

// H1Transport is the relay's round tripper: HTTP/1.1 over pooled
// connections, with the whole exchange run by the calling goroutine.
//
// net/http's Transport gives every connection a read goroutine and a write
// goroutine and hands each request and response between them and the caller
// over channels. On a relay that is two more goroutine wake-ups per call on
// top of the network's own, and on a busy machine each wake-up can wait for
// a core. Here the caller writes the request, reads the response off the
// socket itself and, once the body has been read to its end, puts the
// connection back in the pool: the only waits are for the network.
type H1Transport struct {
	opts   H1Options
	dialer net.Dialer

	mu      sync.Mutex
	idle    map[poolKey][]*h1Conn // most recently used last
	sweeper *time.Timer           // armed while any connection is idle
	dials   atomic.Int64
}

var _ http.RoundTripper = (*H1Transport)(nil)

// NewH1Transport returns an H1Transport with an empty pool.
func NewH1Transport(opts H1Options) *H1Transport {
	if opts.MaxIdlePerHost <= 0 {
		opts.MaxIdlePerHost = 256
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 90 * time.Second
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 10 * time.Second
	}
	if opts.Fallback == nil {
		opts.Fallback = http.DefaultTransport
	}
	return &H1Transport{
		opts:   opts,
		dialer: net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second},
		idle:   map[poolKey][]*h1Conn{},
	}
}

// Dials reports how many connections the transport has opened.
func (t *H1Transport) Dials() int64 { return t.dials.Load() }

// CloseIdleConnections closes every pooled connection not in use.
func (t *H1Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[poolKey][]*h1Conn{}
	t.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.close()
		}
	}
}

// handles reports whether req is one H1Transport serves itself.
func handles(req *http.Request) bool {
	if req.URL == nil || req.URL.Host == "" || (req.URL.Scheme != "http" && req.URL.Scheme != "https") {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody && req.ContentLength < 0 {
		return false // chunked request bodies are left to net/http
	}
	return len(req.Trailer) == 0 && req.Method != http.MethodConnect
}

// RoundTrip sends req and returns the upstream's response. The response body
// must be read to its end or closed; a body read to its end returns the
// connection to the pool.
func (t *H1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !handles(req) {
		return t.opts.Fallback.RoundTrip(req)
	}
	ctx := req.Context()
	key := poolKey{req.URL.Scheme, hostPort(req.URL.Scheme, req.URL.Host)}
	for attempt := 0; ; attempt++ {
		c, reused := t.pooled(key)
		if c == nil {
			var err error
			if c, err = t.dial(ctx, key); err != nil {
				closeBody(req)
				return nil, err
			}
		}
		resp, err := c.roundTrip(req)
		if err == nil {
			return resp, nil
		}
		c.close()
		if reused && attempt == 0 && ctx.Err() == nil && retryable(req, err) {
			if req.Body == nil || req.Body == http.NoBody {
				continue
			}
			if req.GetBody != nil {
				if body, gerr := req.GetBody(); gerr == nil {
					r2 := *req
					r2.Body = body
					req = &r2
					continue
				}
			}
		}
		closeBody(req)
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("upstream: %w", cerr)
		}
		return nil, err
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// poolKey names the upstream a pooled connection goes to: a struct, not
// "scheme://host:port", so that finding one costs no string building.
type poolKey struct{ scheme, addr string }

// hostPort adds the scheme's default port to host when it has none.
func hostPort(scheme, host string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if scheme == "https" {
		return net.JoinHostPort(host, "443")
	}
	return net.JoinHostPort(host, "80")
}

// pooled takes the most recently used live idle connection to key.
func (t *H1Transport) pooled(key poolKey) (*h1Conn, bool) {
	now := time.Now()
	for {
		t.mu.Lock()
		list := t.idle[key]
		if len(list) == 0 {
			t.mu.Unlock()
			return nil, false
		}
		c := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[key] = list[:len(list)-1]
		t.mu.Unlock()
		if now.Sub(c.idleAt) < t.opts.IdleTimeout && c.br.Buffered() == 0 && !peerClosed(c.raw) {
			return c, true
		}
		c.close()
	}
}

// put returns c to the pool, or closes it when the pool for its upstream is
// full.
func (t *H1Transport) put(c *h1Conn) {
	c.idleAt = time.Now()
	t.mu.Lock()
	list := t.idle[c.key]
	if len(list) >= t.opts.MaxIdlePerHost {
		t.mu.Unlock()
		c.close()
		return
	}
	t.idle[c.key] = append(list, c)
	if t.sweeper == nil {
		t.sweeper = time.AfterFunc(t.opts.IdleTimeout/2, t.sweep)
	}
	t.mu.Unlock()
}

// sweep closes connections idle longer than the idle timeout, so that an
// upstream nobody calls any more does not keep sockets open. It re-arms
// itself while connections remain idle.
func (t *H1Transport) sweep() {
	cutoff := time.Now().Add(-t.opts.IdleTimeout)
	var stale []*h1Conn
	t.mu.Lock()
	for key, list := range t.idle {
		n := 0
		for _, c := range list {
			if c.idleAt.Before(cutoff) {
				stale = append(stale, c)
				continue
			}
			list[n] = c
			n++
		}
		clear(list[n:])
		if n == 0 {
			delete(t.idle, key)
		} else {
			t.idle[key] = list[:n]
		}
	}
	if len(t.idle) > 0 {
		t.sweeper.Reset(t.opts.IdleTimeout / 2)
	} else {
		t.sweeper = nil
	}
	t.mu.Unlock()
	for _, c := range stale {
		c.close()
	}
}

func (t *H1Transport) dial(ctx context.Context, key poolKey) (*h1Conn, error) {
	scheme, addr := key.scheme, key.addr
	raw, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("upstream: dial %s: %w", addr, err)
	}
	t.dials.Add(1)
	raw = sockio.Wrap(raw)
	conn := raw
	if scheme == "https" {
		cfg := &tls.Config{}
		if t.opts.TLSConfig != nil {
			cfg = t.opts.TLSConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, t.opts.DialTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = raw.Close()
			return nil, fmt.Errorf("upstream: tls handshake with %s: %w", addr, err)
		}
		conn = tc
	}
	return &h1Conn{t: t, key: key, conn: conn, raw: raw,
		br: bufio.NewReaderSize(conn, 16<<10), bw: bufio.NewWriterSize(conn, 8<<10)}, nil
}

// h1Conn is one upstream connection, used by one request at a time.
type h1Conn struct {
	t      *H1Transport
	key    poolKey
	conn   net.Conn // what requests are written to (TLS or TCP)
	raw    net.Conn // the TCP connection underneath
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	closed atomic.Bool
}

func (c *h1Conn) close() {
	if c.closed.CompareAndSwap(false, true) {
		_ = c.conn.Close()
	}
}

// retryable reports whether a request that failed on a pooled connection
// may be sent again on a new one. An upstream may close an idle connection
// at any moment; pooled checks for that before reuse, but the close can
// still cross the request on the wire. The rules are net/http's: a request
// the upstream cannot have received whole (its sending failed) goes again;
// one it may have received, only when sending it twice does no harm (GET,
// HEAD, OPTIONS, or an Idempotency-Key) and no answer began. A tools/call
// is never run twice behind the caller's back.
func retryable(req *http.Request, err error) bool {
	var nw nothingWritten
	if errors.As(err, &nw) {
		return true
	}
	var nr nothingRead
	if !errors.As(err, &nr) {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return req.Header.Get("Idempotency-Key") != ""
}

// nothingWritten marks a request whose sending failed.
type nothingWritten struct{ err error }

func (e nothingWritten) Error() string { return e.err.Error() }
func (e nothingWritten) Unwrap() error { return e.err }

// nothingRead marks a failure before any byte of the response arrived.
type nothingRead struct{ err error }

func (e nothingRead) Error() string { return e.err.Error() }
func (e nothingRead) Unwrap() error { return e.err }

// aLongTimeAgo is a deadline in the past: setting it makes every blocked
// read or write on the connection return at once.
var aLongTimeAgo = time.Unix(1, 0)

func (c *h1Conn) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(aLongTimeAgo) })
	if err := c.write(req); err != nil {
		stop()
		return nil, nothingWritten{fmt.Errorf("upstream: write request: %w", err)}
	}
	if _, err := c.br.Peek(1); err != nil {
		stop()
		return nil, nothingRead{fmt.Errorf("upstream: read response: %w", err)}
	}
	resp, err := c.readResponse(req)
	if err != nil {
		stop()
		return nil, fmt.Errorf("upstream: read response: %w", err)
	}
	keep := !resp.Close && !req.Close
	if resp.Body == http.NoBody {
		// Nothing more will come on this exchange: the connection is free.
		if stop() && keep {
			c.t.put(c)
		} else {
			c.close()
		}
		return resp, nil
	}
	resp.Body = &h1Body{c: c, rc: resp.Body, stop: stop, keep: keep, ctx: ctx}
	return resp, nil
}

// readResponse reads the final response, skipping informational (1xx)
// ones.
func (c *h1Conn) readResponse(req *http.Request) (*http.Response, error) {
	// The usual answer (2xx, one Content-Length, head already buffered)
	// is parsed in one pass; any other goes to net/http.
	if b, _ := c.br.Peek(c.br.Buffered()); len(b) > 0 {
		if resp, n := httphead.ParseResponse(b, req, c.br); resp != nil {
			_, _ = c.br.Discard(n)
			return resp, nil
		}
	}
	for {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			_ = resp.Body.Close()
			return nil, errors.New("upstream switched protocols")
		}
		if resp.StatusCode >= 200 || resp.StatusCode < 100 {
			return resp, nil
		}
	}
}

// skipRequestHeaders are written by write itself or never sent.
var skipRequestHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Expect": true, "Trailer": true, "Te": true, "Upgrade": true, "Keep-Alive": true,
	"Proxy-Connection": true,
}

// write sends the request line, headers and body. Header names and values
// are checked for line breaks here because configured header values come
// from the environment, where a newline would smuggle a second header.
func (c *h1Conn) write(req *http.Request) error {
	w := c.bw
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !validHeaderValue(host) {
		return errors.New("invalid Host")
	}
	_, _ = w.WriteString(req.Method)
	_ = w.WriteByte(' ')
	_, _ = w.WriteString(req.URL.RequestURI())
	_, _ = w.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = w.WriteString(host)
	_, _ = w.WriteString("\r\n")
	for k, vs := range req.Header {
		if skipRequestHeaders[k] {
			continue
		}
		if !validHeaderName(k) {
			return fmt.Errorf("invalid header name %q", k)
		}
		for _, v := range vs {
			if !validHeaderValue(v) {
				return fmt.Errorf("invalid value for header %s", k)
			}
			_, _ = w.WriteString(k)
			_, _ = w.WriteString(": ")
			_, _ = w.WriteString(v)
			_, _ = w.WriteString("\r\n")
		}
	}
	if req.Close {
		_, _ = w.WriteString("Connection: close\r\n")
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	if hasBody || req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch {
		_, _ = w.WriteString("Content-Length: ")
		_, _ = w.Write(strconv.AppendInt(w.AvailableBuffer(), max(req.ContentLength, 0), 10))
		_, _ = w.WriteString("\r\n")
	}
	_, _ = w.WriteString("\r\n")
	if hasBody {
		n, err := copyBody(w, req.Body, req.ContentLength)
		_ = req.Body.Close()
		if err != nil {
			return fmt.Errorf("request body: %w (%d of %d bytes)", err, n, req.ContentLength)
		}
	}
	return w.Flush()
}

// copyBody writes n bytes of body to w, reading straight into w's buffer:
// io.CopyN's LimitReader was an allocation per request. Like io.CopyN it
// returns io.EOF when body ends early, and it never reads past n.
func copyBody(w *bufio.Writer, body io.Reader, n int64) (int64, error) {
	var written int64
	for written < n {
		if w.Available() == 0 {
			if err := w.Flush(); err != nil {
				return written, err
			}
		}
		buf := w.AvailableBuffer()
		buf = buf[:min(int64(cap(buf)), n-written)]
		k, err := body.Read(buf)
		if k > 0 {
			_, _ = w.Write(buf[:k])
			written += int64(k)
		}
		if err != nil {
			if err == io.EOF && written == n {
				return written, nil
			}
			return written, err
		}
	}
	return written, nil
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if b := k[i]; b <= ' ' || b == ':' || b >= 0x7f {
			return false
		}
	}
	return true
}

func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b == '\r' || b == '\n' || b == 0 {
			return false
		}
	}
	return true
}

// h1Body is a response body on a pooled connection: read to its end, it
// returns the connection to the pool; closed earlier, it closes the
// connection (what is left of the body is not worth reading, and an event
// stream has no end to read to).
type h1Body struct {
	c    *h1Conn
	rc   io.ReadCloser
	stop func() bool // unregisters the context's cancellation
	keep bool
	ctx  context.Context
	done atomic.Bool
	eof  atomic.Bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done.Load() {
		if b.eof.Load() {
			return 0, io.EOF
		}
		return 0, errors.New("upstream: read on a closed response body")
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.eof.Store(true)
		b.finish(true)
	case err != nil:
		b.finish(false)
		if cerr := b.ctx.Err(); cerr != nil {
			err = fmt.Errorf("upstream: %w", cerr)
		}
	}
	return n, err
}

func (b *h1Body) Close() error {
	b.finish(false)
	return nil
}

func (b *h1Body) finish(eof bool) {
	if !b.done.CompareAndSwap(false, true) {
		return
	}
	// stop reports false when the cancellation already ran and left the
	// connection with a deadline in the past: such a connection is spent.
	if b.stop() && eof && b.keep {
		b.c.t.put(b.c)
		return
	}
	b.c.close()
}
