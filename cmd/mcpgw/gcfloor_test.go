package main

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name               string
		live, roots, floor uint64
		want               int
	}{
		{"heap above half the floor keeps GOGC=100", 20 * mib, mib, 32 * mib, 100},
		{"large heap", 500 * mib, 2 * mib, 32 * mib, 100},
		// Live 1 MiB, roots 1 MiB: by live 31 MiB × 100 / 2 MiB = 1550;
		// Go's minimum (4 MiB × p/100) reaches 32 MiB at p = 800 first.
		{"small heap: the scaled minimum binds", mib, mib, 32 * mib, 800},
		// Live 3 MiB, roots 3 MiB: by live 29 × 100 / 6 = 483 < 800.
		{"roots count", 3 * mib, 3 * mib, 32 * mib, 483},
		{"no collection yet", 0, 0, 32 * mib, 800},
		{"never below 100", 15 * mib, 30 * mib, 32 * mib, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := gcPercentFor(tc.live, tc.roots, tc.floor); got != tc.want {
				t.Errorf("gcPercentFor(%d, %d, %d) = %d, want %d", tc.live, tc.roots, tc.floor, got, tc.want)
			}
		})
	}
}

// TestGCFloorHeapGoal: with the floor on, the runtime's own heap goal after
// a collection is at the floor, and stopping the floor brings GOGC back.
func TestGCFloorHeapGoal(t *testing.T) {
	t.Setenv("GOGC", "") // the floor steps aside when GOGC is set
	read := func() (goal, gogc, live uint64) {
		s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/gogc:percent"}, {Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()
	}
	runtime.GC()
	_, _, live := read()
	floor := max(uint64(64<<20), live*8)
	stop := startGCFloor(floor)
	defer stop()
	// The floor adjusts after each collection; wait for one to be seen.
	deadline := time.Now().Add(10 * time.Second)
	var goal, gogc uint64
	for {
		runtime.GC()
		time.Sleep(20 * time.Millisecond) // the cleanup runs on its own goroutine
		if goal, gogc, _ = read(); gogc != 100 && goal >= floor*9/10 || time.Now().After(deadline) {
			break
		}
	}
	if gogc == 100 {
		t.Fatalf("GOGC still 100 with a floor of %d MiB over a live heap of %d KiB", floor>>20, live>>10)
	}
	if goal < floor*9/10 || goal > floor*12/10 {
		t.Errorf("heap goal %d MiB with GOGC=%d, want about the floor, %d MiB", goal>>20, gogc, floor>>20)
	}
	stop()
	runtime.GC()
	if _, gogc, _ := read(); gogc != 100 {
		t.Errorf("GOGC = %d after stop, want 100", gogc)
	}
}

func TestGCFloorOff(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   string
		floor uint64
	}{{"floor 0", "", 0}, {"GOGC set", "200", 64 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", tc.env)
			stop := startGCFloor(tc.floor)
			defer stop()
			runtime.GC()
			time.Sleep(20 * time.Millisecond)
			s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
			metrics.Read(s)
			if got := s[0].Value.Uint64(); got != 100 {
				t.Errorf("GOGC = %d, want 100 (untouched)", got)
			}
		})
	}
}
