package postgres_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/registry/postgres"
	"github.com/mcpgw/mcpgw/registry/postgres/pgtest"
	"github.com/mcpgw/mcpgw/registry/storetest"
)

// One throwaway cluster serves every test of the package: started by the
// first test that needs it, removed when the tests end.
var (
	clusterOnce sync.Once
	cluster     *pgtest.Cluster
	clusterErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		cluster.Close()
	}
	os.Exit(code)
}

// needCluster returns the package's cluster, skipping t where PostgreSQL is
// not installed (failing it in CI).
func needCluster(t *testing.T) *pgtest.Cluster {
	t.Helper()
	clusterOnce.Do(func() { cluster, clusterErr = pgtest.Start() })
	if errors.Is(clusterErr, pgtest.ErrNoServer) {
		pgtest.SkipOrFail(t, clusterErr)
	}
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	return cluster
}

// fast makes Watch and Elect react within tens of milliseconds.
var fast = postgres.Options{RetryEvery: 50 * time.Millisecond, ResyncEvery: time.Minute}

func openURL(t *testing.T, url string, opts postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fresh opens a store on a new, empty schema.
func fresh(t *testing.T) registry.Store {
	return openURL(t, needCluster(t).Schema(t), postgres.Options{Log: zerolog.Nop()})
}

func TestConformance(t *testing.T) {
	storetest.Run(t, fresh)
}

func TestHealthConformance(t *testing.T) {
	storetest.RunHealth(t, fresh)
}

func TestPolicyConformance(t *testing.T) {
	storetest.RunPolicy(t, fresh)
}

func TestEmbeddingsConformance(t *testing.T) {
	storetest.RunEmbeddings(t, fresh)
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"postgres://u:p@db.example:5432/mcpgw?sslmode=require", true},
		{"postgresql://db/mcpgw", true},
		{"sqlite:/tmp/x.db", false},
		{"postgres://u:secret@db:notaport/x", false},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			err := postgres.CheckURL(tc.url)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckURL = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && (strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "db:")) {
				t.Errorf("error repeats the URL: %v", err)
			}
		})
	}
}

// TestConcurrentOpen opens several stores on one new database at once, as
// replicas starting together: the migrations run once, without errors, and
// a second round of opens finds nothing to do.
func TestConcurrentOpen(t *testing.T) {
	c := needCluster(t)
	url := c.Schema(t)
	ctx := context.Background()
	for round := 0; round < 2; round++ {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				s, err := postgres.Open(ctx, url, postgres.Options{})
				if err == nil {
					s.Close()
				}
				errs[i] = err
			}(i)
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d, open %d: %v", round, i, err)
			}
		}
	}
	files, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := queryRow(t, url, `SELECT count(*) FROM schema_migrations`, &n); err != nil || n != len(files) {
		t.Errorf("schema_migrations holds %d rows (%v), want %d (one per migration)", n, err, len(files))
	}
}

// queryRow runs one query on url outside the store.
func queryRow(t *testing.T, url, sql string, dest ...any) error {
	t.Helper()
	s := openURL(t, url, postgres.Options{})
	return postgres.QueryRowForTest(s, context.Background(), sql, dest...)
}

// TestSessionKeyShared checks that replicas share one session-sealing key,
// created once and kept.
func TestSessionKeyShared(t *testing.T) {
	url := needCluster(t).Schema(t)
	ctx := context.Background()
	a, b := openURL(t, url, postgres.Options{}), openURL(t, url, postgres.Options{})
	var keys [][]byte
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range []*postgres.Store{a, b, a, b} {
		wg.Add(1)
		go func(s *postgres.Store) {
			defer wg.Done()
			k, err := s.SessionKey(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			keys = append(keys, k)
			mu.Unlock()
		}(s)
	}
	wg.Wait()
	if len(keys) != 4 || len(keys[0]) != 32 {
		t.Fatalf("keys: %d, first of %d bytes", len(keys), len(keys[0]))
	}
	for _, k := range keys[1:] {
		if string(k) != string(keys[0]) {
			t.Fatal("replicas got different session keys")
		}
	}
	if string(keys[0]) == string(make([]byte, 32)) {
		t.Fatal("session key is all zeros")
	}
}

// TestAPIKeyWhileDatabaseDown checks that a key verified before the
// database went away still verifies while it is away, that an unknown key
// is an error then (not "not found", which would be a verdict), and that
// the store works again once the database is back.
func TestAPIKeyWhileDatabaseDown(t *testing.T) {
	c := needCluster(t)
	url := c.Schema(t)
	ctx := context.Background()
	s := openURL(t, url, postgres.Options{})
	k := registry.APIKey{Name: "reader", Hash: "h-reader", Groups: []string{"support"}, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := s.PutAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAPIKey(ctx, registry.APIKey{Name: "gone", Hash: "h-gone", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"h-reader", "h-gone"} {
		if _, err := s.APIKeyByHash(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteAPIKey(ctx, "gone"); err != nil {
		t.Fatal(err)
	}

	c.Stop()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			c.Restart()
		}
	})
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping succeeds with the database stopped")
	}
	got, err := s.APIKeyByHash(ctx, "h-reader")
	if err != nil || got.Name != "reader" || got.Groups[0] != "support" {
		t.Fatalf("known key with the database down: %+v, %v", got, err)
	}
	if _, err := s.APIKeyByHash(ctx, "h-gone"); err == nil || errors.Is(err, registry.ErrNotFound) {
		t.Errorf("deleted key with the database down: %v, want a connection error", err)
	}
	if _, err := s.APIKeyByHash(ctx, "h-never"); err == nil || errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown key with the database down: %v, want a connection error", err)
	}

	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	deadline := time.Now().Add(10 * time.Second)
	for s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("store does not recover after the database restarts")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := s.APIKeyByHash(ctx, "h-gone"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("deleted key after recovery: %v, want ErrNotFound", err)
	}
}
