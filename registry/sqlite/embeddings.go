package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/registry"
)

// lookupChunk is how many hashes one SELECT asks for: well under SQLite's
// limit on bound parameters.
const lookupChunk = 500

// GetEmbeddings returns the cached vectors of model for those of hashes it
// holds; hashes it does not hold are absent from the map.
func (s *Store) GetEmbeddings(ctx context.Context, model string, hashes []string) (map[string][]float32, error) {
	out := make(map[string][]float32, len(hashes))
	for lo := 0; lo < len(hashes); lo += lookupChunk {
		chunk := hashes[lo:min(lo+lookupChunk, len(hashes))]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, model)
		for _, h := range chunk {
			args = append(args, h)
		}
		q := `SELECT hash, vec FROM embeddings WHERE model = ? AND hash IN (?` + strings.Repeat(",?", len(chunk)-1) + `)`
		if err := s.scanEmbeddings(ctx, out, q, args); err != nil {
			return nil, fmt.Errorf("sqlite: get embeddings: %w", err)
		}
	}
	return out, nil
}

func (s *Store) scanEmbeddings(ctx context.Context, out map[string][]float32, q string, args []any) error {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var hash string
		var b []byte
		if err := rows.Scan(&hash, &b); err != nil {
			return err
		}
		v, err := registry.DecodeVector(b)
		if err != nil {
			return fmt.Errorf("%s: %w", hash, err)
		}
		out[hash] = v
	}
	return rows.Err()
}

// PutEmbeddings stores vectors of model by text hash, all in one
// transaction, replacing any stored under the same hash.
func (s *Store) PutEmbeddings(ctx context.Context, model string, vecs map[string][]float32) error {
	if model == "" {
		return fmt.Errorf("sqlite: put embeddings: empty model name: %w", registry.ErrInvalid)
	}
	if len(vecs) == 0 {
		return nil
	}
	now := fmtTime(time.Now())
	err := s.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO embeddings (model, hash, vec, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT(model, hash) DO UPDATE SET vec = excluded.vec, created_at = excluded.created_at`)
		if err != nil {
			return err
		}
		defer st.Close()
		for h, v := range vecs {
			if _, err := st.ExecContext(ctx, model, h, registry.EncodeVector(v), now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: put embeddings: %w", err)
	}
	return nil
}

// PruneEmbeddings deletes the vectors of model stored before before whose
// hash is not in keep, and reports how many it deleted. keep travels as
// one JSON array, so its size is not bound by SQLite's parameter limit.
func (s *Store) PruneEmbeddings(ctx context.Context, model string, keep []string, before time.Time) (int64, error) {
	if keep == nil {
		keep = []string{}
	}
	list, err := json.Marshal(keep)
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune embeddings: %w", err)
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM embeddings WHERE model = ? AND julianday(created_at) < julianday(?)
		AND hash NOT IN (SELECT value FROM json_each(?))`, model, fmtTime(before), string(list))
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune embeddings: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: prune embeddings: %w", err)
	}
	return n, nil
}
