package search

import (
	"container/heap"
	"math"
	mbits "math/bits"
	"sort"
)

func (x *Index) fieldBoost(i int) float64 {
	switch i {
	case fieldName:
		return x.boosts.Name
	case fieldDesc:
		return x.boosts.Desc
	case fieldParams:
		return x.boosts.Params
	default:
		return x.boosts.Server
	}
}

// idf is the inverse document frequency of a term in df of n tools.
func idf(n float64, df int32) float64 { return 1 + math.Log(n/(float64(df)+1)) }

// clause is one alternative of a query word looked up in one field.
type clause struct {
	pl *plist
	// w is what the clause scores per unit of a tool's impact (tf × norm):
	// field boost × the alternative's boost × idf² × the query norm, the
	// classic tf-idf weight of a term query. Scores are summed in single
	// precision: ample for a ranking, and half the memory traffic.
	w float32
}

// group is the clauses of one query word in one field: a tool scores the
// best of them, so a word does not count twice for having synonyms.
type group struct {
	clauses []clause
}

// wordPlan is the clause groups of one query word, by field.
type wordPlan struct {
	word   int // index in the query's words
	groups []group
}

// plan turns the analyzed words of a query into clause groups, by word and
// within a word by field, in the query's order: rank adds them in this
// order, so every tool's score is summed in the same order and equal tools
// score exactly alike. Words that match nothing are left out; they still
// count in the share of words a tool matches.
func (x *Index) plan(terms []queryTerm) []wordPlan {
	n := float64(x.tools)
	type lookup struct {
		word, field int
		pl          *plist
		boost, idf  float64
	}
	var ls []lookup
	var sumSq float64
	for ti, qt := range terms {
		for ai, a := range qt.alts {
			t := x.terms[a.term]
			if t == nil {
				continue
			}
			for fi := 0; fi < numFields; fi++ {
				// Synonyms and corrections are looked up in the name and the
				// description only: in parameter names and server texts they
				// matched more noise than sense (see BENCHMARKS.md).
				if x.fieldBoost(fi) <= 0 || ai > 0 && fi >= fieldParams || t.f[fi].df == 0 {
					continue
				}
				i := idf(n, t.f[fi].df)
				sumSq += i * i
				ls = append(ls, lookup{ti, fi, &t.f[fi], a.boost, i})
			}
		}
	}
	// The usual query normalization, so that scores of different queries
	// are of a like size (it changes no ranking).
	qn := 1.0
	if sumSq > 0 {
		qn = 1 / math.Sqrt(sumSq)
	}
	sort.SliceStable(ls, func(a, b int) bool {
		if ls[a].word != ls[b].word {
			return ls[a].word < ls[b].word
		}
		return ls[a].field < ls[b].field
	})
	words := make([]wordPlan, len(terms))
	for i, l := range ls {
		w := x.fieldBoost(l.field) * l.boost * l.idf * l.idf * qn
		if w <= 0 {
			continue
		}
		wp := &words[l.word]
		wp.word = l.word
		if i == 0 || l.word != ls[i-1].word || l.field != ls[i-1].field || len(wp.groups) == 0 {
			wp.groups = append(wp.groups, group{})
		}
		g := &wp.groups[len(wp.groups)-1]
		g.clauses = append(g.clauses, clause{pl: l.pl, w: float32(w)})
	}
	out := words[:0]
	for _, wp := range words {
		if len(wp.groups) > 0 {
			out = append(out, wp)
		}
	}
	return out
}

// acc is one tool's running score in a search. It is 8 bytes, so that the
// array of them for 100,000 tools stays mostly in the core's cache: the
// search reads and writes it at every posting.
type acc struct {
	sum  float32 // the word scores summed
	word uint16  // 1 + the last word that matched the tool
	n    uint16  // how many words matched it
}

// maxQueryWords bounds the distinct words of a query that are scored (acc
// counts them in 16 bits); words beyond it are ignored.
const maxQueryWords = 1<<16 - 1

// maxCorrectedWords bounds the unknown words of a query that get spelling
// corrections.
const maxCorrectedWords = 8

// scratch is the per-search memory of rank, sized to the doc table and
// reused through Index.pool: a search allocates almost nothing.
type scratch struct {
	acc   []acc    // by doc id; zero outside a search
	tmp   []uint32 // by doc id: a word's best alternative in a field (float bits); zero outside a group
	hit   []uint64 // bitset of the doc ids with a non-zero acc
	tmpHi []uint64 // bitset of the doc ids with a non-zero tmp
	allow []uint64 // bitset of doc ids the query's tags allow
	top   worstFirst
}

// cand is one scored tool.
type cand struct {
	score float64
	doc   uint32
}

// ranking is the result of rank: a score for every tool hit.
type ranking struct {
	x      *Index
	s      *scratch
	ok     []uint64 // the tools that may be returned
	nterms float64
}

// rank scores the live tools that match a word of the query and carry every
// tag in tags. A tool's score is its word scores summed, each word scoring
// per field the best of its alternatives (the term itself, synonyms,
// corrections) weighted by the field's boost, and the sum multiplied by the
// share of the query's words the tool matches (the coordination factor), so
// that a tool matching more of the query ranks higher.
//
// It works term at a time: each posting list is read once, start to end,
// adding into a dense array of per-tool scores, with no per-document
// merging of lists, no per-posting allocation and no pointer chasing; the
// cost is one pass over the query's postings, then one over the tools hit.
// (MaxScore pruning was tried and measured: with the coordination factor
// it can rule new tools out only before the last word or two, when tens of
// thousands of candidates are still in the running, and completing them
// cost more than it saved; see BENCHMARKS.md.)
//
// Which tools were hit is kept in bitsets (12.5 KB for 100,000 tools, so
// they stay in the fastest cache), not in lists: whatever reads the scores
// afterwards walks them in doc order, as the posting lists do, instead of
// jumping around an array too large for the cache.
func (x *Index) rank(terms []queryTerm, tags []string) *ranking {
	s, _ := x.pool.Get().(*scratch)
	if s == nil {
		s = &scratch{}
	}
	n := len(x.docs)
	if len(s.acc) < n {
		m := n + n/8
		s.acc, s.tmp = make([]acc, m), make([]uint32, m)
		s.hit, s.tmpHi = make([]uint64, (m+63)/64), make([]uint64, (m+63)/64)
	}
	r := &ranking{x: x, s: s, ok: x.live, nterms: float64(len(terms))}
	if len(tags) > 0 {
		// The servers' spans hold only live tools (a replaced server's old
		// tools are in its old span), so this is a subset of live.
		var any bool
		if s.allow, any = x.allowedByTags(tags, s.allow); !any {
			r.ok = nil
			return r
		}
		r.ok = s.allow
	}
	for i, wp := range x.plan(terms) {
		s.addWord(&wp, uint16(i+1))
	}
	return r
}

// b2u is 1 for true: the compiler makes it a flag-setting instruction, not a
// branch, which would be mispredicted at random in the loops below.
func b2u(b bool) uint16 {
	if b {
		return 1
	}
	return 0
}

// addWord adds the scores of word (marked word in acc) to every tool in its
// posting lists. The loops are small functions of their own, not inlined:
// with few variables live, the compiler keeps them all in registers.
func (s *scratch) addWord(wp *wordPlan, word uint16) {
	for _, g := range wp.groups {
		if len(g.clauses) == 1 {
			addList(s.acc, s.hit, g.clauses[0].pl.p, g.clauses[0].w, word)
			continue
		}
		// Several alternatives: their maxima are gathered in tmp and then
		// added to the scores.
		lo, hi := len(s.tmpHi), -1
		for _, c := range g.clauses {
			if l := c.pl.p; len(l) > 0 {
				lo, hi = min(lo, int(l[0].doc/64)), max(hi, int(l[len(l)-1].doc/64))
				maxList(s.tmp, s.tmpHi, l, c.w)
			}
		}
		if hi >= lo {
			addMax(s.acc, s.hit, s.tmp, s.tmpHi[lo:hi+1], lo, word)
		}
	}
}

// addList adds w × impact to the score of every tool in l, counting word
// as matched for it.
//
//go:noinline
func addList(accs []acc, hit []uint64, l []posting, w float32, word uint16) {
	for _, p := range l {
		a := &accs[p.doc]
		a.n += b2u(a.word != word)
		a.word = word
		a.sum += w * p.imp
		hit[p.doc/64] |= 1 << (p.doc % 64)
	}
}

// maxList raises tmp to w × impact for every tool in l and notes it in
// tmpHi. The values are positive, and positive floats order as their bits
// do: an integer max, without a branch.
//
//go:noinline
func maxList(tmp []uint32, tmpHi []uint64, l []posting, w float32) {
	for _, p := range l {
		tmp[p.doc] = max(tmp[p.doc], math.Float32bits(w*p.imp))
		tmpHi[p.doc/64] |= 1 << (p.doc % 64)
	}
}

// addMax adds tmp to the scores of the tools noted in bits (tmpHi from word
// first on) and counts word as matched for them, zeroing both.
//
//go:noinline
func addMax(accs []acc, hit []uint64, tmp []uint32, bits []uint64, first int, word uint16) {
	for i, b := range bits {
		if b == 0 {
			continue
		}
		w := first + i
		bits[i] = 0
		hit[w] |= b
		for ; b != 0; b &= b - 1 {
			d := w*64 + mbits.TrailingZeros64(b)
			a := &accs[d]
			a.n += b2u(a.word != word)
			a.word = word
			a.sum += math.Float32frombits(tmp[d])
			tmp[d] = 0
		}
	}
}

// score is the score of acc a in a query of 1/inv words.
func (a *acc) score(inv float64) float64 { return float64(a.sum) * float64(a.n) * inv }

// release returns r's scratch to the pool, zeroed.
func (x *Index) release(r *ranking) {
	s := r.s
	hits := 0
	for _, b := range s.hit {
		hits += mbits.OnesCount64(b)
	}
	if hits > len(s.acc)/8 {
		// Most tools were hit: clearing the whole array is faster than
		// one tool at a time.
		clear(s.acc)
		clear(s.hit)
	} else {
		for w, b := range s.hit {
			if b == 0 {
				continue
			}
			s.hit[w] = 0
			for ; b != 0; b &= b - 1 {
				s.acc[w*64+mbits.TrailingZeros64(b)] = acc{}
			}
		}
	}
	x.pool.Put(s)
}

// better orders candidates: higher score first, then lower doc id, so that
// ties break the same way however the search ran.
func (r *ranking) better(a, b cand) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	if ta, tb := r.x.tie[a.doc], r.x.tie[b.doc]; ta != tb {
		return ta < tb
	}
	return r.x.docLess(a.doc, b.doc)
}

// docLess orders tools of equal score and equal tie hash by server path,
// then tool name: doc ids differ between an index kept up to date and one
// built afresh, and between replicas, and which of two tied tools a cut
// keeps must not depend on them.
func (x *Index) docLess(a, b uint32) bool {
	ra, rb := x.docs[a], x.docs[b]
	if ra.e == nil || rb.e == nil {
		return ra.e != nil || (rb.e == nil && a < b)
	}
	if ra.e != rb.e {
		return ra.e.srv.Path < rb.e.srv.Path // paths are unique in the index
	}
	if na, nb := ra.e.srv.ToolList[ra.tool].Name, rb.e.srv.ToolList[rb.tool].Name; na != nb {
		return na < nb
	}
	return a < b
}

// best returns the k best candidates, best first: one pass over the tools
// hit, keeping the k best in a heap, the worst on top, so that most tools
// cost one comparison.
func (r *ranking) best(k int) []cand {
	s, inv := r.s, 1/r.nterms
	h := worstFirst{c: s.top.c[:0], r: r}
	for w, b := range r.ok {
		for b &= s.hit[w]; b != 0; b &= b - 1 {
			d := uint32(w*64 + mbits.TrailingZeros64(b))
			c := cand{score: s.acc[d].score(inv), doc: d}
			if len(h.c) < k {
				if h.c = append(h.c, c); len(h.c) == k {
					heap.Init(&h)
				}
			} else if r.better(c, h.c[0]) {
				h.c[0] = c
				heap.Fix(&h, 0)
			}
		}
	}
	s.top = worstFirst{c: h.c} // kept for its memory, not its ranking
	out := append([]cand(nil), h.c...)
	sort.Slice(out, func(i, j int) bool { return r.better(out[i], out[j]) })
	return out
}

// worstFirst is a heap of candidates with the worst on top.
type worstFirst struct {
	c []cand
	r *ranking
}

func (h *worstFirst) Len() int           { return len(h.c) }
func (h *worstFirst) Less(i, j int) bool { return h.r.better(h.c[j], h.c[i]) }
func (h *worstFirst) Swap(i, j int)      { h.c[i], h.c[j] = h.c[j], h.c[i] }
func (h *worstFirst) Push(v any)         { h.c = append(h.c, v.(cand)) }
func (h *worstFirst) Pop() any {
	v := h.c[len(h.c)-1]
	h.c = h.c[:len(h.c)-1]
	return v
}
