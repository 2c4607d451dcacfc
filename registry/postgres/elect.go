package postgres

import (
	"context"
	"hash/fnv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Election is this replica's part in choosing one replica of the cluster
// for a job (the health checks): whoever holds a PostgreSQL advisory lock on
// a dedicated connection leads. The lock goes with the connection, so when
// the leader dies, or loses the database, the lock is released by the server
// and another replica takes it within Options.RetryEvery.
type Election struct {
	name    string
	leading atomic.Bool
	changes atomic.Uint64
	done    chan struct{}
}

// Leading reports whether this replica holds the lock now.
func (e *Election) Leading() bool { return e.leading.Load() }

// Changes counts how often leadership was gained or lost here.
func (e *Election) Changes() uint64 { return e.changes.Load() }

// Done is closed when the election has ended (its context ended) and the
// lock, if held, was released.
func (e *Election) Done() <-chan struct{} { return e.done }

// lockKey maps a name to an advisory lock key of mcpgw.
func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("mcpgw " + name))
	return int64(h.Sum64())
}

// lockKey is the advisory lock key of name for this store's schema
// (advisory locks are per database).
func (s *Store) lockKey(name string) int64 { return lockKey(s.schema + "/" + name) }

// lockPingTimeout bounds the round trip that confirms a held lock; a
// leader that cannot confirm it in time steps down.
const lockPingTimeout = 5 * time.Second

// Elect takes part in the election name until ctx ends: it tries the lock
// every Options.RetryEvery and, while holding it, checks every RetryEvery
// that its connection is alive, stepping down as soon as it is not.
func (s *Store) Elect(ctx context.Context, name string) *Election {
	e := &Election{name: name, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		for ctx.Err() == nil {
			s.elect(ctx, e)
			if ctx.Err() == nil {
				wait(ctx, s.opts.RetryEvery)
			}
		}
	}()
	return e
}

func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// elect runs one connection's worth of the election.
func (s *Store) elect(ctx context.Context, e *Election) {
	lg := s.opts.Log.With().Str("election", e.name).Logger()
	conn, err := pgx.ConnectConfig(ctx, s.dedicated("election"))
	if err != nil {
		return
	}
	defer func() {
		if e.leading.Swap(false) {
			e.changes.Add(1)
			lg.Warn().Msg("postgres: no longer the leader")
		}
		// Closing the connection releases the lock.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		conn.Close(cctx)
		cancel()
	}()
	// A leader cut off from the database must lose the lock even though
	// its connection never closes cleanly: the server ends a session
	// idle for longer than this (PostgreSQL 14 and later; older servers
	// rely on TCP keepalives).
	_, _ = conn.Exec(ctx, `SET idle_session_timeout = 10000`)
	key := s.lockKey("election/" + e.name)
	for ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, lockPingTimeout)
		var got bool
		if e.leading.Load() {
			err = conn.Ping(qctx)
			got = err == nil
		} else {
			err = conn.QueryRow(qctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got)
		}
		cancel()
		if err != nil {
			return
		}
		if got && !e.leading.Swap(true) {
			e.changes.Add(1)
			lg.Info().Msg("postgres: this replica is the leader")
		}
		wait(ctx, s.opts.RetryEvery)
	}
}
