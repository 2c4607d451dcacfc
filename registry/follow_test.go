package registry_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/registry/sqlite"
)

// twoReplicas returns two Services over one store file, as two replicas over
// one shared database, each with its in-memory registry loaded, and the
// events b's subscribers receive.
func twoReplicas(t *testing.T) (a, b *registry.Service, events *[]registry.Event) {
	t.Helper()
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "r.db")
	open := func() *registry.Service {
		st, err := sqlite.Open(ctx, file)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		svc := registry.NewService(st)
		if _, err := svc.List(ctx); err != nil {
			t.Fatal(err)
		}
		return svc
	}
	a, b = open(), open()
	events = new([]registry.Event)
	b.Subscribe(func(ev registry.Event) { *events = append(*events, ev) })
	return a, b, events
}

func eventString(evs []registry.Event) string {
	s := ""
	for _, ev := range evs {
		kind := "put"
		if ev.Kind == registry.EventRemoved {
			kind = "removed"
		} else if ev.Server == nil || registry.PathKey(ev.Server.Path) != ev.Key {
			kind = "put-without-server"
		}
		s += fmt.Sprintf("%s:%s ", kind, ev.Key)
	}
	return s
}

// TestReloadFollowsAnotherWriter checks that Reload brings one server of the
// in-memory registry up to what another writer committed, with the event a
// local write would have sent, and stays quiet when nothing changed.
func TestReloadFollowsAnotherWriter(t *testing.T) {
	ctx := context.Background()
	a, b, events := twoReplicas(t)
	steps := []struct {
		name  string
		write func() error
		key   string
		want  string // events on b after Reload(key)
	}{
		{"register", func() error { _, _, err := a.Register(ctx, doc("/m"), false); return err }, "m", "put:m "},
		{"no change", func() error { return nil }, "m", ""},
		{"disable", func() error { _, err := a.SetEnabled(ctx, "m", false); return err }, "/m/", "put:m "},
		{"tools", func() error {
			_, err := a.SetTools(ctx, "m", []registry.Tool{{Name: "t1"}, {Name: "t2"}})
			return err
		}, "m", "put:m "},
		{"remove", func() error { return a.Remove(ctx, "m") }, "m", "removed:m "},
		{"remove again", func() error { return nil }, "m", ""},
		{"unknown key", func() error { return nil }, "never", ""},
	}
	for _, st := range steps {
		*events = nil
		if err := st.write(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if err := b.Reload(ctx, st.key); err != nil {
			t.Fatalf("%s: reload: %v", st.name, err)
		}
		if got := eventString(*events); got != st.want {
			t.Errorf("%s: events %q, want %q", st.name, got, st.want)
		}
		mem, _ := b.List(ctx)
		fresh, _ := a.List(ctx)
		if summarize(mem) != summarize(fresh) {
			t.Errorf("%s: b holds %s, a holds %s", st.name, summarize(mem), summarize(fresh))
		}
	}
}

// TestReconcileCatchesUp checks a full resync after missed changes: new,
// changed and removed servers each produce one event, and a second
// Reconcile finds nothing to do.
func TestReconcileCatchesUp(t *testing.T) {
	ctx := context.Background()
	a, b, events := twoReplicas(t)
	for _, p := range []string{"/keep", "/change", "/gone"} {
		if _, _, err := a.Register(ctx, doc(p), false); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := b.Reconcile(ctx); err != nil || n != 3 {
		t.Fatalf("first reconcile: %d, %v; want 3 changes", n, err)
	}
	// Missed by b: one changed, one removed, one new.
	if _, err := a.SetEnabled(ctx, "change", false); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Register(ctx, doc("/new"), false); err != nil {
		t.Fatal(err)
	}
	*events = nil
	n, err := b.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := eventString(*events), "put:change put:new removed:gone "; got != want || n != 3 {
		t.Errorf("reconcile: %d changes, events %q; want 3, %q", n, got, want)
	}
	mem, _ := b.List(ctx)
	fresh, _ := a.List(ctx)
	if summarize(mem) != summarize(fresh) {
		t.Errorf("b holds %s, a holds %s", summarize(mem), summarize(fresh))
	}
	*events = nil
	if n, err := b.Reconcile(ctx); err != nil || n != 0 || len(*events) != 0 {
		t.Errorf("reconcile with nothing missed: %d changes, %v, events %q", n, err, eventString(*events))
	}
}
