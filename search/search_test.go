package search

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

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

// indexState returns what the index holds, after checking that its parts
// agree: the doc table with the entries and their spans, the vocabulary and
// every document frequency with the entries' analyzed texts, the live
// postings with the document frequencies, the tag index with the servers'
// tags, and the tool count.
func indexState(t *testing.T, x *Index) []string {
	t.Helper()
	x.mu.RLock()
	defer x.mu.RUnlock()
	var docs []string
	dead := 0
	for d, r := range x.docs {
		if r.e == nil {
			dead++
			continue
		}
		k := r.e.key()
		sp := x.spans[k]
		if x.servers[k] != r.e || uint32(d) < sp.first || uint32(d) >= sp.first+sp.n {
			t.Errorf("doc %d (%s:%s) is not in its server's span %+v", d, k, r.e.srv.ToolList[r.tool].Name, sp)
		}
		docs = append(docs, k+":"+r.e.srv.ToolList[r.tool].Name)
	}
	sort.Strings(docs)
	if dead != x.dead {
		t.Errorf("%d tombstones counted, %d in the doc table", x.dead, dead)
	}
	var entries []string
	vocab := map[string]int32{}
	var df [numFields]map[string]int32
	for fi := range df {
		df[fi] = map[string]int32{}
	}
	tags := map[string]int{}
	for k, e := range x.servers {
		if !e.srv.Enabled {
			t.Errorf("disabled server %s is indexed", k)
		}
		for _, tag := range normalizeTags(e.srv.Tags) {
			tags[tag]++
			if !x.tags[tag][k] {
				t.Errorf("server %s is missing under tag %q", k, tag)
			}
		}
		for i, tool := range e.srv.ToolList {
			if e.tools[tool.Name] != i {
				continue
			}
			entries = append(entries, k+":"+tool.Name)
			f := x.fields(e.srv, &e.srv.ToolList[i])
			for term := range f.termSet() {
				vocab[term]++
			}
			for fi, terms := range f.byField() {
				seen := map[string]bool{}
				for _, term := range terms {
					if !seen[term] {
						seen[term] = true
						df[fi][term]++
					}
				}
			}
		}
	}
	sort.Strings(entries)
	if !reflect.DeepEqual(docs, entries) && (len(docs) > 0 || len(entries) > 0) {
		t.Errorf("doc table holds %q, entries %q", docs, entries)
	}
	if x.tools != len(entries) {
		t.Errorf("tool count %d, entries %d", x.tools, len(entries))
	}
	for tag, m := range x.tags {
		if len(m) != tags[tag] {
			t.Errorf("tag %q lists %d servers, %d carry it", tag, len(m), tags[tag])
		}
	}
	if len(x.terms) != len(vocab) {
		t.Errorf("vocabulary drifted: %d terms kept, %d recomputed", len(x.terms), len(vocab))
	}
	for term, tm := range x.terms {
		if tm.tools != vocab[term] {
			t.Errorf("term %q: in %d tools, recomputed %d", term, tm.tools, vocab[term])
		}
		for fi := range tm.f {
			live := int32(0)
			for _, p := range tm.f[fi].p {
				if x.docs[p.doc].e != nil {
					live++
				}
			}
			if tm.f[fi].df != df[fi][term] || live != df[fi][term] {
				t.Errorf("term %q field %d: df %d, live postings %d, recomputed %d", term, fi, tm.f[fi].df, live, df[fi][term])
			}
		}
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

// TestCompaction checks that the whole rebuild that drops tombstones,
// which runs in the background, keeps the contents, including changes made
// while it ran.
func TestCompaction(t *testing.T) {
	x := newIndex(t)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	x.compactHook = func() {
		started <- struct{}{}
		<-release
	}
	// Each Put replaces one of 7 servers' single tool: a tombstone each.
	want := map[string]string{}
	for i := 0; ; i++ {
		if i > 2*compactAfter+7 {
			t.Fatalf("no compaction after %d replacements", i)
		}
		key, tool := fmt.Sprintf("s%d", i%7), fmt.Sprintf("tool_%d", i)
		if err := x.Put(srv("/"+key, nil, "", tool)); err != nil {
			t.Fatal(err)
		}
		want[key] = tool
		x.mu.RLock()
		compacting := x.compacting
		x.mu.RUnlock()
		if compacting {
			break
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
	want["late"], want["s1"] = "arrived_late", "replaced_tool"
	delete(want, "s0")
	hits, err := x.Search(context.Background(), Query{Text: "arrived late"})
	if err != nil || len(hits) != 1 {
		t.Fatalf("search during compaction: %q, %v", ids(hits), err)
	}
	close(release)
	x.waitCompaction()
	var wantList []string
	for k, tool := range want {
		wantList = append(wantList, k+":"+tool)
	}
	sort.Strings(wantList)
	if got := indexState(t, x); !reflect.DeepEqual(got, wantList) {
		t.Errorf("after compaction %q, want %q", got, wantList)
	}
	// The compacted index holds only the tombstones of the two changes
	// replayed on it that replaced or removed a server it held.
	if x.dead != 2 {
		t.Errorf("%d tombstones after the compaction, want 2", x.dead)
	}
	for _, q := range []string{"arrived late", "replaced", want["s6"]} {
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

// catalogCopies returns n copies of the catalog's servers under their own
// paths, every other copy varied a little so that scores differ.
func catalogCopies(t *testing.T, n int) []*registry.Server {
	t.Helper()
	files, err := filepath.Glob("../testdata/catalog/*.json")
	if err != nil || len(files) == 0 {
		t.Fatal("no catalog")
	}
	var servers []*registry.Server
	for copyN := 0; copyN < n; copyN++ {
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
			if copyN%2 == 1 {
				s.Description += " copy"
				s.ToolList = s.ToolList[:len(s.ToolList)-len(s.ToolList)/3]
			}
			servers = append(servers, s)
		}
	}
	return servers
}

type labeled struct {
	Query string   `json:"query"`
	Tags  []string `json:"tags"`
}

func labeledQueries(t *testing.T) []labeled {
	t.Helper()
	var doc struct {
		Queries []labeled `json:"queries"`
	}
	b, err := os.ReadFile("../testdata/finder/queries.json")
	if err != nil || json.Unmarshal(b, &doc) != nil {
		t.Fatal("queries.json")
	}
	return doc.Queries
}

// refDoc is one live tool as referenceScores reads it.
type refDoc struct {
	id     uint32
	counts [numFields]map[string]int
	lens   [numFields]int
	tags   []string
}

// reference is what referenceScores needs of an index: its live tools
// analyzed again, and document frequencies counted from them.
type reference struct {
	docs []refDoc
	df   [numFields]map[string]int32
}

func newReference(x *Index) *reference {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var docs []refDoc
	var df [numFields]map[string]int32
	for fi := range df {
		df[fi] = map[string]int32{}
	}
	for d, r := range x.docs {
		if r.e == nil {
			continue
		}
		dc := refDoc{id: uint32(d), tags: normalizeTags(r.e.srv.Tags)}
		for fi, ts := range x.fields(r.e.srv, &r.e.srv.ToolList[r.tool]).byField() {
			dc.counts[fi] = map[string]int{}
			dc.lens[fi] = len(ts)
			for _, term := range ts {
				if dc.counts[fi][term] == 0 {
					df[fi][term]++
				}
				dc.counts[fi][term]++
			}
		}
		docs = append(docs, dc)
	}
	return &reference{docs: docs, df: df}
}

// referenceScores scores every live tool of x for text and tags straight
// from the tools' analyzed texts (ref), by the definition rank implements,
// with no posting lists: per query word and field the best alternative's
// tf-idf weight, fields weighted by their boosts, words summed, the sum
// multiplied by the share of words matched.
func referenceScores(x *Index, ref *reference, text string, tags []string) map[uint32]float64 {
	x.mu.RLock()
	terms, _ := x.queryTerms(text)
	// Single-precision sums depend on their order: add the words in the
	// order rank does (rarest first), the words that match nothing last.
	var order []queryTerm
	inPlan := map[int]bool{}
	for _, wp := range x.plan(terms) {
		order = append(order, terms[wp.word])
		inPlan[wp.word] = true
	}
	for i, qt := range terms {
		if !inPlan[i] {
			order = append(order, qt)
		}
	}
	x.mu.RUnlock()
	docs, df := ref.docs, ref.df
	n := float64(len(docs))
	skip := func(ai, fi int) bool { return x.fieldBoost(fi) <= 0 || ai > 0 && fi >= fieldParams }
	var sumSq float64
	for _, qt := range terms {
		for ai, a := range qt.alts {
			for fi := 0; fi < numFields; fi++ {
				if !skip(ai, fi) && df[fi][a.term] > 0 {
					i := idf(n, df[fi][a.term])
					sumSq += i * i
				}
			}
		}
	}
	qn := 1.0
	if sumSq > 0 {
		qn = 1 / math.Sqrt(sumSq)
	}
	out := map[uint32]float64{}
	for _, dc := range docs {
		has := map[string]bool{}
		for _, tag := range dc.tags {
			has[tag] = true
		}
		ok := true
		for _, tag := range tags {
			ok = ok && has[tag]
		}
		if !ok {
			continue
		}
		var total float32 // as rank sums, in single precision
		matched := 0
		for _, qt := range order {
			word := false
			for fi := 0; fi < numFields; fi++ {
				var best float32
				for ai, a := range qt.alts {
					tf := dc.counts[fi][a.term]
					if skip(ai, fi) || tf == 0 {
						continue
					}
					i := idf(n, df[fi][a.term])
					imp := float32(math.Sqrt(float64(tf)) * (1 / math.Sqrt(float64(dc.lens[fi]))))
					best = max(best, float32(x.fieldBoost(fi)*a.boost*i*i*qn)*imp)
				}
				if best > 0 {
					total += best
					word = true
				}
			}
			if word {
				matched++
			}
		}
		if matched > 0 {
			out[dc.id] = float64(total) * float64(matched) / float64(len(terms))
		}
	}
	return out
}

// all returns every tool r scored that its tags allow, unordered.
func (r *ranking) all() []cand {
	var out []cand
	s, inv := r.s, 1/r.nterms
	for w, b := range r.ok {
		for b &= s.hit[w]; b != 0; b &= b - 1 {
			d := w*64 + bits.TrailingZeros64(b)
			out = append(out, cand{score: s.acc[d].score(inv), doc: uint32(d)})
		}
	}
	return out
}

// checkReference compares rank's scores with referenceScores for every
// labeled query, with and without its tags: the same tools, the same
// scores.
func checkReference(t *testing.T, x *Index, qs []labeled) {
	t.Helper()
	ref := newReference(x)
	for _, q := range qs {
		for _, tags := range [][]string{nil, normalizeTags(q.Tags)} {
			want := referenceScores(x, ref, q.Query, tags)
			x.mu.RLock()
			terms, _ := x.queryTerms(q.Query)
			got := map[uint32]float64{}
			if len(terms) > 0 {
				r := x.rank(terms, tags)
				for _, c := range r.all() {
					got[c.doc] = c.score
				}
				x.release(r)
			}
			x.mu.RUnlock()
			bad := 0
			for d, w := range want {
				if g, ok := got[d]; !ok || math.Abs(g-w) > 1e-12*math.Abs(w) {
					bad++
				}
			}
			if bad > 0 || len(got) != len(want) {
				t.Errorf("%q tags %v: %d tools scored, reference %d; %d scores differ", q.Query, tags, len(got), len(want), bad)
			}
		}
	}
}

// TestRankMatchesReference checks the posting lists and term-at-a-time
// scoring against a brute-force scorer, on a registry large enough that
// common words are in hundreds of tools: built whole, then after
// replacements, removals and re-additions have left tombstones, and checks
// that such an index answers every labeled query as one built whole from
// the same servers.
func TestRankMatchesReference(t *testing.T) {
	servers := catalogCopies(t, 8)
	qs := labeledQueries(t)
	x := newIndex(t, servers...)
	checkReference(t, x, qs)

	final := map[string]*registry.Server{}
	for _, s := range servers {
		final[registry.PathKey(s.Path)] = s
	}
	for i, s := range servers {
		key := registry.PathKey(s.Path)
		switch i % 5 {
		case 0: // replaced with fewer tools and another description
			c := s.Clone()
			c.Description = "replaced " + c.Description
			c.ToolList = c.ToolList[:len(c.ToolList)/2]
			if err := x.Put(c); err != nil {
				t.Fatal(err)
			}
			final[key] = c
		case 1: // removed
			if err := x.Remove(s.Path); err != nil {
				t.Fatal(err)
			}
			delete(final, key)
		case 2: // removed and added back
			if err := x.Remove(s.Path); err != nil {
				t.Fatal(err)
			}
			if err := x.Put(s); err != nil {
				t.Fatal(err)
			}
		}
	}
	x.waitCompaction()
	x.mu.RLock()
	dead := x.dead
	x.mu.RUnlock()
	if dead == 0 {
		t.Fatal("no tombstones left to test with (a compaction ran)")
	}
	indexState(t, x)
	checkReference(t, x, qs)

	var rest []*registry.Server
	for _, s := range final {
		rest = append(rest, s)
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].Path < rest[j].Path })
	fresh := newIndex(t, rest...)
	ctx := context.Background()
	for _, q := range qs {
		for _, tags := range [][]string{nil, q.Tags} {
			// Doc ids differ, and so does the order of equal scores: compare
			// the first 40 of 50, so that a tie cut by the end of the list
			// is seen as a tie.
			sq := Query{Text: q.Query, Tags: tags, Top: 50}
			a, err := x.Search(ctx, sq)
			if err != nil {
				t.Fatal(err)
			}
			b, err := fresh.Search(ctx, sq)
			if err != nil {
				t.Fatal(err)
			}
			if !sameRanking(a, b, 40) {
				t.Errorf("%q tags %v:\nupdated %s\nfresh   %s", q.Query, tags, scored(a), scored(b))
			}
		}
	}
}

// sameRanking reports whether a and b score alike rank by rank and name
// the same tool wherever a score is not tied with a neighbour's (the order
// within ties, and which of them a cut keeps, may differ), in their first n.
func sameRanking(a, b []Hit, n int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a[:min(n, len(a))] {
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

// TestPostingsAnswerForAnalysis checks what rerank and normalize read from
// the postings instead of analyzing a hit again: for every tool, how often
// its name holds each term (impact squared times the name's length), and
// which terms it holds in any field, equal its analyzed texts; also after
// replacements have left tombstones.
func TestPostingsAnswerForAnalysis(t *testing.T) {
	servers := catalogCopies(t, 2)
	x := newIndex(t, servers...)
	for i, s := range servers {
		if i%3 == 0 {
			c := s.Clone()
			c.ToolList = c.ToolList[:len(c.ToolList)/2]
			if err := x.Put(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	checked := 0
	for d, r := range x.docs {
		if r.e == nil {
			continue
		}
		doc := uint32(d)
		f := x.fields(r.e.srv, &r.e.srv.ToolList[r.tool])
		if int(x.nameLen[doc]) != len(f.name) {
			t.Fatalf("doc %d: name length %d, analyzed %d", d, x.nameLen[doc], len(f.name))
		}
		counts := map[string]int{}
		for _, n := range f.name {
			counts[n]++
		}
		for n, c := range counts {
			imp := float64(x.terms[n].impact(fieldName, doc))
			if got := int(math.Round(imp * imp * float64(len(f.name)))); got != c {
				t.Errorf("doc %d name term %q: %d from the postings, %d analyzed", d, n, got, c)
			}
		}
		have := f.termSet()
		for term, tm := range x.terms {
			if tm.holds(doc) != have[term] {
				t.Fatalf("doc %d: holds(%q) = %v, analyzed %v", d, term, tm.holds(doc), have[term])
			}
		}
		checked++
	}
	if checked < 300 {
		t.Fatalf("only %d tools checked", checked)
	}
}

// TestConcurrentWriters has several goroutines replace and remove the same
// servers at once, so that changes analyzed before taking the lock find
// another version in place, and checks that the index ends consistent and
// holds what the last change of each server said.
func TestConcurrentWriters(t *testing.T) {
	x := newIndex(t)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				path := fmt.Sprintf("/s%d", i%3)
				if (i+w)%7 == 0 {
					if err := x.Remove(path); err != nil {
						t.Error(err)
					}
					continue
				}
				if err := x.Put(srv(path, []string{fmt.Sprint("t", w)}, "desc", fmt.Sprintf("tool_%d_%d", w, i), "shared_tool")); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	x.waitCompaction()
	got := indexState(t, x)
	x.mu.RLock()
	var want []string
	for k, e := range x.servers {
		for _, tool := range e.srv.ToolList {
			want = append(want, k+":"+tool.Name)
		}
	}
	x.mu.RUnlock()
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) && (len(got) > 0 || len(want) > 0) {
		t.Errorf("index %q, entries %q", got, want)
	}
}

// TestCorrectionsFollowVocabulary checks that spelling corrections know a
// word as soon as a tool that uses it is indexed, and forget it as soon as
// the last such tool is removed.
func TestCorrectionsFollowVocabulary(t *testing.T) {
	x := newIndex(t, srv("/a", nil, "files", "read_file"))
	ctx := context.Background()
	search := func(q string) []string {
		hits, err := x.Search(ctx, Query{Text: q})
		if err != nil {
			t.Fatal(err)
		}
		return ids(hits)
	}
	if got := search("thermostatt"); len(got) != 0 {
		t.Fatalf("a misspelling of an unknown word found %q", got)
	}
	if err := x.Put(srv("/b", nil, "home", "set_thermostat")); err != nil {
		t.Fatal(err)
	}
	if got := search("thermostatt"); !reflect.DeepEqual(got, []string{"b:set_thermostat"}) {
		t.Errorf("after the word was indexed, the misspelling found %q", got)
	}
	if err := x.Remove("/b"); err != nil {
		t.Fatal(err)
	}
	if got := search("thermostatt"); len(got) != 0 {
		t.Errorf("after the word's last tool was removed, the misspelling found %q", got)
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, c := range x.corrections("thermostatt") {
		t.Errorf("correction %q of a word no tool uses", c)
	}
}

// TestCorrectionsPerQueryAreBounded checks that only the first few unknown
// words of a query get spelling corrections: each is a pass over the
// vocabulary under the index's lock, and a long text must not cost one per
// word.
func TestCorrectionsPerQueryAreBounded(t *testing.T) {
	words := []string{"thermostat", "warranty", "customer", "invoice", "calendar", "weather", "forecast",
		"translate", "database", "playlist", "shipment", "password"}
	var tools []string
	for _, w := range words {
		tools = append(tools, "get_"+w)
	}
	x := newIndex(t, srv("/a", nil, "everything", tools...))
	var typos []string
	for _, w := range words {
		typos = append(typos, w+w[len(w)-1:]) // "thermostatt", ...
	}
	x.mu.RLock()
	terms, _ := x.queryTerms(strings.Join(typos, " "))
	x.mu.RUnlock()
	corrected := 0
	for _, qt := range terms {
		if len(qt.alts) > 0 {
			corrected++
		}
	}
	if corrected == 0 || corrected > maxCorrectedWords {
		t.Errorf("%d of %d misspelled words were corrected, want 1 to %d", corrected, len(typos), maxCorrectedWords)
	}
}

// TestTiesRankAlikeInEveryIndex checks that tools of equal relevance come
// in the same order whatever order the index learned them in (doc ids), so
// that replicas, and an index kept up to date against one built afresh,
// answer a query alike: the catalog's copies tie on every query.
func TestTiesRankAlikeInEveryIndex(t *testing.T) {
	servers := catalogCopies(t, 4)
	reversed := slices.Clone(servers)
	slices.Reverse(reversed)
	a, b := newIndex(t, servers...), newIndex(t, reversed...)
	ctx := context.Background()
	ties := 0
	for _, q := range labeledQueries(t)[:30] {
		sq := Query{Text: q.Query, Top: 50}
		ha, err := a.Search(ctx, sq)
		if err != nil {
			t.Fatal(err)
		}
		hb, err := b.Search(ctx, sq)
		if err != nil {
			t.Fatal(err)
		}
		if scored(ha) != scored(hb) {
			t.Errorf("%q:\nin order   %s\nin reverse %s", q.Query, scored(ha), scored(hb))
		}
		for i := 1; i < len(ha); i++ {
			if ha[i].Score == ha[i-1].Score {
				ties++
			}
		}
	}
	if ties == 0 {
		t.Fatal("no ties among the hits: the test compares nothing")
	}
}
