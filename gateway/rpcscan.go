package gateway

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/mcpgw/mcpgw/registry"
)

// scanRPC reads what the relay needs from a JSON-RPC body — each message's
// jsonrpc version, id, method and params.name — without decoding the rest:
// arguments and _meta are skipped, not built. The body must already be valid
// JSON (validJSON), which scanRPC relies on to skip values by brackets.
// It reads the same version, id, method and name as decoding with
// encoding/json, and refuses a message that gives one of them twice
// (scanMessage says why).
func scanRPC(body []byte) ([]rpcMessage, error) {
	i := registry.SkipJSONSpace(body, 0)
	if i == len(body) {
		return nil, errors.New("empty body")
	}
	var msgs []rpcMessage
	switch body[i] {
	case '{':
		msgs = make([]rpcMessage, 1)
		if _, err := scanMessage(body, i, &msgs[0]); err != nil {
			return nil, err
		}
	case '[':
		i = registry.SkipJSONSpace(body, i+1)
		for i < len(body) && body[i] != ']' {
			if body[i] != '{' {
				return nil, errors.New("batch element is not an object")
			}
			msgs = append(msgs, rpcMessage{})
			next, err := scanMessage(body, i, &msgs[len(msgs)-1])
			if err != nil {
				return nil, err
			}
			i = registry.SkipJSONSpace(body, next)
			if i < len(body) && body[i] == ',' {
				i = registry.SkipJSONSpace(body, i+1)
			}
		}
		if len(msgs) == 0 {
			return nil, errors.New("empty batch")
		}
	default:
		return nil, errors.New("body is not a JSON-RPC object or batch")
	}
	for _, m := range msgs {
		if m.JSONRPC != "2.0" {
			return nil, errors.New(`"jsonrpc" must be "2.0"`)
		}
		if m.Method == "" && !bool(m.Result) && !bool(m.Error) {
			return nil, errors.New("message has no method, result or error")
		}
	}
	return msgs, nil
}

// scanMessage reads one message object starting at body[i] == '{' into m
// and returns the index after its closing brace.
//
// Members are matched as encoding/json matches them to fields: exactly,
// else case-insensitively (Unicode folding, so "ſ" stands for "s"). A Go
// upstream reads "METHOD" as the method, and the relay must judge the
// message the upstream will run. A member the relay reads may appear only
// once: parsers disagree on which duplicate wins (encoding/json and
// JSON.parse take the last, others the first), and a message that reads
// as tools/list here must not read as tools/call upstream.
func scanMessage(body []byte, i int, m *rpcMessage) (int, error) {
	var o objectScan
	o.start(body, i)
	var seen [len(rpcMembers)]bool
	for o.next() {
		k := memberIndex(o.key, rpcMembers[:])
		if k < 0 {
			continue
		}
		if seen[k] {
			return 0, errors.New(`duplicate "` + rpcMembers[k] + `" member`)
		}
		seen[k] = true
		v := o.value
		var err error
		switch rpcMembers[k] {
		case "jsonrpc":
			err = scanString(v, &m.JSONRPC, "jsonrpc")
		case "method":
			err = scanString(v, &m.Method, "method")
		case "id":
			m.ID = v
		case "result":
			m.Result = true
		case "error":
			m.Error = true
		case "params":
			err = scanParams(v, m)
		}
		if err != nil {
			return 0, err
		}
	}
	return o.end, o.err
}

// rpcMembers are the members of a message the relay reads.
var rpcMembers = [...]string{"jsonrpc", "method", "id", "params", "result", "error"}

var nameMember = []string{"name"}

// scanParams reads params.name, under the same matching rules as the
// message's members.
func scanParams(v []byte, m *rpcMessage) error {
	if len(v) == 0 || v[0] != '{' {
		return nil
	}
	var p objectScan
	p.start(v, 0)
	seen := false
	for p.next() {
		if memberIndex(p.key, nameMember) < 0 {
			continue
		}
		if seen {
			return errors.New(`duplicate "params.name" member`)
		}
		seen = true
		if len(p.value) > 0 && p.value[0] == '"' {
			if err := scanString(p.value, &m.Params.Name, "params.name"); err != nil {
				return err
			}
		}
	}
	return p.err
}

// memberIndex is the index in names of the member key stands for, or -1.
func memberIndex(key []byte, names []string) int {
	for i, n := range names {
		if string(key) == n {
			return i
		}
	}
	for i, n := range names {
		if bytes.EqualFold(key, []byte(n)) {
			return i
		}
	}
	return -1
}

// objectScan walks the members of a valid JSON object, one key and raw
// value per call of next, without a closure per object (a closure that
// writes into the message would move the message to the heap).
type objectScan struct {
	b          []byte
	i          int
	key, value []byte
	end        int // the index after the closing brace, once next is false
	err        error
	scratch    []byte // the unescaped key, when it had escapes
}

func (o *objectScan) start(b []byte, i int) {
	o.b, o.i = b, i
	if i >= len(b) || b[i] != '{' {
		o.err = errors.New("not an object")
		o.i = len(b)
		return
	}
	o.i = registry.SkipJSONSpace(b, i+1)
}

func (o *objectScan) next() bool {
	b, i := o.b, o.i
	if o.err != nil || i >= len(b) || b[i] == '}' {
		o.end = i + 1
		return false
	}
	ks := i
	ke := registry.SkipJSONValue(b, i)
	o.key = b[ks+1 : ke-1]
	i = registry.SkipJSONSpace(b, ke)
	i = registry.SkipJSONSpace(b, i+1) // the ':'
	vs := i
	ve := registry.SkipJSONValue(b, i)
	o.value = b[vs:ve]
	if !plainASCII(o.key) {
		var k string
		if err := json.Unmarshal(b[ks:ke], &k); err != nil {
			o.err = err
			o.end = len(b)
			return false
		}
		o.key = append(o.scratch[:0], k...)
		o.scratch = o.key
	}
	i = registry.SkipJSONSpace(b, ve)
	if i < len(b) && b[i] == ',' {
		i = registry.SkipJSONSpace(b, i+1)
	}
	o.i = i
	return true
}

// scanString sets *dst from the JSON string v. The protocol's version and
// the MCP method names come up on every call; they are shared constants
// rather than a fresh copy each time.
func scanString(v []byte, dst *string, field string) error {
	if len(v) < 2 || v[0] != '"' {
		if string(v) == "null" {
			return nil
		}
		return errors.New(`"` + field + `" must be a string`)
	}
	raw := v[1 : len(v)-1]
	if !plainASCII(raw) {
		// Escapes to undo, or bytes that encoding/json would turn into
		// U+FFFD when they are not UTF-8: decode as an upstream would.
		return json.Unmarshal(v, dst)
	}
	if s, ok := internedNames[string(raw)]; ok {
		*dst = s
		return nil
	}
	*dst = string(raw)
	return nil
}

// internedNames holds "2.0" and every method name metrics know.
var internedNames = func() map[string]string {
	m := map[string]string{"2.0": "2.0"}
	for k := range knownMethods {
		m[k] = k
	}
	return m
}()

// plainASCII reports whether b has neither escapes nor bytes above 0x7f.
func plainASCII(b []byte) bool {
	for _, c := range b {
		if c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}

// maxJSONDepth is encoding/json's nesting limit: json.Valid refuses a
// value nested deeper, and so does validJSON.
const maxJSONDepth = 10000

// validJSON reports whether b is exactly one JSON value with optional
// whitespace around it: json.Valid's answer (the differential fuzz test
// holds it to that), in one pass without encoding/json's per-byte state
// machine, which cost more than the rest of the relay's reading of a body.
// It keeps the open arrays and objects on a stack of its own rather than
// recursing, so a deeply nested body costs bytes, not goroutine stack.
func validJSON(b []byte) bool {
	var buf [64]byte
	open := buf[:0] // '{' or '[' for each enclosing value
	i := registry.SkipJSONSpace(b, 0)
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if len(open) == maxJSONDepth {
				return false
			}
			open = append(open, c)
			i = registry.SkipJSONSpace(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				open = open[:len(open)-1]
				i++
				break
			}
			if c == '{' {
				if i = validMemberName(b, i); i < 0 {
					return false
				}
			}
			continue
		case c == '"':
			i = validString(b, i)
		case c == 't':
			i = validLiteral(b, i, "true")
		case c == 'f':
			i = validLiteral(b, i, "false")
		case c == 'n':
			i = validLiteral(b, i, "null")
		case c == '-' || c >= '0' && c <= '9':
			i = validNumber(b, i)
		default:
			return false
		}
		// A value ended just before b[i]: close containers, or go on to
		// the next element or member.
		for {
			if i < 0 {
				return false
			}
			i = registry.SkipJSONSpace(b, i)
			if len(open) == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			top := open[len(open)-1]
			if b[i] == top+2 {
				open = open[:len(open)-1]
				i++
				continue
			}
			if b[i] != ',' {
				return false
			}
			i = registry.SkipJSONSpace(b, i+1)
			if top == '{' {
				i = validMemberName(b, i)
				if i < 0 {
					return false
				}
			}
			break
		}
	}
}

// validMemberName checks `"name" :` at b[i] and returns the index of the
// member's value, or -1.
func validMemberName(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = validString(b, i); i < 0 {
		return -1
	}
	i = registry.SkipJSONSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return registry.SkipJSONSpace(b, i+1)
}

// validString checks the string at b[i] == '"'. Like encoding/json it
// refuses control characters and unknown escapes and lets any other byte
// through, invalid UTF-8 included.
func validString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

func validLiteral(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// validNumber checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
func validNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
