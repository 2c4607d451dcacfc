// Package postgres is the registry.Store that several gateway replicas share:
// PostgreSQL through a jackc/pgx connection pool, migrated at open from
// embedded SQL files. Besides the Store it gives replicas what they need to
// act as one gateway: every write announces itself with NOTIFY in its own
// transaction and Watch applies what other replicas wrote (with a periodic
// full resync as a safety net); Elect holds an advisory lock so that one
// replica runs the health checks; SessionKey is the session-sealing key that
// every replica shares.
package postgres

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/registry"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Channel is the NOTIFY channel every write announces itself on, for a
// store in the public schema. A store in another schema (search_path in the
// URL) uses Channel + "." + schema, so that deployments sharing a database
// in separate schemas do not hear each other.
const Channel = "mcpgw_changes"

// Options configure a Store.
type Options struct {
	// MaxConns caps the connection pool; 0 means pgx's default (the
	// number of CPUs, at least 4) unless the URL sets pool_max_conns.
	MaxConns int32
	// ResyncEvery is how often Watch reloads everything even though no
	// notification was lost; 0 means 30 s.
	ResyncEvery time.Duration
	// RetryEvery is how long Watch and Elect wait before reconnecting, and
	// how often Elect tries the lock and checks that it still holds it;
	// 0 means 1 s.
	RetryEvery time.Duration
	// Log receives the store's own events: a lost change feed, a gained
	// or lost leadership.
	Log zerolog.Logger
}

// Store is a registry.Store on a PostgreSQL database.
type Store struct {
	pool   *pgxpool.Pool
	conn   *pgx.ConnConfig // for the dedicated LISTEN and lock connections
	opts   Options
	origin string // tags this store's notifications, so Watch skips them
	schema string // where the tables are: the first schema of search_path
	// channel is the NOTIFY channel of this schema's stores.
	channel string
	keys    keyCache
	// listening says whether Watch holds its LISTEN connection.
	listening atomic.Bool
}

var _ registry.Store = (*Store)(nil)

// IsURL reports whether s names a PostgreSQL store.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// CheckURL reports whether u is a usable connection URL, without connecting.
// The error never repeats the URL, which may hold a password.
func CheckURL(u string) error {
	if !IsURL(u) {
		return errors.New("not a postgres:// or postgresql:// URL")
	}
	if _, err := pgxpool.ParseConfig(u); err != nil {
		return errors.New("not a valid PostgreSQL connection URL (see the libpq connection URI format)")
	}
	return nil
}

// Open connects to the database at url (postgres://user:pass@host/db?...),
// applies pending migrations and returns the Store.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if err := CheckURL(url); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	cfg, _ := pgxpool.ParseConfig(url)
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// Without it an unreachable host blocks until the caller's
		// context ends, and some callers (readiness) have none.
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "mcpgw"
	}
	if opts.ResyncEvery <= 0 {
		opts.ResyncEvery = 30 * time.Second
	}
	if opts.RetryEvery <= 0 {
		opts.RetryEvery = time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	origin := make([]byte, 8)
	_, _ = rand.Read(origin)
	s := &Store{pool: pool, conn: cfg.ConnConfig, opts: opts, origin: hex.EncodeToString(origin)}
	var schema *string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if schema == nil {
		pool.Close()
		return nil, errors.New("postgres: no schema of search_path exists; create it first")
	}
	s.schema, s.channel = *schema, Channel
	if s.schema != "public" {
		s.channel += "." + s.schema
		if len(s.channel) > 63 { // the longest identifier PostgreSQL keeps
			s.channel = fmt.Sprintf("%s.%x", Channel, lockKey(s.schema))
		}
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return s, nil
}

// migrate applies the embedded migrations not yet recorded, all in one
// transaction under an advisory lock: replicas starting together wait for
// the first, then find nothing to do.
func (s *Store) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	sort.Strings(names)
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, s.lockKey("migrations")); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		for _, name := range names {
			version := strings.TrimSuffix(strings.TrimPrefix(name, "migrations/"), ".sql")
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE version = $1`, version).Scan(&n); err != nil {
				return fmt.Errorf("migrate %s: %w", version, err)
			}
			if n > 0 {
				continue
			}
			body, err := migrations.ReadFile(name)
			if err != nil {
				return fmt.Errorf("migrate %s: %w", version, err)
			}
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return fmt.Errorf("migrate %s: %w", version, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())`, version); err != nil {
				return fmt.Errorf("migrate %s: %w", version, err)
			}
		}
		return nil
	})
}

// dedicated is the configuration of a connection outside the pool, named
// for what it does (application_name "<name>-<role>", shown by
// pg_stat_activity).
func (s *Store) dedicated(role string) *pgx.ConnConfig {
	cfg := s.conn.Copy()
	cfg.RuntimeParams["application_name"] += "-" + role
	return cfg
}

// Change kinds carried by notifications.
const (
	kindServer  = "server"
	kindPolicy  = "policy"
	kindRecheck = "recheck"
)

// notify announces a change inside tx, so that it is delivered if and only
// if tx commits. The payload is "<origin> <kind> <key>".
func (s *Store) notify(ctx context.Context, tx pgx.Tx, kind, key string) error {
	_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, s.origin+" "+kind+" "+key)
	return err
}

// AskRecheck asks every other replica's Watch to pass on a recheck of the
// server with path key key (RecheckAsked), so that the replica running the
// health checks re-reads its tools now: for a tools/list_changed relayed by
// a replica that does not run them.
func (s *Store) AskRecheck(ctx context.Context, key string) error {
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, s.origin+" "+kindRecheck+" "+key); err != nil {
		return fmt.Errorf("postgres: ask recheck: %w", err)
	}
	return nil
}

// write runs fn and the notification of its change in one transaction.
func (s *Store) write(ctx context.Context, op, kind, key string, fn func(pgx.Tx) error) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return s.notify(ctx, tx, kind, key)
	})
	if err != nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	return nil
}

// exec1 is a statement that must touch exactly one row.
func exec1(ctx context.Context, tx pgx.Tx, query string, args ...any) error {
	tag, err := tx.Exec(ctx, query, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return registry.ErrNotFound
	}
	return nil
}

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func fromNull(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// Create implements registry.Store.
func (s *Store) Create(ctx context.Context, srv *registry.Server) error {
	doc, err := srv.MarshalStorage()
	if err != nil {
		return fmt.Errorf("postgres: create: %w", err)
	}
	key := registry.PathKey(srv.Path)
	return s.write(ctx, "create", kindServer, key, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO servers (key, path, server_name, enabled, doc, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO NOTHING`,
			key, srv.Path, srv.ServerName, srv.Enabled, string(doc), srv.CreatedAt.UTC(), srv.UpdatedAt.UTC())
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return registry.ErrExists
		}
		return nil
	})
}

// Replace implements registry.Store.
func (s *Store) Replace(ctx context.Context, srv *registry.Server) error {
	doc, err := srv.MarshalStorage()
	if err != nil {
		return fmt.Errorf("postgres: replace: %w", err)
	}
	key := registry.PathKey(srv.Path)
	return s.write(ctx, "replace", kindServer, key, func(tx pgx.Tx) error {
		return exec1(ctx, tx, `UPDATE servers SET path = $1, server_name = $2, enabled = $3, doc = $4, created_at = $5, updated_at = $6 WHERE key = $7`,
			srv.Path, srv.ServerName, srv.Enabled, string(doc), srv.CreatedAt.UTC(), srv.UpdatedAt.UTC(), key)
	})
}

const serverCols = `doc, enabled, created_at, updated_at`

func scanServer(row pgx.Row) (*registry.Server, error) {
	var doc string
	var enabled bool
	var created, updated time.Time
	if err := row.Scan(&doc, &enabled, &created, &updated); err != nil {
		return nil, err
	}
	srv, err := registry.UnmarshalStorage([]byte(doc))
	if err != nil {
		return nil, err
	}
	srv.Enabled, srv.CreatedAt, srv.UpdatedAt = enabled, created.UTC(), updated.UTC()
	return srv, nil
}

// Get implements registry.Store.
func (s *Store) Get(ctx context.Context, key string) (*registry.Server, error) {
	srv, err := scanServer(s.pool.QueryRow(ctx, `SELECT `+serverCols+` FROM servers WHERE key = $1`, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: get: %w", registry.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get: %w", err)
	}
	return srv, nil
}

// List implements registry.Store.
func (s *Store) List(ctx context.Context) ([]*registry.Server, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+serverCols+` FROM servers ORDER BY key`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list: %w", err)
	}
	defer rows.Close()
	// A replica's start-up lists every server: documents are decoded on
	// other goroutines while the next rows arrive, as the SQLite store does.
	dec := registry.NewListDecoder()
	var doc []byte
	var enabled bool
	var created, updated time.Time
	var scanErr error
	for rows.Next() {
		if scanErr = rows.Scan(&doc, &enabled, &created, &updated); scanErr != nil {
			break
		}
		dec.Add(doc, enabled, created.UTC(), updated.UTC())
	}
	out, err := dec.Finish()
	if scanErr == nil {
		scanErr = rows.Err()
	}
	if scanErr != nil {
		return nil, fmt.Errorf("postgres: list: %w", scanErr)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: list: %w", err)
	}
	return out, nil
}

// Delete implements registry.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	return s.write(ctx, "delete", kindServer, key, func(tx pgx.Tx) error {
		return exec1(ctx, tx, `DELETE FROM servers WHERE key = $1`, key)
	})
}

// SetEnabled implements registry.Store.
func (s *Store) SetEnabled(ctx context.Context, key string, enabled bool) error {
	return s.write(ctx, "set enabled", kindServer, key, func(tx pgx.Tx) error {
		return exec1(ctx, tx, `UPDATE servers SET enabled = $1, updated_at = $2 WHERE key = $3`,
			enabled, time.Now().UTC().Truncate(time.Microsecond), key)
	})
}

// PutAPIKey implements registry.Store.
func (s *Store) PutAPIKey(ctx context.Context, k registry.APIKey) error {
	groups := k.Groups
	if groups == nil {
		groups = []string{}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (name, hash, groups, admin, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, groups = excluded.groups, admin = excluded.admin,
			created_at = excluded.created_at, expires_at = excluded.expires_at`,
		k.Name, k.Hash, groups, k.Admin, k.CreatedAt.UTC(), nullTime(k.ExpiresAt))
	if err != nil {
		return fmt.Errorf("postgres: put api key: %w", err)
	}
	s.keys.forget(k.Name)
	return nil
}

const keyCols = `name, hash, groups, admin, created_at, expires_at`

func scanKey(row pgx.Row) (registry.APIKey, error) {
	var k registry.APIKey
	var expires *time.Time
	if err := row.Scan(&k.Name, &k.Hash, &k.Groups, &k.Admin, &k.CreatedAt, &expires); err != nil {
		return k, err
	}
	if len(k.Groups) == 0 {
		k.Groups = nil
	}
	k.CreatedAt, k.ExpiresAt = k.CreatedAt.UTC(), fromNull(expires)
	return k, nil
}

// keyLookupTimeout bounds one API-key lookup, so that an unreachable
// database turns into the cached answer quickly instead of a hung request.
const keyLookupTimeout = 3 * time.Second

// APIKeyByHash implements registry.Store. Every request verifies its key
// here, so while the database cannot be reached a key verified before is
// answered from memory: replicas keep relaying for known callers. A key that
// the database says is gone is forgotten at once.
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (registry.APIKey, error) {
	qctx, cancel := context.WithTimeout(ctx, keyLookupTimeout)
	defer cancel()
	k, err := scanKey(s.pool.QueryRow(qctx, `SELECT `+keyCols+` FROM api_keys WHERE hash = $1`, hash))
	switch {
	case err == nil:
		s.keys.put(k)
		return k, nil
	case errors.Is(err, pgx.ErrNoRows):
		s.keys.drop(hash)
		return k, fmt.Errorf("postgres: api key: %w", registry.ErrNotFound)
	case ctx.Err() == nil && unreachable(err):
		if cached, ok := s.keys.get(hash); ok {
			return cached, nil
		}
	}
	return k, fmt.Errorf("postgres: api key: %w", err)
}

// unreachable reports whether err says the database could not be asked,
// rather than that it answered with an error.
func unreachable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08 is connection exceptions, 57P is the server shutting
		// down; any other answer is the database's verdict.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P")
	}
	return true
}

// ListAPIKeys implements registry.Store.
func (s *Store) ListAPIKeys(ctx context.Context) ([]registry.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+keyCols+` FROM api_keys ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list api keys: %w", err)
	}
	defer rows.Close()
	var out []registry.APIKey
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list api keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list api keys: %w", err)
	}
	return out, nil
}

// DeleteAPIKey implements registry.Store.
func (s *Store) DeleteAPIKey(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM api_keys WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("postgres: delete api key: %w", err)
	}
	s.keys.forget(name)
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete api key: %w", registry.ErrNotFound)
	}
	return nil
}

// Ping implements registry.Store: a round trip to the database.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close implements registry.Store.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// SessionKey returns the 32-byte key that seals relayed session ids,
// creating it on first use. Every replica on the database gets the same key,
// so a session started through one continues through any other.
func (s *Store) SessionKey(ctx context.Context) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("postgres: session key: %w", err)
	}
	// Whoever inserts first wins; everyone reads the winner's key.
	if _, err := s.pool.Exec(ctx, `INSERT INTO settings (name, value) VALUES ('session_key', $1) ON CONFLICT (name) DO NOTHING`, fresh); err != nil {
		return nil, fmt.Errorf("postgres: session key: %w", err)
	}
	var key []byte
	if err := s.pool.QueryRow(ctx, `SELECT value FROM settings WHERE name = 'session_key'`).Scan(&key); err != nil {
		return nil, fmt.Errorf("postgres: session key: %w", err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("postgres: session key: stored key has %d bytes, want 32", len(key))
	}
	return key, nil
}

// keyCache remembers API keys the database confirmed, by hash, for when it
// cannot be reached.
type keyCache struct {
	mu sync.Mutex
	m  map[string]registry.APIKey
}

// maxCachedKeys bounds the cache; beyond it the cache starts over.
const maxCachedKeys = 10000

func (c *keyCache) put(k registry.APIKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedKeys {
		c.m = map[string]registry.APIKey{}
	}
	c.m[k.Hash] = k
}

func (c *keyCache) get(hash string) (registry.APIKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.m[hash]
	return k, ok
}

func (c *keyCache) drop(hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, hash)
}

// forget drops every cached key named name (rotated or deleted here).
func (c *keyCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, k := range c.m {
		if k.Name == name {
			delete(c.m, h)
		}
	}
}
