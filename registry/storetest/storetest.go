// Package storetest is the conformance suite every registry.Store must pass.
// A store package runs it from its own tests with a function that opens a
// fresh, empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) registry.Store { ... })
//	}
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/registry"
)

// Run exercises every method of the stores that open returns. open must
// return a new, empty store for each call and close it in t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) registry.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s registry.Store)
	}{
		{"CreateThenGet", testCreateThenGet},
		{"CreateExisting", testCreateExisting},
		{"GetMissing", testGetMissing},
		{"Replace", testReplace},
		{"ReplaceMissing", testReplaceMissing},
		{"ListOrder", testListOrder},
		{"Delete", testDelete},
		{"SetEnabled", testSetEnabled},
		{"ReturnsCopies", testReturnsCopies},
		{"HeaderSecretsUnexpanded", testHeaderSecrets},
		{"APIKeys", testAPIKeys},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// stamp is a fixed time with sub-second precision, so that stores must keep
// it exactly.
var stamp = time.Date(2025, 3, 14, 15, 9, 26, 535000000, time.UTC)

// server is a validated registration at path, as registry.Parse makes it.
func server(t *testing.T, path string, extra map[string]any) *registry.Server {
	t.Helper()
	doc := map[string]any{
		"server_name":    "server " + path,
		"description":    "test server at " + path,
		"path":           path,
		"proxy_pass_url": "http://127.0.0.1:9/mcp",
		"tags":           []string{"test", "Store"},
		"tool_list": []any{map[string]any{
			"name":               "echo",
			"parsed_description": map[string]any{"main": "Echo a message"},
			// Key order is kept (not sorted), so the schema is the tool's own.
			"schema": json.RawMessage(`{"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}`),
		}},
	}
	for k, v := range extra {
		doc[k] = v
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := registry.Parse(b)
	if err != nil {
		t.Fatalf("test registration %s: %v", path, err)
	}
	s.CreatedAt, s.UpdatedAt = stamp, stamp.Add(time.Second)
	return s
}

// same fails unless got is want as stored: the storage document, the
// enabled state and both timestamps.
func same(t *testing.T, got, want *registry.Server) {
	t.Helper()
	gb, err := got.MarshalStorage()
	if err != nil {
		t.Fatal(err)
	}
	wb, err := want.MarshalStorage()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gb, wb) {
		t.Errorf("stored server differs:\n got %s\nwant %s", gb, wb)
	}
	if got.Enabled != want.Enabled {
		t.Errorf("enabled = %v, want %v", got.Enabled, want.Enabled)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("timestamps = %v / %v, want %v / %v", got.CreatedAt, got.UpdatedAt, want.CreatedAt, want.UpdatedAt)
	}
}

func keys(list []*registry.Server) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = registry.PathKey(s.Path)
	}
	return out
}

func testCreateThenGet(t *testing.T, s registry.Store) {
	ctx := context.Background()
	srv := server(t, "/weather", map[string]any{"owner": "sre", "num_stars": 12, "is_python": true, "license": "MIT"})
	if err := s.Create(ctx, srv); err != nil {
		t.Fatalf("create: %v", err)
	}
	got, err := s.Get(ctx, "weather")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	same(t, got, srv)
	if string(got.ToolList[0].Schema) != `{"type":"object","properties":{"message":{"type":"string"}},"required":["message"]}` {
		t.Errorf("tool schema not kept verbatim: %s", got.ToolList[0].Schema)
	}
	if string(got.Extra["owner"]) != `"sre"` {
		t.Errorf("unknown field not kept: %v", got.Extra)
	}
	// A bedrock-agentcore path ends in '/', and its key has no slashes.
	ac := server(t, "/support", map[string]any{"auth_provider": "bedrock-agentcore"})
	if err := s.Create(ctx, ac); err != nil {
		t.Fatalf("create %s: %v", ac.Path, err)
	}
	got, err = s.Get(ctx, "support")
	if err != nil {
		t.Fatalf("get support: %v", err)
	}
	if got.Path != "/support/" {
		t.Errorf("path = %q, want /support/ as registered", got.Path)
	}
}

func testCreateExisting(t *testing.T, s registry.Store) {
	ctx := context.Background()
	first := server(t, "/weather", nil)
	if err := s.Create(ctx, first); err != nil {
		t.Fatal(err)
	}
	// The same key with another spelling of the path is the same service.
	for _, p := range []string{"/weather", "weather/"} {
		dup := server(t, "/weather", nil)
		dup.Path, dup.ServerName = p, "impostor"
		if err := s.Create(ctx, dup); !errors.Is(err, registry.ErrExists) {
			t.Errorf("create %q again: %v, want ErrExists", p, err)
		}
	}
	got, err := s.Get(ctx, "weather")
	if err != nil {
		t.Fatal(err)
	}
	same(t, got, first)
}

func testGetMissing(t *testing.T, s registry.Store) {
	if _, err := s.Get(context.Background(), "nope"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("get missing: %v, want ErrNotFound", err)
	}
}

func testReplace(t *testing.T, s registry.Store) {
	ctx := context.Background()
	if err := s.Create(ctx, server(t, "/weather", nil)); err != nil {
		t.Fatal(err)
	}
	next := server(t, "/weather", map[string]any{"description": "v2", "tags": []string{"v2"}, "tool_list": []any{}})
	next.Enabled = false
	next.UpdatedAt = stamp.Add(time.Hour)
	if err := s.Replace(ctx, next); err != nil {
		t.Fatalf("replace: %v", err)
	}
	got, err := s.Get(ctx, "weather")
	if err != nil {
		t.Fatal(err)
	}
	same(t, got, next)
	if l, _ := s.List(ctx); len(l) != 1 {
		t.Errorf("list after replace holds %d servers, want 1", len(l))
	}
}

func testReplaceMissing(t *testing.T, s registry.Store) {
	ctx := context.Background()
	if err := s.Replace(ctx, server(t, "/ghost", nil)); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("replace missing: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "ghost"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("a failed replace created the server: %v", err)
	}
}

func testListOrder(t *testing.T, s registry.Store) {
	ctx := context.Background()
	l, err := s.List(ctx)
	if err != nil {
		t.Fatalf("list empty: %v", err)
	}
	if len(l) != 0 {
		t.Fatalf("a new store lists %d servers", len(l))
	}
	paths := []string{"/zeta", "/alpha", "/mid/b", "/mid/a", "/beta-2", "/beta"}
	for _, p := range paths {
		if err := s.Create(ctx, server(t, p, nil)); err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	l, err = s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]string, len(paths))
	for i, p := range paths {
		want[i] = registry.PathKey(p)
	}
	sort.Strings(want)
	if got := keys(l); !reflect.DeepEqual(got, want) {
		t.Errorf("list order %q, want %q", got, want)
	}
	for _, srv := range l {
		same(t, srv, server(t, srv.Path, nil))
	}
}

func testDelete(t *testing.T, s registry.Store) {
	ctx := context.Background()
	for _, p := range []string{"/a", "/b"} {
		if err := s.Create(ctx, server(t, p, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("get deleted: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "a"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("delete twice: %v, want ErrNotFound", err)
	}
	if l, _ := s.List(ctx); !reflect.DeepEqual(keys(l), []string{"b"}) {
		t.Errorf("list after delete = %q, want [b]", keys(l))
	}
	// The path is free again.
	if err := s.Create(ctx, server(t, "/a", nil)); err != nil {
		t.Errorf("create after delete: %v", err)
	}
}

func testSetEnabled(t *testing.T, s registry.Store) {
	ctx := context.Background()
	srv := server(t, "/weather", nil)
	if err := s.Create(ctx, srv); err != nil {
		t.Fatal(err)
	}
	for _, enabled := range []bool{false, false, true} {
		if err := s.SetEnabled(ctx, "weather", enabled); err != nil {
			t.Fatalf("set enabled %v: %v", enabled, err)
		}
		got, err := s.Get(ctx, "weather")
		if err != nil {
			t.Fatal(err)
		}
		if got.Enabled != enabled {
			t.Errorf("enabled = %v after SetEnabled(%v)", got.Enabled, enabled)
		}
		// Only the state changes, never the registration.
		gb, _ := got.MarshalStorage()
		wb, _ := srv.MarshalStorage()
		if !bytes.Equal(gb, wb) {
			t.Errorf("SetEnabled changed the document:\n%s\n%s", gb, wb)
		}
	}
	if err := s.SetEnabled(ctx, "nope", true); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("set enabled on a missing server: %v, want ErrNotFound", err)
	}
}

func testReturnsCopies(t *testing.T, s registry.Store) {
	ctx := context.Background()
	srv := server(t, "/weather", nil)
	if err := s.Create(ctx, srv); err != nil {
		t.Fatal(err)
	}
	want := srv.Clone()
	// Changing the value given to Create, or one returned by Get, must not
	// change what is stored.
	srv.Tags[0], srv.ServerName = "changed", "changed"
	got, err := s.Get(ctx, "weather")
	if err != nil {
		t.Fatal(err)
	}
	got.Tags[0], got.ToolList[0].Name = "changed", "changed"
	again, err := s.Get(ctx, "weather")
	if err != nil {
		t.Fatal(err)
	}
	same(t, again, want)
}

func testHeaderSecrets(t *testing.T, s registry.Store) {
	ctx := context.Background()
	t.Setenv("STORETEST_UPSTREAM_TOKEN", "expanded-value-must-not-be-stored")
	srv := server(t, "/secret", map[string]any{"headers": []any{
		map[string]any{"Authorization": "Bearer $STORETEST_UPSTREAM_TOKEN"},
		map[string]any{"X-Api-Key": "${STORETEST_UPSTREAM_TOKEN}"},
		map[string]any{"X-Literal": "plain-secret-value"},
	}})
	if err := s.Create(ctx, srv); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "secret")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Authorization": "Bearer $STORETEST_UPSTREAM_TOKEN",
		"X-Api-Key":     "${STORETEST_UPSTREAM_TOKEN}",
		"X-Literal":     "plain-secret-value",
	}
	if len(got.Headers) != len(want) {
		t.Fatalf("%d headers stored, want %d", len(got.Headers), len(want))
	}
	for _, h := range got.Headers {
		if h.Value.Reveal() != want[h.Name] {
			t.Errorf("header %s = %q, want %q (stored unexpanded)", h.Name, h.Value.Reveal(), want[h.Name])
		}
	}
	pub, _ := json.Marshal(got)
	if bytes.Contains(pub, []byte("plain-secret-value")) || bytes.Contains(pub, []byte("STORETEST_UPSTREAM_TOKEN")) {
		t.Errorf("the public view of a stored server shows a header value: %s", pub)
	}
	if fmt.Sprintf("%+v", got.Headers) != "[{Name:Authorization Value:***} {Name:X-Api-Key Value:***} {Name:X-Literal Value:***}]" {
		t.Errorf("headers print as %+v", got.Headers)
	}
}

func testAPIKeys(t *testing.T, s registry.Store) {
	ctx := context.Background()
	if l, err := s.ListAPIKeys(ctx); err != nil || len(l) != 0 {
		t.Fatalf("a new store lists keys %v, %v", l, err)
	}
	admin := registry.APIKey{Name: "local-admin", Hash: "h-admin", Groups: []string{"mcp-admins"}, Admin: true, CreatedAt: stamp}
	reader := registry.APIKey{Name: "reader", Hash: "h-reader", Groups: []string{"support", "read"}, CreatedAt: stamp, ExpiresAt: stamp.Add(24 * time.Hour)}
	for _, k := range []registry.APIKey{reader, admin} {
		if err := s.PutAPIKey(ctx, k); err != nil {
			t.Fatalf("put %s: %v", k.Name, err)
		}
	}
	sameKey := func(got, want registry.APIKey) {
		t.Helper()
		if got.Name != want.Name || got.Hash != want.Hash || got.Admin != want.Admin ||
			!reflect.DeepEqual(got.Groups, want.Groups) || !got.CreatedAt.Equal(want.CreatedAt) ||
			!got.ExpiresAt.Equal(want.ExpiresAt) {
			t.Errorf("key = %+v, want %+v", got, want)
		}
	}
	got, err := s.APIKeyByHash(ctx, "h-reader")
	if err != nil {
		t.Fatalf("by hash: %v", err)
	}
	sameKey(got, reader)
	if !got.ExpiresAt.Equal(stamp.Add(24 * time.Hour)) {
		t.Errorf("expiry lost: %v", got.ExpiresAt)
	}
	got, err = s.APIKeyByHash(ctx, "h-admin")
	if err != nil {
		t.Fatal(err)
	}
	sameKey(got, admin)
	if !got.ExpiresAt.IsZero() {
		t.Errorf("a key without expiry came back expiring at %v", got.ExpiresAt)
	}
	if _, err := s.APIKeyByHash(ctx, "h-unknown"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("unknown hash: %v, want ErrNotFound", err)
	}
	l, err := s.ListAPIKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 2 || l[0].Name != "local-admin" || l[1].Name != "reader" {
		t.Fatalf("list keys = %+v, want local-admin and reader by name", l)
	}

	// Putting a key by an existing name replaces it (a rotation): the old
	// hash stops working.
	rotated := admin
	rotated.Hash = "h-admin-2"
	if err := s.PutAPIKey(ctx, rotated); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if _, err := s.APIKeyByHash(ctx, "h-admin"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("old hash after rotation: %v, want ErrNotFound", err)
	}
	if got, err := s.APIKeyByHash(ctx, "h-admin-2"); err != nil {
		t.Errorf("new hash after rotation: %v", err)
	} else {
		sameKey(got, rotated)
	}
	if l, _ := s.ListAPIKeys(ctx); len(l) != 2 {
		t.Errorf("rotation changed the number of keys to %d", len(l))
	}

	if err := s.DeleteAPIKey(ctx, "reader"); err != nil {
		t.Fatalf("delete key: %v", err)
	}
	if _, err := s.APIKeyByHash(ctx, "h-reader"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("deleted key still verifies: %v", err)
	}
	if err := s.DeleteAPIKey(ctx, "reader"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("delete key twice: %v, want ErrNotFound", err)
	}
	if l, _ := s.ListAPIKeys(ctx); len(l) != 1 || l[0].Name != "local-admin" {
		t.Errorf("keys after delete = %+v", l)
	}
	// Keys and servers are separate: no server appeared.
	if l, _ := s.List(ctx); len(l) != 0 {
		t.Errorf("key operations created %d servers", len(l))
	}
}

func testPing(t *testing.T, s registry.Store) {
	if err := s.Ping(context.Background()); err != nil {
		t.Errorf("ping an open store: %v", err)
	}
}
