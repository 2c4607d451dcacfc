package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcpgw/mcpgw/registry/postgres/pgtest"
	"github.com/mcpgw/mcpgw/upstream/upstreamtest"
)

// replicaProc is one `mcpgw serve --store postgres://…` of the test.
type replicaProc struct {
	*gatewayProc
	name string
}

func startReplica(t *testing.T, bin, name, data, store string) *replicaProc {
	t.Helper()
	port := freePort(t)
	g := &gatewayProc{url: fmt.Sprintf("http://127.0.0.1:%d", port), log: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	logFile, err := os.Create(g.log)
	if err != nil {
		t.Fatal(err)
	}
	g.cmd = exec.Command(bin, "serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data", data, "--log-level", "info")
	g.cmd.Dir = t.TempDir()
	// The store URL through the environment, as a deployment would pass a
	// URL holding a password.
	g.cmd.Env = cleanEnv("MCPGW_STORE=" + store)
	g.cmd.Stdout, g.cmd.Stderr = logFile, logFile
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		g.err = g.cmd.Wait()
		logFile.Close()
		close(g.done)
	}()
	r := &replicaProc{gatewayProc: g, name: name}
	t.Cleanup(func() {
		select {
		case <-g.done:
		default:
			g.cmd.Process.Kill()
			<-g.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(g.log)
			t.Logf("replica %s log:\n%s", name, repTail(string(b), 60))
		}
	})
	repWait(t, 30*time.Second, "replica "+name+" to be ready", func() bool {
		select {
		case <-g.done:
			b, _ := os.ReadFile(g.log)
			t.Fatalf("replica %s exited early: %v\n%s", name, g.err, b)
		default:
		}
		return r.ready()
	})
	return r
}

func repTail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func (r *replicaProc) ready() bool {
	resp, err := http.Get(r.url + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// logHas reports whether the replica's log holds s.
func (r *replicaProc) logHas(s string) bool {
	b, _ := os.ReadFile(r.log)
	return bytes.Contains(b, []byte(s))
}

func repWait(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var repClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64},
}

// rest calls the REST API of base with token and returns status and body.
func repREST(t *testing.T, method, base, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := repClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s%s: %v", method, base, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// repResult is one JSON-RPC exchange through a relay.
type repResult struct {
	status  int
	session string
	msg     string // the JSON-RPC response (from JSON or from an SSE data line)
}

// rpc posts one JSON-RPC message to base's relay at /path/mcp, with
// X-Authorization token and the given session.
func repRPC(ctx context.Context, base, path, token, session, body string) (repResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path+"/mcp", strings.NewReader(body))
	if err != nil {
		return repResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("X-Authorization", "Bearer "+token)
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("MCP-Protocol-Version", "2025-06-18")
	}
	resp, err := repClient.Do(req)
	if err != nil {
		return repResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return repResult{}, err
	}
	out := repResult{status: resp.StatusCode, session: resp.Header.Get("Mcp-Session-Id"), msg: string(b)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		out.msg = ""
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data:"); ok && strings.Contains(d, `"id"`) {
				out.msg = strings.TrimSpace(d)
			}
		}
	}
	return out, nil
}

const repInit = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"replicas-test","version":"1"}}}`

func repCall(id int, msg string) string {
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"message":%q}}}`, id, msg)
}

// session initializes an MCP session through base and returns its id.
func repSession(t *testing.T, base, path, token string) string {
	t.Helper()
	ctx := context.Background()
	r, err := repRPC(ctx, base, path, token, "", repInit)
	if err != nil || r.status != http.StatusOK || r.session == "" {
		t.Fatalf("initialize through %s: %+v %v", base, r, err)
	}
	if n, err := repRPC(ctx, base, path, token, r.session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); err != nil || n.status >= 300 {
		t.Fatalf("initialized through %s: %+v %v", base, n, err)
	}
	return r.session
}

// echoed reports whether an exchange is a successful echo of msg.
func (r repResult) echoed(msg string) bool {
	return r.status == http.StatusOK && strings.Contains(r.msg, `"result"`) && strings.Contains(r.msg, "Echo: "+msg)
}

// switchable is an upstream in front of another that can be turned off
// (then it answers 503), for health checks to notice.
func repSwitchable(t *testing.T, target string) (*httptest.Server, *atomic.Bool) {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	on := &atomic.Bool{}
	on.Store(true)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !on.Load() {
			http.Error(w, "switched off", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts, on
}

// healthOf returns the status base shows for path.
func repHealth(t *testing.T, base, token, path string) string {
	t.Helper()
	code, body := repREST(t, http.MethodGet, base, "/api/v1/health", token, "")
	if code != http.StatusOK {
		t.Fatalf("health on %s: %d %s", base, code, body)
	}
	var m map[string]struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("health: %v: %s", err, body)
	}
	return m[path].Status
}

const repLeaderLine = "this replica is the leader"

// TestReplicas runs two `mcpgw serve` processes on one PostgreSQL database,
// as two replicas behind a load balancer without stickiness.
func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs PostgreSQL")
	}
	cluster := pgtest.New(t)
	store := cluster.Database(t)
	bin := buildMcpgw(t, t.TempDir())
	up := upstreamtest.New(t, upstreamtest.Options{Name: "echo-upstream"})
	flaky, flakyOn := repSwitchable(t, up.URL)
	bench := os.Getenv("MCPGW_BENCH_OUT")

	dataA, dataB := t.TempDir(), t.TempDir()
	a := startReplica(t, bin, "A", dataA, store)
	repWait(t, 10*time.Second, "A to lead the health checks", func() bool { return a.logHas(repLeaderLine) })
	// The admin token goes with the deployment: B gets A's copy and must
	// not replace the key (which would lock A's admins out).
	tok, err := os.ReadFile(filepath.Join(dataA, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataB, "admin.token"), tok, 0o600); err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tok))
	b := startReplica(t, bin, "B", dataB, store)
	if _, err := os.Stat(filepath.Join(dataB, "session.key")); err == nil {
		t.Error("B wrote a session key file: on a shared store the key is the database's")
	}

	t.Run("register on A, call through B", func(t *testing.T) {
		reg := fmt.Sprintf(`{"server_name": "echo", "path": "/echo", "proxy_pass_url": %q}`, up.URL)
		start := time.Now()
		if code, body := repREST(t, http.MethodPost, a.url, "/api/v1/servers", token, reg); code != http.StatusCreated && code != http.StatusOK {
			t.Fatalf("register on A: %d %s", code, body)
		}
		repWait(t, time.Second, "the registration to reach B", func() bool {
			code, _ := repREST(t, http.MethodGet, b.url, "/api/v1/servers/echo", token, "")
			return code == http.StatusOK
		})
		t.Logf("registration on A visible through B's REST API after %v", time.Since(start))
		sid := repSession(t, b.url, "/echo", token)
		r, err := repRPC(context.Background(), b.url, "/echo", token, sid, repCall(2, "via B"))
		if err != nil || !r.echoed("via B") {
			t.Fatalf("tools/call through B: %+v %v", r, err)
		}
	})

	t.Run("session started on A continues on B", func(t *testing.T) {
		sid := repSession(t, a.url, "/echo", token)
		ctx := context.Background()
		l, err := repRPC(ctx, b.url, "/echo", token, sid, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
		if err != nil || l.status != http.StatusOK || !strings.Contains(l.msg, `"echo"`) {
			t.Fatalf("tools/list through B with A's session: %+v %v", l, err)
		}
		c, err := repRPC(ctx, b.url, "/echo", token, sid, repCall(3, "same session"))
		if err != nil || !c.echoed("same session") {
			t.Fatalf("tools/call through B with A's session: %+v %v", c, err)
		}
		// And back on A: one session, any replica.
		c, err = repRPC(ctx, a.url, "/echo", token, sid, repCall(4, "back on A"))
		if err != nil || !c.echoed("back on A") {
			t.Fatalf("tools/call through A again: %+v %v", c, err)
		}
	})

	t.Run("tools/list_changed relayed by B reaches the checking replica", func(t *testing.T) {
		// B does not run the health checks: it passes the recheck to A,
		// which re-reads the tools and stores them; B follows.
		tr, err := transport.NewStreamableHTTP(b.url+"/echo/mcp", transport.WithContinuousListening(),
			transport.WithHTTPHeaders(map[string]string{"X-Authorization": "Bearer " + token}))
		if err != nil {
			t.Fatal(err)
		}
		c := client.NewClient(tr, client.WithProtocolVersion("2025-06-18"))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		init := mcp.InitializeRequest{}
		init.Params.ClientInfo = mcp.Implementation{Name: "replicas-test", Version: "1"}
		init.Params.ProtocolVersion = "2025-06-18"
		if _, err := c.Initialize(ctx, init); err != nil {
			t.Fatal(err)
		}
		added := ""
		repWait(t, 15*time.Second, "a tool added upstream to show on B", func() bool {
			if added == "" || time.Now().UnixMilli()%1000 < 20 {
				// The GET stream may open after Initialize returns: add
				// tools until the notification flows.
				added = "added_" + strings.ReplaceAll(time.Now().Format("150405.000000"), ".", "_")
				up.MCP.AddTool(mcp.NewTool(added), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
					return mcp.NewToolResultText("ok"), nil
				})
			}
			_, body := repREST(t, http.MethodGet, b.url, "/api/v1/servers/echo", token, "")
			return strings.Contains(body, `"added_`)
		})
	})

	t.Run("policy changed on B is enforced on A within a second", func(t *testing.T) {
		code, body := repREST(t, http.MethodPost, b.url, "/api/v1/apikeys", token, `{"name": "caller", "groups": ["callers"]}`)
		if code != http.StatusCreated {
			t.Fatalf("create key on B: %d %s", code, body)
		}
		var key struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal([]byte(body), &key); err != nil || key.Key == "" {
			t.Fatalf("key: %v %s", err, body)
		}
		ctx := context.Background()
		sid := repSession(t, a.url, "/echo", key.Key)
		if r, err := repRPC(ctx, a.url, "/echo", key.Key, sid, repCall(5, "local mode")); err != nil || !r.echoed("local mode") {
			t.Fatalf("the caller cannot call before any policy: %+v %v", r, err)
		}
		policy := `{"group_mappings": {"callers": ["listers"]}, "scopes": {"listers": [{"server": "/echo", "methods": ["initialize", "notifications/initialized", "ping", "tools/list"]}]}}`
		if code, body := repREST(t, http.MethodPut, b.url, "/api/v1/policy", token, policy); code != http.StatusOK {
			t.Fatalf("put policy on B: %d %s", code, body)
		}
		start := time.Now()
		repWait(t, time.Second, "A to refuse the tool call the new policy denies", func() bool {
			r, err := repRPC(ctx, a.url, "/echo", key.Key, sid, repCall(6, "denied"))
			return err == nil && !r.echoed("denied") && (r.status >= 400 || strings.Contains(r.msg, `"error"`))
		})
		t.Logf("policy put on B enforced on A after %v", time.Since(start))
		if r, err := repRPC(ctx, a.url, "/echo", key.Key, sid, `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`); err != nil || r.status != http.StatusOK || !strings.Contains(r.msg, `"result"`) {
			t.Errorf("tools/list, which the policy grants, through A: %+v %v", r, err)
		}
	})

	t.Run("followers serve the leader's health states", func(t *testing.T) {
		reg := fmt.Sprintf(`{"server_name": "flaky", "path": "/flaky", "proxy_pass_url": %q, "health_check_interval": "2s"}`, flaky.URL+"/mcp")
		if code, body := repREST(t, http.MethodPost, a.url, "/api/v1/servers", token, reg); code >= 300 {
			t.Fatalf("register flaky: %d %s", code, body)
		}
		repWait(t, 10*time.Second, "B to show the leader's healthy state of /flaky", func() bool {
			return repHealth(t, b.url, token, "/flaky") == "healthy"
		})
		if b.logHas(repLeaderLine) {
			t.Fatal("B leads the health checks too")
		}
	})

	t.Run("kill -9 A under load; B serves every request sent to it", func(t *testing.T) {
		const clients = 32
		sessions := make([]string, clients)
		for i := range sessions {
			via := a
			if i%2 == 1 {
				via = b
			}
			sessions[i] = repSession(t, via.url, "/echo", token)
		}
		type outcome struct {
			toA         bool
			ok          bool
			start, end  time.Time
			errText     string
			phaseTwoReq bool
		}
		var mu sync.Mutex
		var outcomes []outcome
		// killedAt is when the kill was sent; deadAt when A was seen to
		// exit. A request that starts in between may still reach A.
		var killedAt, deadAt atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for i := 0; i < clients; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				for n := 0; ctx.Err() == nil; n++ {
					target := b
					if (i+n)%2 == 0 {
						target = a
					}
					msg := fmt.Sprintf("c%d-%d", i, n)
					o := outcome{toA: target == a, start: time.Now()}
					r, err := repRPC(context.Background(), target.url, "/echo", token, sessions[i], repCall(n+10, msg))
					o.end = time.Now()
					o.ok = err == nil && r.echoed(msg)
					if !o.ok {
						o.errText = fmt.Sprintf("%+v %v", r, err)
					}
					o.phaseTwoReq = deadAt.Load() != 0 && o.start.UnixNano() > deadAt.Load()
					mu.Lock()
					outcomes = append(outcomes, o)
					mu.Unlock()
				}
			}(i)
		}
		time.Sleep(1500 * time.Millisecond)
		killedAt.Store(time.Now().UnixNano())
		if err := a.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-a.done
		deadAt.Store(time.Now().UnixNano())
		time.Sleep(1500 * time.Millisecond)
		cancel()
		wg.Wait()

		kill := time.Unix(0, killedAt.Load())
		var bSent, bOK, aBefore, aBeforeOK, aAfterOK int
		var latBoth, latB []time.Duration
		var bothDur, bDur time.Duration
		var firstStart time.Time
		for _, o := range outcomes {
			if firstStart.IsZero() || o.start.Before(firstStart) {
				firstStart = o.start
			}
		}
		bothDur, bDur = kill.Sub(firstStart), time.Since(kill)
		for _, o := range outcomes {
			switch {
			case !o.toA:
				bSent++
				if o.ok {
					bOK++
				} else {
					t.Errorf("a request to B failed: %s", o.errText)
				}
			case o.end.Before(kill):
				aBefore++
				if o.ok {
					aBeforeOK++
				} else {
					t.Errorf("a request to A failed before A was killed: %s", o.errText)
				}
			case o.phaseTwoReq && o.ok:
				aAfterOK++
			}
			if o.ok && o.end.Before(kill) {
				latBoth = append(latBoth, o.end.Sub(o.start))
			}
			if o.ok && o.phaseTwoReq {
				latB = append(latB, o.end.Sub(o.start))
			}
		}
		if aAfterOK > 0 {
			t.Errorf("%d requests sent to A after kill -9 succeeded: A was not killed", aAfterOK)
		}
		if bSent < 100 || aBefore < 100 {
			t.Fatalf("too little load: %d requests to B, %d to A before the kill", bSent, aBefore)
		}
		summary := fmt.Sprintf("relay tools/call, %d clients alternating between replicas: two replicas %d calls in %v (%.0f/s, p50 %v, p99 %v); "+
			"after kill -9 of A, B alone %d calls in %v (%.0f/s, p50 %v, p99 %v); B failed %d of %d",
			clients, len(latBoth), bothDur.Round(time.Millisecond), float64(len(latBoth))/bothDur.Seconds(), repPct(latBoth, 50), repPct(latBoth, 99),
			len(latB), bDur.Round(time.Millisecond), float64(len(latB))/bDur.Seconds(), repPct(latB, 50), repPct(latB, 99), bSent-bOK, bSent)
		t.Log(summary)
		if bench != "" {
			repAppend(bench, summary)
		}
	})

	t.Run("the health leader moves when its holder dies", func(t *testing.T) {
		repWait(t, 10*time.Second, "B to take over the health checks", func() bool { return b.logHas(repLeaderLine) })
		flakyOn.Store(false)
		start := time.Now()
		repWait(t, 10*time.Second, "B to find /flaky down", func() bool {
			return strings.HasPrefix(repHealth(t, b.url, token, "/flaky"), "unhealthy")
		})
		t.Logf("B, the new leader, found /flaky down %v after it went down (interval 2s)", time.Since(start))
	})

	t.Run("database away: B keeps relaying, is not ready, and catches up", func(t *testing.T) {
		sid := repSession(t, b.url, "/echo", token)
		cluster.Stop()
		repWait(t, 10*time.Second, "B to report not-ready", func() bool { return !b.ready() })
		r, err := repRPC(context.Background(), b.url, "/echo", token, sid, repCall(8, "no database"))
		if err != nil || !r.echoed("no database") {
			t.Fatalf("tools/call through B while the database is away: %+v %v", r, err)
		}
		if err := cluster.Restart(); err != nil {
			t.Fatal(err)
		}
		repWait(t, 15*time.Second, "B to be ready again", b.ready)
		reg := fmt.Sprintf(`{"server_name": "late", "path": "/late", "proxy_pass_url": %q}`, up.URL)
		if code, body := repREST(t, http.MethodPost, b.url, "/api/v1/servers", token, reg); code >= 300 {
			t.Fatalf("register on B after the database came back: %d %s", code, body)
		}
		sid = repSession(t, b.url, "/late", token)
		if r, err := repRPC(context.Background(), b.url, "/late", token, sid, repCall(9, "back")); err != nil || !r.echoed("back") {
			t.Fatalf("tools/call through B after the database came back: %+v %v", r, err)
		}
	})
}

func repPct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100].Round(10 * time.Microsecond)
}

func repAppend(file, line string) {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}
