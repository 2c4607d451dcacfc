package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// refresh sends ?approve=true only with --approve, and prints the gateway's
// answer (held_back and all).
func TestRefreshApprove(t *testing.T) {
	var mu sync.Mutex
	var uris []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		uris = append(uris, r.Method+" "+r.URL.RequestURI())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"path":"/weather","num_tools":1,"added":[],"removed":[],"changed":["forecast"],"held_back":[]}`))
	}))
	defer srv.Close()
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"refresh", "/weather/"},
		{"refresh", "--approve", "weather"},
	} {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append(args, "--registry-url", srv.URL, "--token-file", tok))
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out.String())
		}
		if !strings.Contains(out.String(), `"changed"`) {
			t.Fatalf("%v printed %s", args, out.String())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := "POST /api/v1/servers/weather/refresh,POST /api/v1/servers/weather/refresh?approve=true"
	if got := strings.Join(uris, ","); got != want {
		t.Fatalf("requests %s, want %s", got, want)
	}
	root := newRootCmd()
	root.SetArgs([]string{"show", "--approve", "weather", "--registry-url", srv.URL})
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	if err := root.Execute(); err == nil {
		t.Fatal("--approve accepted by show")
	}
}
