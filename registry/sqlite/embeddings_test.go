package sqlite

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/registry/storetest"
)

func TestEmbeddingsConformance(t *testing.T) {
	storetest.RunEmbeddings(t, func(t *testing.T) registry.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "mcpgw.db"))
	})
}

// TestEmbeddingsSurviveReopen checks that the cache is on disk: a restarted
// gateway finds the vectors it computed before.
func TestEmbeddingsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "mcpgw.db")
	s := openTemp(t, file)
	want := map[string][]float32{"a": {0.25, -1}, "b": {3}}
	if err := s.PutEmbeddings(ctx, "m", want); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := openTemp(t, file).GetEmbeddings(ctx, "m", []string{"a", "b"})
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopening: %v, %v; want %v", got, err, want)
	}
}
