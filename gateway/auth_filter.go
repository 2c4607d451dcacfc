package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/mcpgw/mcpgw/auth"
)

// maxFilteredBody bounds what the tools/list filter holds in memory: a
// whole JSON response, or one event of a stream.
const maxFilteredBody = 32 << 20

// filterToolsList returns the body the relay sends on for resp: resp.Body
// itself (the fast path) unless p may not call every tool of rt's server
// and the response may hold a tools/list result, in which case tools p may
// not call are dropped from those results (SPEC section 4.2). msgs are the
// request's messages: a POST without a tools/list request is not filtered;
// a stream opened by GET (msgs nil) may carry the result of any request
// (the legacy SSE transport answers there), so every tools/list-shaped
// result on it is filtered.
func (g *Gateway) filterToolsList(resp *http.Response, p *auth.Principal, rt *route, msgs []rpcMessage) io.ReadCloser {
	tr, ok := g.policy.(toolsRestricter)
	if ok && !tr.ToolsRestricted(p, rt.server.Path) && len(rt.server.PendingTools) == 0 {
		return resp.Body
	}
	var ids map[string]bool
	if msgs != nil {
		ids = map[string]bool{}
		for _, m := range msgs {
			if m.Method == "tools/list" {
				ids[compactID(m.ID)] = true
			}
		}
		if len(ids) == 0 {
			return resp.Body
		}
	}
	// Tools whose changed definitions await approval (pin_tools) are
	// dropped too: their upstream definition is not the approved one.
	keep := func(tool string) bool {
		return !rt.server.Held(tool) && g.policy.Allowed(p, rt.server.Path, "tools/call", tool)
	}
	resp.Header.Del("Content-Length") // the filtered body may be shorter
	f := &toolsFilter{keep: keep, ids: ids}
	var rd io.Reader
	if isEventStream(resp.Header) {
		rd = &sseFilter{src: bufio.NewReaderSize(resp.Body, 32<<10), f: f}
	} else {
		rd = &jsonFilter{src: resp.Body, f: f}
	}
	return struct {
		io.Reader
		io.Closer
	}{rd, resp.Body}
}

func compactID(id json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, id) != nil {
		return string(id)
	}
	return b.String()
}

// toolsFilter rewrites JSON-RPC responses that hold a tools/list result.
type toolsFilter struct {
	keep func(tool string) bool
	ids  map[string]bool // responses to these ids only; nil: any tools/list-shaped result
}

// rewrite returns msg (one JSON-RPC message or a batch) with the tools
// keep refuses dropped, or msg itself, unchanged byte for byte, when
// nothing is dropped or it is not JSON-RPC.
func (f *toolsFilter) rewrite(msg []byte) []byte {
	t := bytes.TrimSpace(msg)
	if len(t) == 0 {
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
	if f.ids != nil && !f.ids[compactID(obj["id"])] {
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

// jsonFilter filters a whole application/json response.
type jsonFilter struct {
	src  io.Reader
	f    *toolsFilter
	out  *bytes.Reader
	err  error
	done bool
}

func (j *jsonFilter) Read(p []byte) (int, error) {
	if !j.done {
		j.done = true
		b, err := io.ReadAll(io.LimitReader(j.src, maxFilteredBody+1))
		switch {
		case err != nil:
			j.err = err
		case len(b) > maxFilteredBody:
			j.err = errors.New("relay: tools/list response too large to filter")
		default:
			j.out = bytes.NewReader(j.f.rewrite(b))
		}
	}
	if j.err != nil {
		return 0, j.err
	}
	return j.out.Read(p)
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
