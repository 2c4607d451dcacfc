package auth_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/rs/zerolog"

	"github.com/mcpgw/mcpgw/auth"
)

// flakyStore is a memStore whose reads can fail, like a shared database
// that went away.
type flakyStore struct {
	memStore
	readErr error
}

func (f *flakyStore) GetPolicy(ctx context.Context) ([]byte, error) {
	if f.readErr != nil {
		return nil, f.readErr
	}
	return f.memStore.GetPolicy(ctx)
}

// TestPolicyReload checks that a policy stored by another gateway replica
// (written to the shared store behind this Policy's back) is in force after
// Reload, and that a stored document that does not validate, or a store
// that cannot be read, leaves the policy in force unchanged.
func TestPolicyReload(t *testing.T) {
	ctx := context.Background()
	store := &flakyStore{}
	here, err := auth.LoadPolicy(ctx, auth.PolicyOptions{Store: store, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	there, err := auth.LoadPolicy(ctx, auth.PolicyOptions{Store: store, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	support := &auth.Principal{Subject: "sam", Groups: []string{"support-team"}}
	if err := here.Reload(ctx); err != nil || here.AuthRequired() {
		t.Fatalf("Reload with nothing stored: %v, auth required %v; want local mode", err, here.AuthRequired())
	}
	if _, err := there.Replace(ctx, []byte(specPolicy), nil); err != nil {
		t.Fatal(err)
	}
	if !here.Allowed(support, "/weather", auth.ActionRead, "") {
		t.Fatal("the policy changed before Reload: the test does not test Reload")
	}
	if err := here.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if here.Allowed(support, "/weather", auth.ActionRead, "") || !here.AuthRequired() {
		t.Fatal("the policy stored elsewhere is not in force after Reload")
	}
	if !here.Allowed(support, "customer-support-assistant", "tools/list", "") {
		t.Fatal("the reloaded policy does not grant what it grants")
	}
	before := here.Document()
	if !bytes.Equal(before, there.Document()) {
		t.Fatalf("documents differ after Reload:\n%s\n%s", before, there.Document())
	}

	for _, tc := range []struct {
		name    string
		doc     []byte
		readErr error
	}{
		{"invalid stored document", []byte(`{"scopes": 3}`), nil},
		{"store unreachable", before, errors.New("connection refused")},
	} {
		store.doc, store.readErr = tc.doc, tc.readErr
		if err := here.Reload(ctx); err == nil {
			t.Errorf("%s: Reload reported no error", tc.name)
		}
		if !bytes.Equal(here.Document(), before) || here.Allowed(support, "/weather", auth.ActionRead, "") {
			t.Errorf("%s: a failed Reload changed the policy in force", tc.name)
		}
	}
}
