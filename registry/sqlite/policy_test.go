package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/registry/storetest"
)

func TestPolicyConformance(t *testing.T) {
	storetest.RunPolicy(t, func(t *testing.T) registry.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "mcpgw.db"))
	})
}

func TestPolicyRoundTripAndSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "mcpgw.db")
	s, err := Open(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPolicy(ctx); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("GetPolicy on a new store = %v, want ErrNotFound", err)
	}
	for _, doc := range []string{`{"scopes":{"a":[]}}`, `{"group_mappings":{"g":["b"]},"scopes":{"b":[]}}`} {
		if err := s.PutPolicy(ctx, []byte(doc)); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetPolicy(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != doc {
			t.Fatalf("GetPolicy = %s, want %s", got, doc)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, file)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.GetPolicy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"group_mappings":{"g":["b"]},"scopes":{"b":[]}}`; string(got) != want {
		t.Fatalf("after reopen GetPolicy = %s, want %s", got, want)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM policy`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("policy rows = %d (%v), want exactly 1", n, err)
	}
}
