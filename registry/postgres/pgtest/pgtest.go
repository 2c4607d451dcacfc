// Package pgtest runs a throwaway PostgreSQL server for tests: a new cluster
// (initdb) in a temporary directory, served on a free loopback port and
// removed afterwards. PostgreSQL refuses to run as root, so when the tests
// run as root the server runs as an unprivileged user (postgres when that
// user exists, else nobody).
//
// Tests that need it call New (or Start from TestMain). Where no server
// binaries are installed they are skipped with a message saying so, except
// in CI (CI=true), where a missing server fails the test: CI installs it.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoServer says that no PostgreSQL server binaries were found.
var ErrNoServer = errors.New("pgtest: no PostgreSQL server binaries (initdb, postgres) found; install Debian's postgresql package or set PGTEST_BIN to their directory")

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	bin  string // directory holding initdb and postgres
	dir  string // the cluster's data directory (removed by Close)
	port int
	cred *syscall.Credential // nil: run as ourselves

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{}
	dbs  atomic.Int64
}

// BinDir returns the directory holding initdb and postgres: PGTEST_BIN when
// set, else the newest /usr/lib/postgresql/*/bin, else initdb's directory on
// PATH. ErrNoServer when there is none.
func BinDir() (string, error) {
	if d := os.Getenv("PGTEST_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("%w (PGTEST_BIN=%s has no initdb)", ErrNoServer, d)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", ErrNoServer
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// New starts a cluster that is removed when tb ends. Without server
// binaries it skips tb, or fails it when CI is set.
func New(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := Start()
	if errors.Is(err, ErrNoServer) {
		SkipOrFail(tb, err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// SkipOrFail skips tb because err (no PostgreSQL) or, in CI, fails it: CI
// installs PostgreSQL, so its absence there is a broken build.
func SkipOrFail(tb testing.TB, err error) {
	tb.Helper()
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		tb.Fatalf("CI is set and PostgreSQL is required: %v", err)
	}
	tb.Skipf("skipping PostgreSQL tests: %v", err)
}

// Start creates and starts a new cluster; Close stops and removes it.
func Start() (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		if c.cred, err = unprivileged(); err != nil {
			return nil, err
		}
	}
	base := os.TempDir()
	if c.cred != nil && !traversable(base) {
		base = "/tmp" // the server's user must reach its directory
	}
	c.dir, err = os.MkdirTemp(base, "mcpgw-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if c.cred != nil {
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			os.RemoveAll(c.dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	initdb := c.command(filepath.Join(bin, "initdb"), "-D", c.data(), "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(c.dir)
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	for attempt := 0; ; attempt++ {
		if c.port, err = freePort(); err != nil {
			c.Close()
			return nil, err
		}
		if err = c.Restart(); err == nil {
			return c, nil
		}
		if attempt == 2 {
			c.Close()
			return nil, err
		}
	}
}

// unprivileged is who the server runs as when the tests run as root.
func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
	}
	return nil, errors.New("pgtest: running as root and neither a postgres nor a nobody user exists to run the server as")
}

// traversable reports whether every directory from / to dir may be entered
// by anyone.
func traversable(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true}
	return cmd
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Port is the loopback port the server listens on (kept across Restart).
func (c *Cluster) Port() int { return c.port }

// URL returns the connection URL of database db.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, url.PathEscape(db))
}

// Restart starts the server (again, after Stop) on the same port and data
// and waits until it accepts connections.
func (c *Cluster) Restart() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		return errors.New("pgtest: server already running")
	}
	logf, err := os.OpenFile(filepath.Join(c.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	// Durability settings are off: the data is thrown away anyway. The
	// server dies with the test process (SIGQUIT: immediate shutdown).
	cmd := c.command(filepath.Join(c.bin, "postgres"), "-D", c.data(), "-p", strconv.Itoa(c.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+c.dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB")
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	c.proc, c.done = cmd, done
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-done:
			c.proc = nil
			return fmt.Errorf("pgtest: postgres exited at start:\n%s", c.Log())
		default:
		}
		if time.Now().After(deadline) {
			c.stopLocked()
			return fmt.Errorf("pgtest: postgres not accepting connections after 30s: %v\n%s", err, c.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down (fast shutdown: clients are disconnected) and
// waits for it to exit; the data stays for Restart.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked()
}

func (c *Cluster) stopLocked() {
	if c.proc == nil {
		return
	}
	_ = c.proc.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		_ = c.proc.Process.Kill()
		<-c.done
	}
	c.proc = nil
}

// Close stops the server and removes the cluster's directory.
func (c *Cluster) Close() {
	c.Stop()
	if c.dir != "" {
		os.RemoveAll(c.dir)
	}
}

// Log returns the server's log so far (for failure messages).
func (c *Cluster) Log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
	return string(b)
}

// NewDatabase creates a new, empty database and returns its URL.
func (c *Cluster) NewDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d_%d", os.Getpid(), c.dbs.Add(1))
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database: %w", err)
	}
	return c.URL(name), nil
}

// Database is NewDatabase for a test: it fails tb on error.
func (c *Cluster) Database(tb testing.TB) string {
	tb.Helper()
	u, err := c.NewDatabase(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// NewSchema creates a new, empty schema in the postgres database and returns
// a URL whose search_path selects it: a fresh store in milliseconds where a
// new database takes most of a second. Stores in separate schemas share
// nothing (mcpgw names its notification channel and locks by schema).
func (c *Cluster) NewSchema(ctx context.Context) (string, error) {
	name := fmt.Sprintf("s%d_%d", os.Getpid(), c.dbs.Add(1))
	if err := c.Exec(ctx, "postgres", "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create schema: %w", err)
	}
	return c.URL("postgres") + "&search_path=" + name, nil
}

// Schema is NewSchema for a test: it fails tb on error.
func (c *Cluster) Schema(tb testing.TB) string {
	tb.Helper()
	u, err := c.NewSchema(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// Exec runs one statement on database db as the superuser (for tests that
// look behind the store, e.g. at pg_locks).
func (c *Cluster) Exec(ctx context.Context, db, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, args...)
	return err
}

// DBName returns the database name of a URL made by this package.
func DBName(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(p.Path, "/")
}
