package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/registry/sqlite"
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

func newEnv(t *testing.T, opts Options) *testEnv {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, dir+"/mcpgw.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	tokenFile, err := auth.EnsureAdminKey(ctx, store, dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := readFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := LoadOrCreateSessionKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	up := upstream.New(upstream.Options{}, "test")
	t.Cleanup(up.Close)
	logs := &bytes.Buffer{}
	reg := registry.NewService(store)
	gw, err := New(opts, Deps{
		Registry: reg, Verifier: auth.NewAuthenticator(store, auth.Options{}), Policy: auth.NewPolicy(),
		Tools: up, Transport: up.Transport(), Sealer: sealer, Log: zerolog.New(&syncWriter{w: logs}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Load(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	return &testEnv{gw: gw, srv: srv, reg: reg, store: store, admin: tok, logs: logs}
}

// register stores doc through the registry service, as every surface does.
func (e *testEnv) register(t *testing.T, doc map[string]any) *registry.Server {
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
