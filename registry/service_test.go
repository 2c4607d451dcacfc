package registry_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/registry/sqlite"
)

func doc(path string) []byte {
	return []byte(fmt.Sprintf(`{"server_name":%q,"path":%q,"proxy_pass_url":"http://127.0.0.1:9/mcp"}`, path, path))
}

// TestServiceMemoryFollowsStore checks that the in-memory registry the
// Service reads from always equals what a fresh reader finds in the store,
// through a sequence of writes in and out of order.
func TestServiceMemoryFollowsStore(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, t.TempDir()+"/r.db")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	svc := registry.NewService(store)
	if _, err := svc.List(ctx); err != nil { // load the (empty) snapshot first
		t.Fatal(err)
	}
	var events []registry.Event
	svc.Subscribe(func(ev registry.Event) { events = append(events, ev) })
	steps := []struct {
		name string
		do   func() error
	}{
		{"register m", func() error { _, _, err := svc.Register(ctx, doc("/m"), false); return err }},
		{"register a", func() error { _, _, err := svc.Register(ctx, doc("/a"), false); return err }},
		{"register z", func() error { _, _, err := svc.Register(ctx, doc("/z"), false); return err }},
		{"disable a", func() error { _, err := svc.SetEnabled(ctx, "a", false); return err }},
		{"overwrite m", func() error { _, _, err := svc.Register(ctx, doc("/m"), true); return err }},
		{"remove z", func() error { return svc.Remove(ctx, "/z/") }},
		{"tools on m", func() error {
			_, err := svc.SetTools(ctx, "m", []registry.Tool{{Name: "t1"}})
			return err
		}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		mem, _ := svc.List(ctx)
		fresh, _ := registry.NewService(store).List(ctx)
		if got, want := summarize(mem), summarize(fresh); got != want {
			t.Fatalf("after %s: memory %s, store %s", st.name, got, want)
		}
	}
	if len(events) != len(steps) {
		t.Fatalf("%d events for %d writes", len(events), len(steps))
	}
	if _, err := svc.Get(ctx, "z"); err == nil {
		t.Fatal("removed server still found")
	}
	got, err := svc.Get(ctx, "/m")
	if err != nil || got.NumTools != 1 {
		t.Fatalf("get m: %+v %v", got, err)
	}
	got.ServerName = "mutated" // a caller's copy must not change the registry
	again, _ := svc.Get(ctx, "m")
	if again.ServerName != "/m" {
		t.Fatalf("Get returned shared state: %q", again.ServerName)
	}
}

func summarize(servers []*registry.Server) string {
	s := ""
	for _, srv := range servers {
		s += fmt.Sprintf("%s:%v:%d ", srv.Path, srv.Enabled, srv.NumTools)
	}
	return s
}
