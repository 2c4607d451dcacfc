package main

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// gcFloor keeps Go's garbage collector from running before the heap has
// grown to a floor, while above the floor it runs as GOGC=100 would.
//
// A gateway holds little: with a few servers registered its live heap is
// about a megabyte, so Go's default heap target (twice the live heap, at
// least 4 MiB) starts a collection every few hundred relayed calls. Each
// collection has a fixed cost, and measured on the relay it was a fifth of
// the gateway's user-space instructions per call (BENCHMARKS.md). A floor
// trades a few tens of MiB of garbage for that CPU; with a large registry
// the live heap is above the floor and nothing changes.
//
// After each collection, GOGC is set so that the next heap target is about
// max(2 × live heap, floor). Go has no hook for "a collection ended", so a
// cleanup on an unreachable object, re-armed every time, stands in for one.
type gcFloor struct {
	floor   uint64
	stopped atomic.Bool
	mu      sync.Mutex
	percent int // the GOGC last set
	sample  []metrics.Sample
}

// defaultGCPercent is GOGC when the environment does not set it.
const defaultGCPercent = 100

// startGCFloor starts keeping the heap target at floor bytes or more and
// returns the function that stops it and restores GOGC=100. It does nothing
// when floor is 0 or the GOGC environment variable is set: an operator who
// tunes the collector keeps the last word.
func startGCFloor(floor uint64) (stop func()) {
	if floor == 0 || os.Getenv("GOGC") != "" {
		return func() {}
	}
	f := &gcFloor{floor: floor, percent: defaultGCPercent, sample: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"},
	}}
	f.adjust()
	f.arm()
	return func() {
		f.stopped.Store(true)
		f.mu.Lock()
		defer f.mu.Unlock()
		debug.SetGCPercent(defaultGCPercent)
	}
}

// gcSentinel is the object whose cleanup marks the end of a collection. It
// holds a pointer so that it is not a tiny allocation, whose cleanups may
// never run.
type gcSentinel struct{ _ *byte }

func (f *gcFloor) arm() {
	runtime.AddCleanup(new(gcSentinel), func(f *gcFloor) {
		if !f.stopped.Load() {
			f.adjust()
			f.arm()
		}
	}, f)
}

// adjust sets GOGC for the live heap measured by the last collection.
func (f *gcFloor) adjust() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped.Load() {
		return
	}
	metrics.Read(f.sample)
	var v [3]uint64
	for i, s := range f.sample {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	if p := gcPercentFor(v[0], v[1]+v[2], f.floor); p != f.percent {
		debug.SetGCPercent(p)
		f.percent = p
	}
}

// heapMinimum is Go's smallest heap target at GOGC=100, 4 MiB; at other
// settings it is scaled by GOGC/100.
const heapMinimum = 4 << 20

// gcPercentFor is the GOGC that puts the next heap target at about
// max(2 × live, floor), given the live heap and the stack and global bytes
// the collector scans. Go's target for GOGC=p is the larger of
// live + (live + roots) × p/100 and heapMinimum × p/100; the smaller of
// the two p that bring one of them to floor brings the target there.
func gcPercentFor(live, roots, floor uint64) int {
	if live == 0 {
		live = 1 << 20 // before the first collection: assume a small heap
	}
	if live >= floor/2 {
		return defaultGCPercent
	}
	byLive := float64(floor-live) * 100 / float64(live+roots)
	byMinimum := float64(floor) * 100 / heapMinimum
	p := math.Floor(min(byLive, byMinimum, 1e6))
	return max(int(p), defaultGCPercent)
}
