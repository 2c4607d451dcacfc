package main

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/mcpgw/mcpgw/search"
	"github.com/mcpgw/mcpgw/search/searchbench"
)

// finder measures the tool finder in-process, with the code and data of
// `make bench-finder` (BENCHMARKS.md, "Finder"): quality on the labeled
// queries over the catalog, then index build time, quality and query
// latency over a registry of servers × tools-per-server generated tools.
func (e *env) finder(ctx context.Context, r *results) error {
	const sec = "finder"
	base, err := searchbench.LoadCatalog(e.cfg.catalog)
	if err != nil {
		return err
	}
	qs, err := searchbench.LoadQueries(e.cfg.queries)
	if err != nil {
		return err
	}
	idx, err := search.New(search.Options{})
	if err != nil {
		return err
	}
	if err := idx.Rebuild(base); err != nil {
		idx.Close()
		return err
	}
	rep, err := searchbench.Evaluate(ctx, idx, qs)
	idx.Close()
	if err != nil {
		return err
	}
	note := fmt.Sprintf("%d labeled queries over the catalog (%d servers)", rep.Queries, len(base))
	r.value(sec, "recall@1, catalog", "", rep.RecallAt1, note)
	r.value(sec, "recall@5, catalog", "", rep.RecallAt5, note)
	r.value(sec, "MRR, catalog", "", rep.MRR, note)

	n := e.cfg.servers * e.cfg.toolsPer
	servers, origin := searchbench.Generate(base, n, 1)
	big, err := search.New(search.Options{})
	if err != nil {
		return err
	}
	defer big.Close()
	runtime.GC()
	start := time.Now()
	if err := big.Rebuild(servers); err != nil {
		return err
	}
	r.value(sec, fmt.Sprintf("index build, %d tools", n), "s", time.Since(start).Seconds(), fmt.Sprintf("GOMAXPROCS %d", runtime.GOMAXPROCS(0)))
	rep, err = searchbench.EvaluateAs(ctx, big, qs, origin)
	if err != nil {
		return err
	}
	r.value(sec, fmt.Sprintf("recall@1 among %d tools", n), "", rep.RecallAt1, "a generated copy of an expected tool counts")
	r.value(sec, fmt.Sprintf("recall@5 among %d tools", n), "", rep.RecallAt5, "")
	lat, err := searchbench.QueryLatencies(ctx, big, qs, 5)
	if err != nil {
		return err
	}
	q := durations(lat)
	note = fmt.Sprintf("%d queries (the labeled set, 5 rounds), top 5", len(lat))
	r.value(sec, fmt.Sprintf("query p50 among %d tools", n), "ms", q.pct(50).Seconds()*1000, note)
	r.value(sec, fmt.Sprintf("query p99 among %d tools", n), "ms", q.pct(99).Seconds()*1000, note)
	return nil
}
