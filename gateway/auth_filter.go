package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/mcpgw/mcpgw/auth"
)

// maxFilteredBody bounds what the tools/list filter holds in memory: a
// whole JSON response, or one event of a stream.
const maxFilteredBody = 32 << 20

// mayFilterTools reports whether answers of rt's server to p go through
// the tools/list filter: when p may not call every tool of the server, or
// some of its tools await approval (pin_tools).
func (g *Gateway) mayFilterTools(p *auth.Principal, rt *route) bool {
	tr, ok := g.policy.(toolsRestricter)
	return !ok || tr.ToolsRestricted(p, rt.server.Path) || len(rt.server.PendingTools) > 0
}

// errEncodedAnswer is an answer the tools/list filter would have to read
// but cannot: the upstream compressed it although it was not asked to.
var errEncodedAnswer = errors.New("relay: upstream answer is compressed (Content-Encoding), so its tool list cannot be checked against the policy")

// errAnswerTooLarge is a JSON answer larger than the filter holds.
var errAnswerTooLarge = fmt.Errorf("relay: upstream answer is larger than %d MiB, so its tool list cannot be checked against the policy", maxFilteredBody>>20)

// filterToolsList returns the body the relay sends on for resp, when
// mayFilterTools: tools p may not call are dropped from every tools/list
// result in it (SPEC section 4.2). Every result shaped like one is
// filtered, whatever request it answers: an upstream writes a request's
// id back in its own form ("\u0061" as "a", 1.0 as 1) and may send a
// result down another request's stream, so matching results to the
// request's tools/list ids would let the whole list through. A JSON answer
// is read whole here, before anything is sent, so that one the filter
// cannot read (compressed, or too large) is refused with an error.
func (g *Gateway) filterToolsList(resp *http.Response, p *auth.Principal, rt *route) (io.ReadCloser, error) {
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return nil, errEncodedAnswer
	}
	// Tools whose changed definitions await approval (pin_tools) are
	// dropped too: their upstream definition is not the approved one.
	keep := func(tool string) bool {
		return !rt.server.Held(tool) && g.policy.Allowed(p, rt.server.Path, "tools/call", tool)
	}
	f := &toolsFilter{keep: keep}
	if isEventStream(resp.Header) {
		return struct {
			io.Reader
			io.Closer
		}{&sseFilter{src: bufio.NewReaderSize(resp.Body, 32<<10), f: f}, resp.Body}, nil
	}
	b, err := f.filterJSON(resp.Body)
	if err != nil {
		return nil, err
	}
	resp.Header["Content-Length"] = []string{strconv.Itoa(len(b))} // the filtered body may be shorter
	resp.ContentLength = int64(len(b))
	return struct {
		io.Reader
		io.Closer
	}{bytes.NewReader(b), resp.Body}, nil
}

// toolsFilter rewrites JSON-RPC responses that hold a tools/list result.
type toolsFilter struct {
	keep func(tool string) bool
}

// rewrite returns msg (one JSON-RPC message or a batch) with the tools
// keep refuses dropped, or msg itself, unchanged byte for byte, when
// nothing is dropped or it is not JSON-RPC.
func (f *toolsFilter) rewrite(msg []byte) []byte {
	t := bytes.TrimSpace(msg)
	// A message without the member name, plain or escaped, cannot hold a
	// tool list: most answers (tool results of any size) pass without
	// being decoded.
	if len(t) == 0 || !bytes.Contains(t, []byte(`"tools"`)) && !bytes.Contains(t, []byte(`\u`)) {
		return msg
	}
	if t[0] == '[' {
		var batch []json.RawMessage
		if json.Unmarshal(t, &batch) != nil {
			return msg
		}
		changed := false
		for i, m := range batch {
			if out, ok := f.rewriteOne(m); ok {
				batch[i], changed = out, true
			}
		}
		if !changed {
			return msg
		}
		b, _ := json.Marshal(batch)
		return b
	}
	if out, ok := f.rewriteOne(t); ok {
		return out
	}
	return msg
}

// rewriteOne filters one message; ok is false when it is left as is.
func (f *toolsFilter) rewriteOne(m []byte) ([]byte, bool) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(m, &obj) != nil {
		return nil, false
	}
	res, hasResult := obj["result"]
	if !hasResult || obj["method"] != nil {
		return nil, false
	}
	var result map[string]json.RawMessage
	if json.Unmarshal(res, &result) != nil || result["tools"] == nil {
		return nil, false
	}
	var tools []json.RawMessage
	if json.Unmarshal(result["tools"], &tools) != nil {
		return nil, false
	}
	kept := make([]json.RawMessage, 0, len(tools))
	for _, raw := range tools {
		var t struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(raw, &t) == nil && f.keep(t.Name) {
			kept = append(kept, raw)
		}
	}
	if len(kept) == len(tools) {
		return nil, false
	}
	result["tools"], _ = json.Marshal(kept)
	obj["result"], _ = json.Marshal(result)
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, false
	}
	return out, true
}

// filterJSON reads a whole application/json answer and returns it
// filtered.
func (f *toolsFilter) filterJSON(src io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(src, maxFilteredBody+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("relay: read upstream answer: %w", err)
	case len(b) > maxFilteredBody:
		return nil, errAnswerTooLarge
	}
	return f.rewrite(b), nil
}

// sseFilter filters a text/event-stream response event by event: each event
// is passed on once it is complete, its data rewritten when it holds a
// tools/list result, so the stream keeps its frame-by-frame timing.
type sseFilter struct {
	src *bufio.Reader
	f   *toolsFilter
	out []byte
	err error
}

func (s *sseFilter) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.out, s.err = s.nextEvent()
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// nextEvent reads up to the end of one event (its blank line) and returns
// its bytes, rewritten when needed. Lines may end in LF, CRLF or a lone CR,
// as the event-stream format allows: a message must not slip through the
// filter by its line endings.
func (s *sseFilter) nextEvent() ([]byte, error) {
	var raw []byte
	var data [][]byte
	for {
		start := len(raw)
		var err error
		raw, err = s.readLine(raw)
		if len(raw) > maxFilteredBody {
			return nil, errors.New("relay: event too large to filter")
		}
		if err != nil {
			return raw, err // a partial event at the end passes as it came
		}
		text := bytes.TrimRight(raw[start:], "\r\n")
		if len(text) == 0 {
			if data == nil {
				return raw, nil
			}
			return s.rewriteEvent(raw, data), nil
		}
		if v, ok := bytes.CutPrefix(text, []byte("data:")); ok {
			data = append(data, bytes.TrimPrefix(v, []byte(" ")))
		}
	}
}

// readLine appends one line, with its ending, to buf.
func (s *sseFilter) readLine(buf []byte) ([]byte, error) {
	for {
		c, err := s.src.ReadByte()
		if err != nil {
			return buf, err
		}
		buf = append(buf, c)
		switch c {
		case '\n':
			return buf, nil
		case '\r':
			if next, err := s.src.Peek(1); err == nil && next[0] == '\n' {
				_, _ = s.src.ReadByte()
				buf = append(buf, '\n')
			}
			return buf, nil
		}
		if len(buf) > maxFilteredBody {
			return buf, nil
		}
	}
}

// rewriteEvent returns raw, or when its data holds a tools/list result with
// tools to drop, the same event with one data line holding the rewritten
// message (other fields kept).
func (s *sseFilter) rewriteEvent(raw []byte, data [][]byte) []byte {
	msg := bytes.Join(data, []byte("\n"))
	out := s.f.rewrite(msg)
	if bytes.Equal(out, msg) {
		return raw
	}
	var b bytes.Buffer
	wroteData := false
	norm := bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n"))
	for _, line := range bytes.Split(norm, []byte("\n")) {
		text := line
		if len(text) == 0 {
			continue
		}
		if bytes.HasPrefix(text, []byte("data:")) {
			if !wroteData {
				b.WriteString("data: ")
				b.Write(out)
				b.WriteByte('\n')
				wroteData = true
			}
			continue
		}
		b.Write(text)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	return b.Bytes()
}
