package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
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

// TestSmokeHTTPFloor runs the relay sections with the minimal HTTP relay as
// the floor (-floor http): unlike the other reference relays it is code of
// this repository, so its errors fail the test.
func TestSmokeHTTPFloor(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "mcpgw")
	if out, err := exec.Command("go", "build", "-o", bin, "../mcpgw").CombinedOutput(); err != nil {
		t.Fatalf("build mcpgw: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := config{gateway: bin, smoke: true, calls: 20, rounds: 1, duration: 200 * time.Millisecond, clients: []int{2},
		sections: "latency,throughput", floor: "http"}
	r, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for _, f := range r.Figures {
		if !strings.HasPrefix(f.Name, "http relay") {
			continue
		}
		named++
		if f.Errors > 0 {
			r.print(os.Stderr)
			t.Fatalf("the http relay failed calls: %s %s", f.Section, f.Name)
		}
	}
	if named == 0 || r.gatewayFailed() {
		r.print(os.Stderr)
		t.Fatalf("%d http relay figures; gateway failed: %v", named, r.gatewayFailed())
	}
}

// TestRelayMessage checks the minimal HTTP relay's framing: each message
// is passed on whole and byte for byte, and the next one starts where it
// ended.
func TestRelayMessage(t *testing.T) {
	for _, tc := range []struct{ name, msg string }{
		{"content length", "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"},
		{"no body", "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"},
		{"chunked, extension and trailer", "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n1\r\n!\r\n0\r\nTrailer-A: 1\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const next = "GET / HTTP/1.1\r\n\r\n"
			r := bufio.NewReader(strings.NewReader(tc.msg + next))
			var out bytes.Buffer
			if _, err := relayMessage(r, &out, nil); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.msg {
				t.Fatalf("relayed %q, want %q", out.String(), tc.msg)
			}
			if rest, _ := io.ReadAll(r); string(rest) != next {
				t.Fatalf("left %q, want %q", rest, next)
			}
		})
	}
	if _, err := relayMessage(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")), io.Discard, nil); err == nil {
		t.Fatal("a negative Content-Length was relayed")
	}
}
