package search

import (
	"bytes"
	"encoding/json"
	"math/bits"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/mcpgw/mcpgw/registry"
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
	for _, l := range x.lex {
		if abs(len(l.term)-len(t)) > maxD || len(l.term) < 3 || bits.OnesCount64(l.mask^tm) > 2*maxD {
			continue
		}
		if l.t.tools <= 0 {
			continue // no longer in the vocabulary
		}
		if d := editDistance(t, l.term, maxD); d <= maxD {
			cs = append(cs, cand{l.term, d, l.t.tools})
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

// lexEntry is one vocabulary term as the correction scan reads it: a
// compact array to scan, rather than the vocabulary map. A state's lexicon
// gains an entry when a term enters its vocabulary; a term that leaves it
// keeps its entry, with no tools, until the next whole build.
type lexEntry struct {
	term string
	mask uint64 // letterMask(term)
	t    *term
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
// property's name and description, nested objects and array items included
// (to maxSchemaDepth). A schema that is not what it should be yields what
// could be read of it. It scans the JSON rather than decoding it: decoding
// every schema into maps was a fifth of the cost of building the index.
func schemaText(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var b strings.Builder
	schemaScan(&b, readNode(raw), 0)
	return b.String()
}

// maxSchemaDepth bounds how deep nested properties are read, so a
// pathological schema cannot make indexing slow.
const maxSchemaDepth = 3

// schemaNode is what schemaText reads of one schema object: its
// description, and its properties and items objects (every occurrence of
// the key).
type schemaNode struct {
	desc         []byte
	props, items [][]byte
}

// readNode reads the schema objects in vs, taken together as encoding/json
// decoded them: keys match case-insensitively, as struct fields do; a
// repeated "properties" or "items" merges into the first (a map, a struct),
// a repeated "description" replaces it. One pass over each object's members.
func readNode(vs ...[]byte) schemaNode {
	var n schemaNode
	for _, v := range vs {
		jsonMembers(v, func(key string, v []byte) {
			switch {
			case strings.EqualFold(key, "properties"):
				n.props = append(n.props, v)
			case strings.EqualFold(key, "items"):
				n.items = append(n.items, v)
			case strings.EqualFold(key, "description"):
				n.desc = v
			}
		})
	}
	return n
}

// schemaScan writes the properties of schema node n, depth levels down, and
// of its items.
func schemaScan(b *strings.Builder, n schemaNode, depth int) {
	if depth > maxSchemaDepth {
		return
	}
	// Properties in name order, as decoding into a map and sorting gave them.
	type prop struct {
		name string
		v    []byte
	}
	var ps []prop
	for _, p := range n.props {
		jsonMembers(p, func(name string, v []byte) { ps = append(ps, prop{name, v}) })
	}
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].name < ps[j].name })
	for i, p := range ps {
		if i+1 < len(ps) && ps[i+1].name == p.name {
			continue // a repeated name: the last wins
		}
		b.WriteString(p.name)
		b.WriteByte(' ')
		pn := readNode(p.v)
		if d, ok := jsonString(pn.desc); ok && d != "" {
			b.WriteString(d)
			b.WriteByte('\n')
		}
		schemaScan(b, pn, depth+1)
	}
	if len(n.items) > 0 {
		schemaScan(b, readNode(n.items...), depth+1)
	}
}

// jsonMembers calls fn with each member of the JSON object v (keys
// unescaped, values raw); nothing when v is not an object. It stops at the
// first byte that does not fit, and never reads past v.
func jsonMembers(v []byte, fn func(key string, value []byte)) {
	i := registry.SkipJSONSpace(v, 0)
	if i >= len(v) || v[i] != '{' {
		return
	}
	for i = registry.SkipJSONSpace(v, i+1); i < len(v) && v[i] == '"'; {
		end := skipJSON(v, i)
		key, ok := jsonString(v[i:end])
		if !ok {
			return
		}
		if i = registry.SkipJSONSpace(v, end); i >= len(v) || v[i] != ':' {
			return
		}
		i = registry.SkipJSONSpace(v, i+1)
		end = skipJSON(v, i)
		if end <= i || end > len(v) {
			return
		}
		fn(key, v[i:end])
		if i = registry.SkipJSONSpace(v, end); i < len(v) && v[i] == ',' {
			i = registry.SkipJSONSpace(v, i+1)
		}
	}
}

// skipJSON is registry.SkipJSONValue (the index just after the JSON value
// at b[i]), but crossing strings with bytes.IndexByte: the scan crosses
// each schema's descriptions once per level of nesting.
func skipJSON(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default:
		return registry.SkipJSONValue(b, i)
	}
}

// skipString returns the index just after the JSON string at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); {
		k := bytes.IndexByte(b[i:], '"')
		if k < 0 {
			return len(b)
		}
		i += k
		// Escaped when preceded by an odd number of backslashes.
		n := 0
		for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
			n++
		}
		if n%2 == 0 {
			return i + 1
		}
		i++
	}
	return i
}

// jsonString decodes the JSON string token v; ok is false when v is not one.
func jsonString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	in := v[1 : len(v)-1]
	if bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
		return string(in), true
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}
