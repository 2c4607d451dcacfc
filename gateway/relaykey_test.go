package gateway

import (
	"strings"
	"testing"
)

// TestRelayKey checks which paths name a relayed service: no empty or dot
// segment anywhere in the key.
func TestRelayKey(t *testing.T) {
	for _, tc := range []struct {
		path, key string
		ok        bool
	}{
		{"/weather/mcp", "weather", true},
		{"/weather/mcp/", "weather", true},
		{"/weather/", "weather", true},
		{"/team/weather/mcp", "team/weather", true},
		{"/a/b/c/mcp", "a/b/c", true},
		{"/mcp", "", false},
		{"//mcp", "", false},
		{"/weather", "", false},
		{"weather/mcp", "", false},
		{"/a//b/mcp", "", false},
		{"/./mcp", "", false},
		{"/a/./mcp", "", false},
		{"/a/../mcp", "", false},
		{"/../a/mcp", "", false},
		{"/a/../b/", "", false},
		{"/a/.../mcp", "a/...", true},
		{"/.a/mcp", ".a", true},
	} {
		key, ok := relayKey(tc.path)
		if key != tc.key || ok != tc.ok {
			t.Errorf("relayKey(%q) = %q, %v; want %q, %v", tc.path, key, ok, tc.key, tc.ok)
		}
	}
}

// TestIncomingRequestID checks which caller ids are kept and that made-up
// ids are 24 hex digits, different each time.
func TestIncomingRequestID(t *testing.T) {
	for _, id := range []string{"trace-abc-123", "A.b_c-9", strings.Repeat("x", 64)} {
		if got := incomingRequestID(id); got != id {
			t.Errorf("incomingRequestID(%q) = %q, want it kept", id, got)
		}
	}
	seen := map[string]bool{}
	for _, id := range []string{"", "a b", "line\nbreak", `"quoted"`, strings.Repeat("x", 65), "é"} {
		for range 200 {
			got := incomingRequestID(id)
			if len(got) != 24 || strings.Trim(got, "0123456789abcdef") != "" || seen[got] {
				t.Fatalf("incomingRequestID(%q) = %q: want a new 24-digit hex id", id, got)
			}
			seen[got] = true
		}
	}
}
