package sqlite

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/registry/storetest"
)

func openTemp(t *testing.T, file string) *Store {
	t.Helper()
	s, err := Open(context.Background(), file)
	if err != nil {
		t.Fatalf("open %s: %v", file, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) registry.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "mcpgw.db"))
	})
}

func register(t *testing.T, svc *registry.Service, path string) {
	t.Helper()
	doc := `{"server_name": "s", "path": "` + path + `", "proxy_pass_url": "http://127.0.0.1:9/mcp",
		"headers": [{"Authorization": "Bearer $TOKEN"}], "tags": ["A", "a"]}`
	if _, _, err := svc.Register(context.Background(), []byte(doc), false); err != nil {
		t.Fatalf("register %s: %v", path, err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "mcpgw.db")
	s := openTemp(t, file)
	svc := registry.NewService(s)
	register(t, svc, "/kept")
	register(t, svc, "/off")
	register(t, svc, "/gone")
	if _, err := svc.SetEnabled(ctx, "/off", false); err != nil {
		t.Fatal(err)
	}
	if err := svc.Remove(ctx, "/gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAPIKey(ctx, registry.APIKey{Name: "k", Hash: "h", Admin: true}); err != nil {
		t.Fatal(err)
	}
	before, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	r := openTemp(t, file)
	after, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 2 || len(before) != 2 {
		t.Fatalf("%d servers before closing, %d after reopening; want 2 and 2", len(before), len(after))
	}
	for i := range after {
		b, _ := before[i].MarshalStorage()
		a, _ := after[i].MarshalStorage()
		if string(a) != string(b) || after[i].Enabled != before[i].Enabled || !after[i].CreatedAt.Equal(before[i].CreatedAt) {
			t.Errorf("server %s changed across a reopen:\n%s %v\n%s %v", after[i].Path, b, before[i].Enabled, a, after[i].Enabled)
		}
	}
	if after[1].Path != "/off" || after[1].Enabled {
		t.Errorf("the disabled server came back as %s enabled=%v", after[1].Path, after[1].Enabled)
	}
	if after[0].Headers[0].Value.Reveal() != "Bearer $TOKEN" {
		t.Errorf("header value after reopen = %q", after[0].Headers[0].Value.Reveal())
	}
	if k, err := r.APIKeyByHash(ctx, "h"); err != nil || !k.Admin {
		t.Errorf("api key after reopen: %+v, %v", k, err)
	}
	if res, err := r.IntegrityCheck(ctx); err != nil || res != "ok" {
		t.Errorf("integrity check: %q, %v", res, err)
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "mcpgw.db")
	first := openTemp(t, file)
	register(t, registry.NewService(first), "/a")
	// A second store on the same file, while the first is open, and then
	// again after it is closed: neither may re-run a migration.
	second := openTemp(t, file)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	third := openTemp(t, file)
	var n, want int
	if err := third.db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	names, err := migrations.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	want = len(names)
	if n != want {
		t.Errorf("schema_migrations holds %d rows, want %d (one per migration)", n, want)
	}
	if l, err := third.List(ctx); err != nil || len(l) != 1 {
		t.Errorf("after three opens: %d servers, %v; want 1", len(l), err)
	}
	var mode string
	if err := third.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}

// TestConcurrentOpen opens several stores on one new file at once: the
// migrations must run exactly once, without "table already exists" errors.
func TestConcurrentOpen(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "mcpgw.db")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	stores := make([]*Store, 4)
	for i := range stores {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			stores[i], errs[i] = Open(ctx, file)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("open %d: %v", i, err)
			continue
		}
		stores[i].Close()
	}
}

func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, filepath.Join(t.TempDir(), "mcpgw.db"))
	svc := registry.NewService(s)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				doc := []byte(`{"server_name": "s", "path": "/w` + string(rune('a'+w)) + `-` + string(rune('a'+i)) + `", "proxy_pass_url": "http://127.0.0.1:9/"}`)
				if _, _, err := svc.Register(ctx, doc, false); err != nil {
					t.Errorf("register: %v", err)
				}
			}
		}(w)
	}
	// Readers run alongside the writers on WAL snapshots.
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if _, err := s.List(ctx); err != nil {
					t.Errorf("list: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if l, _ := s.List(ctx); len(l) != 40 {
		t.Errorf("%d servers after 40 concurrent registrations", len(l))
	}
}

// TestPragmas checks the settings durability rests on, on every pooled
// connection: WAL, synchronous=FULL (2) and foreign keys.
func TestPragmas(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, filepath.Join(t.TempDir(), "mcpgw.db"))
	for i := 0; i < 3; i++ {
		conn, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var mode string
		var sync, fk int
		if err := conn.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" || sync != 2 || fk != 1 {
			t.Errorf("connection %d: journal_mode=%s synchronous=%d foreign_keys=%d; want wal, 2 (FULL), 1", i, mode, sync, fk)
		}
	}
}
