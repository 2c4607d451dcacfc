package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/auth"
	"github.com/mcpgw/mcpgw/gateway"
	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/registry/postgres"
	"github.com/mcpgw/mcpgw/registry/sqlite"
	"github.com/mcpgw/mcpgw/upstream"
)

// openStore opens the store the configuration names: SQLite in the data
// directory by default, PostgreSQL, shared by several replicas, for a
// postgres:// URL.
func openStore(ctx context.Context, cfg serveConfig, lg zerolog.Logger) (registry.Store, error) {
	if postgres.IsURL(cfg.Store) {
		s, err := postgres.Open(ctx, cfg.Store, postgres.Options{Log: lg})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	s, err := sqlite.Open(ctx, cfg.storePath())
	if err != nil {
		return nil, err
	}
	return s, nil
}

// sessionKeyStore is a store that keeps the session-sealing key itself, so
// that every replica on it seals and opens the same session ids.
type sessionKeyStore interface {
	SessionKey(ctx context.Context) ([]byte, error)
}

var _ sessionKeyStore = (*postgres.Store)(nil)

// sessionKey is the key that seals relayed session ids: MCPGW_SESSION_KEY
// (32 bytes, base64) when set, else the shared store's, else the one in the
// data directory.
func sessionKey(ctx context.Context, store registry.Store, dataDir string) ([]byte, error) {
	if v := strings.TrimSpace(os.Getenv("MCPGW_SESSION_KEY")); v != "" {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if k, err := enc.DecodeString(v); err == nil && len(k) == 32 {
				return k, nil
			}
		}
		return nil, errors.New("MCPGW_SESSION_KEY: not 32 base64-encoded bytes (make one with: head -c 32 /dev/urandom | base64)")
	}
	if ks, ok := store.(sessionKeyStore); ok {
		return ks.SessionKey(ctx)
	}
	return gateway.LoadOrCreateSessionKey(dataDir)
}

// ensureAdminKey makes sure the local admin key exists (auth.EnsureAdminKey).
// On a shared store, a replica whose data directory holds no valid token
// must not replace the key another replica created, which would lock that
// replica's admins out: it leaves the key alone and says where the token is.
// It returns the token file, or "" when this replica has none.
func ensureAdminKey(ctx context.Context, store registry.Store, cfg serveConfig, lg zerolog.Logger) (string, error) {
	if postgres.IsURL(cfg.Store) {
		file := filepath.Join(cfg.Data, auth.AdminTokenFile)
		if b, err := os.ReadFile(file); err == nil {
			if _, err := store.APIKeyByHash(ctx, auth.HashKey(strings.TrimSpace(string(b)))); err == nil {
				return file, nil
			}
		}
		keys, err := store.ListAPIKeys(ctx)
		if err != nil {
			return "", fmt.Errorf("admin key: %w", err)
		}
		for _, k := range keys {
			if k.Name == auth.AdminKeyName {
				lg.Warn().Str("admin_token_file", file).Msg("the shared store already has the local admin key and this replica's data directory has no valid copy of its token; " +
					"it is left as is: copy admin.token from the replica that created it, or use other API keys")
				return "", nil
			}
		}
	}
	return auth.EnsureAdminKey(ctx, store, cfg.Data)
}

// electHealthChecker returns who decides whether this replica runs the
// health checks: on a shared PostgreSQL store, an election that one replica
// of the cluster wins at a time (nil otherwise: a gateway on its own store
// always checks). stop ends the election, releasing the lock.
func electHealthChecker(ctx context.Context, store registry.Store) (leader upstream.Leadership, stop func()) {
	pg, ok := store.(*postgres.Store)
	if !ok {
		return nil, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	e := pg.Elect(ctx, "health")
	return e, func() { cancel(); <-e.Done() }
}

// followReplicas applies, on a shared PostgreSQL store, what other replicas
// commit: registrations, removals, toggles and tool lists reach the
// registry's subscribers (routing, finder, checker), policy changes the
// policy in force, and recheck requests the checker when this replica leads
// it. stop ends it.
func followReplicas(ctx context.Context, store registry.Store, reg *registry.Service, pol *auth.Policy,
	health *upstream.Checker, leader upstream.Leadership, lg zerolog.Logger) (stop func()) {
	pg, ok := store.(*postgres.Store)
	if !ok {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pg.Watch(ctx, replicaFollower{reg: reg, pol: pol, health: health, leader: leader, log: lg})
	}()
	return func() { cancel(); <-done }
}

// replicaFollower applies other replicas' changes to this one.
type replicaFollower struct {
	reg    *registry.Service
	pol    *auth.Policy
	health *upstream.Checker
	leader upstream.Leadership
	log    zerolog.Logger
}

func (f replicaFollower) RecheckAsked(_ context.Context, key string) error {
	if f.leader != nil && f.leader.Leading() {
		f.health.Recheck(key)
	}
	return nil
}

// healthSource is the health checker as the gateway sees it. On a shared
// store, a recheck (a relayed tools/list_changed) asked of a replica that
// does not run the checks is passed to the one that does.
func healthSource(health *upstream.Checker, leader upstream.Leadership, store registry.Store, lg zerolog.Logger) gateway.HealthSource {
	pg, ok := store.(*postgres.Store)
	if !ok || leader == nil {
		return health
	}
	return &clusterHealth{Checker: health, leader: leader, ask: func(key string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := pg.AskRecheck(ctx, key); err != nil {
			lg.Warn().Err(err).Str("server", key).Msg("cannot pass a tool-list recheck to the replica running the health checks")
		}
	}}
}

// clusterHealth is an upstream.Checker whose Recheck reaches the leading
// replica.
type clusterHealth struct {
	*upstream.Checker
	leader upstream.Leadership
	ask    func(key string)
}

// Recheck checks key now here when this replica leads, else asks the leader
// (without blocking the relayed stream that asked).
func (h *clusterHealth) Recheck(key string) {
	if h.leader.Leading() {
		h.Checker.Recheck(key)
		return
	}
	go h.ask(key)
}

var _ postgres.Follower = replicaFollower{}

func (f replicaFollower) ServerChanged(ctx context.Context, key string) error {
	return f.reg.Reload(ctx, key)
}

func (f replicaFollower) PolicyChanged(ctx context.Context) error {
	if err := f.pol.Reload(ctx); err != nil {
		return err
	}
	f.log.Info().Msg("access policy changed by another replica: in force here")
	return nil
}

func (f replicaFollower) Resync(ctx context.Context) error {
	n, err := f.reg.Reconcile(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		f.log.Info().Int("servers", n).Msg("registry resynced from the shared store")
	}
	return f.pol.Reload(ctx)
}
