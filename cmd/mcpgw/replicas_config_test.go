package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/mcpgw/mcpgw/gateway"
	"github.com/mcpgw/mcpgw/registry/sqlite"
)

// TestStoreSetting checks the store URLs serve accepts, and that a rejected
// URL's password never appears in the error.
func TestStoreSetting(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		args []string
		err  string // "" when accepted
	}{
		{name: "postgres flag", args: []string{"--store", "postgres://mcpgw:hunter2@db.internal:5432/mcpgw?sslmode=require"}},
		{name: "postgresql env", env: []string{"MCPGW_STORE=postgresql://mcpgw:hunter2@db.internal/mcpgw"}},
		{name: "sqlite", args: []string{"--store", "sqlite:/var/lib/mcpgw/x.db"}},
		{name: "bad postgres URL", args: []string{"--store", "postgres://mcpgw:hunter2@db:port/x"}, err: "store: not a valid PostgreSQL connection URL"},
		{name: "other scheme", env: []string{"MCPGW_STORE=mysql://mcpgw:hunter2@db/x"}, err: `store: "mysql:..." is not supported`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
			flagged := defaultServeConfig()
			bindFlags(fs, &flagged)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			_, err := loadServeConfig(fs, flagged, "", tc.env)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want %q", err, tc.err)
			case err != nil && strings.Contains(err.Error(), "hunter2"):
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

// TestSessionKeySources checks where serve takes the session-sealing key
// from: MCPGW_SESSION_KEY when set (a bad one is an error), else the data
// directory for SQLite (the shared store's own key is tested with
// PostgreSQL in registry/postgres).
func TestSessionKeySources(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "mcpgw.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	t.Setenv("MCPGW_SESSION_KEY", "")
	fromFile, err := sessionKey(ctx, store, dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := gateway.LoadOrCreateSessionKey(dir)
	if err != nil || !bytes.Equal(fromFile, again) {
		t.Fatalf("without MCPGW_SESSION_KEY the key is not the data directory's: %v", err)
	}

	want := bytes.Repeat([]byte{7}, 32)
	t.Setenv("MCPGW_SESSION_KEY", base64.StdEncoding.EncodeToString(want))
	got, err := sessionKey(ctx, store, dir)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("MCPGW_SESSION_KEY not used: %x, %v", got, err)
	}

	t.Setenv("MCPGW_SESSION_KEY", base64.StdEncoding.EncodeToString([]byte("too short")))
	if _, err := sessionKey(ctx, store, dir); err == nil || !strings.Contains(err.Error(), "MCPGW_SESSION_KEY") {
		t.Fatalf("a short MCPGW_SESSION_KEY: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, gateway.SessionKeyFile)); err != nil {
		t.Fatal(err)
	}
}
