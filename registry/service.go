package registry

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// EventKind says what changed in the registry.
type EventKind int

// Kinds of registry changes.
const (
	EventPut     EventKind = iota // registered, replaced, enabled, disabled or tools refreshed
	EventRemoved                  // removed
)

// Event describes one committed change. Server is a private copy for
// EventPut and nil for EventRemoved.
type Event struct {
	Kind   EventKind
	Key    string
	Server *Server
}

// Service is the one way every surface (REST, CLI through REST, MCP admin
// tools, UI) changes the registry, so they cannot disagree. It writes to the
// Store and then tells its subscribers (routing table, search index) in commit
// order, holding a lock so that subscribers never see changes out of order.
type Service struct {
	store Store
	now   func() time.Time

	mu   sync.Mutex // serializes writes and notifications
	subs []func(Event)

	// snap is the committed registry in memory, so reads (list_services,
	// the REST list, lookups) never decode documents from the store. It is
	// replaced, never modified, under mu after every commit.
	snap atomic.Pointer[snapshot]
}

// snapshot is an immutable view of every server, ordered by path key.
type snapshot struct {
	sorted []*Server
}

func newSnapshot(servers []*Server) *snapshot {
	sn := &snapshot{sorted: servers}
	sort.Slice(sn.sorted, func(i, j int) bool { return PathKey(sn.sorted[i].Path) < PathKey(sn.sorted[j].Path) })
	return sn
}

// get finds a server by path key with a binary search: no map to copy on
// every commit, which made bulk registration quadratic.
func (sn *snapshot) get(key string) (*Server, bool) {
	i := sort.Search(len(sn.sorted), func(i int) bool { return PathKey(sn.sorted[i].Path) >= key })
	if i < len(sn.sorted) && PathKey(sn.sorted[i].Path) == key {
		return sn.sorted[i], true
	}
	return nil, false
}

// with returns a copy of sn with ev applied: O(n) copying, no re-sort.
func (sn *snapshot) with(ev Event) *snapshot {
	out := &snapshot{sorted: make([]*Server, 0, len(sn.sorted)+1)}
	i := sort.Search(len(sn.sorted), func(i int) bool { return PathKey(sn.sorted[i].Path) >= ev.Key })
	out.sorted = append(out.sorted, sn.sorted[:i]...)
	if ev.Kind == EventPut {
		out.sorted = append(out.sorted, ev.Server.Clone())
	}
	if i < len(sn.sorted) && PathKey(sn.sorted[i].Path) == ev.Key {
		i++ // replaced or removed
	}
	out.sorted = append(out.sorted, sn.sorted[i:]...)
	return out
}

// loadSnapshot returns the in-memory registry, reading the store the first
// time (or after Resync).
func (s *Service) loadSnapshot(ctx context.Context) (*snapshot, error) {
	if sn := s.snap.Load(); sn != nil {
		return sn, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sn := s.snap.Load(); sn != nil {
		return sn, nil
	}
	servers, err := s.store.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("load registry: %w", err)
	}
	sn := newSnapshot(servers)
	s.snap.Store(sn)
	return sn, nil
}

// Resync drops the in-memory registry so the next read reloads it from the
// store (for stores written by other processes).
func (s *Service) Resync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap.Store(nil)
}

// NewService returns a Service over store.
func NewService(store Store) *Service {
	return &Service{store: store, now: time.Now}
}

// Store returns the underlying store (for credentials and readiness).
func (s *Service) Store() Store { return s.store }

// Subscribe registers fn to be called after every committed change. fn runs
// under the service's write lock and must not call back into the Service.
func (s *Service) Subscribe(fn func(Event)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs = append(s.subs, fn)
}

// notify is called under mu after every commit: it updates the in-memory
// registry, then tells the subscribers.
func (s *Service) notify(ev Event) {
	if sn := s.snap.Load(); sn != nil {
		s.snap.Store(sn.with(ev))
	}
	for _, fn := range s.subs {
		fn(ev)
	}
}

// Register parses, validates and stores a registration. With overwrite, an
// existing server at the same path is replaced (its enabled state and
// creation time kept); without, ErrExists is returned.
func (s *Service) Register(ctx context.Context, doc []byte, overwrite bool) (*Server, []string, error) {
	srv, warnings, err := Parse(doc)
	if err != nil {
		return nil, nil, err
	}
	out, err := s.Put(ctx, srv, overwrite)
	return out, warnings, err
}

// Put stores an already validated server (see Register).
func (s *Service) Put(ctx context.Context, srv *Server, overwrite bool) (*Server, error) {
	srv = srv.Clone()
	key := PathKey(srv.Path)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC().Truncate(time.Millisecond)
	srv.CreatedAt, srv.UpdatedAt = now, now
	err := s.store.Create(ctx, srv)
	if err == nil {
		s.notify(Event{Kind: EventPut, Key: key, Server: srv.Clone()})
		return srv, nil
	}
	if errors.Is(err, ErrExists) && !overwrite {
		return nil, kindErr(ErrExists, "a service is already registered at %s; use overwrite to replace it", srv.Path)
	}
	if err != nil && !errors.Is(err, ErrExists) {
		return nil, fmt.Errorf("register %s: %w", srv.Path, err)
	}
	old, err := s.store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", srv.Path, err)
	}
	srv.CreatedAt = old.CreatedAt
	if err := s.store.Replace(ctx, srv); err != nil {
		return nil, fmt.Errorf("register %s: %w", srv.Path, err)
	}
	s.notify(Event{Kind: EventPut, Key: key, Server: srv.Clone()})
	return srv, nil
}

// Get returns one server by path (with or without slashes).
// The result is the caller's own copy.
func (s *Service) Get(ctx context.Context, path string) (*Server, error) {
	sn, err := s.loadSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	srv, ok := sn.get(PathKey(path))
	if !ok {
		return nil, notFound("get", path, ErrNotFound)
	}
	return srv.Clone(), nil
}

// List returns every server ordered by path key, from memory. The slice is
// the caller's; the servers are shared and must not be modified (Clone one
// to change it).
func (s *Service) List(ctx context.Context) ([]*Server, error) {
	sn, err := s.loadSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	return append([]*Server(nil), sn.sorted...), nil
}

// Remove deletes one server.
func (s *Service) Remove(ctx context.Context, path string) error {
	key := PathKey(path)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.store.Delete(ctx, key); err != nil {
		return notFound("remove", path, err)
	}
	s.notify(Event{Kind: EventRemoved, Key: key})
	return nil
}

// SetEnabled enables or disables one server and returns it.
func (s *Service) SetEnabled(ctx context.Context, path string, enabled bool) (*Server, error) {
	key := PathKey(path)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.store.SetEnabled(ctx, key, enabled); err != nil {
		return nil, notFound("toggle", path, err)
	}
	srv, err := s.store.Get(ctx, key)
	if err != nil {
		return nil, notFound("toggle", path, err)
	}
	s.notify(Event{Kind: EventPut, Key: key, Server: srv.Clone()})
	return srv, nil
}

// Toggle flips the enabled state of one server and returns it.
func (s *Service) Toggle(ctx context.Context, path string) (*Server, error) {
	srv, err := s.Get(ctx, path)
	if err != nil {
		return nil, err
	}
	return s.SetEnabled(ctx, path, !srv.Enabled)
}

// SetTools replaces the tool list of one server (a refresh from the upstream)
// and returns the updated server. Held-back definitions are cleared.
func (s *Service) SetTools(ctx context.Context, path string, tools []Tool) (*Server, error) {
	return s.SetToolsPending(ctx, path, tools, nil)
}

// SetToolsPending replaces the tool list of one server together with the
// changed definitions held back for approval (see ApplyListing) and returns
// the updated server.
func (s *Service) SetToolsPending(ctx context.Context, path string, tools, pending []Tool) (*Server, error) {
	key := PathKey(path)
	s.mu.Lock()
	defer s.mu.Unlock()
	srv, err := s.store.Get(ctx, key)
	if err != nil {
		return nil, notFound("refresh", path, err)
	}
	srv.ToolList = tools
	srv.NumTools = len(tools)
	srv.PendingTools = pending
	srv.UpdatedAt = s.now().UTC().Truncate(time.Millisecond)
	if err := s.store.Replace(ctx, srv); err != nil {
		return nil, notFound("refresh", path, err)
	}
	s.notify(Event{Kind: EventPut, Key: key, Server: srv.Clone()})
	return srv, nil
}

func displayPath(p string) string { return "/" + PathKey(p) }

// notFound rewords a store's ErrNotFound as a sentence naming the path.
func notFound(op, path string, err error) error {
	if errors.Is(err, ErrNotFound) {
		return kindErr(ErrNotFound, "no service is registered at %s", displayPath(path))
	}
	return fmt.Errorf("%s %s: %w", op, displayPath(path), err)
}

// kindError is a sentence for people that still matches its sentinel kind
// with errors.Is.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func kindErr(kind error, format string, args ...any) error {
	return &kindError{msg: fmt.Sprintf(format, args...), kind: kind}
}
