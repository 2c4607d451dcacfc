package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/mcpgw/mcpgw/registry"
)

// GetEmbeddings returns the cached vectors of model for those of hashes it
// holds; hashes it does not hold are absent from the map.
func (s *Store) GetEmbeddings(ctx context.Context, model string, hashes []string) (map[string][]float32, error) {
	out := make(map[string][]float32, len(hashes))
	if len(hashes) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT hash, vec FROM embeddings WHERE model = $1 AND hash = ANY($2)`, model, hashes)
	if err != nil {
		return nil, fmt.Errorf("postgres: get embeddings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var hash string
		var b []byte
		if err := rows.Scan(&hash, &b); err != nil {
			return nil, fmt.Errorf("postgres: get embeddings: %w", err)
		}
		v, err := registry.DecodeVector(b)
		if err != nil {
			return nil, fmt.Errorf("postgres: get embeddings: %s: %w", hash, err)
		}
		out[hash] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: get embeddings: %w", err)
	}
	return out, nil
}

// PutEmbeddings stores vectors of model by text hash in one statement,
// replacing any stored under the same hash. The cache is not announced to
// other replicas: each reads it when it needs a vector.
func (s *Store) PutEmbeddings(ctx context.Context, model string, vecs map[string][]float32) error {
	if model == "" {
		return fmt.Errorf("postgres: put embeddings: empty model name: %w", registry.ErrInvalid)
	}
	if len(vecs) == 0 {
		return nil
	}
	hashes := make([]string, 0, len(vecs))
	blobs := make([][]byte, 0, len(vecs))
	for h, v := range vecs {
		hashes = append(hashes, h)
		blobs = append(blobs, registry.EncodeVector(v))
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO embeddings (model, hash, vec)
		SELECT $1, h, v FROM unnest($2::text[], $3::bytea[]) AS t(h, v)
		ON CONFLICT (model, hash) DO UPDATE SET vec = excluded.vec, created_at = now()`, model, hashes, blobs)
	if err != nil {
		return fmt.Errorf("postgres: put embeddings: %w", err)
	}
	return nil
}

// PruneEmbeddings deletes the vectors of model stored before before whose
// hash is not in keep, and reports how many it deleted.
func (s *Store) PruneEmbeddings(ctx context.Context, model string, keep []string, before time.Time) (int64, error) {
	if keep == nil {
		keep = []string{}
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM embeddings WHERE model = $1 AND created_at < $2 AND NOT (hash = ANY($3))`,
		model, before, keep)
	if err != nil {
		return 0, fmt.Errorf("postgres: prune embeddings: %w", err)
	}
	return tag.RowsAffected(), nil
}
