package registry

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeStored is the fast path of UnmarshalStorage. Start-up decodes every
// stored server, and encoding/json spent most of that time checking each
// document whole before decoding it, then walking every tool schema once
// more to copy it as a RawMessage: 3.4 s of a 4.5 s start with 10,000
// servers. This decoder walks a document once.
//
// It gives exactly what the encoding/json decode of UnmarshalStorage gives,
// or ok == false, and the caller decodes the slow way: it bails out on
// anything it does not follow exactly (an escaped key, a key that only
// matches a field case-insensitively, a value of an unexpected type, a
// number that is not a plain integer, invalid UTF-8, the state fields of
// the public view). Like SkipJSONValue, it expects valid JSON, which every
// stored document is (MarshalStorage wrote it): a value it copies whole (a
// schema, an unknown field) is not validated.
func decodeStored(b []byte) (*Server, bool) {
	d := &storedDecoder{b: b}
	s := d.server()
	if !d.ok() {
		return nil, false
	}
	return s, true
}

// storedDecoder walks one document; failed records that it gave up.
type storedDecoder struct {
	b      []byte
	i      int
	failed bool
}

func (d *storedDecoder) ok() bool { return !d.failed }

func (d *storedDecoder) fail() { d.failed = true }

func (d *storedDecoder) space() { d.i = SkipJSONSpace(d.b, d.i) }

// next returns the next non-space byte without consuming it (0 at the end).
func (d *storedDecoder) next() byte {
	d.space()
	if d.i >= len(d.b) {
		return 0
	}
	return d.b[d.i]
}

// consume takes c as the next non-space byte, or fails.
func (d *storedDecoder) consume(c byte) bool {
	if d.next() != c {
		d.fail()
		return false
	}
	d.i++
	return true
}

// null consumes a null literal when one comes next.
func (d *storedDecoder) null() bool {
	if d.next() == 'n' && bytes.HasPrefix(d.b[d.i:], []byte("null")) {
		d.i += 4
		return true
	}
	return false
}

// object calls field for each key of the object that comes next, with the
// decoder placed at the key's value; field must consume the value. A null
// object calls nothing. A key with an escape fails the decode.
func (d *storedDecoder) object(field func(key []byte)) {
	if d.null() {
		return
	}
	if !d.consume('{') {
		return
	}
	if d.next() == '}' {
		d.i++
		return
	}
	for !d.failed {
		key, ok := d.key()
		if !ok || !d.consume(':') {
			d.fail()
			return
		}
		field(key)
		if d.failed {
			return
		}
		switch d.next() {
		case ',':
			d.i++
		case '}':
			d.i++
			return
		default:
			d.fail()
		}
	}
}

// array calls elem for each element of the array that comes next; elem
// must consume the element. It reports false for null and after a failure.
func (d *storedDecoder) array(elem func()) bool {
	if d.null() {
		return false
	}
	if !d.consume('[') {
		return false
	}
	if d.next() == ']' {
		d.i++
		return true
	}
	for !d.failed {
		elem()
		if d.failed {
			return false
		}
		switch d.next() {
		case ',':
			d.i++
		case ']':
			d.i++
			return true
		default:
			d.fail()
		}
	}
	return false
}

// key returns an object key that has no escapes and is valid UTF-8 (as
// encoding/json would decode it).
func (d *storedDecoder) key() ([]byte, bool) {
	if d.next() != '"' {
		return nil, false
	}
	start := d.i + 1
	ascii := true
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			if !ascii && !utf8.Valid(d.b[start:j]) {
				return nil, false
			}
			d.i = j + 1
			return d.b[start:j], true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// str decodes the string (or null, which leaves *dst alone, as
// encoding/json does) that comes next into *dst.
func (d *storedDecoder) str(dst *string) {
	if d.null() {
		return
	}
	if d.next() != '"' {
		d.fail()
		return
	}
	start := d.i + 1
	ascii := true
	for j := start; j < len(d.b); j++ {
		c := d.b[j]
		switch {
		case c == '"':
			if !ascii && !utf8.Valid(d.b[start:j]) {
				d.fail() // encoding/json replaces invalid bytes: let it
				return
			}
			*dst = string(d.b[start:j])
			d.i = j + 1
			return
		case c == '\\':
			// Escapes: descriptions often hold \n, and encoding/json
			// writes <, > and & as \u003c and so on.
			end := SkipJSONValue(d.b, d.i)
			v, ok := unquote(d.b[d.i+1 : end-1])
			if !ok {
				d.fail()
				return
			}
			*dst = v
			d.i = end
			return
		case c < 0x20:
			d.fail()
			return
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	d.fail()
}

// optStr decodes a string or null into a pointer, as encoding/json does
// for a *string field.
func (d *storedDecoder) optStr(dst **string) {
	if d.null() {
		*dst = nil
		return
	}
	var s string
	d.str(&s)
	*dst = &s
}

// strs decodes an array of strings (null: nil; [] : empty, not nil).
func (d *storedDecoder) strs(dst *[]string) {
	out := []string{}
	if !d.array(func() {
		if d.next() != '"' {
			d.fail() // a null element would be "" in encoding/json: rare, let it
			return
		}
		var s string
		d.str(&s)
		out = append(out, s)
	}) {
		if !d.failed {
			*dst = nil
		}
		return
	}
	*dst = out
}

// integer decodes a JSON integer into an int (null leaves *dst alone).
func (d *storedDecoder) integer(dst *int) {
	if d.null() {
		return
	}
	d.space()
	start := d.i
	j := start
	if j < len(d.b) && d.b[j] == '-' {
		j++
	}
	digits := j
	for j < len(d.b) && d.b[j] >= '0' && d.b[j] <= '9' {
		j++
	}
	// JSON allows no leading zeros; a fraction or exponent would be an
	// error for an int field in encoding/json: both go the slow way.
	if j == digits || (d.b[digits] == '0' && j-digits > 1) || (j < len(d.b) && (d.b[j] == '.' || d.b[j] == 'e' || d.b[j] == 'E')) {
		d.fail()
		return
	}
	n, err := strconv.ParseInt(string(d.b[start:j]), 10, strconv.IntSize)
	if err != nil {
		d.fail()
		return
	}
	*dst = int(n)
	d.i = j
}

// boolean decodes true or false (null leaves *dst alone).
func (d *storedDecoder) boolean(dst *bool) {
	if d.null() {
		return
	}
	d.space()
	switch {
	case bytes.HasPrefix(d.b[d.i:], []byte("true")):
		*dst = true
		d.i += 4
	case bytes.HasPrefix(d.b[d.i:], []byte("false")):
		*dst = false
		d.i += 5
	default:
		d.fail()
	}
}

// raw returns a copy of the value that comes next, as encoding/json fills a
// RawMessage (null included, as the bytes "null").
func (d *storedDecoder) raw() json.RawMessage {
	d.space()
	if d.i >= len(d.b) {
		d.fail()
		return nil
	}
	end := SkipJSONValue(d.b, d.i)
	if end <= d.i || end > len(d.b) {
		d.fail()
		return nil
	}
	v := bytes.Clone(d.b[d.i:end])
	d.i = end
	return v
}

// skip steps over the value that comes next.
func (d *storedDecoder) skip() {
	d.space()
	end := SkipJSONValue(d.b, d.i)
	if end <= d.i {
		d.fail()
		return
	}
	d.i = end
}

// unknown handles a key no field of the object names exactly: encoding/json
// would still match it to a field case-insensitively, so such a key goes
// the slow way; any other is skipped by the caller.
func (d *storedDecoder) unknown(key []byte, fields ...string) bool {
	for _, f := range fields {
		if strings.EqualFold(string(key), f) {
			d.fail()
			return false
		}
	}
	return true
}

var (
	toolFields = []string{"name", "parsed_description", "schema"}
	descFields = []string{"main", "args", "returns", "raises"}
)

// tools decodes an array of tools (null: nil).
func (d *storedDecoder) tools(dst *[]Tool) {
	out := []Tool{}
	if !d.array(func() {
		if d.next() != '{' {
			d.fail() // a null tool would be a zero Tool: rare, let it
			return
		}
		var t Tool
		d.object(func(key []byte) {
			switch string(key) {
			case "name":
				d.str(&t.Name)
			case "parsed_description":
				d.object(func(key []byte) {
					pd := &t.ParsedDescription
					switch string(key) {
					case "main":
						d.optStr(&pd.Main)
					case "args":
						d.optStr(&pd.Args)
					case "returns":
						d.optStr(&pd.Returns)
					case "raises":
						d.optStr(&pd.Raises)
					default:
						if d.unknown(key, descFields...) {
							d.skip()
						}
					}
				})
			case "schema":
				t.Schema = d.raw()
			default:
				if d.unknown(key, toolFields...) {
					d.skip()
				}
			}
		})
		out = append(out, t)
	}) {
		if !d.failed {
			*dst = nil
		}
		return
	}
	*dst = out
}

// headers decodes the headers array: one object per entry, each of whose
// keys is a header. A key repeated in one object counts once, with its last
// value, as in the map encoding/json fills.
func (d *storedDecoder) headers(dst *[]Header) {
	var out []Header
	d.array(func() {
		first := len(out)
		d.object(func(key []byte) {
			var v string
			if d.null() {
				v = "" // a null map value is the zero value
			} else {
				d.str(&v)
			}
			for k := first; k < len(out); k++ {
				if out[k].Name == string(key) {
					out[k].Value = NewSecret(v)
					return
				}
			}
			out = append(out, Header{Name: string(key), Value: NewSecret(v)})
		})
	})
	*dst = out
}

// server decodes the whole document.
func (d *storedDecoder) server() *Server {
	s := &Server{}
	var healthCheck *bool
	var interval string
	if d.next() != '{' {
		d.fail()
		return nil
	}
	d.object(func(key []byte) {
		switch string(key) {
		case "server_name":
			d.str(&s.ServerName)
		case "description":
			d.str(&s.Description)
		case "path":
			d.str(&s.Path)
		case "proxy_pass_url":
			d.str(&s.ProxyPassURL)
		case "auth_provider":
			d.str(&s.AuthProvider)
		case "auth_type":
			d.str(&s.AuthType)
		case "supported_transports":
			d.strs(&s.SupportedTransports)
		case "tags":
			d.strs(&s.Tags)
		case "headers":
			d.headers(&s.Headers)
		case "num_tools":
			d.integer(&s.NumTools)
		case "num_stars":
			d.integer(&s.NumStars)
		case "is_python":
			d.boolean(&s.IsPython)
		case "license":
			d.str(&s.License)
		case "tool_list":
			d.tools(&s.ToolList)
		case "health_check":
			if d.null() {
				healthCheck = nil
				return
			}
			var v bool
			d.boolean(&v)
			healthCheck = &v
		case "health_check_interval":
			d.str(&interval)
		case "pin_tools":
			d.boolean(&s.PinTools)
		case "pending_tool_changes":
			d.tools(&s.PendingTools)
		case "enabled", "created_at", "updated_at":
			// State of the public view, never stored (stores keep it in
			// columns); encoding/json would check the timestamps.
			d.fail()
		default:
			for f := range knownFields {
				if strings.EqualFold(string(key), f) {
					d.fail()
					return
				}
			}
			v := d.raw()
			if s.Extra == nil {
				s.Extra = map[string]json.RawMessage{}
			}
			s.Extra[string(key)] = v
		}
	})
	if d.failed {
		return nil
	}
	if d.space(); d.i != len(d.b) {
		d.fail() // trailing data: encoding/json refuses it
		return nil
	}
	s.SkipHealthCheck = healthCheck != nil && !*healthCheck
	s.HealthCheckInterval, _ = time.ParseDuration(interval)
	return s
}

// unquote decodes the inside of a JSON string literal that has escapes, as
// encoding/json does: a \u escape of a lone surrogate becomes U+FFFD. It
// reports false for what encoding/json would refuse or alter (a bad escape,
// a control character, invalid UTF-8).
func unquote(b []byte) (string, bool) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\\':
			if i+1 >= len(b) {
				return "", false
			}
			switch b[i+1] {
			case '"', '\\', '/':
				out = append(out, b[i+1])
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hex4(b[i+2:])
				if r < 0 {
					return "", false
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
						if r2 := hex4(b[i+2:]); r2 >= 0 {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								out = utf8.AppendRune(out, dec)
								i += 6
								continue
							}
						}
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
				continue
			default:
				return "", false
			}
			i += 2
		case c < 0x20:
			return "", false
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return "", false
			}
			out = append(out, b[i:i+size]...)
			i += size
		}
	}
	return string(out), true
}

// hex4 decodes the 4 hex digits of a \u escape, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}
