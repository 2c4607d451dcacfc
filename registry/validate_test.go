package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden from the current output")

// seedConfig is the seed guide's gateway-config.json, kept verbatim.
func seedConfig(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "gateway-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withRealGatewayID is the seed file with its placeholder host replaced, as
// the seed guide tells users to do.
func withRealGatewayID(t *testing.T) []byte {
	t.Helper()
	b := seedConfig(t)
	if !bytes.Contains(b, []byte("<YOUR-GATEWAY-ID>")) {
		t.Fatal("the seed file no longer holds the <YOUR-GATEWAY-ID> placeholder")
	}
	return bytes.ReplaceAll(b, []byte("<YOUR-GATEWAY-ID>"), []byte("cs-gw-1a2b3c4d5e"))
}

// doc builds a registration from a minimal valid one, with fields changed
// (a nil value deletes the field).
func doc(changes map[string]any) []byte {
	m := map[string]any{
		"server_name":    "weather",
		"path":           "/weather",
		"proxy_pass_url": "http://127.0.0.1:9000/mcp",
	}
	for k, v := range changes {
		if v == nil {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // only plain maps, slices and strings reach here
	}
	return b
}

// golden compares got with testdata/golden/validate/<name>.txt, or rewrites
// the file under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", "golden", "validate", name+".txt")
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run `go test ./registry -run TestParse -update` to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s\n--- got ---\n%s\n--- want ---\n%s", file, got, want)
	}
}

// accepted renders an accepted registration for its golden file: the public
// view (header values redacted) and the warnings.
func accepted(t *testing.T, s *Server, warnings []string) string {
	t.Helper()
	pub, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if warnings == nil {
		warnings = []string{}
	}
	out, err := json.MarshalIndent(struct {
		Server   json.RawMessage `json:"server"`
		Warnings []string        `json:"warnings"`
	}{pub, warnings}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(out) + "\n"
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		// ok says the registration must be accepted.
		ok bool
		// fields are the problem fields an invalid registration must name.
		fields []string
		// check runs extra assertions on an accepted server.
		check func(t *testing.T, s *Server, warnings []string)
	}{
		{
			name: "seed_placeholder", in: seedConfig(t),
			fields: []string{"proxy_pass_url"},
		},
		{
			name: "seed_real_gateway_id", in: withRealGatewayID(t), ok: true,
			check: func(t *testing.T, s *Server, warnings []string) {
				if s.Path != "/customer-support-assistant/" {
					t.Errorf("path = %q, want /customer-support-assistant/", s.Path)
				}
				if want := "https://cs-gw-1a2b3c4d5e.gateway.bedrock-agentcore.us-east-1.amazonaws.com/"; s.ProxyPassURL != want {
					t.Errorf("proxy_pass_url = %q, want %q", s.ProxyPassURL, want)
				}
				if !s.Passthrough() {
					t.Error("a bedrock-agentcore server must be passthrough")
				}
				if s.NumTools != 2 || len(s.ToolList) != 2 {
					t.Errorf("num_tools = %d, tool_list = %d, want 2 and 2", s.NumTools, len(s.ToolList))
				}
				if len(s.Headers) != 1 || s.Headers[0].Value.Reveal() != "Bearer $CUSTOMER_SUPPORT_AUTH_TOKEN" {
					t.Errorf("headers = %d, want the Authorization header kept unexpanded", len(s.Headers))
				}
				if len(warnings) != 0 {
					t.Errorf("the seed file gave warnings: %q", warnings)
				}
			},
		},
		{
			name: "agentcore_mcp_without_slash", ok: true,
			in: doc(map[string]any{"auth_provider": "bedrock-agentcore", "path": "support",
				"proxy_pass_url": "https://gw-1.gateway.bedrock-agentcore.us-east-1.amazonaws.com/mcp"}),
			check: func(t *testing.T, s *Server, _ []string) {
				if s.Path != "/support/" || s.ProxyPassURL != "https://gw-1.gateway.bedrock-agentcore.us-east-1.amazonaws.com/" {
					t.Errorf("path %q, proxy_pass_url %q", s.Path, s.ProxyPassURL)
				}
			},
		},
		{
			name: "agentcore_no_mcp_suffix", ok: true,
			in: doc(map[string]any{"auth_provider": "Bedrock-AgentCore", "path": "/support/",
				"proxy_pass_url": "https://gw-1.gateway.bedrock-agentcore.us-east-1.amazonaws.com"}),
			check: func(t *testing.T, s *Server, _ []string) {
				if s.Path != "/support/" || s.ProxyPassURL != "https://gw-1.gateway.bedrock-agentcore.us-east-1.amazonaws.com/" {
					t.Errorf("path %q, proxy_pass_url %q", s.Path, s.ProxyPassURL)
				}
			},
		},
		{
			name: "plain_server_keeps_url", ok: true,
			in: doc(map[string]any{"path": "weather/", "proxy_pass_url": "http://127.0.0.1:9000/mcp/"}),
			check: func(t *testing.T, s *Server, _ []string) {
				if s.Path != "/weather" || s.ProxyPassURL != "http://127.0.0.1:9000/mcp/" {
					t.Errorf("path %q, proxy_pass_url %q", s.Path, s.ProxyPassURL)
				}
				if s.AuthType != AuthTypeNone || len(s.SupportedTransports) != 1 || s.SupportedTransports[0] != TransportStreamableHTTP {
					t.Errorf("defaults: auth_type %q, transports %q", s.AuthType, s.SupportedTransports)
				}
			},
		},
		{name: "malformed_json", in: []byte(`{"server_name": "x", "path": `), fields: []string{""}},
		{name: "trailing_garbage", in: []byte(`{"server_name": "x"} {}`), fields: []string{""}},
		{name: "not_an_object", in: []byte(`[1, 2]`), fields: []string{""}},
		{name: "empty_body", in: nil, fields: []string{""}},
		{name: "null_body", in: []byte(`null`), fields: []string{""}},
		{
			name: "wrong_types",
			in: []byte(`{"server_name": 42, "path": ["/a"], "proxy_pass_url": true, "tags": "x",
					"num_tools": "two", "is_python": "no", "headers": {"A": "b"}, "tool_list": {},
					"supported_transports": [1], "description": {}}`),
			fields: []string{"server_name", "path", "proxy_pass_url", "tags", "num_tools", "is_python", "headers", "tool_list", "supported_transports[0]", "description"},
		},
		{
			name:   "missing_required",
			in:     []byte(`{"description": "no name, path or url"}`),
			fields: []string{"server_name", "path", "proxy_pass_url"},
		},
		{
			name:   "blank_required",
			in:     doc(map[string]any{"server_name": "  ", "path": "", "proxy_pass_url": " "}),
			fields: []string{"server_name", "path", "proxy_pass_url"},
		},
		{name: "path_uppercase", in: doc(map[string]any{"path": "/Weather"}), fields: []string{"path"}},
		{name: "path_dot_dot", in: doc(map[string]any{"path": "/a/../mcpgw"}), fields: []string{"path"}},
		{name: "path_ends_in_mcp", in: doc(map[string]any{"path": "/weather/mcp"}), fields: []string{"path"}},
		{name: "path_space", in: doc(map[string]any{"path": "/my weather"}), fields: []string{"path"}},
		{name: "url_ftp", in: doc(map[string]any{"proxy_pass_url": "ftp://files.example.com/mcp"}), fields: []string{"proxy_pass_url"}},
		{name: "url_file", in: doc(map[string]any{"proxy_pass_url": "file:///etc/passwd"}), fields: []string{"proxy_pass_url"}},
		{name: "url_javascript", in: doc(map[string]any{"proxy_pass_url": "javascript:alert(1)"}), fields: []string{"proxy_pass_url"}},
		{name: "url_relative", in: doc(map[string]any{"proxy_pass_url": "/weather/mcp"}), fields: []string{"proxy_pass_url"}},
		{name: "url_no_host", in: doc(map[string]any{"proxy_pass_url": "http:///mcp"}), fields: []string{"proxy_pass_url"}},
		{name: "url_bad_port", in: doc(map[string]any{"proxy_pass_url": "http://127.0.0.1:99999/mcp"}), fields: []string{"proxy_pass_url"}},
		{name: "url_unparsable", in: doc(map[string]any{"proxy_pass_url": "http://mcp example.com/"}), fields: []string{"proxy_pass_url"}},
		{name: "url_unparsable_credentials", in: doc(map[string]any{"proxy_pass_url": "http://admin:hunter2-pw@mcp.example.com:port/"}), fields: []string{"proxy_pass_url"}},
		{name: "url_ftp_credentials", in: doc(map[string]any{"proxy_pass_url": "ftp://admin:hunter2-pw@files.example.com/"}), fields: []string{"proxy_pass_url"}},
		{
			name:   "url_credentials",
			in:     doc(map[string]any{"proxy_pass_url": "https://admin:hunter2-pw@mcp.example.com/mcp"}),
			fields: []string{"proxy_pass_url"},
		},
		{
			name: "tags_normalized", ok: true,
			in: doc(map[string]any{"tags": []string{" Weather ", "weather", "FORECAST", "", "forecast ", "Bedrock"}}),
			check: func(t *testing.T, s *Server, _ []string) {
				if got := strings.Join(s.Tags, ","); got != "weather,forecast,bedrock" {
					t.Errorf("tags = %q, want weather,forecast,bedrock", got)
				}
			},
		},
		{
			name: "unknown_fields_kept", ok: true,
			in: doc(map[string]any{"owner": map[string]any{"team": "sre", "oncall": []int{1, 2}}, "rating": 4.5}),
			check: func(t *testing.T, s *Server, warnings []string) {
				if len(warnings) != 2 || !strings.Contains(warnings[0], `"owner"`) || !strings.Contains(warnings[1], `"rating"`) {
					t.Errorf("warnings = %q, want one per unknown field, sorted", warnings)
				}
				b, err := s.MarshalStorage()
				if err != nil {
					t.Fatal(err)
				}
				back, err := UnmarshalStorage(b)
				if err != nil {
					t.Fatal(err)
				}
				if len(back.Extra) != 2 || string(back.Extra["owner"]) != `{"oncall":[1,2],"team":"sre"}` || string(back.Extra["rating"]) != "4.5" {
					t.Errorf("after the storage round trip Extra = %s", fmt.Sprint(back.Extra))
				}
				again, err := back.MarshalStorage()
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(b, again) {
					t.Errorf("storage form changed in a round trip:\n%s\n%s", b, again)
				}
			},
		},
		{
			name: "num_tools_derived", ok: true,
			in: doc(map[string]any{"num_tools": 7, "tool_list": []any{
				map[string]any{"name": "forecast", "parsed_description": map[string]any{"main": "Forecast for a city"},
					"schema": map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}},
				map[string]any{"name": "alerts", "description": "MCP-style description", "inputSchema": map[string]any{"type": "object"}},
			}}),
			check: func(t *testing.T, s *Server, warnings []string) {
				if s.NumTools != 2 {
					t.Errorf("num_tools = %d, want 2 (from tool_list)", s.NumTools)
				}
				if len(warnings) != 1 || !strings.Contains(warnings[0], "num_tools is 7") {
					t.Errorf("warnings = %q, want one about num_tools", warnings)
				}
				if s.ToolList[1].Description() != "MCP-style description" || string(s.ToolList[1].Schema) != `{"type":"object"}` {
					t.Errorf("MCP tools/list shape not accepted: %+v", s.ToolList[1])
				}
			},
		},
		{
			name: "num_tools_without_tool_list", ok: true,
			in: doc(map[string]any{"num_tools": 3}),
			check: func(t *testing.T, s *Server, _ []string) {
				if s.NumTools != 3 {
					t.Errorf("num_tools = %d, want 3 as given (no tool_list to derive it from)", s.NumTools)
				}
			},
		},
		{
			name: "duplicate_tool_names",
			in: doc(map[string]any{"tool_list": []any{
				map[string]any{"name": "forecast"}, map[string]any{"name": "alerts"}, map[string]any{"name": "forecast"},
			}}),
			fields: []string{"tool_list[2].name"},
		},
		{
			name: "bad_tools_and_headers",
			in: doc(map[string]any{
				"tool_list": []any{map[string]any{"schema": "nope"}, 3},
				"headers":   []any{map[string]any{"Host": "x"}, map[string]any{"Bad Name": "x"}, map[string]any{"X-N": 1}},
				"auth_type": "magic", "supported_transports": []string{"websocket"},
			}),
			fields: []string{"tool_list[0].name", "tool_list[0].schema", "tool_list[1]", "headers[0]", "headers[1]", "headers[2]", "auth_type", "supported_transports"},
		},
	}
	for _, r := range []string{"/mcpgw", "/api", "/metrics", "/healthz", "/readyz", "/.well-known", "/ui", "/static", "/", "/api/v2/things", "mcpgw/"} {
		r := r
		name := "reserved_" + strings.NewReplacer("/", "_", ".", "").Replace(strings.Trim(r, "/"))
		if strings.Trim(r, "/") == "" {
			name = "reserved_root"
		}
		tests = append(tests, struct {
			name   string
			in     []byte
			ok     bool
			fields []string
			check  func(t *testing.T, s *Server, warnings []string)
		}{name: name, in: doc(map[string]any{"path": r}), fields: []string{"path"}})
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, warnings, err := Parse(tc.in)
			if !tc.ok {
				if err == nil {
					t.Fatalf("accepted; want an error naming %q", tc.fields)
				}
				if s != nil || warnings != nil {
					t.Errorf("a refused registration returned a server or warnings")
				}
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("error %v does not match ErrInvalid", err)
				}
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("error %T is not a *ValidationError", err)
				}
				got := map[string]bool{}
				for _, p := range ve.Problems {
					got[p.Field] = true
					if p.Reason == "" {
						t.Errorf("problem of %q has no reason", p.Field)
					}
				}
				for _, f := range tc.fields {
					if !got[f] {
						t.Errorf("no problem names field %q; problems: %v", f, ve.Problems)
					}
				}
				if len(ve.Problems) != len(tc.fields) {
					t.Errorf("%d problems, want %d (%q): %v", len(ve.Problems), len(tc.fields), tc.fields, ve.Problems)
				}
				if strings.Contains(err.Error(), "hunter2-pw") {
					t.Errorf("the error shows a password from the URL: %v", err)
				}
				golden(t, tc.name, err.Error()+"\n")
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !s.Enabled {
				t.Error("a new registration must be enabled")
			}
			if tc.check != nil {
				tc.check(t, s, warnings)
			}
			golden(t, tc.name, accepted(t, s, warnings))
		})
	}
}

// TestParseIsIdempotent re-parses the public view of an accepted
// registration: what `show --json` prints must register again unchanged.
func TestParseIsIdempotent(t *testing.T) {
	s, _, err := Parse(withRealGatewayID(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.MarshalStorage()
	if err != nil {
		t.Fatal(err)
	}
	again, warnings, err := Parse(b)
	if err != nil {
		t.Fatalf("the storage form does not parse: %v", err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings on re-parse: %q", warnings)
	}
	b2, _ := again.MarshalStorage()
	if !bytes.Equal(b, b2) {
		t.Errorf("normalization is not idempotent:\n%s\n%s", b, b2)
	}
}

// TestSecretsNeverShown checks every way a Server or Header is commonly
// printed: none may contain a header value.
func TestSecretsNeverShown(t *testing.T) {
	const secret = "tok-5f0c9e1b-never-print-me"
	s, _, err := Parse(doc(map[string]any{"headers": []any{
		map[string]any{"Authorization": "Bearer " + secret},
		map[string]any{"X-Api-Key": secret + "-2"},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(pub, []byte(`"headers":[{"Authorization":"***"},{"X-Api-Key":"***"}]`)) {
		t.Errorf("MarshalJSON does not show the headers as ***: %s", pub)
	}
	h := s.Headers[0]
	shown := map[string]string{
		"json server": string(pub),
		"json header": mustJSON(t, h),
		"json secret": mustJSON(t, h.Value),
	}
	// The formats go through a variable so that vet does not refuse %s of a
	// struct: that is exactly the careless print this test guards against.
	values := map[string]any{
		"*Server": s, "Server": *s, "clone": s.Clone(), "Header": h, "*Header": &h,
		"[]Header": s.Headers, "Secret": h.Value,
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		for name, v := range values {
			shown[format+" "+name] = fmt.Sprintf(format, v)
		}
	}
	for how, out := range shown {
		if strings.Contains(out, secret) {
			t.Errorf("%s shows the secret: %s", how, out)
		}
	}
	if got := shown["%+v Header"]; got != "{Name:Authorization Value:***}" {
		t.Errorf("%%+v of a header = %s, want {Name:Authorization Value:***}", got)
	}
	// The storage form is the one place the value is kept, unexpanded.
	st, _ := s.MarshalStorage()
	if !bytes.Contains(st, []byte("Bearer "+secret)) {
		t.Errorf("the storage form lost the header value: %s", st)
	}

	// Some upstreams take their key in the URL's query: its value is a
	// secret too, in every public view.
	withKey, _, err := Parse(doc(map[string]any{"proxy_pass_url": "https://upstream.example/mcp?region=eu&api_key=" + secret + "&Auth-Token=" + secret}))
	if err != nil {
		t.Fatal(err)
	}
	if pub, _ := json.Marshal(withKey); !bytes.Contains(pub, []byte(`"proxy_pass_url":"https://upstream.example/mcp?region=eu\u0026api_key=***\u0026Auth-Token=***"`)) {
		t.Errorf("MarshalJSON shows a credential of the URL's query: %s", pub)
	}
	if st, _ := withKey.MarshalStorage(); !bytes.Contains(st, []byte("api_key="+secret)) {
		t.Errorf("the storage form lost the URL's key: %s", st)
	}

	// Nor in the error refusing the URL.
	_, _, err = Parse(doc(map[string]any{"proxy_pass_url": "ftp://upstream.example/mcp?token=" + secret}))
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "token=***") {
		t.Errorf("error for a bad URL = %v; want a refusal that does not show the key", err)
	}

	// A refused header value must not be echoed in the error either.
	_, _, err = Parse(doc(map[string]any{"headers": []any{map[string]any{"Authorization": "Bearer " + secret + "\r\nX-Evil: 1"}}}))
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("error for a bad header value = %v; want a refusal that does not show the value", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHeaderExpansion checks $VAR expansion of header values: from the
// environment, except the gateway's own MCPGW_* settings, which whoever
// registers a server could otherwise send to a host of their choice.
func TestHeaderExpansion(t *testing.T) {
	t.Setenv("UPSTREAM_TOKEN", "up-tok")
	t.Setenv("MCPGW_SESSION_KEY", "the-gateway-session-key")
	t.Setenv("mcpgw_store", "postgres://u:pw@db/x")
	for _, tc := range []struct{ in, want string }{
		{"Bearer $UPSTREAM_TOKEN", "Bearer up-tok"},
		{"Bearer ${UPSTREAM_TOKEN}", "Bearer up-tok"},
		{"k=$MCPGW_SESSION_KEY", "k="},
		{"k=${MCPGW_SESSION_KEY}", "k="},
		{"k=${mcpgw_store}", "k="},
		{"plain", "plain"},
	} {
		if got := NewSecret(tc.in).Expand(); got != tc.want {
			t.Errorf("Expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
