// Package registry holds the server model of mcpgw: what a registered upstream
// MCP server is, how a registration is validated and normalized, the Store
// interface that persists servers, and the Service through which every
// surface (REST, CLI, MCP tools, UI) changes the registry.
package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"
)

// Known auth providers and types. Other auth_provider values are accepted as
// labels; auth_type is a closed set because it changes how requests are sent.
const (
	ProviderBedrockAgentCore = "bedrock-agentcore"

	AuthTypeNone        = "none"
	AuthTypeOAuth       = "oauth"
	AuthTypeAPIKey      = "api-key"
	AuthTypePassthrough = "passthrough"

	TransportStreamableHTTP = "streamable-http"
	TransportSSE            = "sse"
)

// Redacted is what every public view shows in place of a secret value.
const Redacted = "***"

// Secret holds a value that must never be printed: its String, GoString and
// JSON forms are all "***". Only Reveal returns the value, so code that leaks
// one has to say so by name.
type Secret struct{ v string }

// NewSecret wraps v.
func NewSecret(v string) Secret { return Secret{v: v} }

// Reveal returns the secret value; call it only where the value is sent.
func (s Secret) Reveal() string { return s.v }

// Expand returns the secret value with $VAR and ${VAR} replaced from the
// environment, as a header value is sent. The gateway's own settings
// (MCPGW_*: the session key, the store's URL and password, tokens) expand
// to nothing: whoever may register a server chooses where its headers go,
// and must not be able to send the gateway's secrets there.
func (s Secret) Expand() string {
	return os.Expand(s.v, func(name string) string {
		if strings.HasPrefix(strings.ToUpper(name), "MCPGW_") {
			return ""
		}
		return os.Getenv(name)
	})
}

// String implements fmt.Stringer without leaking the value.
func (s Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer without leaking the value (%#v).
func (s Secret) GoString() string { return Redacted }

// MarshalJSON renders the secret redacted.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText renders the secret redacted (used by loggers and encoders).
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// Header is one egress header of a server. Its value may hold $VAR or ${VAR}
// references that are expanded only when a request is sent.
type Header struct {
	Name  string
	Value Secret
}

// ParsedDescription is the seed format's description of a tool.
type ParsedDescription struct {
	Main    *string `json:"main"`
	Args    *string `json:"args"`
	Returns *string `json:"returns"`
	Raises  *string `json:"raises"`
}

// Tool is one tool of a server, as registered or as listed by the upstream.
// Schema is the tool's JSON Schema, kept byte for byte.
type Tool struct {
	Name              string            `json:"name"`
	ParsedDescription ParsedDescription `json:"parsed_description"`
	Schema            json.RawMessage   `json:"schema,omitempty"`
}

// Description returns the main description, or "" when there is none.
func (t Tool) Description() string {
	if t.ParsedDescription.Main == nil {
		return ""
	}
	return *t.ParsedDescription.Main
}

// Server is one registered upstream MCP server.
type Server struct {
	ServerName          string
	Description         string
	Path                string
	ProxyPassURL        string
	AuthProvider        string
	AuthType            string
	SupportedTransports []string
	Tags                []string
	Headers             []Header
	ToolList            []Tool
	NumTools            int
	NumStars            int
	IsPython            bool
	License             string
	// SkipHealthCheck is set by health_check: false, for upstreams without a
	// usable health path: the checker leaves them alone.
	SkipHealthCheck bool
	// HealthCheckInterval (health_check_interval) overrides the checker's
	// interval for this server; 0 means the checker's default.
	HealthCheckInterval time.Duration
	// PinTools (pin_tools: true) keeps the approved definitions of existing
	// tools when the upstream changes them, until an admin approves.
	PinTools bool
	// PendingTools are the upstream's changed definitions of tools of a
	// pinned server, held back until approved (state, not registration:
	// pending_tool_changes). A tool named here may not be called.
	PendingTools []Tool
	// Extra holds unknown registration fields, kept so they round-trip.
	Extra map[string]json.RawMessage

	Enabled   bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Passthrough reports whether the caller's Authorization header is forwarded
// to the upstream unchanged instead of being treated as gateway ingress.
func (s *Server) Passthrough() bool {
	return s.AuthProvider == ProviderBedrockAgentCore || s.AuthType == AuthTypePassthrough
}

// Clone returns a deep copy, so callers can never mutate a shared value.
func (s *Server) Clone() *Server {
	c := *s
	c.SupportedTransports = append([]string(nil), s.SupportedTransports...)
	c.Tags = append([]string(nil), s.Tags...)
	c.Headers = append([]Header(nil), s.Headers...)
	c.ToolList = append([]Tool(nil), s.ToolList...)
	c.PendingTools = append([]Tool(nil), s.PendingTools...)
	if s.Extra != nil {
		c.Extra = make(map[string]json.RawMessage, len(s.Extra))
		for k, v := range s.Extra {
			c.Extra[k] = v
		}
	}
	return &c
}

// document is the JSON shape of a server. Field order follows the seed's
// gateway-config.json so that output reads like the input.
type document struct {
	ServerName          string              `json:"server_name"`
	Description         string              `json:"description"`
	Path                string              `json:"path"`
	ProxyPassURL        string              `json:"proxy_pass_url"`
	AuthProvider        string              `json:"auth_provider,omitempty"`
	AuthType            string              `json:"auth_type"`
	SupportedTransports []string            `json:"supported_transports"`
	Tags                []string            `json:"tags"`
	Headers             []map[string]string `json:"headers,omitempty"`
	NumTools            int                 `json:"num_tools"`
	NumStars            int                 `json:"num_stars"`
	IsPython            bool                `json:"is_python"`
	License             string              `json:"license,omitempty"`
	ToolList            []Tool              `json:"tool_list"`
	HealthCheck         *bool               `json:"health_check,omitempty"`
	HealthCheckInterval string              `json:"health_check_interval,omitempty"`
	PinTools            bool                `json:"pin_tools,omitempty"`
	PendingTools        []Tool              `json:"pending_tool_changes,omitempty"`
	Enabled             *bool               `json:"enabled,omitempty"`
	CreatedAt           *time.Time          `json:"created_at,omitempty"`
	UpdatedAt           *time.Time          `json:"updated_at,omitempty"`
}

func (s *Server) document(reveal bool) document {
	d := document{
		ServerName: s.ServerName, Description: s.Description, Path: s.Path,
		ProxyPassURL: s.ProxyPassURL, AuthProvider: s.AuthProvider, AuthType: s.AuthType,
		SupportedTransports: s.SupportedTransports, Tags: s.Tags,
		NumTools: s.NumTools, NumStars: s.NumStars, IsPython: s.IsPython, License: s.License,
		ToolList: s.ToolList, PinTools: s.PinTools, PendingTools: s.PendingTools,
	}
	if !reveal {
		d.ProxyPassURL = redactQuery(d.ProxyPassURL)
	}
	if d.SupportedTransports == nil {
		d.SupportedTransports = []string{}
	}
	if d.Tags == nil {
		d.Tags = []string{}
	}
	if d.ToolList == nil {
		d.ToolList = []Tool{}
	}
	if s.SkipHealthCheck {
		off := false
		d.HealthCheck = &off
	}
	if s.HealthCheckInterval > 0 {
		d.HealthCheckInterval = s.HealthCheckInterval.String()
	}
	for _, h := range s.Headers {
		v := Redacted
		if reveal {
			v = h.Value.Reveal()
		}
		d.Headers = append(d.Headers, map[string]string{h.Name: v})
	}
	return d
}

// credentialStems mark query parameters that may carry a credential: some
// upstreams take their key in the URL (?api_key=...) rather than a header.
var credentialStems = []string{"key", "token", "secret", "passw", "auth", "sig", "credential", "session"}

// redactQuery is raw with the values of its credential-like query
// parameters shown as Redacted, the others and their order kept: every
// reader of the registry sees the URL, only the store keeps it whole.
func redactQuery(raw string) string {
	base, query, ok := strings.Cut(raw, "?")
	if !ok || query == "" {
		return raw
	}
	query, frag, hasFrag := strings.Cut(query, "#")
	params := strings.Split(query, "&")
	changed := false
	for i, kv := range params {
		k, _, hasValue := strings.Cut(kv, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		name = strings.ToLower(name)
		for _, stem := range credentialStems {
			if hasValue && strings.Contains(name, stem) {
				params[i], changed = k+"="+Redacted, true
				break
			}
		}
	}
	if !changed {
		return raw
	}
	out := base + "?" + strings.Join(params, "&")
	if hasFrag {
		out += "#" + frag
	}
	return out
}

func (s *Server) marshal(reveal, withState bool) ([]byte, error) {
	d := s.document(reveal)
	if withState {
		en, ca, ua := s.Enabled, s.CreatedAt.UTC(), s.UpdatedAt.UTC()
		d.Enabled, d.CreatedAt, d.UpdatedAt = &en, &ca, &ua
		if s.CreatedAt.IsZero() {
			d.CreatedAt, d.UpdatedAt = nil, nil
		}
	}
	b, err := json.Marshal(d)
	if err != nil || len(s.Extra) == 0 {
		return b, err
	}
	// Append unknown fields after the known ones, in a stable order.
	keys := make([]string, 0, len(s.Extra))
	for k := range s.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	buf.Write(b[:len(b)-1])
	for _, k := range keys {
		kb, _ := json.Marshal(k)
		buf.WriteByte(',')
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(s.Extra[k])
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// MarshalJSON renders the public view: header values redacted, with the
// enabled state and timestamps.
func (s *Server) MarshalJSON() ([]byte, error) { return s.marshal(false, true) }

// MarshalStorage renders the form a Store persists: header values kept as
// configured (unexpanded), state excluded (stores keep it in columns).
func (s *Server) MarshalStorage() ([]byte, error) { return s.marshal(true, false) }

// UnmarshalStorage reads what MarshalStorage wrote. It does not validate:
// stored documents were validated when they were registered.
func UnmarshalStorage(b []byte) (*Server, error) {
	if s, ok := decodeStored(b); ok {
		return s, nil
	}
	return unmarshalStorageSlow(b)
}

// unmarshalStorageSlow is UnmarshalStorage with encoding/json, for the
// documents decodeStored leaves to it; it is also the reference its tests
// compare with.
func unmarshalStorageSlow(b []byte) (*Server, error) {
	var d document
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("registry: decode stored server: %w", err)
	}
	// Unknown fields are rare: look for them with a key scan, and decode
	// the document a second time (as a map) only when there are some.
	// Start-up decodes every stored server, so this halves its work.
	var raw map[string]json.RawMessage
	if !onlyKnownKeys(b) {
		if err := json.Unmarshal(b, &raw); err != nil {
			return nil, fmt.Errorf("registry: decode stored server: %w", err)
		}
	}
	s := &Server{
		ServerName: d.ServerName, Description: d.Description, Path: d.Path,
		ProxyPassURL: d.ProxyPassURL, AuthProvider: d.AuthProvider, AuthType: d.AuthType,
		SupportedTransports: d.SupportedTransports, Tags: d.Tags, ToolList: d.ToolList,
		NumTools: d.NumTools, NumStars: d.NumStars, IsPython: d.IsPython, License: d.License,
		Extra: unknownFields(raw),
	}
	s.SkipHealthCheck = d.HealthCheck != nil && !*d.HealthCheck
	s.HealthCheckInterval, _ = time.ParseDuration(d.HealthCheckInterval)
	s.PinTools, s.PendingTools = d.PinTools, d.PendingTools
	for _, m := range d.Headers {
		for k, v := range m {
			s.Headers = append(s.Headers, Header{Name: k, Value: NewSecret(v)})
		}
	}
	return s, nil
}

// onlyKnownKeys reports whether every top-level key of the JSON object b
// (already validated) is a known field. Anything it does not follow (an
// escaped key, a malformed document) reports false, which costs only the
// map decode it was meant to save.
func onlyKnownKeys(b []byte) bool {
	i := SkipJSONSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = SkipJSONSpace(b, i+1)
	for i < len(b) && b[i] != '}' {
		if b[i] != '"' {
			return false
		}
		end := SkipJSONValue(b, i)
		key := b[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 || !knownFields[string(key)] {
			return false
		}
		i = SkipJSONSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = SkipJSONSpace(b, SkipJSONValue(b, SkipJSONSpace(b, i+1)))
		if i < len(b) && b[i] == ',' {
			i = SkipJSONSpace(b, i+1)
		}
	}
	return i < len(b)
}

// SkipJSONSpace returns the index of the first non-whitespace byte of b at
// or after i.
func SkipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// SkipJSONValue returns the index just after the JSON value that starts at
// b[i], following only brackets and strings: b must be valid JSON. The
// registry's key scan and the relay's JSON-RPC scan share it.
func SkipJSONValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		for i++; i < len(b); i++ {
			switch b[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return i
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = SkipJSONValue(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default:
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' && b[i] != '\r' && b[i] != '\t' {
			i++
		}
		return i
	}
}

// knownFields are the registration fields of SPEC section 2, plus the state
// fields of the public view (accepted so a `show --json` output re-registers).
var knownFields = map[string]bool{
	"server_name": true, "description": true, "path": true, "proxy_pass_url": true,
	"auth_provider": true, "auth_type": true, "supported_transports": true, "tags": true,
	"headers": true, "tool_list": true, "num_tools": true, "num_stars": true,
	"is_python": true, "license": true, "health_check": true, "health_check_interval": true, "pin_tools": true,
	"enabled": true, "pending_tool_changes": true, "created_at": true, "updated_at": true,
}

func unknownFields(raw map[string]json.RawMessage) map[string]json.RawMessage {
	var extra map[string]json.RawMessage
	for k, v := range raw {
		if knownFields[k] {
			continue
		}
		if extra == nil {
			extra = map[string]json.RawMessage{}
		}
		extra[k] = v
	}
	return extra
}
