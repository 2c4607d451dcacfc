package search

import (
	"encoding/json"
	"math/bits"
	"sort"
	"strings"
)

// maxCorrections is how many spelling corrections one unknown word gets.
const maxCorrections = 3

// corrections returns the indexed terms closest to t by edit distance (one
// edit for words up to six letters, two for longer ones), nearest and then
// most common first. It is asked only for words the index does not know, so
// a correctly spelled query never pays for it or drifts to look-alikes.
func (x *Index) corrections(t string) []string {
	if len(t) > maxFuzzyLen {
		return nil
	}
	maxD := 1
	if len(t) >= 7 {
		maxD = 2
	}
	type cand struct {
		term string
		d    int
		df   int32
	}
	var cs []cand
	tm := letterMask(t)
	for _, l := range x.lexicon() {
		if abs(len(l.term)-len(t)) > maxD || len(l.term) < 3 || bits.OnesCount64(l.mask^tm) > 2*maxD {
			continue
		}
		if d := editDistance(t, l.term, maxD); d <= maxD {
			cs = append(cs, cand{l.term, d, l.df})
		}
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].d != cs[j].d {
			return cs[i].d < cs[j].d
		}
		if cs[i].df != cs[j].df {
			return cs[i].df > cs[j].df
		}
		return cs[i].term < cs[j].term
	})
	out := make([]string, 0, maxCorrections)
	for i := 0; i < len(cs) && i < maxCorrections; i++ {
		// Keep only the nearest distance: a one-edit match beats any two-edit one.
		if cs[i].d > cs[0].d {
			break
		}
		out = append(out, cs[i].term)
	}
	return out
}

// lexEntry is one vocabulary term as the correction scan reads it.
type lexEntry struct {
	term string
	mask uint64
	df   int32
}

// letterMask has a bit for each byte value (mod 64) in s. One edit changes
// at most two bits (a substitution drops one letter and adds another), so
// terms whose masks differ in more than 2d bits are more than d edits
// apart: a cheap filter before the edit distance.
func letterMask(s string) uint64 {
	var m uint64
	for i := 0; i < len(s); i++ {
		m |= 1 << (s[i] & 63)
	}
	return m
}

// lexicon returns the vocabulary as a slice with letter masks, rebuilt
// after the vocabulary changed. The caller holds x.mu (read or write); the
// slice has its own lock because concurrent searches may rebuild it.
func (x *Index) lexicon() []lexEntry {
	x.lexMu.Lock()
	defer x.lexMu.Unlock()
	if x.lexGen == x.vocabGen && x.lex != nil {
		return x.lex
	}
	lex := make([]lexEntry, 0, len(x.terms))
	for t, tm := range x.terms {
		lex = append(lex, lexEntry{t, letterMask(t), tm.tools})
	}
	x.lex, x.lexGen = lex, x.vocabGen
	return lex
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// maxFuzzyLen is the longest word that gets spelling corrections; longer
// ones are identifiers or codes, not typos.
const maxFuzzyLen = 32

// editDistance is the Damerau-Levenshtein (optimal string alignment)
// distance of a and b in bytes, or max+1 once it must exceed max. It does
// not allocate: it runs once per vocabulary term for an unknown word.
func editDistance(a, b string, max int) int {
	if a == b {
		return 0
	}
	la, lb := len(a), len(b)
	if la > maxFuzzyLen || lb > maxFuzzyLen {
		return max + 1
	}
	var rows [3][maxFuzzyLen + 1]int
	prev2, prev, cur := &rows[0], &rows[1], &rows[2]
	for j := 0; j <= lb; j++ {
		prev[j] = j
	}
	for i := 1; i <= la; i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= lb; j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
			rowMin = min(rowMin, v)
		}
		if rowMin > max {
			return max + 1
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[lb]
}

// schemaText is the searchable text of a tool's input schema: every
// property's name and description, nested objects and array items included.
// A schema that is not what it should be yields what could be read of it.
func schemaText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var b strings.Builder
	// Most schemas decode straight into typedSchema; only one with an odd
	// shape somewhere (a non-string description, a tuple of items) takes
	// the slower, lenient walk.
	var ts typedSchema
	if json.Unmarshal(raw, &ts) == nil {
		ts.text(&b, 0)
		return b.String()
	}
	schemaWalk(&b, raw, 0)
	return b.String()
}

type typedSchema struct {
	Description string                  `json:"description"`
	Properties  map[string]*typedSchema `json:"properties"`
	Items       *typedSchema            `json:"items"`
}

func (n *typedSchema) text(b *strings.Builder, depth int) {
	if n == nil || depth > maxSchemaDepth {
		return
	}
	names := make([]string, 0, len(n.Properties))
	for k := range n.Properties {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte(' ')
		if p := n.Properties[k]; p != nil && p.Description != "" {
			b.WriteString(p.Description)
			b.WriteByte('\n')
		}
		n.Properties[k].text(b, depth+1)
	}
	n.Items.text(b, depth+1)
}

// maxSchemaDepth bounds how deep nested properties are read, so a
// pathological schema cannot make indexing slow.
const maxSchemaDepth = 3

type schemaNode struct {
	Description json.RawMessage            `json:"description"`
	Properties  map[string]json.RawMessage `json:"properties"`
	Items       json.RawMessage            `json:"items"`
}

func schemaWalk(b *strings.Builder, raw json.RawMessage, depth int) {
	if depth > maxSchemaDepth {
		return
	}
	var n schemaNode
	if json.Unmarshal(raw, &n) != nil {
		return
	}
	names := make([]string, 0, len(n.Properties))
	for k := range n.Properties {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte(' ')
		var p schemaNode
		if json.Unmarshal(n.Properties[k], &p) == nil {
			var d string
			if json.Unmarshal(p.Description, &d) == nil && d != "" {
				b.WriteString(d)
				b.WriteByte('\n')
			}
		}
		schemaWalk(b, n.Properties[k], depth+1)
	}
	if len(n.Items) > 0 && n.Items[0] == '{' {
		schemaWalk(b, n.Items, depth+1)
	}
}
