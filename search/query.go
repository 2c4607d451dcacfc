package search

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"math"
	"reflect"
	"sort"

	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/searcher"
	index "github.com/blevesearch/bleve_index_api"
)

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

// idf is the inverse document frequency of a term in df of n tools.
func idf(n float64, df int32) float64 { return 1 + math.Log(n/(float64(df)+1)) }

// clause is one term lookup of a search: an alternative of query word
// term, in field.
type clause struct {
	alt   string
	term  int     // index of the query word
	field int     // index in scoredFields
	boost float64 // the alternative's boost
}

// toolQuery is the bleve query of a finder search. bleve's own disjunction
// would do two things wrong here: it multiplies a document's score by the
// share of clauses matched (punishing a word for having synonyms or several
// fields), and it visits and fully scores every document any clause
// matches, which on a large registry is most of them, since tool texts
// share common words. So the query scores documents itself (see score),
// lets only its selective clauses propose documents, and stops scoring a
// document as soon as it cannot reach the results (see toolSearcher).
type toolQuery struct {
	x       *Index
	clauses []clause
	nterms  int
	tags    []string
	// depth is how many of the best documents the search must get right
	// (from + size of the request); 0 scores every document fully.
	depth int
}

// buildQuery returns the query for the analyzed words of a search, limited
// to servers carrying every tag in tags (lowercased).
func (x *Index) buildQuery(terms []queryTerm, tags []string) *toolQuery {
	q := &toolQuery{x: x, nterms: len(terms), tags: tags}
	for ti, qt := range terms {
		for ai, a := range qt.alts {
			for fi := range scoredFields {
				// Synonyms and corrections are looked up in the name and the
				// description only: in parameter names and server texts they
				// matched more noise than sense (see BENCHMARKS.md).
				if x.fieldBoost(fi) <= 0 || ai > 0 && fi >= 2 {
					continue
				}
				q.clauses = append(q.clauses, clause{alt: a.term, term: ti, field: fi, boost: a.boost})
			}
		}
	}
	return q
}

// Common clauses: a clause whose term is in more than this share of the
// indexed tools (and more than commonFloor of them) does not propose
// documents; it only adds to the score of documents the rarer clauses
// found. When no clause is rare, the rarest query word's clauses propose.
const (
	commonShare = 1.0 / 32
	commonFloor = 64
)

// Searcher implements query.Query.
func (q *toolQuery) Searcher(ctx context.Context, r index.IndexReader, _ mapping.IndexMapping, options search.SearcherOptions) (search.Searcher, error) {
	docs, err := r.DocCount()
	if err != nil {
		return nil, err
	}
	limit := uint64(max(commonFloor, float64(docs)*commonShare))
	s := &toolSearcher{q: q, best: make([]float64, q.nterms*len(scoredFields)), depth: q.depth}
	// Clause searchers get unit boosts: the alternatives' and fields'
	// weights are applied in score, after the best alternative is chosen.
	termCount := make([]uint64, q.nterms)
	for _, c := range q.clauses {
		ts, err := searcher.NewTermSearcher(ctx, r, c.alt, scoredFields[c.field], 1, options)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.subs = append(s.subs, ts)
		termCount[c.term] += ts.Count()
	}
	for _, tag := range q.tags {
		ts, err := searcher.NewTermSearcher(ctx, r, tag, fieldTags, 1, options)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.tagSubs = append(s.tagSubs, ts)
	}
	rarest, rarestCount := -1, uint64(math.MaxUint64)
	for t, n := range termCount {
		if n > 0 && n < rarestCount {
			rarest, rarestCount = t, n
		}
	}
	anyRare := false
	for _, sub := range s.subs {
		if n := sub.Count(); n > 0 && n <= limit {
			anyRare = true
		}
	}
	for i, c := range q.clauses {
		n := s.subs[i].Count()
		switch {
		case n == 0:
			// matches nothing: neither proposes nor scores
		case n <= limit || !anyRare && c.term == rarest:
			s.drivers = append(s.drivers, i)
		default:
			s.scorers = append(s.scorers, i)
		}
	}
	// The usual query normalization (as bleve's disjunction does it), so
	// that scores of different queries are of a like size.
	var sumSq float64
	for _, i := range append(append([]int(nil), s.drivers...), s.scorers...) {
		sumSq += s.subs[i].Weight()
	}
	qn := 1.0
	if sumSq > 0 {
		qn = 1 / math.Sqrt(sumSq)
	}
	for _, sub := range s.subs {
		sub.SetQueryNorm(qn)
	}
	// A clause scores tf × norm × idf × queryWeight, and idf × queryWeight
	// is Weight × queryNorm; tf × norm is at most the term's impact in the
	// field. Weighted by field and alternative, that bounds the clause.
	// Scorers are consulted best bound first, so that a document is given
	// up as early as possible.
	s.bound = make([]float64, len(q.clauses))
	for i, c := range q.clauses {
		s.bound[i] = s.subs[i].Weight() * qn * q.x.fieldBoost(c.field) * c.boost * float64(q.x.impact[c.field][c.alt]) * (1 + 1e-5)
	}
	sort.SliceStable(s.scorers, func(a, b int) bool { return s.bound[s.scorers[a]] > s.bound[s.scorers[b]] })
	sort.SliceStable(s.drivers, func(a, b int) bool { return s.bound[s.drivers[a]] < s.bound[s.drivers[b]] })
	s.sumRest()
	s.curr = make([]*search.DocumentMatch, len(s.subs))
	s.tagCurr = make([]*search.DocumentMatch, len(s.tagSubs))
	s.ended = make([]bool, len(s.subs))
	return s, nil
}

// toolSearcher yields, in document order, the documents proposed by the
// driving clauses that carry the query's tags and may still be among the
// depth best, each scored from every clause that matches it. Drivers are
// merged; the other clauses are advanced to each candidate (a skip in their
// postings, not a walk through them), best bound first, and a candidate is
// dropped once its score plus the bounds of the clauses not yet consulted
// falls below the depth-th best score yielded so far. As that threshold
// rises, drivers whose bounds, with all the scorers', cannot reach it stop
// proposing documents and become scorers: a document only they match could
// not make the results (the MaxScore algorithm).
type toolSearcher struct {
	q       *toolQuery
	subs    []search.Searcher
	drivers []int // ordered by bound, least first; drivers[:demoted] no longer drive
	demoted int
	scorers []int     // ordered by bound, best first
	bound   []float64 // per clause: the most it can add to a score
	rest    []float64 // rest[j]: the bounds of scorers[j:] summed
	curr    []*search.DocumentMatch
	ended   []bool // a scorer clause's postings ended
	tagSubs []search.Searcher
	tagCurr []*search.DocumentMatch
	tagsEnd bool
	started bool
	done    bool

	best  []float64 // [term*fields+field]: best clause score of the candidate
	sum   float64   // the candidate's fields summed over words, without coord
	depth int
	top   minHeap // the depth best scores yielded
	queue driverQueue
	// grp and grpSum bound what the scorers can add to a document: per
	// (word, field) group the largest scorer bound, summed. Set on the
	// first demotion.
	grp    []float64
	grpSum float64
}

var _ search.Searcher = (*toolSearcher)(nil)

func (s *toolSearcher) start(ctx *search.SearchContext) error {
	s.started = true
	for _, i := range s.active() {
		dm, err := s.subs[i].Next(ctx)
		if err != nil {
			return err
		}
		s.curr[i] = dm
	}
	s.heapify()
	return nil
}

// heapify rebuilds the heap of active drivers that have a current match.
func (s *toolSearcher) heapify() {
	s.queue.s = s
	s.queue.ids = s.queue.ids[:0]
	for _, i := range s.active() {
		if s.curr[i] != nil {
			s.queue.ids = append(s.queue.ids, i)
		}
	}
	heap.Init(&s.queue)
}

// driverQueue orders drivers by their current document.
type driverQueue struct {
	s   *toolSearcher
	ids []int
}

func (q *driverQueue) Len() int { return len(q.ids) }
func (q *driverQueue) Less(a, b int) bool {
	return bytes.Compare(q.s.curr[q.ids[a]].IndexInternalID, q.s.curr[q.ids[b]].IndexInternalID) < 0
}
func (q *driverQueue) Swap(a, b int) { q.ids[a], q.ids[b] = q.ids[b], q.ids[a] }
func (q *driverQueue) Push(v any)    { q.ids = append(q.ids, v.(int)) }
func (q *driverQueue) Pop() any {
	v := q.ids[len(q.ids)-1]
	q.ids = q.ids[:len(q.ids)-1]
	return v
}

// Next implements search.Searcher.
func (s *toolSearcher) Next(ctx *search.SearchContext) (*search.DocumentMatch, error) {
	if !s.started {
		if err := s.start(ctx); err != nil {
			return nil, err
		}
	}
	return s.next(ctx)
}

// Advance implements search.Searcher.
func (s *toolSearcher) Advance(ctx *search.SearchContext, id index.IndexInternalID) (*search.DocumentMatch, error) {
	s.started = true
	for _, i := range s.active() {
		if c := s.curr[i]; c != nil && bytes.Compare(c.IndexInternalID, id) >= 0 {
			continue
		}
		ctx.DocumentMatchPool.Put(s.curr[i])
		dm, err := s.subs[i].Advance(ctx, id)
		if err != nil {
			return nil, err
		}
		s.curr[i] = dm
	}
	s.heapify()
	return s.next(ctx)
}

// threshold is the score a document must reach to matter: the depth-th
// best yielded so far, or 0 until depth documents were yielded.
func (s *toolSearcher) threshold() float64 {
	if s.depth <= 0 || len(s.top) < s.depth {
		return 0
	}
	return s.top[0]
}

func (s *toolSearcher) next(ctx *search.SearchContext) (*search.DocumentMatch, error) {
	for !s.done {
		if s.queue.Len() == 0 {
			s.done = true
			break
		}
		rv := ctx.DocumentMatchPool.Get()
		rv.IndexInternalID = append(rv.IndexInternalID[:0], s.curr[s.queue.ids[0]].IndexInternalID...)
		clear(s.best)
		s.sum = 0
		for s.queue.Len() > 0 {
			i := s.queue.ids[0]
			c := s.curr[i]
			if !bytes.Equal(c.IndexInternalID, rv.IndexInternalID) {
				break
			}
			s.take(i, c.Score)
			ctx.DocumentMatchPool.Put(c)
			dm, err := s.subs[i].Next(ctx)
			if err != nil {
				return nil, err
			}
			s.curr[i] = dm
			if dm == nil {
				heap.Pop(&s.queue)
			} else {
				heap.Fix(&s.queue, 0)
			}
		}
		ok, err := s.hasTags(ctx, rv.IndexInternalID)
		if err != nil {
			return nil, err
		}
		if ok {
			if ok, err = s.complete(ctx, rv.IndexInternalID); err != nil {
				return nil, err
			}
		}
		if ok {
			if score := s.score(); score >= s.threshold() && score > 0 {
				rv.Score = score
				s.yield(score)
				return rv, nil
			}
		}
		ctx.DocumentMatchPool.Put(rv)
	}
	return nil, nil
}

// complete adds the scorer clauses to the candidate id, best bound first;
// it reports false as soon as the candidate cannot reach the threshold.
func (s *toolSearcher) complete(ctx *search.SearchContext, id index.IndexInternalID) (bool, error) {
	th := s.threshold()
	for j, i := range s.scorers {
		if th > 0 && s.sum+s.rest[j] < th {
			return false, nil
		}
		if s.ended[i] {
			continue
		}
		c := s.curr[i]
		if c == nil || bytes.Compare(c.IndexInternalID, id) < 0 {
			ctx.DocumentMatchPool.Put(c)
			dm, err := s.subs[i].Advance(ctx, id)
			if err != nil {
				return false, err
			}
			s.curr[i], c = dm, dm
			if dm == nil {
				s.ended[i] = true
				continue
			}
		}
		if bytes.Equal(c.IndexInternalID, id) {
			s.take(i, c.Score)
		}
	}
	return true, nil
}

// hasTags reports whether document id carries every tag of the query.
func (s *toolSearcher) hasTags(ctx *search.SearchContext, id index.IndexInternalID) (bool, error) {
	if s.tagsEnd {
		return false, nil
	}
	for i, sub := range s.tagSubs {
		c := s.tagCurr[i]
		if c == nil || bytes.Compare(c.IndexInternalID, id) < 0 {
			ctx.DocumentMatchPool.Put(c)
			dm, err := sub.Advance(ctx, id)
			if err != nil {
				return false, err
			}
			s.tagCurr[i], c = dm, dm
			if dm == nil {
				s.tagsEnd = true // no later document has this tag
				return false, nil
			}
		}
		if !bytes.Equal(c.IndexInternalID, id) {
			return false, nil
		}
	}
	return true, nil
}

// take records clause i's score for the current document: per word and
// field, the best alternative counts.
func (s *toolSearcher) take(i int, v float64) {
	c := s.q.clauses[i]
	k := c.term*len(scoredFields) + c.field
	if w := v * c.boost; w > s.best[k] {
		s.sum += s.q.x.fieldBoost(c.field) * (w - s.best[k])
		s.best[k] = w
	}
}

// score combines the current document's clause scores: fields add up with
// their boosts, and the sum over the query's words is multiplied by the
// share of words matched, so a tool matching more of the query ranks
// higher. It never exceeds s.sum (up to rounding), which pruning relies on.
//
// The sum is taken in a fixed order, not from s.sum (which grows in the
// order clauses happened to be consulted), so that equal documents score
// exactly alike and ties break the same way however the search ran.
func (s *toolSearcher) score() float64 {
	nf := len(scoredFields)
	matched, total := 0, 0.0
	for t := 0; t < s.q.nterms; t++ {
		sum := 0.0
		for f := 0; f < nf; f++ {
			sum += s.q.x.fieldBoost(f) * s.best[t*nf+f]
		}
		if sum > 0 {
			matched++
			total += sum
		}
	}
	return total * float64(matched) / float64(s.q.nterms)
}

func (s *toolSearcher) yield(score float64) {
	if s.depth <= 0 {
		return
	}
	if len(s.top) < s.depth {
		heap.Push(&s.top, score)
	} else if score > s.top[0] {
		s.top[0] = score
		heap.Fix(&s.top, 0)
	}
	s.demote()
}

// active are the drivers still proposing documents.
func (s *toolSearcher) active() []int { return s.drivers[s.demoted:] }

// demote turns drivers into scorers while the bounds of all scorers plus
// the driver's stay below the threshold; once every driver is demoted no
// further document can reach the results.
func (s *toolSearcher) demote() {
	th := s.threshold()
	if th <= 0 {
		return
	}
	if s.grp == nil {
		// What the scorers can add at most: per word and field only the
		// best alternative counts, so the largest bound of each group.
		s.grp = make([]float64, len(s.best))
		for _, i := range s.scorers {
			k := s.group(i)
			s.grp[k] = max(s.grp[k], s.bound[i])
		}
		for _, v := range s.grp {
			s.grpSum += v
		}
	}
	moved := false
	for s.demoted < len(s.drivers) {
		i := s.drivers[s.demoted]
		k := s.group(i)
		sum := s.grpSum - s.grp[k] + max(s.grp[k], s.bound[i])
		if sum >= th {
			break
		}
		s.grp[k], s.grpSum = max(s.grp[k], s.bound[i]), sum
		s.demoted++
		if s.curr[i] == nil {
			s.ended[i] = true // a started driver without a match has ended
		}
		at := sort.Search(len(s.scorers), func(j int) bool { return s.bound[s.scorers[j]] < s.bound[i] })
		s.scorers = append(s.scorers, 0)
		copy(s.scorers[at+1:], s.scorers[at:])
		s.scorers[at] = i
		moved = true
	}
	if moved {
		s.sumRest()
		s.heapify()
	}
	if s.demoted == len(s.drivers) {
		s.done = true
	}
}

// group is the (word, field) slot of clause i in best.
func (s *toolSearcher) group(i int) int {
	c := s.q.clauses[i]
	return c.term*len(scoredFields) + c.field
}

// sumRest recomputes rest: rest[j] is the bounds of scorers[j:] summed.
func (s *toolSearcher) sumRest() {
	s.rest = make([]float64, len(s.scorers)+1)
	for j := len(s.scorers) - 1; j >= 0; j-- {
		s.rest[j] = s.rest[j+1] + s.bound[s.scorers[j]]
	}
}

// Close implements search.Searcher.
func (s *toolSearcher) Close() error {
	var first error
	for _, sub := range append(append([]search.Searcher(nil), s.subs...), s.tagSubs...) {
		if sub == nil {
			continue
		}
		if err := sub.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Weight implements search.Searcher; the query normalizes itself.
func (s *toolSearcher) Weight() float64 { return 1 }

// SetQueryNorm implements search.Searcher. It is ignored: the query's
// normalization is set once over its own clauses.
func (s *toolSearcher) SetQueryNorm(float64) {}

// Count implements search.Searcher: an upper bound of the matches.
func (s *toolSearcher) Count() uint64 {
	var n uint64
	for _, i := range s.active() {
		n += s.subs[i].Count()
	}
	return n
}

// Min implements search.Searcher.
func (s *toolSearcher) Min() int { return 0 }

// Size implements search.Searcher.
func (s *toolSearcher) Size() int {
	n := int(reflect.TypeOf(*s).Size())
	for _, sub := range append(append([]search.Searcher(nil), s.subs...), s.tagSubs...) {
		n += sub.Size()
	}
	return n
}

// DocumentMatchPoolSize implements search.Searcher: the matches each clause
// holds, plus the one being built.
func (s *toolSearcher) DocumentMatchPoolSize() int {
	n := 1
	for _, sub := range append(append([]search.Searcher(nil), s.subs...), s.tagSubs...) {
		n += 1 + sub.DocumentMatchPoolSize()
	}
	return n
}

func (q *toolQuery) String() string { return fmt.Sprintf("toolQuery(%d clauses)", len(q.clauses)) }

// minHeap is a min-heap of scores.
type minHeap []float64

func (h minHeap) Len() int           { return len(h) }
func (h minHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h minHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *minHeap) Push(v any)        { *h = append(*h, v.(float64)) }
func (h *minHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}
