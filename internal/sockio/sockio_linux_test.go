package sockio

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestWrapsTCP makes sure the other tests exercise the raw reads and
// writes, not net's own.
func TestWrapsTCP(t *testing.T) {
	c, _ := pair(t)
	if _, ok := c.(*conn); !ok {
		t.Fatalf("a TCP connection was not wrapped: %T", c)
	}
}

// TestQuiet: an idle open connection is quiet; one with unasked-for bytes
// or a closed peer is not, and asking consumes nothing.
func TestQuiet(t *testing.T) {
	tests := []struct {
		name string
		peer func(t *testing.T, p net.Conn)
		want bool
	}{
		{"idle", func(*testing.T, net.Conn) {}, true},
		{"bytes waiting", func(t *testing.T, p net.Conn) {
			if _, err := p.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"peer closed", func(t *testing.T, p net.Conn) { _ = p.Close() }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, p := pair(t)
			tt.peer(t, p)
			q := c.(interface{ Quiet() bool })
			var got bool
			// The peer's bytes or FIN take a moment to arrive on loopback.
			for deadline := time.Now().Add(2 * time.Second); ; {
				if got = q.Quiet(); got == tt.want || time.Now().After(deadline) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			if got != tt.want {
				t.Fatalf("Quiet() = %v, want %v", got, tt.want)
			}
			if tt.name == "bytes waiting" {
				b := make([]byte, 2)
				if n, err := c.Read(b); err != nil || string(b[:n]) != "x" {
					t.Fatalf("after Quiet, Read = %q, %v; want the byte still there", b[:n], err)
				}
			}
		})
	}
}

// TestReadWriteDoNotAllocate: the raw path's callbacks are bound once.
func TestReadWriteDoNotAllocate(t *testing.T) {
	c, p := pair(t)
	msg := []byte("ping")
	buf := make([]byte, 16)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(p, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per write and read, want 0", allocs)
	}
}
