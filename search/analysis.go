package search

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/single"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/whitespace"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/mapping"
	bleveregistry "github.com/blevesearch/bleve/v2/registry"
	index "github.com/blevesearch/bleve_index_api"

	"github.com/mcpgw/mcpgw/registry"
)

// Field names of a tool document.
const (
	fieldName   = "name"
	fieldDesc   = "desc"
	fieldParams = "params"
	fieldServer = "server"
	fieldTags   = "tags"
)

// indexOnly: fields are searched, never stored or highlighted; hits are
// built from the index's own copy of the registry state.
const indexOnly = index.IndexField

var (
	// pretokenized indexes text this package has already analyzed: terms
	// separated by spaces. Documents are analyzed once, here, because the
	// same terms also feed the vocabulary.
	pretokenized analysis.Analyzer
	// keywordAnalyzer indexes a tag as one exact term.
	keywordAnalyzer analysis.Analyzer
)

func init() {
	cache := bleveregistry.NewCache()
	ws, err := cache.TokenizerNamed(whitespace.Name)
	if err != nil {
		panic(err)
	}
	one, err := cache.TokenizerNamed(single.Name)
	if err != nil {
		panic(err)
	}
	pretokenized = &analysis.DefaultAnalyzer{Tokenizer: ws}
	keywordAnalyzer = &analysis.DefaultAnalyzer{Tokenizer: one}
}

// newAnalyzer is the English analysis of tool texts and queries: Unicode
// word segmentation, possessives, lowercase, English stop words, a plural
// stemmer (Snowball alone keeps "dsns" whole: no vowel) and the Snowball
// (Porter2) stemmer.
func newAnalyzer() (analysis.Analyzer, error) {
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
	// Stemming is a third of the cost of analysis, and tool texts repeat a
	// small vocabulary: remember each word's stem.
	n := len(filters)
	filters = append(filters[:n-2:n-2], &cachedStems{stemmers: filters[n-2:]})
	return &analysis.DefaultAnalyzer{Tokenizer: tok, TokenFilters: filters}, nil
}

// maxCachedStems bounds the stem cache; words beyond it are stemmed each time.
const maxCachedStems = 1 << 18

// cachedStems applies stemmers to each token through a cache of their
// result per word. It is safe for concurrent use.
type cachedStems struct {
	stemmers []analysis.TokenFilter
	m        sync.Map // word -> stem ([]byte, never modified)
	n        atomic.Int64
}

func (c *cachedStems) Filter(input analysis.TokenStream) analysis.TokenStream {
	for _, tok := range input {
		if v, ok := c.m.Load(string(tok.Term)); ok {
			tok.Term = v.([]byte)
			continue
		}
		word := string(tok.Term)
		one := analysis.TokenStream{{Term: tok.Term}}
		for _, f := range c.stemmers {
			one = f.Filter(one)
		}
		stem := one[0].Term
		if c.n.Load() < maxCachedStems {
			if _, loaded := c.m.LoadOrStore(word, stem); !loaded {
				c.n.Add(1)
			}
		}
		tok.Term = stem
	}
	return input
}

// newBleve opens an empty in-memory index. It is scorch without a path:
// segments live in memory and nothing touches the disk; the registry's
// store is the source of truth and the index is rebuilt from it at start.
func newBleve() (bleve.Index, error) {
	m := mapping.NewIndexMapping()
	m.DefaultMapping = mapping.NewDocumentDisabledMapping()
	bi, err := bleve.NewUsing("", m, scorch.Name, scorch.Name, nil)
	if err != nil {
		return nil, fmt.Errorf("search: open index: %w", err)
	}
	return bi, nil
}

// analyze returns the analyzed terms of text, in order.
func (x *Index) analyze(text string) []string {
	if text == "" {
		return nil
	}
	ts := x.an.Analyze([]byte(text))
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		if len(t.Term) > 0 {
			out = append(out, string(t.Term))
		}
	}
	return out
}

// toolFields are the analyzed terms of one tool document, by field.
type toolFields struct {
	name, desc, params, server []string
}

// byField returns the terms in the order of scoredFields.
func (f toolFields) byField() [4][]string { return [4][]string{f.name, f.desc, f.params, f.server} }

// impacts holds, per scored field, the largest tf-idf "tf × norm" factor
// (sqrt(frequency)/sqrt(field length)) each term has in any document.
type impacts [4]map[string]float32

func newImpacts() impacts {
	var m impacts
	for i := range m {
		m[i] = map[string]float32{}
	}
	return m
}

// add raises the impacts of field fi's terms to those of one document.
func (m impacts) add(fi int, terms []string) {
	counts := make(map[string]int, len(terms))
	for _, t := range terms {
		counts[t]++
	}
	l := math.Sqrt(float64(len(terms)))
	for t, c := range counts {
		if v := float32(math.Sqrt(float64(c)) / l); v > m[fi][t] {
			m[fi][t] = v
		}
	}
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
	var server strings.Builder
	server.WriteString(s.ServerName)
	server.WriteByte('\n')
	server.WriteString(s.Description)
	for _, tag := range s.Tags {
		server.WriteByte(' ')
		server.WriteString(tag)
	}
	for _, w := range prefix {
		server.WriteByte(' ')
		server.WriteString(w)
	}
	return toolFields{
		name:   x.analyze(name),
		desc:   x.analyze(expandIdentifiers(desc.String())),
		params: x.analyze(expandIdentifiers(schemaText(t.Schema))),
		server: x.analyze(expandIdentifiers(server.String())),
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
