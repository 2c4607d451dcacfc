// Package httphead parses the HTTP/1.1 message heads a relay sees on every
// call, in one pass and with few allocations, and leaves every other head
// to net/http.
//
// net/http's ReadRequest and ReadResponse were the largest user-space cost
// of a relayed call (about a fifth of the gateway's instructions, measured
// in BENCHMARKS.md): a textproto reader, a string per line, a string per
// value and a map insertion per header, and the garbage of all that. The
// heads MCP clients and servers send are plain: a known method, an
// origin-form target, HTTP/1.1, token names, printable values and one
// Content-Length. This package parses exactly that subset and reports
// anything else (a folded line, a bare LF, Transfer-Encoding, a repeated
// Content-Length, a byte outside printable ASCII, a Connection header with
// more than one token, ...) as not handled, so that the caller hands the
// same bytes to net/http, which answers or rejects them as it always did.
// What this parser accepts, it must parse exactly as net/http does: the
// differential fuzz tests hold it to that, field by field and byte by byte.
package httphead

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
)

// maxContentLengthDigits bounds the Content-Length digits the fast path reads
// (18 digits always fit an int64); longer ones go to net/http.
const maxContentLengthDigits = 18

// tchar marks the bytes of an RFC 9110 token.
var tchar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// field is one header line of a head: offsets into it.
type field struct {
	name, value [2]int
}

// head is a scanned message head: its first line and its header fields.
type head struct {
	end    int // length of the head, the empty line included
	line   int // length of the first line without its CRLF
	fields []field
}

// scan checks b's head against the subset and records its fields,
// appended to fields (a caller's array, so that they stay on its stack);
// false means b holds no complete head in the subset.
func scan(b []byte, fields []field) (h head, ok bool) {
	i := bytes.Index(b, []byte("\r\n"))
	if i < 0 {
		return h, false
	}
	h.line = i
	i += 2
	for {
		if i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n' {
			h.end, h.fields = i+2, fields
			return h, true
		}
		// name
		start := i
		for i < len(b) && tchar[b[i]] {
			i++
		}
		if i == start || i >= len(b) || b[i] != ':' {
			return h, false
		}
		f := field{name: [2]int{start, i}}
		i++
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		start, last := i, i
		for ; i < len(b); i++ {
			c := b[i]
			if c == '\r' {
				break
			}
			if c < ' ' && c != '\t' || c >= 0x7f {
				return h, false
			}
			if c != ' ' && c != '\t' {
				last = i + 1
			}
		}
		if i+1 >= len(b) || b[i+1] != '\n' {
			return h, false
		}
		f.value = [2]int{start, last}
		fields = append(fields, f)
		i += 2
	}
}

// header builds the header map of a scanned head whose text is s. It
// reports the Content-Length (-1 for none) and false for a head outside
// the subset. request selects the request rules: the Host line is taken
// out, and returned.
func (h *head) header(s string, request bool) (hdr http.Header, host string, cl int64, ok bool) {
	// The Host line of a request leaves the map: counting it in the hint
	// would make Go allocate a table instead of one group for the usual
	// eight other headers.
	hint := len(h.fields)
	if request {
		hint--
	}
	hdr = make(http.Header, hint)
	values := make([]string, len(h.fields))
	cl = -1
	hosts := 0
	var buf [64]byte
	for i, f := range h.fields {
		name := s[f.name[0]:f.name[1]]
		value := s[f.value[0]:f.value[1]]
		key := canonical(name, &buf)
		switch key {
		case "Transfer-Encoding", "Pragma", "Trailer", "Te":
			return nil, "", 0, false // framing and rewriting rules: net/http's
		case "Content-Length":
			if cl >= 0 || !digits(value) {
				return nil, "", 0, false
			}
			cl = parseDigits(value)
		case "Connection":
			// net/http looks for the "close" token; with one keep-alive
			// the answer is plain, anything else is left to it.
			if !equalFold(value, "keep-alive") {
				return nil, "", 0, false
			}
		case "Host":
			if !request {
				break
			}
			hosts++
			host = value
			continue
		}
		if vs, dup := hdr[key]; dup {
			hdr[key] = append(vs, value)
			continue
		}
		values[i] = value
		hdr[key] = values[i : i+1 : i+1]
	}
	if request && hosts != 1 {
		return nil, "", 0, false
	}
	return hdr, host, cl, true
}

// ParseRequest parses the request head at the start of b, the bytes
// buffered from a client connection. It returns the request and the
// length of its head, or nil and 0 when b does not start with a complete
// head in the subset. The request's body reads from body, which must
// deliver the bytes that follow the head.
func ParseRequest(b []byte, body io.Reader) (*http.Request, int) {
	var fields [16]field
	h, ok := scan(b, fields[:0])
	if !ok {
		return nil, 0
	}
	line := b[:h.line]
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 || len(line) < sp+2+len(" HTTP/1.1") || !bytes.HasSuffix(line, []byte(" HTTP/1.1")) {
		return nil, 0
	}
	method := knownMethod(line[:sp])
	target := line[sp+1 : len(line)-len(" HTTP/1.1")]
	if method == "" || len(target) == 0 || target[0] != '/' || len(target) > 1 && target[1] == '/' {
		return nil, 0
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f {
			return nil, 0
		}
	}
	s := string(b[:h.end])
	hdr, host, cl, ok := h.header(s, true)
	if !ok {
		return nil, 0
	}
	uri := s[sp+1 : h.line-len(" HTTP/1.1")]
	u, err := url.ParseRequestURI(uri)
	if err != nil || u.Host != "" {
		return nil, 0
	}
	req := &http.Request{
		Method:     method,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     hdr,
		Host:       host,
		RequestURI: uri,
	}
	if cl > 0 {
		req.ContentLength = cl
		req.Body = &Body{r: body, n: cl}
	} else {
		req.Body = http.NoBody
	}
	return req, h.end
}

// ParseResponse parses the head of the response to req at the start of b,
// the bytes buffered from an upstream connection. It returns the response
// and the length of its head, or nil and 0 when b does not start with a
// complete head in the subset: a 2xx answer other than 204, with one
// Content-Length, to a request other than HEAD. The response's body reads
// from body, which must deliver the bytes that follow the head.
func ParseResponse(b []byte, req *http.Request, body io.Reader) (*http.Response, int) {
	if req.Method == http.MethodHead {
		return nil, 0
	}
	var fields [16]field
	h, ok := scan(b, fields[:0])
	if !ok {
		return nil, 0
	}
	line := b[:h.line]
	if len(line) < len("HTTP/1.1 200") || !bytes.HasPrefix(line, []byte("HTTP/1.1 2")) ||
		!isDigit(line[10]) || !isDigit(line[11]) || len(line) > 12 && line[12] != ' ' {
		return nil, 0
	}
	code := 200 + int(line[10]-'0')*10 + int(line[11]-'0')
	if code == http.StatusNoContent {
		return nil, 0
	}
	for _, c := range line[12:] {
		if c < ' ' || c >= 0x7f {
			return nil, 0
		}
	}
	s := string(b[:h.end])
	hdr, _, cl, ok := h.header(s, false)
	if !ok || cl < 0 {
		return nil, 0
	}
	resp := &http.Response{
		Status:        s[len("HTTP/1.1 "):h.line],
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        hdr,
		ContentLength: cl,
		Request:       req,
	}
	if cl > 0 {
		resp.Body = &Body{r: body, n: cl}
	} else {
		resp.Body = http.NoBody
	}
	return resp, h.end
}

// knownMethod returns the method's name as a constant (no allocation), or
// "" for a method outside the subset.
func knownMethod(m []byte) string {
	for _, k := range [...]string{http.MethodPost, http.MethodGet, http.MethodDelete, http.MethodHead,
		http.MethodOptions, http.MethodPut, http.MethodPatch} {
		if string(m) == k {
			return k
		}
	}
	return ""
}

// canonical returns name in net/http's canonical form (first letter and
// letters after a hyphen upper case, the rest lower case): name itself
// when it already is, a constant for common names, else a new string.
func canonical(name string, buf *[64]byte) string {
	upper := true
	same := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			same = false
			break
		}
		upper = c == '-'
	}
	if same {
		return name
	}
	if len(name) > len(buf) {
		return http.CanonicalHeaderKey(name)
	}
	b := buf[:len(name)]
	upper = true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
		upper = c == '-'
	}
	if k, ok := commonNames[string(b)]; ok {
		return k
	}
	return string(b)
}

// commonNames are the canonical names MCP clients and servers send in
// other spellings (MCP-Protocol-Version, content-type from Node, ...).
var commonNames = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control",
		"Connection", "Content-Length", "Content-Type", "Cookie", "Date", "Host",
		"Last-Event-Id", "Mcp-Method", "Mcp-Name", "Mcp-Protocol-Version", "Mcp-Session-Id",
		"Origin", "Referer", "Sec-Fetch-Mode", "Server", "Set-Cookie", "Traceparent",
		"User-Agent", "Www-Authenticate", "X-Api-Key", "X-Forwarded-For", "X-Request-Id",
		"Transfer-Encoding", "Pragma", "Trailer", "Te",
	} {
		m[k] = k
	}
	return m
}()

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func digits(s string) bool {
	if s == "" || len(s) > maxContentLengthDigits {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

func parseDigits(s string) int64 {
	var n int64
	for i := 0; i < len(s); i++ {
		n = n*10 + int64(s[i]-'0')
	}
	return n
}

// equalFold reports whether s is lower, ignoring ASCII case; lower is in
// lower case.
func equalFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}

// Body is a message body of known length, read from the connection's
// buffered reader. It reads as net/http's does: io.EOF with the last
// bytes, io.ErrUnexpectedEOF when the connection ends early,
// http.ErrBodyReadAfterClose after Close. Close does not read the rest:
// whoever owns the connection decides whether to drain or drop it.
type Body struct {
	r      io.Reader
	n      int64 // bytes still to read
	closed bool
	err    error // sticky end of the body
}

// Read reads up to len(p) bytes of the body.
func (b *Body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	switch {
	case b.n == 0:
		err = io.EOF
		b.err = io.EOF
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
		b.err = io.EOF
	}
	return n, err
}

// Close ends the body; later reads fail.
func (b *Body) Close() error {
	b.closed = true
	return nil
}
