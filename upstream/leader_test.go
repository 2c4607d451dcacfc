package upstream

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/registry"
)

// flag is a Leadership switched by the test.
type flag struct{ on atomic.Bool }

func (f *flag) Leading() bool { return f.on.Load() }

// TestCheckerLeadership runs two checkers over one registry and store, as
// two replicas: only the leading one checks and stores states, the other
// shows the stored states; when leadership moves, the new leader checks
// within one interval and the old one stops checking.
func TestCheckerLeadership(t *testing.T) {
	env := newHealthEnv(t)
	f := newFake(t, fakeOptions{})
	env.register(t, map[string]any{"server_name": "p", "path": "/p", "proxy_pass_url": f.URL})
	const interval = 300 * time.Millisecond
	opts := CheckerOptions{Interval: interval, Jitter: -1, PersistEvery: 20 * time.Millisecond}
	start := func(lead *flag) *Checker {
		ctx, cancel := context.WithCancel(context.Background())
		c := NewChecker(opts, CheckerDeps{Registry: env.reg, Transport: New(Options{}, "test").Transport(),
			Store: env.store, Log: zerolog.New(env.logs), Leader: lead})
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); c.Wait() })
		return c
	}
	leadA, leadB := &flag{}, &flag{}
	leadA.on.Store(true)
	a, b := start(leadA), start(leadB)
	status := func(c *Checker) string { return c.Health("p").Display() }

	waitFor(t, 5*time.Second, "the leader to find /p healthy", func() bool { return status(a) == registry.HealthHealthy })
	waitFor(t, 5*time.Second, "the follower to show the leader's state", func() bool { return status(b) == registry.HealthHealthy })
	time.Sleep(2 * interval)
	if n := b.Stats().Checks; n != 0 {
		t.Fatalf("the follower ran %d checks", n)
	}
	if n := a.Stats().Checks; n < 2 {
		t.Fatalf("the leader ran %d checks in over two intervals, want at least 2", n)
	}

	// The leader goes away; the other replica takes the lock.
	leadA.on.Store(false)
	leadB.on.Store(true)
	moved := time.Now()
	f.stop()
	waitFor(t, 5*time.Second, "the new leader to check", func() bool { return b.Stats().Checks > 0 })
	if d := time.Since(moved); d > interval+200*time.Millisecond {
		t.Errorf("the new leader's first check came %v after it took over; want within one interval (%v)", d, interval)
	}
	waitFor(t, 5*time.Second, "the new leader to find /p down", func() bool { return status(b) == "unhealthy: connection refused" })
	waitFor(t, 5*time.Second, "the old leader to show the new leader's state", func() bool { return status(a) == "unhealthy: connection refused" })
	before := a.Stats().Checks
	time.Sleep(3 * interval)
	if after := a.Stats().Checks; after != before {
		t.Errorf("the old leader kept checking: %d checks, then %d", before, after)
	}
	saved, err := env.store.LoadHealth(context.Background())
	if err != nil || saved["p"].Status != registry.HealthUnhealthy {
		t.Errorf("stored state %+v, %v; want the new leader's", saved["p"], err)
	}
}
