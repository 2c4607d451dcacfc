// Package search is the tool finder's index: every tool of every enabled
// server, searchable by natural-language text (English analysis with
// stemming, identifier splitting, a domain synonym table and typo
// tolerance) and filterable by server tags. It follows the registry through
// registry events.
//
// Text is analyzed with bleve's analysis: its Unicode word segmentation
// (for ASCII text, a word finder of this package that gives the same
// words, faster), English possessive and stop-word filters and stemmers.
// bleve's index is not used.
// The index is the package's own: per term and field, a list of tool ids
// with each tool's precomputed tf-idf factor, held in memory, and a query is
// scored term at a time into a dense array of per-tool scores (see rank).
// At 100,000 tools this answers in a few milliseconds on one core where
// bleve's posting iterators took tens, and builds in time linear in the
// tools (see BENCHMARKS.md).
package search

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/registry"
)

// Limits of a query.
const (
	DefaultTop = 5
	MaxTop     = 50
)

// ErrEmptyQuery is returned by Search when a query has neither text nor
// tags. It matches registry.ErrInvalid, so the edge reports it as bad input.
var ErrEmptyQuery = fmt.Errorf("a query text or at least one tag is required: %w", registry.ErrInvalid)

// ErrBuilding is answered while the index is first built in the background
// (LoadInBackground): the gateway serves and relays meanwhile, only the
// finder must wait.
var ErrBuilding = errors.New("the tool finder is still building its index; try again in a moment")

// Boosts weigh where a query word is found. The defaults were tuned on the
// labeled query set in testdata/finder (see BENCHMARKS.md).
type Boosts struct {
	Name    float64 // the tool's name, split into words
	Desc    float64 // the tool's description (main, args, returns)
	Params  float64 // parameter names and descriptions from the input schema
	Server  float64 // server name, description, tags and the tool's target prefix
	Synonym float64 // factor for a synonym of a query word
	Fuzzy   float64 // factor for a spelling correction of an unknown query word
}

// DefaultBoosts are the boosts used when Options leave them zero.
var DefaultBoosts = Boosts{Name: 0.75, Desc: 3, Params: 0.5, Server: 1.5, Synonym: 0.7, Fuzzy: 0.7}

// Options configure an Index.
type Options struct {
	// Boosts override DefaultBoosts when their Name is non-zero.
	Boosts Boosts
	// Log receives index maintenance events; the zero logger discards them.
	Log zerolog.Logger
}

// Query is one finder request.
type Query struct {
	// Text is the natural-language description of the need; may be empty
	// when Tags are given.
	Text string
	// Tags filter servers: a server must carry every tag (case-insensitive).
	Tags []string
	// Top is how many hits to return: 0 means DefaultTop; at most MaxTop.
	Top int
	// MaxServers, when positive, limits the hits to that many distinct servers.
	MaxServers int
	// Allow, when set, drops hits the caller may not see; it is asked
	// before a hit counts towards Top.
	Allow func(serverPath, tool string) bool
}

// Hit is one tool found. Tool and Transports are shared with the index and
// must not be modified.
type Hit struct {
	ServerKey    string
	ServerPath   string
	ServerName   string
	AuthProvider string
	Transports   []string
	Tool         registry.Tool
	// Score is the similarity in 0..1: the share of the query's weight
	// that the best hit matches, scaled for later hits by their relevance
	// relative to the best. Tag-only queries score every hit 1.
	Score float64
}

// Stats describe the index's contents.
type Stats struct {
	Servers int
	Tools   int
	Terms   int
}

// Index is the finder's index. It is safe for concurrent use; a search never
// sees half of a server's update.
type Index struct {
	boosts Boosts
	log    zerolog.Logger
	an     *textAnalyzer
	syn    map[string][]alt
	pool   sync.Pool // *scratch for rank

	mu sync.RWMutex
	*state
	closed bool

	// Background compaction (see maybeCompactLocked).
	compacting  bool
	loading     bool            // the first build runs in the background (LoadInBackground)
	dirty       map[string]bool // servers changed while compacting
	buildGen    uint64          // counts whole builds; a compaction overtaken by one is dropped
	compactWG   sync.WaitGroup
	compactHook func() // tests: runs in the compaction before it installs
}

// entry is one indexed (enabled) server.
type entry struct {
	srv   *registry.Server
	tools map[string]int // tool name -> index in srv.ToolList
}

// alt is one alternative form of a query term.
type alt struct {
	term  string
	boost float64
}

// New returns an empty Index.
func New(opts Options) (*Index, error) {
	b := opts.Boosts
	if b.Name == 0 {
		b = DefaultBoosts
	}
	an, err := newAnalyzer()
	if err != nil {
		return nil, err
	}
	x := &Index{boosts: b, log: opts.Log, an: an, state: newState(0)}
	x.syn = buildSynonyms(an, synonymGroups)
	return x, nil
}

// Close releases the index, after any compaction in progress.
func (x *Index) Close() error {
	x.mu.Lock()
	x.closed = true
	x.mu.Unlock()
	x.compactWG.Wait()
	return nil
}

// Stats returns the index's counts.
func (x *Index) Stats() Stats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return Stats{Servers: len(x.servers), Tools: x.tools, Terms: len(x.terms)}
}

// Load replaces the index's contents with the servers list returns. It holds
// the index's lock while listing, so that registry events delivered to Apply
// meanwhile wait and are applied after the listed state, never before it.
func (x *Index) Load(ctx context.Context, list func(context.Context) ([]*registry.Server, error)) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	servers, err := list(ctx)
	if err != nil {
		return fmt.Errorf("search: load: %w", err)
	}
	start := time.Now()
	if err := x.rebuildLocked(servers); err != nil {
		return err
	}
	x.log.Info().Int("servers", len(x.servers)).Int("tools", x.tools).Int("terms", len(x.terms)).
		Dur("duration", time.Since(start)).Msg("finder index built")
	return nil
}

// LoadInBackground lists the servers now and builds the index from them in
// the background, so that a gateway with a large registry serves at once.
// Changes committed meanwhile are applied as usual and replayed on the new
// index; until it is installed, Search answers ErrBuilding.
func (x *Index) LoadInBackground(ctx context.Context, list func(context.Context) ([]*registry.Server, error)) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	servers, err := list(ctx)
	if err != nil {
		return fmt.Errorf("search: load: %w", err)
	}
	x.loading = true
	x.startBuildLocked(servers, "finder index built")
	return nil
}

// WaitLoaded waits up to d for a background first load to finish and
// reports whether the index is ready.
func (x *Index) WaitLoaded(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		x.mu.RLock()
		loading := x.loading
		x.mu.RUnlock()
		if !loading {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Rebuild replaces the index's contents with servers (disabled ones skipped).
func (x *Index) Rebuild(servers []*registry.Server) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.rebuildLocked(servers)
}

func (x *Index) rebuildLocked(servers []*registry.Server) error {
	st := x.build(servers)
	x.buildGen++
	x.loading = false // a whole build overtakes a background first load
	x.install(st)
	return nil
}

// install makes st the index's state.
func (x *Index) install(st *state) {
	x.state = st
}

// buildChunk is how many tools are analyzed at a time in a build: their
// analyzed terms are held until they are indexed.
const buildChunk = 2048

// build makes a new state holding servers (disabled ones skipped; of two
// with the same path, the later). It reads nothing of x's state, so it may
// run without x.mu. Its cost is linear in the tools: analysis, on every
// core, and then appending each term of each tool to its posting list.
func (x *Index) build(servers []*registry.Server) *state {
	last := make(map[string]int, len(servers))
	for i, s := range servers {
		if s != nil && s.Enabled {
			last[registry.PathKey(s.Path)] = i
		}
	}
	entries := make([]*entry, 0, len(last))
	for i, s := range servers {
		if s != nil && s.Enabled && last[registry.PathKey(s.Path)] == i {
			entries = append(entries, newEntry(s))
		}
	}
	st := newState(len(entries))
	// The server field's shared terms, once per server.
	serverTerms := make([][]string, len(entries))
	parallel(len(entries), func(k int) { serverTerms[k] = x.serverTerms(entries[k].srv) })
	type work struct {
		e      int // index in entries
		i      int // index in the server's ToolList
		server []string
	}
	var todo []work
	for k, e := range entries {
		idx := e.indexed()
		st.addServer(e, uint32(len(todo)), len(idx)) // doc ids are the positions in todo
		for _, i := range idx {
			todo = append(todo, work{k, i, serverTerms[k]})
		}
	}
	st.docs = make([]docRef, 0, len(todo))
	st.nameLen = make([]uint32, 0, len(todo))
	st.live = make([]uint64, 0, (len(todo)+63)/64)
	// Analysis runs on every core, a chunk at a time, so that only two
	// chunks of analyzed text are held: the next chunk is analyzed while
	// the current one is appended to the posting lists, which one
	// goroutine does, in doc order.
	chunk := func(lo int) []work { return todo[lo:min(lo+buildChunk, len(todo))] }
	analyze := func(ws []work, dts []docTerms) {
		parallel(len(ws), func(k int) {
			w := ws[k]
			s := entries[w.e].srv
			dts[k] = docTermsOf(x.toolFields(w.server, s, &s.ToolList[w.i]))
		})
	}
	bufs := [2][]docTerms{make([]docTerms, buildChunk), make([]docTerms, buildChunk)}
	if len(todo) > 0 {
		analyze(chunk(0), bufs[0])
	}
	for lo, cur := 0, 0; lo < len(todo); lo, cur = lo+buildChunk, 1-cur {
		var next sync.WaitGroup
		if hi := lo + buildChunk; hi < len(todo) {
			next.Add(1)
			go func() {
				defer next.Done()
				analyze(chunk(hi), bufs[1-cur])
			}()
		}
		for k, w := range chunk(lo) {
			st.addDoc(entries[w.e], w.i, &bufs[cur][k])
			bufs[cur][k] = docTerms{}
		}
		next.Wait()
	}
	st.compactPostings()
	return st
}

// parallel runs fn(0..n-1) on every core.
func parallel(n int, fn func(int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := int(next.Add(1) - 1); k < n; k = int(next.Add(1) - 1) {
				fn(k)
			}
		}()
	}
	wg.Wait()
}

// Apply folds one registry event into the index; it is meant for
// registry.Service.Subscribe. A failure is logged: the index then keeps the
// server's previous state, and the next event or Load repairs it.
func (x *Index) Apply(ev registry.Event) {
	var err error
	if ev.Kind == registry.EventPut && ev.Server != nil {
		err = x.Put(ev.Server)
	} else {
		err = x.Remove(ev.Key)
	}
	if err != nil {
		x.log.Error().Err(err).Str("server", "/"+ev.Key).Msg("finder index update failed")
	}
}

// Put indexes s, replacing its previous tools; a disabled server is removed.
// The change is applied while searches wait, so no search sees a mix of the
// old and new tools. The texts are analyzed before, while searches go on:
// the wait is only for the posting lists to be updated.
func (x *Index) Put(s *registry.Server) error {
	if !s.Enabled {
		return x.Remove(s.Path)
	}
	e := newEntry(s.Clone())
	p := x.prepare(e.key(), e)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.putState(x.state, e.key(), e, p)
	x.maybeCompactLocked(e.key())
	return nil
}

// Remove drops every tool of the server at path (with or without slashes).
func (x *Index) Remove(path string) error {
	key := registry.PathKey(path)
	p := x.prepare(key, nil)
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.servers[key] == nil {
		if x.compacting {
			// Absent here but perhaps in the index being built: replay.
			x.dirty[key] = true
		}
		return nil
	}
	x.putState(x.state, key, nil, p)
	x.maybeCompactLocked(key)
	return nil
}

// prepared is a change analyzed ahead of putState: the terms of the
// server's current tools (to remove them) and of its new ones.
type prepared struct {
	old    *registry.Server // the server oldDTs were analyzed from
	oldDTs []docTerms       // by position in old's indexed tools
	e      *entry
	newDTs []docTerms
}

// prepare analyzes a change of the server at key to e (nil: removed)
// without holding x.mu for writing, so that searches go on meanwhile.
// Entries are never modified, so analyzing them needs no lock.
func (x *Index) prepare(key string, e *entry) *prepared {
	x.mu.RLock()
	old := x.servers[key]
	x.mu.RUnlock()
	p := &prepared{e: e}
	if old != nil {
		p.old, p.oldDTs = old.srv, x.analyzeEntry(old)
	}
	if e != nil {
		p.newDTs = x.analyzeEntry(e)
	}
	return p
}

// analyzeEntry analyzes e's indexed tools, in order.
func (x *Index) analyzeEntry(e *entry) []docTerms {
	idx := e.indexed()
	out := make([]docTerms, len(idx))
	server := x.serverTerms(e.srv)
	for k, i := range idx {
		out[k] = docTermsOf(x.toolFields(server, e.srv, &e.srv.ToolList[i]))
	}
	return out
}

// putState makes st hold e as the server at key (nil: none): the previous
// server's tools become tombstones and e's are appended, while x.mu is held
// for writing, so no search sees a mix of the two. p, when not nil, holds
// the analysis done beforehand; a part of it made for another server than
// the one st holds now (another change came first) is done again.
func (x *Index) putState(st *state, key string, e *entry, p *prepared) {
	if old := st.servers[key]; old != nil {
		dts := []docTerms(nil)
		if p != nil && p.old == old.srv { // a compaction's entry for the same server will do
			dts = p.oldDTs
		} else {
			dts = x.analyzeEntry(old)
		}
		sp := st.spans[key]
		for k := range dts {
			d := sp.first + uint32(k)
			if int(d) >= len(st.docs) || st.docs[d].e != old {
				continue
			}
			st.removeDoc(d, &dts[k])
		}
		st.dropServer(key)
	}
	if e == nil {
		return
	}
	dts := []docTerms(nil)
	if p != nil && p.e == e {
		dts = p.newDTs
	} else {
		dts = x.analyzeEntry(e)
	}
	idx := e.indexed()
	st.addServer(e, uint32(len(st.docs)), len(idx))
	for k, i := range idx {
		st.addDoc(e, i, &dts[k])
	}
}

// compactAfter is how many removed tools (tombstones) the index holds at
// least before it is rebuilt whole. Tombstones cost memory and search time
// (their postings are still read); the threshold grows with the index
// (compactEvery), because a rebuild costs time in proportion to the whole
// index and a fixed threshold would make bulk re-registration quadratic.
const compactAfter = 64

// compactEvery bounds the tombstones to this share of the live tools: with
// 1/4, searches read at most a quarter more postings than needed, and
// rebuilding costs at most about 4 times the indexing of the changes.
const compactEvery = 4

// maybeCompactLocked notes a change of the server at key and, once the
// tombstones pass compactAfter and a compactEvery share of the tools,
// starts rebuilding the index whole in the background: searches and updates
// go on meanwhile, updates are noted and replayed on the new index, which is
// then swapped in at once.
func (x *Index) maybeCompactLocked(key string) {
	if x.compacting {
		x.dirty[key] = true
		return
	}
	if x.dead < max(compactAfter, x.tools/compactEvery) || x.closed {
		return
	}
	servers := make([]*registry.Server, 0, len(x.servers))
	for _, e := range x.servers {
		servers = append(servers, e.srv)
	}
	x.startBuildLocked(servers, "finder index compacted")
}

// startBuildLocked builds an index from servers in the background while
// searches and updates go on against the current one; updates made
// meanwhile are noted and replayed on the new index, which is then swapped
// in at once. Compaction and the first load in the background use it.
func (x *Index) startBuildLocked(servers []*registry.Server, done string) {
	x.compacting, x.dirty = true, map[string]bool{}
	gen := x.buildGen
	x.compactWG.Add(1)
	go func() {
		defer x.compactWG.Done()
		start := time.Now()
		st := x.build(servers)
		if x.compactHook != nil {
			x.compactHook()
		}
		x.mu.Lock()
		defer x.mu.Unlock()
		x.compacting = false
		if x.closed || x.buildGen != gen {
			return // closed, or overtaken by a whole rebuild
		}
		for k := range x.dirty {
			x.putState(st, k, x.servers[k], nil)
		}
		x.dirty = nil
		x.loading = false
		x.install(st)
		ev := x.log.Debug()
		if done == "finder index built" {
			ev = x.log.Info()
		}
		ev.Int("servers", len(st.servers)).Int("tools", st.tools).Dur("duration", time.Since(start)).Msg(done)
	}()
}

// waitCompaction waits for a compaction in progress (tests).
func (x *Index) waitCompaction() { x.compactWG.Wait() }

func newEntry(s *registry.Server) *entry {
	e := &entry{srv: s, tools: make(map[string]int, len(s.ToolList))}
	for i, t := range s.ToolList {
		if _, dup := e.tools[t.Name]; !dup {
			e.tools[t.Name] = i
		}
	}
	return e
}

func (e *entry) key() string { return registry.PathKey(e.srv.Path) }

// Search runs q and returns at most q.Top hits, best first.
func (x *Index) Search(ctx context.Context, q Query) ([]Hit, error) {
	top := q.Top
	if top <= 0 {
		top = DefaultTop
	}
	if top > MaxTop {
		top = MaxTop
	}
	tags := normalizeTags(q.Tags)
	text := strings.TrimSpace(q.Text)
	if text == "" && len(tags) == 0 {
		return nil, ErrEmptyQuery
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.loading {
		return nil, ErrBuilding
	}
	c := collector{q: q, top: top, seen: map[string]bool{}}
	if text == "" {
		x.listByTags(&c, tags)
		return c.hits, nil
	}
	terms, unknown := x.queryTerms(text)
	if len(terms) == 0 {
		return []Hit{}, nil
	}
	// Collect a few more than asked, to rerank them by how fully the
	// query explains each tool's name. The caller's filters may drop
	// candidates: rank again for more of the best until enough are kept.
	c.top = max(top, rerankPool)
	r := x.rank(terms, tags)
	defer x.release(r)
	for k := c.top*2 + 10; ; k *= 4 {
		best := r.best(k)
		c.reset()
		for _, cd := range best {
			ref := x.docs[cd.doc]
			if !c.add(ref.e, int(ref.tool), cd.doc, cd.score) {
				break
			}
		}
		if len(c.hits) >= c.top || len(best) < k {
			break
		}
	}
	x.rerank(&c, terms)
	if len(c.hits) > top {
		c.hits, c.raw, c.docs = c.hits[:top], c.raw[:top], c.docs[:top]
	}
	if len(c.hits) > 0 {
		x.normalize(c.hits, c.raw, c.docs[0], terms, unknown)
	}
	return c.hits, nil
}

// rerankPool is how many hits are reranked by name coverage.
const rerankPool = 20

// nameBonus weighs name coverage in rerank (tuned with the boosts).
const nameBonus = 0.5

// rerank multiplies each hit's relevance by 1 + nameBonus × the share of
// the tool's name the query explains (each name word matched by a query
// word or, at its boost, by a synonym or correction of one), then re-sorts:
// of two tools matching the same words, the one whose name is about
// nothing else is the better answer ("create an issue": create_issue
// before add_issue_comment).
func (x *Index) rerank(c *collector, terms []queryTerm) {
	if len(c.hits) == 0 {
		return
	}
	// A name word counts at the best boost any query word gives it. The
	// name's words are read from the name postings rather than analyzed
	// again: how often the tool's name holds a term is its impact there
	// squared times the name's length.
	best := map[string]float64{}
	for _, qt := range terms {
		for _, a := range qt.alts {
			best[a.term] = max(best[a.term], a.boost)
		}
	}
	type nameAlt struct {
		name  string
		t     *term
		boost float64
	}
	alts := make([]nameAlt, 0, len(best))
	for name, b := range best {
		if t := x.terms[name]; t != nil && t.f[fieldName].df > 0 {
			alts = append(alts, nameAlt{name, t, b})
		}
	}
	sort.Slice(alts, func(i, j int) bool { return alts[i].name < alts[j].name }) // a fixed order of summing
	for i, d := range c.docs {
		n := float64(x.nameLen[d])
		if n == 0 {
			continue
		}
		cover := 0.0
		for _, a := range alts {
			if imp := float64(a.t.impact(fieldName, d)); imp > 0 {
				cover += a.boost * math.Round(imp*imp*n)
			}
		}
		c.raw[i] *= 1 + nameBonus*cover/n
	}
	idx := make([]int, len(c.hits))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool {
		ha, hb := c.hits[idx[a]], c.hits[idx[b]]
		switch {
		case c.raw[idx[a]] != c.raw[idx[b]]:
			return c.raw[idx[a]] > c.raw[idx[b]]
		case ha.ServerKey != hb.ServerKey: // ties in a stable order
			return ha.ServerKey < hb.ServerKey
		default:
			return ha.Tool.Name < hb.Tool.Name
		}
	})
	hits, raw, docs := make([]Hit, len(idx)), make([]float64, len(idx)), make([]uint32, len(idx))
	for k, i := range idx {
		hits[k], raw[k], docs[k] = c.hits[i], c.raw[i], c.docs[i]
	}
	c.hits, c.raw, c.docs = hits, raw, docs
}

// collector gathers hits up to top, applying the caller's filters.
type collector struct {
	q    Query
	top  int
	hits []Hit
	raw  []float64
	docs []uint32        // the hits' doc ids
	seen map[string]bool // servers in hits
}

// reset empties the collector.
func (c *collector) reset() {
	c.hits, c.raw, c.docs = c.hits[:0], c.raw[:0], c.docs[:0]
	clear(c.seen)
}

// add appends tool i of e, doc id d, as a hit unless a filter drops it; it
// reports whether more hits are wanted.
func (c *collector) add(e *entry, i int, d uint32, raw float64) bool {
	if len(c.hits) >= c.top {
		return false
	}
	if e == nil {
		return true
	}
	s := e.srv
	if c.q.Allow != nil && !c.q.Allow(s.Path, s.ToolList[i].Name) {
		return true
	}
	key := e.key()
	if c.q.MaxServers > 0 && !c.seen[key] && len(c.seen) >= c.q.MaxServers {
		return true
	}
	c.seen[key] = true
	c.hits = append(c.hits, Hit{
		ServerKey: key, ServerPath: s.Path, ServerName: s.ServerName, AuthProvider: s.AuthProvider,
		Transports: s.SupportedTransports, Tool: s.ToolList[i], Score: 1,
	})
	c.raw = append(c.raw, raw)
	c.docs = append(c.docs, d)
	return len(c.hits) < c.top
}

// listByTags lists the tools of the servers carrying every tag, in path
// order and tool order: with no text there is nothing to rank by.
func (x *Index) listByTags(c *collector, tags []string) {
	keys := make([]string, 0, len(x.servers))
	for k, e := range x.servers {
		if hasTags(e.srv, tags) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		e := x.servers[k]
		for i, t := range e.srv.ToolList {
			if e.tools[t.Name] != i {
				continue
			}
			if !c.add(e, i, 0, 1) { // no doc id needed: nothing is reranked
				return
			}
		}
	}
}

// hasTags reports whether s carries every tag (trimmed, case-insensitive):
// the rule of both rankings.
func hasTags(s *registry.Server, tags []string) bool {
	for _, want := range tags {
		want = strings.TrimSpace(want)
		if want == "" {
			continue
		}
		found := false
		for _, t := range s.Tags {
			if strings.EqualFold(strings.TrimSpace(t), want) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func normalizeTags(tags []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}

// queryTerm is one analyzed word of a query with its alternatives.
type queryTerm struct {
	term string
	alts []alt // the term itself first (when indexed), then synonyms and corrections
	idf  float64
}

// queryTerms analyzes a query's text the way documents are analyzed, drops
// words that only say "I need a tool", and gives each remaining word its
// indexed alternatives: itself, its synonyms, and for a word the index does
// not know, its spelling corrections. Words with no indexed alternative
// cannot match; their summed idf is returned, as they still count against
// the similarity of every hit.
func (x *Index) queryTerms(text string) ([]queryTerm, float64) {
	text = queryPhrases.Replace(strings.ToLower(text))
	var out []queryTerm
	var unknown float64
	seen := map[string]bool{}
	n := float64(x.tools) + 1
	corrected := 0
	for _, t := range x.analyze(expandIdentifiers(text)) {
		if seen[t] || queryStop[t] {
			continue
		}
		if len(out) == maxQueryWords {
			break
		}
		seen[t] = true
		qt := queryTerm{term: t}
		best := map[string]float64{}
		if x.vocab(t) > 0 {
			best[t] = 1
		} else if len(t) >= 4 && corrected < maxCorrectedWords {
			// Each correction is a pass over the vocabulary: a few per
			// query, not one per word of a long text.
			corrected++
			for _, c := range x.corrections(t) {
				best[c] = x.boosts.Fuzzy
			}
		}
		for _, a := range x.syn[t] {
			if x.vocab(a.term) > 0 && a.boost*x.boosts.Synonym > best[a.term] {
				best[a.term] = a.boost * x.boosts.Synonym
			}
		}
		if len(best) == 0 {
			unknown += 1 + math.Log(n)
			continue
		}
		if b, ok := best[t]; ok {
			qt.alts = append(qt.alts, alt{t, b})
			delete(best, t)
		}
		rest := make([]alt, 0, len(best))
		for term, b := range best {
			// tf-idf weighs a match by idf squared, so a synonym rarer than
			// the word the caller typed would outweigh the word itself:
			// cap it at the word's weight.
			if x.vocab(t) > 0 {
				if ratio := idf(n, x.vocab(t)) / idf(n, x.vocab(term)); ratio < 1 {
					b *= ratio * ratio
				}
			}
			rest = append(rest, alt{term, b})
		}
		sort.Slice(rest, func(i, j int) bool {
			if rest[i].boost != rest[j].boost {
				return rest[i].boost > rest[j].boost
			}
			return rest[i].term < rest[j].term
		})
		qt.alts = append(qt.alts, rest...)
		qt.idf = idf(n, x.vocab(qt.alts[0].term))
		out = append(out, qt)
	}
	return out, unknown
}

// normalize turns raw relevance scores into similarities in 0..1; d is the
// best hit's doc id. The best hit gets the idf-weighted share of the
// query's words it contains (a synonym or correction counting at its
// boost), and each later hit that share scaled by its raw score relative
// to the best, so scores fall in rank order and a hit matching every word
// of the query scores 1.
//
// A word the best hit does not hold weighs as a word the index does not
// know, even when some tool holds it: the best hit is one the caller may
// see, and a weight taken from a tool it may not see would tell, by the
// score, that such a tool has the word.
func (x *Index) normalize(hits []Hit, raw []float64, d uint32, terms []queryTerm, unknown float64) {
	best := raw[0]
	if best <= 0 {
		for i := range hits {
			hits[i].Score = 0
		}
		return
	}
	// Whether the best hit (doc d) holds a term is in the postings.
	have := func(term string) bool {
		t := x.terms[term]
		return t != nil && t.holds(d)
	}
	unknownWeight := 1 + math.Log(float64(x.tools)+1)
	total, matched := unknown, 0.0
	for _, qt := range terms {
		m := 0.0
		for _, a := range qt.alts {
			if a.boost > m && have(a.term) {
				m = a.boost
			}
		}
		if m == 0 {
			total += unknownWeight
			continue
		}
		total += qt.idf
		matched += qt.idf * math.Min(m, 1)
	}
	cover := 0.0
	if total > 0 {
		cover = matched / total
	}
	for i := range hits {
		hits[i].Score = round3(cover * raw[i] / best)
	}
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
