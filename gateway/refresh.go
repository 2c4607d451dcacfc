package gateway

import (
	"bytes"
	"encoding/json"
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
	Path     string   `json:"path"`
	NumTools int      `json:"num_tools"`
	Added    []string `json:"added"`
	Removed  []string `json:"removed"`
	Changed  []string `json:"changed"`
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
	res := diffTools(s.ToolList, tools)
	res.Path, res.NumTools = s.Path, len(tools)
	if _, err := g.reg.SetTools(ctx, path, tools); err != nil {
		return refreshResult{}, err
	}
	logFrom(ctx).Info().Str("server", s.Path).Int("num_tools", len(tools)).
		Strs("added", res.Added).Strs("removed", res.Removed).Strs("changed", res.Changed).Msg("tool list refreshed")
	return res, nil
}

func diffTools(old, cur []registry.Tool) refreshResult {
	res := refreshResult{Added: []string{}, Removed: []string{}, Changed: []string{}}
	before := make(map[string]registry.Tool, len(old))
	for _, t := range old {
		before[t.Name] = t
	}
	for _, t := range cur {
		o, ok := before[t.Name]
		switch {
		case !ok:
			res.Added = append(res.Added, t.Name)
		case o.Description() != t.Description() || !bytes.Equal(compact(o.Schema), compact(t.Schema)):
			res.Changed = append(res.Changed, t.Name)
		}
		delete(before, t.Name)
	}
	for _, t := range old {
		if _, gone := before[t.Name]; gone {
			res.Removed = append(res.Removed, t.Name)
		}
	}
	return res
}

func compact(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}
