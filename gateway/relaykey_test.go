package gateway

import "testing"

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
