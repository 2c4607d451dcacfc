package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/mcpgw/mcpgw/registry"
)

// RunPolicy exercises the access-policy methods of the stores that open
// returns (a new, empty store for each call, closed in t.Cleanup).
func RunPolicy(t *testing.T, open func(t *testing.T) registry.Store) {
	t.Run("PolicyMissing", func(t *testing.T) {
		if _, err := open(t).GetPolicy(context.Background()); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("GetPolicy on an empty store = %v, want ErrNotFound", err)
		}
	})
	t.Run("PolicyReplacedWhole", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		docs := []string{
			`{"group_mappings":{"a":["x"]},"scopes":{"x":[{"server":"*","methods":["*"]}]}}`,
			`{"scopes":{}}`,
		}
		for _, doc := range docs {
			if err := s.PutPolicy(ctx, []byte(doc)); err != nil {
				t.Fatalf("PutPolicy: %v", err)
			}
			got, err := s.GetPolicy(ctx)
			if err != nil {
				t.Fatalf("GetPolicy: %v", err)
			}
			if string(got) != doc {
				t.Fatalf("GetPolicy = %s, want %s", got, doc)
			}
		}
	})
}
