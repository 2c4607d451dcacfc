package gateway

import (
	"context"
	"testing"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
)

// Tools of an unhealthy server stay findable but rank after those of
// servers that are not known to be down (SPEC section 6).
func TestFinderRanksUnhealthyLast(t *testing.T) {
	f := newFixture(t)
	f.withFinder(t)
	health := &fakeHealth{}
	f.deps.Health = health
	env := f.serve(t, Options{}, nil)
	tool := func(name, desc string) map[string]any {
		return map[string]any{"name": name, "parsed_description": map[string]any{"main": desc}}
	}
	// "down" matches the query best; "up" matches less well.
	env.register(t, map[string]any{"server_name": "down", "path": "/down", "proxy_pass_url": "http://127.0.0.1:9/mcp",
		"tool_list": []any{tool("check_warranty_status", "Check the warranty status of a product by serial number")}})
	env.register(t, map[string]any{"server_name": "up", "path": "/up", "proxy_pass_url": "http://127.0.0.1:9/mcp",
		"tool_list": []any{tool("product_lookup", "Look up a product and its warranty")}})
	find := func(top ...int) []string {
		n := 2
		if len(top) > 0 {
			n = top[0]
		}
		res, err := env.gw.find(context.Background(), auth.Anonymous, findParams{Query: "check warranty status", Top: n})
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		for _, r := range res {
			paths = append(paths, r.ServicePath)
		}
		return paths
	}
	if got := find(); len(got) != 2 || got[0] != "/down" {
		t.Fatalf("while healthy: %v, want /down first", got)
	}
	health.set("down", registry.Health{Status: registry.HealthUnhealthy, Reason: "connection refused"})
	if got := find(); len(got) != 2 || got[0] != "/up" || got[1] != "/down" {
		t.Fatalf("while /down is unhealthy: %v, want [/up /down]", got)
	}
	// Asked for one tool, the finder still looks past the unhealthy best
	// match for a healthy one.
	if got := find(1); len(got) != 1 || got[0] != "/up" {
		t.Fatalf("top 1 while /down is unhealthy: %v, want [/up]", got)
	}
	health.set("down", registry.Health{Status: registry.HealthAuthRequired})
	if got := find(); got[0] != "/down" {
		t.Fatalf("healthy-auth-required is not a failure: %v", got)
	}
}
