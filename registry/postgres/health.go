package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcpgw/mcpgw/registry"
)

// SaveHealth implements registry.Store. A state whose server is gone (removed
// while its check ran) is dropped rather than failing the batch. States are
// not announced: replicas that do not check read them with LoadHealth.
func (s *Store) SaveHealth(ctx context.Context, states map[string]registry.Health) error {
	if len(states) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for key, h := range states {
			b.Queue(`INSERT INTO server_health (key, status, reason, last_checked, latency_us, consecutive_failures)
				SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM servers WHERE key = $1)
				ON CONFLICT (key) DO UPDATE SET status = excluded.status, reason = excluded.reason, last_checked = excluded.last_checked,
					latency_us = excluded.latency_us, consecutive_failures = excluded.consecutive_failures`,
				key, h.Status, h.Reason, nullTime(h.LastChecked), h.Latency.Microseconds(), h.ConsecutiveFailures)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("postgres: save health: %w", err)
	}
	return nil
}

// LoadHealth implements registry.Store.
func (s *Store) LoadHealth(ctx context.Context) (map[string]registry.Health, error) {
	rows, err := s.pool.Query(ctx, `SELECT key, status, reason, last_checked, latency_us, consecutive_failures FROM server_health`)
	if err != nil {
		return nil, fmt.Errorf("postgres: load health: %w", err)
	}
	defer rows.Close()
	out := map[string]registry.Health{}
	for rows.Next() {
		var key string
		var checked *time.Time
		var us int64
		var h registry.Health
		if err := rows.Scan(&key, &h.Status, &h.Reason, &checked, &us, &h.ConsecutiveFailures); err != nil {
			return nil, fmt.Errorf("postgres: load health: %w", err)
		}
		h.LastChecked, h.Latency = fromNull(checked), time.Duration(us)*time.Microsecond
		out[key] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: load health: %w", err)
	}
	return out, nil
}
