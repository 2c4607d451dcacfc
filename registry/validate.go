package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors of the registry, matched with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrInvalid  = errors.New("invalid registration")
)

// Limits of the registration format.
const (
	MaxServerNameLen  = 128
	MaxDescriptionLen = 4096
	MaxPathLen        = 200
	MaxTagLen         = 64
	MaxTags           = 64
	MaxTools          = 10000
)

// ReservedPaths are first path segments that belong to the gateway itself.
var ReservedPaths = []string{"mcpgw", "api", "metrics", "healthz", "readyz", ".well-known", "ui", "static"}

// Problem is one reason a registration was refused.
type Problem struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func (p Problem) String() string {
	if p.Field == "" {
		return p.Reason
	}
	return p.Field + ": " + p.Reason
}

// ValidationError lists every problem of a refused registration at once.
// It matches ErrInvalid with errors.Is.
type ValidationError struct{ Problems []Problem }

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid registration: " + strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

type problems []Problem

func (ps *problems) add(field, format string, args ...any) {
	*ps = append(*ps, Problem{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// required reports field as missing unless a problem (such as a wrong type)
// was already reported for it: one field, one reason.
func (ps *problems) required(field string) {
	for _, p := range *ps {
		if p.Field == field {
			return
		}
	}
	ps.add(field, "is required")
}

// Parse decodes, validates and normalizes one registration document
// (SPEC section 2). It returns warnings for accepted oddities (unknown fields,
// a num_tools that disagrees with tool_list) and a *ValidationError listing
// every problem when the document is refused.
func Parse(data []byte) (*Server, []string, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, &ValidationError{Problems: []Problem{{Reason: "body is empty; send a JSON object"}}}
		}
		return nil, nil, &ValidationError{Problems: []Problem{{Reason: "body is not a JSON object: " + jsonErrText(err)}}}
	}
	if dec.More() {
		return nil, nil, &ValidationError{Problems: []Problem{{Reason: "body holds more than one JSON value"}}}
	}
	if raw == nil {
		return nil, nil, &ValidationError{Problems: []Problem{{Reason: "body is not a JSON object"}}}
	}
	var ps problems
	var warnings []string
	s := &Server{Enabled: true}

	s.ServerName = strings.TrimSpace(str(raw, "server_name", &ps))
	switch n := utf8.RuneCountInString(s.ServerName); {
	case n == 0:
		ps.required("server_name")
	case n > MaxServerNameLen:
		ps.add("server_name", "is %d characters long; the limit is %d", n, MaxServerNameLen)
	}
	s.Description = str(raw, "description", &ps)
	if n := utf8.RuneCountInString(s.Description); n > MaxDescriptionLen {
		ps.add("description", "is %d characters long; the limit is %d", n, MaxDescriptionLen)
	}
	s.AuthProvider = strings.ToLower(strings.TrimSpace(str(raw, "auth_provider", &ps)))
	if len(s.AuthProvider) > 64 {
		ps.add("auth_provider", "is longer than 64 characters")
	}
	s.AuthType = strings.ToLower(strings.TrimSpace(str(raw, "auth_type", &ps)))
	switch s.AuthType {
	case "":
		s.AuthType = AuthTypeNone
	case AuthTypeNone, AuthTypeOAuth, AuthTypeAPIKey, AuthTypePassthrough:
	default:
		ps.add("auth_type", "%q is not one of none, oauth, api-key, passthrough", s.AuthType)
	}
	s.Path = validatePath(str(raw, "path", &ps), s.AuthProvider == ProviderBedrockAgentCore, &ps)
	s.ProxyPassURL = validateURL(str(raw, "proxy_pass_url", &ps), s.AuthProvider == ProviderBedrockAgentCore, &ps)
	s.SupportedTransports = validateTransports(strList(raw, "supported_transports", &ps), &ps)
	s.Tags = normalizeTags(strList(raw, "tags", &ps), &ps)
	s.Headers = validateHeaders(raw["headers"], &ps)
	s.ToolList = validateTools(raw["tool_list"], &ps)
	s.NumTools = integer(raw, "num_tools", &ps)
	s.NumStars = integer(raw, "num_stars", &ps)
	s.IsPython = boolean(raw, "is_python", false, &ps)
	s.Enabled = boolean(raw, "enabled", true, &ps)
	s.License = str(raw, "license", &ps)
	s.SkipHealthCheck = !boolean(raw, "health_check", true, &ps)
	s.HealthCheckInterval = interval(raw, "health_check_interval", &ps)
	s.PinTools = boolean(raw, "pin_tools", false, &ps)
	// pending_tool_changes is the gateway's state, never taken from input: a
	// registration states the approved tool_list.
	if _, ok := raw["tool_list"]; ok && s.NumTools != len(s.ToolList) {
		if s.NumTools != 0 {
			warnings = append(warnings, fmt.Sprintf("num_tools is %d but tool_list holds %d tools; using %d", s.NumTools, len(s.ToolList), len(s.ToolList)))
		}
		s.NumTools = len(s.ToolList)
	}
	s.Extra = unknownFields(raw)
	for _, k := range sortedKeys(s.Extra) {
		warnings = append(warnings, fmt.Sprintf("unknown field %q kept as is", k))
	}
	if len(ps) > 0 {
		return nil, nil, &ValidationError{Problems: ps}
	}
	return s, warnings, nil
}

func jsonErrText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v (at byte %d)", se, se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		article := "a "
		if strings.ContainsRune("aeiou", rune(te.Value[0])) {
			article = "an "
		}
		return "the top-level value is " + article + te.Value + ", not an object"
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "the JSON ends before it is complete"
	}
	return err.Error()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func isNull(v json.RawMessage) bool { return len(v) == 0 || string(v) == "null" }

func jsonType(v json.RawMessage) string {
	switch t := bytes.TrimSpace(v); {
	case len(t) == 0:
		return "nothing"
	case t[0] == '"':
		return "a string"
	case t[0] == '{':
		return "an object"
	case t[0] == '[':
		return "an array"
	case t[0] == 't' || t[0] == 'f':
		return "a boolean"
	case t[0] == 'n':
		return "null"
	default:
		return "a number"
	}
}

func str(raw map[string]json.RawMessage, field string, ps *problems) string {
	v, ok := raw[field]
	if !ok || isNull(v) {
		return ""
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		ps.add(field, "must be a string, not %s", jsonType(v))
	}
	return s
}

func strList(raw map[string]json.RawMessage, field string, ps *problems) []string {
	v, ok := raw[field]
	if !ok || isNull(v) {
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		ps.add(field, "must be an array of strings, not %s", jsonType(v))
		return nil
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err != nil {
			ps.add(fmt.Sprintf("%s[%d]", field, i), "must be a string, not %s", jsonType(it))
			continue
		}
		out = append(out, s)
	}
	return out
}

func integer(raw map[string]json.RawMessage, field string, ps *problems) int {
	v, ok := raw[field]
	if !ok || isNull(v) {
		return 0
	}
	var n json.Number
	if err := json.Unmarshal(v, &n); err != nil {
		ps.add(field, "must be a whole number, not %s", jsonType(v))
		return 0
	}
	i, err := n.Int64()
	if err != nil || i < 0 || i > 1<<31 {
		ps.add(field, "must be a whole number from 0 to 2147483648, not %s", n)
		return 0
	}
	return int(i)
}

func boolean(raw map[string]json.RawMessage, field string, def bool, ps *problems) bool {
	v, ok := raw[field]
	if !ok || isNull(v) {
		return def
	}
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		ps.add(field, "must be true or false, not %s", jsonType(v))
		return def
	}
	return b
}

// Bounds of a per-server health check interval.
const (
	MinHealthCheckInterval = time.Second
	MaxHealthCheckInterval = 24 * time.Hour
)

// interval reads a duration given as a Go duration string ("45s", "5m") or
// a number of seconds.
func interval(raw map[string]json.RawMessage, field string, ps *problems) time.Duration {
	v, ok := raw[field]
	if !ok || isNull(v) {
		return 0
	}
	var d time.Duration
	var s string
	var n json.Number
	switch {
	case json.Unmarshal(v, &s) == nil:
		var err error
		if d, err = time.ParseDuration(strings.TrimSpace(s)); err != nil {
			ps.add(field, "%q is not a duration such as \"30s\" or \"5m\"", s)
			return 0
		}
	case json.Unmarshal(v, &n) == nil:
		f, err := n.Float64()
		if err != nil {
			ps.add(field, "%s is not a number of seconds", n)
			return 0
		}
		d = time.Duration(f * float64(time.Second))
	default:
		ps.add(field, "must be a duration such as \"30s\" or a number of seconds, not %s", jsonType(v))
		return 0
	}
	if d < MinHealthCheckInterval || d > MaxHealthCheckInterval {
		ps.add(field, "is %s; it must be between %s and %s", d, MinHealthCheckInterval, MaxHealthCheckInterval)
		return 0
	}
	return d
}

// PathKey is the canonical lookup key of a path: no leading or trailing
// slash, so "/a", "a/" and "/a/" name the same service.
func PathKey(p string) string { return strings.Trim(strings.TrimSpace(p), "/") }

func validatePath(p string, agentcore bool, ps *problems) string {
	key := PathKey(p)
	if key == "" {
		if strings.TrimSpace(p) == "" {
			ps.required("path")
		} else {
			ps.add("path", "%q is reserved for the gateway", p)
		}
		return ""
	}
	if len(key) > MaxPathLen {
		ps.add("path", "is longer than %d characters", MaxPathLen)
		return ""
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			ps.add("path", "%q has an empty, \".\" or \"..\" segment", p)
			return ""
		}
		for _, r := range seg {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
				ps.add("path", "%q may hold only lowercase letters, digits, '-', '_', '.' and '/' between segments", p)
				return ""
			}
		}
	}
	first, _, _ := strings.Cut(key, "/")
	for _, r := range ReservedPaths {
		if first == r {
			ps.add("path", "%q is reserved for the gateway", "/"+first)
			return ""
		}
	}
	if last := key[strings.LastIndexByte(key, '/')+1:]; last == "mcp" {
		ps.add("path", "%q may not end in /mcp: clients reach the service at <path>/mcp", p)
		return ""
	}
	if agentcore {
		return "/" + key + "/"
	}
	return "/" + key
}

func validateURL(u string, agentcore bool, ps *problems) string {
	u = strings.TrimSpace(u)
	if u == "" {
		ps.required("proxy_pass_url")
		return ""
	}
	parsed, err := url.Parse(u)
	if err != nil {
		if strings.Contains(u, "@") {
			// It may hold a password: describe the URL without echoing it.
			ps.add("proxy_pass_url", "is not a valid URL: %s", urlErrText(err))
			return ""
		}
		ps.add("proxy_pass_url", "%q is not a valid URL: %s", redactQuery(u), urlErrText(err))
		return ""
	}
	shown := redactQuery(u) // a key in the query is not echoed either
	switch {
	case parsed.User != nil:
		// Checked first so that no later message echoes the password.
		ps.add("proxy_pass_url", "must not hold credentials; put them in headers")
		return ""
	case parsed.Scheme != "http" && parsed.Scheme != "https":
		ps.add("proxy_pass_url", "%q must be an absolute http:// or https:// URL", shown)
		return ""
	case parsed.Fragment != "" || strings.Contains(u, "#"):
		ps.add("proxy_pass_url", "%q must not have a #fragment", shown)
		return ""
	}
	if parsed.Hostname() == "" {
		ps.add("proxy_pass_url", "%q has no host", shown)
		return ""
	}
	if !validHost(parsed.Hostname()) {
		ps.add("proxy_pass_url", "host %q is not a valid host name (replace any placeholder such as <YOUR-GATEWAY-ID>)", parsed.Hostname())
		return ""
	}
	if port := parsed.Port(); port != "" {
		var n int
		if _, err := fmt.Sscanf(port, "%d", &n); err != nil || n < 1 || n > 65535 {
			ps.add("proxy_pass_url", "port %q is out of range", port)
			return ""
		}
	}
	if agentcore {
		p := parsed.Path
		switch {
		case strings.HasSuffix(p, "/mcp/"):
			p = strings.TrimSuffix(p, "mcp/")
		case strings.HasSuffix(p, "/mcp"):
			p = strings.TrimSuffix(p, "mcp")
		}
		if !strings.HasSuffix(p, "/") {
			p += "/"
		}
		parsed.Path, parsed.RawPath = p, ""
		return parsed.String()
	}
	return parsed.String()
}

func urlErrText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// validHost accepts DNS names (RFC 1123 labels) and IP literals.
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if net.ParseIP(h) != nil {
		return true
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

func validateTransports(ts []string, ps *problems) []string {
	if len(ts) == 0 {
		return []string{TransportStreamableHTTP}
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		t = strings.ToLower(strings.TrimSpace(t))
		if t != TransportStreamableHTTP && t != TransportSSE {
			ps.add("supported_transports", "%q is not one of streamable-http, sse", t)
			continue
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

func normalizeTags(tags []string, ps *problems) []string {
	seen := map[string]bool{}
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		switch {
		case t == "":
			continue
		case utf8.RuneCountInString(t) > MaxTagLen:
			ps.add("tags", "tag %q is longer than %d characters", t, MaxTagLen)
			continue
		case seen[t]:
			continue
		}
		seen[t] = true
		out = append(out, t)
	}
	if len(out) > MaxTags {
		ps.add("tags", "holds %d tags; the limit is %d", len(out), MaxTags)
	}
	return out
}

// headersManagedByGateway may not be configured: the gateway or the HTTP
// stack sets them, and overriding them would break framing or sessions.
var headersManagedByGateway = map[string]bool{
	"host": true, "content-length": true, "transfer-encoding": true, "connection": true,
	"upgrade": true, "te": true, "trailer": true, "keep-alive": true, "proxy-connection": true,
	"mcp-session-id": true, "content-type": true, "accept": true, "x-authorization": true,
}

func validateHeaders(v json.RawMessage, ps *problems) []Header {
	if isNull(v) {
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		ps.add("headers", "must be an array of objects such as {\"Authorization\": \"Bearer $TOKEN\"}, not %s", jsonType(v))
		return nil
	}
	var out []Header
	for i, it := range items {
		field := fmt.Sprintf("headers[%d]", i)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(it, &m); err != nil || m == nil {
			ps.add(field, "must be an object of header name to value, not %s", jsonType(it))
			continue
		}
		for _, name := range sortedKeys(m) {
			var val string
			if err := json.Unmarshal(m[name], &val); err != nil {
				ps.add(field, "value of %q must be a string, not %s", name, jsonType(m[name]))
				continue
			}
			switch {
			case !validHeaderName(name):
				ps.add(field, "%q is not a valid header name", name)
			case headersManagedByGateway[strings.ToLower(name)]:
				ps.add(field, "%q is set by the gateway and cannot be configured", name)
			case strings.ContainsAny(val, "\r\n\x00"):
				// The value is a secret: name the header, never echo the value.
				ps.add(field, "value of %q holds a line break or NUL", name)
			default:
				out = append(out, Header{Name: name, Value: NewSecret(val)})
			}
		}
	}
	return out
}

func validHeaderName(n string) bool {
	if n == "" || len(n) > 256 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func validateTools(v json.RawMessage, ps *problems) []Tool {
	if isNull(v) {
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		ps.add("tool_list", "must be an array of tools, not %s", jsonType(v))
		return nil
	}
	if len(items) > MaxTools {
		ps.add("tool_list", "holds %d tools; the limit is %d", len(items), MaxTools)
		return nil
	}
	out := make([]Tool, 0, len(items))
	seen := map[string]bool{}
	for i, it := range items {
		field := fmt.Sprintf("tool_list[%d]", i)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(it, &m); err != nil || m == nil {
			ps.add(field, "must be an object, not %s", jsonType(it))
			continue
		}
		var t Tool
		var tps problems
		t.Name = strings.TrimSpace(str(m, "name", &tps))
		switch {
		case t.Name == "" && len(tps) == 0:
			tps.add("name", "is required")
		case len(t.Name) > 256:
			tps.add("name", "is longer than 256 characters")
		case seen[t.Name]:
			tps.add("name", "%q appears twice", t.Name)
		}
		seen[t.Name] = true
		if pd, ok := m["parsed_description"]; ok && !isNull(pd) {
			if err := json.Unmarshal(pd, &t.ParsedDescription); err != nil {
				tps.add("parsed_description", "must be an object of main, args, returns, raises strings")
			}
		} else if d := str(m, "description", &tps); d != "" {
			// MCP's own tools/list shape: accept its description as main.
			t.ParsedDescription.Main = &d
		}
		schema := m["schema"]
		if isNull(schema) {
			schema = m["inputSchema"]
		}
		if !isNull(schema) {
			if jsonType(schema) != "an object" {
				tps.add("schema", "must be a JSON Schema object, not %s", jsonType(schema))
			}
			t.Schema = append(json.RawMessage(nil), schema...)
		}
		for _, p := range tps {
			ps.add(field+"."+p.Field, "%s", p.Reason)
		}
		out = append(out, t)
	}
	return out
}
