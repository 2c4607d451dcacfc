package auth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
)

// specPolicy is the policy example of SPEC section 5.
const specPolicy = `
group_mappings:            # IdP group or API-key group -> scopes
  support-team: [customer-support-read]
  mcp-admins: [admin]
scopes:
  customer-support-read:
    - server: customer-support-assistant     # server_name or path; "*" for all
      methods: [initialize, notifications/initialized, ping, tools/list, tools/call]
      tools: [LambdaUsingSDK___check_warranty_status]   # or "*"
  admin:
    - server: "*"
      methods: ["*"]
      tools: ["*"]
      admin: true          # may register/remove/toggle/refresh and edit policy
`

func srv(name, path string) *registry.Server { return &registry.Server{ServerName: name, Path: path} }

func TestParsePolicy(t *testing.T) {
	known := []*registry.Server{srv("Customer Support", "/customer-support-assistant/")}
	for _, tc := range []struct {
		name     string
		doc      string
		problems []string // substrings, one per expected problem
		warnings []string
	}{
		{name: "SPEC example", doc: specPolicy},
		{name: "JSON", doc: `{"group_mappings":{"g":["s"]},"scopes":{"s":[{"server":"/customer-support-assistant","methods":["*"]}]}}`},
		{name: "server by name", doc: "group_mappings: {g: [s]}\nscopes:\n  s: [{server: Customer Support, methods: [ping]}]"},
		{name: "unknown server warned", doc: "group_mappings: {g: [s]}\nscopes:\n  s: [{server: weather, methods: [ping]}]",
			warnings: []string{`no registered server has the name or path "weather"`}},
		{name: "unused scope warned", doc: "scopes:\n  s: [{server: '*', methods: [ping]}]", warnings: []string{"scopes.s: no group is mapped"}},
		{name: "tools without tools/call warned", doc: "group_mappings: {g: [s]}\nscopes:\n  s: [{server: '*', methods: [ping], tools: [x]}]",
			warnings: []string{"methods do not include tools/call"}},
		{name: "empty", doc: "  \n", problems: []string{"the policy is empty"}},
		{name: "not an object", doc: "- a\n- b", problems: []string{"must be an object"}},
		{name: "not YAML", doc: "group_mappings: [unclosed", problems: []string{"not valid YAML or JSON"}},
		{name: "duplicate key", doc: "scopes: {}\nscopes: {}", problems: []string{"not valid YAML or JSON"}},
		{name: "unknown top-level key", doc: "scopes: {}\nusers: {}", problems: []string{"users: unknown key"}},
		{name: "every problem at once", doc: `
group_mappings:
  g: [missing-scope]
  h: read
scopes:
  s:
    - methods: [ping]
      tool: [x]
    - server: "*"
    - server: [a]
      methods: ping
      admin: yes please
`, problems: []string{
			`group_mappings.g: scope "missing-scope" is not defined`,
			"group_mappings.h: must be a list of scope names",
			"scopes.s[0].server: is required",
			"scopes.s[0].tool: unknown key",
			"scopes.s[1].methods: is required",
			"scopes.s[2].admin: must be true or false",
			"scopes.s[2].methods: must be a list of strings",
			"scopes.s[2].server: must be a string",
		}},
		{name: "blank method", doc: "scopes:\n  s: [{server: x, methods: ['']}]", problems: []string{`scopes.s[0].methods: "" is not a valid name`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, warnings, err := auth.ParsePolicy([]byte(tc.doc), known)
			if len(tc.problems) > 0 {
				var pe *auth.PolicyError
				if !errors.As(err, &pe) || !errors.Is(err, registry.ErrInvalid) || doc != nil {
					t.Fatalf("ParsePolicy = %v, %v; want a PolicyError", doc, err)
				}
				if len(pe.Problems) != len(tc.problems) {
					t.Fatalf("problems = %q, want %d: %q", pe.Problems, len(tc.problems), tc.problems)
				}
				for i, want := range tc.problems {
					if !strings.Contains(pe.Problems[i].String(), want) {
						t.Errorf("problem %d = %q, want it to contain %q", i, pe.Problems[i].String(), want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePolicy: %v", err)
			}
			if len(warnings) != len(tc.warnings) {
				t.Fatalf("warnings = %q, want %q", warnings, tc.warnings)
			}
			for i, want := range tc.warnings {
				if !strings.Contains(warnings[i], want) {
					t.Errorf("warning %d = %q, want it to contain %q", i, warnings[i], want)
				}
			}
		})
	}
}

// memStore is an in-memory PolicyStore.
type memStore struct {
	mu  sync.Mutex
	doc []byte
	err error
}

func (m *memStore) GetPolicy(context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.doc == nil {
		return nil, fmt.Errorf("mem: %w", registry.ErrNotFound)
	}
	return m.doc, nil
}

func (m *memStore) PutPolicy(_ context.Context, doc []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	m.doc = append([]byte(nil), doc...)
	return nil
}

// servers is a ServerSource whose events a test sends by hand.
type servers struct {
	list []*registry.Server
	subs []func(registry.Event)
}

func (s *servers) List(context.Context) ([]*registry.Server, error) { return s.list, nil }
func (s *servers) Subscribe(fn func(registry.Event))                { s.subs = append(s.subs, fn) }
func (s *servers) emit(ev registry.Event) {
	for _, fn := range s.subs {
		fn(ev)
	}
}

func loadSpecPolicy(t *testing.T) *auth.Policy {
	t.Helper()
	pol, err := auth.LoadPolicy(context.Background(), auth.PolicyOptions{Store: &memStore{}, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pol.Replace(context.Background(), []byte(specPolicy), nil); err != nil {
		t.Fatal(err)
	}
	return pol
}

func TestAllowed(t *testing.T) {
	const cs = "/customer-support-assistant/"
	const warranty, profile = "LambdaUsingSDK___check_warranty_status", "LambdaUsingSDK___get_customer_profile"
	support := &auth.Principal{Subject: "sam", Groups: []string{"support-team"}}
	idpAdmin := &auth.Principal{Subject: "ada", Groups: []string{"mcp-admins"}}
	adminKey := &auth.Principal{Subject: "apikey:local-admin", Groups: []string{"mcp-admins"}, Admin: true}
	nobody := &auth.Principal{Subject: "nobody", Groups: []string{"sales"}}
	spoofed := &auth.Principal{Subject: "x", Groups: []string{"Support-Team", " support-team"}}

	local := auth.NewPolicy()
	enforced := loadSpecPolicy(t)
	idpOnly, _ := auth.LoadPolicy(context.Background(), auth.PolicyOptions{IdentityProvider: true, Log: zerolog.Nop()})

	for _, tc := range []struct {
		name   string
		pol    *auth.Policy
		p      *auth.Principal
		server string
		method string
		tool   string
		want   bool
	}{
		{"local: anyone reads", local, auth.Anonymous, cs, auth.ActionRead, "", true},
		{"local: anyone calls", local, auth.Anonymous, cs, "tools/call", profile, true},
		{"local: only admin keys administer", local, support, "*", auth.ActionAdmin, "", false},
		{"local: admin key administers", local, adminKey, "*", auth.ActionAdmin, "", true},
		{"nil principal", local, nil, cs, auth.ActionRead, "", false},

		{"support reads its server by path", enforced, support, cs, auth.ActionRead, "", true},
		{"support reads its server by the path without slashes", enforced, support, "customer-support-assistant", auth.ActionRead, "", true},
		{"support does not see other servers", enforced, support, "/weather", auth.ActionRead, "", false},
		{"support initializes", enforced, support, cs, "initialize", "", true},
		{"support lists tools", enforced, support, cs, "tools/list", "", true},
		{"support calls the warranty tool", enforced, support, cs, "tools/call", warranty, true},
		{"support may not call the profile tool", enforced, support, cs, "tools/call", profile, false},
		{"support may not call without a tool name", enforced, support, cs, "tools/call", "", false},
		{"support may not use unlisted methods", enforced, support, cs, "resources/list", "", false},
		{"support opens the server stream (GET)", enforced, support, cs, "", "", true},
		{"support may not administer", enforced, support, cs, auth.ActionAdmin, "", false},
		{"groups are matched exactly", enforced, spoofed, cs, auth.ActionRead, "", false},
		{"IdP admin group calls anything", enforced, idpAdmin, "/weather", "tools/call", "anything", true},
		{"IdP admin group administers everything", enforced, idpAdmin, "*", auth.ActionAdmin, "", true},
		{"admin key is always admin", enforced, adminKey, "*", auth.ActionAdmin, "", true},
		{"admin key with no groups is still admin", enforced, &auth.Principal{Subject: "k", Admin: true}, cs, "tools/call", profile, true},
		{"no matching group", enforced, nobody, cs, auth.ActionRead, "", false},
		{"anonymous is denied once enforcing", enforced, auth.Anonymous, cs, auth.ActionRead, "", false},

		{"IdP without policy: deny by default", idpOnly, support, cs, auth.ActionRead, "", false},
		{"IdP without policy: admin key works", idpOnly, adminKey, "*", auth.ActionAdmin, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.pol.Allowed(tc.p, tc.server, tc.method, tc.tool); got != tc.want {
				t.Fatalf("Allowed(%v, %q, %q, %q) = %v, want %v", tc.p, tc.server, tc.method, tc.tool, got, tc.want)
			}
		})
	}

	if local.AuthRequired() || !enforced.AuthRequired() || !idpOnly.AuthRequired() {
		t.Fatal("AuthRequired must be false in local mode only")
	}
	if !enforced.HasAccess(support) || enforced.HasAccess(nobody) || !enforced.HasAccess(adminKey) || !local.HasAccess(nobody) {
		t.Fatal("HasAccess is wrong")
	}
	if !enforced.ToolsRestricted(support, cs) || enforced.ToolsRestricted(idpAdmin, cs) || enforced.ToolsRestricted(adminKey, cs) || local.ToolsRestricted(support, cs) {
		t.Fatal("ToolsRestricted is wrong")
	}
}

// TestToolsCallInAnyCase checks that a method naming tools/call in another
// case is judged as tools/call: with methods "*" and a list of tools, the
// tool check must not depend on the method's spelling, whatever an
// upstream makes of it.
func TestToolsCallInAnyCase(t *testing.T) {
	pol, err := auth.LoadPolicy(context.Background(), auth.PolicyOptions{Store: &memStore{}, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	const doc = "group_mappings:\n  ops: [s]\nscopes:\n  s:\n    - server: /weather\n      methods: [\"*\"]\n      tools: [forecast]\n"
	if _, err := pol.Replace(context.Background(), []byte(doc), nil); err != nil {
		t.Fatal(err)
	}
	ops := &auth.Principal{Subject: "o", Groups: []string{"ops"}}
	for _, tc := range []struct {
		method, tool string
		want         bool
	}{
		{"tools/call", "forecast", true},
		{"tools/call", "delete_city", false},
		{"Tools/Call", "delete_city", false},
		{"TOOLS/CALL", "delete_city", false},
		{"TOOLS/CALL", "forecast", true},
		{"tools/list", "", true},
	} {
		if got := pol.Allowed(ops, "/weather", tc.method, tc.tool); got != tc.want {
			t.Errorf("Allowed(%q, %q) = %v, want %v", tc.method, tc.tool, got, tc.want)
		}
	}
}

func TestServerAdminScope(t *testing.T) {
	pol := auth.NewPolicy()
	doc := `
group_mappings: {ops: [weather-admin]}
scopes:
  weather-admin:
    - server: /weather
      methods: ["*"]
      tools: ["*"]
      admin: true
`
	if _, err := pol.Replace(context.Background(), []byte(doc), nil); err != nil {
		t.Fatal(err)
	}
	ops := &auth.Principal{Subject: "o", Groups: []string{"ops"}}
	if !pol.Allowed(ops, "/weather", auth.ActionAdmin, "") {
		t.Fatal("a server admin scope must allow administering that server")
	}
	if pol.Allowed(ops, "/other", auth.ActionAdmin, "") || pol.Allowed(ops, "*", auth.ActionAdmin, "") {
		t.Fatal("a server admin scope must not allow other servers or gateway-wide administration")
	}
}

func TestPolicyNamesFollowTheRegistry(t *testing.T) {
	pol := auth.NewPolicy()
	doc := "group_mappings: {g: [s]}\nscopes:\n  s: [{server: Weather Service, methods: ['*'], tools: ['*']}]"
	if _, err := pol.Replace(context.Background(), []byte(doc), nil); err != nil {
		t.Fatal(err)
	}
	src := &servers{list: []*registry.Server{srv("Weather Service", "/weather")}}
	if err := pol.TrackServers(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	p := &auth.Principal{Subject: "u", Groups: []string{"g"}}
	if !pol.Allowed(p, "/weather", "tools/call", "forecast") {
		t.Fatal("rule naming the server_name does not match its path")
	}
	src.emit(registry.Event{Kind: registry.EventPut, Key: "weather", Server: srv("Renamed", "/weather")})
	if pol.Allowed(p, "/weather", "tools/call", "forecast") {
		t.Fatal("rule still matches after the server was renamed")
	}
	src.emit(registry.Event{Kind: registry.EventPut, Key: "wx", Server: srv("weather service", "/wx")})
	if !pol.Allowed(p, "/wx", auth.ActionRead, "") {
		t.Fatal("server names match case-insensitively once registered")
	}
	src.emit(registry.Event{Kind: registry.EventRemoved, Key: "wx"})
	if pol.Allowed(p, "/wx", auth.ActionRead, "") {
		t.Fatal("rule still matches a removed server")
	}
}

func TestPolicyReplaceIsAtomicAndPersisted(t *testing.T) {
	ctx := context.Background()
	store := &memStore{}
	pol, err := auth.LoadPolicy(ctx, auth.PolicyOptions{Store: store, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if pol.AuthRequired() || pol.Document() != nil {
		t.Fatal("a store without a policy must load local mode")
	}
	support := &auth.Principal{Subject: "sam", Groups: []string{"support-team"}}
	if _, err := pol.Replace(ctx, []byte(specPolicy), nil); err != nil {
		t.Fatal(err)
	}
	if pol.Allowed(support, "/weather", auth.ActionRead, "") {
		t.Fatal("policy not in force right after Replace")
	}
	before := pol.Document()
	if _, err := pol.Replace(ctx, []byte("scopes: {s: [{server: x}]}"), nil); !errors.Is(err, registry.ErrInvalid) {
		t.Fatalf("invalid Replace = %v", err)
	}
	if !bytes.Equal(pol.Document(), before) || !bytes.Equal(store.doc, before) {
		t.Fatal("an invalid policy changed the policy in force or stored")
	}
	store.err = errors.New("disk full")
	if _, err := pol.Replace(ctx, []byte("scopes: {}"), nil); err == nil {
		t.Fatal("Replace ignored a store failure")
	}
	if !bytes.Equal(pol.Document(), before) {
		t.Fatal("a policy that could not be stored was put in force")
	}
	store.err = nil

	reloaded, err := auth.LoadPolicy(ctx, auth.PolicyOptions{Store: store, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(reloaded.Document(), before) || !reloaded.Allowed(support, "customer-support-assistant", "tools/list", "") {
		t.Fatal("the stored policy did not load")
	}
	var doc auth.PolicyDoc
	if err := json.Unmarshal(before, &doc); err != nil || len(doc.Scopes["admin"]) != 1 || !doc.Scopes["admin"][0].Admin {
		t.Fatalf("canonical document = %s (%v)", before, err)
	}

	if _, err := auth.LoadPolicy(ctx, auth.PolicyOptions{Store: &memStore{doc: []byte(`{"scopes": 3}`)}}); err == nil {
		t.Fatal("a corrupt stored policy loaded")
	}
}

func TestPolicyAudit(t *testing.T) {
	var buf bytes.Buffer
	pol, err := auth.LoadPolicy(context.Background(), auth.PolicyOptions{Log: zerolog.New(&buf).Level(zerolog.InfoLevel)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pol.Replace(context.Background(), []byte(specPolicy), nil); err != nil {
		t.Fatal(err)
	}
	support := &auth.Principal{Subject: "sam", Groups: []string{"support-team"}}
	pol.Allowed(support, "/customer-support-assistant/", "tools/call", "LambdaUsingSDK___check_warranty_status")
	if buf.Len() != 0 {
		t.Fatalf("allow logged at info: %s", buf.String())
	}
	pol.Allowed(support, "/customer-support-assistant/", "tools/call", "LambdaUsingSDK___get_customer_profile")
	var ev map[string]any
	if err := json.Unmarshal(buf.Bytes(), &ev); err != nil {
		t.Fatalf("deny not logged as one JSON event: %q", buf.String())
	}
	want := map[string]any{"level": "info", "subject": "sam", "server": "/customer-support-assistant/", "method": "tools/call",
		"tool": "LambdaUsingSDK___get_customer_profile", "decision": "deny", "reason": "no scope grants this tool"}
	for k, v := range want {
		if ev[k] != v {
			t.Errorf("audit %s = %v, want %v", k, ev[k], v)
		}
	}
	if g, _ := ev["groups"].([]any); len(g) != 1 || g[0] != "support-team" {
		t.Errorf("audit groups = %v", ev["groups"])
	}

	buf.Reset()
	var debug bytes.Buffer
	pol2, _ := auth.LoadPolicy(context.Background(), auth.PolicyOptions{Log: zerolog.New(&debug).Level(zerolog.DebugLevel)})
	pol2.Allowed(support, "/x", auth.ActionRead, "")
	if !strings.Contains(debug.String(), `"level":"debug"`) || !strings.Contains(debug.String(), `"decision":"allow"`) {
		t.Fatalf("allow not logged at debug: %s", debug.String())
	}
}
