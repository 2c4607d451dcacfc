package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/mcpgw/mcpgw/registry"
	"github.com/mcpgw/mcpgw/registry/storetest"
)

func TestHealthConformance(t *testing.T) {
	storetest.RunHealth(t, func(t *testing.T) registry.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "mcpgw.db"))
	})
}
