package auth_test

import (
	"context"
	"fmt"

	"github.com/mcpgw/mcpgw/registry"
)

// noKeys is a key store without keys.
type noKeys struct{}

func (noKeys) APIKeyByHash(context.Context, string) (registry.APIKey, error) {
	return registry.APIKey{}, fmt.Errorf("no keys: %w", registry.ErrNotFound)
}
