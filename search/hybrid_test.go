package search_test

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/registry/sqlite"
	"github.com/mcpgw/mcpgw/search"
	"github.com/mcpgw/mcpgw/search/embedtest"
	"github.com/mcpgw/mcpgw/search/searchbench"
)

// concepts is what the fake model "knows": two needs from the labeled query
// set that the text ranking misses, worded unlike the tools' descriptions.
var concepts = map[string]string{
	"money back": "refund", "refund": "refund",
	"replica": "scale", "scale": "scale",
}

// syncBuffer is a log sink safe for the embedding worker's writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type hybridEnv struct {
	srv  *embedtest.Server
	text *search.Index
	h    *search.Hybrid
	log  *syncBuffer
}

// newHybrid returns a hybrid finder over the catalog, embedded by a fake
// endpoint, with cache (nil: none).
func newHybrid(t *testing.T, srv *embedtest.Server, cache search.EmbeddingCache, opts search.HybridOptions) *hybridEnv {
	t.Helper()
	if srv == nil {
		srv = embedtest.New(t, embedtest.Options{Concepts: concepts})
	}
	x, err := search.New(search.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	c, err := search.NewEmbeddingsClient(search.EmbeddingsOptions{URL: srv.URL, Model: "fake-bow", Batch: 32})
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	opts.Cache, opts.Log = cache, zerolog.New(log).Level(zerolog.InfoLevel)
	h, err := search.NewHybrid(x, c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return &hybridEnv{srv: srv, text: x, h: h, log: log}
}

func loadCatalog(t *testing.T) []*registry.Server {
	t.Helper()
	base, err := searchbench.LoadCatalog("../testdata/catalog")
	if err != nil {
		t.Fatal(err)
	}
	return base
}

// someServers returns the catalog's servers at the given path keys: tests
// that need no whole catalog run faster (under -race above all).
func someServers(t *testing.T, keys ...string) []*registry.Server {
	t.Helper()
	var out []*registry.Server
	for _, s := range loadCatalog(t) {
		for _, k := range keys {
			if registry.PathKey(s.Path) == k {
				out = append(out, s)
			}
		}
	}
	if len(out) != len(keys) {
		t.Fatalf("catalog servers %v: found %d", keys, len(out))
	}
	return out
}

func (e *hybridEnv) rebuild(t *testing.T, servers []*registry.Server) {
	t.Helper()
	if err := e.h.Rebuild(servers); err != nil {
		t.Fatal(err)
	}
	e.waitEmbedded(t)
}

func (e *hybridEnv) waitEmbedded(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.h.WaitEmbedded(ctx); err != nil {
		t.Fatal(err)
	}
}

func hitIDs(hits []search.Hit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.ServerKey + ":" + h.Tool.Name
	}
	return out
}

func rankOf(hits []search.Hit, id string) int {
	for i, h := range hitIDs(hits) {
		if h == id {
			return i + 1
		}
	}
	return 0
}

// TestHybridFindsWhatTextMisses checks the point of the hybrid: needs from
// the labeled query set that the text ranking alone does not answer in its
// top 10 are answered in the top 5 once a model that knows the concept
// ranks the tool first.
func TestHybridFindsWhatTextMisses(t *testing.T) {
	e := newHybrid(t, nil, nil, search.HybridOptions{})
	e.rebuild(t, loadCatalog(t))
	ctx := context.Background()
	for _, tt := range []struct{ query, want string }{
		{"give a customer their money back", "stripe:create_refund"},
		{"increase the number of replicas", "kubernetes:kubectl_scale"},
	} {
		t.Run(tt.query, func(t *testing.T) {
			text, err := e.text.Search(ctx, search.Query{Text: tt.query, Top: 10})
			if err != nil {
				t.Fatal(err)
			}
			if r := rankOf(text, tt.want); r != 0 {
				t.Fatalf("the text ranking alone has %s at rank %d; the test needs a query it misses", tt.want, r)
			}
			hits, err := e.h.Search(ctx, search.Query{Text: tt.query, Top: 5})
			if err != nil {
				t.Fatal(err)
			}
			if r := rankOf(hits, tt.want); r == 0 {
				t.Fatalf("hybrid top 5 = %v, want %s among them", hitIDs(hits), tt.want)
			}
			for i, h := range hits {
				if h.Score <= 0 || h.Score > 1 || i > 0 && h.Score > hits[i-1].Score {
					t.Fatalf("scores must fall in 0..1, best first: %v at %d", h.Score, i)
				}
			}
		})
	}
	// A query both rankings agree on keeps its answer first, scored 1.
	hits, err := e.h.Search(ctx, search.Query{Text: "refund a payment", Top: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) == 0 || hitIDs(hits)[0] != "stripe:create_refund" || hits[0].Score != 1 {
		t.Fatalf("refund a payment: %v (first score %v), want stripe:create_refund first, scored 1", hitIDs(hits), hits[0].Score)
	}
}

// TestHybridCache checks that vectors are kept in the store: a second start
// on the same database embeds no tool text again, and a changed tool is the
// only text embedded after it.
func TestHybridCache(t *testing.T) {
	ctx := context.Background()
	store, catalog, srv := cacheFixture(t)

	first := newHybrid(t, srv, store, search.HybridOptions{})
	first.rebuild(t, catalog)
	texts := srv.Texts()
	if texts == 0 || first.h.Stats().Embedded != texts || first.h.Stats().Vectors != texts {
		t.Fatalf("first start: endpoint embedded %d texts, stats %+v; want every tool text once", texts, first.h.Stats())
	}
	first.h.Close()

	requests := srv.Requests()
	second := newHybrid(t, srv, store, search.HybridOptions{})
	second.rebuild(t, catalog)
	if srv.Requests() != requests || second.h.Stats().Embedded != 0 || second.h.Stats().Vectors != texts {
		t.Fatalf("second start: %d new requests, stats %+v; want none, %d vectors from the cache",
			srv.Requests()-requests, second.h.Stats(), texts)
	}
	hits, err := second.h.Search(ctx, search.Query{Text: "give a customer their money back", Top: 5})
	if err != nil || rankOf(hits, "stripe:create_refund") == 0 {
		t.Fatalf("search with cached vectors: %v, %v", hitIDs(hits), err)
	}

	// One tool's description changes: that text alone is embedded.
	s := catalog[0].Clone()
	d := "A new description of the first tool"
	s.ToolList[0].ParsedDescription.Main = &d
	before := srv.Texts()
	second.h.Apply(registry.Event{Kind: registry.EventPut, Key: registry.PathKey(s.Path), Server: s})
	second.waitEmbedded(t)
	if n := srv.Texts() - before; n != 1 {
		t.Fatalf("after changing one tool: %d texts embedded, want 1", n)
	}
}

// cacheFixture is a SQLite store as the embedding cache, three catalog
// servers and a fake endpoint.
func cacheFixture(t *testing.T) (*sqlite.Store, []*registry.Server, *embedtest.Server) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "mcpgw.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store, someServers(t, "customer-support-assistant", "stripe", "time"), embedtest.New(t, embedtest.Options{Concepts: concepts})
}

// TestHybridCachePrunes checks that the cache drops the vectors of texts no
// tool has any more, once the registry is listed and embedded, and keeps
// the rest: a later start embeds only what was dropped.
func TestHybridCachePrunes(t *testing.T) {
	store, catalog, srv := cacheFixture(t)

	first := newHybrid(t, srv, store, search.HybridOptions{PruneEvery: -1})
	first.rebuild(t, catalog)
	all := srv.Texts()
	first.h.Close()

	// Restarted with one server fewer, and a grace period that spares
	// nothing: the vectors of the missing server's tools go.
	second := newHybrid(t, srv, store, search.HybridOptions{PruneAfter: time.Nanosecond})
	second.rebuild(t, catalog[:2])
	kept := second.h.Stats().Vectors
	deadline := time.Now().Add(5 * time.Second)
	for second.h.Stats().Pruned == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got, want := second.h.Stats().Pruned, int64(all-kept); got != want {
		t.Fatalf("pruned %d cached vectors, want %d (%d texts, %d in use)", got, want, all, kept)
	}
	if !strings.Contains(second.log.String(), "dropped cached embeddings") {
		t.Errorf("no log line for the pruning: %s", second.log.String())
	}
	second.h.Close()

	// Everything back: only the dropped texts are embedded again.
	before := srv.Texts()
	third := newHybrid(t, srv, store, search.HybridOptions{PruneEvery: -1})
	third.rebuild(t, catalog)
	if n := srv.Texts() - before; n != all-kept {
		t.Fatalf("third start embedded %d texts, want the %d pruned ones", n, all-kept)
	}
}

// TestHybridQueryFallback checks that the finder keeps answering, with the
// text ranking's own answer, when the endpoint fails or is too slow at
// query time, and says so in the log.
func TestHybridQueryFallback(t *testing.T) {
	e := newHybrid(t, nil, nil, search.HybridOptions{QueryTimeout: 200 * time.Millisecond})
	e.rebuild(t, loadCatalog(t))
	ctx := context.Background()
	tests := []struct {
		name    string
		query   string
		breakIt func()
	}{
		{"500", "check the warranty status of a product", func() { e.srv.Fail(http.StatusInternalServerError) }},
		{"timeout", "convert time between timezones", func() { e.srv.Fail(0); e.srv.Delay(2 * time.Second) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.breakIt()
			q := search.Query{Text: tt.query, Top: 5}
			want, err := e.text.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			got, err := e.h.Search(ctx, q)
			if err != nil {
				t.Fatalf("search while the endpoint fails: %v", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("the fallback took %s; the query timeout is 200ms", d)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("fallback = %v, want the text ranking %v", hitIDs(got), hitIDs(want))
			}
			if !strings.Contains(e.log.String(), "answering with the text ranking alone") {
				t.Fatalf("no warning logged: %s", e.log.String())
			}
		})
	}
}

// TestHybridIndexFailureRetries checks that registration does not wait for
// a failing endpoint, that tools not yet embedded are found by text, and
// that embedding is retried until it succeeds.
func TestHybridIndexFailureRetries(t *testing.T) {
	srv := embedtest.New(t, embedtest.Options{Concepts: concepts})
	srv.Fail(http.StatusServiceUnavailable)
	e := newHybrid(t, srv, nil, search.HybridOptions{RetryEvery: 50 * time.Millisecond})
	ctx := context.Background()
	for _, s := range loadCatalog(t) {
		e.h.Apply(registry.Event{Kind: registry.EventPut, Key: registry.PathKey(s.Path), Server: s})
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.Requests() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if srv.Requests() < 2 || e.h.Stats().Vectors != 0 || e.h.Stats().Pending == 0 {
		t.Fatalf("%d requests, stats %+v; want retries and every text pending", srv.Requests(), e.h.Stats())
	}
	// The failing endpoint fails queries too: the text ranking answers.
	hits, err := e.h.Search(ctx, search.Query{Text: "check the warranty status", Top: 3})
	if err != nil || len(hits) == 0 || hits[0].Tool.Name != "LambdaUsingSDK___check_warranty_status" {
		t.Fatalf("search while nothing is embedded: %v, %v", hitIDs(hits), err)
	}
	if n := strings.Count(e.log.String(), "embedding tool texts failed"); n != 1 {
		t.Errorf("the indexing failure was logged as a warning %d times, want once (then at debug level)", n)
	}

	srv.Fail(0)
	e.waitEmbedded(t)
	// The worker logs the recovery after installing the vectors, so the
	// line may trail the wait by a moment on a busy machine.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(e.log.String(), "embedding tool texts works again"); {
		if time.Now().After(deadline) {
			t.Fatalf("recovery not logged")
		}
		time.Sleep(5 * time.Millisecond)
	}
	hits, err = e.h.Search(ctx, search.Query{Text: "give a customer their money back", Top: 5})
	if err != nil || rankOf(hits, "stripe:create_refund") == 0 {
		t.Fatalf("after recovery: %v, %v; want stripe:create_refund in the top 5", hitIDs(hits), err)
	}
}

// TestHybridApplyDoesNotWait checks that a registration never waits for
// the embeddings endpoint, however slow it is.
func TestHybridApplyDoesNotWait(t *testing.T) {
	srv := embedtest.New(t, embedtest.Options{})
	srv.Delay(time.Minute) // released when the hybrid closes
	e := newHybrid(t, srv, nil, search.HybridOptions{})
	catalog := loadCatalog(t)
	e.h.Apply(registry.Event{Kind: registry.EventPut, Key: registry.PathKey(catalog[0].Path), Server: catalog[0]})
	for srv.Requests() == 0 {
		time.Sleep(5 * time.Millisecond) // the worker is now waiting for the endpoint
	}
	// Text indexing alone takes milliseconds (more under -race); a
	// registration that waited for the endpoint would take a minute.
	done := make(chan struct{})
	go func() {
		e.h.Apply(registry.Event{Kind: registry.EventPut, Key: registry.PathKey(catalog[1].Path), Server: catalog[1]})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a registration waited for the embeddings endpoint")
	}
	if st := e.h.Stats(); st.Pending == 0 {
		t.Fatalf("stats %+v: the tools should wait for their vectors", st)
	}
}

// TestHybridFilters checks that the fused answer honors tags, Allow and
// MaxServers exactly as the text index does, vector-only hits included,
// and that a tags-only query needs no embedding.
func TestHybridFilters(t *testing.T) {
	e := newHybrid(t, nil, nil, search.HybridOptions{})
	catalog := loadCatalog(t)
	e.rebuild(t, catalog)
	ctx := context.Background()
	tags := map[string][]string{}
	for _, s := range catalog {
		tags[registry.PathKey(s.Path)] = s.Tags
	}
	query := "give a customer their money back"

	t.Run("tags", func(t *testing.T) {
		hits, err := e.h.Search(ctx, search.Query{Text: query, Tags: []string{"PAYMENTS"}, Top: 10})
		if err != nil || len(hits) == 0 {
			t.Fatalf("%v, %v", hitIDs(hits), err)
		}
		for _, h := range hits {
			found := false
			for _, tg := range tags[h.ServerKey] {
				found = found || strings.EqualFold(tg, "payments")
			}
			if !found {
				t.Fatalf("%s:%s does not carry the tag payments", h.ServerKey, h.Tool.Name)
			}
		}
		if rankOf(hits, "stripe:create_refund") == 0 {
			t.Errorf("among payment tools, %v; want stripe:create_refund, found by the vectors alone", hitIDs(hits))
		}
	})
	t.Run("allow", func(t *testing.T) {
		var mu sync.Mutex
		asked := 0
		allow := func(path, tool string) bool {
			mu.Lock()
			asked++
			mu.Unlock()
			return tool != "create_refund" && !strings.Contains(path, "customer-support")
		}
		hits, err := e.h.Search(ctx, search.Query{Text: query, Top: 10, Allow: allow})
		if err != nil || len(hits) != 10 {
			t.Fatalf("%v, %v; want 10 hits", hitIDs(hits), err)
		}
		for _, h := range hits {
			if !allow(h.ServerPath, h.Tool.Name) {
				t.Fatalf("%s:%s was not allowed", h.ServerKey, h.Tool.Name)
			}
		}
		if asked > 400 {
			t.Errorf("Allow asked %d times for a catalog of 294 tools; it should be asked only of candidates", asked)
		}
	})
	t.Run("max servers", func(t *testing.T) {
		for _, n := range []int{1, 2} {
			hits, err := e.h.Search(ctx, search.Query{Text: query, Top: 10, MaxServers: n})
			if err != nil || len(hits) == 0 {
				t.Fatalf("%v, %v", hitIDs(hits), err)
			}
			servers := map[string]bool{}
			for _, h := range hits {
				servers[h.ServerKey] = true
			}
			if len(servers) > n {
				t.Fatalf("MaxServers %d: %d servers in %v", n, len(servers), hitIDs(hits))
			}
		}
	})
	t.Run("tags only", func(t *testing.T) {
		before := e.srv.Requests()
		q := search.Query{Tags: []string{"payments"}, Top: 50}
		got, err := e.h.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := e.text.Search(ctx, q)
		if !reflect.DeepEqual(got, want) || len(got) == 0 {
			t.Fatalf("tags only: %v, want the text index's list %v", hitIDs(got), hitIDs(want))
		}
		if e.srv.Requests() != before {
			t.Fatalf("a tags-only query called the endpoint")
		}
	})
	t.Run("empty", func(t *testing.T) {
		if _, err := e.h.Search(ctx, search.Query{Text: "  "}); err == nil {
			t.Fatal("an empty query was answered")
		}
	})
}

// TestHybridFollowsRegistry checks that removed and disabled servers leave
// both rankings at once, and come back when enabled.
func TestHybridFollowsRegistry(t *testing.T) {
	e := newHybrid(t, nil, nil, search.HybridOptions{})
	catalog := loadCatalog(t)
	e.rebuild(t, catalog)
	ctx := context.Background()
	var stripe *registry.Server
	for _, s := range catalog {
		if registry.PathKey(s.Path) == "stripe" {
			stripe = s.Clone()
		}
	}
	find := func() []search.Hit {
		hits, err := e.h.Search(ctx, search.Query{Text: "give a customer their money back", Top: 50})
		if err != nil {
			t.Fatal(err)
		}
		return hits
	}
	noStripe := func(when string) {
		for _, h := range find() {
			if h.ServerKey == "stripe" {
				t.Fatalf("%s: %s:%s still found", when, h.ServerKey, h.Tool.Name)
			}
		}
	}
	stripe.Enabled = false
	e.h.Apply(registry.Event{Kind: registry.EventPut, Key: "stripe", Server: stripe})
	noStripe("disabled")
	stripe.Enabled = true
	e.h.Apply(registry.Event{Kind: registry.EventPut, Key: "stripe", Server: stripe})
	e.waitEmbedded(t)
	if rankOf(find(), "stripe:create_refund") == 0 {
		t.Fatal("enabled again: stripe:create_refund not found")
	}
	e.h.Apply(registry.Event{Kind: registry.EventRemoved, Key: "stripe"})
	noStripe("removed")
	if st := e.h.Stats(); st.Pending != 0 || st.Vectors >= 294 {
		t.Errorf("after removing stripe: %+v; its vectors should be dropped", st)
	}
}

// TestHybridConcurrent runs searches while servers change (for -race).
func TestHybridConcurrent(t *testing.T) {
	e := newHybrid(t, nil, nil, search.HybridOptions{})
	catalog := someServers(t, "filesystem", "time", "stripe", "memory")
	e.rebuild(t, catalog)
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.h.Search(ctx, search.Query{Text: "list the files in a directory", Top: 5}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		s := catalog[i%len(catalog)].Clone()
		d := "changed " + strings.Repeat("x", i)
		s.Description = d
		s.ToolList[0].ParsedDescription.Main = &d
		e.h.Apply(registry.Event{Kind: registry.EventPut, Key: registry.PathKey(s.Path), Server: s})
	}
	close(stop)
	wg.Wait()
	e.waitEmbedded(t)
}

// shortEmbedder answers one vector too few, as a broken endpoint might.
type shortEmbedder struct{}

func (shortEmbedder) Model() string { return "short" }
func (shortEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	return make([][]float32, len(texts)-1), nil
}

// TestHybridShortAnswer checks that an embedder answering too few vectors
// is a failure (logged, retried) and never a crash or a wrong vector.
func TestHybridShortAnswer(t *testing.T) {
	x, err := search.New(search.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	log := &syncBuffer{}
	h, err := search.NewHybrid(x, shortEmbedder{}, search.HybridOptions{Log: zerolog.New(log), RetryEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Rebuild(loadCatalog(t)[:3]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(log.String(), "vectors for") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := h.Stats(); st.Vectors != 0 || st.Pending == 0 || !strings.Contains(log.String(), "embedding tool texts failed") {
		t.Fatalf("stats %+v, log %s; want nothing installed and the failure logged", st, log.String())
	}
}
