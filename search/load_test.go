package search

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/mcpgw/mcpgw/registry"
)

// LoadInBackground returns at once; searches answer ErrBuilding until the
// index is installed, and changes made meanwhile are in it afterwards.
func TestLoadInBackground(t *testing.T) {
	x, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	desc := "Check the warranty status of a product"
	var servers []*registry.Server
	for i := 0; i < 50; i++ {
		servers = append(servers, &registry.Server{ServerName: fmt.Sprint("s", i), Path: fmt.Sprintf("/s%02d", i), Enabled: true,
			ToolList: []registry.Tool{{Name: fmt.Sprintf("tool_%d", i), ParsedDescription: registry.ParsedDescription{Main: &desc}}}})
	}
	release := make(chan struct{})
	x.compactHook = func() { <-release } // hold the build until the test has checked the interim
	if err := x.LoadInBackground(context.Background(), func(context.Context) ([]*registry.Server, error) { return servers, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Search(context.Background(), Query{Text: "warranty"}); !errors.Is(err, ErrBuilding) {
		t.Fatalf("search during the build: %v, want ErrBuilding", err)
	}
	// A change while building: one server removed, one added.
	if err := x.Remove("/s00"); err != nil {
		t.Fatal(err)
	}
	late := "Look up the weather forecast"
	if err := x.Put(&registry.Server{ServerName: "late", Path: "/late", Enabled: true,
		ToolList: []registry.Tool{{Name: "forecast", ParsedDescription: registry.ParsedDescription{Main: &late}}}}); err != nil {
		t.Fatal(err)
	}
	close(release)
	x.waitCompaction()
	hits, err := x.Search(context.Background(), Query{Text: "warranty status", Top: 50})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 49 {
		t.Fatalf("%d warranty hits after the build, want 49 (50 loaded, one removed meanwhile)", len(hits))
	}
	for _, h := range hits {
		if h.ServerPath == "/s00" {
			t.Fatal("a server removed during the build is in the index")
		}
	}
	hits, err = x.Search(context.Background(), Query{Text: "weather forecast"})
	if err != nil || len(hits) == 0 || hits[0].ServerPath != "/late" {
		t.Fatalf("a server added during the build is missing: %v %v", hits, err)
	}
}
