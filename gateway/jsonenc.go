package gateway

import (
	"bytes"
	"strconv"
	"unicode/utf8"
)

// jsonPair writes a JSON value and, alongside, the same JSON as the inside
// of a JSON string literal (quotes and backslashes escaped): list_services
// sends its answer both as structuredContent and as text, and escaping 3 MB
// afterwards byte by byte cost more than writing both at once, where every
// piece is known.
type jsonPair struct {
	raw, quoted []byte
}

// jsonLit is a piece of JSON syntax in both forms.
type jsonLit struct{ raw, quoted string }

func lit(raw string) jsonLit {
	return jsonLit{raw: raw, quoted: string(escapeQuotes(nil, []byte(raw)))}
}

// escapeQuotes appends b with a backslash before each quote and backslash.
func escapeQuotes(dst, b []byte) []byte {
	for _, c := range b {
		if c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return dst
}

func (p *jsonPair) lit(l jsonLit) {
	p.raw = append(p.raw, l.raw...)
	p.quoted = append(p.quoted, l.quoted...)
}

// str writes s as a JSON string (as encoding/json writes it) in both forms.
func (p *jsonPair) str(s string) {
	start := len(p.raw)
	p.raw = appendJSONString(p.raw, s)
	enc := p.raw[start+1 : len(p.raw)-1] // inside the quotes
	p.quoted = append(p.quoted, '\\', '"')
	if bytes.IndexByte(enc, '\\') < 0 && bytes.IndexByte(enc, '"') < 0 {
		p.quoted = append(p.quoted, enc...)
	} else {
		p.quoted = escapeQuotes(p.quoted, enc)
	}
	p.quoted = append(p.quoted, '\\', '"')
}

// plain writes JSON that holds no quote or backslash (numbers, booleans).
func (p *jsonPair) plain(b []byte) {
	p.raw = append(p.raw, b...)
	p.quoted = append(p.quoted, b...)
}

func (p *jsonPair) int(n int) {
	start := len(p.raw)
	p.raw = strconv.AppendInt(p.raw, int64(n), 10)
	p.quoted = append(p.quoted, p.raw[start:]...)
}

func (p *jsonPair) bool(v bool) {
	if v {
		p.plain([]byte("true"))
	} else {
		p.plain([]byte("false"))
	}
}

func (p *jsonPair) strs(ss []string) {
	if ss == nil {
		p.plain([]byte("null"))
		return
	}
	p.plain([]byte{'['})
	for i, s := range ss {
		if i > 0 {
			p.plain([]byte{','})
		}
		p.str(s)
	}
	p.plain([]byte{']'})
}

var (
	litServicesOpen  = lit(`{"services":[`)
	litServicesClose = lit(`],"total_count":`)
	litServerName    = lit(`{"server_name":`)
	litPath          = lit(`,"path":`)
	litDescription   = lit(`,"description":`)
	litTags          = lit(`,"tags":`)
	litEnabled       = lit(`,"enabled":`)
	litHealthStatus  = lit(`,"health_status":`)
	litLastChecked   = lit(`,"last_checked_iso":`)
	litNumTools      = lit(`,"num_tools":`)
	litTransports    = lit(`,"supported_transports":`)
	litAuthProvider  = lit(`,"auth_provider":`)
	litAuthType      = lit(`,"auth_type":`)
)

// encodeBoth returns l as JSON (as encoding/json encodes it) and that JSON
// as a JSON string literal, the two forms of list_services' result.
func (l serviceList) encodeBoth() (raw, text []byte) {
	p := &jsonPair{raw: make([]byte, 0, 320*len(l.Services)+64)}
	p.quoted = append(make([]byte, 0, cap(p.raw)*5/4), '"')
	l.encode(p)
	return p.raw, append(p.quoted, '"')
}

// encode writes l as encoding/json encodes it (same bytes: field order,
// HTML escaping) into p, without reflection: list_services encodes 10,000
// summaries per call.
func (l serviceList) encode(p *jsonPair) {
	p.lit(litServicesOpen)
	for i := range l.Services {
		if i > 0 {
			p.plain([]byte{','})
		}
		l.Services[i].encode(p)
	}
	p.lit(litServicesClose)
	p.int(l.TotalCount)
	p.plain([]byte{'}'})
}

func (s *serviceSummary) encode(p *jsonPair) {
	p.lit(litServerName)
	p.str(s.ServerName)
	p.lit(litPath)
	p.str(s.Path)
	p.lit(litDescription)
	p.str(s.Description)
	p.lit(litTags)
	p.strs(s.Tags)
	p.lit(litEnabled)
	p.bool(s.Enabled)
	p.lit(litHealthStatus)
	p.str(s.HealthStatus)
	p.lit(litLastChecked)
	p.str(s.LastCheckedISO)
	p.lit(litNumTools)
	p.int(s.NumTools)
	p.lit(litTransports)
	p.strs(s.SupportedTransports)
	p.lit(litAuthProvider)
	p.str(s.AuthProvider)
	p.lit(litAuthType)
	p.str(s.AuthType)
	p.plain([]byte{'}'})
}

// appendJSONString appends s as a JSON string exactly as encoding/json
// writes it: <, > and & escaped, invalid UTF-8 replaced by U+FFFD, U+2028
// and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
