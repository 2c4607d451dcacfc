package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/internal/httphead"
	"github.com/mcpgw/mcpgw/internal/sockio"
)

// IngressOptions configure the HTTP/1.1 listener in front of the gateway.
type IngressOptions struct {
	// ReadHeaderTimeout bounds how long a request's headers may take to
	// arrive (default 10 s).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a keep-alive connection that sends no request for
	// this long (default 120 s).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request line and its headers (default 1 MiB).
	MaxHeaderBytes int
	// Log receives what goes wrong at the connection level.
	Log zerolog.Logger
}

// Ingress accepts the gateway's connections and serves HTTP/1.1 with its
// own loop, which costs per request far less than net/http's server: no
// background read goroutine and its hand-off on every request, no deadline
// resets, one write per answer. That matters on the relay path, where the
// gateway's own work is a few microseconds and the server's was most of
// the rest. Connections it does not serve (the HTTP/2 preface, OPTIONS *,
// CONNECT, absolute-form targets, request lines it cannot read) are handed,
// with the bytes read so far, to a standard http.Server that serves the
// same handler.
//
// Both loops call the same handler, so authentication, policy and logging
// are one code path; the ingress only replaces HTTP framing. It does not
// support Hijack or response trailers, which the gateway does not use.
type Ingress struct {
	handler http.Handler
	std     *http.Server
	opts    IngressOptions
	handoff *handoffListener

	mu      sync.Mutex
	ln      net.Listener
	conns   map[*ingressConn]struct{}
	closing atomic.Bool
	done    chan struct{} // closed when the last fast connection ends after Shutdown
	alarms  *alarms       // the connections' watch delays
}

// NewIngress serves h. std, which must have h as its Handler, serves what
// the fast loop does not; its timeouts should match opts.
func NewIngress(h http.Handler, std *http.Server, opts IngressOptions) *Ingress {
	if opts.ReadHeaderTimeout <= 0 {
		opts.ReadHeaderTimeout = 10 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 120 * time.Second
	}
	if opts.MaxHeaderBytes <= 0 {
		opts.MaxHeaderBytes = http.DefaultMaxHeaderBytes
	}
	return &Ingress{handler: h, std: std, opts: opts, conns: map[*ingressConn]struct{}{}, done: make(chan struct{}), alarms: newAlarms()}
}

// Serve accepts connections on ln until Shutdown or an accept error.
func (s *Ingress) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.ln = ln
	s.handoff = &handoffListener{addr: ln.Addr(), conns: make(chan net.Conn), closed: make(chan struct{})}
	s.mu.Unlock()
	go func() { _ = s.std.Serve(s.handoff) }()

	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors and the like: wait, as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.opts.Log.Warn().Err(err).Dur("retry_in", delay).Msg("accept")
				time.Sleep(delay)
				continue
			}
			_ = s.handoff.Close()
			return fmt.Errorf("accept: %w", err)
		}
		delay = 0
		ic := s.newConn(c)
		if ic == nil {
			_ = c.Close()
			continue
		}
		go ic.serve()
	}
}

// Shutdown stops accepting, closes idle connections, and waits for the
// requests in flight (on both loops) until ctx ends.
func (s *Ingress) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	ln := s.ln
	if len(s.conns) == 0 {
		s.closeDone()
	}
	s.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	stdErr := make(chan error, 1)
	go func() { stdErr <- s.std.Shutdown(ctx) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.closeIdle()
		select {
		case <-s.done:
			return <-stdErr
		case <-ctx.Done():
			s.mu.Lock()
			for c := range s.conns {
				_ = c.c.Close()
			}
			s.mu.Unlock()
			<-stdErr
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (s *Ingress) closeDone() {
	select {
	case <-s.done:
	default:
		close(s.done)
	}
}

func (s *Ingress) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(connIdle, connClosed) {
			_ = c.c.Close()
		}
	}
}

func (s *Ingress) newConn(c net.Conn) *ingressConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return nil
	}
	c = sockio.Wrap(c)
	ic := &ingressConn{srv: s, c: c, remote: c.RemoteAddr().String()}
	ic.watchAlarm = alarm{s: s.alarms, fn: ic.watchFire}
	ic.r.c, ic.r.limit = c, -1
	ic.br = bufio.NewReaderSize(&ic.r, 4096)
	ic.bw = bufio.NewWriterSize(c, 4096)
	ic.ctx = context.WithValue(context.WithValue(context.Background(), http.ServerContextKey, s.std), http.LocalAddrContextKey, namedAddr{c.LocalAddr(), c.LocalAddr().String()})
	s.conns[ic] = struct{}{}
	return ic
}

func (s *Ingress) forget(ic *ingressConn) {
	s.mu.Lock()
	delete(s.conns, ic)
	if s.closing.Load() && len(s.conns) == 0 {
		s.closeDone()
	}
	s.mu.Unlock()
}

// fastRequestLine reports whether a request line is one the fast loop
// serves: a method token, a target in origin form (starting with "/"), and
// HTTP/1.1 or HTTP/1.0. Anything else (OPTIONS *, CONNECT, an absolute URL,
// the HTTP/2 preface, garbage) is net/http's to answer.
func fastRequestLine(line []byte) bool {
	line = bytes.TrimRight(line, "\r\n")
	m, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || !validHeaderName(string(m)) {
		return false
	}
	target, proto, ok := bytes.Cut(rest, []byte(" "))
	if !ok || (string(proto) != "HTTP/1.1" && string(proto) != "HTTP/1.0") {
		return false
	}
	return len(target) > 0 && target[0] == '/'
}

// Connection states, for Shutdown to close only idle connections.
const (
	connIdle int32 = iota
	connActive
	connClosed
)

// aLongTimeAgo is a deadline in the past, to wake a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// ingressConn is one client connection on the fast loop.
type ingressConn struct {
	srv      *Ingress
	c        net.Conn
	remote   string
	r        connReader
	br       *bufio.Reader
	bw       *bufio.Writer
	ctx      context.Context // carries the listener's address for the handler
	state    atomic.Int32
	deadline time.Time // the read deadline last set on c
	scratch  [20]byte  // for formatting numbers without allocating
	served   int

	// The client watch: once a request has taken a while and its body is
	// read, one read on the connection learns whether the client hung up,
	// and cancels the request if so. Quick requests never start it.
	watchMu    sync.Mutex
	watchAlarm alarm
	watchFired bool // the delay passed
	bodyDone   bool // the body reached EOF (or there is none)
	watching   bool
	stopping   bool
	watchDone  chan struct{}
	cancel     context.CancelCauseFunc
}

// watchDelay is how long a request runs before the ingress starts
// watching for the client hanging up: long enough that relayed calls of a
// fast upstream never pay for it, short enough for streams and slow tools.
const watchDelay = 50 * time.Millisecond

// connReader is the connection as the bufio.Reader sees it: it bounds the
// header bytes and returns first a byte the client watch read ahead.
type connReader struct {
	c          net.Conn
	recording  bool // append what is read to rec
	rec        []byte
	limit      int64 // bytes still allowed; < 0 means no limit
	hitLimit   bool
	pending    byte
	hasPending bool
}

func (r *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.limit == 0 {
		r.hitLimit = true
		return 0, io.EOF
	}
	if r.limit > 0 && int64(len(p)) > r.limit {
		p = p[:r.limit]
	}
	if r.hasPending {
		p[0] = r.pending
		r.hasPending = false
		r.count(1)
		if r.recording {
			r.rec = append(r.rec, p[0])
		}
		return 1, nil
	}
	n, err := r.c.Read(p)
	r.count(n)
	if r.recording {
		r.rec = append(r.rec, p[:n]...)
	}
	return n, err
}

func (r *connReader) count(n int) {
	if r.limit > 0 {
		r.limit -= int64(n)
	}
}

func (c *ingressConn) setReadDeadline(t time.Time) {
	if err := c.c.SetReadDeadline(t); err == nil {
		c.deadline = t
	}
}

func (c *ingressConn) serve() {
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			c.srv.opts.Log.Error().Str("remote", c.remote).Interface("panic", v).Str("stack", string(debug.Stack())).
				Msg("ingress: panic serving a request")
		}
		c.close()
	}()
	// A new connection sends its first request within the header timeout;
	// after that, idle keep-alive connections live for the idle timeout.
	c.setReadDeadline(time.Now().Add(c.srv.opts.ReadHeaderTimeout))
	for {
		if c.served > 0 {
			now := time.Now()
			want := now.Add(c.srv.opts.IdleTimeout)
			// Deadlines are coarse on purpose: moving one costs a timer
			// update, so it moves only when a second or more out of date.
			if c.deadline.IsZero() || c.deadline.Before(want.Add(-time.Second)) || c.deadline.After(want) {
				c.setReadDeadline(want)
			}
		}
		line, err := c.peekLine()
		if err != nil {
			return
		}
		if !c.state.CompareAndSwap(connIdle, connActive) {
			return // Shutdown closed it
		}
		if !fastRequestLine(line) {
			c.handOff()
			return
		}
		if !c.serveOne() {
			return
		}
		c.served++
		if !c.state.CompareAndSwap(connActive, connIdle) || c.srv.closing.Load() {
			return
		}
	}
}

// peekLine waits for the next request line without consuming it, so that
// the connection can still be handed to net/http whole.
func (c *ingressConn) peekLine() ([]byte, error) {
	if c.served > 0 {
		// As net/http does between requests: fewer than 4 bytes and then
		// the end of the connection is no request, and gets no answer.
		if _, err := c.br.Peek(4); err != nil {
			return nil, err
		}
	}
	for {
		if b, _ := c.br.Peek(c.br.Buffered()); bytes.IndexByte(b, '\n') >= 0 {
			return b[:bytes.IndexByte(b, '\n')+1], nil
		}
		if c.br.Buffered() == c.br.Size() {
			// A request line longer than the buffer: net/http answers it.
			b, _ := c.br.Peek(c.br.Buffered())
			return b, nil
		}
		if _, err := c.br.Peek(c.br.Buffered() + 1); err != nil {
			// A partial line and then the end: net/http answers it (400).
			if errors.Is(err, io.EOF) && c.br.Buffered() > 0 {
				b, _ := c.br.Peek(c.br.Buffered())
				return b, nil
			}
			return nil, err
		}
	}
}

// handOff gives the connection, with what has been read of it, to the
// standard server.
func (c *ingressConn) handOff() {
	c.srv.forget(c)
	pc := &prefixConn{Conn: c.c, r: c.br}
	if err := c.c.SetReadDeadline(time.Time{}); err != nil || !c.srv.handoff.give(pc) {
		_ = c.c.Close()
	}
	c.c = nil // no longer ours to close
}

func (c *ingressConn) close() {
	if c.c == nil {
		return
	}
	c.state.Store(connClosed)
	_ = c.bw.Flush()
	_ = c.c.Close()
	c.srv.forget(c)
}

// serveOne reads and answers one request; false means close the connection.
func (c *ingressConn) serveOne() bool {
	// http.ReadRequest drops the Host header after reading it into
	// req.Host, so the Host lines are counted in the raw header block:
	// usually all buffered already; if not, recorded as they are read.
	buffered, _ := c.br.Peek(c.br.Buffered())
	end := headerEnd(buffered)
	if end < 0 {
		// The headers have not all arrived: they get the header timeout.
		c.setReadDeadline(time.Now().Add(c.srv.opts.ReadHeaderTimeout))
		c.r.rec = append(c.r.rec[:0], buffered...)
		c.r.recording = true
	}
	limit := int64(c.srv.opts.MaxHeaderBytes) + 4096 // net/http's allowance for the request line
	req, hosts, fast, err := c.readRequest(buffered, end, limit)
	if c.r.recording {
		c.r.recording = false
		hosts = countHostLines(c.r.rec, headerEnd(c.r.rec))
		if cap(c.r.rec) > 64<<10 {
			c.r.rec = nil // keep no large buffer for the connection's life
		}
	}
	if err != nil {
		switch {
		case c.r.hitLimit:
			c.fail(http.StatusRequestHeaderFieldsTooLarge, "request headers are too large")
		case commonReadError(err):
			// The client went away or stalled: nobody to answer.
		default:
			c.fail(http.StatusBadRequest, "malformed HTTP request: "+err.Error())
		}
		return false
	}
	if msg := checkRequest(req, hosts, fast); msg != "" {
		c.fail(http.StatusBadRequest, msg)
		return false
	}
	if !c.deadline.IsZero() && c.deadline.Before(time.Now().Add(c.srv.opts.IdleTimeout/2)) {
		// Header timeout served its purpose; the body gets the idle timeout.
		c.setReadDeadline(time.Now().Add(c.srv.opts.IdleTimeout))
	}
	w := &ingressResponse{c: c, req: req, header: make(http.Header, 8), contentLength: -1}
	w.close = c.srv.closing.Load()
	w.wantsClose = wantsClose(req)
	w.wants10KeepAlive = req.ProtoMajor == 1 && req.ProtoMinor == 0 && hasToken(req.Header.Get("Connection"), "keep-alive")
	body := &ingressBody{rc: req.Body, c: c, w: w}
	if e := req.Header.Get("Expect"); hasToken(e, "100-continue") {
		body.sendContinue = req.ProtoAtLeast(1, 1) && req.ContentLength != 0
		body.expect = body.sendContinue
	} else if e != "" {
		c.fail(http.StatusExpectationFailed, "unsupported Expect header")
		return false
	}
	ctx, cancel := context.WithCancelCause(c.ctx)
	defer cancel(nil)
	noBody := req.Body == http.NoBody || req.ContentLength == 0
	if !noBody {
		req.Body = body
		w.body = body
	}
	req.RemoteAddr = c.remote
	req = req.WithContext(ctx)
	w.cancel = cancel

	c.watchMu.Lock()
	c.watchFired, c.bodyDone, c.watching, c.stopping, c.cancel = false, noBody, false, false, cancel
	c.watchMu.Unlock()
	c.watchAlarm.reset(watchDelay)

	c.srv.handler.ServeHTTP(w, req)

	c.stopWatch()
	w.finish()
	if err := c.bw.Flush(); err != nil {
		return false
	}
	if w.close || body.closedEarly || w.failedWrite {
		return false
	}
	if !noBody && !body.sawEOF {
		// Drain what the handler left unread, within reason, so the next
		// request starts where it should.
		n, err := io.CopyN(io.Discard, body.rc, 256<<10+1)
		if n > 256<<10 || err != io.EOF {
			return false
		}
	}
	return true
}

// readRequest reads the request whose first bytes are buffered; end is the
// length of its head when all of it is buffered, else -1. The usual head
// (see httphead) is parsed in one pass; any other is read by net/http,
// which answers or rejects it as net/http's server would.
func (c *ingressConn) readRequest(buffered []byte, end int, limit int64) (req *http.Request, hosts int, fast bool, err error) {
	if end >= 0 && int64(end) <= limit {
		if req, n := httphead.ParseRequest(buffered[:end], c.br); req != nil {
			_, _ = c.br.Discard(n)
			return req, 1, true, nil // the fast path takes only heads with one Host line
		}
	}
	hosts = countHostLines(buffered, end)
	c.r.limit = limit
	c.r.hitLimit = false
	req, err = http.ReadRequest(c.br)
	c.r.limit = -1
	return req, hosts, false, err
}

// headerEnd is the length of the request head in b (request line, headers
// and the empty line), or -1 if b does not hold all of it.
func headerEnd(b []byte) int {
	for i := 0; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		if i+1 < len(b) && b[i+1] == '\n' {
			return i + 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i + 3
		}
	}
	return -1
}

// countHostLines counts the Host header lines in the request head b[:end].
func countHostLines(b []byte, end int) int {
	if end < 0 {
		return 0
	}
	n := 0
	for b = b[:end]; ; {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return n
		}
		b = b[i+1:]
		if len(b) >= 5 && b[4] == ':' && (b[0]|0x20) == 'h' && (b[1]|0x20) == 'o' && (b[2]|0x20) == 's' && (b[3]|0x20) == 't' {
			n++
		}
	}
}

// checkRequest applies net/http's server-side checks to a parsed request
// whose head had hosts Host lines.
func checkRequest(req *http.Request, hosts int, fast bool) string {
	if req.ProtoAtLeast(1, 1) && hosts == 0 {
		return "missing required Host header"
	}
	if hosts > 1 {
		return "too many Host headers"
	}
	if !validHost(req.Host) {
		return "malformed Host header"
	}
	if fast {
		return "" // the one-pass parser admits only token names and printable ASCII values
	}
	for k, vv := range req.Header {
		if !validHeaderName(k) {
			return "invalid header name"
		}
		for _, v := range vv {
			if !validHeaderValue(v) {
				return "invalid header value"
			}
		}
	}
	return ""
}

// validHost reports whether h has only the bytes a host and port may have
// (RFC 3986 reg-name, IP literals, port), as net/http's server checks.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if !hostChars[h[i]] {
			return false
		}
	}
	return true
}

// hostChars and tokenChars are byte tables for validHost and
// validHeaderName: a lookup per byte instead of a search of a set.
var hostChars, tokenChars = func() (host, token [256]bool) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		alnum := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
		host[c] = alnum || strings.IndexByte("-._~!$&'()*+,;=:[]%", b) >= 0
		token[c] = b > ' ' && b < 0x7f && strings.IndexByte(`"(),/:;<=>?@[\]{}`, b) < 0
	}
	return host, token
}()

// validHeaderName reports whether k is an RFC 9110 token.
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !tokenChars[k[i]] {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v holds no control bytes but tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// fail answers a request the loop could not parse, and the connection
// closes after it.
func (c *ingressConn) fail(status int, msg string) {
	body := `{"error":` + strconv.Quote(msg) + "}\n"
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
	_ = c.bw.Flush()
}

// wantsClose reports whether the client asked to close the connection
// after this request, as net/http's server reads it: req.Close (HTTP/1.0
// without keep-alive, or a "close" token), or a "close" token in the first
// Connection header.
func wantsClose(req *http.Request) bool {
	return req.Close || hasToken(req.Header.Get("Connection"), "close")
}

// hasToken reports whether token appears in v, case-insensitively, between
// spaces, commas, tabs or the ends: net/http's reading of Connection and
// Expect.
func hasToken(v, token string) bool {
	n := len(token)
	for i := 0; i+n <= len(v); i++ {
		if !strings.EqualFold(v[i:i+n], token) {
			continue
		}
		if (i == 0 || tokenBoundary(v[i-1])) && (i+n == len(v) || tokenBoundary(v[i+n])) {
			return true
		}
	}
	return false
}

func tokenBoundary(b byte) bool { return b == ' ' || b == ',' || b == '\t' }

// commonReadError reports the read errors net/http's server does not
// answer: the end of the connection between requests, a timeout, a failed
// read. A request cut off in the middle (io.ErrUnexpectedEOF) gets a 400.
func commonReadError(err error) bool {
	var oe *net.OpError
	return err == io.EOF || isTimeout(err) || errors.As(err, &oe) && oe.Op == "read"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// watchFire runs when the watch delay passed.
func (c *ingressConn) watchFire() {
	c.watchMu.Lock()
	c.watchFired = true
	c.startWatchLocked()
	c.watchMu.Unlock()
}

// noteBodyDone runs when the request body reached EOF.
func (c *ingressConn) noteBodyDone() {
	c.watchMu.Lock()
	c.bodyDone = true
	c.startWatchLocked()
	c.watchMu.Unlock()
}

// startWatchLocked starts the client watch once both the delay passed and
// the body is read: before that, reading the connection would take bytes
// the handler is waiting for.
func (c *ingressConn) startWatchLocked() {
	if !c.watchFired || !c.bodyDone || c.watching || c.stopping {
		return
	}
	c.watching = true
	c.watchDone = make(chan struct{})
	_ = c.c.SetReadDeadline(time.Time{}) // a stream may stay open for hours
	c.deadline = time.Time{}
	go c.watch(c.cancel, c.watchDone)
}

func (c *ingressConn) watch(cancel context.CancelCauseFunc, done chan struct{}) {
	defer close(done)
	var b [1]byte
	n, err := c.c.Read(b[:])
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	if n == 1 {
		// The client sent the start of its next request: it is still there.
		c.r.pending, c.r.hasPending = b[0], true
		return
	}
	if err != nil && !c.stopping {
		cancel(nil) // the client hung up
	}
}

// stopWatch ends the client watch before the connection is used again.
func (c *ingressConn) stopWatch() {
	c.watchAlarm.stop()
	c.watchMu.Lock()
	c.stopping = true
	watching, done := c.watching, c.watchDone
	c.watchMu.Unlock()
	if !watching {
		return
	}
	_ = c.c.SetReadDeadline(aLongTimeAgo)
	<-done
	c.deadline = aLongTimeAgo // the next wait sets a real one
}

// ingressBody is a request body on the fast loop: it sends 100 Continue
// when asked to, tells the client watch when it is read, and its Close does
// not read the rest (net/http's server does the same).
type ingressBody struct {
	rc           io.ReadCloser
	c            *ingressConn
	w            *ingressResponse
	sendContinue bool
	expect       bool // the client sent Expect: 100-continue for this body
	sawEOF       bool
	closed       bool
	closedEarly  bool
}

func (b *ingressBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.sendContinue {
		b.sendContinue = false
		if !b.w.headerSent {
			_, _ = b.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			_ = b.c.bw.Flush()
		}
	}
	n, err := b.rc.Read(p)
	if err == io.EOF && !b.sawEOF {
		b.sawEOF = true
		b.c.noteBodyDone()
	}
	return n, err
}

func (b *ingressBody) Close() error {
	if !b.closed && !b.sawEOF {
		b.closedEarly = true
	}
	b.closed = true
	return nil
}

// namedAddr is the listener's address with its text computed once: the
// gateway reads it on every request (DNS-rebinding check).
type namedAddr struct {
	net.Addr
	s string
}

func (a namedAddr) String() string { return a.s }

// prefixConn is a connection handed to net/http: its reads start with the
// bytes the fast loop had buffered.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// handoffListener is the standard server's listener: it accepts the
// connections the fast loop hands over.
type handoffListener struct {
	addr   net.Addr
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *handoffListener) give(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }
