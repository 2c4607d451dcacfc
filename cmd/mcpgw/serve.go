package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/mcpgw/mcpgw/gateway"
	"github.com/mcpgw/mcpgw/internal/logbuf"
	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/search"
	"github.com/mcpgw/mcpgw/upstream"
)

func newServeCmd() *cobra.Command {
	flagged := defaultServeConfig()
	var configFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway, registry, meta MCP server and REST API on one listener",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configFile == "" {
				configFile = os.Getenv("MCPGW_CONFIG")
			}
			cfg, err := loadServeConfig(cmd.Flags(), flagged, configFile, os.Environ())
			if err != nil {
				return &exitError{code: exitInvalid, err: fmt.Errorf("invalid configuration:\n%w", err)}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&configFile, "config", "", "YAML configuration file (flags and MCPGW_* environment variables override it)")
	bindFlags(cmd.Flags(), &flagged)
	return cmd
}

func newLogger(cfg serveConfig, w interface{ Write([]byte) (int, error) }) zerolog.Logger {
	level, _ := zerolog.ParseLevel(cfg.LogLevel)
	var lg zerolog.Logger
	if cfg.LogFormat == "console" {
		lg = zerolog.New(zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339})
	} else {
		lg = zerolog.New(w)
	}
	return lg.Level(level).With().Timestamp().Logger()
}

// levelWriter batches info and debug lines (logbuf) and writes warnings
// and errors at once, with whatever came before them.
type levelWriter struct{ w *logbuf.Writer }

func (l levelWriter) Write(p []byte) (int, error) { return l.w.Write(p) }

func (l levelWriter) WriteLevel(level zerolog.Level, p []byte) (int, error) {
	if level >= zerolog.WarnLevel && level <= zerolog.PanicLevel {
		return l.w.WriteNow(p)
	}
	return l.w.Write(p)
}

var _ zerolog.LevelWriter = levelWriter{}

// serve wires every package together and runs until ctx ends.
func serve(ctx context.Context, cfg serveConfig, logOut interface{ Write([]byte) (int, error) }) error {
	if f, ok := logOut.(*os.File); ok && cfg.LogFormat != "console" {
		// JSON lines to a file or pipe: one write per batch rather than
		// one per request (see internal/logbuf); in-memory writers (tests)
		// and the console format for people get every line at once.
		bw := logbuf.New(f, logbuf.Options{})
		defer bw.Close()
		logOut = levelWriter{bw}
	}
	lg := newLogger(cfg, logOut)
	defer startGCFloor(uint64(cfg.GCMinHeapMiB) << 20)()
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return failed(fmt.Errorf("data directory: %w", err))
	}
	store, err := openStore(ctx, cfg, lg)
	if err != nil {
		return failed(err)
	}
	defer store.Close()
	tokenFile, err := ensureAdminKey(ctx, store, cfg, lg)
	if err != nil {
		return failed(err)
	}
	key, err := sessionKey(ctx, store, cfg.Data)
	if err != nil {
		return failed(err)
	}
	sealer, err := gateway.NewSealer(key)
	if err != nil {
		return failed(err)
	}
	up := upstream.New(upstream.Options{}, version)
	defer up.Close()
	reg := registry.NewService(store)
	authn, policy, err := newAccess(ctx, cfg, store, reg, lg)
	if err != nil {
		return failed(err)
	}
	finder, err := search.New(search.Options{Log: lg})
	if err != nil {
		return failed(err)
	}
	defer finder.Close()
	// With --embeddings-url the finder is the hybrid ranking around the
	// text index (embeddings.go); its worker stops before the store closes.
	findSvc, stopFind, err := newFinder(cfg, finder, store, lg)
	if err != nil {
		return failed(err)
	}
	defer stopFind()
	// Subscribe before loading: Load holds the index while it lists the
	// store, so a change committed meanwhile is applied after it, in order.
	reg.Subscribe(findSvc.Apply)
	// The index is built in the background: a large registry (100,000
	// tools take over a minute) must not hold up relaying. A small one is
	// ready before the listener opens; a registry too large to be indexed
	// within the wait is not waited for at all, which would only delay
	// readiness.
	if err := findSvc.LoadInBackground(ctx, reg.List); err != nil {
		return failed(err)
	}
	if n := registeredTools(ctx, reg); n > finderWaitTools {
		lg.Info().Int("tools", n).Msg("finder index is being built in the background; the finder answers 503 until it is ready")
	} else if !findSvc.WaitLoaded(500 * time.Millisecond) {
		lg.Info().Msg("finder index is still being built; the finder answers 503 until it is ready")
	}
	sessions := upstream.NewSessions(up.RelayTransport(), version, upstream.SessionOptions{})
	defer sessions.Close()
	// The health checker follows the registry like the routing table. Its
	// context ends, and its last states are saved, before the store closes.
	// On a shared store one replica checks for all (see replicas.go).
	leader, stopElection := electHealthChecker(ctx, store)
	defer stopElection()
	healthCtx, stopHealth := context.WithCancel(ctx)
	health := upstream.NewChecker(upstream.CheckerOptions{
		Version: version, Interval: duration(cfg.HealthInterval), Timeout: duration(cfg.HealthTimeout), Concurrency: int(cfg.HealthWorkers),
	}, upstream.CheckerDeps{
		Registry: reg, Transport: up.Transport(), Store: store, Log: lg, Leader: leader,
	})
	defer health.Wait()
	defer stopHealth()
	metrics := newMetrics(health, finder)
	addFinderMetrics(metrics, findSvc)
	gw, err := gateway.New(gateway.Options{
		MaxBodyBytes:    cfg.MaxBodyBytes,
		PublicURL:       cfg.PublicURL,
		Version:         version,
		AllowedHosts:    cfg.AllowedHosts,
		UpstreamTimeout: cfg.upstreamTimeout(),
	}, gateway.Deps{
		Registry:  reg,
		Verifier:  authn,
		Policy:    policy,
		Tools:     up,
		Transport: up.RelayTransport(),
		Sealer:    sealer,
		Log:       lg,
		Finder:    findSvc,
		Invoker:   sessions,
		Health:    healthSource(health, leader, store, lg),
		Metrics:   metrics,
	})
	if err != nil {
		return failed(err)
	}
	if err := setUILogin(cfg, gw, authn, sealer, lg); err != nil {
		return failed(err)
	}
	if err := gw.Load(ctx); err != nil {
		return failed(err)
	}
	if err := health.Start(healthCtx); err != nil {
		return failed(err)
	}
	defer followReplicas(ctx, store, reg, policy, health, leader, lg)()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return failed(fmt.Errorf("listen: %w", err))
	}
	if cfg.DebugListen != "" {
		stopDebug, err := serveDebug(cfg.DebugListen, lg)
		if err != nil {
			_ = ln.Close()
			return failed(err)
		}
		defer stopDebug()
	}
	srv := &http.Server{
		Handler:           gw,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          nil,
	}
	lg.Info().Str("listen", ln.Addr().String()).Str("data", cfg.Data).Str("admin_token_file", tokenFile).
		Str("version", version).Msg("mcpgw serving: MCP at /mcpgw/mcp, REST at /api/v1")
	// The ingress serves relay requests with its own HTTP/1.1 loop and
	// hands every other connection to srv.
	ingress := gateway.NewIngress(gw, srv, gateway.IngressOptions{
		ReadHeaderTimeout: srv.ReadHeaderTimeout, IdleTimeout: srv.IdleTimeout, Log: lg,
	})
	errc := make(chan error, 1)
	go func() { errc <- ingress.Serve(ln) }()
	select {
	case err := <-errc:
		return failed(fmt.Errorf("serve: %w", err))
	case <-ctx.Done():
	}
	lg.Info().Msg("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ingress.Shutdown(shutCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return failed(fmt.Errorf("shutdown: %w", err))
	}
	return nil
}

// finderWaitTools is the largest registry (in tools) whose finder index
// serve waits for before listening: about what is indexed in the 500 ms it
// waits at most.
const finderWaitTools = 1000

// registeredTools counts the tools of every registered server (from the
// registry's memory).
func registeredTools(ctx context.Context, reg *registry.Service) int {
	servers, err := reg.List(ctx)
	if err != nil {
		return 0
	}
	n := 0
	for _, s := range servers {
		n += len(s.ToolList)
	}
	return n
}

// newMetrics is the gateway's metrics registry with the counters that the
// health checker and the finder index keep themselves.
func newMetrics(health *upstream.Checker, finder *search.Index) *gateway.Metrics {
	m := gateway.NewMetrics()
	stat := func(f func(upstream.CheckerStats) uint64) func() float64 {
		return func() float64 { return float64(f(health.Stats())) }
	}
	m.CounterFunc("mcpgw_health_checks_total", "Health checks run.",
		stat(func(s upstream.CheckerStats) uint64 { return s.Checks }))
	m.CounterFunc("mcpgw_health_check_failures_total", "Health checks that found a server unhealthy.",
		stat(func(s upstream.CheckerStats) uint64 { return s.Failures }))
	m.CounterFunc("mcpgw_tool_list_changes_total", "Tool lists stored because the upstream's differed from the registered one.",
		stat(func(s upstream.CheckerStats) uint64 { return s.ToolListChanges }))
	m.GaugeFunc("mcpgw_finder_indexed_tools", "Tools in the finder's index.",
		func() float64 { return float64(finder.Stats().Tools) })
	return m
}

// defaultDataDir is where client commands look for the admin token.
func defaultDataDir() string {
	if d := strings.TrimSpace(os.Getenv("MCPGW_DATA")); d != "" {
		return d
	}
	return "./mcpgw-data"
}
