package gateway

import (
	"context"
	"encoding/json"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
)

// serviceSummary is one entry of list_services and GET /api/v1/servers
// (SPEC section 4.1).
type serviceSummary struct {
	ServerName          string   `json:"server_name"`
	Path                string   `json:"path"`
	Description         string   `json:"description"`
	Tags                []string `json:"tags"`
	Enabled             bool     `json:"enabled"`
	HealthStatus        string   `json:"health_status"`
	LastCheckedISO      string   `json:"last_checked_iso"`
	NumTools            int      `json:"num_tools"`
	SupportedTransports []string `json:"supported_transports"`
	AuthProvider        string   `json:"auth_provider"`
	AuthType            string   `json:"auth_type"`
}

type serviceList struct {
	Services   []serviceSummary `json:"services"`
	TotalCount int              `json:"total_count"`
}

func (g *Gateway) healthOf(s *registry.Server) registry.Health {
	if !s.Enabled {
		return registry.Health{Status: registry.HealthDisabled}
	}
	return g.health.Health(registry.PathKey(s.Path))
}

func (g *Gateway) summarize(p *auth.Principal, s *registry.Server) serviceSummary {
	h := g.healthOf(s)
	return serviceSummary{
		ServerName: s.ServerName, Path: s.Path, Description: s.Description,
		Tags: nonNil(s.Tags), Enabled: s.Enabled,
		HealthStatus: h.Display(), LastCheckedISO: h.LastCheckedISO(),
		NumTools:            g.countVisibleTools(p, s),
		SupportedTransports: nonNil(s.SupportedTransports),
		AuthProvider:        s.AuthProvider, AuthType: s.AuthType,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// visibleServers lists the servers p may see.
func (g *Gateway) visibleServers(ctx context.Context, p *auth.Principal) ([]*registry.Server, error) {
	all, err := g.reg.List(ctx)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, s := range all {
		if g.policy.Allowed(p, s.Path, auth.ActionRead, "") {
			out = append(out, s)
		}
	}
	return out, nil
}

func (g *Gateway) listServices(ctx context.Context, p *auth.Principal) (serviceList, error) {
	servers, err := g.visibleServers(ctx, p)
	if err != nil {
		return serviceList{}, err
	}
	l := serviceList{Services: make([]serviceSummary, 0, len(servers))}
	for _, s := range servers {
		l.Services = append(l.Services, g.summarize(p, s))
	}
	l.TotalCount = len(l.Services)
	return l, nil
}

// visibleServer returns one server p may see; a server p may not see is
// reported as not found, so its existence does not leak.
func (g *Gateway) visibleServer(ctx context.Context, p *auth.Principal, path string) (*registry.Server, error) {
	s, err := g.reg.Get(ctx, path)
	if err != nil {
		return nil, err
	}
	if !g.policy.Allowed(p, s.Path, auth.ActionRead, "") {
		return nil, registry.ErrNotFound
	}
	return s, nil
}

// visibleTools is list, one of the tool lists of s, as p may see it.
func (g *Gateway) visibleTools(p *auth.Principal, s *registry.Server, list []registry.Tool) []registry.Tool {
	if g.allToolsVisible(p, s) {
		return append(make([]registry.Tool, 0, len(list)), list...)
	}
	out := make([]registry.Tool, 0, len(list))
	for _, t := range list {
		if g.policy.Allowed(p, s.Path, "tools/call", t.Name) {
			out = append(out, t)
		}
	}
	return out
}

// allToolsVisible reports whether p may use every tool of s, as the
// policy can tell at once (see toolsRestricter): then nothing needs to ask
// about each tool.
func (g *Gateway) allToolsVisible(p *auth.Principal, s *registry.Server) bool {
	tr, ok := g.policy.(toolsRestricter)
	return ok && !tr.ToolsRestricted(p, s.Path)
}

// countVisibleTools is len(visibleTools(p, s)) without copying the tools:
// list_services asks it for every server. Unless the policy restricts the
// tools of s for p, that is every tool, without a decision per tool.
func (g *Gateway) countVisibleTools(p *auth.Principal, s *registry.Server) int {
	if g.allToolsVisible(p, s) {
		return len(s.ToolList)
	}
	n := 0
	for _, t := range s.ToolList {
		if g.policy.Allowed(p, s.Path, "tools/call", t.Name) {
			n++
		}
	}
	return n
}

// details is the full public view of one server (header values redacted),
// with its health and only the tools p may use.
func (g *Gateway) details(p *auth.Principal, s *registry.Server) (map[string]any, error) {
	c := s.Clone()
	c.ToolList = g.visibleTools(p, s, s.ToolList)
	// Changed definitions awaiting approval name tools too: a caller who
	// may not use a tool must not learn of it from them either.
	if len(c.PendingTools) > 0 {
		c.PendingTools = g.visibleTools(p, s, s.PendingTools)
	}
	c.NumTools = len(c.ToolList)
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	h := g.healthOf(s)
	m["health_status"] = h.Display()
	m["last_checked_iso"] = h.LastCheckedISO()
	return m, nil
}
