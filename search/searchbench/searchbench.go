// Package searchbench measures the tool finder: ranking quality on a labeled
// query set over a catalog of registration files, and speed and memory on a
// large registry generated from that catalog by variation. It serves
// `make bench-finder` and the quality test of package search.
package searchbench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/search"
)

// LoadCatalog parses every *.json registration file in dir, enabled.
func LoadCatalog(dir string) ([]*registry.Server, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("searchbench: no *.json files in %s", dir)
	}
	sort.Strings(files)
	var out []*registry.Server
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		s, _, err := registry.Parse(b)
		if err != nil {
			return nil, fmt.Errorf("searchbench: %s: %w", f, err)
		}
		s.Enabled = true
		out = append(out, s)
	}
	return out, nil
}

// LabeledQuery is one entry of a query set: any of Expect ("<path
// key>:<tool>") is a correct answer.
type LabeledQuery struct {
	Query  string   `json:"query"`
	Tags   []string `json:"tags,omitempty"`
	Expect []string `json:"expect"`
}

// LoadQueries reads a query set file ({"queries": [...]}).
func LoadQueries(file string) ([]LabeledQuery, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Queries []LabeledQuery `json:"queries"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("searchbench: %s: %w", file, err)
	}
	for i, q := range doc.Queries {
		if len(q.Expect) == 0 || strings.TrimSpace(q.Query) == "" && len(q.Tags) == 0 {
			return nil, fmt.Errorf("searchbench: %s: query %d has no text and tags, or no expected answer", file, i+1)
		}
	}
	return doc.Queries, nil
}

// Result is how one labeled query fared.
type Result struct {
	LabeledQuery
	Rank int      // 1-based rank of the first correct answer; 0 when not in the top K
	Got  []string // the top K answers
}

// Report aggregates a run over a query set.
type Report struct {
	Queries   int
	RecallAt1 float64
	RecallAt5 float64
	MRR       float64
	Results   []Result
}

// K is the cut-off of Evaluate: answers below rank K count as not found.
const K = 10

// Searcher is what Evaluate asks of a finder: the text index or the
// hybrid ranking around it.
type Searcher interface {
	Search(ctx context.Context, q search.Query) ([]search.Hit, error)
}

// Evaluate runs every query against idx and scores the rankings.
func Evaluate(ctx context.Context, idx Searcher, qs []LabeledQuery) (Report, error) {
	return EvaluateAs(ctx, idx, qs, nil)
}

// EvaluateAs is Evaluate on a generated registry: origin maps a generated
// "<path key>:<tool>" to the catalog tool it was made from, and a hit
// counts when its origin is expected.
func EvaluateAs(ctx context.Context, idx Searcher, qs []LabeledQuery, origin map[string]string) (Report, error) {
	r := Report{Queries: len(qs)}
	for _, q := range qs {
		hits, err := idx.Search(ctx, search.Query{Text: q.Query, Tags: q.Tags, Top: K})
		if err != nil {
			return r, fmt.Errorf("query %q: %w", q.Query, err)
		}
		res := Result{LabeledQuery: q}
		want := map[string]bool{}
		for _, e := range q.Expect {
			want[e] = true
		}
		for i, h := range hits {
			id := h.ServerKey + ":" + h.Tool.Name
			if o, ok := origin[id]; ok {
				id = o
			}
			res.Got = append(res.Got, id)
			if res.Rank == 0 && want[id] {
				res.Rank = i + 1
			}
		}
		if res.Rank == 1 {
			r.RecallAt1++
		}
		if res.Rank >= 1 && res.Rank <= 5 {
			r.RecallAt5++
		}
		if res.Rank > 0 {
			r.MRR += 1 / float64(res.Rank)
		}
		r.Results = append(r.Results, res)
	}
	if n := float64(len(qs)); n > 0 {
		r.RecallAt1 /= n
		r.RecallAt5 /= n
		r.MRR /= n
	}
	return r, nil
}

// Generate returns n tools' worth of servers made from base by variation,
// deterministically from seed: each copy of a base server gets its own path,
// a varied name and description, extra tags, and tools whose descriptions
// have words dropped, reordered, replaced by related words, and mixed with
// words of a synthetic vocabulary, so the generated registry has a long tail
// of terms as a real one does, not only 294 tools repeated.
//
// It also returns the origin of every generated tool: "<path key>:<tool>"
// of the copy to the same of the catalog tool it was made from.
func Generate(base []*registry.Server, n int, seed int64) ([]*registry.Server, map[string]string) {
	origin := make(map[string]string, n)
	rng := rand.New(rand.NewSource(seed))
	synth := syntheticWords(rng, 20000)
	var pool []string // words of the whole catalog, for replacements
	for _, s := range base {
		pool = append(pool, strings.Fields(s.Description)...)
		for _, t := range s.ToolList {
			pool = append(pool, strings.Fields(t.Description())...)
		}
	}
	var out []*registry.Server
	total := 0
	for copyN := 0; total < n; copyN++ {
		for _, b := range base {
			if total >= n {
				break
			}
			s := b.Clone()
			word := synth[rng.Intn(len(synth))]
			s.Path = fmt.Sprintf("%s-%s-%d", strings.TrimSuffix(b.Path, "/"), word, copyN)
			s.ServerName = b.ServerName + " " + word
			s.Description = vary(rng, b.Description, pool, synth)
			s.Tags = append(append([]string(nil), b.Tags...), synth[rng.Intn(len(synth))])
			s.Enabled = true
			tools := make([]registry.Tool, 0, len(b.ToolList))
			for _, t := range b.ToolList {
				if total >= n {
					break
				}
				d := vary(rng, t.Description(), pool, synth)
				nt := t
				nt.ParsedDescription = registry.ParsedDescription{Main: &d}
				if rng.Intn(3) == 0 {
					nt.Name = t.Name + "_" + synth[rng.Intn(len(synth))]
				}
				tools = append(tools, nt)
				origin[registry.PathKey(s.Path)+":"+nt.Name] = registry.PathKey(b.Path) + ":" + t.Name
				total++
			}
			s.ToolList = tools
			s.NumTools = len(tools)
			out = append(out, s)
		}
	}
	return out, origin
}

func vary(rng *rand.Rand, text string, pool, synth []string) string {
	words := strings.Fields(text)
	if len(words) > 60 {
		words = words[:60+rng.Intn(len(words)-60)]
	}
	out := make([]string, 0, len(words)+6)
	for _, w := range words {
		switch r := rng.Intn(20); {
		case r == 0:
			continue // dropped
		case r == 1:
			out = append(out, pool[rng.Intn(len(pool))])
		case r == 2:
			out = append(out, synth[rng.Intn(len(synth))])
		default:
			out = append(out, w)
		}
	}
	for i := rng.Intn(6); i > 0; i-- {
		out = append(out, synth[rng.Intn(len(synth))])
	}
	if len(out) > 3 && rng.Intn(4) == 0 {
		i, j := rng.Intn(len(out)), rng.Intn(len(out))
		out[i], out[j] = out[j], out[i]
	}
	return strings.Join(out, " ")
}

// syntheticWords makes pronounceable pseudo-words (consonant-vowel
// syllables), standing in for the product names and jargon of a large
// registry.
func syntheticWords(rng *rand.Rand, n int) []string {
	const cons, vows = "bcdfghjklmnprstvwz", "aeiou"
	seen := map[string]bool{}
	out := make([]string, 0, n)
	for len(out) < n {
		var b strings.Builder
		for s := 2 + rng.Intn(3); s > 0; s-- {
			b.WriteByte(cons[rng.Intn(len(cons))])
			b.WriteByte(vows[rng.Intn(len(vows))])
		}
		if w := b.String(); !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// QueryLatencies runs every query of qs rounds times against idx, asking
// for the top 5 as the gateway's default does, and returns the wall time of
// each run, sorted.
func QueryLatencies(ctx context.Context, idx Searcher, qs []LabeledQuery, rounds int) ([]time.Duration, error) {
	lat := make([]time.Duration, 0, rounds*len(qs))
	for r := 0; r < rounds; r++ {
		for _, q := range qs {
			t0 := time.Now()
			if _, err := idx.Search(ctx, search.Query{Text: q.Query, Tags: q.Tags, Top: 5}); err != nil {
				return nil, err
			}
			lat = append(lat, time.Since(t0))
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat, nil
}
