package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/registry/sqlite"
	"github.com/mcpgw/mcpgw/search"
	"github.com/mcpgw/mcpgw/upstream"
)

// testEnv is a real gateway over a real SQLite file in t.TempDir(), served
// by httptest on 127.0.0.1.
type testEnv struct {
	gw    *Gateway
	srv   *httptest.Server
	reg   *registry.Service
	store *sqlite.Store
	admin string // the admin API key
	logs  *bytes.Buffer
}

// fixture is what every test gateway stands on: a SQLite store in
// t.TempDir() with the local admin key, a session sealer, the pooled
// upstream client and the registry service. deps holds them, with the
// local-mode verifier and policy; builders change what they need before
// serve.
type fixture struct {
	ctx   context.Context
	dir   string
	store *sqlite.Store
	admin string
	reg   *registry.Service
	up    *upstream.Client
	deps  Deps
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{ctx: context.Background(), dir: t.TempDir()}
	store, err := sqlite.Open(f.ctx, f.dir+"/mcpgw.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	tokenFile, err := auth.EnsureAdminKey(f.ctx, store, f.dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.admin, err = readFile(tokenFile); err != nil {
		t.Fatal(err)
	}
	key, err := LoadOrCreateSessionKey(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	f.up = upstream.New(upstream.Options{}, "test")
	t.Cleanup(f.up.Close)
	f.store, f.reg = store, registry.NewService(store)
	f.deps = Deps{
		Registry: f.reg, Verifier: auth.NewAuthenticator(store, auth.Options{}), Policy: auth.NewPolicy(),
		Tools: f.up, Transport: f.up.RelayTransport(), Sealer: sealer, Log: zerolog.Nop(),
	}
	return f
}

// withFinder adds a search index that follows the registry, as serve does.
func (f *fixture) withFinder(t *testing.T) *search.Index {
	t.Helper()
	finder, err := search.New(search.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { finder.Close() })
	f.reg.Subscribe(finder.Apply)
	if err := finder.Load(f.ctx, f.reg.List); err != nil {
		t.Fatal(err)
	}
	f.deps.Finder = finder
	return finder
}

// serve builds the gateway from f.deps, loads its routes and serves it with
// httptest on 127.0.0.1. tweak, when set, runs before the routes load.
// withPolicy loads a policy on f's store, following f's registry, with doc
// (when not empty) imported, and makes it f's policy.
func (f *fixture) withPolicy(t testing.TB, opts auth.PolicyOptions, doc string) *auth.Policy {
	t.Helper()
	opts.Store = f.store
	pol, err := auth.LoadPolicy(f.ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := pol.TrackServers(f.ctx, f.reg); err != nil {
		t.Fatal(err)
	}
	if doc != "" {
		if _, err := pol.Replace(f.ctx, []byte(doc), nil); err != nil {
			t.Fatal(err)
		}
	}
	f.deps.Policy = pol
	return pol
}

func (f *fixture) serve(t testing.TB, opts Options, tweak func(*Gateway)) *testEnv {
	t.Helper()
	gw, err := New(opts, f.deps)
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(gw)
	}
	if err := gw.Load(f.ctx); err != nil {
		t.Fatal(err)
	}
	srv := serveIngress(t, gw)
	return &testEnv{gw: gw, srv: srv, reg: f.reg, store: f.store, admin: f.admin}
}

// newEnv is the plain test gateway: local mode, no finder, no checker, its
// log kept in env.logs.
func newEnv(t testing.TB, opts Options) *testEnv {
	t.Helper()
	f := newFixture(t)
	logs := &bytes.Buffer{}
	f.deps.Log = zerolog.New(&syncWriter{w: logs})
	env := f.serve(t, opts, nil)
	env.logs = logs
	return env
}

// register stores doc through the registry service, as every surface does.
func (e *testEnv) register(t testing.TB, doc map[string]any) *registry.Server {
	t.Helper()
	b, _ := json.Marshal(doc)
	s, _, err := e.reg.Register(context.Background(), b, false)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	return s
}

// do sends a request to the gateway with optional headers.
func (e *testEnv) do(t *testing.T, method, path string, body []byte, headers map[string]string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (e *testEnv) adminHeaders() map[string]string {
	return map[string]string{"Authorization": "Bearer " + e.admin, "Content-Type": "application/json"}
}

// serveIngress serves h on 127.0.0.1 as serve does: through the Ingress,
// with a standard server behind it for what the fast loop hands over.
func serveIngress(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	ing := NewIngress(h, srv.Config, IngressOptions{})
	go func() { _ = ing.Serve(srv.Listener) }()
	srv.URL = "http://" + srv.Listener.Addr().String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ing.Shutdown(ctx)
	})
	return srv
}
