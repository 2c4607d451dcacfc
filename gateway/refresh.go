package gateway

import (
	"context"
	"errors"
	"fmt"

	"github.com/mcpgw/mcpgw/registry"
)

// ToolLister reads a server's current tool list from its upstream.
type ToolLister interface {
	ListTools(ctx context.Context, s *registry.Server) ([]registry.Tool, error)
}

// errUpstream marks failures of an upstream exchange (502 at the edge).
var errUpstream = errors.New("upstream failed")

type refreshResult struct {
	Path     string `json:"path"`
	NumTools int    `json:"num_tools"`
	registry.ToolDiff
}

// refresh re-reads the tool list of one server from its upstream, stores it
// (which re-indexes it through the registry's subscribers) and reports what
// changed.
func (g *Gateway) refresh(ctx context.Context, path string) (refreshResult, error) {
	s, err := g.reg.Get(ctx, path)
	if err != nil {
		return refreshResult{}, err
	}
	if g.lister == nil {
		return refreshResult{}, fmt.Errorf("refresh %s: %w: no upstream client configured", s.Path, errUpstream)
	}
	tools, err := g.lister.ListTools(ctx, s)
	if err != nil {
		return refreshResult{}, fmt.Errorf("refresh %s: %w: %v", s.Path, errUpstream, err)
	}
	res := refreshResult{Path: s.Path, NumTools: len(tools), ToolDiff: registry.DiffTools(s.ToolList, tools)}
	// Unchanged tools keep their registered entry (its parsed_description
	// args and returns), which the upstream's listing does not carry.
	if _, err := g.reg.SetTools(ctx, path, registry.MergeTools(s.ToolList, tools)); err != nil {
		return refreshResult{}, err
	}
	logFrom(ctx).Info().Str("server", s.Path).Int("num_tools", len(tools)).
		Strs("added", res.Added).Strs("removed", res.Removed).Strs("changed", res.Changed).Msg("tool list refreshed")
	return res, nil
}
