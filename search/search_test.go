package search

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/blevesearch/bleve/v2"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/registry/sqlite"
)

func str(s string) *string { return &s }

// srv builds an enabled server with tools named in tools; each tool's
// description is "<desc> <tool name words>".
func srv(path string, tags []string, desc string, tools ...string) *registry.Server {
	s := &registry.Server{ServerName: strings.Trim(path, "/"), Path: path, Description: desc, Tags: tags,
		Enabled: true, SupportedTransports: []string{registry.TransportStreamableHTTP}, ProxyPassURL: "http://127.0.0.1:1/mcp"}
	for _, name := range tools {
		_, w := ToolWords(name)
		s.ToolList = append(s.ToolList, registry.Tool{Name: name,
			ParsedDescription: registry.ParsedDescription{Main: str(strings.Join(w, " "))},
			Schema:            json.RawMessage(`{"type":"object","properties":{"id":{"type":"string","description":"identifier"}}}`)})
	}
	s.NumTools = len(s.ToolList)
	return s
}

func newIndex(t *testing.T, servers ...*registry.Server) *Index {
	t.Helper()
	x, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	if err := x.Rebuild(servers); err != nil {
		t.Fatal(err)
	}
	return x
}

func ids(hits []Hit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.ServerKey + ":" + h.Tool.Name
	}
	return out
}

func TestTagFilter(t *testing.T) {
	x := newIndex(t,
		srv("/a", []string{"database", "sql"}, "relational store", "run_query", "list_tables"),
		srv("/b", []string{"database", "nosql", "Cache"}, "document store", "find_documents", "run_query"),
		srv("/c", []string{"chat"}, "messaging", "post_message"),
	)
	ctx := context.Background()
	tests := []struct {
		name string
		q    Query
		want []string // in order; nil means the same set in any order
		set  []string
	}{
		{name: "one tag lists its servers' tools in path order", q: Query{Tags: []string{"database"}, Top: 50},
			want: []string{"a:run_query", "a:list_tables", "b:find_documents", "b:run_query"}},
		{name: "every tag is required", q: Query{Tags: []string{"database", "nosql"}, Top: 50},
			want: []string{"b:find_documents", "b:run_query"}},
		{name: "tags match case-insensitively both ways", q: Query{Tags: []string{"DATABASE", "cache"}, Top: 50},
			want: []string{"b:find_documents", "b:run_query"}},
		{name: "an unknown tag matches nothing", q: Query{Tags: []string{"database", "graph"}, Top: 50}, want: []string{}},
		{name: "text and tags", q: Query{Text: "run a query", Tags: []string{"sql"}, Top: 50}, set: []string{"a:run_query"}},
		{name: "text ranks only within the tags", q: Query{Text: "run query", Tags: []string{" NoSQL "}, Top: 1}, want: []string{"b:run_query"}},
		{name: "top cuts a tag listing", q: Query{Tags: []string{"database"}, Top: 1}, want: []string{"a:run_query"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hits, err := x.Search(ctx, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			got := ids(hits)
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if tt.set != nil {
				sort.Strings(got)
				if !reflect.DeepEqual(got, tt.set) {
					t.Errorf("got %q, want %q", got, tt.set)
				}
			}
			for _, h := range hits {
				if h.Score < 0 || h.Score > 1 {
					t.Errorf("%s: score %v outside 0..1", h.Tool.Name, h.Score)
				}
				if tt.q.Text == "" && h.Score != 1 {
					t.Errorf("%s: a tag-only hit scores %v, want 1", h.Tool.Name, h.Score)
				}
			}
		})
	}
}

func TestSearchInput(t *testing.T) {
	x := newIndex(t, srv("/a", nil, "", "get_weather"))
	_, err := x.Search(context.Background(), Query{Text: "   "})
	if !errors.Is(err, ErrEmptyQuery) || !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("empty query: err = %v, want ErrEmptyQuery (an ErrInvalid)", err)
	}
	hits, err := x.Search(context.Background(), Query{Text: "the of and"}) // stop words only
	if err != nil || len(hits) != 0 {
		t.Errorf("stop words only: %v, %v; want no hits and no error", ids(hits), err)
	}
	hits, err = x.Search(context.Background(), Query{Text: "weather", Top: 1000})
	if err != nil || len(hits) != 1 {
		t.Errorf("top above the maximum: %v, %v", ids(hits), err)
	}
}

func TestAllowAndMaxServers(t *testing.T) {
	x := newIndex(t,
		srv("/a", nil, "files", "read_file", "write_file", "delete_file"),
		srv("/b", nil, "files", "read_file", "write_file"),
		srv("/c", nil, "files", "read_file"),
	)
	ctx := context.Background()
	// The caller may not see /a at all, nor /b's write_file: the top 3 are
	// filled from what remains.
	allow := func(path, tool string) bool { return path != "/a" && !(path == "/b" && tool == "write_file") }
	hits, err := x.Search(ctx, Query{Text: "file", Top: 3, Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	got := ids(hits)
	sort.Strings(got)
	if want := []string{"b:read_file", "c:read_file"}; !reflect.DeepEqual(got, want) {
		t.Errorf("allowed hits %q, want %q", got, want)
	}
	hits, err = x.Search(ctx, Query{Text: "read file", Top: 10, MaxServers: 2})
	if err != nil {
		t.Fatal(err)
	}
	servers := map[string]bool{}
	for _, h := range hits {
		servers[h.ServerKey] = true
	}
	if len(servers) != 2 {
		t.Errorf("MaxServers 2 gave servers %v (%q)", servers, ids(hits))
	}
}

// TestScores checks the similarity contract: in 0..1, best first, 1 for a
// tool whose text holds every query word, less when words are missing.
func TestScores(t *testing.T) {
	x := newIndex(t,
		srv("/a", nil, "weather service", "get_weather_forecast", "get_air_quality"),
		srv("/b", nil, "maps", "get_directions"),
	)
	hits, err := x.Search(context.Background(), Query{Text: "weather forecast", Top: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) == 0 || hits[0].Tool.Name != "get_weather_forecast" || hits[0].Score != 1 {
		t.Fatalf("top hit %v, want get_weather_forecast scoring 1", hits)
	}
	for i := 1; i < len(hits); i++ {
		if hits[i].Score > hits[i-1].Score || hits[i].Score < 0 {
			t.Errorf("scores not falling in 0..1: %v then %v", hits[i-1].Score, hits[i].Score)
		}
	}
	hits, err = x.Search(context.Background(), Query{Text: "weather zzyzx"})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) == 0 {
		t.Fatal("a query half unknown to the index found nothing")
	}
	if hits[0].Score >= 1 || hits[0].Score <= 0 {
		t.Errorf("a query half unknown to the index: %q, top score %v; want between 0 and 1", ids(hits), hits[0].Score)
	}
}

// state is what the index holds: its bleve documents and its entries, which
// must agree with each other, with the vocabulary and with the tool count.
func indexState(t *testing.T, x *Index) []string {
	t.Helper()
	x.mu.RLock()
	defer x.mu.RUnlock()
	req := bleve.NewSearchRequestOptions(bleve.NewMatchAllQuery(), 100000, 0, false)
	res, err := x.bi.Search(req)
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, h := range res.Hits {
		k, tool := splitDocID(h.ID)
		docs = append(docs, k+":"+tool)
	}
	sort.Strings(docs)
	var entries []string
	vocab := map[string]int32{}
	for k, e := range x.servers {
		if !e.srv.Enabled {
			t.Errorf("disabled server %s is indexed", k)
		}
		for i, tool := range e.srv.ToolList {
			if e.tools[tool.Name] != i {
				continue
			}
			entries = append(entries, k+":"+tool.Name)
			for term := range x.fields(e.srv, &e.srv.ToolList[i]).termSet() {
				vocab[term]++
			}
		}
	}
	sort.Strings(entries)
	if !reflect.DeepEqual(docs, entries) && (len(docs) > 0 || len(entries) > 0) {
		t.Errorf("bleve holds %q, entries %q", docs, entries)
	}
	if x.tools != len(entries) {
		t.Errorf("tool count %d, entries %d", x.tools, len(entries))
	}
	if !reflect.DeepEqual(vocab, x.vocab) && (len(vocab) > 0 || len(x.vocab) > 0) {
		t.Errorf("vocabulary drifted: %d terms kept, %d recomputed", len(x.vocab), len(vocab))
	}
	return entries
}

// storeState is what the index should hold: the enabled servers' tools.
func storeState(t *testing.T, reg *registry.Service) []string {
	t.Helper()
	all, err := reg.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, s := range all {
		if !s.Enabled {
			continue
		}
		seen := map[string]bool{}
		for _, tool := range s.ToolList {
			if !seen[tool.Name] {
				seen[tool.Name] = true
				out = append(out, registry.PathKey(s.Path)+":"+tool.Name)
			}
		}
	}
	sort.Strings(out)
	return out
}

func regDoc(path string, tags []string, tools ...string) []byte {
	var tl []map[string]any
	for _, n := range tools {
		tl = append(tl, map[string]any{"name": n, "parsed_description": map[string]any{"main": "does " + n}})
	}
	b, _ := json.Marshal(map[string]any{"server_name": path, "path": path, "proxy_pass_url": "http://127.0.0.1:9/mcp", "tags": tags, "tool_list": tl})
	return b
}

// TestFollowsRegistry drives a registry.Service over a real SQLite store
// through registrations, replacements, toggles, refreshes and removals, and
// checks after every step that the index holds exactly the enabled
// servers' tools, and that Load rebuilds the same state from the store.
func TestFollowsRegistry(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, t.TempDir()+"/mcpgw.db")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg := registry.NewService(store)
	x, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	reg.Subscribe(x.Apply)
	if err := x.Load(ctx, reg.List); err != nil {
		t.Fatal(err)
	}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name string
		do   func()
	}{
		{"register a", func() {
			_, _, err := reg.Register(ctx, regDoc("/a", []string{"x"}, "alpha_one", "alpha_two"), false)
			must(nil, err)
		}},
		{"register b", func() { _, _, err := reg.Register(ctx, regDoc("/b", nil, "beta_one"), false); must(nil, err) }},
		{"replace a with other tools", func() {
			_, _, err := reg.Register(ctx, regDoc("/a", []string{"y"}, "alpha_three"), true)
			must(nil, err)
		}},
		{"disable a", func() { must(reg.SetEnabled(ctx, "/a", false)) }},
		{"refresh a while disabled", func() {
			must(reg.SetTools(ctx, "a", []registry.Tool{{Name: "alpha_four"}, {Name: "alpha_five"}}))
		}},
		{"enable a", func() { must(reg.Toggle(ctx, "/a/")) }},
		{"refresh b", func() { must(reg.SetTools(ctx, "b", []registry.Tool{{Name: "beta_two"}, {Name: "beta_two"}})) }},
		{"remove b", func() { must(nil, reg.Remove(ctx, "b")) }},
		{"remove a", func() { must(nil, reg.Remove(ctx, "/a")) }},
		{"register c", func() { _, _, err := reg.Register(ctx, regDoc("/c", nil, "gamma"), false); must(nil, err) }},
	}
	for _, st := range steps {
		st.do()
		want := storeState(t, reg)
		if got := indexState(t, x); !reflect.DeepEqual(got, want) && (len(got) > 0 || len(want) > 0) {
			t.Fatalf("after %s: index %q, store %q", st.name, got, want)
		}
	}
	// A restart: a new index loaded from the store holds the same.
	y, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer y.Close()
	if err := y.Load(ctx, reg.List); err != nil {
		t.Fatal(err)
	}
	if got, want := indexState(t, y), indexState(t, x); !reflect.DeepEqual(got, want) {
		t.Errorf("reloaded index %q, live index %q", got, want)
	}
	hits, err := x.Search(ctx, Query{Text: "gamma"})
	if err != nil || len(hits) != 1 || hits[0].ServerPath != "/c" {
		t.Errorf("search after the sequence: %v, %v", ids(hits), err)
	}
}

// TestCompaction checks that the periodic whole rebuild, which runs in the
// background, keeps the contents, including changes made while it ran.
func TestCompaction(t *testing.T) {
	x := newIndex(t)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	x.compactHook = func() {
		started <- struct{}{}
		<-release
	}
	for i := 0; i < compactAfter; i++ {
		if err := x.Put(srv(fmt.Sprintf("/s%d", i%7), nil, "", fmt.Sprintf("tool_%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	<-started // the compaction has built its index and waits to install it
	// Changes while it waits must survive the swap.
	if err := x.Put(srv("/late", nil, "", "arrived_late")); err != nil {
		t.Fatal(err)
	}
	if err := x.Remove("/s0"); err != nil {
		t.Fatal(err)
	}
	if err := x.Put(srv("/s1", nil, "", "replaced_tool")); err != nil {
		t.Fatal(err)
	}
	hits, err := x.Search(context.Background(), Query{Text: "arrived late"})
	if err != nil || len(hits) != 1 {
		t.Fatalf("search during compaction: %q, %v", ids(hits), err)
	}
	close(release)
	x.waitCompaction()
	got := indexState(t, x)
	want := []string{"late:arrived_late", "s1:replaced_tool", "s2:tool_58", "s3:tool_59", "s4:tool_60", "s5:tool_61", "s6:tool_62"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after compaction %q, want %q", got, want)
	}
	if x.batches != 0 {
		t.Errorf("%d batches counted since the compaction, want 0", x.batches)
	}
	for _, q := range []string{"arrived late", "replaced", "tool 62"} {
		if hits, err := x.Search(context.Background(), Query{Text: q}); err != nil || len(hits) == 0 {
			t.Errorf("search %q after compaction: %q, %v", q, ids(hits), err)
		}
	}
}

// TestNoHalfAppliedChange replaces a server's tool list back and forth
// while searching: every answer must come from one version, never a mix.
func TestNoHalfAppliedChange(t *testing.T) {
	a := srv("/flip", nil, "", "zebra_alpha_one", "zebra_alpha_two", "zebra_alpha_three")
	b := srv("/flip", nil, "", "zebra_beta_one", "zebra_beta_two", "zebra_beta_three")
	x := newIndex(t, a)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			next := a
			if i%2 == 0 {
				next = b
			}
			if err := x.Put(next); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i := 0; i < 300; i++ {
		hits, err := x.Search(context.Background(), Query{Text: "zebra", Top: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) != 3 {
			t.Fatalf("search %d saw %d tools (%q), want one version's 3", i, len(hits), ids(hits))
		}
		alpha := strings.Contains(hits[0].Tool.Name, "alpha")
		for _, h := range hits {
			if strings.Contains(h.Tool.Name, "alpha") != alpha {
				t.Fatalf("search %d mixed versions: %q", i, ids(hits))
			}
		}
	}
	stop.Store(true)
	wg.Wait()
}

// TestPruningIsExact checks that giving up candidates that cannot reach the
// results (toolQuery.depth) changes no answer: every labeled query, with
// and without its tags, gets the same hits and scores either way, on a
// registry large enough for common clauses to stop proposing documents.
func TestPruningIsExact(t *testing.T) {
	files, err := filepath.Glob("../testdata/catalog/*.json")
	if err != nil || len(files) == 0 {
		t.Fatal("no catalog")
	}
	var servers []*registry.Server
	for copyN := 0; copyN < 8; copyN++ {
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s, _, err := registry.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			s.Enabled = true
			s.Path = fmt.Sprintf("%s-%d", strings.TrimSuffix(s.Path, "/"), copyN)
			if copyN%2 == 1 { // vary the copies a little so scores differ
				s.Description += " copy"
				s.ToolList = s.ToolList[:len(s.ToolList)-len(s.ToolList)/3]
			}
			servers = append(servers, s)
		}
	}
	x := newIndex(t, servers...)
	var doc struct {
		Queries []struct {
			Query string   `json:"query"`
			Tags  []string `json:"tags"`
		} `json:"queries"`
	}
	b, err := os.ReadFile("../testdata/finder/queries.json")
	if err != nil || json.Unmarshal(b, &doc) != nil {
		t.Fatal("queries.json")
	}
	ctx := context.Background()
	for _, q := range doc.Queries {
		for _, tags := range [][]string{nil, q.Tags} {
			for _, top := range []int{1, 5, 50} {
				sq := Query{Text: q.Query, Tags: tags, Top: top}
				x.noPrune = false
				pruned, err := x.Search(ctx, sq)
				if err != nil {
					t.Fatal(err)
				}
				x.noPrune = true
				full, err := x.Search(ctx, sq)
				if err != nil {
					t.Fatal(err)
				}
				if !sameRanking(pruned, full) {
					t.Errorf("%q tags %v top %d:\npruned %s\nfull   %s", q.Query, tags, top, scored(pruned), scored(full))
				}
			}
		}
	}
}

// sameRanking reports whether a and b score alike rank by rank and name
// the same tool wherever a score is not tied with a neighbour's (the order
// within ties, and which of them a cut keeps, may differ).
func sameRanking(a, b []Hit) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i].Score-b[i].Score) > 1e-9 {
			return false
		}
		tied := i > 0 && a[i-1].Score == a[i].Score || i+1 < len(a) && a[i+1].Score == a[i].Score
		if !tied && (a[i].ServerKey != b[i].ServerKey || a[i].Tool.Name != b[i].Tool.Name) {
			return false
		}
	}
	return true
}

func scored(hs []Hit) string {
	var b strings.Builder
	for _, h := range hs {
		fmt.Fprintf(&b, "%s:%s %.3f, ", h.ServerKey, h.Tool.Name, h.Score)
	}
	return b.String()
}
