package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/registry"
)

// RunHealth exercises the health-state methods of the stores that open
// returns (a new, empty store for each call, closed in t.Cleanup).
func RunHealth(t *testing.T, open func(t *testing.T) registry.Store) {
	ok := registry.Health{Status: registry.HealthHealthy, LastChecked: stamp, Latency: 12345 * time.Microsecond}
	bad := registry.Health{Status: registry.HealthUnhealthy, Reason: "connection refused", LastChecked: stamp.Add(time.Minute),
		Latency: 3 * time.Millisecond, ConsecutiveFailures: 4}
	t.Run("HealthEmpty", func(t *testing.T) {
		got, err := open(t).LoadHealth(context.Background())
		if err != nil || len(got) != 0 {
			t.Fatalf("LoadHealth on an empty store = %v, %v; want none", got, err)
		}
	})
	t.Run("HealthSavedAndReplaced", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		for _, p := range []string{"/a", "/b"} {
			if err := s.Create(ctx, server(t, p, nil)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SaveHealth(ctx, map[string]registry.Health{"a": ok, "b": ok}); err != nil {
			t.Fatalf("SaveHealth: %v", err)
		}
		if err := s.SaveHealth(ctx, map[string]registry.Health{"b": bad}); err != nil {
			t.Fatalf("SaveHealth: %v", err)
		}
		got, err := s.LoadHealth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]registry.Health{"a": ok, "b": bad}
		if !reflect.DeepEqual(normalize(got), normalize(want)) {
			t.Fatalf("LoadHealth = %+v, want %+v", got, want)
		}
	})
	t.Run("HealthOfUnknownServerDropped", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		if err := s.Create(ctx, server(t, "/a", nil)); err != nil {
			t.Fatal(err)
		}
		// A server removed while its check ran: the batch still commits.
		if err := s.SaveHealth(ctx, map[string]registry.Health{"a": ok, "gone": bad}); err != nil {
			t.Fatalf("SaveHealth with a state of no server: %v", err)
		}
		got, err := s.LoadHealth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, has := got["gone"]; has || got["a"].Status != registry.HealthHealthy {
			t.Fatalf("LoadHealth = %+v, want only a", got)
		}
	})
	t.Run("HealthGoesWithServer", func(t *testing.T) {
		ctx := context.Background()
		s := open(t)
		if err := s.Create(ctx, server(t, "/a", nil)); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveHealth(ctx, map[string]registry.Health{"a": bad}); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, server(t, "/a", nil)); err != nil {
			t.Fatal(err)
		}
		got, err := s.LoadHealth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 {
			t.Fatalf("a removed and re-registered server kept its old state: %+v", got)
		}
	})
}

// normalize makes times comparable with reflect.DeepEqual (location and
// monotonic clock reading dropped).
func normalize(m map[string]registry.Health) map[string]registry.Health {
	out := make(map[string]registry.Health, len(m))
	for k, h := range m {
		h.LastChecked = h.LastChecked.UTC().Round(0)
		out[k] = h
	}
	return out
}
