package gateway

import (
	"strconv"
	"unicode/utf8"
)

// appendJSON appends l as encoding/json encodes it (same bytes: field
// order, HTML escaping), without reflection: list_services encodes 10,000
// summaries per call.
func (l serviceList) appendJSON(b []byte) []byte {
	b = append(b, `{"services":[`...)
	for i := range l.Services {
		if i > 0 {
			b = append(b, ',')
		}
		b = l.Services[i].appendJSON(b)
	}
	b = append(b, `],"total_count":`...)
	b = strconv.AppendInt(b, int64(l.TotalCount), 10)
	return append(b, '}')
}

func (s *serviceSummary) appendJSON(b []byte) []byte {
	b = append(b, `{"server_name":`...)
	b = appendJSONString(b, s.ServerName)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, s.Path)
	b = append(b, `,"description":`...)
	b = appendJSONString(b, s.Description)
	b = append(b, `,"tags":`...)
	b = appendJSONStrings(b, s.Tags)
	b = append(b, `,"enabled":`...)
	b = strconv.AppendBool(b, s.Enabled)
	b = append(b, `,"health_status":`...)
	b = appendJSONString(b, s.HealthStatus)
	b = append(b, `,"last_checked_iso":`...)
	b = appendJSONString(b, s.LastCheckedISO)
	b = append(b, `,"num_tools":`...)
	b = strconv.AppendInt(b, int64(s.NumTools), 10)
	b = append(b, `,"supported_transports":`...)
	b = appendJSONStrings(b, s.SupportedTransports)
	b = append(b, `,"auth_provider":`...)
	b = appendJSONString(b, s.AuthProvider)
	b = append(b, `,"auth_type":`...)
	b = appendJSONString(b, s.AuthType)
	return append(b, '}')
}

func appendJSONStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
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
