package search

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/mcpgw/mcpgw/registry"
)

func TestRRF(t *testing.T) {
	type want struct {
		id    string
		score float64
	}
	// With k = 0 the arithmetic is easy to check by hand: rank r adds 1/r,
	// and first place in both of two rankings makes 2.
	tests := []struct {
		name  string
		k     int
		lists [][]string
		want  []want
	}{
		{"agreement", 0, [][]string{{"a", "b"}, {"a", "b"}}, []want{{"a", 1}, {"b", 0.5}}},
		{"both beat one", 0, [][]string{{"a", "b", "c"}, {"c", "b"}},
			// a: 1/1; b: 1/2 + 1/2; c: 1/3 + 1/1
			[]want{{"c", (1.0/3 + 1) / 2}, {"a", 0.5}, {"b", 0.5}}},
		{"tie goes to the better best rank", 0, [][]string{{"a", "x", "y"}, {"z", "b", "c"}},
			// a and z tie at 1/1 (a is in the earlier ranking), x and b at 1/2.
			[]want{{"a", 0.5}, {"z", 0.5}, {"x", 0.25}, {"b", 0.25}, {"y", 1.0 / 6}, {"c", 1.0 / 6}}},
		{"k = 60", 60, [][]string{{"a", "b"}, {"b", "a"}},
			// a and b tie at 1/61 + 1/62; a comes first from the first ranking.
			[]want{{"a", (1.0/61 + 1.0/62) / (2.0 / 61)}, {"b", (1.0/61 + 1.0/62) / (2.0 / 61)}}},
		{"k = 60, found by one ranking only", 60, [][]string{{}, {"a", "b"}},
			[]want{{"a", 0.5}, {"b", (1.0 / 62) / (2.0 / 61)}}},
		{"a repeated id counts once, at its best rank", 0, [][]string{{"a", "a", "b"}, {"b"}},
			[]want{{"b", (1.0/3 + 1) / 2}, {"a", 0.5}}},
		{"empty", 60, [][]string{{}, {}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rrf(tt.k, tt.lists...)
			if len(got) != len(tt.want) {
				t.Fatalf("rrf = %+v, want %+v", got, tt.want)
			}
			for i, w := range tt.want {
				if got[i].ID != w.id || math.Abs(got[i].Score-w.score) > 1e-12 {
					t.Fatalf("rrf[%d] = %s %.6f, want %s %.6f (all: %+v)", i, got[i].ID, got[i].Score, w.id, w.score, got)
				}
				if got[i].Score < 0 || got[i].Score > 1 {
					t.Fatalf("score %v outside 0..1", got[i].Score)
				}
			}
		})
	}
}

func hit(key, tool string) Hit {
	return Hit{ServerKey: key, ServerPath: "/" + key, Tool: registry.Tool{Name: tool}, Score: 0.9}
}

func TestFuseHits(t *testing.T) {
	text := []Hit{hit("a", "x"), hit("a", "y"), hit("b", "x")}
	vec := []Hit{hit("c", "z"), hit("a", "y"), hit("b", "x")}
	ids := func(hs []Hit) string {
		var s []string
		for _, h := range hs {
			s = append(s, h.ServerKey+":"+h.Tool.Name)
		}
		return strings.Join(s, " ")
	}
	tests := []struct {
		name       string
		top, maxSv int
		want       string
	}{
		// a:y is 2nd in both, b:x 3rd in both; then a:x and c:z, firsts
		// of one ranking each (the text ranking's first).
		{"all", 10, 0, "a:y b:x a:x c:z"},
		{"top", 2, 0, "a:y b:x"},
		{"at most one server", 10, 1, "a:y a:x"},
		{"at most two servers", 10, 2, "a:y b:x a:x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fuseHits(60, text, vec, tt.top, tt.maxSv)
			if ids(got) != tt.want {
				t.Fatalf("fuseHits = %s, want %s", ids(got), tt.want)
			}
			for i, h := range got {
				if h.Score <= 0 || h.Score > 1 || i > 0 && h.Score > got[i-1].Score {
					t.Fatalf("scores not in 0..1 or not falling: %s %v", ids(got), h.Score)
				}
			}
		})
	}
}

func TestEmbedText(t *testing.T) {
	main := "Check the warranty status\n  of a product."
	s := &registry.Server{ServerName: "Support", ToolList: []registry.Tool{{
		Name:              "LambdaUsingSDK___check_warranty_status",
		ParsedDescription: registry.ParsedDescription{Main: &main},
		Schema:            json.RawMessage(`{"type":"object","properties":{"serialNumber":{"type":"string"},"customer_email":{}}}`),
	}}}
	got := embedText(s, &s.ToolList[0])
	want := "check warranty status (Support). Check the warranty status of a product. Parameters: customer email, serial number"
	if got != want {
		t.Fatalf("embedText = %q\nwant %q", got, want)
	}
	long := strings.Repeat("é", maxEmbedText)
	s.ToolList[0].ParsedDescription.Main = &long
	got = embedText(s, &s.ToolList[0])
	if len(got) > maxEmbedText || !strings.HasSuffix(got, "é") {
		t.Fatalf("a long text is cut to %d bytes, ending %q; want at most %d, on a rune boundary", len(got), got[len(got)-4:], maxEmbedText)
	}
}

func TestHasTags(t *testing.T) {
	s := &registry.Server{Tags: []string{"Payments", " finance "}}
	tests := []struct {
		tags []string
		want bool
	}{
		{nil, true},
		{[]string{"payments"}, true},
		{[]string{"FINANCE", "payments"}, true},
		{[]string{"payments", "crm"}, false},
		{[]string{"pay"}, false},
	}
	for _, tt := range tests {
		if got := hasTags(s, tt.tags); got != tt.want {
			t.Errorf("hasTags(%v) = %v, want %v", tt.tags, got, tt.want)
		}
	}
}

func TestUnitVec(t *testing.T) {
	v := unitVec([]float32{3, 4})
	if math.Abs(float64(v[0])-0.6) > 1e-6 || math.Abs(float64(v[1])-0.8) > 1e-6 {
		t.Fatalf("unitVec(3,4) = %v", v)
	}
	if z := unitVec([]float32{0, 0}); z[0] != 0 || z[1] != 0 {
		t.Fatalf("unitVec(0,0) = %v, want zeros", z)
	}
	if n := unitVec([]float32{float32(math.NaN()), 1}); n[0] != 0 || n[1] != 0 {
		t.Fatalf("unitVec(NaN,1) = %v, want zeros", n)
	}
}
