package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mcpgw/mcpgw/registry"
)

// GetPolicy implements registry.Store.
func (s *Store) GetPolicy(ctx context.Context) ([]byte, error) {
	var doc string
	err := s.db.QueryRowContext(ctx, `SELECT doc FROM policy WHERE id = 1`).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get policy: %w", registry.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get policy: %w", err)
	}
	return []byte(doc), nil
}

// PutPolicy implements registry.Store.
func (s *Store) PutPolicy(ctx context.Context, doc []byte) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO policy (id, doc, updated_at) VALUES (1, ?, ?)
			ON CONFLICT(id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at`,
			string(doc), fmtTime(time.Now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: put policy: %w", err)
	}
	return nil
}
