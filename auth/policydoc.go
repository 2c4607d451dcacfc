package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/mcpgw/mcpgw/registry"
)

// PolicyDoc is the access policy of SPEC section 5, as written in YAML or
// JSON: groups map to scopes, and each scope is a list of rules.
type PolicyDoc struct {
	GroupMappings map[string][]string `json:"group_mappings"`
	Scopes        map[string][]*Rule  `json:"scopes"`
}

// Rule grants methods (and for tools/call, tools) on a server.
type Rule struct {
	// Server is a server_name or path, or "*" for every server.
	Server string `json:"server"`
	// Methods are MCP method names, or "*".
	Methods []string `json:"methods"`
	// Tools are the tools tools/call may name, or "*".
	Tools []string `json:"tools,omitempty"`
	// Admin allows registering, removing, toggling and refreshing the
	// server (every server and the policy itself when Server is "*").
	Admin bool `json:"admin,omitempty"`

	scope string // the scope the rule belongs to, for audit reasons
}

// PolicyError lists every problem of a refused policy at once. It matches
// registry.ErrInvalid with errors.Is.
type PolicyError struct{ Problems []registry.Problem }

func (e *PolicyError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid policy: " + strings.Join(parts, "; ")
}

// Unwrap makes a PolicyError match registry.ErrInvalid.
func (e *PolicyError) Unwrap() error { return registry.ErrInvalid }

type policyProblems []registry.Problem

func (ps *policyProblems) add(field, format string, args ...any) {
	*ps = append(*ps, registry.Problem{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// ParsePolicy parses and validates a policy in YAML or JSON. Unknown keys,
// wrong types, rules without a server or methods and groups mapped to
// undefined scopes reject the document whole (a *PolicyError listing every
// problem). Rules naming a server that is not among known (when known is
// not nil) and other doubtful but valid choices are returned as warnings.
func ParsePolicy(data []byte, known []*registry.Server) (*PolicyDoc, []string, error) {
	var ps policyProblems
	fail := func() (*PolicyDoc, []string, error) {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Field < ps[j].Field })
		return nil, nil, &PolicyError{Problems: ps}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		ps.add("", "the policy is empty; give group_mappings and scopes")
		return fail()
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		ps.add("", "not valid YAML or JSON: %v", err)
		return fail()
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil || top == nil {
		ps.add("", "the policy must be an object with group_mappings and scopes")
		return fail()
	}
	for _, k := range sortedKeys(top) {
		if k != "group_mappings" && k != "scopes" {
			ps.add(k, "unknown key; a policy has only group_mappings and scopes")
		}
	}
	doc := &PolicyDoc{GroupMappings: map[string][]string{}, Scopes: map[string][]*Rule{}}
	if raw, ok := top["scopes"]; ok && !isNull(raw) {
		var scopes map[string]json.RawMessage
		if err := json.Unmarshal(raw, &scopes); err != nil {
			ps.add("scopes", "must be an object of scope name to a list of rules")
		}
		for _, name := range sortedKeys(scopes) {
			field := "scopes." + name
			if strings.TrimSpace(name) == "" {
				ps.add(field, "a scope name must not be empty")
			}
			var rules []json.RawMessage
			if err := json.Unmarshal(scopes[name], &rules); err != nil {
				ps.add(field, "must be a list of rules")
				continue
			}
			doc.Scopes[name] = []*Rule{}
			for i, rr := range rules {
				if r := parseRule(rr, fmt.Sprintf("%s[%d]", field, i), &ps); r != nil {
					doc.Scopes[name] = append(doc.Scopes[name], r)
				}
			}
		}
	}
	if raw, ok := top["group_mappings"]; ok && !isNull(raw) {
		var gm map[string]json.RawMessage
		if err := json.Unmarshal(raw, &gm); err != nil {
			ps.add("group_mappings", "must be an object of group name to a list of scope names")
		}
		for _, group := range sortedKeys(gm) {
			field := "group_mappings." + group
			if strings.TrimSpace(group) == "" {
				ps.add(field, "a group name must not be empty")
			}
			var scopes []string
			if err := json.Unmarshal(gm[group], &scopes); err != nil {
				ps.add(field, "must be a list of scope names")
				continue
			}
			for _, s := range scopes {
				if _, ok := doc.Scopes[s]; !ok {
					ps.add(field, "scope %q is not defined under scopes", s)
				}
			}
			doc.GroupMappings[group] = scopes
		}
	}
	if len(ps) > 0 {
		return fail()
	}
	return doc, doc.warnings(known), nil
}

func parseRule(raw json.RawMessage, field string, ps *policyProblems) *Rule {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		ps.add(field, "must be an object with server, methods, tools and admin")
		return nil
	}
	r := &Rule{}
	n := len(*ps)
	bad := map[string]bool{}
	for _, k := range sortedKeys(m) {
		var err error
		switch k {
		case "server":
			err = json.Unmarshal(m[k], &r.Server)
		case "methods":
			err = json.Unmarshal(m[k], &r.Methods)
		case "tools":
			err = json.Unmarshal(m[k], &r.Tools)
		case "admin":
			err = json.Unmarshal(m[k], &r.Admin)
		default:
			ps.add(field+"."+k, "unknown key; a rule has server, methods, tools and admin")
			continue
		}
		if err != nil {
			bad[k] = true
			want := "a list of strings"
			switch k {
			case "server":
				want = "a string"
			case "admin":
				want = "true or false"
			}
			ps.add(field+"."+k, "must be %s", want)
		}
	}
	r.Server = strings.TrimSpace(r.Server)
	if r.Server == "" && !bad["server"] {
		ps.add(field+".server", `is required: a server_name, a path, or "*" for every server`)
	}
	if len(r.Methods) == 0 && !bad["methods"] {
		ps.add(field+".methods", `is required: a list of MCP methods, or ["*"]`)
	}
	for _, list := range []struct {
		name string
		vals []string
	}{{"methods", r.Methods}, {"tools", r.Tools}} {
		for _, v := range list.vals {
			if strings.TrimSpace(v) == "" || v != strings.TrimSpace(v) {
				ps.add(field+"."+list.name, "%q is not a valid name", v)
			}
		}
	}
	if len(*ps) > n {
		return nil
	}
	return r
}

func (d *PolicyDoc) warnings(known []*registry.Server) []string {
	var out []string
	used := map[string]bool{}
	for _, scopes := range d.GroupMappings {
		for _, s := range scopes {
			used[s] = true
		}
	}
	for _, name := range sortedKeys(d.Scopes) {
		if !used[name] {
			out = append(out, fmt.Sprintf("scopes.%s: no group is mapped to this scope", name))
		}
		for i, r := range d.Scopes[name] {
			field := fmt.Sprintf("scopes.%s[%d]", name, i)
			if known != nil && r.Server != "*" && !namesKnown(r.Server, known) {
				out = append(out, fmt.Sprintf("%s.server: no registered server has the name or path %q (the rule applies once one does)", field, r.Server))
			}
			if len(r.Tools) > 0 && !r.matchesMethod("tools/call") {
				out = append(out, fmt.Sprintf("%s.tools: listed, but methods do not include tools/call, so no tool may be called", field))
			}
		}
	}
	return out
}

func namesKnown(server string, known []*registry.Server) bool {
	key := registry.PathKey(server)
	for _, s := range known {
		if registry.PathKey(s.Path) == key || strings.EqualFold(s.ServerName, server) {
			return true
		}
	}
	return false
}

// canonical is the stored and exported form: JSON with sorted keys.
func (d *PolicyDoc) canonical() []byte {
	b, _ := json.Marshal(d)
	return b
}

// compile indexes the rules by group for Allowed.
func (d *PolicyDoc) compile() map[string][]*Rule {
	out := make(map[string][]*Rule, len(d.GroupMappings))
	for group, scopes := range d.GroupMappings {
		var rules []*Rule
		for _, s := range scopes {
			for _, r := range d.Scopes[s] {
				c := *r
				c.scope = s
				c.Methods = slices.Clone(r.Methods)
				c.Tools = slices.Clone(r.Tools)
				rules = append(rules, &c)
			}
		}
		out[group] = rules
	}
	return out
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
