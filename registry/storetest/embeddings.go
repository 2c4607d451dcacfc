package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/registry"
)

// embeddingStore is what the tool finder's embedding cache asks of a store
// (search.EmbeddingCache; declared here too, as registry imports nothing of
// ours).
type embeddingStore interface {
	GetEmbeddings(ctx context.Context, model string, hashes []string) (map[string][]float32, error)
	PutEmbeddings(ctx context.Context, model string, vecs map[string][]float32) error
	PruneEmbeddings(ctx context.Context, model string, keep []string, before time.Time) (int64, error)
}

// RunEmbeddings exercises the embedding cache of the stores that open
// returns (a new, empty store for each call, closed in t.Cleanup). A store
// without the cache's methods fails.
func RunEmbeddings(t *testing.T, open func(t *testing.T) registry.Store) {
	cache := func(t *testing.T) embeddingStore {
		s := open(t)
		c, ok := s.(embeddingStore)
		if !ok {
			t.Fatalf("%T has no GetEmbeddings/PutEmbeddings/PruneEmbeddings", s)
		}
		return c
	}
	ctx := context.Background()
	t.Run("EmbeddingsMissing", func(t *testing.T) {
		c := cache(t)
		got, err := c.GetEmbeddings(ctx, "m", []string{"a", "b"})
		if err != nil || len(got) != 0 {
			t.Fatalf("GetEmbeddings on an empty store = %v, %v; want an empty map", got, err)
		}
		if got, err := c.GetEmbeddings(ctx, "m", nil); err != nil || got == nil || len(got) != 0 {
			t.Fatalf("GetEmbeddings of no hashes = %#v, %v; want an empty map", got, err)
		}
	})
	t.Run("EmbeddingsExact", func(t *testing.T) {
		// Every bit is kept: signs, subnormals, infinities, large and
		// tiny values.
		vec := []float32{0, -0.5, 1, float32(math.Pi), -1e-38, 1e-45, math.MaxFloat32, float32(math.Inf(-1)), 0.1}
		c := cache(t)
		if err := c.PutEmbeddings(ctx, "m", map[string][]float32{"h1": vec, "h2": {}}); err != nil {
			t.Fatalf("PutEmbeddings: %v", err)
		}
		got, err := c.GetEmbeddings(ctx, "m", []string{"h1", "h2", "h3"})
		if err != nil {
			t.Fatalf("GetEmbeddings: %v", err)
		}
		if len(got) != 2 || len(got["h2"]) != 0 {
			t.Fatalf("GetEmbeddings = %v, want h1 and an empty h2", got)
		}
		for i := range vec {
			if math.Float32bits(got["h1"][i]) != math.Float32bits(vec[i]) {
				t.Fatalf("vector = %v, want %v", got["h1"], vec)
			}
		}
	})
	t.Run("EmbeddingsPruned", func(t *testing.T) {
		c := cache(t)
		v := []float32{1}
		if err := c.PutEmbeddings(ctx, "m", map[string][]float32{"keep": v, "old1": v, "old2": v}); err != nil {
			t.Fatal(err)
		}
		if err := c.PutEmbeddings(ctx, "other", map[string][]float32{"old1": v}); err != nil {
			t.Fatal(err)
		}
		// Stored after the cut-off: spared.
		if n, err := c.PruneEmbeddings(ctx, "m", []string{"keep"}, time.Now().Add(-time.Hour)); err != nil || n != 0 {
			t.Fatalf("prune with a cut-off before the vectors were stored = %d, %v; want 0", n, err)
		}
		if n, err := c.PruneEmbeddings(ctx, "m", []string{"keep"}, time.Now().Add(time.Second)); err != nil || n != 2 {
			t.Fatalf("PruneEmbeddings = %d, %v; want 2", n, err)
		}
		got, err := c.GetEmbeddings(ctx, "m", []string{"keep", "old1", "old2"})
		if err != nil || len(got) != 1 || got["keep"] == nil {
			t.Fatalf("after pruning: %v, %v; want only keep", got, err)
		}
		if got, err := c.GetEmbeddings(ctx, "other", []string{"old1"}); err != nil || len(got) != 1 {
			t.Fatalf("another model's vectors: %v, %v; want them untouched", got, err)
		}
		if n, err := c.PruneEmbeddings(ctx, "other", nil, time.Now().Add(time.Second)); err != nil || n != 1 {
			t.Fatalf("prune keeping nothing = %d, %v; want 1", n, err)
		}
	})
	t.Run("EmbeddingsKeyedByModel", func(t *testing.T) {
		c := cache(t)
		if err := c.PutEmbeddings(ctx, "small", map[string][]float32{"h": {1, 2}}); err != nil {
			t.Fatal(err)
		}
		if err := c.PutEmbeddings(ctx, "large", map[string][]float32{"h": {3, 4, 5}}); err != nil {
			t.Fatal(err)
		}
		for model, want := range map[string][]float32{"small": {1, 2}, "large": {3, 4, 5}} {
			got, err := c.GetEmbeddings(ctx, model, []string{"h"})
			if err != nil || !reflect.DeepEqual(got["h"], want) {
				t.Errorf("model %s: %v, %v; want %v", model, got, err, want)
			}
		}
		if got, err := c.GetEmbeddings(ctx, "other", []string{"h"}); err != nil || len(got) != 0 {
			t.Errorf("an unknown model: %v, %v; want nothing", got, err)
		}
	})
	t.Run("EmbeddingsReplaced", func(t *testing.T) {
		c := cache(t)
		for _, v := range [][]float32{{1, 1}, {2, 2, 2}} {
			if err := c.PutEmbeddings(ctx, "m", map[string][]float32{"h": v}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := c.GetEmbeddings(ctx, "m", []string{"h"})
		if err != nil || !reflect.DeepEqual(got["h"], []float32{2, 2, 2}) {
			t.Errorf("after a replacement: %v, %v; want [2 2 2]", got, err)
		}
	})
	t.Run("EmbeddingsMany", func(t *testing.T) {
		// More than one statement's worth of parameters in SQLite.
		c := cache(t)
		const n = 1234
		vecs := make(map[string][]float32, n)
		hashes := make([]string, 0, n+1)
		for i := 0; i < n; i++ {
			h := fmt.Sprintf("%064x", i)
			vecs[h] = []float32{float32(i), -float32(i)}
			hashes = append(hashes, h)
		}
		if err := c.PutEmbeddings(ctx, "m", vecs); err != nil {
			t.Fatal(err)
		}
		got, err := c.GetEmbeddings(ctx, "m", append(hashes, "absent"))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, vecs) {
			t.Errorf("GetEmbeddings returned %d vectors, want the %d stored", len(got), n)
		}
	})
	t.Run("EmbeddingsNeedModel", func(t *testing.T) {
		c := cache(t)
		if err := c.PutEmbeddings(ctx, "", map[string][]float32{"h": {1}}); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("PutEmbeddings without a model = %v, want ErrInvalid", err)
		}
	})
}
