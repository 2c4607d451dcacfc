package postgres

import "context"

// QueryRowForTest runs one query on the store's pool, for tests that look
// behind the Store interface.
func QueryRowForTest(s *Store, ctx context.Context, sql string, dest ...any) error {
	return s.pool.QueryRow(ctx, sql).Scan(dest...)
}
