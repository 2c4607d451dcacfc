package search

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/mcpgw/mcpgw/registry"
)

// EmbeddingCache keeps tool embeddings across restarts, by model and the
// hex SHA-256 of the exact text embedded (registry/sqlite and
// registry/postgres implement it).
type EmbeddingCache interface {
	// GetEmbeddings returns the vectors it holds among hashes; hashes it
	// does not hold are absent from the map.
	GetEmbeddings(ctx context.Context, model string, hashes []string) (map[string][]float32, error)
	// PutEmbeddings stores vectors by hash.
	PutEmbeddings(ctx context.Context, model string, vecs map[string][]float32) error
}

// EmbeddingPruner is an EmbeddingCache that can drop the vectors of texts
// no tool has any more (registry/sqlite and registry/postgres implement
// it). Without it, every description ever embedded stays cached.
type EmbeddingPruner interface {
	// PruneEmbeddings deletes the vectors of model stored before before
	// whose hash is not in keep, and reports how many it deleted.
	PruneEmbeddings(ctx context.Context, model string, keep []string, before time.Time) (int64, error)
}

// HybridOptions configure a Hybrid.
type HybridOptions struct {
	// Cache keeps vectors across restarts; nil keeps them in memory only.
	Cache EmbeddingCache
	// Log receives embedding failures and fallbacks.
	Log zerolog.Logger
	// QueryTimeout limits embedding a query (default 2s); past it the
	// query is answered by the text ranking alone.
	QueryTimeout time.Duration
	// RetryEvery is the wait after a failed embedding of tool texts
	// before the next attempt (default 30s).
	RetryEvery time.Duration
	// K is the reciprocal rank fusion constant (default 60).
	K int
	// Depth is how many hits of each ranking are fused, at least the
	// number asked for (default: the number asked for, as Elasticsearch's
	// rank_window_size). A deeper window favors tools both rankings place
	// somewhere over a tool one ranking alone places first; a tool whose
	// words the text ranking cannot see at all (a need worded unlike its
	// description) is then never first.
	Depth int
	// PruneEvery is how often, at most, the cache drops the vectors of
	// texts no enabled tool has any more, once every current text has its
	// vector (default 24h, the first time soon after start-up; negative:
	// never). Disabled servers' vectors go too and are embedded again when
	// the server is enabled.
	PruneEvery time.Duration
	// PruneAfter spares vectors stored less than this long ago (default
	// 1h), so that a replica does not drop what another one has just
	// stored for a tool it has not seen yet.
	PruneAfter time.Duration
	// IndexFrom is the number of distinct tool vectors from which they are
	// kept in a vector index (default 10,000; negative: never): stored back
	// to back, so that a query's scan streams through memory, and with
	// ApproxProbe below 1 grouped into lists of which a query scans only
	// the nearest. See ivf.go.
	IndexFrom int
	// ApproxProbe is the share of the index's lists a query scans (default
	// 1: one list, every vector, exact). Below 1 the vector ranking is
	// approximate: faster, and it misses some of the exact ranking's tools.
	ApproxProbe float64
}

// Hybrid ranks tools by text (the wrapped Index) and by embedding
// similarity, and fuses the two rankings by reciprocal rank fusion. Tool
// texts are embedded in the background, so registrations never wait for the
// embeddings endpoint; a tool not yet embedded is found by text only. When
// the endpoint fails at query time, the text ranking answers alone.
type Hybrid struct {
	text  *Index
	emb   Embedder
	model string
	cache EmbeddingCache
	log   zerolog.Logger
	qto   time.Duration
	retry time.Duration
	k     int
	depth int

	pruneEvery time.Duration
	pruneAfter time.Duration
	lastPrune  time.Time // only the worker goroutine uses it
	indexFrom  int
	probe      float64
	ivfGen     int // builds of the approximate index; only the worker uses it

	// applyMu makes an event one change for searches: Apply holds it
	// while it updates the text index and then the vectors.
	applyMu sync.RWMutex

	mu       sync.RWMutex
	servers  map[string]*vecServer
	vecs     map[string]*vecRef                 // text hash -> vector
	want     map[string]string                  // text hash -> text, for vectors not yet computed
	loaded   bool                               // the whole registry has been listed (Load or Rebuild)
	ivf      *ivf                               // the vector index; nil: queries scan every server's vectors
	fresh    []*vecRef                          // vectors set since ivf was built, not in it
	ivfDead  int                                // vectors in ivf dropped since
	tools    int                                // tools of the servers
	tagTools map[string]int                     // foldTag'ed tag -> tools of the servers carrying it
	byTag    map[string]map[*vecServer]struct{} // foldTag'ed tag -> servers carrying it

	qmu    sync.Mutex
	qcache map[string][]float32 // query text -> vector

	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	statMu   sync.Mutex
	embedded int // texts embedded by the endpoint (not found in the cache)
	pruned   int64
	failing  bool
}

// vecServer is one enabled server's tools on the vector side.
type vecServer struct {
	key   string
	srv   *registry.Server
	tools []vecTool
	tags  []string // the server's tags, foldTag'ed, each once
}

type vecTool struct {
	i    int     // index in srv.ToolList
	hash string  // of the tool's embedded text
	ref  *vecRef // h.vecs[hash], kept here so that a query scan does no map lookups
}

// vecRef is one embedded text's vector (nil until computed), shared by the
// tools with that text.
type vecRef struct {
	v     []float32 // unit length
	refs  int
	users []toolAt // the tools with this text, for a scan by vector
	gen   int      // the approximate index's build that holds v (0: none)
	dead  bool     // no tool has the text any more
}

// toolAt is tool ti of a server.
type toolAt struct {
	e  *vecServer
	ti int
}

var _ interface {
	Search(context.Context, Query) ([]Hit, error)
	Apply(registry.Event)
} = (*Hybrid)(nil)

// NewHybrid returns a Hybrid over the text index x and starts its embedding
// worker; Close stops it. x stays the caller's to close.
func NewHybrid(x *Index, emb Embedder, opts HybridOptions) (*Hybrid, error) {
	if x == nil || emb == nil {
		return nil, errors.New("search: hybrid: a text index and an embedder are required")
	}
	h := &Hybrid{text: x, emb: emb, model: emb.Model(), cache: opts.Cache, log: opts.Log,
		qto: opts.QueryTimeout, retry: opts.RetryEvery, k: opts.K, depth: opts.Depth,
		pruneEvery: opts.PruneEvery, pruneAfter: opts.PruneAfter, indexFrom: opts.IndexFrom, probe: opts.ApproxProbe,
		servers: map[string]*vecServer{}, vecs: map[string]*vecRef{}, want: map[string]string{}, tagTools: map[string]int{}, byTag: map[string]map[*vecServer]struct{}{},
		qcache: map[string][]float32{}, kick: make(chan struct{}, 1), done: make(chan struct{})}
	if h.qto <= 0 {
		h.qto = 2 * time.Second
	}
	if h.retry <= 0 {
		h.retry = 30 * time.Second
	}
	if h.k <= 0 {
		h.k = 60
	}
	if h.pruneEvery == 0 {
		h.pruneEvery = 24 * time.Hour
	}
	if h.pruneAfter <= 0 {
		h.pruneAfter = time.Hour
	}
	h.depth = min(max(h.depth, 0), MaxTop)
	if h.indexFrom == 0 {
		h.indexFrom = defaultIndexFrom
	}
	if h.probe <= 0 || h.probe > 1 || math.IsNaN(h.probe) {
		h.probe = 1
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	go h.run()
	return h, nil
}

// Close stops the embedding worker, waiting for a request in progress to
// be abandoned. It does not close the text index.
func (h *Hybrid) Close() error {
	h.cancel()
	<-h.done
	return nil
}

// Text returns the text index the Hybrid wraps.
func (h *Hybrid) Text() *Index { return h.text }

// HybridStats describe the vector side.
type HybridStats struct {
	Vectors  int   // distinct tool texts with a vector
	Pending  int   // distinct tool texts waiting for one
	Indexed  int   // vectors in the vector index (0: none yet, or too few vectors for one)
	Embedded int   // texts embedded by the endpoint since the start (cache hits excluded)
	Pruned   int64 // cached vectors dropped since the start
}

// Stats returns the vector side's counts.
func (h *Hybrid) Stats() HybridStats {
	h.mu.RLock()
	st := HybridStats{Vectors: len(h.vecs) - len(h.want), Pending: len(h.want)}
	if h.ivf != nil {
		st.Indexed = h.ivf.size
	}
	h.mu.RUnlock()
	h.statMu.Lock()
	st.Embedded, st.Pruned = h.embedded, h.pruned
	h.statMu.Unlock()
	return st
}

// Load builds both sides from list (see Index.Load).
func (h *Hybrid) Load(ctx context.Context, list func(context.Context) ([]*registry.Server, error)) error {
	return h.text.Load(ctx, h.listing(list))
}

// LoadInBackground builds the text index in the background (see
// Index.LoadInBackground); the tool texts are queued for embedding at once.
func (h *Hybrid) LoadInBackground(ctx context.Context, list func(context.Context) ([]*registry.Server, error)) error {
	return h.text.LoadInBackground(ctx, h.listing(list))
}

// WaitLoaded waits up to d for the text index's first build.
func (h *Hybrid) WaitLoaded(d time.Duration) bool { return h.text.WaitLoaded(d) }

// Rebuild replaces both sides' contents with servers.
func (h *Hybrid) Rebuild(servers []*registry.Server) error {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	if err := h.text.Rebuild(servers); err != nil {
		return err
	}
	h.replace(servers)
	return nil
}

// listing wraps list so that the vector side takes the listed servers in
// the same step as the text index: events held back by the text index's
// load are applied to both sides after it.
func (h *Hybrid) listing(list func(context.Context) ([]*registry.Server, error)) func(context.Context) ([]*registry.Server, error) {
	return func(ctx context.Context) ([]*registry.Server, error) {
		servers, err := list(ctx)
		if err == nil {
			h.replace(servers)
		}
		return servers, err
	}
}

// replace makes the vector side hold servers (disabled ones skipped).
func (h *Hybrid) replace(servers []*registry.Server) {
	h.mu.Lock()
	h.loaded = true
	for key := range h.servers {
		h.setLocked(key, nil)
	}
	for _, s := range servers {
		if s != nil && s.Enabled {
			h.setLocked(registry.PathKey(s.Path), newVecServer(s.Clone()))
		}
	}
	h.mu.Unlock()
	h.poke()
}

// Apply folds one registry event into both rankings; it is meant for
// registry.Service.Subscribe. It never waits for the embeddings endpoint:
// new tool texts are embedded in the background.
func (h *Hybrid) Apply(ev registry.Event) {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	h.text.Apply(ev)
	var e *vecServer
	key := registry.PathKey(ev.Key)
	if ev.Kind == registry.EventPut && ev.Server != nil && ev.Server.Enabled {
		e = newVecServer(ev.Server.Clone())
		key = registry.PathKey(ev.Server.Path)
	}
	h.mu.Lock()
	h.setLocked(key, e)
	h.mu.Unlock()
	h.poke()
}

func newVecServer(s *registry.Server) *vecServer {
	e := &vecServer{srv: s}
	for _, t := range s.Tags {
		if t = foldTag(t); t != "" && !slices.Contains(e.tags, t) {
			e.tags = append(e.tags, t)
		}
	}
	seen := make(map[string]bool, len(s.ToolList))
	for i := range s.ToolList {
		t := &s.ToolList[i]
		if seen[t.Name] { // a duplicate name: the first one wins, as in the text index
			continue
		}
		seen[t.Name] = true
		e.tools = append(e.tools, vecTool{i: i, hash: textHash(embedText(s, t))})
	}
	return e
}

// setLocked makes e the server at key (nil: none), counting references to
// tool texts and queuing the texts that have no vector yet.
func (h *Hybrid) setLocked(key string, e *vecServer) {
	if e != nil {
		e.key = key
		h.countTags(e, 1)
		for i := range e.tools {
			t := &e.tools[i]
			r := h.vecs[t.hash]
			if r == nil {
				r = &vecRef{}
				h.vecs[t.hash] = r
				h.want[t.hash] = embedText(e.srv, &e.srv.ToolList[t.i])
			}
			r.refs++
			r.users = append(r.users, toolAt{e: e, ti: i})
			t.ref = r
		}
	}
	if old := h.servers[key]; old != nil {
		h.countTags(old, -1)
		for _, t := range old.tools {
			r := t.ref
			if r == nil {
				continue
			}
			r.users = slices.DeleteFunc(r.users, func(u toolAt) bool { return u.e == old })
			if r.refs--; r.refs <= 0 {
				delete(h.vecs, t.hash)
				delete(h.want, t.hash)
				r.dead = true
				if h.ivf != nil && r.gen == h.ivf.gen {
					h.ivfDead++
				}
			}
		}
	}
	if e != nil {
		h.servers[key] = e
	} else {
		delete(h.servers, key)
	}
}

// poke wakes the embedding worker.
func (h *Hybrid) poke() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// maxEmbedText bounds an embedded text: embedding models read a few
// hundred tokens, and the start of a description says what the tool does.
const maxEmbedText = 2000

// embedText is the text embedded for a tool: its name as words, its
// description, its parameter names and its server's name.
func embedText(s *registry.Server, t *registry.Tool) string {
	var b strings.Builder
	_, words := ToolWords(t.Name)
	b.WriteString(strings.Join(words, " "))
	if s.ServerName != "" {
		b.WriteString(" (")
		b.WriteString(s.ServerName)
		b.WriteString(")")
	}
	for _, d := range []*string{t.ParsedDescription.Main, t.ParsedDescription.Args, t.ParsedDescription.Returns} {
		if d != nil && strings.TrimSpace(*d) != "" {
			b.WriteString(". ")
			b.WriteString(strings.TrimRight(strings.Join(strings.Fields(*d), " "), "."))
		}
	}
	if params := paramNames(t.Schema); len(params) > 0 {
		b.WriteString(". Parameters: ")
		b.WriteString(strings.Join(params, ", "))
	}
	out := b.String()
	if len(out) > maxEmbedText {
		cut := maxEmbedText
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut]
	}
	return out
}

// paramNames returns the top-level property names of a JSON Schema, sorted.
func paramNames(schema json.RawMessage) []string {
	var s struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if len(schema) == 0 || json.Unmarshal(schema, &s) != nil {
		return nil
	}
	out := make([]string, 0, len(s.Properties))
	for name := range s.Properties {
		out = append(out, strings.Join(SplitIdentifier(name), " "))
	}
	sort.Strings(out)
	return out
}

// textHash is the cache key of an embedded text.
func textHash(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// run is the embedding worker: it embeds the queued texts whenever poked,
// and after a failure retries every RetryEvery.
func (h *Hybrid) run() {
	defer close(h.done)
	var retry <-chan time.Time
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-h.kick:
		case <-retry:
		}
		retry = nil
		if err := h.embedPending(h.ctx); err != nil {
			if h.ctx.Err() != nil {
				return
			}
			h.statMu.Lock()
			first := !h.failing
			h.failing = true
			h.statMu.Unlock()
			ev := h.log.Debug()
			if first {
				ev = h.log.Warn()
			}
			ev.Err(err).Int("pending", h.Stats().Pending).Dur("retry_in", h.retry).
				Msg("finder: embedding tool texts failed; those tools are found by text only until a retry succeeds")
			retry = time.After(h.retry)
			continue
		}
		h.statMu.Lock()
		recovered := h.failing
		h.failing = false
		h.statMu.Unlock()
		if recovered {
			h.log.Info().Msg("finder: embedding tool texts works again")
		}
		h.maybeIndex(h.ctx)
		h.maybePrune(h.ctx)
	}
}

// maybePrune drops from the cache the vectors of texts no enabled tool
// has, at most every PruneEvery, and only when the whole registry has been
// listed and every current text has its vector: before that, the set of
// texts in use is not known.
func (h *Hybrid) maybePrune(ctx context.Context) {
	pr, ok := h.cache.(EmbeddingPruner)
	if !ok || h.pruneEvery < 0 || !h.lastPrune.IsZero() && time.Since(h.lastPrune) < h.pruneEvery {
		return
	}
	h.mu.RLock()
	ready := h.loaded && len(h.want) == 0
	keep := make([]string, 0, len(h.vecs))
	if ready {
		for hs := range h.vecs {
			keep = append(keep, hs)
		}
	}
	h.mu.RUnlock()
	if !ready {
		return
	}
	h.lastPrune = time.Now()
	n, err := pr.PruneEmbeddings(ctx, h.model, keep, h.lastPrune.Add(-h.pruneAfter))
	if err != nil {
		if ctx.Err() == nil {
			h.log.Warn().Err(err).Msg("finder: pruning the embedding cache failed")
		}
		return
	}
	h.statMu.Lock()
	h.pruned += n
	h.statMu.Unlock()
	if n > 0 {
		h.log.Info().Int64("pruned", n).Int("kept", len(keep)).Msg("finder: dropped cached embeddings no tool uses")
	}
}

// embedChunk is how many texts the worker takes at a time: each chunk is
// looked up in the cache, embedded, stored and installed before the next.
const embedChunk = 256

// embedPending computes the vectors of every queued text, a chunk at a
// time, first from the cache, then from the endpoint.
func (h *Hybrid) embedPending(ctx context.Context) error {
	for {
		h.mu.RLock()
		hashes := make([]string, 0, min(embedChunk, len(h.want)))
		texts := make([]string, 0, cap(hashes))
		for hs, txt := range h.want {
			if len(hashes) == embedChunk {
				break
			}
			hashes, texts = append(hashes, hs), append(texts, txt)
		}
		h.mu.RUnlock()
		if len(hashes) == 0 {
			return nil
		}
		got := map[string][]float32{}
		if h.cache != nil {
			c, err := h.cache.GetEmbeddings(ctx, h.model, hashes)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				h.log.Warn().Err(err).Msg("finder: reading the embedding cache failed; embedding anew")
			} else {
				got = c
			}
		}
		var missH, missT []string
		for i, hs := range hashes {
			if _, ok := got[hs]; !ok {
				missH, missT = append(missH, hs), append(missT, texts[i])
			}
		}
		if len(missT) > 0 {
			vecs, err := h.emb.Embed(ctx, missT)
			if err == nil && len(vecs) != len(missT) {
				err = fmt.Errorf("embeddings: %d vectors for %d texts", len(vecs), len(missT))
			}
			if err != nil {
				h.install(got) // what the cache had is good
				return err
			}
			fresh := make(map[string][]float32, len(vecs))
			for i, v := range vecs {
				fresh[missH[i]] = v
				got[missH[i]] = v
			}
			h.statMu.Lock()
			h.embedded += len(vecs)
			h.statMu.Unlock()
			if h.cache != nil {
				if err := h.cache.PutEmbeddings(ctx, h.model, fresh); err != nil && ctx.Err() == nil {
					h.log.Warn().Err(err).Msg("finder: storing embeddings in the cache failed; they are kept in memory")
				}
			}
		}
		h.install(got)
	}
}

// install sets the vectors of texts still wanted, normalized to unit
// length (a zero vector stays zero and matches nothing).
func (h *Hybrid) install(vecs map[string][]float32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for hs, v := range vecs {
		r := h.vecs[hs]
		if r == nil || r.v != nil {
			continue
		}
		r.v = unitVec(v)
		delete(h.want, hs)
		if h.ivf != nil {
			h.fresh = append(h.fresh, r)
		}
	}
}

func unitVec(v []float32) []float32 {
	var ss float64
	for _, f := range v {
		ss += float64(f) * float64(f)
	}
	out := make([]float32, len(v))
	if ss == 0 || math.IsNaN(ss) || math.IsInf(ss, 0) {
		return out
	}
	n := 1 / math.Sqrt(ss)
	for i, f := range v {
		out[i] = float32(float64(f) * n)
	}
	return out
}

// WaitEmbedded waits until every queued tool text has a vector, or ctx
// ends (tests and the benchmark).
func (h *Hybrid) WaitEmbedded(ctx context.Context) error {
	for {
		if h.Stats().Pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("search: waiting for embeddings: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// queryCacheSize bounds the remembered query vectors: agents repeat their
// queries, and a hit saves a round trip to the endpoint.
const queryCacheSize = 1024

// queryVector embeds a query's text, within the query timeout.
func (h *Hybrid) queryVector(ctx context.Context, text string) ([]float32, error) {
	h.qmu.Lock()
	v, ok := h.qcache[text]
	h.qmu.Unlock()
	if ok {
		return v, nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.qto)
	defer cancel()
	vecs, err := h.emb.Embed(ctx, []string{text})
	if err != nil {
		return nil, err
	}
	if len(vecs) != 1 {
		return nil, fmt.Errorf("embeddings: %d vectors for one query", len(vecs))
	}
	v = unitVec(vecs[0])
	h.qmu.Lock()
	if len(h.qcache) >= queryCacheSize {
		clear(h.qcache)
	}
	h.qcache[text] = v
	h.qmu.Unlock()
	return v, nil
}

// Search runs q and returns at most q.Top hits, best first. A query with
// text is ranked by text and by embedding similarity, fused; a tags-only
// query lists as the text index does. When the query cannot be embedded,
// or no tool has a vector yet, the text ranking answers alone, with its
// own scores.
func (h *Hybrid) Search(ctx context.Context, q Query) ([]Hit, error) {
	text := strings.TrimSpace(q.Text)
	if text == "" {
		return h.text.Search(ctx, q)
	}
	// Embed first, outside every lock: the endpoint may be slow, and
	// registrations must not wait for it.
	qv, err := h.queryVector(ctx, text)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		h.log.Warn().Err(err).Msg("finder: embedding the query failed; answering with the text ranking alone")
		return h.text.Search(ctx, q)
	}
	top := q.Top
	if top <= 0 {
		top = DefaultTop
	}
	top = min(top, MaxTop)
	h.applyMu.RLock()
	defer h.applyMu.RUnlock()
	// Both rankings go deeper than top and ignore MaxServers, which
	// applies to the fused list. Allow is asked by both, one after the
	// other: callers' Allow need not be safe for concurrent use.
	tq := q
	tq.Top, tq.MaxServers = max(h.depth, top), 0
	textHits, err := h.text.Search(ctx, tq)
	if err != nil {
		return nil, err
	}
	vecHits := h.nearest(qv, q.Tags, q.Allow, max(h.depth, top))
	if len(vecHits) == 0 {
		return h.text.Search(ctx, q)
	}
	return fuseHits(h.k, textHits, vecHits, top, q.MaxServers), nil
}

// vecCand is a candidate of the vector ranking.
type vecCand struct {
	e    *vecServer
	t    int // index in e.tools
	sim  float32
	key  string
	name string
}

// vecHeap keeps the best candidates, the worst on top.
type vecHeap []vecCand

func (m vecHeap) Len() int           { return len(m) }
func (m vecHeap) Less(i, j int) bool { return vecWorse(m[i], m[j]) }
func (m vecHeap) Swap(i, j int)      { m[i], m[j] = m[j], m[i] }
func (m *vecHeap) Push(x any)        { *m = append(*m, x.(vecCand)) }
func (m *vecHeap) Pop() any {
	old := *m
	x := old[len(old)-1]
	*m = old[:len(old)-1]
	return x
}

// vecWorse orders candidates by similarity, ties by server key and tool name.
func vecWorse(a, b vecCand) bool {
	if a.sim != b.sim {
		return a.sim < b.sim
	}
	if a.key != b.key {
		return a.key > b.key
	}
	return a.name > b.name
}

// nearest returns the n tools most similar to qv (cosine) among the servers
// carrying every tag that allow accepts, best first. Allow is asked only of
// tools that would enter the n best so far.
func (h *Hybrid) nearest(qv []float32, tags []string, allow func(string, string) bool, n int) []Hit {
	h.mu.RLock()
	defer h.mu.RUnlock()
	s := &vecScan{qv: qv, tags: foldTags(tags), allow: allow, n: n, best: make(vecHeap, 0, n)}
	if ix := h.ivf; ix != nil && len(qv) == ix.dims && !h.fewTagged(s.tags) {
		h.scanIVF(ix, s)
	} else {
		for e := range h.tagged(s.tags) {
			if !e.hasTags(s.tags) {
				continue
			}
			for ti := range e.tools {
				r := e.tools[ti].ref
				if r == nil || len(r.v) != len(qv) {
					continue // not embedded yet, or by another model
				}
				if sim := dot(qv, r.v); !s.beaten(sim) {
					s.offer(e, ti, sim)
				}
			}
		}
	}
	best := s.best
	out := make([]Hit, len(best))
	for i := len(best) - 1; i >= 0; i-- {
		c := heap.Pop(&best).(vecCand)
		s := c.e.srv
		out[i] = Hit{ServerKey: c.key, ServerPath: s.Path, ServerName: s.ServerName, AuthProvider: s.AuthProvider,
			Transports: s.SupportedTransports, Tool: s.ToolList[c.e.tools[c.t].i], Score: math.Max(0, float64(c.sim))}
	}
	return out
}

// dot is the dot product of two vectors of the same length: gonum's,
// whose assembly multiplies four pairs at a time (three to four times the
// plain loop's speed on vectors in cache). The query scan is this call over
// every tool's vector.
func dot(a, b []float32) float32 {
	return blas32.Dot(blas32.Vector{N: len(a), Inc: 1, Data: a}, blas32.Vector{N: len(a), Inc: 1, Data: b[:len(a)]})
}

// fusedID is one entry of a fused ranking.
type fusedID struct {
	ID    string
	Score float64 // in 0..1: 1 is first in every ranking
	best  int     // best rank in any ranking, 1-based
	list  int     // the first ranking it was found in
}

// rrf fuses rankings (ids, best first) by reciprocal rank fusion: an id
// scores the sum over the rankings of 1/(k + its rank), divided by what
// first place in every ranking scores, so scores fall in 0..1. An id in one
// ranking only scores at most 1/len(lists). Ties go to the better best
// rank, then to the earlier ranking, then to the smaller id.
func rrf(k int, lists ...[]string) []fusedID {
	at := map[string]int{}
	var out []fusedID
	for li, list := range lists {
		seen := map[string]bool{}
		for i, id := range list {
			if seen[id] {
				continue // a ranking counts an id once, at its best rank
			}
			seen[id] = true
			j, ok := at[id]
			if !ok {
				j = len(out)
				at[id] = j
				out = append(out, fusedID{ID: id, best: i + 1, list: li})
			}
			out[j].Score += 1 / float64(k+i+1)
			out[j].best = min(out[j].best, i+1)
		}
	}
	norm := float64(len(lists)) / float64(k+1)
	for i := range out {
		out[i].Score /= norm
	}
	sort.SliceStable(out, func(a, b int) bool {
		x, y := out[a], out[b]
		switch {
		case x.Score != y.Score:
			return x.Score > y.Score
		case x.best != y.best:
			return x.best < y.best
		case x.list != y.list:
			return x.list < y.list
		default:
			return x.ID < y.ID
		}
	})
	return out
}

// fuseHits fuses the text and vector rankings and returns the top hits,
// at most maxServers distinct servers when positive, each vecCand by its
// fused score.
func fuseHits(k int, textHits, vecHits []Hit, top, maxServers int) []Hit {
	byID := make(map[string]Hit, len(textHits)+len(vecHits))
	ids := func(hits []Hit) []string {
		out := make([]string, len(hits))
		for i, h := range hits {
			out[i] = h.ServerKey + "\x00" + h.Tool.Name
			if _, ok := byID[out[i]]; !ok {
				byID[out[i]] = h
			}
		}
		return out
	}
	fused := rrf(k, ids(textHits), ids(vecHits))
	out := make([]Hit, 0, min(top, len(fused)))
	servers := map[string]bool{}
	for _, f := range fused {
		if len(out) == top {
			break
		}
		h := byID[f.ID]
		if maxServers > 0 && !servers[h.ServerKey] && len(servers) >= maxServers {
			continue
		}
		servers[h.ServerKey] = true
		h.Score = math.Round(f.Score*1000) / 1000
		out = append(out, h)
	}
	return out
}
