// Command mcpgw-bench measures what the gateway adds to every call. It starts
// its own mcp-go echo upstream, the real `mcpgw serve` binary as a separate
// process, a plain httputil.ReverseProxy relay as the reference (this binary
// re-executed as a separate process), and a load generator, then measures
// both sides of each comparison in the same run, interleaved, and prints a
// table and bench/results.json.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"strings"
	"time"
)

// config says how much to measure; -smoke shrinks everything so that
// `make test` can keep the harness compiling and working in seconds.
type config struct {
	gateway     string
	out         string
	smoke       bool
	calls       int
	rounds      int
	duration    time.Duration
	clients     []int
	sessions    int
	servers     int
	toolsPer    int
	streamCount int
	sections    string
	catalog     string
	queries     string
	logLevel    string // the gateway's --log-level
	floor       string // the floor reference relay: "tcp" or "http"
}

func main() {
	if runProxyMode(os.Args) {
		return
	}
	var c config
	var clients string
	flag.StringVar(&c.gateway, "gateway", "bin/mcpgw", "path of the mcpgw binary to measure")
	flag.StringVar(&c.logLevel, "gateway-log-level", "info", "the measured gateway's --log-level; info, serve's default, logs one access event per MCP request to its stderr, which the harness reads into memory")
	flag.StringVar(&c.out, "out", "bench/results.json", "where to write the machine-readable results")
	flag.BoolVar(&c.smoke, "smoke", false, "tiny configuration: checks that the harness works, measures nothing worth quoting")
	flag.IntVar(&c.calls, "calls", 5000, "sequential tools/call per side for the latency comparison")
	flag.IntVar(&c.rounds, "rounds", 3, "times the latency and throughput sections run; each of their figures is the median over the rounds")
	flag.DurationVar(&c.duration, "duration", 5*time.Second, "length of each throughput run")
	flag.StringVar(&clients, "clients", "16,64", "concurrent clients of the throughput runs")
	flag.IntVar(&c.sessions, "sessions", 10000, "idle sessions opened for the per-session memory figure")
	flag.IntVar(&c.servers, "servers", 10000, "servers registered for the registry-scale figures")
	flag.IntVar(&c.toolsPer, "tools-per-server", 10, "tools per registered server for the registry-scale figures")
	flag.IntVar(&c.streamCount, "stream-samples", 200, "progress notifications timed per side")
	flag.StringVar(&c.floor, "floor", "tcp", "the floor reference relay of the relay sections: tcp (a TCP copy, splice(2)) or http (a minimal HTTP/1.1 relay that reads each message's framing and nothing else)")
	flag.StringVar(&c.sections, "sections", "latency,throughput,invoke,streaming,sessions,registry,finder,health", "comma-separated sections to run")
	flag.StringVar(&c.catalog, "catalog", "testdata/catalog", "registration files of the finder section")
	flag.StringVar(&c.queries, "queries", "testdata/finder/queries.json", "labeled queries of the finder section")
	flag.Parse()
	if c.floor != "tcp" && c.floor != "http" {
		fmt.Fprintf(os.Stderr, "mcpgw-bench: -floor %q: want tcp or http\n", c.floor)
		os.Exit(2)
	}
	for _, s := range strings.Split(clients, ",") {
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(s), "%d", &n); err == nil && n > 0 {
			c.clients = append(c.clients, n)
		}
	}
	if c.smoke {
		c.calls, c.duration, c.clients, c.sessions, c.servers, c.toolsPer, c.streamCount = 50, 300*time.Millisecond, []int{4}, 50, 30, 3, 5
		c.rounds = 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	r, err := run(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcpgw-bench:", err)
		os.Exit(1)
	}
	r.print(os.Stdout)
	if err := r.write(c.out); err != nil {
		fmt.Fprintln(os.Stderr, "mcpgw-bench:", err)
		os.Exit(1)
	}
	if r.failed() {
		fmt.Fprintln(os.Stderr, "mcpgw-bench: some runs had errors (see the table)")
		os.Exit(1)
	}
}

// runProxyMode runs the binary as one of the reference relays when its
// arguments ask for one (the harness re-executes itself for them), and
// reports whether it did.
func runProxyMode(args []string) bool {
	if len(args) < 2 {
		return false
	}
	switch args[1] {
	case "naive-proxy":
		runNaiveProxy(args[2:])
	case "tcp-proxy":
		runTCPProxy(args[2:])
	case "http-relay":
		runHTTPRelay(args[2:])
	default:
		return false
	}
	return true
}

// proxyFlags reads a reference relay's --listen and --target.
func proxyFlags(mode string, args []string) (string, *url.URL) {
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	target := fs.String("target", "", "upstream base URL")
	_ = fs.Parse(args)
	u, err := url.Parse(*target)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	return *listen, u
}

// runNaiveProxy is the reference relay: httputil.ReverseProxy with default
// settings (flushing event streams), one upstream, no policy, no sessions.
func runNaiveProxy(args []string) {
	listen, u := proxyFlags("naive-proxy", args)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	srv := &http.Server{Addr: listen, Handler: rp}
	fmt.Fprintln(os.Stderr, "naive proxy on", listen)
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// runTCPProxy is the floor every relay stands on: it understands nothing,
// it copies bytes between the client's TCP connection and one it opens to
// the upstream (splice(2) on Linux). What it adds to a call is what the
// second loopback hop and one more process costs on this machine.
func runTCPProxy(args []string) {
	listen, u := proxyFlags("tcp-proxy", args)
	serveConns(listen, func(c net.Conn) {
		defer c.Close()
		up, err := net.Dial("tcp", u.Host)
		if err != nil {
			return
		}
		defer up.Close()
		go func() { _, _ = io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
		_, _ = io.Copy(c, up)
	})
}

// serveConns accepts connections on listen for good, each handled by a
// goroutine of its own; the reference relays exit on a listener error.
func serveConns(listen string, handle func(net.Conn)) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go handle(c)
	}
}

// machine describes where the figures were measured.
type machine struct {
	Cores int    `json:"cores"`
	CPU   string `json:"cpu"`
	Go    string `json:"go"`
	OS    string `json:"os"`
}

func thisMachine() machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				if _, v, ok := strings.Cut(line, ":"); ok {
					m.CPU = strings.TrimSpace(v)
					break
				}
			}
		}
	}
	return m
}

func writeJSONFile(path string, v any) error {
	if i := strings.LastIndexByte(path, '/'); i > 0 {
		if err := os.MkdirAll(path[:i], 0o755); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
