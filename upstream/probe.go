package upstream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mcpgw/mcpgw/registry"
)

// The health probe speaks MCP over plain net/http rather than through an SDK
// client: a check must say precisely why an upstream failed (which HTTP
// status, which step, which network error), must never leave goroutines or
// listening streams behind, and must cost as little as possible when ten
// thousand servers are checked.

// Protocol versions the probe speaks.
const (
	legacyProtocol = "2025-11-25" // newest revision with the initialize handshake
	modernProtocol = "2026-07-28" // stateless core: server/discover, no sessions
)

// maxProbeBody bounds one JSON-RPC message read from an upstream (a tools/list
// page can be large; anything beyond this is not a sane answer).
const maxProbeBody = 16 << 20

// maxToolPages bounds tools/list pagination, so a server that keeps handing
// out cursors cannot keep a worker busy forever.
const maxToolPages = 100

// closeTimeout bounds the DELETE that ends a checked session, which runs even
// when the check itself ran out of time.
const closeTimeout = 2 * time.Second

// probeResult is what one check learned.
type probeResult struct {
	Status  string // registry.HealthHealthy, HealthAuthRequired or HealthUnhealthy
	Reason  string
	Latency time.Duration
	// Modern is set when the upstream answered server/discover (2026-07-28).
	Modern bool
	// Tools is the upstream's full tool list when listing was asked for and
	// succeeded (Listed); ListErr says why listing failed otherwise.
	Tools      []registry.Tool
	Listed     bool
	ListErr    error
	ListReason string // ListErr in a few words
}

// prober runs checks over one HTTP client.
type prober struct {
	http      *http.Client
	userAgent string
	timeout   time.Duration // only for reasons: "no answer within 5s"
}

// check runs one health check of s: a real MCP exchange with its configured
// headers. modernFirst tries server/discover before initialize (the upstream
// answered it last time); listTools also reads tools/list, every page, in
// the same session.
func (p *prober) check(ctx context.Context, s *registry.Server, modernFirst, listTools bool) probeResult {
	start := time.Now()
	headers := ExpandHeaders(s)
	var res probeResult
	var err error
	if len(s.SupportedTransports) == 1 && s.SupportedTransports[0] == registry.TransportSSE {
		res, err = p.checkSSE(ctx, Endpoint(s), headers, listTools)
	} else {
		res, err = p.checkStreamable(ctx, Endpoint(s), headers, modernFirst, listTools)
	}
	res.Latency = time.Since(start)
	if res.ListErr != nil {
		_, res.ListReason = p.classify(ctx, res.ListErr)
	}
	if err != nil {
		res.Status, res.Reason = p.classify(ctx, err)
		return res
	}
	res.Status = registry.HealthHealthy
	return res
}

// checkStreamable checks a streamable-HTTP upstream: initialize,
// notifications/initialized and ping in a session closed with DELETE, or
// server/discover for a 2026-07-28 upstream (that revision has no ping). Whichever generation is
// tried first, a refusal of its opening request (a 4xx other than 401/403 or a
// JSON-RPC error) makes the probe try the other.
func (p *prober) checkStreamable(ctx context.Context, endpoint string, headers map[string]string, modernFirst, listTools bool) (probeResult, error) {
	first, second := p.legacy, p.modern
	if modernFirst {
		first, second = p.modern, p.legacy
	}
	res, err := first(ctx, endpoint, headers, listTools)
	if err == nil || !refusedOpening(err) {
		return res, err
	}
	if res2, err2 := second(ctx, endpoint, headers, listTools); err2 == nil {
		return res2, nil
	} else if isAuth(err2) {
		return res2, err2
	}
	return res, err
}

func (p *prober) legacy(ctx context.Context, endpoint string, headers map[string]string, listTools bool) (probeResult, error) {
	c := &rpcConn{p: p, url: endpoint, headers: headers}
	var res probeResult
	init, err := c.call(ctx, "initialize", map[string]any{
		"protocolVersion": legacyProtocol,
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "mcpgw-health", "version": p.userAgent},
	})
	if err != nil {
		return res, err
	}
	// Close the session whatever happens next, so checks never leak upstream
	// sessions (10,000 servers every 30 s would otherwise pile them up).
	defer c.closeSession()
	var ir struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if json.Unmarshal(init, &ir) != nil || ir.ProtocolVersion == "" {
		return res, &stepError{step: "initialize", err: protocolErr("the initialize result has no protocolVersion")}
	}
	c.protocol = ir.ProtocolVersion
	if err := c.notify(ctx, "notifications/initialized"); err != nil {
		return res, err
	}
	if _, err := c.call(ctx, "ping", nil); err != nil {
		return res, err
	}
	if listTools {
		res.Tools, res.ListErr = c.listTools(ctx)
		res.Listed = res.ListErr == nil
	}
	return res, nil
}

func (p *prober) modern(ctx context.Context, endpoint string, headers map[string]string, listTools bool) (probeResult, error) {
	c := &rpcConn{p: p, url: endpoint, headers: headers, protocol: modernProtocol, modern: true}
	res := probeResult{Modern: true}
	disc, err := c.call(ctx, "server/discover", nil)
	if err != nil {
		return res, err
	}
	var dr struct {
		SupportedVersions []string `json:"supportedVersions"`
	}
	if json.Unmarshal(disc, &dr) != nil || len(dr.SupportedVersions) == 0 {
		return res, &stepError{step: "server/discover", err: protocolErr("the server/discover result lists no supportedVersions")}
	}
	// 2026-07-28 removed ping: the answered discover is the check.
	if listTools {
		res.Tools, res.ListErr = c.listTools(ctx)
		res.Listed = res.ListErr == nil
	}
	return res, nil
}

// checkSSE checks a legacy HTTP+SSE upstream: open the event stream, wait for
// the endpoint event, then initialize and ping through the message endpoint
// with the answers arriving on the stream. Closing the stream ends the
// session.
func (p *prober) checkSSE(ctx context.Context, endpoint string, headers map[string]string, listTools bool) (probeResult, error) {
	var res probeResult
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // closes the stream
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return res, &stepError{step: "connect", err: err}
	}
	setHeaders(req, headers)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("User-Agent", p.userAgent)
	resp, err := p.http.Do(req)
	if err != nil {
		return res, &stepError{step: "connect", err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return res, &stepError{step: "connect", err: &statusError{code: resp.StatusCode}}
	}
	if mt := mediaType(resp); mt != "text/event-stream" {
		return res, &stepError{step: "connect", err: protocolErr("the event stream has content type %q, not text/event-stream", mt)}
	}
	events := newSSEReader(resp.Body)
	var postURL string
	for postURL == "" {
		ev, err := events.next()
		if err != nil {
			return res, &stepError{step: "connect", err: streamErr(err, "the event stream ended before the endpoint event")}
		}
		if ev.name != "endpoint" {
			continue
		}
		u, err := resolveSameOrigin(endpoint, strings.TrimSpace(ev.data))
		if err != nil {
			return res, &stepError{step: "connect", err: err}
		}
		postURL = u
	}
	c := &rpcConn{p: p, url: postURL, headers: headers, stream: events}
	init, err := c.call(ctx, "initialize", map[string]any{
		"protocolVersion": "2024-11-05",
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "mcpgw-health", "version": p.userAgent},
	})
	if err != nil {
		return res, err
	}
	var ir struct {
		ProtocolVersion string `json:"protocolVersion"`
	}
	if json.Unmarshal(init, &ir) != nil || ir.ProtocolVersion == "" {
		return res, &stepError{step: "initialize", err: protocolErr("the initialize result has no protocolVersion")}
	}
	if err := c.notify(ctx, "notifications/initialized"); err != nil {
		return res, err
	}
	if _, err := c.call(ctx, "ping", nil); err != nil {
		return res, err
	}
	if listTools {
		res.Tools, res.ListErr = c.listTools(ctx)
		res.Listed = res.ListErr == nil
	}
	return res, nil
}

// resolveSameOrigin resolves the SSE endpoint event's URI against the stream
// URL and refuses another origin: the configured headers (secrets) must only
// go to the registered upstream.
func resolveSameOrigin(base, ref string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	r, err := url.Parse(ref)
	if err != nil || ref == "" {
		return "", protocolErr("the endpoint event holds no valid URI")
	}
	u := b.ResolveReference(r)
	if u.Scheme != b.Scheme || u.Host != b.Host {
		return "", protocolErr("the endpoint event points to another origin (%s)", u.Host)
	}
	return u.String(), nil
}

// rpcConn sends JSON-RPC messages to one upstream endpoint: streamable HTTP
// (answers in the POST response, JSON or an event stream) or, with stream
// set, the legacy SSE transport (answers on the stream).
type rpcConn struct {
	p        *prober
	url      string
	headers  map[string]string
	session  string // Mcp-Session-Id
	protocol string // Mcp-Protocol-Version once negotiated
	modern   bool
	stream   *sseReader
	nextID   int
}

type rpcMessage struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *rpcError       `json:"error"`
}

// rpcError is a JSON-RPC error object an upstream answered with.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *rpcError) Error() string { return fmt.Sprintf("JSON-RPC error %d: %s", e.Code, e.Message) }

func (c *rpcConn) params(p map[string]any) map[string]any {
	if !c.modern {
		return p
	}
	if p == nil {
		p = map[string]any{}
	}
	p["_meta"] = map[string]any{
		"io.modelcontextprotocol/protocolVersion":    modernProtocol,
		"io.modelcontextprotocol/clientInfo":         map[string]any{"name": "mcpgw-health", "version": c.p.userAgent},
		"io.modelcontextprotocol/clientCapabilities": map[string]any{},
	}
	return p
}

func (c *rpcConn) post(ctx context.Context, method string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	setHeaders(req, c.headers)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("User-Agent", c.p.userAgent)
	if c.session != "" {
		req.Header.Set("Mcp-Session-Id", c.session)
	}
	if c.protocol != "" && c.stream == nil {
		req.Header.Set("Mcp-Protocol-Version", c.protocol)
	}
	if c.modern {
		req.Header.Set("Mcp-Method", method)
	}
	return c.p.http.Do(req)
}

// call sends one request and returns its result; a JSON-RPC error answer is
// an *rpcError.
func (c *rpcConn) call(ctx context.Context, method string, params map[string]any) (json.RawMessage, error) {
	c.nextID++
	id := c.nextID
	msg := map[string]any{"jsonrpc": "2.0", "id": id, "method": method}
	if p := c.params(params); p != nil {
		msg["params"] = p
	}
	body, _ := json.Marshal(msg)
	resp, err := c.post(ctx, method, body)
	if err != nil {
		return nil, &stepError{step: method, err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se := &statusError{code: resp.StatusCode}
		// A 4xx may still carry a JSON-RPC error that says why.
		var m rpcMessage
		if mediaType(resp) == "application/json" && json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&m) == nil {
			se.rpc = m.Error
		}
		return nil, &stepError{step: method, err: se}
	}
	if method == "initialize" && c.stream == nil {
		c.session = resp.Header.Get("Mcp-Session-Id")
	}
	var answer *rpcMessage
	switch mt := mediaType(resp); {
	case c.stream != nil:
		// Legacy SSE: the POST is only acknowledged; the answer comes on
		// the event stream (a few servers also put it in the POST response).
		var m rpcMessage
		if mt == "application/json" && json.NewDecoder(io.LimitReader(resp.Body, maxProbeBody)).Decode(&m) == nil && sameID(m.ID, id) {
			answer = &m
			break
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		m2, err := awaitResponse(c.stream, id)
		if err != nil {
			return nil, &stepError{step: method, err: err}
		}
		answer = m2
	case mt == "application/json":
		var m rpcMessage
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxProbeBody)).Decode(&m); err != nil {
			return nil, &stepError{step: method, err: protocolErr("the answer is not valid JSON-RPC: %v", shortJSONErr(err))}
		}
		answer = &m
	case mt == "text/event-stream":
		m, err := awaitResponse(newSSEReader(resp.Body), id)
		if err != nil {
			return nil, &stepError{step: method, err: err}
		}
		answer = m
	case resp.StatusCode == http.StatusAccepted:
		return nil, &stepError{step: method, err: protocolErr("answered 202 Accepted without a response")}
	default:
		return nil, &stepError{step: method, err: protocolErr("answered with content type %q, not JSON-RPC", mt)}
	}
	if answer.Error != nil {
		return nil, &stepError{step: method, err: answer.Error}
	}
	if !sameID(answer.ID, id) {
		return nil, &stepError{step: method, err: protocolErr("the answer has id %s, not %d", answer.ID, id)}
	}
	if answer.Result == nil {
		return nil, &stepError{step: method, err: protocolErr("the answer has neither result nor error")}
	}
	return answer.Result, nil
}

// notify sends one notification; the upstream must accept it with a 2xx.
func (c *rpcConn) notify(ctx context.Context, method string) error {
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method})
	resp, err := c.post(ctx, method, body)
	if err != nil {
		return &stepError{step: method, err: err}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &stepError{step: method, err: &statusError{code: resp.StatusCode}}
	}
	return nil
}

// closeSession ends a streamable-HTTP session with DELETE. Its outcome does
// not change the verdict: 405 is a valid answer (the server does not let
// clients end sessions), and a failure here says nothing the check did not.
func (c *rpcConn) closeSession() {
	if c.session == "" || c.stream != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.url, nil)
	if err != nil {
		return
	}
	setHeaders(req, c.headers)
	req.Header.Set("Mcp-Session-Id", c.session)
	req.Header.Set("User-Agent", c.p.userAgent)
	if c.protocol != "" {
		req.Header.Set("Mcp-Protocol-Version", c.protocol)
	}
	resp, err := c.p.http.Do(req)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// listTools reads every page of tools/list, keeping each input schema as the
// upstream sent it.
func (c *rpcConn) listTools(ctx context.Context) ([]registry.Tool, error) {
	var out []registry.Tool
	seen := map[string]bool{}
	cursor := ""
	for page := 0; ; page++ {
		if page == maxToolPages {
			return nil, fmt.Errorf("tools/list: more than %d pages", maxToolPages)
		}
		var params map[string]any
		if cursor != "" {
			params = map[string]any{"cursor": cursor}
		}
		raw, err := c.call(ctx, "tools/list", params)
		if err != nil {
			return nil, err
		}
		var r struct {
			Tools []struct {
				Name        string          `json:"name"`
				Description string          `json:"description"`
				InputSchema json.RawMessage `json:"inputSchema"`
			} `json:"tools"`
			NextCursor string `json:"nextCursor"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("tools/list: %w", protocolErr("the result is not a tool list: %v", shortJSONErr(err)))
		}
		for _, t := range r.Tools {
			if t.Name == "" || seen[t.Name] {
				return nil, fmt.Errorf("tools/list: %w", protocolErr("a tool has an empty or repeated name %q", t.Name))
			}
			seen[t.Name] = true
			desc := t.Description
			out = append(out, registry.Tool{Name: t.Name, ParsedDescription: registry.ParsedDescription{Main: &desc}, Schema: t.InputSchema})
		}
		if r.NextCursor == "" {
			return out, nil
		}
		if r.NextCursor == cursor {
			return nil, fmt.Errorf("tools/list: %w", protocolErr("the upstream repeated cursor %q", cursor))
		}
		cursor = r.NextCursor
	}
}

// awaitResponse reads events until the response with the given id arrives,
// skipping notifications and requests the upstream sends meanwhile.
func awaitResponse(events *sseReader, id int) (*rpcMessage, error) {
	for {
		ev, err := events.next()
		if err != nil {
			return nil, streamErr(err, "the event stream ended before the answer")
		}
		if ev.name != "" && ev.name != "message" {
			continue
		}
		var m rpcMessage
		if err := json.Unmarshal([]byte(ev.data), &m); err != nil {
			return nil, protocolErr("an event is not valid JSON-RPC: %v", shortJSONErr(err))
		}
		if m.Method != "" || !sameID(m.ID, id) {
			continue
		}
		return &m, nil
	}
}

func sameID(raw json.RawMessage, id int) bool {
	return strings.TrimSpace(string(raw)) == strconv.Itoa(id)
}

func setHeaders(req *http.Request, headers map[string]string) {
	for k, v := range headers {
		req.Header.Set(k, v)
	}
}

func mediaType(resp *http.Response) string {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return mt
}

// sseEvent is one server-sent event.
type sseEvent struct{ name, data string }

// sseReader parses a text/event-stream body.
type sseReader struct{ sc *bufio.Scanner }

func newSSEReader(r io.Reader) *sseReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxProbeBody)
	return &sseReader{sc: sc}
}

// next returns the next event with data; io.EOF when the stream ends.
func (r *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	var data []string
	for r.sc.Scan() {
		line := r.sc.Text()
		if line == "" {
			if len(data) > 0 {
				ev.data = strings.Join(data, "\n")
				return ev, nil
			}
			ev = sseEvent{}
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			ev.name = value
		case "data":
			data = append(data, value)
		}
	}
	if err := r.sc.Err(); err != nil {
		return ev, err
	}
	return ev, io.EOF
}

// Errors of a check. classify turns them into a state and a short reason.

// stepError says which MCP step failed.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// statusError is an HTTP answer other than 2xx.
type statusError struct {
	code int
	rpc  *rpcError
}

func (e *statusError) Error() string { return "HTTP " + strconv.Itoa(e.code) }

type protocolError struct{ msg string }

func (e *protocolError) Error() string { return e.msg }

func protocolErr(format string, args ...any) error {
	return &protocolError{msg: fmt.Sprintf(format, args...)}
}

// streamErr reports the end of an event stream as a protocol problem (the
// upstream hung up) and passes read errors through.
func streamErr(err error, atEOF string) error {
	if errors.Is(err, io.EOF) {
		return protocolErr("%s", atEOF)
	}
	if errors.Is(err, bufio.ErrTooLong) {
		return protocolErr("an event is larger than %d bytes", maxProbeBody)
	}
	return err
}

func shortJSONErr(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v at byte %d", se, se.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "the body is empty or cut short"
	}
	return err.Error()
}

func isAuth(err error) bool {
	var se *statusError
	return errors.As(err, &se) && (se.code == http.StatusUnauthorized || se.code == http.StatusForbidden)
}

// refusedOpening reports whether the opening request of a protocol
// generation (initialize or server/discover) was refused in a way that
// suggests the upstream speaks the other generation: a 4xx other than an
// auth challenge, or a JSON-RPC error.
func refusedOpening(err error) bool {
	var st *stepError
	if !errors.As(err, &st) || (st.step != "initialize" && st.step != "server/discover") {
		return false
	}
	var se *statusError
	if errors.As(err, &se) {
		return se.code >= 400 && se.code < 500 && !isAuth(err)
	}
	var re *rpcError
	return errors.As(err, &re)
}

// classify turns a check's error into a health state and a short reason
// people can act on.
func (p *prober) classify(ctx context.Context, err error) (string, string) {
	step := ""
	var st *stepError
	if errors.As(err, &st) {
		step = st.step
	}
	on := func(reason string) string {
		if step == "" || step == "initialize" || step == "connect" || step == "server/discover" {
			return reason
		}
		return reason + " on " + step
	}
	var se *statusError
	var re *rpcError
	var pe *protocolError
	var dnsErr *net.DNSError
	switch {
	case isAuth(err):
		errors.As(err, &se)
		return registry.HealthAuthRequired, fmt.Sprintf("upstream answered %d %s", se.code, http.StatusText(se.code))
	case errors.As(err, &se):
		reason := fmt.Sprintf("HTTP %d %s", se.code, http.StatusText(se.code))
		if se.rpc != nil && se.rpc.Message != "" {
			reason += ": " + truncate(se.rpc.Message, 120)
		}
		return registry.HealthUnhealthy, on(reason)
	case errors.As(err, &re):
		return registry.HealthUnhealthy, "protocol error: " + step + " failed: " + truncate(re.Error(), 160)
	case errors.As(err, &pe):
		return registry.HealthUnhealthy, "protocol error: " + step + ": " + truncate(pe.msg, 160)
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil || isTimeout(err):
		return registry.HealthUnhealthy, on(fmt.Sprintf("timeout: no answer within %s", p.timeout))
	case errors.Is(err, syscall.ECONNREFUSED):
		return registry.HealthUnhealthy, "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return registry.HealthUnhealthy, on("connection reset by upstream")
	case errors.As(err, &dnsErr):
		return registry.HealthUnhealthy, fmt.Sprintf("DNS lookup of %s failed: %s", dnsErr.Name, dnsErr.Err)
	case isTLS(err):
		return registry.HealthUnhealthy, "TLS: " + truncate(innermost(err), 160)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return registry.HealthUnhealthy, on("connection closed by upstream before it answered")
	default:
		return registry.HealthUnhealthy, on("request failed: " + truncate(innermost(err), 160))
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isTLS(err error) bool {
	var (
		cv  *tls.CertificateVerificationError
		rh  tls.RecordHeaderError
		al  tls.AlertError
		ua  x509.UnknownAuthorityError
		hn  x509.HostnameError
		ci  x509.CertificateInvalidError
		ech *tls.ECHRejectionError
	)
	return errors.As(err, &cv) || errors.As(err, &rh) || errors.As(err, &al) || errors.As(err, &ua) ||
		errors.As(err, &hn) || errors.As(err, &ci) || errors.As(err, &ech)
}

// innermost is the text of the deepest wrapped error, without the URL and
// step prefixes of the wrappers (the URL is known; the text should be short).
func innermost(err error) string {
	for {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
			continue
		}
		var st *stepError
		if errors.As(err, &st) {
			err = st.err
			continue
		}
		return err.Error()
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
