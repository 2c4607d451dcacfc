package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestNewDatabaseIsPrivate checks that a new database, which holds egress
// header values, and its -wal and -shm files are readable by their owner
// only, whatever the directory's mode and the umask.
func TestNewDatabaseIsPrivate(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), filepath.Join(dir, "mcpgw.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, n := range []string{"mcpgw.db", "mcpgw.db-wal", "mcpgw.db-shm"} {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is mode %v: readable by other users", n, fi.Mode().Perm())
		}
	}
}
