package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/registry"
)

// Action names used with Allowed besides MCP method names.
const (
	// ActionAdmin is registering, removing, toggling and refreshing servers
	// and editing the policy and API keys.
	ActionAdmin = "admin"
	// ActionRead is seeing a server in lists, details and search results.
	ActionRead = "read"
)

// AdminGroup is the group of the local admin key.
const AdminGroup = "mcp-admins"

// PolicyStore is the part of the registry store that keeps the policy.
type PolicyStore interface {
	GetPolicy(ctx context.Context) ([]byte, error)
	PutPolicy(ctx context.Context, doc []byte) error
}

// ServerSource is what the policy follows to resolve server names to paths:
// registry.Service satisfies it.
type ServerSource interface {
	List(ctx context.Context) ([]*registry.Server, error)
	Subscribe(fn func(registry.Event))
}

// PolicyOptions configure a Policy.
type PolicyOptions struct {
	// Store keeps the policy document; nil keeps edits in memory only.
	Store PolicyStore
	// IdentityProvider says an OIDC issuer is configured: the gateway then
	// denies by default even before any policy is stored.
	IdentityProvider bool
	// Log receives one audit event per decision: debug for allow, info for
	// deny.
	Log zerolog.Logger
	// OnDecision, when set, is called after each decision (for metrics).
	OnDecision func(allowed bool)
}

// Policy is the access decision of every surface. Until a policy is stored or
// an identity provider configured (local mode), every caller may read and use
// every server and only admins may administer, as before any policy existed.
// Once either is configured, access is denied unless a scope of one of the
// caller's groups grants it (SPEC section 5). The document is held in an
// atomic pointer, so Replace takes effect for the very next decision.
type Policy struct {
	opts  PolicyOptions
	state atomic.Pointer[policyState]
	names atomic.Pointer[map[string]string] // server key -> server_name
}

// policyState is one immutable version of the policy.
type policyState struct {
	enforcing bool
	doc       *PolicyDoc // nil: none stored
	raw       []byte     // canonical JSON of doc
	byGroup   map[string][]*Rule
}

// NewPolicy returns the local-mode policy, held in memory only.
func NewPolicy() *Policy {
	pol, _ := LoadPolicy(context.Background(), PolicyOptions{Log: zerolog.Nop()})
	return pol
}

// LoadPolicy returns the policy stored in opts.Store (none stored is not an
// error). A stored document that no longer validates is an error: starting
// with a policy other than the one an admin stored would be worse.
func LoadPolicy(ctx context.Context, opts PolicyOptions) (*Policy, error) {
	pol := &Policy{opts: opts}
	empty := map[string]string{}
	pol.names.Store(&empty)
	var doc *PolicyDoc
	if opts.Store != nil {
		raw, err := opts.Store.GetPolicy(ctx)
		switch {
		case errors.Is(err, registry.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("auth: load policy: %w", err)
		default:
			d, _, err := ParsePolicy(raw, nil)
			if err != nil {
				return nil, fmt.Errorf("auth: stored policy: %w", err)
			}
			doc = d
		}
	}
	pol.swap(doc)
	return pol, nil
}

func (pol *Policy) swap(doc *PolicyDoc) {
	st := &policyState{enforcing: doc != nil || pol.opts.IdentityProvider, doc: doc}
	if doc != nil {
		st.raw = doc.canonical()
		st.byGroup = doc.compile()
	}
	pol.state.Store(st)
}

// Replace validates doc (YAML or JSON), stores it and makes it the policy at
// once. known are the registered servers, for warnings about rules that name
// none of them. Nothing changes when doc is invalid.
func (pol *Policy) Replace(ctx context.Context, doc []byte, known []*registry.Server) ([]string, error) {
	d, warnings, err := ParsePolicy(doc, known)
	if err != nil {
		return nil, err
	}
	if pol.opts.Store != nil {
		if err := pol.opts.Store.PutPolicy(ctx, d.canonical()); err != nil {
			return nil, fmt.Errorf("auth: store policy: %w", err)
		}
	}
	pol.swap(d)
	return warnings, nil
}

// Reload re-reads the stored policy and makes it the policy at once: for a
// policy another gateway replica stored in the shared store. A stored
// document that no longer validates is an error and leaves the policy in
// force unchanged.
func (pol *Policy) Reload(ctx context.Context) error {
	if pol.opts.Store == nil {
		return nil
	}
	raw, err := pol.opts.Store.GetPolicy(ctx)
	var doc *PolicyDoc
	switch {
	case errors.Is(err, registry.ErrNotFound):
	case err != nil:
		return fmt.Errorf("auth: reload policy: %w", err)
	default:
		if cur := pol.state.Load(); cur.raw != nil && string(cur.raw) == string(raw) {
			return nil // unchanged (the periodic resync)
		}
		if doc, _, err = ParsePolicy(raw, nil); err != nil {
			return fmt.Errorf("auth: stored policy: %w", err)
		}
	}
	pol.swap(doc)
	return nil
}

// Document returns the policy in force as canonical JSON, or nil in local
// mode without a stored policy.
func (pol *Policy) Document() []byte {
	return pol.state.Load().raw
}

// AuthRequired reports whether callers must present a token: true once a
// policy or an identity provider is configured.
func (pol *Policy) AuthRequired() bool { return pol.state.Load().enforcing }

// TrackServers keeps the policy's view of server names current, so rules
// may name a server by server_name as well as by path.
func (pol *Policy) TrackServers(ctx context.Context, src ServerSource) error {
	src.Subscribe(func(ev registry.Event) {
		old := *pol.names.Load()
		m := make(map[string]string, len(old)+1)
		for k, v := range old {
			m[k] = v
		}
		delete(m, ev.Key)
		if ev.Kind == registry.EventPut && ev.Server != nil {
			m[ev.Key] = ev.Server.ServerName
		}
		pol.names.Store(&m)
	})
	servers, err := src.List(ctx)
	if err != nil {
		return fmt.Errorf("auth: track servers: %w", err)
	}
	m := make(map[string]string, len(servers))
	for _, s := range servers {
		m[registry.PathKey(s.Path)] = s.ServerName
	}
	pol.names.Store(&m)
	return nil
}

// HasAccess reports whether p may use the gateway at all: in local mode
// anyone may; otherwise admins and callers whose groups map to a scope.
func (pol *Policy) HasAccess(p *Principal) bool {
	if p == nil {
		return false
	}
	st := pol.state.Load()
	return !st.enforcing || p.Admin || len(st.rules(p)) > 0
}

// ToolsRestricted reports whether some tools of server may be hidden from p,
// so that tools/list results for p must be filtered. False means p may call
// every tool of server (the relay's fast path).
func (pol *Policy) ToolsRestricted(p *Principal, server string) bool {
	st := pol.state.Load()
	if !st.enforcing || p != nil && p.Admin {
		return false
	}
	names := *pol.names.Load()
	for _, r := range st.rules(p) {
		if r.matchesServer(server, names) && r.matchesMethod("tools/call") && slices.Contains(r.Tools, "*") {
			return false
		}
	}
	return true
}

// Allowed is the one decision every surface asks: may p perform method (an
// MCP method, ActionRead, ActionAdmin, or "" for the relay's GET and DELETE)
// on server (its path, or "*" for gateway-wide administration), and for
// tools/call, on tool?
func (pol *Policy) Allowed(p *Principal, server, method, tool string) bool {
	ok, reason := pol.decide(p, server, method, tool)
	pol.audit(p, server, method, tool, ok, reason)
	if pol.opts.OnDecision != nil {
		pol.opts.OnDecision(ok)
	}
	return ok
}

func (pol *Policy) decide(p *Principal, server, method, tool string) (bool, string) {
	if p == nil {
		return false, "no principal"
	}
	if method != "tools/call" && strings.EqualFold(method, "tools/call") {
		// Judged as what it may be taken for: the tool check must not
		// depend on how the method is spelled.
		method = "tools/call"
	}
	st := pol.state.Load()
	if !st.enforcing {
		if method == ActionAdmin {
			if p.Admin {
				return true, "local mode: admin key"
			}
			return false, "local mode: only admin keys may administer"
		}
		return true, "local mode"
	}
	if p.Admin {
		return true, "admin key"
	}
	rules := st.rules(p)
	if len(rules) == 0 {
		if st.doc == nil {
			return false, "no policy is stored; only admin keys have access"
		}
		return false, "no scope is mapped to the caller's groups"
	}
	names := *pol.names.Load()
	for _, r := range rules {
		switch {
		case method == ActionAdmin:
			if r.Admin && (r.Server == "*" || server != "*" && r.matchesServer(server, names)) {
				return true, "admin scope " + r.scope
			}
		case !r.matchesServer(server, names):
		case method == ActionRead || method == "":
			return true, "scope " + r.scope
		case !r.matchesMethod(method):
		case method == "tools/call" && !r.matchesTool(tool):
		default:
			return true, "scope " + r.scope
		}
	}
	switch method {
	case ActionAdmin:
		return false, "no admin scope for this server"
	case "tools/call":
		return false, "no scope grants this tool"
	default:
		return false, "no scope grants this method on this server"
	}
}

// audit logs one decision. Hiding a server from a list (ActionRead) is
// filtering, not a refused request, so its denials are logged at debug too.
func (pol *Policy) audit(p *Principal, server, method, tool string, ok bool, reason string) {
	lg := &pol.opts.Log
	ev := lg.Debug()
	decision := "allow"
	if !ok {
		decision = "deny"
		if method != ActionRead {
			ev = lg.Info()
		}
	}
	if ev == nil {
		return
	}
	subject, groups := "", []string(nil)
	if p != nil {
		subject, groups = p.Subject, p.Groups
	}
	ev.Str("audit", "access").Str("subject", subject).Strs("groups", groups).Str("server", server).
		Str("method", method).Str("tool", tool).Str("decision", decision).Str("reason", reason).Msg("access decision")
}

// rules returns the rules granted to p by its groups.
func (st *policyState) rules(p *Principal) []*Rule {
	if p == nil || st.byGroup == nil {
		return nil
	}
	var out []*Rule
	for _, g := range p.Groups {
		out = append(out, st.byGroup[g]...)
	}
	return out
}

func (r *Rule) matchesServer(server string, names map[string]string) bool {
	if r.Server == "*" {
		return true
	}
	if server == "*" {
		return false
	}
	key := registry.PathKey(server)
	if key == "" {
		return false
	}
	if registry.PathKey(r.Server) == key {
		return true
	}
	name, ok := names[key]
	return ok && name != "" && strings.EqualFold(name, r.Server)
}

func (r *Rule) matchesMethod(method string) bool {
	return slices.Contains(r.Methods, "*") || slices.Contains(r.Methods, method)
}

func (r *Rule) matchesTool(tool string) bool {
	return tool != "" && (slices.Contains(r.Tools, "*") || slices.Contains(r.Tools, tool))
}
