// Package search is the tool finder's index: every tool of every enabled
// server, searchable by natural-language text (English analysis with
// stemming, identifier splitting, a domain synonym table and typo
// tolerance) and filterable by server tags. It follows the registry through
// registry events and keeps bleve, the engine underneath, to itself.
package search

import (
	"context"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/document"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
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
var DefaultBoosts = Boosts{Name: 3, Desc: 1.5, Params: 0.5, Server: 1, Synonym: 0.5, Fuzzy: 0.7}

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
	an     analysis.Analyzer
	syn    map[string][]alt

	mu      sync.RWMutex
	bi      bleve.Index
	servers map[string]*entry
	vocab   map[string]int32 // analyzed term -> number of tools containing it
	tools   int
	batches int // batches applied since the index was last built whole
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
	bi, err := newBleve()
	if err != nil {
		return nil, err
	}
	x := &Index{boosts: b, log: opts.Log, an: an, bi: bi, servers: map[string]*entry{}, vocab: map[string]int32{}}
	x.syn = buildSynonyms(an, synonymGroups)
	return x, nil
}

// Close releases the index.
func (x *Index) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.bi.Close()
}

// Stats returns the index's counts.
func (x *Index) Stats() Stats {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return Stats{Servers: len(x.servers), Tools: x.tools, Terms: len(x.vocab)}
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
	x.log.Info().Int("servers", len(x.servers)).Int("tools", x.tools).Int("terms", len(x.vocab)).
		Dur("duration", time.Since(start)).Msg("finder index built")
	return nil
}

// Rebuild replaces the index's contents with servers (disabled ones skipped).
func (x *Index) Rebuild(servers []*registry.Server) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.rebuildLocked(servers)
}

// rebuildBatch is how many tools go into one bleve batch when building.
const rebuildBatch = 20000

func (x *Index) rebuildLocked(servers []*registry.Server) error {
	bi, err := newBleve()
	if err != nil {
		return err
	}
	entries := make(map[string]*entry, len(servers))
	vocab := make(map[string]int32)
	tools := 0
	b := bi.NewBatch()
	for _, s := range servers {
		if s == nil || !s.Enabled {
			continue
		}
		e := newEntry(s)
		entries[e.key()] = e
		for i := range s.ToolList {
			if e.tools[s.ToolList[i].Name] != i {
				continue // a duplicate name: the first one wins
			}
			if err := x.addDoc(b, vocab, e, i); err != nil {
				bi.Close()
				return err
			}
			tools++
			if b.Size() >= rebuildBatch {
				if err := bi.Batch(b); err != nil {
					bi.Close()
					return fmt.Errorf("search: build: %w", err)
				}
				b = bi.NewBatch()
			}
		}
	}
	if err := bi.Batch(b); err != nil {
		bi.Close()
		return fmt.Errorf("search: build: %w", err)
	}
	old := x.bi
	x.bi, x.servers, x.vocab, x.tools, x.batches = bi, entries, vocab, tools, 0
	if old != nil {
		_ = old.Close()
	}
	return nil
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
// The change is one bleve batch, applied while searches wait, so no search
// sees a mix of the old and new tools.
func (x *Index) Put(s *registry.Server) error {
	if !s.Enabled {
		return x.Remove(s.Path)
	}
	s = s.Clone()
	e := newEntry(s)
	x.mu.Lock()
	defer x.mu.Unlock()
	b := x.bi.NewBatch()
	delta := map[string]int32{}
	removed := 0
	if old := x.servers[e.key()]; old != nil {
		removed = x.deleteDocs(b, delta, old)
	}
	added := 0
	for i := range s.ToolList {
		if e.tools[s.ToolList[i].Name] != i {
			continue
		}
		if err := x.addDoc(b, delta, e, i); err != nil {
			return err
		}
		added++
	}
	if err := x.bi.Batch(b); err != nil {
		return fmt.Errorf("search: index %s: %w", s.Path, err)
	}
	x.servers[e.key()] = e
	x.tools += added - removed
	x.applyVocab(delta)
	return x.maybeCompactLocked()
}

// Remove drops every tool of the server at path (with or without slashes).
func (x *Index) Remove(path string) error {
	key := registry.PathKey(path)
	x.mu.Lock()
	defer x.mu.Unlock()
	old := x.servers[key]
	if old == nil {
		return nil
	}
	b := x.bi.NewBatch()
	delta := map[string]int32{}
	removed := x.deleteDocs(b, delta, old)
	if err := x.bi.Batch(b); err != nil {
		return fmt.Errorf("search: remove %s: %w", old.srv.Path, err)
	}
	delete(x.servers, key)
	x.tools -= removed
	x.applyVocab(delta)
	return x.maybeCompactLocked()
}

// compactAfter is how many incremental batches the in-memory index takes
// before it is rebuilt whole. Each batch adds a segment that is never merged
// without a persister, and searches slow down as segments pile up; a
// rebuild from the entries is cheap at registry sizes (see BENCHMARKS.md).
const compactAfter = 200

func (x *Index) maybeCompactLocked() error {
	x.batches++
	if x.batches < compactAfter {
		return nil
	}
	servers := make([]*registry.Server, 0, len(x.servers))
	for _, e := range x.servers {
		servers = append(servers, e.srv)
	}
	return x.rebuildLocked(servers)
}

func (x *Index) applyVocab(delta map[string]int32) {
	for t, d := range delta {
		if n := x.vocab[t] + d; n > 0 {
			x.vocab[t] = n
		} else {
			delete(x.vocab, t)
		}
	}
}

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

// docID is the bleve document id of one tool.
func docID(key, tool string) string { return key + "\x00" + tool }

func splitDocID(id string) (key, tool string) {
	key, tool, _ = strings.Cut(id, "\x00")
	return key, tool
}

// deleteDocs adds the deletion of e's tools to b and their terms to delta.
func (x *Index) deleteDocs(b *bleve.Batch, delta map[string]int32, e *entry) int {
	n := 0
	for i := range e.srv.ToolList {
		if e.tools[e.srv.ToolList[i].Name] != i {
			continue
		}
		b.Delete(docID(e.key(), e.srv.ToolList[i].Name))
		f := x.fields(e.srv, &e.srv.ToolList[i])
		for t := range f.termSet() {
			delta[t]--
		}
		n++
	}
	return n
}

// addDoc adds tool i of e to b and its terms to delta.
func (x *Index) addDoc(b *bleve.Batch, delta map[string]int32, e *entry, i int) error {
	s := e.srv
	f := x.fields(s, &s.ToolList[i])
	doc := document.NewDocument(docID(e.key(), s.ToolList[i].Name))
	for name, terms := range map[string][]string{fieldName: f.name, fieldDesc: f.desc, fieldParams: f.params, fieldServer: f.server} {
		if len(terms) > 0 {
			doc.AddField(document.NewTextFieldCustom(name, nil, []byte(strings.Join(terms, " ")), indexOnly, pretokenized))
		}
	}
	for _, tag := range s.Tags {
		doc.AddField(document.NewTextFieldCustom(fieldTags, nil, []byte(strings.ToLower(strings.TrimSpace(tag))), indexOnly, keywordAnalyzer))
	}
	if err := b.IndexAdvanced(doc); err != nil {
		return fmt.Errorf("search: index %s tool %s: %w", s.Path, s.ToolList[i].Name, err)
	}
	for t := range f.termSet() {
		delta[t]++
	}
	return nil
}

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
	c := collector{q: q, top: top, seen: map[string]bool{}}
	if text == "" {
		x.listByTags(&c, tags)
		return c.hits, nil
	}
	terms, unknown := x.queryTerms(text)
	if len(terms) == 0 {
		return []Hit{}, nil
	}
	bq := x.buildQuery(terms)
	var root query.Query = bq
	if len(tags) > 0 {
		bq2 := bleve.NewBooleanQuery()
		bq2.AddMust(bq)
		bq2.AddFilter(tagFilter(tags))
		root = bq2
	}
	page := top*2 + 10
	for from := 0; len(c.hits) < top && from < 10*page; from += page {
		req := bleve.NewSearchRequestOptions(root, page, from, debugExplain)
		req.SortBy([]string{"-_score", "_id"})
		res, err := x.bi.SearchInContext(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		for i, dm := range res.Hits {
			if debugExplain && i < 3 {
				fmt.Println(dm.ID, dm.Expl.String())
			}
			key, tool := splitDocID(dm.ID)
			if !c.add(x.servers[key], tool, dm.Score) {
				break
			}
		}
		if len(res.Hits) < page {
			break
		}
	}
	if len(c.hits) > 0 {
		x.normalize(c.hits, c.raw, terms, unknown)
	}
	return c.hits, nil
}

// collector gathers hits up to top, applying the caller's filters.
type collector struct {
	q    Query
	top  int
	hits []Hit
	raw  []float64
	seen map[string]bool // servers in hits
}

// add appends one hit unless a filter drops it; it reports whether more
// hits are wanted.
func (c *collector) add(e *entry, tool string, raw float64) bool {
	if len(c.hits) >= c.top {
		return false
	}
	if e == nil {
		return true
	}
	i, ok := e.tools[tool]
	if !ok {
		return true
	}
	s := e.srv
	if c.q.Allow != nil && !c.q.Allow(s.Path, tool) {
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
			if !c.add(e, t.Name, 1) {
				return
			}
		}
	}
}

func hasTags(s *registry.Server, tags []string) bool {
	for _, want := range tags {
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

func tagFilter(tags []string) query.Query {
	qs := make([]query.Query, 0, len(tags))
	for _, t := range tags {
		tq := bleve.NewTermQuery(t)
		tq.SetField(fieldTags)
		qs = append(qs, tq)
	}
	return bleve.NewConjunctionQuery(qs...)
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
	for _, t := range x.analyze(expandIdentifiers(text)) {
		if seen[t] || queryStop[t] {
			continue
		}
		seen[t] = true
		qt := queryTerm{term: t}
		best := map[string]float64{}
		if x.vocab[t] > 0 {
			best[t] = 1
		} else if len(t) >= 4 {
			for _, c := range x.corrections(t) {
				best[c] = x.boosts.Fuzzy
			}
		}
		for _, a := range x.syn[t] {
			if x.vocab[a.term] > 0 && a.boost*x.boosts.Synonym > best[a.term] {
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
			rest = append(rest, alt{term, b})
		}
		sort.Slice(rest, func(i, j int) bool {
			if rest[i].boost != rest[j].boost {
				return rest[i].boost > rest[j].boost
			}
			return rest[i].term < rest[j].term
		})
		qt.alts = append(qt.alts, rest...)
		df := float64(x.vocab[qt.alts[0].term])
		qt.idf = 1 + math.Log(n/(df+1))
		out = append(out, qt)
	}
	return out, unknown
}

// clause is one term query of a search: alternative alt of query word
// term, looked up in field.
type clause struct {
	term  int
	field int
	boost float64 // the alternative's boost
}

// buildQuery returns the bleve query of a search. It is one flat
// disjunction of term queries, one per word alternative and field, whose
// per-clause scores (bleve's tf-idf, with unit boosts) are combined by
// x.score rather than by bleve's disjunction scorer: that one multiplies by
// the share of clauses matched, which would punish a word for having many
// synonyms or fields.
func (x *Index) buildQuery(terms []queryTerm) query.Query {
	var clauses []clause
	var qs []query.Query
	for ti, qt := range terms {
		for _, a := range qt.alts {
			for fi, f := range scoredFields {
				if x.fieldBoost(fi) <= 0 {
					continue
				}
				tq := bleve.NewTermQuery(a.term)
				tq.SetField(f)
				qs = append(qs, tq)
				clauses = append(clauses, clause{term: ti, field: fi, boost: a.boost})
			}
		}
	}
	d := bleve.NewDisjunctionQuery(qs...)
	d.RetrieveScoreBreakdown(true)
	sc := &scorer{x: x, clauses: clauses, nterms: len(terms), best: make([]float64, len(terms)*len(scoredFields))}
	return query.NewCustomScoreQueryWithScorer(d, sc.score, nil, nil)
}

// scoredFields are the text fields a query word is looked up in, in the
// order of fieldBoost.
var scoredFields = []string{fieldName, fieldDesc, fieldParams, fieldServer}

func (x *Index) fieldBoost(i int) float64 {
	switch i {
	case 0:
		return x.boosts.Name
	case 1:
		return x.boosts.Desc
	case 2:
		return x.boosts.Params
	default:
		return x.boosts.Server
	}
}

// scorer combines the clause scores of one document: for each query word
// and field the best alternative (weighted by its boost) counts, fields add
// up with their boosts, and the sum over words is multiplied by the share
// of words matched, so a tool matching more of the query ranks higher.
// One scorer serves one search, which scores documents one at a time.
type scorer struct {
	x       *Index
	clauses []clause
	nterms  int
	best    []float64 // [term*fields+field] scratch
}

func (s *scorer) score(_ context.Context, d *search.DocumentMatch) (float64, error) {
	nf := len(scoredFields)
	for i := range s.best {
		s.best[i] = 0
	}
	for ci, v := range d.ScoreBreakdown {
		c := s.clauses[ci]
		if w := v * c.boost; w > s.best[c.term*nf+c.field] {
			s.best[c.term*nf+c.field] = w
		}
	}
	total, matched := 0.0, 0
	for t := 0; t < s.nterms; t++ {
		sum := 0.0
		for f := 0; f < nf; f++ {
			sum += s.x.fieldBoost(f) * s.best[t*nf+f]
		}
		if sum > 0 {
			matched++
			total += sum
		}
	}
	return total * float64(matched) / float64(s.nterms), nil
}

// normalize turns raw relevance scores into similarities in 0..1. The best
// hit gets the idf-weighted share of the query's words it contains (a
// synonym or correction counting at its boost), and each later hit that
// share scaled by its raw score relative to the best, so scores fall in
// rank order and a hit matching every word of the query scores 1.
func (x *Index) normalize(hits []Hit, raw []float64, terms []queryTerm, unknown float64) {
	best := raw[0]
	if best <= 0 {
		for i := range hits {
			hits[i].Score = 0
		}
		return
	}
	e := x.servers[hits[0].ServerKey]
	var have map[string]bool
	if e != nil {
		have = x.fields(e.srv, &hits[0].Tool).termSet()
	}
	total, matched := unknown, 0.0
	for _, qt := range terms {
		total += qt.idf
		m := 0.0
		for _, a := range qt.alts {
			if have[a.term] && a.boost > m {
				m = a.boost
			}
		}
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

var debugExplain = os.Getenv("MCPGW_EXPLAIN") != ""
