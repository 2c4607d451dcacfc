package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/rs/zerolog"
)

// serveDebug serves Go's profiles (/debug/pprof/) on addr, a loopback
// address of its own, so that an operator can see where a running gateway
// spends its time (BENCHMARKS.md shows how). The handlers are registered on
// a mux of their own, never on the gateway's listener.
func serveDebug(addr string, lg zerolog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug_listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	lg.Info().Str("debug_listen", ln.Addr().String()).Msg("profiles at /debug/pprof/")
	return func() { _ = srv.Close() }, nil
}
