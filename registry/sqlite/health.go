package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/mcpgw/mcpgw/registry"
)

// SaveHealth implements registry.Store. A state whose server is gone (removed
// while its check ran) is dropped rather than failing the batch.
func (s *Store) SaveHealth(ctx context.Context, states map[string]registry.Health) error {
	if len(states) == 0 {
		return nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO server_health (key, status, reason, last_checked, latency_us, consecutive_failures)
			SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM servers WHERE key = ?)
			ON CONFLICT(key) DO UPDATE SET status = excluded.status, reason = excluded.reason, last_checked = excluded.last_checked,
				latency_us = excluded.latency_us, consecutive_failures = excluded.consecutive_failures`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for key, h := range states {
			if _, err := stmt.ExecContext(ctx, key, h.Status, h.Reason, fmtTime(h.LastChecked),
				h.Latency.Microseconds(), h.ConsecutiveFailures, key); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: save health: %w", err)
	}
	return nil
}

// LoadHealth implements registry.Store.
func (s *Store) LoadHealth(ctx context.Context) (map[string]registry.Health, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key, status, reason, last_checked, latency_us, consecutive_failures FROM server_health`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: load health: %w", err)
	}
	defer rows.Close()
	out := map[string]registry.Health{}
	for rows.Next() {
		var key, checked string
		var us int64
		var h registry.Health
		if err := rows.Scan(&key, &h.Status, &h.Reason, &checked, &us, &h.ConsecutiveFailures); err != nil {
			return nil, fmt.Errorf("sqlite: load health: %w", err)
		}
		h.LastChecked, h.Latency = parseTime(checked), time.Duration(us)*time.Microsecond
		out[key] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: load health: %w", err)
	}
	return out, nil
}
