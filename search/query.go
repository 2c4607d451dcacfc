package search

import (
	"container/heap"
	"math"
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
	// classic tf-idf weight of a term query.
	w float64
}

// group is the clauses of one query word in one field: a tool scores the
// best of them, so a word does not count twice for having synonyms.
type group struct {
	word    int
	clauses []clause
}

// plan turns the analyzed words of a query into clause groups, ordered by
// word and then field, so that every tool's score is summed in the same
// order and equal tools score exactly alike.
func (x *Index) plan(terms []queryTerm) []group {
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
	var gs []group
	for i, l := range ls {
		w := x.fieldBoost(l.field) * l.boost * l.idf * l.idf * qn
		if w <= 0 {
			continue
		}
		if i == 0 || len(gs) == 0 || l.word != ls[i-1].word || l.field != ls[i-1].field {
			gs = append(gs, group{word: l.word})
		}
		g := &gs[len(gs)-1]
		g.clauses = append(g.clauses, clause{pl: l.pl, w: w})
	}
	return gs
}

// acc is one tool's running score in a search.
type acc struct {
	sum  float64 // the word scores summed
	word uint32  // 1 + the last word that matched the tool
	n    uint32  // how many words matched it
}

// scratch is the per-search memory of rank, sized to the doc table and
// reused through Index.pool: a search allocates almost nothing.
type scratch struct {
	acc     []acc     // by doc id; zero outside a search
	tmp     []float64 // by doc id: a word's best alternative in a field; zero outside a group
	touched []uint32  // doc ids with a non-zero acc
	tmpDocs []uint32  // doc ids with a non-zero tmp
	allow   []uint64  // bitset of doc ids the query's tags allow
	cands   []cand
}

// cand is one scored tool.
type cand struct {
	score float64
	doc   uint32
}

// ranking is the result of rank: every matching tool with its score.
type ranking struct {
	s     *scratch
	cands []cand
}

// rank scores every live tool that matches a word of the query and carries
// every tag in tags. It works term at a time: each clause's posting list is
// read once, start to end, adding into a dense array of per-tool scores,
// with no per-document merging of lists. A tool's score is its word scores
// summed, each word scoring per field the best of its alternatives (the
// term itself, synonyms, corrections) weighted by the field's boost, and
// the sum multiplied by the share of the query's words the tool matches, so
// that a tool matching more of the query ranks higher.
func (x *Index) rank(terms []queryTerm, tags []string) *ranking {
	s, _ := x.pool.Get().(*scratch)
	if s == nil {
		s = &scratch{}
	}
	n := len(x.docs)
	if len(s.acc) < n {
		s.acc = make([]acc, n+n/8)
		s.tmp = make([]float64, n+n/8)
	}
	r := &ranking{s: s}
	var allow []uint64
	if len(tags) > 0 {
		if s.allow = x.allowedByTags(tags, s.allow); s.allow == nil {
			return r
		}
		allow = s.allow
	}
	accs, tmp := s.acc, s.tmp
	touched := s.touched[:0]
	for _, g := range x.plan(terms) {
		word := uint32(g.word + 1)
		if len(g.clauses) == 1 {
			c := g.clauses[0]
			for _, p := range c.pl.p {
				a := &accs[p.doc]
				if a.word != word {
					if a.word == 0 {
						touched = append(touched, p.doc)
					}
					a.word = word
					a.n++
				}
				a.sum += c.w * float64(p.imp)
			}
			continue
		}
		docs := s.tmpDocs[:0]
		for _, c := range g.clauses {
			for _, p := range c.pl.p {
				v := c.w * float64(p.imp)
				if t := tmp[p.doc]; v > t {
					if t == 0 {
						docs = append(docs, p.doc)
					}
					tmp[p.doc] = v
				}
			}
		}
		for _, d := range docs {
			a := &accs[d]
			if a.word != word {
				if a.word == 0 {
					touched = append(touched, d)
				}
				a.word = word
				a.n++
			}
			a.sum += tmp[d]
			tmp[d] = 0
		}
		s.tmpDocs = docs
	}
	s.touched = touched
	cands := s.cands[:0]
	nterms := float64(len(terms))
	for _, d := range touched {
		if x.docs[d].e == nil || allow != nil && allow[d/64]&(1<<(d%64)) == 0 {
			continue
		}
		a := &accs[d]
		cands = append(cands, cand{score: a.sum * float64(a.n) / nterms, doc: d})
	}
	s.cands = cands
	r.cands = cands
	return r
}

// release returns r's scratch to the pool, zeroed.
func (x *Index) release(r *ranking) {
	s := r.s
	for _, d := range s.touched {
		s.acc[d] = acc{}
	}
	s.touched = s.touched[:0]
	s.cands = s.cands[:0]
	r.cands = nil
	x.pool.Put(s)
}

// better orders candidates: higher score first, then lower doc id, so that
// ties break the same way however the search ran.
func better(a, b cand) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.doc < b.doc
}

// best returns the k best candidates, best first.
func (r *ranking) best(k int) []cand {
	if k >= len(r.cands) {
		out := append([]cand(nil), r.cands...)
		sort.Slice(out, func(i, j int) bool { return better(out[i], out[j]) })
		return out
	}
	// A heap of the k best so far, worst on top: one comparison for most
	// candidates.
	h := worstFirst(append([]cand(nil), r.cands[:k]...))
	heap.Init(&h)
	for _, c := range r.cands[k:] {
		if better(c, h[0]) {
			h[0] = c
			heap.Fix(&h, 0)
		}
	}
	out := []cand(h)
	sort.Slice(out, func(i, j int) bool { return better(out[i], out[j]) })
	return out
}

// worstFirst is a heap of candidates with the worst on top.
type worstFirst []cand

func (h worstFirst) Len() int           { return len(h) }
func (h worstFirst) Less(i, j int) bool { return better(h[j], h[i]) }
func (h worstFirst) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *worstFirst) Push(v any)        { *h = append(*h, v.(cand)) }
func (h *worstFirst) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}
