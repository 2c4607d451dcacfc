package postgres

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Follower applies what other replicas committed. Its methods run one at a
// time, on Watch's goroutine.
type Follower interface {
	// ServerChanged reloads the server with path key key (registered,
	// replaced, toggled, tools refreshed or removed).
	ServerChanged(ctx context.Context, key string) error
	// PolicyChanged reloads the access policy.
	PolicyChanged(ctx context.Context) error
	// Resync reloads everything: after (re)connecting, since notifications
	// sent meanwhile are lost, and every Options.ResyncEvery as a safety
	// net.
	Resync(ctx context.Context) error
	// RecheckAsked passes on another replica's AskRecheck: the replica that
	// runs the health checks checks the server with path key key now.
	RecheckAsked(ctx context.Context, key string) error
}

// Watch listens, on a dedicated connection, for the changes other replicas
// announce, and applies each through f, until ctx ends. A lost connection is
// logged and reopened every Options.RetryEvery; each (re)opening starts with
// f.Resync. A change f fails to apply is retried by a resync soon after.
func (s *Store) Watch(ctx context.Context, f Follower) {
	lg := s.opts.Log
	lost := false
	for ctx.Err() == nil {
		err := s.watch(ctx, f, func() {
			if lost {
				lg.Info().Msg("postgres: change feed reconnected; resynced")
			}
			lost = false
		})
		if ctx.Err() != nil {
			return
		}
		if !lost {
			lg.Warn().Err(err).Msg("postgres: change feed lost; serving the last known registry and retrying")
		}
		lost = true
		select {
		case <-time.After(s.opts.RetryEvery):
		case <-ctx.Done():
		}
	}
}

// Listening reports whether Watch currently holds its LISTEN connection.
func (s *Store) Listening() bool { return s.listening.Load() }

var errResync = errors.New("resync failed")

func (s *Store) watch(ctx context.Context, f Follower, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.dedicated("listen"))
	if err != nil {
		return err
	}
	defer func() {
		s.listening.Store(false)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		conn.Close(cctx)
		cancel()
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return err
	}
	s.listening.Store(true)
	// Listening now, so nothing committed from here on is missed: catch up
	// on what was committed before.
	if err := f.Resync(ctx); err != nil {
		return errors.Join(errResync, err)
	}
	connected()
	resyncAt := time.Now().Add(s.opts.ResyncEvery)
	for {
		if !time.Now().Before(resyncAt) {
			if err := f.Resync(ctx); err != nil {
				s.opts.Log.Warn().Err(err).Msg("postgres: resync failed; retrying")
				resyncAt = time.Now().Add(s.opts.RetryEvery)
			} else {
				resyncAt = time.Now().Add(s.opts.ResyncEvery)
			}
		}
		wctx, cancel := context.WithDeadline(ctx, resyncAt)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if n != nil && !s.apply(ctx, f, n.Payload) {
			// Applying failed (the database is flaky): a full resync
			// soon puts it right.
			resyncAt = time.Now().Add(s.opts.RetryEvery)
		}
		if err != nil && (conn.IsClosed() || !isTimeout(err) && !errors.Is(err, context.DeadlineExceeded)) {
			return err
		}
	}
}

// isTimeout reports whether err is pgconn's timeout for a deadline reached
// while waiting, after which the connection is still usable.
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// apply hands one notification to f; it reports false when f failed.
func (s *Store) apply(ctx context.Context, f Follower, payload string) bool {
	origin, rest, _ := strings.Cut(payload, " ")
	if origin == s.origin {
		return true // this replica's own write: already applied
	}
	kind, key, _ := strings.Cut(rest, " ")
	var err error
	switch kind {
	case kindServer:
		err = f.ServerChanged(ctx, key)
	case kindPolicy:
		err = f.PolicyChanged(ctx)
	case kindRecheck:
		err = f.RecheckAsked(ctx, key)
	default:
		return true // from a newer version: its resync covers it
	}
	if err != nil {
		s.opts.Log.Warn().Err(err).Str("kind", kind).Str("key", key).Msg("postgres: change from another replica not applied; resyncing")
		return false
	}
	return true
}
