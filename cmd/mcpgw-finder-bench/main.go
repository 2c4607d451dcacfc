// Command mcpgw-finder-bench measures the tool finder (`make bench-finder`):
// recall@1, recall@5 and MRR of the labeled query set over the catalog, then
// index build time, memory and query latency on a registry of -tools tools
// generated from the catalog by variation.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/registry/sqlite"
	"github.com/mcpgw/mcpgw/search"
	"github.com/mcpgw/mcpgw/search/searchbench"
)

// indexOptions are the options of every index the bench builds (-boosts).
var indexOptions search.Options

// Profiling and the optional sections (-cpuprofile, -buildprofile, -nostartup).
var (
	cpuProfile, buildProfile string
	skipStartup              bool
	slowest                  int
)

// profile starts a CPU profile into file (none when file is empty) and
// returns the function that stops it.
func profile(file string) (func(), error) {
	if file == "" {
		return func() {}, nil
	}
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func main() {
	catalog := flag.String("catalog", "testdata/catalog", "directory of registration files")
	queries := flag.String("queries", "testdata/finder/queries.json", "labeled query set")
	tools := flag.Int("tools", 100000, "size of the generated registry for the speed test (0 skips it)")
	cores := flag.Int("cores", 1, "GOMAXPROCS while timing queries")
	rounds := flag.Int("rounds", 5, "how many times the query set is run for latency")
	verbose := flag.Bool("v", false, "list every query that missed rank 1")
	one := flag.String("q", "", "run only this query against the catalog and print its top 10")
	tune := flag.Bool("tune", false, "grid-search the field boosts on the query set and print the best")
	boostsFlag := flag.String("boosts", "", "field boosts to use instead of the defaults: name,desc,params,server,synonym")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the timed queries to this file")
	flag.StringVar(&buildProfile, "buildprofile", "", "write a CPU profile of the large registry's index build to this file")
	flag.BoolVar(&skipStartup, "nostartup", false, "skip the start-up from SQLite measurement")
	flag.IntVar(&slowest, "slowest", 0, "list this many queries with the slowest fastest run")
	flag.Parse()
	if *boostsFlag != "" {
		var b search.Boosts
		if _, err := fmt.Sscanf(*boostsFlag, "%g,%g,%g,%g,%g", &b.Name, &b.Desc, &b.Params, &b.Server, &b.Synonym); err != nil {
			fmt.Fprintln(os.Stderr, "mcpgw-finder-bench: -boosts wants five numbers: name,desc,params,server,synonym")
			os.Exit(2)
		}
		b.Fuzzy = search.DefaultBoosts.Fuzzy
		indexOptions.Boosts = b
	}
	if *tune {
		if err := tuneBoosts(*catalog, *queries); err != nil {
			fmt.Fprintln(os.Stderr, "mcpgw-finder-bench:", err)
			os.Exit(1)
		}
		return
	}
	if *one != "" {
		if err := show(*catalog, *one); err != nil {
			fmt.Fprintln(os.Stderr, "mcpgw-finder-bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*catalog, *queries, *tools, *cores, *rounds, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "mcpgw-finder-bench:", err)
		os.Exit(1)
	}
}

func run(catalog, queries string, n, cores, rounds int, verbose bool) error {
	ctx := context.Background()
	base, err := searchbench.LoadCatalog(catalog)
	if err != nil {
		return err
	}
	qs, err := searchbench.LoadQueries(queries)
	if err != nil {
		return err
	}
	start := time.Now()
	idx, err := catalogIndex(indexOptions, base)
	if err != nil {
		return err
	}
	defer idx.Close()
	st := idx.Stats()
	fmt.Printf("catalog: %d servers, %d tools, %d terms, indexed in %s\n", st.Servers, st.Tools, st.Terms, time.Since(start).Round(time.Microsecond))
	rep, err := searchbench.Evaluate(ctx, idx, qs)
	if err != nil {
		return err
	}
	fmt.Printf("quality: %d queries  recall@1 %.3f  recall@5 %.3f  MRR %.3f\n", rep.Queries, rep.RecallAt1, rep.RecallAt5, rep.MRR)
	for _, r := range rep.Results {
		if r.Rank == 1 || !verbose && r.Rank >= 1 && r.Rank <= 5 {
			continue
		}
		tags := ""
		if len(r.Tags) > 0 {
			tags = " [tags " + strings.Join(r.Tags, ",") + "]"
		}
		got := r.Got
		if len(got) > 3 {
			got = got[:3]
		}
		fmt.Printf("  rank %-2d %q%s want %s got %s\n", r.Rank, r.Query, tags, strings.Join(r.Expect, "|"), strings.Join(got, ", "))
	}
	if err := hybridQuality(ctx, idx, base, qs, verbose); err != nil {
		return err
	}
	if n <= 0 {
		return nil
	}
	return scale(ctx, base, qs, n, cores, rounds)
}

func scale(ctx context.Context, base []*registry.Server, qs []searchbench.LabeledQuery, n, cores, rounds int) error {
	servers, origin := searchbench.Generate(base, n, 1)
	// Start-up first, while nothing else is in memory, as at a gateway's
	// start.
	if !skipStartup {
		if err := startup(ctx, servers); err != nil {
			return err
		}
	}
	heapBefore := heap()
	idx, err := search.New(indexOptions)
	if err != nil {
		return err
	}
	defer idx.Close()
	stop, err := profile(buildProfile)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := idx.Rebuild(servers); err != nil {
		stop()
		return err
	}
	build := time.Since(start)
	stop()
	heapAfter := heap()
	st := idx.Stats()
	fmt.Printf("scale: %d servers, %d tools, %d terms\n", st.Servers, st.Tools, st.Terms)
	fmt.Printf("  build (GOMAXPROCS %d): %s  (%.0f tools/s)\n", runtime.GOMAXPROCS(0), build.Round(time.Millisecond), float64(st.Tools)/build.Seconds())
	fmt.Printf("  index memory (live heap growth): %.0f MiB\n", float64(int64(heapAfter)-int64(heapBefore))/(1<<20))
	rep, err := searchbench.EvaluateAs(ctx, idx, qs, origin)
	if err != nil {
		return err
	}
	fmt.Printf("  quality among %d tools (a copy of an expected tool counts): recall@1 %.3f  recall@5 %.3f  MRR %.3f\n",
		st.Tools, rep.RecallAt1, rep.RecallAt5, rep.MRR)

	// One server updated in place: what a registration or refresh costs.
	start = time.Now()
	const updates = 50
	for i := 0; i < updates; i++ {
		s := servers[i%len(servers)].Clone()
		s.Description += " updated"
		if err := idx.Put(s); err != nil {
			return err
		}
	}
	fmt.Printf("  update one server: %s per change\n", (time.Since(start) / updates).Round(time.Microsecond))
	if err := hybridScale(ctx, servers, qs, rounds); err != nil {
		return err
	}

	prev := runtime.GOMAXPROCS(cores)
	defer runtime.GOMAXPROCS(prev)
	var lat, cpu []time.Duration
	perQuery := make([][]time.Duration, len(qs))
	stop, err = profile(cpuProfile)
	if err != nil {
		return err
	}
	defer stop()
	// The thread's CPU time is read around each query too: on a shared
	// machine the wall time includes waiting for a core.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var gc0, gc1 runtime.MemStats
	runtime.ReadMemStats(&gc0)
	var worst struct {
		cpu      time.Duration
		round, i int
	}
	for r := 0; r < rounds; r++ {
		for i, q := range qs {
			c0, t0 := threadCPU(), time.Now()
			if _, err := idx.Search(ctx, search.Query{Text: q.Query, Tags: q.Tags, Top: 5}); err != nil {
				return err
			}
			d, c := time.Since(t0), threadCPU()-c0
			lat = append(lat, d)
			cpu = append(cpu, c)
			perQuery[i] = append(perQuery[i], d)
			if c > worst.cpu {
				worst.cpu, worst.round, worst.i = c, r, i
			}
		}
	}
	runtime.ReadMemStats(&gc1)
	for _, l := range [][]time.Duration{lat, cpu} {
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	}
	pct := func(l []time.Duration, p float64) time.Duration {
		return l[int(p*float64(len(l)-1))].Round(time.Microsecond)
	}
	fmt.Printf("  query (GOMAXPROCS %d, %d queries): p50 %s  p90 %s  p99 %s  max %s\n", cores, len(lat),
		pct(lat, 0.50), pct(lat, 0.90), pct(lat, 0.99), pct(lat, 1))
	fmt.Printf("    CPU time of the querying thread: p50 %s  p90 %s  p99 %s  max %s; %d GC cycles during the queries\n",
		pct(cpu, 0.50), pct(cpu, 0.90), pct(cpu, 0.99), pct(cpu, 1), gc1.NumGC-gc0.NumGC)
	if slowest > 0 {
		fmt.Printf("    most CPU in one run: %s, round %d, query %d %q\n", worst.cpu.Round(time.Microsecond), worst.round+1, worst.i+1, qs[worst.i].Query)
	}
	if slowest > 0 {
		// A query's fastest run is its own cost; the spread above it is the
		// machine's noise (other processes, garbage collection).
		type qt struct {
			q        string
			min, med time.Duration
		}
		var qts []qt
		for i, ds := range perQuery {
			sort.Slice(ds, func(a, b int) bool { return ds[a] < ds[b] })
			qts = append(qts, qt{qs[i].Query, ds[0], ds[len(ds)/2]})
		}
		sort.Slice(qts, func(a, b int) bool { return qts[a].min > qts[b].min })
		for _, x := range qts[:min(slowest, len(qts))] {
			fmt.Printf("    fastest %s  median %s  %q\n", x.min.Round(time.Microsecond), x.med.Round(time.Microsecond), x.q)
		}
	}
	return nil
}

// catalogIndex returns an index built with opts over servers.
func catalogIndex(opts search.Options, servers []*registry.Server) (*search.Index, error) {
	idx, err := search.New(opts)
	if err != nil {
		return nil, err
	}
	if err := idx.Rebuild(servers); err != nil {
		idx.Close()
		return nil, err
	}
	return idx, nil
}

// show prints the top 10 hits of one query over the catalog; tags follow
// the text after " #", comma-separated.
func show(catalog, q string) error {
	base, err := searchbench.LoadCatalog(catalog)
	if err != nil {
		return err
	}
	idx, err := catalogIndex(indexOptions, base)
	if err != nil {
		return err
	}
	defer idx.Close()
	text, tagList, _ := strings.Cut(q, " #")
	var tags []string
	if tagList != "" {
		tags = strings.Split(tagList, ",")
	}
	hits, err := idx.Search(context.Background(), search.Query{Text: text, Tags: tags, Top: 10})
	if err != nil {
		return err
	}
	for i, h := range hits {
		fmt.Printf("%2d  %.3f  %s:%s\n", i+1, h.Score, h.ServerKey, h.Tool.Name)
	}
	return nil
}

// tuneBoosts evaluates a coarse grid of boosts and prints the ten best by
// recall@1 + recall@5 + MRR. The grid is coarse on purpose: a fine one
// would fit the query set rather than the catalog.
func tuneBoosts(catalog, queries string) error {
	base, err := searchbench.LoadCatalog(catalog)
	if err != nil {
		return err
	}
	qs, err := searchbench.LoadQueries(queries)
	if err != nil {
		return err
	}
	type run struct {
		b   search.Boosts
		rep searchbench.Report
	}
	var runs []run
	for _, name := range []float64{0.5, 0.75, 1} {
		for _, desc := range []float64{2, 3} {
			for _, params := range []float64{0.25, 0.5} {
				for _, server := range []float64{1, 1.5} {
					for _, syn := range []float64{0.5, 0.7} {
						b := search.Boosts{Name: name, Desc: desc, Params: params, Server: server, Synonym: syn, Fuzzy: 0.7}
						idx, err := catalogIndex(search.Options{Boosts: b}, base)
						if err != nil {
							return err
						}
						rep, err := searchbench.Evaluate(context.Background(), idx, qs)
						idx.Close()
						if err != nil {
							return err
						}
						runs = append(runs, run{b, rep})
					}
				}
			}
		}
	}
	sum := func(r searchbench.Report) float64 { return r.RecallAt1 + r.RecallAt5 + r.MRR }
	sort.SliceStable(runs, func(i, j int) bool { return sum(runs[i].rep) > sum(runs[j].rep) })
	for _, r := range runs[:10] {
		fmt.Printf("%+v  recall@1 %.3f  recall@5 %.3f  MRR %.3f\n", r.b, r.rep.RecallAt1, r.rep.RecallAt5, r.rep.MRR)
	}
	return nil
}

// startup measures what `mcpgw serve` does at start with such a registry:
// list every server from the SQLite store and build the index.
func startup(ctx context.Context, servers []*registry.Server) error {
	dir, err := os.MkdirTemp("", "finder-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(ctx, filepath.Join(dir, "mcpgw.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	for _, s := range servers {
		if err := store.Create(ctx, s); err != nil {
			return err
		}
	}
	idx, err := search.New(indexOptions)
	if err != nil {
		return err
	}
	defer idx.Close()
	runtime.GC() // not the filling of the store's garbage
	var listed time.Duration
	start := time.Now()
	err = idx.Load(ctx, func(ctx context.Context) ([]*registry.Server, error) {
		l, err := store.List(ctx)
		listed = time.Since(start)
		return l, err
	})
	if err != nil {
		return err
	}
	fmt.Printf("  start-up from SQLite: list %s + build %s\n", listed.Round(time.Millisecond), (time.Since(start) - listed).Round(time.Millisecond))
	return nil
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// threadCPU is the CPU time the calling OS thread has used
// (clock_gettime(CLOCK_THREAD_CPUTIME_ID); getrusage counts in clock ticks).
func threadCPU() time.Duration {
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTime, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		return 0
	}
	return time.Duration(ts.Nano())
}

// clockThreadCPUTime is Linux's CLOCK_THREAD_CPUTIME_ID.
const clockThreadCPUTime = 3
