package search

import (
	"math"
	"slices"
	"sort"
)

// posting is one tool in the list of a term in one field.
type posting struct {
	doc uint32
	// imp is the tool's tf × norm for the term in the field, the factor of
	// a tf-idf score that depends on the tool: sqrt(frequency) divided by
	// sqrt(field length), computed once when the tool is indexed.
	imp float32
}

// plist is the posting list of one term in one field, in doc order. It may
// hold removed tools (tombstones, see state.docs) until the next whole build.
type plist struct {
	p  []posting
	df int32 // live tools in p: the document frequency
}

// term is one analyzed term of the vocabulary with its posting lists.
type term struct {
	tools int32  // live tools holding the term in any field
	mark  uint32 // the state's epoch when tools was last counted for a tool
	f     [numFields]plist
}

// docRef is one doc id's tool.
type docRef struct {
	e    *entry // nil once the tool was removed
	tool int32  // index in e.srv.ToolList
}

// span is the doc ids of one server's tools in a state: first, first+1, …
// first+n-1. A server's tools are always indexed together.
type span struct{ first, n uint32 }

// state is one version of the index: the entries it was built from and,
// kept in step with them, the doc table, the vocabulary with its posting
// lists, and the servers by tag. Doc ids are dense and only ever appended:
// removing a server leaves tombstones in the doc table and posting lists,
// which the next whole build (compaction) drops.
type state struct {
	servers map[string]*entry
	spans   map[string]span
	docs    []docRef
	nameLen []uint32 // by doc id: the length of the tool's name field (see rerank)
	tie     []uint32 // by doc id: a hash of the tool's server path and name (see ranking.better)
	live    []uint64 // bitset of the doc ids whose tool is live: compact, for the search's inner loops
	dead    int      // removed docs still in docs
	terms   map[string]*term
	lex     []lexEntry                 // the spelling corrections' lexicon (see lexEntry)
	tags    map[string]map[string]bool // lowercased tag -> keys of servers carrying it
	tools   int
	epoch   uint32 // counts tools added or removed (term.mark)
}

func newState(servers int) *state {
	return &state{
		servers: make(map[string]*entry, servers),
		spans:   make(map[string]span, servers),
		terms:   map[string]*term{},
		tags:    map[string]map[string]bool{},
	}
}

// newTerm adds term s to the vocabulary, and to the lexicon unless it is
// more than two bytes longer than the longest word that is corrected (it
// could never be a correction).
func (st *state) newTerm(s string) *term {
	t := &term{}
	st.terms[s] = t
	if len(s) <= maxFuzzyLen+2 {
		st.lex = append(st.lex, lexEntry{term: s, mask: letterMask(s), t: t})
	}
	return t
}

// vocab returns how many live tools hold term t in any field.
func (st *state) vocab(t string) int32 {
	if tm := st.terms[t]; tm != nil {
		return tm.tools
	}
	return 0
}

// termFreq is one distinct term of a field with its impact there.
type termFreq struct {
	term string
	imp  float32
}

// docTerms are one tool's distinct terms by field, ready to be indexed.
type docTerms struct {
	f       [numFields][]termFreq
	nameLen uint32 // the terms in the name field, repeats counted
}

// docTermsOf counts the terms of f by field. It sorts a copy of each field:
// f's slices may be shared (the server terms are).
func docTermsOf(f toolFields) docTerms {
	out := docTerms{nameLen: uint32(len(f.name))}
	fields := f.byField()
	n := 0
	for _, terms := range fields {
		n += len(terms)
	}
	// One sorted copy of all four fields, and one array for their distinct
	// terms: a build analyzes 100,000 tools, and the garbage adds up.
	buf := make([]string, 0, n)
	for _, terms := range fields {
		buf = append(buf, terms...)
	}
	distinct, at := 0, 0
	for _, terms := range fields {
		part := buf[at : at+len(terms)]
		slices.Sort(part)
		for i := range part {
			if i == 0 || part[i] != part[i-1] {
				distinct++
			}
		}
		at += len(terms)
	}
	tfs := make([]termFreq, 0, distinct)
	at = 0
	for fi, terms := range fields {
		part := buf[at : at+len(terms)]
		at += len(terms)
		if len(part) == 0 {
			continue
		}
		start := len(tfs)
		norm := 1 / math.Sqrt(float64(len(part)))
		for i := 0; i < len(part); {
			j := i + 1
			for j < len(part) && part[j] == part[i] {
				j++
			}
			tfs = append(tfs, termFreq{part[i], float32(math.Sqrt(float64(j-i)) * norm)})
			i = j
		}
		out.f[fi] = tfs[start:len(tfs):len(tfs)]
	}
	return out
}

// nextEpoch starts counting a new tool in term.tools. When the counter
// wraps, every mark is reset so that an old mark never equals a new epoch.
func (st *state) nextEpoch() uint32 {
	st.epoch++
	if st.epoch == 0 {
		for _, t := range st.terms {
			t.mark = 0
		}
		st.epoch = 1
	}
	return st.epoch
}

// tieKey hashes a tool's server path and name (FNV-1a): the same in every
// index, unlike doc ids, and one integer to compare.
func tieKey(path, name string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(path); i++ {
		h = (h ^ uint32(path[i])) * 16777619
	}
	h *= 16777619 // a zero byte between path and name
	for i := 0; i < len(name); i++ {
		h = (h ^ uint32(name[i])) * 16777619
	}
	return h
}

// addDoc appends tool i of e, analyzed as dt, as the next doc id.
func (st *state) addDoc(e *entry, i int, dt *docTerms) {
	d := uint32(len(st.docs))
	st.docs = append(st.docs, docRef{e: e, tool: int32(i)})
	if int(d/64) >= len(st.live) {
		st.live = append(st.live, 0)
	}
	st.live[d/64] |= 1 << (d % 64)
	st.nameLen = append(st.nameLen, dt.nameLen)
	st.tie = append(st.tie, tieKey(e.srv.Path, e.srv.ToolList[i].Name))
	ep := st.nextEpoch()
	for fi := range dt.f {
		for _, tf := range dt.f[fi] {
			t := st.terms[tf.term]
			if t == nil {
				t = st.newTerm(tf.term)
			}
			pl := &t.f[fi]
			pl.p = append(pl.p, posting{doc: d, imp: tf.imp})
			pl.df++
			if t.mark != ep {
				t.mark = ep
				t.tools++
			}
		}
	}
	st.tools++
}

// removeDoc makes doc d, analyzed as dt, a tombstone: its postings stay
// until the next whole build, but it no longer counts in document
// frequencies or the vocabulary, and a search skips it.
func (st *state) removeDoc(d uint32, dt *docTerms) {
	if st.docs[d].e == nil {
		return
	}
	st.docs[d] = docRef{}
	st.live[d/64] &^= 1 << (d % 64)
	st.dead++
	st.tools--
	ep := st.nextEpoch()
	for fi := range dt.f {
		for _, tf := range dt.f[fi] {
			t := st.terms[tf.term]
			if t == nil {
				continue // cannot happen while entries are not modified
			}
			if t.f[fi].df > 0 {
				t.f[fi].df--
			}
			if t.mark != ep {
				t.mark = ep
				if t.tools--; t.tools <= 0 {
					delete(st.terms, tf.term)
				}
			}
		}
	}
}

// addServer records that e's tools start at doc id first (the caller adds
// them) and indexes its tags.
func (st *state) addServer(e *entry, first uint32, n int) {
	key := e.key()
	st.servers[key] = e
	st.spans[key] = span{first: first, n: uint32(n)}
	for _, tag := range normalizeTags(e.srv.Tags) {
		m := st.tags[tag]
		if m == nil {
			m = map[string]bool{}
			st.tags[tag] = m
		}
		m[key] = true
	}
}

// dropServer forgets the server at key; its docs must be removed already.
func (st *state) dropServer(key string) {
	e := st.servers[key]
	if e == nil {
		return
	}
	for _, tag := range normalizeTags(e.srv.Tags) {
		if m := st.tags[tag]; m != nil {
			delete(m, key)
			if len(m) == 0 {
				delete(st.tags, tag)
			}
		}
	}
	delete(st.servers, key)
	delete(st.spans, key)
}

// compactPostings moves every posting list into one exact-size array. A
// build appends to the lists, which leaves up to half of each list's
// capacity unused; one pointer-free array is also less work for the
// garbage collector than thousands of small ones. A list is given no spare
// capacity, so a later update that appends to it reallocates that list only.
func (st *state) compactPostings() {
	n := 0
	for _, t := range st.terms {
		for fi := range t.f {
			n += len(t.f[fi].p)
		}
	}
	arena := make([]posting, n)
	at := 0
	for _, t := range st.terms {
		for fi := range t.f {
			l := len(t.f[fi].p)
			copy(arena[at:], t.f[fi].p)
			t.f[fi].p = arena[at : at+l : at+l]
			at += l
		}
	}
}

// indexed returns the tools of e to index, as indexes into
// e.srv.ToolList: the first tool of each name.
func (e *entry) indexed() []int {
	out := make([]int, 0, len(e.srv.ToolList))
	for i := range e.srv.ToolList {
		if e.tools[e.srv.ToolList[i].Name] == i {
			out = append(out, i)
		}
	}
	return out
}

// impact returns the impact of term t in field fi of doc d, 0 when the
// field does not hold t: a binary search in the posting list, which is in
// doc order.
func (t *term) impact(fi int, d uint32) float32 {
	l := t.f[fi].p
	i := sort.Search(len(l), func(i int) bool { return l[i].doc >= d })
	if i < len(l) && l[i].doc == d {
		return l[i].imp
	}
	return 0
}

// holds reports whether doc d holds term t in any field.
func (t *term) holds(d uint32) bool {
	for fi := range t.f {
		if t.impact(fi, d) > 0 {
			return true
		}
	}
	return false
}

// allowedByTags returns a bitset of the doc ids of the servers carrying
// every tag (lowercased), in bits' memory when it is large enough; any is
// false when no server does.
func (st *state) allowedByTags(tags []string, bits []uint64) (_ []uint64, any bool) {
	var smallest map[string]bool
	for _, tag := range tags {
		m := st.tags[tag]
		if len(m) == 0 {
			return bits, false
		}
		if smallest == nil || len(m) < len(smallest) {
			smallest = m
		}
	}
	n := (len(st.docs) + 63) / 64
	if cap(bits) < n {
		bits = make([]uint64, n)
	}
	bits = bits[:n]
	clear(bits)
outer:
	for key := range smallest {
		for _, tag := range tags {
			if !st.tags[tag][key] {
				continue outer
			}
		}
		sp := st.spans[key]
		for d := sp.first; d < sp.first+sp.n; d++ {
			bits[d/64] |= 1 << (d % 64)
		}
		any = true
	}
	return bits, any
}
