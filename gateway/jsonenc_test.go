package gateway

import (
	"encoding/json"
	"testing"
)

var jsonStringCases = []string{
	"", "plain", `quote " backslash \ slash /`, "<script>&amp;</script>", "tab\tnl\ncr\rbs\bff\f nul\x00 \x1f \x7f",
	"café ☕ 😀", "bad utf-8 \xff\xfe end", "cut \xe2\x82", "line\u2028para\u2029", "\u00a0\ufeff",
}

// TestAppendJSONString: the same bytes as encoding/json for every kind of
// character it escapes or replaces.
func TestAppendJSONString(t *testing.T) {
	for _, s := range jsonStringCases {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Errorf("%q: %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonStringCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("%q: %s, want %s", s, got, want)
		}
	})
}

// TestServiceListAppendJSON: list_services' encoder writes what
// encoding/json writes for the same list, and as text what encoding/json
// writes for that JSON as a string.
func TestServiceListAppendJSON(t *testing.T) {
	for _, l := range []serviceList{
		{Services: []serviceSummary{}},
		{Services: []serviceSummary{{}}, TotalCount: 1},
		{Services: []serviceSummary{
			{ServerName: "A <b>", Path: "/a", Description: "d \"q\"\n", Tags: []string{"x", "é"}, Enabled: true,
				HealthStatus: "unhealthy: dial tcp: refused", LastCheckedISO: "2025-01-02T03:04:05Z", NumTools: 12,
				SupportedTransports: []string{"streamable-http", "sse"}, AuthProvider: "bedrock-agentcore", AuthType: "oauth"},
			{ServerName: "B", Path: "/b", Tags: []string{}, SupportedTransports: nil, NumTools: -1},
			{ServerName: `back\slash "q" \u0041`, Description: "ctl \x01 \u2028 bad \xff", Tags: []string{`a"b`, `c\d`}},
		}, TotalCount: 2},
	} {
		want, _ := json.Marshal(l)
		raw, text := l.encodeBoth()
		if string(raw) != string(want) {
			t.Errorf("got\n%s\nwant\n%s", raw, want)
		}
		wantText, _ := json.Marshal(string(want))
		if string(text) != string(wantText) {
			t.Errorf("text form\n%s\nwant\n%s", text, wantText)
		}
	}
}
