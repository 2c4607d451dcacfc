package search

import (
	"fmt"
	"sort"
	"strings"
	"sync"

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
	return &textAnalyzer{tok: tok, filters: filters[: n-2 : n-2], stemmers: filters[n-2:], stems: map[string]string{}}, nil
}

// maxCachedStems bounds the stem cache; words beyond it are stemmed each time.
const maxCachedStems = 1 << 18

// textAnalyzer runs bleve's tokenizer and token filters and then the
// stemmers through a cache of each word's stem. Stemming was a third of the
// cost of analysis, and tool texts repeat a small vocabulary; the cache also
// hands out one shared string per stem, so that analyzing a text allocates
// no string per token. It is safe for concurrent use.
type textAnalyzer struct {
	tok      analysis.Tokenizer
	filters  []analysis.TokenFilter // before stemming
	stemmers []analysis.TokenFilter

	mu    sync.RWMutex
	stems map[string]string // word -> stem
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
	if n < maxCachedStems {
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

// terms returns the analyzed terms of text, in order.
func (a *textAnalyzer) terms(text string) []string {
	if text == "" {
		return nil
	}
	ts := a.words([]byte(text))
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		if len(t.Term) > 0 {
			if s := a.stem(t.Term); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// analyze returns the analyzed terms of text, in order.
func (x *Index) analyze(text string) []string { return x.an.terms(text) }

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
