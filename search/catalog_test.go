package search_test

import (
	"context"
	"testing"

	"github.com/mcpgw/mcpgw/search"
	"github.com/mcpgw/mcpgw/search/searchbench"
)

func catalogIndex(t *testing.T) *search.Index {
	t.Helper()
	base, err := searchbench.LoadCatalog("../testdata/catalog")
	if err != nil {
		t.Fatal(err)
	}
	x, err := search.New(search.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	if err := x.Rebuild(base); err != nil {
		t.Fatal(err)
	}
	return x
}

// TestCatalogRanking checks answers an agent must get first on the real
// catalog, including the seed's warranty question, a typo, a synonym and a
// tag-narrowed query.
func TestCatalogRanking(t *testing.T) {
	x := catalogIndex(t)
	tests := []struct {
		query string
		tags  []string
		want  string
	}{
		{"check the warranty status of a product by its serial number", nil, "customer-support-assistant:LambdaUsingSDK___check_warranty_status"},
		{"is my gadget still under guarantee", nil, "customer-support-assistant:LambdaUsingSDK___check_warranty_status"},
		{"warrenty", nil, "customer-support-assistant:LambdaUsingSDK___check_warranty_status"},
		{"customer profile by email", nil, "customer-support-assistant:LambdaUsingSDK___get_customer_profile"},
		{"create an issue", []string{"GitLab"}, "gitlab:create_issue"},
		{"create an issue", []string{"github"}, "github:create_issue"},
		{"convert time between timezones", nil, "time:convert_time"},
		{"geocode an address", nil, "google-maps:maps_geocode"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			hits, err := x.Search(context.Background(), search.Query{Text: tt.query, Tags: tt.tags, Top: 5})
			if err != nil {
				t.Fatal(err)
			}
			if len(hits) == 0 {
				t.Fatalf("no hits, want %s first", tt.want)
			}
			if got := hits[0].ServerKey + ":" + hits[0].Tool.Name; got != tt.want {
				t.Errorf("first hit %s (%.3f), want %s", got, hits[0].Score, tt.want)
			}
			if hits[0].Score <= 0 || hits[0].Score > 1 {
				t.Errorf("score %v outside (0, 1]", hits[0].Score)
			}
		})
	}
}

// TestCatalogQuality holds the finder to its targets on the labeled query
// set (make bench-finder prints the details): recall@5 >= 0.90 and
// recall@1 >= 0.70.
func TestCatalogQuality(t *testing.T) {
	x := catalogIndex(t)
	qs, err := searchbench.LoadQueries("../testdata/finder/queries.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) < 60 {
		t.Fatalf("the query set has %d queries, want at least 60", len(qs))
	}
	rep, err := searchbench.Evaluate(context.Background(), x, qs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recall@1 %.3f  recall@5 %.3f  MRR %.3f over %d queries", rep.RecallAt1, rep.RecallAt5, rep.MRR, rep.Queries)
	if rep.RecallAt5 < 0.90 || rep.RecallAt1 < 0.70 {
		for _, r := range rep.Results {
			if r.Rank != 1 {
				t.Logf("rank %d: %q want %v got %v", r.Rank, r.Query, r.Expect, r.Got)
			}
		}
		t.Errorf("recall@1 %.3f (target 0.70), recall@5 %.3f (target 0.90)", rep.RecallAt1, rep.RecallAt5)
	}
}
