// Package sqlite is the embedded registry.Store: one SQLite file in WAL mode
// (modernc.org/sqlite, no cgo), migrated at open from embedded SQL files.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/registry"

	msqlite "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a registry.Store on one SQLite database file.
type Store struct {
	db *sql.DB
}

var _ registry.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path and applies pending
// migrations. synchronous=FULL makes every acknowledged commit survive a crash
// of the process or the machine.
func Open(ctx context.Context, path string) (*Store, error) {
	// The file holds egress header values, secrets: a new one is made
	// readable by its owner only, and SQLite gives its -wal and -shm files
	// the same mode. An existing file keeps the mode its owner chose.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		_ = f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// One writer at a time is SQLite's model; readers use WAL snapshots.
	db.SetMaxOpenConns(8)
	s := &Store{db: db}
	// On a new file the first connection switches it to WAL, which takes an
	// exclusive lock; SQLite refuses another connection doing the same at
	// that moment with SQLITE_BUSY at once, without waiting out
	// busy_timeout (its deadlock avoidance). Processes that open one new
	// file together therefore try again, briefly.
	for attempt := 1; ; attempt++ {
		err = s.migrate(ctx)
		if err == nil || !isBusy(err) || attempt == 50 {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
		}
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return s, nil
}

// isBusy reports whether err is SQLite's SQLITE_BUSY, extended codes included.
func isBusy(err error) bool {
	var se *msqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == 5
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
		body, err := migrations.ReadFile(name)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", version, err)
		}
		err = s.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, version, fmtTime(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", version, err)
		}
	}
	return nil
}

func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// Create implements registry.Store.
func (s *Store) Create(ctx context.Context, srv *registry.Server) error {
	doc, err := srv.MarshalStorage()
	if err != nil {
		return fmt.Errorf("sqlite: create: %w", err)
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM servers WHERE key = ?`, registry.PathKey(srv.Path)).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return registry.ErrExists
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO servers (key, path, server_name, enabled, doc, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			registry.PathKey(srv.Path), srv.Path, srv.ServerName, srv.Enabled, string(doc), fmtTime(srv.CreatedAt), fmtTime(srv.UpdatedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: create: %w", err)
	}
	return nil
}

// Replace implements registry.Store.
func (s *Store) Replace(ctx context.Context, srv *registry.Server) error {
	doc, err := srv.MarshalStorage()
	if err != nil {
		return fmt.Errorf("sqlite: replace: %w", err)
	}
	return s.exec1(ctx, "replace", `UPDATE servers SET path = ?, server_name = ?, enabled = ?, doc = ?, created_at = ?, updated_at = ? WHERE key = ?`,
		srv.Path, srv.ServerName, srv.Enabled, string(doc), fmtTime(srv.CreatedAt), fmtTime(srv.UpdatedAt), registry.PathKey(srv.Path))
}

// exec1 runs one statement that must touch exactly one row.
func (s *Store) exec1(ctx context.Context, op, query string, args ...any) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return registry.ErrNotFound
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	return nil
}

const serverCols = `doc, enabled, created_at, updated_at`

func scanServer(row interface{ Scan(...any) error }) (*registry.Server, error) {
	var doc, created, updated string
	var enabled bool
	if err := row.Scan(&doc, &enabled, &created, &updated); err != nil {
		return nil, err
	}
	srv, err := registry.UnmarshalStorage([]byte(doc))
	if err != nil {
		return nil, err
	}
	srv.Enabled, srv.CreatedAt, srv.UpdatedAt = enabled, parseTime(created), parseTime(updated)
	return srv, nil
}

// Get implements registry.Store.
func (s *Store) Get(ctx context.Context, key string) (*registry.Server, error) {
	srv, err := scanServer(s.db.QueryRowContext(ctx, `SELECT `+serverCols+` FROM servers WHERE key = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get: %w", registry.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get: %w", err)
	}
	return srv, nil
}

// List implements registry.Store.
func (s *Store) List(ctx context.Context) ([]*registry.Server, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+serverCols+` FROM servers ORDER BY key`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list: %w", err)
	}
	defer rows.Close()
	// Start-up lists every server: each document is read into one reused
	// buffer (RawBytes) rather than a new string and a copy of it per row,
	// and decoded on other goroutines while the next rows are read.
	dec := registry.NewListDecoder()
	var doc sql.RawBytes
	var created, updated string
	var enabled bool
	var scanErr error
	for rows.Next() {
		if scanErr = rows.Scan(&doc, &enabled, &created, &updated); scanErr != nil {
			break
		}
		dec.Add(doc, enabled, parseTime(created), parseTime(updated))
	}
	out, err := dec.Finish()
	if scanErr == nil {
		scanErr = rows.Err()
	}
	if scanErr != nil {
		return nil, fmt.Errorf("sqlite: list: %w", scanErr)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: list: %w", err)
	}
	return out, nil
}

// Delete implements registry.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	return s.exec1(ctx, "delete", `DELETE FROM servers WHERE key = ?`, key)
}

// SetEnabled implements registry.Store.
func (s *Store) SetEnabled(ctx context.Context, key string, enabled bool) error {
	return s.exec1(ctx, "set enabled", `UPDATE servers SET enabled = ?, updated_at = ? WHERE key = ?`, enabled, fmtTime(time.Now()), key)
}

// PutAPIKey implements registry.Store.
func (s *Store) PutAPIKey(ctx context.Context, k registry.APIKey) error {
	groups, _ := json.Marshal(k.Groups)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO api_keys (name, hash, groups, admin, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT(name) DO UPDATE SET hash = excluded.hash, groups = excluded.groups, admin = excluded.admin, created_at = excluded.created_at, expires_at = excluded.expires_at`,
			k.Name, k.Hash, string(groups), k.Admin, fmtTime(k.CreatedAt), fmtTime(k.ExpiresAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put api key: %w", err)
	}
	return nil
}

const keyCols = `name, hash, groups, admin, created_at, expires_at`

func scanKey(row interface{ Scan(...any) error }) (registry.APIKey, error) {
	var k registry.APIKey
	var groups, created, expires string
	if err := row.Scan(&k.Name, &k.Hash, &groups, &k.Admin, &created, &expires); err != nil {
		return k, err
	}
	_ = json.Unmarshal([]byte(groups), &k.Groups)
	k.CreatedAt, k.ExpiresAt = parseTime(created), parseTime(expires)
	return k, nil
}

// APIKeyByHash implements registry.Store.
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (registry.APIKey, error) {
	k, err := scanKey(s.db.QueryRowContext(ctx, `SELECT `+keyCols+` FROM api_keys WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return k, fmt.Errorf("sqlite: api key: %w", registry.ErrNotFound)
	}
	if err != nil {
		return k, fmt.Errorf("sqlite: api key: %w", err)
	}
	return k, nil
}

// ListAPIKeys implements registry.Store.
func (s *Store) ListAPIKeys(ctx context.Context) ([]registry.APIKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+keyCols+` FROM api_keys ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list api keys: %w", err)
	}
	defer rows.Close()
	var out []registry.APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list api keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// DeleteAPIKey implements registry.Store.
func (s *Store) DeleteAPIKey(ctx context.Context, name string) error {
	return s.exec1(ctx, "delete api key", `DELETE FROM api_keys WHERE name = ?`, name)
}

// Ping implements registry.Store.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Close implements registry.Store.
func (s *Store) Close() error { return s.db.Close() }

// IntegrityCheck runs PRAGMA integrity_check and returns its verdict ("ok"
// when the file is sound).
func (s *Store) IntegrityCheck(ctx context.Context) (string, error) {
	var res string
	err := s.db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res)
	return res, err
}
