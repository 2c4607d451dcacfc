package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary act as the reference proxies, as the bench
// binary does, since the harness re-executes itself for it.
func TestMain(m *testing.M) {
	if runProxyMode(os.Args) {
		return
	}
	os.Exit(m.Run())
}

// TestSmoke runs every section of the harness in its tiny configuration
// against a freshly built mcpgw, so `make test` keeps the benchmark
// compiling and working. It checks that each section produced its figures
// without errors; the figures themselves mean nothing at this size.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "mcpgw")
	build := exec.Command("go", "build", "-o", bin, "../mcpgw")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build mcpgw: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := config{gateway: bin, smoke: true, calls: 20, rounds: 2, duration: 200 * time.Millisecond, clients: []int{2},
		sessions: 20, servers: 10, toolsPer: 2, streamCount: 5,
		sections: "latency,throughput,invoke,streaming,sessions,registry,finder,health",
		catalog:  "../../testdata/catalog", queries: "../../testdata/finder/queries.json"}
	r, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case r.gatewayFailed():
		r.print(os.Stderr)
		t.Fatal("a section reported errors of the gateway or the direct calls")
	case r.failed():
		// The reference relays are the standard library's, not ours: an
		// error there (seen once under the whole suite's load: a stream
		// cut short through httputil.ReverseProxy) is reported, not failed.
		r.print(os.Stderr)
		t.Log("a reference relay reported errors")
	}
	sections := map[string]bool{}
	for _, f := range r.Figures {
		sections[f.Section] = true
	}
	for _, want := range []string{"relay latency (session 2025-11-25)", "relay latency (stateless 2026-07-28)", "relay throughput (2 clients)",
		"one-URL invoke_tool", "streaming (progress notification delivery)", "sessions", "registry scale", "finder", "health sweep"} {
		if !sections[want] {
			t.Errorf("no figures for section %q", want)
		}
	}
	for _, f := range r.Figures {
		if f.Section == "relay latency (session 2025-11-25)" && f.Name == "mcpgw p50" && !strings.Contains(f.Note, "median of 2 rounds") {
			t.Errorf("latency figure %q is not the median of the two rounds: note %q", f.Name, f.Note)
		}
	}
	out := filepath.Join(dir, "results.json")
	if err := r.write(out); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(out); err != nil || st.Size() == 0 {
		t.Fatalf("results.json not written: %v", err)
	}
}
