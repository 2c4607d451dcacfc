package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/registry/sqlite"
	"github.com/mcpgw/mcpgw/upstream"
)

// healthSweep measures one sweep of the real health checker (upstream.Checker,
// default concurrency) over cfg.servers fake upstreams: a single loopback
// server that answers initialize, ping and DELETE at every path. It reports
// the wall time until every server has been checked once and the peak
// number of goroutines in this process while it ran.
func (e *env) healthSweep(ctx context.Context, r *results) error {
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodDelete {
			w.WriteHeader(http.StatusOK)
			return
		}
		b, _ := io.ReadAll(req.Body)
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		_ = json.Unmarshal(b, &m)
		w.Header().Set("Content-Type", "application/json")
		switch m.Method {
		case "initialize":
			w.Header().Set("Mcp-Session-Id", "s")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"fake","version":"1"}}}`, m.ID)
		case "tools/list":
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"t","description":"T","inputSchema":{"type":"object"}}]}}`, m.ID)
		case "":
			w.WriteHeader(http.StatusAccepted)
		default:
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{}}`, m.ID)
		}
	}))
	defer fake.Close()

	dir, err := os.MkdirTemp("", "mcpgw-bench-health-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := sqlite.Open(ctx, filepath.Join(dir, "h.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	reg := registry.NewService(store)
	desc := "T"
	for i := 0; i < e.cfg.servers; i++ {
		s := &registry.Server{ServerName: fmt.Sprint("h", i), Path: fmt.Sprintf("/h%05d", i), ProxyPassURL: fmt.Sprintf("%s/h%05d/mcp", fake.URL, i),
			AuthType: registry.AuthTypeNone, SupportedTransports: []string{registry.TransportStreamableHTTP}, Enabled: true,
			ToolList: []registry.Tool{{Name: "t", ParsedDescription: registry.ParsedDescription{Main: &desc}, Schema: json.RawMessage(`{"type":"object"}`)}}, NumTools: 1}
		if _, err := reg.Put(ctx, s, false); err != nil {
			return err
		}
	}
	up := upstream.New(upstream.Options{}, "bench")
	defer up.Close()
	runtime.GC()
	base := runtime.NumGoroutine()
	var peak atomic.Int64
	stop := make(chan struct{})
	go func() {
		for {
			if g := int64(runtime.NumGoroutine()); g > peak.Load() {
				peak.Store(g)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	cctx, cancel := context.WithCancel(ctx)
	c := upstream.NewChecker(upstream.CheckerOptions{Version: "bench"}, upstream.CheckerDeps{
		Registry: reg, Transport: up.Transport(), Store: store, Log: zerolog.Nop(),
	})
	start := time.Now()
	if err := c.Start(cctx); err != nil {
		cancel()
		close(stop)
		return err
	}
	deadline := time.Now().Add(10 * time.Minute)
	for c.Stats().Checks < uint64(e.cfg.servers) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	close(stop)
	cancel()
	c.Wait()
	healthy := c.StateCounts()[registry.HealthHealthy]
	errs := e.cfg.servers - healthy
	if errs < 0 {
		errs = 0
	}
	r.add(figure{Section: "health sweep", Name: fmt.Sprintf("wall time to check %d servers (default 32 workers)", e.cfg.servers), Unit: "s", Value: round(elapsed.Seconds()), Errors: errs,
		Note: "initialize + ping + DELETE each, against one loopback fake"})
	r.value("health sweep", "peak goroutines (bench process)", "goroutines", float64(peak.Load()), fmt.Sprintf("%d before the sweep", base))
	return nil
}
