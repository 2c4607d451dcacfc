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
	// HeldBack names tools whose changed definitions await approval
	// (pin_tools); calls to them are refused meanwhile.
	HeldBack []string `json:"held_back"`
	Approved bool     `json:"approved,omitempty"`
}

// refreshServiceSchema is the input of the refresh_service meta tool.
const refreshServiceSchema = `{"type":"object","properties":{` +
	`"service_path":{"type":"string","description":"Path of the service, e.g. /weather"},` +
	`"approve":{"type":"boolean","description":"Approve changed tool definitions of a server with pin_tools (default false)"}},` +
	`"required":["service_path"]}`

// heldMessage is the refusal of a call to a tool whose changed definition
// awaits approval.
func heldMessage(s *registry.Server, tool string) string {
	return fmt.Sprintf("tool %s on %s changed upstream and awaits approval (pin_tools); an admin approves it with: mcpgw refresh --approve %s",
		tool, s.Path, s.Path)
}

// refresh re-reads the tool list of one server from its upstream, stores it
// (which re-indexes it through the registry's subscribers) and reports what
// changed. On a server with pin_tools, changed definitions of existing tools
// are held back unless approve is set.
func (g *Gateway) refresh(ctx context.Context, path string) (refreshResult, error) {
	return g.refreshTools(ctx, path, false)
}

func (g *Gateway) refreshTools(ctx context.Context, path string, approve bool) (refreshResult, error) {
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
	l := registry.ApplyListing(s, tools, approve)
	res := refreshResult{Path: s.Path, NumTools: len(l.Tools), ToolDiff: l.Diff, HeldBack: []string{}, Approved: approve && s.PinTools}
	for _, t := range l.Pending {
		res.HeldBack = append(res.HeldBack, t.Name)
	}
	if l.Store {
		if _, err := g.reg.SetToolsPending(ctx, path, l.Tools, l.Pending); err != nil {
			return refreshResult{}, err
		}
	}
	ev := logFrom(ctx).Info()
	if len(l.NewlyChanged) > 0 {
		ev = logFrom(ctx).Warn().Strs("newly_changed", l.NewlyChanged)
	}
	ev.Str("server", s.Path).Int("num_tools", res.NumTools).Strs("added", res.Added).Strs("removed", res.Removed).
		Strs("changed", res.Changed).Strs("held_back", res.HeldBack).Bool("approved", res.Approved).Msg("tool list refreshed")
	return res, nil
}
