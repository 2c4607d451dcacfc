package search

import (
	"container/heap"
	"context"
	"iter"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
)

// The vector ranking compares a query with every tool's vector. Reached
// through each server's tools, the vectors lie all over the heap, and the
// scan costs about 200 ms at 100,000 vectors of 384 dimensions on a 2-core
// machine, most of it waiting for memory. From HybridOptions.IndexFrom
// distinct vectors on they are also kept in an index, copied back to back
// so that the scan streams through memory, on every core (about five times
// faster, the same results; BENCHMARKS.md). Vectors embedded since the
// index was built are scanned apart, and it is rebuilt in the background
// once a tenth of it has changed.
//
// With HybridOptions.ApproxProbe below 1 the index is an inverted file
// (IVF): spherical k-means groups the vectors in about √n/2 lists, and a
// query compares itself with the lists' centroids and scans only that share
// of the lists, the nearest ones. That is approximate: a vector whose
// nearest centroid is not among those probed is missed, and how many are
// depends on how clustered the model's vectors are (see BENCHMARKS.md).
// Filters that leave the probed lists short of candidates make the query
// probe further, down to every list.

// defaultIndexFrom is HybridOptions.IndexFrom's default.
const defaultIndexFrom = 10000

const (
	// ivfTrainPerList is how many sampled vectors per list k-means trains
	// on: enough to place the centroids, far fewer than the registry.
	ivfTrainPerList = 40
	// ivfIterations is k-means' rounds over the sample.
	ivfIterations = 6
	// ivfStale is the share of the index (1/ivfStale) that may have changed
	// (vectors added since the build, or dropped) before it is rebuilt.
	ivfStale = 10
)

// ivf is one build of the vector index: one list, or the lists of the
// approximate index. It is never changed after install, except that its
// refs may be marked dead.
type ivf struct {
	gen       int
	dims      int
	centroids []float32 // len(lists) × dims, unit length
	lists     []ivfList
	size      int // vectors indexed
}

// ivfList is the vectors closest to one centroid.
type ivfList struct {
	refs []*vecRef
	vecs []float32 // refs[i]'s vector at [i*dims, (i+1)*dims); refs[i].v points here
}

// nprobe is how many lists a query scans at least: share of them, and never
// fewer than eight.
func (ix *ivf) nprobe(share float64) int {
	return min(len(ix.lists), max(8, int(math.Ceil(share*float64(len(ix.lists))))))
}

// closest returns the index of the centroid most similar to v.
func closest(centroids []float32, dims int, v []float32) int {
	best, bestSim := 0, float32(math.Inf(-1))
	for c := 0; c*dims < len(centroids); c++ {
		if s := dot(v, centroids[c*dims:(c+1)*dims]); s > bestSim {
			best, bestSim = c, s
		}
	}
	return best
}

// buildIVF copies vecs (unit length, dims each; refs[i] is vecs[i]'s) into
// one list, or with approx into about √n/2 lists by spherical k-means
// trained on a sample. It reads vecs only and returns nil when ctx ends
// first.
func buildIVF(ctx context.Context, refs []*vecRef, vecs [][]float32, dims, gen int, approx bool) *ivf {
	n := len(vecs)
	k := 1
	if approx {
		k = max(1, int(math.Sqrt(float64(n))/2))
	}
	// A fixed seed: the same registry gives the same lists.
	rng := rand.New(rand.NewPCG(uint64(n), uint64(dims)))
	sample := rng.Perm(n)[:min(n, k*ivfTrainPerList)]
	cent := make([]float32, k*dims)
	for c := range k {
		copy(cent[c*dims:], vecs[sample[c]])
	}
	sums := make([]float64, k*dims)
	counts := make([]int, k)
	for range ivfIterations * min(k-1, 1) { // one list needs no centroid
		if ctx.Err() != nil {
			return nil
		}
		clear(sums)
		clear(counts)
		for _, i := range sample {
			c := closest(cent, dims, vecs[i])
			counts[c]++
			s := sums[c*dims : (c+1)*dims]
			for j, f := range vecs[i] {
				s[j] += float64(f)
			}
		}
		for c := range k {
			if counts[c] == 0 {
				// An empty list restarts at a random sampled vector.
				copy(cent[c*dims:], vecs[sample[rng.IntN(len(sample))]])
				continue
			}
			s := sums[c*dims : (c+1)*dims]
			var ss float64
			for _, f := range s {
				ss += f * f
			}
			if ss == 0 {
				continue
			}
			norm := 1 / math.Sqrt(ss)
			for j, f := range s {
				cent[c*dims+j] = float32(f * norm)
			}
		}
	}
	assign := make([]int32, n)
	size := make([]int, k)
	for i, v := range vecs {
		if i%1024 == 0 && ctx.Err() != nil {
			return nil
		}
		c := 0
		if k > 1 {
			c = closest(cent, dims, v)
		}
		assign[i] = int32(c)
		size[c]++
	}
	ix := &ivf{gen: gen, dims: dims, centroids: cent, lists: make([]ivfList, k), size: n}
	for c := range k {
		ix.lists[c] = ivfList{refs: make([]*vecRef, 0, size[c]), vecs: make([]float32, 0, size[c]*dims)}
	}
	for i, c := range assign {
		l := &ix.lists[c]
		l.refs = append(l.refs, refs[i])
		l.vecs = append(l.vecs, vecs[i]...)
	}
	return ix
}

// maybeIndex builds or drops the vector index as the number of
// vectors and the changes since the last build call for. It runs on the
// embedding worker; the k-means runs outside every lock, on copies of the
// vectors' slice headers (a vector's contents never change).
func (h *Hybrid) maybeIndex(ctx context.Context) {
	h.mu.RLock()
	n := len(h.vecs) - len(h.want)
	ix := h.ivf
	changed := len(h.fresh) + h.ivfDead
	h.mu.RUnlock()
	if h.indexFrom < 0 || n < h.indexFrom {
		if ix != nil {
			h.mu.Lock()
			h.dropIndexLocked()
			h.mu.Unlock()
		}
		return
	}
	if ix != nil && changed*ivfStale < ix.size {
		return
	}
	h.mu.RLock()
	hashes := make([]string, 0, n)
	for hs, r := range h.vecs {
		if r.v != nil {
			hashes = append(hashes, hs)
		}
	}
	// In hash order, not the map's: the same vectors make the same lists.
	slices.Sort(hashes)
	refs := make([]*vecRef, 0, n)
	vecs := make([][]float32, 0, n)
	dims := 0
	for _, hs := range hashes {
		r := h.vecs[hs]
		if dims == 0 {
			dims = len(r.v)
		}
		if len(r.v) == dims {
			refs, vecs = append(refs, r), append(vecs, r.v)
		}
	}
	h.mu.RUnlock()
	if len(refs) == 0 {
		return
	}
	h.ivfGen++
	start := time.Now()
	nx := buildIVF(ctx, refs, vecs, dims, h.ivfGen, h.probe < 1)
	if nx == nil {
		return
	}
	h.log.Info().Int("vectors", nx.size).Int("lists", len(nx.lists)).Dur("duration", time.Since(start)).
		Msg("finder: vector index built")
	h.mu.Lock()
	defer h.mu.Unlock()
	dead := 0
	for li := range nx.lists {
		l := &nx.lists[li]
		for j, r := range l.refs {
			if r.dead { // dropped while the index was built
				dead++
				continue
			}
			r.v = l.vecs[j*dims : (j+1)*dims : (j+1)*dims]
			r.gen = nx.gen
		}
	}
	h.fresh = h.fresh[:0]
	for _, r := range h.vecs {
		if r.v != nil && r.gen != nx.gen {
			h.fresh = append(h.fresh, r) // embedded while the index was built
		}
	}
	h.ivf, h.ivfDead = nx, dead
}

func (h *Hybrid) dropIndexLocked() {
	h.ivf, h.fresh, h.ivfDead = nil, nil, 0
}

// vecScan collects the n best candidates of one query's vector ranking.
type vecScan struct {
	qv    []float32
	tags  []string // foldTag'ed
	allow func(server, tool string) bool
	n     int
	best  vecHeap
}

// offer considers tool ti of server e at similarity sim.
func (s *vecScan) offer(e *vecServer, ti int, sim float32) {
	c := vecCand{e: e, t: ti, sim: sim, key: e.key, name: e.srv.ToolList[e.tools[ti].i].Name}
	if len(s.best) == s.n && !vecWorse(s.best[0], c) {
		return
	}
	if s.allow != nil && !s.allow(e.srv.Path, c.name) {
		return
	}
	if len(s.best) == s.n {
		s.best[0] = c
		heap.Fix(&s.best, 0)
	} else {
		heap.Push(&s.best, c)
	}
}

// beaten reports whether a tool at similarity sim cannot enter the n best,
// the common case, decided without building a candidate.
func (s *vecScan) beaten(sim float32) bool { return len(s.best) == s.n && sim < s.best[0].sim }

// ref offers every tool whose text has vector v (r's) at its similarity.
func (s *vecScan) ref(r *vecRef, v []float32) {
	if sim := dot(s.qv, v); !s.beaten(sim) {
		s.users(r, sim)
	}
}

// users offers the tools with r's text at similarity sim.
func (s *vecScan) users(r *vecRef, sim float32) {
	for _, u := range r.users {
		if u.e.hasTags(s.tags) {
			s.offer(u.e, u.ti, sim)
		}
	}
}

// scanIVF runs the vector ranking on the approximate index: the vectors
// embedded since its build, then the lists nearest the query, further lists
// as long as fewer than n candidates passed the filters.
func (h *Hybrid) scanIVF(ix *ivf, s *vecScan) {
	for _, r := range h.fresh {
		if !r.dead && r.v != nil && len(r.v) == len(s.qv) {
			s.ref(r, r.v)
		}
	}
	k := len(ix.lists)
	order := make([]int, k)
	sims := make([]float32, k)
	for c := range k {
		order[c] = c
		sims[c] = dot(s.qv, ix.centroids[c*ix.dims:(c+1)*ix.dims])
	}
	slices.SortFunc(order, func(a, b int) int {
		if sims[a] != sims[b] {
			if sims[a] > sims[b] {
				return -1
			}
			return 1
		}
		return a - b
	})
	probe := ix.nprobe(h.probe)
	d := ix.dims
	for i, c := range order {
		if i >= probe && len(s.best) == s.n {
			break
		}
		// The similarity first, from the list's own memory: most vectors
		// are beaten, and their refs, elsewhere in memory, are never read.
		l := &ix.lists[c]
		if len(l.refs) >= 2*parallelChunk && runtime.GOMAXPROCS(0) > 1 {
			h.scanParallel(l, s)
			continue
		}
		for j := range l.refs {
			if sim := dot(s.qv, l.vecs[j*d:(j+1)*d]); !s.beaten(sim) && !l.refs[j].dead {
				s.users(l.refs[j], sim)
			}
		}
	}
}

// parallelChunk is the fewest vectors one goroutine of a parallel scan
// takes: below, starting it costs more than it saves. A variable for tests.
var parallelChunk = 8192

// simsPool holds the similarity buffers of parallel scans.
var simsPool = sync.Pool{New: func() any { return new([]float32) }}

// scanParallel scans a large list (the exact index's one list) on every
// core: the similarities are computed in parallel, then offered in order on
// this goroutine, since Allow need not be safe for concurrent use.
func (h *Hybrid) scanParallel(l *ivfList, s *vecScan) {
	n, d := len(l.refs), len(s.qv)
	bp := simsPool.Get().(*[]float32)
	defer simsPool.Put(bp)
	if cap(*bp) < n {
		*bp = make([]float32, n)
	}
	sims := (*bp)[:n]
	workers := min(runtime.GOMAXPROCS(0), n/parallelChunk)
	per := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += per {
		hi := min(n, lo+per)
		wg.Go(func() {
			for j := lo; j < hi; j++ {
				sims[j] = dot(s.qv, l.vecs[j*d:(j+1)*d])
			}
		})
	}
	wg.Wait()
	for j, sim := range sims {
		if !s.beaten(sim) && !l.refs[j].dead {
			s.users(l.refs[j], sim)
		}
	}
}

// fewTagged reports whether the servers carrying tags (foldTag'ed) hold
// fewer than 1/32 of the tools: then scanning just their tools beats
// probing lists that mostly hold others (until enough of theirs turn up,
// every list). The rarest tag's count stands for the servers carrying all.
func (h *Hybrid) fewTagged(tags []string) bool {
	if len(tags) == 0 {
		return false
	}
	return h.tagTools[h.rarest(tags)]*32 < h.tools
}

// rarest is the tag among tags that the fewest tools' servers carry.
func (h *Hybrid) rarest(tags []string) string {
	best := tags[0]
	for _, t := range tags[1:] {
		if h.tagTools[t] < h.tagTools[best] {
			best = t
		}
	}
	return best
}

// tagged yields the servers that may carry every tag (foldTag'ed): those
// with the rarest one, or every server when tags is empty.
func (h *Hybrid) tagged(tags []string) iter.Seq[*vecServer] {
	return func(yield func(*vecServer) bool) {
		if len(tags) == 0 {
			for _, e := range h.servers {
				if !yield(e) {
					return
				}
			}
			return
		}
		for e := range h.byTag[h.rarest(tags)] {
			if !yield(e) {
				return
			}
		}
	}
}

// hasTags reports whether e carries every tag (foldTag'ed).
func (e *vecServer) hasTags(tags []string) bool {
	for _, t := range tags {
		if !slices.Contains(e.tags, t) {
			return false
		}
	}
	return true
}

// foldTag keys a tag as the text index compares tags: trimmed, and each
// letter replaced by the smallest of its simple case folds, so that two tags
// get one key exactly when strings.EqualFold holds.
func foldTag(t string) string {
	t = strings.TrimSpace(t)
	b := make([]rune, 0, len(t))
	for _, r := range t {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b = append(b, m)
	}
	return string(b)
}

// foldTags folds a query's tags, dropping empty ones.
func foldTags(tags []string) []string {
	var out []string
	for _, t := range tags {
		if t = foldTag(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// countTags adds (d = 1) or removes (d = -1) e in the tag indexes.
func (h *Hybrid) countTags(e *vecServer, d int) {
	h.tools += d * len(e.tools)
	for _, t := range e.tags {
		if h.tagTools[t] += d * len(e.tools); h.tagTools[t] <= 0 {
			delete(h.tagTools, t)
		}
		set := h.byTag[t]
		if d > 0 {
			if set == nil {
				set = map[*vecServer]struct{}{}
				h.byTag[t] = set
			}
			set[e] = struct{}{}
		} else if delete(set, e); len(set) == 0 {
			delete(h.byTag, t)
		}
	}
}
