package upstream

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/registry"
)

// CheckerOptions configure the background health checker.
type CheckerOptions struct {
	// Interval between two checks of one server; 0 means 30 s. A
	// registration's health_check_interval overrides it for that server.
	Interval time.Duration
	// Timeout bounds one check, every step included; 0 means 5 s.
	Timeout time.Duration
	// Concurrency is how many checks run at once; 0 means 32.
	Concurrency int
	// Jitter moves each next check by up to this fraction of the interval,
	// earlier or later at random, so servers registered together drift
	// apart; 0 means 0.1, a negative value means none.
	Jitter float64
	// ToolRefresh is how often a healthy server's tool list is re-read
	// during its check (besides whenever it becomes healthy); 0 means
	// 10 min, a negative value means only when it becomes healthy.
	ToolRefresh time.Duration
	// PersistEvery is how often changed states are written to the
	// HealthStore in one batch; 0 means 1 s.
	PersistEvery time.Duration
	// Version is the gateway version reported to upstreams.
	Version string
}

// Registry is what the checker needs of the registry: its servers, its
// change events and a way to store refreshed tool lists. *registry.Service
// implements it.
type Registry interface {
	Subscribe(fn func(registry.Event))
	List(ctx context.Context) ([]*registry.Server, error)
	SetToolsPending(ctx context.Context, path string, tools, pending []registry.Tool) (*registry.Server, error)
}

// HealthStore keeps the last known states across restarts, so a restarted
// gateway shows them before its first sweep ends.
type HealthStore interface {
	SaveHealth(ctx context.Context, states map[string]registry.Health) error
	LoadHealth(ctx context.Context) (map[string]registry.Health, error)
}

// Leadership says whether this process runs the checks: several gateway
// replicas on one shared store elect one checker for all of them.
type Leadership interface {
	Leading() bool
}

// CheckerDeps are the checker's collaborators. Registry and Transport are
// required; Store may be nil (states then live in memory only).
type CheckerDeps struct {
	Registry  Registry
	Transport http.RoundTripper
	Store     HealthStore
	Log       zerolog.Logger
	// Leader, when set, gates the checks: while it is not leading, no
	// check runs here (due servers are rescheduled a full interval on,
	// so a new leader takes over within one interval) and the states are
	// read from Store every PersistEvery instead, as the leader writes
	// them. Nil means this process always checks.
	Leader Leadership
}

// CheckerStats count what the checker did since it started.
type CheckerStats struct {
	Checks       uint64 // checks run
	Failures     uint64 // checks that found a server unhealthy
	StateChanges uint64 // checks whose outcome differed from the state before
	// ToolListChanges counts tool lists stored because the upstream's
	// differed from the registered one.
	ToolListChanges uint64
	// ToolDefinitionChanges counts existing tools whose description or
	// input schema changed (a possible "rug pull").
	ToolDefinitionChanges uint64
	Queued                int // servers waiting for their next check
}

// Checker checks every enabled server in the background with a real MCP
// exchange and keeps its health state (SPEC section 6). A fixed pool of
// workers is fed by one scheduler from a queue ordered by due time, so the
// number of goroutines and connections stays bounded however many servers
// are registered. It implements the gateway's HealthSource.
type Checker struct {
	opts  CheckerOptions
	reg   Registry
	store HealthStore
	log   zerolog.Logger
	probe *prober
	lead  Leadership // nil: always leading

	mu      sync.Mutex
	entries map[string]*entry
	queue   entryQueue
	dirty   map[string]registry.Health // states to persist
	loading map[string]bool            // keys changed by events during Start

	wake chan struct{}
	work chan *entry
	wg   sync.WaitGroup

	checks, failures, stateChanges, toolLists, toolDefs atomic.Uint64
}

// entry is the checker's view of one server.
type entry struct {
	key     string
	srv     *registry.Server // latest registry snapshot; never mutated
	health  registry.Health
	due     time.Time // zero: as soon as possible
	index   int       // position in the queue; -1 when not queued
	running bool      // handed to a worker
	gen     uint64    // bumped when what a check depends on changes
	modern  bool      // answered server/discover last time
	toolsAt time.Time // last tool list read in this process
}

// NewChecker returns a Checker; Start runs it.
func NewChecker(opts CheckerOptions, d CheckerDeps) *Checker {
	if opts.Interval <= 0 {
		opts.Interval = 30 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 32
	}
	if opts.Jitter == 0 {
		opts.Jitter = 0.1
	}
	if opts.Jitter < 0 {
		opts.Jitter = 0
	}
	if opts.Jitter > 0.5 {
		opts.Jitter = 0.5
	}
	if opts.ToolRefresh == 0 {
		opts.ToolRefresh = 10 * time.Minute
	}
	if opts.PersistEvery <= 0 {
		opts.PersistEvery = time.Second
	}
	ua := "mcpgw"
	if opts.Version != "" {
		ua += "/" + opts.Version
	}
	return &Checker{
		opts:  opts,
		reg:   d.Registry,
		store: d.Store,
		log:   d.Log,
		lead:  d.Leader,
		probe: &prober{http: &http.Client{
			Transport: d.Transport,
			// A redirect is reported, not followed.
			CheckRedirect: noRedirects,
		}, userAgent: ua, timeout: opts.Timeout},
		entries: map[string]*entry{},
		dirty:   map[string]registry.Health{},
		wake:    make(chan struct{}, 1),
		work:    make(chan *entry),
	}
}

// Start loads the registered servers and the persisted states, subscribes to
// registry changes and starts the scheduler and the workers, which run until
// ctx ends. Every enabled server is checked at once, then every interval.
func (c *Checker) Start(ctx context.Context) error {
	c.mu.Lock()
	c.loading = map[string]bool{}
	c.mu.Unlock()
	// Subscribe before listing, so no change falls between the two; a
	// server changed meanwhile keeps the state its event gave it.
	c.reg.Subscribe(c.onEvent)
	servers, err := c.reg.List(ctx)
	if err != nil {
		return fmt.Errorf("health: list servers: %w", err)
	}
	var saved map[string]registry.Health
	if c.store != nil {
		if saved, err = c.store.LoadHealth(ctx); err != nil {
			// Not fatal: states are rebuilt by the first sweep.
			c.log.Warn().Err(err).Msg("health: cannot load saved states; starting from unknown")
		}
	}
	c.mu.Lock()
	// The startup sweep is due now; servers registered or enabled while
	// it runs are due at the zero time, so they go ahead of it.
	now := time.Now()
	for _, s := range servers {
		key := registry.PathKey(s.Path)
		if c.loading[key] {
			continue
		}
		e := &entry{key: key, srv: s, index: -1}
		if h, ok := saved[key]; ok && s.Enabled && !s.SkipHealthCheck {
			e.health = h
		}
		c.entries[key] = e
		c.place(e, now)
	}
	c.loading = nil
	c.mu.Unlock()

	c.wg.Add(c.opts.Concurrency + 2)
	go c.scheduler(ctx)
	for range c.opts.Concurrency {
		go c.worker(ctx)
	}
	go c.persister(ctx)
	c.log.Info().Int("servers", len(servers)).Dur("interval", c.opts.Interval).Dur("timeout", c.opts.Timeout).
		Int("concurrency", c.opts.Concurrency).Msg("health checker started")
	return nil
}

// Wait blocks until the checker's goroutines have ended (after Start's ctx
// ended) and its last states are persisted.
func (c *Checker) Wait() { c.wg.Wait() }

// Health implements the gateway's HealthSource.
func (c *Checker) Health(key string) registry.Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[registry.PathKey(key)]
	switch {
	case e == nil:
		return registry.Health{Status: registry.HealthUnknown}
	case !e.srv.Enabled:
		return registry.Health{Status: registry.HealthDisabled}
	case e.srv.SkipHealthCheck:
		return registry.Health{Status: registry.HealthUnknown, Reason: "health checks are off for this server (health_check: false)"}
	case e.health.Status == "":
		return registry.Health{Status: registry.HealthUnknown}
	}
	return e.health
}

// Recheck checks one server as soon as a worker is free and re-reads its
// tool list in the same exchange: for when the gateway learns that the
// upstream changed (a relayed notifications/tools/list_changed). It does
// not block; an unknown, disabled or opted-out server is ignored.
func (c *Checker) Recheck(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[registry.PathKey(key)]
	if e == nil || !eligible(e.srv) {
		return
	}
	e.toolsAt = time.Time{}
	if !e.running {
		c.place(e, time.Time{})
	}
	c.poke()
}

// Stats returns the checker's counters.
func (c *Checker) Stats() CheckerStats {
	c.mu.Lock()
	queued := c.queue.Len()
	c.mu.Unlock()
	return CheckerStats{
		Checks: c.checks.Load(), Failures: c.failures.Load(), StateChanges: c.stateChanges.Load(),
		ToolListChanges: c.toolLists.Load(), ToolDefinitionChanges: c.toolDefs.Load(), Queued: queued,
	}
}

// StateCounts returns how many servers are in each state.
func (c *Checker) StateCounts() map[string]int {
	c.mu.Lock()
	keys := make([]string, 0, len(c.entries))
	for k := range c.entries {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	out := map[string]int{}
	for _, k := range keys {
		out[c.Health(k).Status]++
	}
	return out
}

// onEvent follows the registry. It runs under the registry's write lock, so
// it only updates memory and wakes the scheduler; checks run elsewhere.
func (c *Checker) onEvent(ev registry.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loading != nil {
		c.loading[ev.Key] = true
	}
	switch ev.Kind {
	case registry.EventRemoved:
		if e := c.entries[ev.Key]; e != nil {
			c.unqueue(e)
			delete(c.entries, ev.Key)
			delete(c.dirty, ev.Key)
		}
	case registry.EventPut:
		c.put(ev.Key, ev.Server)
	}
	c.poke()
}

// put records a new snapshot of a server. A new server, or one whose
// endpoint, headers, transports, enabled state or check settings changed, is
// checked at once; a tool-list update alone changes nothing here.
func (c *Checker) put(key string, s *registry.Server) {
	e := c.entries[key]
	if e == nil {
		e = &entry{key: key, srv: s, index: -1}
		c.entries[key] = e
		c.place(e, time.Time{})
		return
	}
	old := e.srv
	e.srv = s
	if !checkConfigChanged(old, s) {
		return
	}
	e.gen++
	e.modern, e.toolsAt = false, time.Time{}
	if endpointChanged(old, s) || !old.Enabled || old.SkipHealthCheck {
		// The old state described another endpoint or no check at all.
		e.health = registry.Health{}
	}
	if e.running {
		return // the worker sees the new generation and requeues
	}
	c.place(e, time.Time{})
}

// place queues e for a check at due (zero: now, ahead of every other due
// check) when it should be checked at all, and drops it from the queue
// otherwise.
func (c *Checker) place(e *entry, due time.Time) {
	if !eligible(e.srv) {
		c.unqueue(e)
		return
	}
	e.due = due
	if e.index >= 0 {
		heap.Fix(&c.queue, e.index)
		return
	}
	heap.Push(&c.queue, e)
}

func (c *Checker) unqueue(e *entry) {
	if e.index >= 0 {
		heap.Remove(&c.queue, e.index)
	}
}

func (c *Checker) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func eligible(s *registry.Server) bool { return s.Enabled && !s.SkipHealthCheck }

func endpointChanged(a, b *registry.Server) bool {
	if Endpoint(a) != Endpoint(b) || a.AuthProvider != b.AuthProvider || len(a.Headers) != len(b.Headers) ||
		fmt.Sprint(a.SupportedTransports) != fmt.Sprint(b.SupportedTransports) {
		return true
	}
	for i := range a.Headers {
		if a.Headers[i].Name != b.Headers[i].Name || a.Headers[i].Value.Reveal() != b.Headers[i].Value.Reveal() {
			return true
		}
	}
	return false
}

func checkConfigChanged(a, b *registry.Server) bool {
	return endpointChanged(a, b) || a.Enabled != b.Enabled || a.SkipHealthCheck != b.SkipHealthCheck ||
		a.HealthCheckInterval != b.HealthCheckInterval
}

// interval is the check interval of s.
func (c *Checker) interval(s *registry.Server) time.Duration {
	if s.HealthCheckInterval > 0 {
		return s.HealthCheckInterval
	}
	return c.opts.Interval
}

// nextDue is when s is checked next after a check that ended at now.
func (c *Checker) nextDue(now time.Time, s *registry.Server) time.Time {
	iv := c.interval(s)
	if c.opts.Jitter > 0 {
		span := float64(iv) * c.opts.Jitter
		iv += time.Duration((rand.Float64()*2 - 1) * span)
	}
	return now.Add(iv)
}

// scheduler hands due entries to the workers, one at a time: when every
// worker is busy it waits, so overdue checks queue up in due order instead of
// piling up as goroutines.
func (c *Checker) scheduler(ctx context.Context) {
	defer c.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.mu.Lock()
		var next *entry
		wait := time.Hour
		if c.queue.Len() > 0 {
			top := c.queue[0]
			if d := time.Until(top.due); d <= 0 {
				heap.Pop(&c.queue)
				top.running = true
				next = top
			} else {
				wait = d
			}
		}
		c.mu.Unlock()
		if next != nil {
			select {
			case c.work <- next:
				continue
			case <-ctx.Done():
				return
			}
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-c.wake:
		case <-ctx.Done():
			return
		}
	}
}

func (c *Checker) worker(ctx context.Context) {
	defer c.wg.Done()
	for {
		select {
		case e := <-c.work:
			c.run(ctx, e)
		case <-ctx.Done():
			return
		}
	}
}

// run checks one server and records the outcome.
func (c *Checker) run(ctx context.Context, e *entry) {
	c.mu.Lock()
	if c.entries[e.key] != e || !eligible(e.srv) {
		e.running = false
		c.mu.Unlock()
		return
	}
	if !c.leading() {
		// Another replica checks; its states arrive through follow.
		e.running = false
		c.place(e, c.nextDue(time.Now(), e.srv))
		c.mu.Unlock()
		c.poke()
		return
	}
	srv, gen, prev, modern := e.srv, e.gen, e.health, e.modern
	wantTools := prev.Status != registry.HealthHealthy || e.toolsAt.IsZero() ||
		(c.opts.ToolRefresh > 0 && time.Since(e.toolsAt) >= c.opts.ToolRefresh)
	c.mu.Unlock()

	cctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	res := c.probe.check(cctx, srv, modern, wantTools)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: the outcome says nothing about the upstream
	}
	now := time.Now()
	h := registry.Health{Status: res.Status, Reason: res.Reason, LastChecked: now, Latency: res.Latency}
	if res.Status == registry.HealthUnhealthy {
		h.ConsecutiveFailures = prev.ConsecutiveFailures + 1
	}

	c.mu.Lock()
	e.running = false
	if c.entries[e.key] != e {
		c.mu.Unlock()
		return // removed meanwhile
	}
	if e.gen != gen {
		// Reconfigured during the check: the outcome describes the old
		// configuration, so check the new one at once instead.
		c.place(e, time.Time{})
		c.mu.Unlock()
		c.poke()
		return
	}
	e.health = h
	if res.Status == registry.HealthHealthy {
		e.modern = res.Modern
	}
	if res.Listed {
		e.toolsAt = now
	}
	changed := prev.Display() != h.Display()
	if changed && c.store != nil {
		c.dirty[e.key] = h
	}
	// Counted before the state is visible, so a reader that sees it sees
	// the counts too.
	c.checks.Add(1)
	if res.Status == registry.HealthUnhealthy {
		c.failures.Add(1)
	}
	if changed {
		c.stateChanges.Add(1)
	}
	c.place(e, c.nextDue(now, srv))
	c.mu.Unlock()
	c.poke()

	if changed {
		ev := c.log.Info()
		if res.Status == registry.HealthUnhealthy {
			ev = c.log.Warn()
		}
		ev.Str("server", srv.Path).Str("from", prev.Display()).Str("to", h.Display()).
			Dur("latency", res.Latency).Int("consecutive_failures", h.ConsecutiveFailures).Msg("health changed")
	}
	switch {
	case res.Listed:
		c.storeTools(ctx, e, gen, res.Tools)
	case res.ListErr != nil:
		// A passthrough upstream may refuse the gateway's own listing; its
		// registered tool_list stays authoritative.
		c.log.Info().Str("server", srv.Path).Str("reason", res.ListReason).Msg("tool list not read; the registered tool_list stays")
	}
}

// toolChange describes one changed tool for the warning log.
type toolChange struct {
	Tool              string          `json:"tool"`
	DescriptionBefore *string         `json:"description_before,omitempty"`
	DescriptionAfter  *string         `json:"description_after,omitempty"`
	SchemaBefore      json.RawMessage `json:"schema_before,omitempty"`
	SchemaAfter       json.RawMessage `json:"schema_after,omitempty"`
}

// toolChanges describes how the named tools differ between two lists.
func toolChanges(old, cur []registry.Tool, names []string) []toolChange {
	byName := func(ts []registry.Tool) map[string]registry.Tool {
		m := make(map[string]registry.Tool, len(ts))
		for _, t := range ts {
			m[t.Name] = t
		}
		return m
	}
	before, after := byName(old), byName(cur)
	out := make([]toolChange, 0, len(names))
	for _, n := range names {
		o, t := before[n], after[n]
		ch := toolChange{Tool: n}
		if o.Description() != t.Description() {
			b, a := o.Description(), t.Description()
			ch.DescriptionBefore, ch.DescriptionAfter = &b, &a
		}
		if !registry.SameJSON(o.Schema, t.Schema) {
			ch.SchemaBefore, ch.SchemaAfter = o.Schema, t.Schema
		}
		out = append(out, ch)
	}
	return out
}

// storeTools stores a tool list read from the upstream when it differs from
// the registered one (registry.ApplyListing). A changed definition of an
// existing tool is warned about once, with a diff: an upstream that rewrites
// a tool's description or schema after it was registered may be steering
// models (a "rug pull"). On a server with pin_tools the approved definition
// stays and calls to the tool are refused until an admin approves.
func (c *Checker) storeTools(ctx context.Context, e *entry, gen uint64, tools []registry.Tool) {
	c.mu.Lock()
	cur, stale := e.srv, e.gen != gen || c.entries[e.key] != e
	c.mu.Unlock()
	if stale {
		return
	}
	l := registry.ApplyListing(cur, tools, false)
	if len(l.NewlyChanged) > 0 {
		c.toolDefs.Add(uint64(len(l.NewlyChanged)))
		msg := "tool definitions changed upstream: descriptions or schemas differ from the registered ones"
		if cur.PinTools {
			msg = "tool definitions changed upstream and are held back (pin_tools): calls to these tools are refused until approved with mcpgw refresh --approve " + cur.Path
		}
		c.log.Warn().Str("server", cur.Path).Strs("changed", l.NewlyChanged).
			Interface("diff", toolChanges(cur.ToolList, tools, l.NewlyChanged)).Msg(msg)
	}
	if !l.Store {
		return
	}
	if _, err := c.reg.SetToolsPending(ctx, cur.Path, l.Tools, l.Pending); err != nil {
		c.log.Warn().Err(err).Str("server", cur.Path).Msg("tool list read but not stored")
		return
	}
	c.log.Info().Str("server", cur.Path).Int("num_tools", len(l.Tools)).Strs("added", l.Diff.Added).
		Strs("removed", l.Diff.Removed).Strs("changed", l.Diff.Changed).Int("held_back", len(l.Pending)).
		Msg("tool list refreshed from upstream")
	c.toolLists.Add(1) // after the log line: a change counted has been logged
}

// persister writes changed states in batches, and once more at shutdown.
func (c *Checker) persister(ctx context.Context) {
	defer c.wg.Done()
	if c.store == nil {
		return
	}
	t := time.NewTicker(c.opts.PersistEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			// Not cancellable: a batch is short, and SQLite drivers watch a
			// cancellable context with a goroutine per statement.
			c.flush(context.WithoutCancel(ctx))
			if !c.leading() {
				c.follow(ctx)
			}
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			c.flush(fctx)
			cancel()
			return
		}
	}
}

func (c *Checker) flush(ctx context.Context) {
	c.mu.Lock()
	if len(c.dirty) == 0 {
		c.mu.Unlock()
		return
	}
	batch := c.dirty
	c.dirty = map[string]registry.Health{}
	c.mu.Unlock()
	if err := c.store.SaveHealth(ctx, batch); err != nil {
		c.log.Warn().Err(err).Int("states", len(batch)).Msg("health: cannot save states")
	}
}

func (c *Checker) leading() bool { return c.lead == nil || c.lead.Leading() }

// follow takes the states the leading replica stored. A server this
// process does not know yet, or has disabled or opted out here, is skipped:
// the registry's events bring it.
func (c *Checker) follow(ctx context.Context) {
	fctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	states, err := c.store.LoadHealth(fctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn().Err(err).Msg("health: cannot read the states the leading replica stored")
		}
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, h := range states {
		if e := c.entries[key]; e != nil && eligible(e.srv) && !e.running {
			e.health = h
		}
	}
}

// entryQueue is a min-heap of entries by due time.
type entryQueue []*entry

func (q entryQueue) Len() int           { return len(q) }
func (q entryQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q entryQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}

func (q *entryQueue) Push(x any) {
	e := x.(*entry)
	e.index = len(*q)
	*q = append(*q, e)
}

func (q *entryQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*q = old[:len(old)-1]
	return e
}
