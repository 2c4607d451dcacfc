package registry

import (
	"context"
	"time"
)

// Store persists servers and the gateway's own credentials. Every method is
// one transaction: it either happens whole or not at all. Paths given to a
// Store are lookup keys as returned by PathKey.
type Store interface {
	// Create stores a new server; ErrExists when its path is taken.
	Create(ctx context.Context, s *Server) error
	// Replace overwrites the server at s.Path; ErrNotFound when absent.
	Replace(ctx context.Context, s *Server) error
	// Get returns one server; ErrNotFound when absent.
	Get(ctx context.Context, key string) (*Server, error)
	// List returns every server, ordered by path.
	List(ctx context.Context) ([]*Server, error)
	// Delete removes one server; ErrNotFound when absent.
	Delete(ctx context.Context, key string) error
	// SetEnabled toggles one server; ErrNotFound when absent.
	SetEnabled(ctx context.Context, key string, enabled bool) error

	// PutAPIKey stores a gateway API key (only its hash).
	PutAPIKey(ctx context.Context, k APIKey) error
	// APIKeyByHash finds a key by the hash of its secret; ErrNotFound when absent.
	APIKeyByHash(ctx context.Context, hash string) (APIKey, error)
	// ListAPIKeys returns every key, hashes included.
	ListAPIKeys(ctx context.Context) ([]APIKey, error)
	// DeleteAPIKey removes a key by name; ErrNotFound when absent.
	DeleteAPIKey(ctx context.Context, name string) error

	// GetPolicy returns the stored access policy document (canonical JSON);
	// ErrNotFound when none was ever stored.
	GetPolicy(ctx context.Context) ([]byte, error)
	// PutPolicy replaces the stored access policy document whole.
	PutPolicy(ctx context.Context, doc []byte) error

	// SaveHealth stores the last known health of servers by path key, all
	// in one transaction; a state whose server does not exist is dropped.
	// Removing a server removes its state.
	SaveHealth(ctx context.Context, states map[string]Health) error
	// LoadHealth returns every stored health state by path key.
	LoadHealth(ctx context.Context) (map[string]Health, error)

	// Ping reports whether the store is usable (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}

// APIKey is a gateway API key as stored: never the secret, only its hash.
type APIKey struct {
	Name      string
	Hash      string
	Groups    []string
	Admin     bool
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
}
