package upstream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/registry"
)

// SessionOptions configure a Sessions pool.
type SessionOptions struct {
	// IdleTimeout closes a session unused for this long; 0 means 5 minutes.
	IdleTimeout time.Duration
	// MaxSessions bounds the pool; the least recently used idle session is
	// closed to make room. 0 means 256.
	MaxSessions int
	// ConnectTimeout bounds opening and initializing a session; 0 means 30 s.
	ConnectTimeout time.Duration
}

// Sessions is a pool of initialized MCP client sessions to upstreams, one per
// (server, credentials): the gateway's invoke_tool calls tools through it
// without a handshake per call. Sessions are keyed by a hash of the server's
// endpoint and the exact headers sent, so callers with different upstream
// credentials never share a session, and a changed registration or token
// gets a fresh one.
type Sessions struct {
	hc      *http.Client
	version string
	opts    SessionOptions
	now     func() time.Time

	// base is the context sessions live in: an SSE session's event stream
	// runs as long as it, not as long as the request that opened it.
	base   context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	m      map[string]*session
	closed bool
	stats  SessionStats

	// tokens numbers the progress tokens sent upstream, so that calls
	// sharing one session never share a token.
	tokens atomic.Uint64
}

// SessionStats count pool activity (for tests and metrics).
type SessionStats struct {
	Opened  int // sessions initialized
	Reused  int // calls served by an existing session
	Dropped int // sessions discarded after a transport error or expiry
}

type session struct {
	key      string
	ready    chan struct{} // closed once cl or err is set
	cl       *client.Client
	err      error
	lastUsed time.Time
	inflight int
	dead     bool // removed from the pool; close when inflight reaches 0

	// watchers route the upstream's progress notifications to the call
	// that sent their token; the session's transport calls dispatch.
	pmu      sync.Mutex
	watchers map[string]ProgressFunc
}

// ProgressFunc receives the params of one notifications/progress the
// upstream sent about a call, its _meta among them, without the progress
// token the pool sent upstream (the caller puts its own). It is called in the order the upstream
// sent them, on the session's reading goroutine, and every call happens
// before CallTool returns: the upstream sends its progress ahead of the
// result on the same stream. A slow ProgressFunc delays the call's result.
type ProgressFunc func(params map[string]any)

// MethodProgress is the MCP progress notification.
const MethodProgress = "notifications/progress"

// watch routes progress with token to fn until unwatch.
func (s *session) watch(token string, fn ProgressFunc) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.watchers == nil {
		s.watchers = map[string]ProgressFunc{}
	}
	s.watchers[token] = fn
}

func (s *session) unwatch(token string) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	delete(s.watchers, token)
}

// dispatch hands a progress notification to the call whose token it
// carries; other notifications, and progress of calls no longer waiting,
// are dropped.
func (s *session) dispatch(n mcp.JSONRPCNotification) {
	if n.Method != MethodProgress {
		return
	}
	token, ok := n.Params.AdditionalFields["progressToken"].(string)
	if !ok {
		return
	}
	s.pmu.Lock()
	fn := s.watchers[token]
	s.pmu.Unlock()
	if fn == nil {
		return
	}
	params := make(map[string]any, len(n.Params.AdditionalFields))
	for k, v := range n.Params.AdditionalFields {
		if k != "progressToken" {
			params[k] = v
		}
	}
	if len(n.Params.Meta) > 0 {
		params["_meta"] = n.Params.Meta // mcp-go keeps it apart from the other params
	}
	fn(params)
}

// NewSessions returns an empty pool whose sessions send their requests
// through rt (the gateway's shared upstream transport).
func NewSessions(rt http.RoundTripper, version string, opts SessionOptions) *Sessions {
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 5 * time.Minute
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = 256
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 30 * time.Second
	}
	base, cancel := context.WithCancel(context.Background())
	return &Sessions{
		hc: &http.Client{Transport: rt, CheckRedirect: noRedirects}, version: version, opts: opts, now: time.Now,
		base: base, cancel: cancel, m: map[string]*session{},
	}
}

// Stats returns the pool's counters.
func (p *Sessions) Stats() SessionStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Close closes every session; later calls fail.
func (p *Sessions) Close() {
	p.mu.Lock()
	p.closed = true
	all := p.m
	p.m = map[string]*session{}
	p.mu.Unlock()
	for _, s := range all {
		s.retire()
	}
	p.cancel()
}

// ErrPoolClosed is returned by CallTool after Close.
var ErrPoolClosed = errors.New("upstream: session pool is closed")

// CallTool calls tool name with args on s through a pooled session opened
// with s's configured headers overlaid by extra (the caller's passthrough
// credentials win). The upstream's result is returned as it sent it; a
// JSON-RPC error of the upstream is returned as an error that is not a
// *transport.Error. When the upstream no longer knows the session (404), the
// session is re-initialized and the call sent once more: the upstream did
// not run it.
//
// With a RawResult in ctx (WithRawResult), the result is kept there as the
// upstream sent it, and the returned one holds only its isError.
//
// With onProgress, the call asks the upstream for progress under a token of
// its own, unique in the pool (several calls share one upstream session, and
// their callers' tokens may collide), and hands each progress notification
// of that token to onProgress before returning.
func (p *Sessions) CallTool(ctx context.Context, s *registry.Server, extra map[string]string, name string, args any, onProgress ProgressFunc) (*mcp.CallToolResult, error) {
	headers := mergeHeaders(ExpandHeaders(s), extra)
	key := sessionKey(s, headers)
	for attempt := 0; ; attempt++ {
		sess, err := p.acquire(ctx, key, s, headers)
		if err != nil {
			return nil, err
		}
		req := mcp.CallToolRequest{}
		req.Params.Name = name
		req.Params.Arguments = args
		var token string
		if onProgress != nil {
			token = "mcpgw-" + strconv.FormatUint(p.tokens.Add(1), 10)
			req.Params.Meta = &mcp.Meta{ProgressToken: token}
			sess.watch(token, onProgress)
		}
		res, err := sess.cl.CallTool(ctx, req)
		if onProgress != nil {
			sess.unwatch(token)
		}
		p.release(sess, err)
		if err != nil && attempt == 0 && errors.Is(err, transport.ErrSessionTerminated) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("upstream: tools/call %s on %s: %w", name, s.Path, err)
		}
		return res, nil
	}
}

func mergeHeaders(base, extra map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(extra))
	for k, v := range base {
		out[http.CanonicalHeaderKey(k)] = v
	}
	for k, v := range extra {
		out[http.CanonicalHeaderKey(k)] = v
	}
	return out
}

// sessionKey hashes everything that makes a session usable for a call: the
// server, where it is reached, how, and the exact headers (credentials
// included, which is why only a hash is kept).
func sessionKey(s *registry.Server, headers map[string]string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%v\x00", registry.PathKey(s.Path), Endpoint(s), s.SupportedTransports)
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(h, "%s\x00%s\x00", k, headers[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// acquire returns a ready session for key, opening one when there is none.
// Concurrent callers of the same key share one handshake.
func (p *Sessions) acquire(ctx context.Context, key string, s *registry.Server, headers map[string]string) (*session, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	p.expireLocked()
	sess, ok := p.m[key]
	opener := !ok
	if opener {
		p.makeRoomLocked()
		sess = &session{key: key, ready: make(chan struct{})}
		p.m[key] = sess
	} else if sess.cl != nil {
		p.stats.Reused++
	}
	sess.inflight++
	sess.lastUsed = p.now()
	p.mu.Unlock()

	if opener {
		cl, err := p.connect(ctx, s, headers, sess.dispatch)
		p.mu.Lock()
		sess.cl, sess.err = cl, err
		if err != nil {
			p.removeLocked(sess)
		} else {
			p.stats.Opened++
		}
		p.mu.Unlock()
		close(sess.ready)
	} else {
		select {
		case <-sess.ready:
		case <-ctx.Done():
			p.release(sess, nil)
			return nil, ctx.Err()
		}
	}
	if sess.err != nil {
		p.release(sess, nil)
		return nil, sess.err
	}
	return sess, nil
}

// release ends one use of sess. A transport failure (as opposed to a
// JSON-RPC error answered by the upstream) retires the session, so the next
// call opens a new one.
func (p *Sessions) release(sess *session, callErr error) {
	var te *transport.Error
	p.mu.Lock()
	sess.inflight--
	sess.lastUsed = p.now()
	if callErr != nil && errors.As(callErr, &te) {
		p.removeLocked(sess)
		p.stats.Dropped++
	}
	closeNow := sess.dead && sess.inflight == 0
	p.mu.Unlock()
	if closeNow {
		sess.retire()
	}
}

// removeLocked takes sess out of the pool; it is closed once unused.
func (p *Sessions) removeLocked(sess *session) {
	if cur, ok := p.m[sess.key]; ok && cur == sess {
		delete(p.m, sess.key)
	}
	sess.dead = true
}

// expireLocked retires sessions idle for longer than IdleTimeout.
func (p *Sessions) expireLocked() {
	cutoff := p.now().Add(-p.opts.IdleTimeout)
	for _, s := range p.m {
		if s.inflight == 0 && s.cl != nil && s.lastUsed.Before(cutoff) {
			p.removeLocked(s)
			p.stats.Dropped++
			go s.retire()
		}
	}
}

// makeRoomLocked retires the least recently used idle session when the pool
// is full. When every session is busy the pool grows past its bound for a
// while rather than failing a call.
func (p *Sessions) makeRoomLocked() {
	if len(p.m) < p.opts.MaxSessions {
		return
	}
	var lru *session
	for _, s := range p.m {
		if s.inflight == 0 && s.cl != nil && (lru == nil || s.lastUsed.Before(lru.lastUsed)) {
			lru = s
		}
	}
	if lru != nil {
		p.removeLocked(lru)
		p.stats.Dropped++
		go lru.retire()
	}
}

func (s *session) retire() {
	<-s.ready
	if s.cl != nil {
		_ = s.cl.Close()
	}
}

// connect opens and initializes a client session to s. Unlike
// Client.Connect, the session is started in the pool's context, so that an
// SSE event stream outlives the request that opened it; only the handshake
// is bounded by ctx.
func (p *Sessions) connect(ctx context.Context, s *registry.Server, headers map[string]string, notify func(mcp.JSONRPCNotification)) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.ConnectTimeout)
	defer cancel()
	// The transports keep tools/call results for callers that want them
	// byte for byte (see RawResult).
	var tr transport.Interface
	if len(s.SupportedTransports) == 1 && s.SupportedTransports[0] == registry.TransportSSE {
		t, err := transport.NewSSE(Endpoint(s), transport.WithHeaders(headers), transport.WithHTTPClient(p.hc))
		if err != nil {
			return nil, fmt.Errorf("upstream: connect %s: %w", s.Path, err)
		}
		tr = keepingSSE{t}
	} else {
		t, err := transport.NewStreamableHTTP(Endpoint(s), transport.WithHTTPHeaders(headers), transport.WithHTTPBasicClient(p.hc))
		if err != nil {
			return nil, fmt.Errorf("upstream: connect %s: %w", s.Path, err)
		}
		tr = keepingStreamable{t}
	}
	cl := client.NewClient(tr)
	var err error
	cl.OnNotification(notify)
	started := make(chan error, 1)
	go func() { started <- cl.Start(p.base) }()
	select {
	case err = <-started:
	case <-ctx.Done():
		cl.Close() // ends a Start still waiting for the upstream
		err = ctx.Err()
	}
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("upstream: connect %s: %w", s.Path, err)
	}
	init := mcp.InitializeRequest{}
	init.Params.ClientInfo = mcp.Implementation{Name: "mcpgw", Version: p.version}
	if _, err := cl.Initialize(ctx, init); err != nil {
		cl.Close()
		return nil, fmt.Errorf("upstream: initialize %s: %w", s.Path, err)
	}
	return cl, nil
}
