package search

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	bleveregistry "github.com/blevesearch/bleve/v2/registry"

	"github.com/mcpgw/mcpgw/registry"
)

// The scored fields of a tool, in the order of toolFields.byField and
// Index.fieldBoost.
const (
	fieldName = iota
	fieldDesc
	fieldParams
	fieldServer
	numFields
)

// newAnalyzer is the English analysis of tool texts and queries: Unicode
// word segmentation, possessives, lowercase, English stop words, a plural
// stemmer (Snowball alone keeps "dsns" whole: no vowel) and the Snowball
// (Porter2) stemmer, all bleve's.
func newAnalyzer() (*textAnalyzer, error) {
	cache := bleveregistry.NewCache()
	tok, err := cache.TokenizerNamed(unicode.Name)
	if err != nil {
		return nil, fmt.Errorf("search: analyzer: %w", err)
	}
	var filters []analysis.TokenFilter
	for _, name := range []string{en.PossessiveName, lowercase.Name, en.StopName, en.PluralStemmerName, en.SnowballStemmerName} {
		f, err := cache.TokenFilterNamed(name)
		if err != nil {
			return nil, fmt.Errorf("search: analyzer: %w", err)
		}
		filters = append(filters, f)
	}
	n := len(filters)
	return &textAnalyzer{tok: tok, filters: filters[: n-2 : n-2], stemmers: filters[n-2:],
		stems: map[string]string{}, terms: map[string]string{}}, nil
}

// maxCached bounds each of the analyzer's caches; words beyond it are
// analyzed each time.
const maxCached = 1 << 18

// textAnalyzer runs bleve's tokenizer and token filters and then the
// stemmers. Every filter works on one token at a time, so what a token
// becomes depends on its text only: terms caches it per token, and a token
// seen before costs one map lookup instead of the filters and the stemmer.
// Tool texts repeat a small vocabulary, and analysis is most of the cost of
// building the index. The caches also hand out one shared string per term,
// so that analyzing a text allocates no string per token. It is safe for
// concurrent use.
type textAnalyzer struct {
	tok      analysis.Tokenizer
	filters  []analysis.TokenFilter // before stemming
	stemmers []analysis.TokenFilter

	mu    sync.RWMutex
	stems map[string]string // word (filtered) -> stem
	terms map[string]string // token as the tokenizer gives it -> term; "" when a filter drops it
}

var _ analysis.Analyzer = (*textAnalyzer)(nil)

// Analyze implements analysis.Analyzer (the synonym table and the query
// stop words are analyzed through it).
func (a *textAnalyzer) Analyze(input []byte) analysis.TokenStream {
	ts := a.words(input)
	for _, t := range ts {
		t.Term = []byte(a.stem(t.Term))
	}
	return ts
}

// words tokenizes input and applies the filters before stemming.
func (a *textAnalyzer) words(input []byte) analysis.TokenStream {
	ts := a.tok.Tokenize(input)
	for _, f := range a.filters {
		ts = f.Filter(ts)
	}
	return ts
}

// stem returns the stem of word, from the cache when it is there.
func (a *textAnalyzer) stem(word []byte) string {
	a.mu.RLock()
	s, ok := a.stems[string(word)] // no allocation: the key is only looked up
	n := len(a.stems)
	a.mu.RUnlock()
	if ok {
		return s
	}
	one := analysis.TokenStream{{Term: append([]byte(nil), word...)}}
	for _, f := range a.stemmers {
		one = f.Filter(one)
	}
	s = string(one[0].Term)
	if n < maxCached {
		a.mu.Lock()
		if prev, ok := a.stems[string(word)]; ok {
			s = prev
		} else {
			a.stems[string(word)] = s
		}
		a.mu.Unlock()
	}
	return s
}

// analyze returns the analyzed terms of text, in order.
func (a *textAnalyzer) analyze(text string) []string {
	if text == "" {
		return nil
	}
	out := make([]string, 0, len(text)/6)
	add := func(w string) {
		if t := a.cached(w); t != "" {
			out = append(out, t)
		}
	}
	if isASCII(text) {
		asciiWords(text, add)
		return out
	}
	// Word boundaries never join across white space: the ASCII fields take
	// the fast path, the others bleve's tokenizer.
	for i := 0; i < len(text); {
		if n := spaceAt(text, i); n > 0 {
			i += n
			continue
		}
		j, ascii := i, true
		for j < len(text) && spaceAt(text, j) == 0 {
			ascii = ascii && text[j] < utf8.RuneSelf
			j++
		}
		if ascii {
			asciiWords(text[i:j], add)
		} else {
			for _, t := range a.tok.Tokenize([]byte(text[i:j])) {
				add(string(t.Term)) // no allocation when cached: the conversion only looks up
			}
		}
		i = j
	}
	return out
}

// cached returns the term of token tok, from the cache when it is there.
func (a *textAnalyzer) cached(tok string) string {
	a.mu.RLock()
	term, ok := a.terms[tok]
	n := len(a.terms)
	a.mu.RUnlock()
	if ok {
		return term
	}
	term = a.term([]byte(tok))
	if n < maxCached {
		a.mu.Lock()
		a.terms[strings.Clone(tok)] = term
		a.mu.Unlock()
	}
	return term
}

// isASCII reports whether s is all ASCII.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// asciiWords calls fn with each word of the ASCII text s, exactly as
// bleve's Unicode tokenizer (UAX #29 word boundaries, as the segment
// package implements them) finds them; TestASCIIWordsMatchBleve checks it.
// Restricted to ASCII the rules are few: letters, digits and '_' join;
// one ':', '.' or '\” between two letters joins them, and one ',', ';',
// '.' or '\” between two digits; every other byte separates words and is
// no word itself. Segmenting with bleve's general state machine was a third
// of the cost of building the index.
func asciiWords(s string, fn func(string)) {
	for i := 0; i < len(s); {
		if asciiClass[s[i]] < classWord {
			i++
			continue
		}
		j := i + 1
		for j < len(s) {
			c := asciiClass[s[j]]
			if c >= classWord {
				j++
				continue
			}
			if j+1 < len(s) && c != classOther {
				p, q := asciiClass[s[j-1]], asciiClass[s[j+1]]
				if p == q && (p == classLetter && c&midLetter != 0 || p == classDigit && c&midNum != 0) {
					j += 2
					continue
				}
			}
			break
		}
		fn(s[i:j])
		i = j
	}
}

// ASCII classes for asciiWords: the word classes are at least classWord;
// below it, the bits say between what a byte may join.
const (
	classOther  = 0
	midLetter   = 1 // ':' '.' '\''
	midNum      = 2 // ',' ';' '.' '\''
	classWord   = 4
	classLetter = 4
	classDigit  = 5
	classUnder  = 6
)

var asciiClass = func() (c [256]uint8) {
	for b := 'a'; b <= 'z'; b++ {
		c[b], c[b-'a'+'A'] = classLetter, classLetter
	}
	for b := '0'; b <= '9'; b++ {
		c[b] = classDigit
	}
	c['_'] = classUnder
	c[':'] = midLetter
	c[','], c[';'] = midNum, midNum
	c['.'], c['\''] = midLetter|midNum, midLetter|midNum
	return c
}()

// term runs the filters and the stemmer on one token: "" when a filter
// drops it.
func (a *textAnalyzer) term(tok []byte) string {
	one := analysis.TokenStream{{Term: append([]byte(nil), tok...)}}
	for _, f := range a.filters {
		one = f.Filter(one)
	}
	if len(one) == 0 || len(one[0].Term) == 0 {
		return ""
	}
	return a.stem(one[0].Term)
}

// analyze returns the analyzed terms of text, in order.
func (x *Index) analyze(text string) []string { return x.an.analyze(text) }

// toolFields are the analyzed terms of one tool document, by field.
type toolFields struct {
	name, desc, params, server []string
}

// byField returns the terms by field (fieldName, fieldDesc, ...).
func (f toolFields) byField() [numFields][]string {
	return [numFields][]string{f.name, f.desc, f.params, f.server}
}

func (f toolFields) termSet() map[string]bool {
	m := make(map[string]bool, len(f.name)+len(f.desc)+len(f.params)+len(f.server))
	for _, l := range [][]string{f.name, f.desc, f.params, f.server} {
		for _, t := range l {
			m[t] = true
		}
	}
	return m
}

// fields analyzes the searchable texts of tool t of server s.
func (x *Index) fields(s *registry.Server, t *registry.Tool) toolFields {
	return x.toolFields(x.serverTerms(s), s, t)
}

// serverTerms analyzes the text every tool of s shares in its server field:
// the server's name, description and tags. A build analyzes it once per
// server rather than once per tool.
func (x *Index) serverTerms(s *registry.Server) []string {
	var server strings.Builder
	server.WriteString(s.ServerName)
	server.WriteByte('\n')
	server.WriteString(s.Description)
	for _, tag := range s.Tags {
		server.WriteByte(' ')
		server.WriteString(tag)
	}
	return x.analyze(expandIdentifiers(server.String()))
}

// toolFields analyzes the searchable texts of tool t of server s, whose
// shared server terms are server (see serverTerms). The tool's server field
// is those terms followed by the words of its target prefix; analyzing the
// two texts apart gives the terms of analyzing them joined, since both
// expandIdentifiers and the tokenizer split at whitespace.
func (x *Index) toolFields(server []string, s *registry.Server, t *registry.Tool) toolFields {
	prefix, words := ToolWords(t.Name)
	// The name's words only: a joined form would lengthen the field and so
	// weaken every match in it.
	name := strings.Join(words, " ")
	var desc strings.Builder
	for _, p := range []*string{t.ParsedDescription.Main, t.ParsedDescription.Args, t.ParsedDescription.Returns} {
		if p != nil {
			desc.WriteString(*p)
			desc.WriteByte('\n')
		}
	}
	if len(prefix) > 0 {
		server = append(server[:len(server):len(server)], x.analyze(expandIdentifiers(strings.Join(prefix, " ")))...)
	}
	return toolFields{
		name:   x.analyze(name),
		desc:   x.analyze(expandIdentifiers(desc.String())),
		params: x.analyze(expandIdentifiers(schemaText(t.Schema))),
		server: server,
	}
}

// queryStop are words of agent requests that say nothing about the tool
// wanted ("I need a tool that can help me ..."). They are dropped from
// queries only: in tool texts they are rare enough to be harmless.
var queryStop = func() map[string]bool {
	an, err := newAnalyzer()
	if err != nil {
		panic(err)
	}
	m := map[string]bool{}
	for _, w := range []string{
		"tool", "tools", "need", "want", "wants", "would", "like", "please", "help", "able",
		"someth", "something", "way", "let", "lets", "us", "me", "can", "could", "should",
		"use", "using", "via", "thing", "stuff", "certain", "specific", "given", "currently",
	} {
		for _, t := range an.Analyze([]byte(w)) {
			m[string(t.Term)] = true
		}
	}
	return m
}()

// buildSynonyms analyzes the synonym groups into a map from a term to its
// alternatives. A multi-word entry gives each of its words at a lower boost.
func buildSynonyms(an analysis.Analyzer, groups [][]string) map[string][]alt {
	type member struct {
		terms []string
	}
	out := map[string][]alt{}
	for _, g := range groups {
		members := make([]member, 0, len(g))
		for _, w := range g {
			var m member
			for _, t := range an.Analyze([]byte(w)) {
				m.terms = append(m.terms, string(t.Term))
			}
			if len(m.terms) > 0 {
				members = append(members, m)
			}
		}
		for _, from := range members {
			if len(from.terms) != 1 {
				continue // multi-word entries are targets only
			}
			key := from.terms[0]
			for _, to := range members {
				if len(to.terms) == 1 && to.terms[0] == key {
					continue
				}
				b := 1.0
				if len(to.terms) > 1 {
					b = 0.7
				}
				for _, t := range to.terms {
					if t != key {
						out[key] = mergeAlt(out[key], alt{t, b})
					}
				}
			}
		}
	}
	for k := range out {
		sort.Slice(out[k], func(i, j int) bool { return out[k][i].term < out[k][j].term })
	}
	return out
}

func mergeAlt(as []alt, a alt) []alt {
	for i := range as {
		if as[i].term == a.term {
			if a.boost > as[i].boost {
				as[i].boost = a.boost
			}
			return as
		}
	}
	return append(as, a)
}
