package sockio

import "testing"

// TestWrapsTCP makes sure the other tests exercise the raw reads and
// writes, not net's own.
func TestWrapsTCP(t *testing.T) {
	c, _ := pair(t)
	if _, ok := c.(*conn); !ok {
		t.Fatalf("a TCP connection was not wrapped: %T", c)
	}
}
