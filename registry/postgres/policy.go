package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/mcpgw/mcpgw/registry"
)

// GetPolicy implements registry.Store.
func (s *Store) GetPolicy(ctx context.Context) ([]byte, error) {
	var doc string
	err := s.pool.QueryRow(ctx, `SELECT doc FROM policy WHERE id = 1`).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: get policy: %w", registry.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get policy: %w", err)
	}
	return []byte(doc), nil
}

// PutPolicy implements registry.Store. The change is announced, so every
// replica enforces the new policy.
func (s *Store) PutPolicy(ctx context.Context, doc []byte) error {
	return s.write(ctx, "put policy", kindPolicy, "", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO policy (id, doc, updated_at) VALUES (1, $1, now())
			ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at`, string(doc))
		return err
	})
}
