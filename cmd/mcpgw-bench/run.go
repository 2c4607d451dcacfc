package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/registry/sqlite"
)

// side is one way of reaching the echo upstream.
type side struct {
	name string
	url  string
}

type env struct {
	cfg      config
	hc       *http.Client
	upstream *httptest.Server
	newConns atomic.Int64
	gw       *proc
	naive    *proc
	tcp      *proc
	direct   side
	viaGW    side
	viaNaive side
	viaTCP   side
}

func run(ctx context.Context, cfg config) (*results, error) {
	r := &results{Machine: thisMachine(), When: time.Now().UTC().Format(time.RFC3339), Smoke: cfg.smoke, started: time.Now()}
	e := &env{cfg: cfg, hc: newLoadClient()}
	st := server.NewStreamableHTTPServer(newBenchUpstream(), server.WithEndpointPath("/mcp"))
	e.upstream = httptest.NewUnstartedServer(st)
	e.upstream.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			e.newConns.Add(1)
		}
	}
	e.upstream.Start()
	defer e.upstream.Close()

	dir, err := os.MkdirTemp("", "mcpgw-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	e.gw, _, err = startGateway(ctx, cfg.gateway, filepath.Join(dir, "gw"), cfg.logLevel)
	if err != nil {
		return nil, err
	}
	defer e.gw.stop()
	if err := e.gw.register(e.hc, map[string]any{"server_name": "bench", "path": "/bench", "proxy_pass_url": e.upstream.URL + "/mcp", "tags": []string{"bench"}}); err != nil {
		return nil, err
	}
	e.naive, err = startProxy(ctx, "naive-proxy", e.upstream.URL)
	if err != nil {
		return nil, err
	}
	defer e.naive.stop()
	floorMode, floorName := "tcp-proxy", "tcp copy"
	if cfg.floor == "http" {
		floorMode, floorName = "http-relay", "http relay"
	}
	e.tcp, err = startProxy(ctx, floorMode, e.upstream.URL)
	if err != nil {
		return nil, err
	}
	defer e.tcp.stop()
	e.direct = side{"direct", e.upstream.URL + "/mcp"}
	e.viaGW = side{"mcpgw", "http://" + e.gw.addr + "/bench/mcp"}
	e.viaNaive = side{"reverseproxy", "http://" + e.naive.addr + "/mcp"}
	e.viaTCP = side{floorName, "http://" + e.tcp.addr + "/mcp"}

	sections := map[string]func(context.Context, *results) error{
		"latency":    e.latency,
		"throughput": e.throughput,
		"invoke":     e.invoke,
		"streaming":  e.streaming,
		"sessions":   e.sessions,
		"registry":   func(ctx context.Context, r *results) error { return e.registry(ctx, r, filepath.Join(dir, "scale")) },
		"finder":     e.finder,
		"health":     e.healthSweep,
	}
	for _, name := range strings.Split(cfg.sections, ",") {
		name = strings.TrimSpace(name)
		fn, ok := sections[name]
		if !ok {
			return nil, fmt.Errorf("unknown section %q", name)
		}
		rounds := 1
		if repeated[name] {
			rounds = max(1, cfg.rounds)
		}
		var done []*results
		// Each round of a repeated section is measured on its own; each
		// figure reported is the median over the rounds that measured it.
		for i := 0; i < rounds; i++ {
			if rounds > 1 {
				fmt.Fprintf(os.Stderr, "mcpgw-bench: %s, round %d of %d...\n", name, i+1, rounds)
			} else {
				fmt.Fprintf(os.Stderr, "mcpgw-bench: %s...\n", name)
			}
			ri := &results{}
			// A failed section is reported and the others still run, so
			// one stall does not lose every figure of a long run.
			// What a failed round measured before it failed is kept.
			if err := fn(ctx, ri); err != nil {
				fmt.Fprintf(os.Stderr, "mcpgw-bench: %s failed: %v\n", name, err)
				r.add(figure{Section: name, Name: "section failed", Errors: 1, Note: firstLine(err.Error())})
			}
			done = append(done, ri)
		}
		r.Figures = append(r.Figures, medianOfRounds(done)...)
	}
	return r, nil
}

// repeated names the sections that -rounds repeats: the relay comparisons,
// whose ratios move by a tenth from run to run on a shared machine.
var repeated = map[string]bool{"latency": true, "throughput": true}

func (e *env) conn(ctx context.Context, s side, modern bool) (*mcpConn, error) {
	c := &mcpConn{url: s.url, hc: e.hc, modern: modern}
	return c, c.init(ctx)
}

// latency: sequential tools/call, the sides interleaved call by call so
// that machine noise hits all of them alike.
func (e *env) latency(ctx context.Context, r *results) error {
	for _, gen := range []struct {
		name   string
		modern bool
	}{{"session " + sessionVersion, false}, {"stateless " + modernVersion, true}} {
		sides := []side{e.direct, e.viaGW, e.viaNaive, e.viaTCP}
		conns := make([]*mcpConn, len(sides))
		samples := make([]durations, len(sides))
		for i, s := range sides {
			c, err := e.conn(ctx, s, gen.modern)
			if err != nil {
				return fmt.Errorf("%s %s: %w", s.name, gen.name, err)
			}
			conns[i] = c
			for w := 0; w < 50; w++ { // warm the connections and caches
				if err := c.echo(ctx); err != nil {
					return fmt.Errorf("%s %s warm-up: %w", s.name, gen.name, err)
				}
			}
		}
		errs := make([]int, len(sides))
		// CPU time of each relaying process over the measured calls: one
		// call at a time, so it includes the cost of waking up for each.
		procs := []*proc{nil, e.gw, e.naive, e.tcp}
		cpu0 := make([]time.Duration, len(sides))
		for i, p := range procs {
			if p != nil {
				cpu0[i] = p.cpu()
			}
		}
		for n := 0; n < e.cfg.calls; n++ {
			for k := range sides {
				i := (n + k) % len(sides) // rotate who goes first
				t0 := time.Now()
				if err := conns[i].echo(ctx); err != nil {
					errs[i]++
					continue
				}
				samples[i] = append(samples[i], time.Since(t0))
			}
		}
		d, g, n, t := samples[0], samples[1], samples[2], samples[3]
		sec := "relay latency (" + gen.name + ")"
		for _, p := range []float64{50, 90, 99} {
			r.compare(sec, fmt.Sprintf("mcpgw p%g", p), "µs", us(g.pct(p)), "direct", us(d.pct(p)), errs[1])
			r.compare(sec, fmt.Sprintf("reverseproxy p%g", p), "µs", us(n.pct(p)), "direct", us(d.pct(p)), errs[2])
			r.compare(sec, fmt.Sprintf("%s p%g", e.viaTCP.name, p), "µs", us(t.pct(p)), "direct", us(d.pct(p)), errs[3])
		}
		addG := us(g.pct(50)) - us(d.pct(50))
		addN := us(n.pct(50)) - us(d.pct(50))
		addT := us(t.pct(50)) - us(d.pct(50))
		r.compare(sec, "added p50, mcpgw vs reverseproxy", "µs", addG, "reverseproxy added", addN, 0)
		r.compare(sec, "added p50, mcpgw vs "+e.viaTCP.name, "µs", addG, e.viaTCP.name+" added", addT, 0)
		cpuPer := func(i int) float64 { return us(procs[i].cpu()-cpu0[i]) / float64(max(1, len(samples[i]))) }
		g1, n1, t1 := cpuPer(1), cpuPer(2), cpuPer(3)
		r.compare(sec, "CPU per call, mcpgw vs reverseproxy", "µs", g1, "reverseproxy", n1, 0)
		r.compare(sec, "CPU per call, mcpgw vs "+e.viaTCP.name, "µs", g1, e.viaTCP.name, t1, 0)
	}
	return nil
}

// throughput: n clients call as fast as they can for a fixed time; each side
// runs twice in mirrored order (A B C C B A) to cancel drift.
func (e *env) throughput(ctx context.Context, r *results) error {
	sides := []side{e.direct, e.viaGW, e.viaNaive, e.viaTCP}
	procs := []*proc{nil, e.gw, e.naive, e.tcp}
	for _, n := range e.cfg.clients {
		calls := make([]int64, len(sides))
		errs := make([]int64, len(sides))
		// CPU of the relaying process while it relays, user and kernel:
		// mcpgw's, the ReverseProxy's and the TCP copy's, to read the
		// target against.
		var cpuUser, cpuSys [4]time.Duration
		order := []int{0, 1, 2, 3, 3, 2, 1, 0}
		for _, i := range order {
			newBefore := e.newConns.Load()
			relayProc := procs[i]
			var userBefore, sysBefore time.Duration
			if relayProc != nil {
				userBefore, sysBefore = relayProc.cpuSplit()
			}
			ok, bad, err := e.hammer(ctx, sides[i], n, e.cfg.duration/2)
			if err != nil {
				return err
			}
			calls[i] += ok
			errs[i] += bad
			if relayProc != nil {
				user, sys := relayProc.cpuSplit()
				cpuUser[i] += user - userBefore
				cpuSys[i] += sys - sysBefore
			}
			if i == 1 {
				if ok > 0 {
					conns := float64(e.newConns.Load()-newBefore) / float64(ok) * 1000
					r.value(fmt.Sprintf("relay throughput (%d clients)", n), "mcpgw new upstream connections per 1000 calls", "conns", conns, "includes the first connection of each client")
				}
			}
		}
		secs := e.cfg.duration.Seconds()
		sec := fmt.Sprintf("relay throughput (%d clients)", n)
		r.compare(sec, "mcpgw", "calls/s", float64(calls[1])/secs, "direct", float64(calls[0])/secs, int(errs[1]))
		r.compare(sec, "reverseproxy", "calls/s", float64(calls[2])/secs, "direct", float64(calls[0])/secs, int(errs[2]))
		r.compare(sec, e.viaTCP.name, "calls/s", float64(calls[3])/secs, "direct", float64(calls[0])/secs, int(errs[3]))
		if errs[0] > 0 {
			r.add(figure{Section: sec, Name: "direct errors", Unit: "errors", Errors: int(errs[0])})
		}
		if calls[1] > 0 && calls[2] > 0 {
			per := func(i int) float64 { return us(cpuUser[i]+cpuSys[i]) / float64(calls[i]) }
			r.compare(sec, "mcpgw CPU per relayed call", "µs", per(1), "reverseproxy", per(2), 0)
			r.value(sec, "mcpgw CPU per relayed call, kernel part", "µs", us(cpuSys[1])/float64(calls[1]),
				"system time of the gateway process / calls: the sockets' share, which any relay pays")
			r.value(sec, "reverseproxy CPU per relayed call, kernel part", "µs", us(cpuSys[2])/float64(calls[2]), "")
		}
		if calls[1] > 0 && calls[3] > 0 {
			per := func(i int) float64 { return us(cpuUser[i]+cpuSys[i]) / float64(calls[i]) }
			r.compare(sec, "mcpgw CPU per relayed call vs "+e.viaTCP.name, "µs", per(1), e.viaTCP.name, per(3), 0)
			r.value(sec, e.viaTCP.name+" CPU per relayed call, kernel part", "µs", us(cpuSys[3])/float64(calls[3]), "")
		}
	}
	return nil
}

func (e *env) hammer(ctx context.Context, s side, n int, d time.Duration) (ok, bad int64, err error) {
	conns := make([]*mcpConn, n)
	for i := range conns {
		if conns[i], err = e.conn(ctx, s, false); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	var okN, badN atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func(c *mcpConn) {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := c.echo(ctx); err != nil {
					badN.Add(1)
					continue
				}
				okN.Add(1)
			}
		}(c)
	}
	wg.Wait()
	return okN.Load(), badN.Load(), nil
}

// invoke: invoke_tool through /mcpgw/mcp against a direct call, with the
// echo's short answer and with a 64 KiB one (where passing the upstream's
// result on as bytes, not decoded and encoded again, shows).
func (e *env) invoke(ctx context.Context, r *results) error {
	meta := &mcpConn{url: "http://" + e.gw.addr + "/mcpgw/mcp", hc: e.hc}
	if err := meta.init(ctx); err != nil {
		return err
	}
	invokeArgs := func(msg string) string {
		return fmt.Sprintf(`{"service_path":"/bench","tool_name":"echo","arguments":{"message":%q}}`, msg)
	}
	if err := meta.callTool(ctx, "invoke_tool", invokeArgs("hello"), "Echo: hello"); err != nil {
		r.value("one-URL invoke_tool", "skipped", "", 0, "invoke_tool not available: "+firstLine(err.Error()))
		return nil
	}
	direct, err := e.conn(ctx, e.direct, false)
	if err != nil {
		return err
	}
	for _, size := range []int{0, 64 << 10} {
		msg, label := "hello", "invoke_tool"
		if size > 0 {
			msg, label = strings.Repeat("x", size), "invoke_tool, 64 KiB result"
		}
		want := "Echo: " + msg[:min(len(msg), 32)]
		var d, g durations
		errs := 0
		calls := e.cfg.calls / 5
		for n := 0; n < calls; n++ {
			t0 := time.Now()
			if err := direct.callTool(ctx, "echo", fmt.Sprintf(`{"message":%q}`, msg), want); err == nil {
				d = append(d, time.Since(t0))
			}
			t0 = time.Now()
			if err := meta.callTool(ctx, "invoke_tool", invokeArgs(msg), want); err != nil {
				errs++
				continue
			}
			g = append(g, time.Since(t0))
		}
		r.compare("one-URL invoke_tool", label+" p50", "µs", us(g.pct(50)), "direct", us(d.pct(50)), errs)
		r.compare("one-URL invoke_tool", label+" p99", "µs", us(g.pct(99)), "direct", us(d.pct(99)), 0)
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// streaming: upstream send → client receipt of progress notifications. A
// side whose stream breaks counts an error and the others go on.
func (e *env) streaming(ctx context.Context, r *results) error {
	sides := []side{e.direct, e.viaGW, e.viaNaive}
	samples := make([]durations, len(sides))
	errs := make([]int, len(sides))
	for round := 0; round*10 < e.cfg.streamCount; round++ {
		for i, s := range sides {
			c, err := e.conn(ctx, s, false)
			if err != nil {
				errs[i]++
				continue
			}
			lat, err := c.progressLatencies(ctx, 10)
			if err != nil {
				errs[i]++
				fmt.Fprintf(os.Stderr, "mcpgw-bench: streaming %s: %v\n", s.name, err)
			}
			samples[i] = append(samples[i], lat...)
		}
	}
	for i, name := range []string{"mcpgw", "reverseproxy"} {
		r.compare("streaming (progress notification delivery)", name+" p50", "µs", us(samples[i+1].pct(50)), "direct", us(samples[0].pct(50)), errs[i+1])
		r.compare("streaming (progress notification delivery)", name+" p99", "µs", us(samples[i+1].pct(99)), "direct", us(samples[0].pct(99)), 0)
	}
	if errs[0] > 0 {
		r.add(figure{Section: "streaming (progress notification delivery)", Name: "direct errors", Unit: "errors", Errors: errs[0]})
	}
	return nil
}

// sessions: gateway RSS with n idle sessions open through it vs none.
func (e *env) sessions(ctx context.Context, r *results) error {
	before := e.gw.rss()
	for i := 0; i < e.cfg.sessions; i++ {
		if _, err := e.conn(ctx, e.viaGW, false); err != nil {
			return err
		}
	}
	time.Sleep(500 * time.Millisecond)
	after := e.gw.rss()
	r.value("sessions", "gateway RSS with no sessions", "MiB", float64(before)/(1<<20), "")
	r.value("sessions", fmt.Sprintf("gateway RSS with %d idle sessions", e.cfg.sessions), "MiB", float64(after)/(1<<20), "")
	r.value("sessions", "gateway memory per idle session", "bytes", float64(after-before)/float64(e.cfg.sessions), "session ids are sealed, not stored: no per-session table")
	return nil
}

// registry: registration throughput, start-up time and RSS with many
// servers, and list_services latency at that size.
func (e *env) registry(ctx context.Context, r *results, dir string) error {
	gw, _, err := startGateway(ctx, e.cfg.gateway, dir, e.cfg.logLevel)
	if err != nil {
		return err
	}
	tools := catalogTools()
	doc := func(i int) map[string]any {
		return map[string]any{
			"server_name": fmt.Sprintf("scale-%05d", i), "path": fmt.Sprintf("/scale-%05d", i),
			"proxy_pass_url": "http://127.0.0.1:9/mcp", "tags": []string{fmt.Sprintf("t%d", i%50)},
			"tool_list": toolSlice(tools, i, e.cfg.toolsPer), "health_check": false,
		}
	}
	// Registration throughput through REST is measured on the first
	// servers; the rest go straight into the store (the same Service
	// path, without HTTP), so that a 10,000-server registry is ready in
	// minutes rather than the better part of an hour on a busy machine.
	viaREST := min(e.cfg.servers, 1000)
	start := time.Now()
	var wg sync.WaitGroup
	var firstErr atomic.Value
	next := atomic.Int64{}
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= viaREST {
					return
				}
				if err := gw.register(e.hc, doc(i)); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if v := firstErr.Load(); v != nil {
		gw.stop()
		return v.(error)
	}
	elapsed := time.Since(start)
	r.value("registry scale", "registration throughput (4 writers, REST)", "servers/s", float64(viaREST)/elapsed.Seconds(), fmt.Sprintf("first %d servers, %d tools each, SQLite synchronous=FULL", viaREST, e.cfg.toolsPer))
	gw.stop()
	if err := fillStore(ctx, filepath.Join(dir, "mcpgw.db"), viaREST, e.cfg.servers, doc); err != nil {
		return err
	}

	gw, ready, err := startGateway(ctx, e.cfg.gateway, dir, e.cfg.logLevel)
	if err != nil {
		return err
	}
	defer gw.stop()
	r.value("registry scale", fmt.Sprintf("start-up to ready with %d servers / %d tools", e.cfg.servers, e.cfg.servers*e.cfg.toolsPer), "ms", float64(ready.Milliseconds()), "process start to /readyz 200")
	r.value("registry scale", "gateway RSS after start-up", "MiB", float64(gw.rss())/(1<<20), "")
	// The finder's index is built in the background: time until it answers.
	t0 := time.Now()
	for time.Since(t0) < 10*time.Minute {
		resp, err := e.hc.Get("http://" + gw.addr + "/api/v1/search?q=warranty")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.value("registry scale", "finder ready after start-up", "s", (ready + time.Since(t0)).Seconds(), "index built in the background; relaying and the registry serve meanwhile")
	r.value("registry scale", "gateway RSS with the finder index", "MiB", float64(gw.rss())/(1<<20), "")
	meta := &mcpConn{url: "http://" + gw.addr + "/mcpgw/mcp", hc: e.hc}
	if err := meta.init(ctx); err != nil {
		return err
	}
	var lat durations
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		if err := meta.callTool(ctx, "list_services", `{}`, `"total_count":`+fmt.Sprint(e.cfg.servers)); err != nil {
			return fmt.Errorf("list_services: %w", err)
		}
		lat = append(lat, time.Since(t0))
	}
	r.value("registry scale", "list_services p50", "ms", us(lat.pct(50))/1000, fmt.Sprintf("%d services", e.cfg.servers))
	return nil
}

// fillStore registers servers [from, to) directly through a registry
// Service on the gateway's SQLite file, while the gateway is stopped.
func fillStore(ctx context.Context, file string, from, to int, doc func(int) map[string]any) error {
	store, err := sqlite.Open(ctx, file)
	if err != nil {
		return err
	}
	defer store.Close()
	reg := registry.NewService(store)
	for i := from; i < to; i++ {
		b, _ := json.Marshal(doc(i))
		if _, _, err := reg.Register(ctx, b, false); err != nil {
			return fmt.Errorf("fill store: %w", err)
		}
	}
	return nil
}

// catalogTools loads the real tool definitions of testdata/catalog.
func catalogTools() []map[string]any {
	var out []map[string]any
	files, _ := filepath.Glob("testdata/catalog/*.json")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var doc struct {
			ToolList []map[string]any `json:"tool_list"`
		}
		if json.Unmarshal(b, &doc) == nil {
			out = append(out, doc.ToolList...)
		}
	}
	if len(out) == 0 {
		out = append(out, map[string]any{"name": "echo", "parsed_description": map[string]any{"main": "Echoes the message"}})
	}
	return out
}

func toolSlice(all []map[string]any, seed, n int) []map[string]any {
	out := make([]map[string]any, 0, n)
	for k := 0; k < n; k++ {
		t := all[(seed*n+k)%len(all)]
		c := make(map[string]any, len(t))
		for key, v := range t {
			c[key] = v
		}
		c["name"] = fmt.Sprintf("%v_%d", t["name"], k)
		out = append(out, c)
	}
	return out
}
