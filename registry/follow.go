package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
)

// Reload re-reads one server from the store and, when it differs from the
// in-memory registry, tells the subscribers (routing, the finder index, the
// health checker, the policy's names) as if the change had been made here:
// EventPut when it exists, EventRemoved when it is gone. It is how a replica
// applies a change another replica committed to a shared store.
func (s *Service) Reload(ctx context.Context, key string) error {
	key = PathKey(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	srv, err := s.store.Get(ctx, key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("reload %s: %w", displayPath(key), err)
	}
	var old *Server
	if sn := s.snap.Load(); sn != nil {
		old, _ = sn.get(key)
	}
	switch {
	case srv == nil && old == nil && s.snap.Load() != nil:
		// Removed here already, or never known.
	case srv == nil:
		s.notify(Event{Kind: EventRemoved, Key: key})
	case old != nil && sameStored(old, srv):
		// Already current (this replica's own change, or a repeat).
	default:
		s.notify(Event{Kind: EventPut, Key: key, Server: srv})
	}
	return nil
}

// Reconcile compares the in-memory registry with the store and tells the
// subscribers about every difference, as Reload does for one server; it
// returns how many servers changed. Replicas run it after missing
// notifications (a lost connection) and periodically as a safety net.
func (s *Service) Reconcile(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	servers, err := s.store.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("reconcile registry: %w", err)
	}
	sn := s.snap.Load()
	if sn == nil {
		// Nothing in memory to compare with: every server is news.
		sn = newSnapshot(nil)
		s.snap.Store(sn)
	}
	changed := 0
	inStore := make(map[string]bool, len(servers))
	for _, srv := range servers {
		key := PathKey(srv.Path)
		inStore[key] = true
		if old, ok := sn.get(key); ok && sameStored(old, srv) {
			continue
		}
		s.notify(Event{Kind: EventPut, Key: key, Server: srv})
		changed++
	}
	for _, old := range sn.sorted {
		if key := PathKey(old.Path); !inStore[key] {
			s.notify(Event{Kind: EventRemoved, Key: key})
			changed++
		}
	}
	return changed, nil
}

// sameStored reports whether a and b are the same server as stored: the
// document, the enabled state and both timestamps.
func sameStored(a, b *Server) bool {
	if a.Enabled != b.Enabled || !a.CreatedAt.Equal(b.CreatedAt) || !a.UpdatedAt.Equal(b.UpdatedAt) {
		return false
	}
	ab, err1 := a.MarshalStorage()
	bb, err2 := b.MarshalStorage()
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}
