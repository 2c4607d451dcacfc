package main

import (
	"context"
	"testing"

	"github.com/mcpgw/mcpgw/search"
	"github.com/mcpgw/mcpgw/search/embedtest"
	"github.com/mcpgw/mcpgw/search/searchbench"
)

// TestHybridQuality runs the -embeddings-url measurement against the
// deterministic fake endpoint, with an API key from the environment.
func TestHybridQuality(t *testing.T) {
	srv := embedtest.New(t, embedtest.Options{APIKey: "sk-bench"})
	t.Setenv("BENCH_EMBED_KEY", "sk-bench")
	*embURL, *embModel, *embKeyEnv = srv.URL, "fake-bow", "BENCH_EMBED_KEY"
	t.Cleanup(func() { *embURL, *embModel, *embKeyEnv = "", "", "" })
	base, err := searchbench.LoadCatalog("../../testdata/catalog")
	if err != nil {
		t.Fatal(err)
	}
	qs, err := searchbench.LoadQueries("../../testdata/finder/queries.json")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := search.New(search.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := hybridQuality(context.Background(), idx, base, qs, false); err != nil {
		t.Fatal(err)
	}
	// Every tool text and every query went to the endpoint.
	if srv.Texts() < 294+len(qs) {
		t.Errorf("the endpoint embedded %d texts, want the catalog's 294 tools and %d queries", srv.Texts(), len(qs))
	}
	*embKeyEnv = ""
	if err := hybridQuality(context.Background(), idx, base, qs, false); err == nil {
		t.Error("without the key the measurement succeeded; it must fail rather than fall back")
	}
}
