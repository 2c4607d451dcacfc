package main

import (
	"context"
	"flag"
	"fmt"
	"hash/fnv"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/search"
	"github.com/mcpgw/mcpgw/search/searchbench"
)

// The optional hybrid ranking: with -embeddings-url, the catalog's quality
// is measured again with a real model server's embeddings fused in.
var (
	embURL    = flag.String("embeddings-url", "", "OpenAI-compatible /v1/embeddings endpoint: also measure the hybrid ranking on the catalog")
	embModel  = flag.String("embeddings-model", "", "model name for -embeddings-url")
	embKeyEnv = flag.String("embeddings-api-key-env", "", "environment variable holding the endpoint's API key")
	fuseDepth = flag.String("hybrid-depths", "0", "comma-separated fusion depths (HybridOptions.Depth) to measure the catalog's hybrid quality at; 0 is the default")
)

// hybridQuality measures the hybrid ranking around idx (built from the
// catalog) when -embeddings-url is given: embedding time, recall and MRR,
// and query latency, which includes the endpoint's round trip.
func hybridQuality(ctx context.Context, idx *search.Index, base []*registry.Server, qs []searchbench.LabeledQuery, verbose bool) error {
	if *embURL == "" {
		return nil
	}
	key := ""
	if *embKeyEnv != "" {
		key = os.Getenv(*embKeyEnv)
	}
	client, err := search.NewEmbeddingsClient(search.EmbeddingsOptions{URL: *embURL, Model: *embModel, APIKey: key})
	if err != nil {
		return err
	}
	// Embed the catalog directly first, so that a failing endpoint is an
	// error here rather than a silent fallback to the text ranking.
	if _, err := client.Embed(ctx, []string{"check the warranty status of a product"}); err != nil {
		return err
	}
	model := &onceModel{m: client, vecs: map[string][]float32{}} // each depth reuses the vectors
	for i, d := range strings.Split(*fuseDepth, ",") {
		depth, err := strconv.Atoi(strings.TrimSpace(d))
		if err != nil || depth < 0 {
			return fmt.Errorf("-hybrid-depths: %q is not a depth", d)
		}
		if err := hybridQualityAt(ctx, idx, model, depth, i == 0, base, qs, verbose); err != nil {
			return err
		}
	}
	return nil
}

// hybridQualityAt measures the catalog's hybrid quality with the fusion
// depth given (0: the default, the number of results asked for).
func hybridQualityAt(ctx context.Context, idx *search.Index, model search.Embedder, depth int, first bool, base []*registry.Server, qs []searchbench.LabeledQuery, verbose bool) error {
	h, err := search.NewHybrid(idx, model, search.HybridOptions{QueryTimeout: 30 * time.Second, Depth: depth})
	if err != nil {
		return err
	}
	defer h.Close()
	start := time.Now()
	if err := h.Rebuild(base); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := h.WaitEmbedded(wctx); err != nil {
		return err
	}
	st := h.Stats()
	fmt.Printf("hybrid (%s, fusion depth %d): %d tool texts embedded in %s\n", *embModel, depth, st.Vectors, time.Since(start).Round(time.Millisecond))
	var lat []time.Duration
	timed := timedSearcher{h, &lat}
	rep, err := searchbench.Evaluate(ctx, timed, qs)
	if err != nil {
		return err
	}
	fmt.Printf("hybrid quality: %d queries  recall@1 %.3f  recall@5 %.3f  MRR %.3f\n", rep.Queries, rep.RecallAt1, rep.RecallAt5, rep.MRR)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 && first { // later depths find the query vectors known
		pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
		fmt.Printf("  hybrid query, first run (query embedded by the endpoint): p50 %s  p99 %s\n",
			pct(0.5).Round(time.Microsecond), pct(0.99).Round(time.Microsecond))
	}
	for _, r := range rep.Results {
		if r.Rank == 1 || !verbose && r.Rank >= 1 && r.Rank <= 5 {
			continue
		}
		got := r.Got
		if len(got) > 3 {
			got = got[:3]
		}
		fmt.Printf("  rank %-2d %q want %s got %s\n", r.Rank, r.Query, strings.Join(r.Expect, "|"), strings.Join(got, ", "))
	}
	return nil
}

// timedSearcher records each search's latency.
type timedSearcher struct {
	h   *search.Hybrid
	lat *[]time.Duration
}

func (t timedSearcher) Search(ctx context.Context, q search.Query) ([]search.Hit, error) {
	start := time.Now()
	hits, err := t.h.Search(ctx, q)
	*t.lat = append(*t.lat, time.Since(start))
	return hits, err
}

// hybridDims, when set, measures the hybrid ranking's own cost on the large
// generated registry: vectors of that many dimensions from a local fake
// model (no endpoint), so the figure is the vector ranking's work, not a
// model's latency.
var hybridDims = flag.Int("hybrid-dims", 0, "with -tools: also time hybrid queries over vectors of this many dimensions from a local fake model")

// hybridEndpoint takes the vectors of that measurement from the
// -embeddings-url endpoint instead, each text embedded once: how well the
// approximate index does depends on how a real model's vectors cluster.
var (
	hybridEndpoint = flag.Bool("hybrid-endpoint", false, "with -tools and -embeddings-url: time the hybrid modes over the endpoint's vectors (each text embedded once)")
	indexFrom      = flag.Int("index-from", 0, "vector count from which the hybrid modes build their index (0: the default, 10,000)")
)

// onceModel embeds each distinct text once through m and remembers it, so
// that the three modes of hybridScale share one embedding of the registry.
type onceModel struct {
	m    search.Embedder
	mu   sync.Mutex
	vecs map[string][]float32
}

func (o *onceModel) Model() string { return o.m.Model() }

func (o *onceModel) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var missing []string
	seen := map[string]bool{}
	for _, t := range texts {
		if _, ok := o.vecs[t]; !ok && !seen[t] {
			seen[t] = true
			missing = append(missing, t)
		}
	}
	for len(missing) > 0 {
		n := min(len(missing), 64)
		vs, err := o.m.Embed(ctx, missing[:n])
		if err != nil {
			return nil, err
		}
		for i, v := range vs {
			o.vecs[missing[i]] = v
		}
		missing = missing[n:]
	}
	out := make([][]float32, len(texts))
	for i, t := range texts {
		out[i] = o.vecs[t]
	}
	return out, nil
}

// wordsModel is the fake model: a text's vector is the sum of a fixed
// random vector per word, so texts that share words are near, as with a
// real model, and the vectors are dense.
type wordsModel struct {
	dims  int
	mu    sync.Mutex
	words map[string][]float32
}

func (m *wordsModel) Model() string { return fmt.Sprintf("fake-words-%d", m.dims) }

func (m *wordsModel) Embed(_ context.Context, texts []string) ([][]float32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([][]float32, len(texts))
	for i, t := range texts {
		v := make([]float32, m.dims)
		for _, w := range strings.FieldsFunc(strings.ToLower(t), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			for j, f := range m.word(w) {
				v[j] += f
			}
		}
		out[i] = v
	}
	return out, nil
}

func (m *wordsModel) word(w string) []float32 {
	if v, ok := m.words[w]; ok {
		return v
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(w))
	r := rand.New(rand.NewSource(int64(h.Sum64())))
	v := make([]float32, m.dims)
	for j := range v {
		v[j] = float32(r.NormFloat64())
	}
	m.words[w] = v
	return v
}

// hybridScale times hybrid queries over servers with fake vectors, three
// ways: the scan through every server's tools (no vector index), the
// default index (the same ranking, the vectors back to back), and the
// approximate index probing a tenth of its lists; and how many of the
// exact top 10 the approximate one finds.
func hybridScale(ctx context.Context, servers []*registry.Server, qs []searchbench.LabeledQuery, rounds int) error {
	var model search.Embedder
	what := fmt.Sprintf("%d-dimension vectors from a local fake model (sum of a random vector per word)", *hybridDims)
	switch {
	case *hybridDims > 0:
		model = &wordsModel{dims: *hybridDims, words: map[string][]float32{}}
	case *hybridEndpoint && *embURL != "":
		client, err := search.NewEmbeddingsClient(search.EmbeddingsOptions{URL: *embURL, Model: *embModel, APIKey: os.Getenv(*embKeyEnv)})
		if err != nil {
			return err
		}
		model = &onceModel{m: client, vecs: map[string][]float32{}}
		what = "vectors from " + client.Endpoint() + " (model " + *embModel + "), each text embedded once"
	default:
		return nil
	}
	modes := []struct {
		name string
		opts search.HybridOptions
	}{
		{"no index", search.HybridOptions{IndexFrom: -1}},
		{"index (default)", search.HybridOptions{IndexFrom: *indexFrom}},
		{"approximate index, 10% probed", search.HybridOptions{IndexFrom: *indexFrom, ApproxProbe: 0.1}},
	}
	var exact [][]string
	for i, mode := range modes {
		x, err := search.New(indexOptions)
		if err != nil {
			return err
		}
		mode.opts.QueryTimeout = time.Minute // a real endpoint embeds each query too
		h, err := search.NewHybrid(x, model, mode.opts)
		if err != nil {
			x.Close()
			return err
		}
		start := time.Now()
		if err := h.Rebuild(servers); err != nil {
			return err
		}
		if err := h.WaitEmbedded(ctx); err != nil {
			return err
		}
		embedded := time.Since(start)
		from := mode.opts.IndexFrom
		if from == 0 {
			from = 10000 // search's default
		}
		for from > 0 && h.Stats().Vectors >= from && h.Stats().Indexed == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		if i == 0 {
			fmt.Printf("  hybrid, %s: embedded in %s\n", what, embedded.Round(time.Millisecond))
		}
		if mode.opts.IndexFrom >= 0 {
			fmt.Printf("    %s: index of %d vectors built in %s after the embedding\n", mode.name, h.Stats().Indexed, (time.Since(start) - embedded).Round(time.Millisecond))
		}
		// Each query's vector once first (the hybrid keeps the last 1,024),
		// so that an endpoint's round trip is not timed.
		for _, q := range qs {
			if _, err := h.Search(ctx, search.Query{Text: q.Query, Tags: q.Tags, Top: 5}); err != nil {
				return err
			}
		}
		lat, err := searchbench.QueryLatencies(ctx, h, qs, rounds)
		if err != nil {
			return err
		}
		line := fmt.Sprintf("    %s: hybrid query (%d queries, the query's vector known): p50 %s  p99 %s", mode.name, len(lat),
			lat[len(lat)/2].Round(time.Microsecond), lat[(len(lat)-1)*99/100].Round(time.Microsecond))
		var tops [][]string
		for _, q := range qs {
			hits, err := h.Search(ctx, search.Query{Text: q.Query, Tags: q.Tags, Top: 10})
			if err != nil {
				return err
			}
			var ids []string
			for _, hit := range hits {
				ids = append(ids, hit.ServerKey+":"+hit.Tool.Name)
			}
			tops = append(tops, ids)
		}
		if i == 0 {
			exact = tops
		} else {
			found, total := 0, 0
			for qi, ids := range tops {
				in := map[string]bool{}
				for _, id := range ids {
					in[id] = true
				}
				for _, id := range exact[qi] {
					total++
					if in[id] {
						found++
					}
				}
			}
			line += fmt.Sprintf("; %.3f of the exact top 10 found", float64(found)/float64(max(total, 1)))
		}
		fmt.Println(line)
		h.Close()
		x.Close()
	}
	return nil
}
