package postgres_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/registry/postgres"
)

// replica is one gateway's share of a cluster, without the gateway: a store,
// the registry service over it and, once following, a Watch applying the
// other replicas' changes to the service.
type replica struct {
	store    *postgres.Store
	svc      *registry.Service
	policies atomic.Int64 // PolicyChanged calls
	resyncs  atomic.Int64
	changed  atomic.Int64 // ServerChanged calls

	mu      sync.Mutex
	arrived map[string]time.Time // key -> when its last event reached the subscribers
	events  []string
}

func newReplica(t *testing.T, url string) *replica {
	t.Helper()
	r := &replica{store: openURL(t, url, fast), arrived: map[string]time.Time{}}
	r.svc = registry.NewService(r.store)
	if _, err := r.svc.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.svc.Subscribe(func(ev registry.Event) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.arrived[ev.Key] = time.Now()
		kind := "put"
		if ev.Kind == registry.EventRemoved {
			kind = "removed"
		}
		r.events = append(r.events, kind+":"+ev.Key)
	})
	return r
}

// ServerChanged, PolicyChanged and Resync implement postgres.Follower.
func (r *replica) ServerChanged(ctx context.Context, key string) error {
	r.changed.Add(1)
	return r.svc.Reload(ctx, key)
}

func (r *replica) PolicyChanged(context.Context) error {
	r.policies.Add(1)
	return nil
}

func (r *replica) RecheckAsked(_ context.Context, key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "recheck:"+key)
	return nil
}

func (r *replica) Resync(ctx context.Context) error {
	_, err := r.svc.Reconcile(ctx)
	if err == nil {
		r.resyncs.Add(1) // counted once done: follow waits for it
	}
	return err
}

var _ postgres.Follower = (*replica)(nil)

// follow runs Watch until the test ends and waits until it listens.
func (r *replica) follow(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.store.Watch(ctx, r)
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitUntil(t, 5*time.Second, "the change feed to listen", func() bool { return r.store.Listening() && r.resyncs.Load() > 0 })
}

func (r *replica) takeEvents() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

func (r *replica) enabled(key string) (bool, bool) {
	s, err := r.svc.Get(context.Background(), key)
	if err != nil {
		return false, false
	}
	return s.Enabled, true
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func regDoc(path string) []byte {
	return []byte(fmt.Sprintf(`{"server_name": "s %s", "path": %q, "proxy_pass_url": "http://127.0.0.1:9/mcp"}`, path, path))
}

// TestWatchAppliesOtherReplicasChanges writes through replica A and checks
// that B's subscribers see each change, as the event A's own write made,
// within a second; and that A does not re-apply its own writes.
func TestWatchAppliesOtherReplicasChanges(t *testing.T) {
	url := needCluster(t).Schema(t)
	ctx := context.Background()
	a, b := newReplica(t, url), newReplica(t, url)
	a.follow(t)
	b.follow(t)
	a.takeEvents()
	b.takeEvents()
	steps := []struct {
		name  string
		write func() error
		want  string
	}{
		{"register", func() error { _, _, err := a.svc.Register(ctx, regDoc("/m"), false); return err }, "put:m"},
		{"disable", func() error { _, err := a.svc.SetEnabled(ctx, "m", false); return err }, "put:m"},
		{"tool refresh", func() error { _, err := a.svc.SetTools(ctx, "m", []registry.Tool{{Name: "t"}}); return err }, "put:m"},
		{"overwrite", func() error { _, _, err := a.svc.Register(ctx, regDoc("/m"), true); return err }, "put:m"},
		{"remove", func() error { return a.svc.Remove(ctx, "m") }, "removed:m"},
	}
	for _, st := range steps {
		if err := st.write(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		waitUntil(t, time.Second, st.name+" to reach B", func() bool {
			b.mu.Lock()
			defer b.mu.Unlock()
			return len(b.events) > 0
		})
		if got := b.takeEvents(); len(got) != 1 || got[0] != st.want {
			t.Errorf("%s: B's subscribers saw %q, want [%s]", st.name, got, st.want)
		}
		if got := a.takeEvents(); len(got) != 1 || got[0] != st.want {
			t.Errorf("%s: A's subscribers saw %q, want [%s] once", st.name, got, st.want)
		}
		la, _ := a.svc.List(ctx)
		lb, _ := b.svc.List(ctx)
		if fmt.Sprint(keysOf(la)) != fmt.Sprint(keysOf(lb)) {
			t.Errorf("%s: A holds %v, B holds %v", st.name, keysOf(la), keysOf(lb))
		}
	}
	if err := a.store.PutPolicy(ctx, []byte(`{"scopes":{}}`)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Second, "the policy change to reach B", func() bool { return b.policies.Load() == 1 })
	if err := a.store.AskRecheck(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Second, "the recheck request to reach B", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.events) > 0
	})
	if got := b.takeEvents(); len(got) != 1 || got[0] != "recheck:m" {
		t.Errorf("B got %q for a recheck request, want [recheck:m]", got)
	}
	if n := a.changed.Load() + a.policies.Load(); n != 0 {
		t.Errorf("A applied %d of its own changes again", n)
	}
}

func keysOf(l []*registry.Server) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = registry.PathKey(s.Path)
	}
	return out
}

// TestWatchResyncsAfterLostConnection writes behind the change feed's back
// (no notification) and checks that B catches up when its LISTEN connection
// is cut and comes back, and not before.
func TestWatchResyncsAfterLostConnection(t *testing.T) {
	c := needCluster(t)
	url := c.Schema(t)
	ctx := context.Background()
	a, b := newReplica(t, url), newReplica(t, url)
	if _, _, err := a.svc.Register(ctx, regDoc("/x"), false); err != nil {
		t.Fatal(err)
	}
	b.follow(t)
	if on, ok := b.enabled("x"); !ok || !on {
		t.Fatal("B does not hold /x after its first resync")
	}
	// A change no notification announces.
	if err := c.Exec(ctx, "postgres", `UPDATE `+pgtestSchema(url)+`.servers SET enabled = false WHERE key = 'x'`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if on, _ := b.enabled("x"); !on {
		t.Fatal("B applied an unannounced change without a resync: the test does not test the resync")
	}
	resyncs := b.resyncs.Load()
	if err := c.Exec(ctx, "postgres", `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'mcpgw-listen' AND pid <> pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 3*time.Second, "B to resync after reconnecting", func() bool { on, _ := b.enabled("x"); return !on })
	if b.resyncs.Load() <= resyncs {
		t.Error("B caught up without a resync")
	}
	// And notifications flow again on the new connection.
	if _, _, err := a.svc.Register(ctx, regDoc("/y"), false); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Second, "a change after reconnecting to reach B", func() bool { _, ok := b.enabled("y"); return ok })
}

// pgtestSchema is the schema a pgtest URL selects.
func pgtestSchema(url string) string {
	if _, schema, ok := strings.Cut(url, "search_path="); ok {
		return schema
	}
	return "public"
}

// TestElection runs three replicas' elections: exactly one leads; when it
// steps down, or its connection is killed, another leads within a few
// retry periods.
func TestElection(t *testing.T) {
	c := needCluster(t)
	url := c.Schema(t)
	type member struct {
		e      *postgres.Election
		cancel context.CancelFunc
	}
	var ms []member
	for i := 0; i < 3; i++ {
		s := openURL(t, url, fast)
		ctx, cancel := context.WithCancel(context.Background())
		e := s.Elect(ctx, "health")
		t.Cleanup(func() { cancel(); <-e.Done() })
		ms = append(ms, member{e, cancel})
	}
	leaders := func() []int {
		var out []int
		for i, m := range ms {
			if m.e.Leading() {
				out = append(out, i)
			}
		}
		return out
	}
	one := func(what string, exclude int) int {
		var l []int
		waitUntil(t, 3*time.Second, what, func() bool {
			l = leaders()
			return len(l) == 1 && l[0] != exclude
		})
		// And it stays one.
		time.Sleep(150 * time.Millisecond)
		if again := leaders(); len(again) != 1 || again[0] != l[0] {
			t.Fatalf("%s: leaders %v, then %v", what, l, again)
		}
		return l[0]
	}
	first := one("one leader", -1)
	ms[first].cancel()
	<-ms[first].e.Done()
	second := one("another leader after the first stepped down", first)

	// Kill the leader's connection behind its back, as a dead process.
	start := time.Now()
	if err := c.Exec(context.Background(), "postgres", `SELECT pg_terminate_backend(l.pid) FROM pg_locks l
		JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = 'mcpgw-election'`); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 3*time.Second, "the killed leader to step down", func() bool { return !ms[second].e.Leading() })
	var third int
	waitUntil(t, 3*time.Second, "a leader after the connection was killed", func() bool {
		l := leaders()
		if len(l) == 1 {
			third = l[0]
		}
		return len(l) == 1
	})
	t.Logf("leadership moved from %d to %d to %d; after the kill in %v", first, second, third, time.Since(start))
}

// TestPropagationLatency measures how long a write on replica A takes to
// reach B's subscribers (routing, finder, checker): median and p99 over
// sequential writes. MCPGW_BENCH_OUT, when set, receives the figures.
func TestPropagationLatency(t *testing.T) {
	url := needCluster(t).Schema(t)
	ctx := context.Background()
	a, b := newReplica(t, url), newReplica(t, url)
	b.follow(t)
	const n = 200
	lat := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("p%03d", i)
		start := time.Now()
		if _, _, err := a.svc.Register(ctx, regDoc("/"+key), false); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 5*time.Second, key+" to reach B", func() bool {
			b.mu.Lock()
			defer b.mu.Unlock()
			_, ok := b.arrived[key]
			return ok
		})
		b.mu.Lock()
		lat = append(lat, b.arrived[key].Sub(start))
		b.mu.Unlock()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	med, p99, max := lat[n/2], lat[n*99/100], lat[n-1]
	msg := fmt.Sprintf("propagation write on A -> B's subscribers, %d registrations: median %v, p99 %v, max %v", n, med, p99, max)
	t.Log(msg)
	if out := os.Getenv("MCPGW_BENCH_OUT"); out != "" {
		f, err := os.OpenFile(out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, msg)
			f.Close()
		}
	}
	if p99 > time.Second {
		t.Errorf("p99 propagation %v; changes must reach every replica within one second", p99)
	}
}
