package search

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/search/embedtest"
)

// wordsModel embeds in process as the sum of a fixed random vector per
// word (embedtest's words), so that texts sharing words are near and the
// vectors are dense, as a real model's are.
type wordsModel struct{ dim int }

func (m wordsModel) Model() string { return fmt.Sprintf("words-%d", m.dim) }

func (m wordsModel) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		out[i] = m.vector(t)
	}
	return out, nil
}

func (m wordsModel) vector(text string) []float32 {
	v := make([]float32, m.dim)
	for _, w := range embedtest.Words(text) {
		h := fnv.New64a()
		h.Write([]byte(w))
		r := rand.New(rand.NewPCG(h.Sum64(), 0))
		for j := range v {
			v[j] += float32(r.NormFloat64())
		}
	}
	return unitVec(v)
}

// topicRegistry makes servers whose tools are worded mostly from their
// server's topic, so the vectors form clusters as real tool texts do.
type topicRegistry struct {
	rng    *rand.Rand
	vocab  []string
	topics [][]string
}

func newTopicRegistry(seed uint64, topics, wordsPerTopic int) *topicRegistry {
	g := &topicRegistry{rng: rand.New(rand.NewPCG(seed, 1))}
	seen := map[string]bool{}
	for len(g.vocab) < topics*wordsPerTopic+200 {
		w := g.word()
		if !seen[w] {
			seen[w] = true
			g.vocab = append(g.vocab, w)
		}
	}
	for i := range topics {
		g.topics = append(g.topics, g.vocab[i*wordsPerTopic:(i+1)*wordsPerTopic])
	}
	return g
}

// word is a made-up word that embedtest's stemmer leaves alone.
func (g *topicRegistry) word() string {
	const cons, vows = "bdfgklmnprtvz", "aiou"
	var b strings.Builder
	for range 3 {
		b.WriteByte(cons[g.rng.IntN(len(cons))])
		b.WriteByte(vows[g.rng.IntN(len(vows))])
	}
	return b.String()
}

// phrase is n words: most from topic, the rest from anywhere.
func (g *topicRegistry) phrase(topic []string, n int) string {
	ws := make([]string, n)
	for i := range ws {
		if i < n*2/3 {
			ws[i] = topic[g.rng.IntN(len(topic))]
		} else {
			ws[i] = g.vocab[g.rng.IntN(len(g.vocab))]
		}
	}
	return strings.Join(ws, " ")
}

func (g *topicRegistry) server(path string, topic []string, tools int) *registry.Server {
	s := &registry.Server{ServerName: strings.TrimPrefix(path, "/"), Path: path, Enabled: true}
	for j := range tools {
		d := g.phrase(topic, 6)
		s.ToolList = append(s.ToolList, registry.Tool{Name: fmt.Sprintf("t%d", j), ParsedDescription: registry.ParsedDescription{Main: &d}})
	}
	return s
}

// exactNearest is nearest with the approximate index set aside.
func exactNearest(h *Hybrid, qv []float32, tags []string, allow func(string, string) bool, n int) []Hit {
	h.mu.Lock()
	ix := h.ivf
	h.ivf = nil
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.ivf = ix
		h.mu.Unlock()
	}()
	return h.nearest(qv, tags, allow, n)
}

func hitKeys(hits []Hit) []string {
	out := make([]string, len(hits))
	for i, x := range hits {
		out[i] = x.ServerKey + ":" + x.Tool.Name
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *Hybrid) indexGen() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.ivf == nil {
		return 0
	}
	return h.ivf.gen
}

// indexedHybrid is a Hybrid over 80 servers of 25 tools (2,000 vectors,
// past IndexFrom), its index built, even servers tagged "Even", server 7
// "rare".
func indexedHybrid(t *testing.T, g *topicRegistry, opts HybridOptions) (*Hybrid, []*registry.Server) {
	t.Helper()
	var list []*registry.Server
	for i := range 80 {
		list = append(list, g.server(fmt.Sprintf("/s%02d", i), g.topics[i%len(g.topics)], 25))
	}
	for i := 0; i < len(list); i += 2 {
		list[i].Tags = []string{"Even"}
	}
	list[7].Tags = []string{"rare"}
	x, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	opts.IndexFrom = 300
	h, err := NewHybrid(x, wordsModel{dim: 128}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Rebuild(list); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitEmbedded(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the vector index", func() bool { return h.Stats().Indexed == 2000 })
	return h, list
}

// TestHybridIndexExact: by default the index only lays the vectors out back
// to back, in one list, and the ranking is the one of the scan through
// every server's tools, order included, on one core or on all.
func TestHybridIndexExact(t *testing.T) {
	g := newTopicRegistry(7, 40, 12)
	h, _ := indexedHybrid(t, g, HybridOptions{})
	if k := len(h.ivf.lists); k != 1 {
		t.Fatalf("%d lists, want 1", k)
	}
	for _, chunk := range []int{parallelChunk, 256} { // 256: the list is scanned on every core
		defer func(c int) { parallelChunk = c }(parallelChunk)
		parallelChunk = chunk
		for q := range 50 {
			qv := wordsModel{dim: 128}.vector(g.phrase(g.topics[q%len(g.topics)], 3))
			tags := []string{"even"}[:q%2] // every other query filtered
			want, got := hitKeys(exactNearest(h, qv, tags, nil, 10)), hitKeys(h.nearest(qv, tags, nil, 10))
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("chunk %d, query %d: index ranks %v, the scan of every server %v", chunk, q, got, want)
			}
		}
	}
}

// TestHybridApproximateIndex: with ApproxProbe below 1 the vector ranking
// probes an inverted file. It must find most of what the exact scan finds,
// find tools embedded after its build, never return tools of removed
// servers, keep filtered queries full, and be rebuilt once enough changed.
func TestHybridApproximateIndex(t *testing.T) {
	const servers, toolsEach = 80, 25 // 2,000 tools: 22 lists, 8 probed
	g := newTopicRegistry(7, 40, 12)
	h, list := indexedHybrid(t, g, HybridOptions{ApproxProbe: 0.1})
	ctx := context.Background()
	if k := len(h.ivf.lists); k != 22 {
		t.Errorf("%d lists for %d vectors, want 22 (√n/2)", k, servers*toolsEach)
	}
	embed := wordsModel{dim: 128}.vector

	t.Run("recall against the exact scan", func(t *testing.T) {
		const queries, n = 100, 10
		found, differ := 0, 0
		for q := range queries {
			qv := embed(g.phrase(g.topics[q%len(g.topics)], 3))
			want, got := hitKeys(exactNearest(h, qv, nil, nil, n)), hitKeys(h.nearest(qv, nil, nil, n))
			if len(got) != n {
				t.Fatalf("query %d: %d hits, want %d", q, len(got), n)
			}
			set := map[string]bool{}
			for _, k := range got {
				set[k] = true
			}
			for _, k := range want {
				if set[k] {
					found++
				}
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				differ++
			}
		}
		// These made-up vectors cluster loosely (each text sums six random
		// word vectors), so the probed 8 of 22 lists hold about 85% of the
		// exact top 10; lists built or searched wrongly hold far fewer.
		recall := float64(found) / float64(queries*n)
		t.Logf("recall@%d of the approximate index: %.3f; %d of %d queries ranked differently", n, recall, differ, queries)
		if recall < 0.8 {
			t.Errorf("recall@%d %.3f, want at least 0.8", n, recall)
		}
	})

	t.Run("filters still fill the ranking", func(t *testing.T) {
		qv := embed(g.phrase(g.topics[0], 3)) // not server 7's topic
		only7 := func(path string) bool { return path == "/s07" }
		even := func(path string) bool {
			var n int
			_, err := fmt.Sscanf(path, "/s%d", &n)
			return err == nil && n%2 == 0
		}
		for _, tc := range []struct {
			name  string
			tags  []string
			allow func(string, string) bool
			want  func(path string) bool
		}{
			{"tag of one server", []string{"rare"}, nil, only7},
			{"allow one server", nil, func(path, _ string) bool { return path == "/s07" }, only7},
			{"tag of half the servers", []string{" even "}, nil, even},
		} {
			hits := h.nearest(qv, tc.tags, tc.allow, 10)
			if len(hits) != 10 {
				t.Fatalf("%s: %d hits, want 10", tc.name, len(hits))
			}
			for _, x := range hits {
				if !tc.want(x.ServerPath) {
					t.Fatalf("%s: hit %s:%s", tc.name, x.ServerPath, x.Tool.Name)
				}
			}
		}
	})

	gen := h.indexGen()
	t.Run("a server added after the build", func(t *testing.T) {
		fresh := newTopicRegistry(99, 1, 12) // words no other server uses
		s := fresh.server("/late", fresh.topics[0], 3)
		h.Apply(registry.Event{Kind: registry.EventPut, Key: "late", Server: s})
		if err := h.WaitEmbedded(ctx); err != nil {
			t.Fatal(err)
		}
		qv := embed(*s.ToolList[1].ParsedDescription.Main)
		hits := h.nearest(qv, nil, nil, 5)
		if len(hits) == 0 || hits[0].ServerPath != "/late" || hits[0].Tool.Name != "t1" {
			t.Errorf("hits %v, want /late:t1 first", hitKeys(hits))
		}
		if h.indexGen() != gen {
			t.Errorf("one new server rebuilt the index")
		}
	})

	t.Run("removed servers are never found", func(t *testing.T) {
		// Ten servers of 2,000 tools' 25 each: 250 dropped vectors, more
		// than a tenth of the index, so it is rebuilt too.
		for i := 10; i < 20; i++ {
			h.Apply(registry.Event{Kind: registry.EventRemoved, Key: fmt.Sprintf("s%02d", i)})
		}
		for q := 10; q < 20; q++ {
			qv := embed(*list[q].ToolList[0].ParsedDescription.Main)
			for _, x := range h.nearest(qv, nil, nil, 20) {
				if x.ServerPath == list[q].Path {
					t.Fatalf("removed server %s found", x.ServerPath)
				}
			}
		}
		waitFor(t, "the index's rebuild", func() bool { return h.indexGen() > gen })
		// The rebuild may start before the last removals: it holds the
		// 2,003 vectors less at least the first 200 dropped.
		if got := h.Stats().Indexed; got > servers*toolsEach+3-200 {
			t.Errorf("rebuilt index holds %d vectors, want at most %d", got, servers*toolsEach+3-200)
		}
	})
}

// TestFoldTag: two tags share a key exactly when strings.EqualFold says the
// text index would match them.
func TestFoldTag(t *testing.T) {
	tags := []string{"GitLab", "gitlab", " gitlab ", "GITLAB", "git lab", "σ", "ς", "Σ", "K", "k", "\u212a", "ß", "SS", "straße", "STRASSE", "\xff", "\xfe", ""}
	for _, a := range tags {
		for _, b := range tags {
			want := strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
			if got := foldTag(a) == foldTag(b); got != want {
				t.Errorf("foldTag(%q) == foldTag(%q) is %v; EqualFold says %v", a, b, got, want)
			}
		}
	}
}
