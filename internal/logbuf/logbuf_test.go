package logbuf

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is the slow writer: it keeps every write it gets.
type recorder struct {
	mu     sync.Mutex
	writes []string
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func (r *recorder) got() (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.writes, ""), len(r.writes)
}

func TestLinesWaitAtMostTheDelay(t *testing.T) {
	rec := &recorder{}
	w := New(rec, Options{Delay: 50 * time.Millisecond})
	start := time.Now()
	for i := range 100 {
		fmt.Fprintf(w, "line %d\n", i)
	}
	if s, _ := rec.got(); s != "" {
		t.Fatalf("written before the delay: %q", s)
	}
	for {
		if s, n := rec.got(); s != "" {
			if n != 1 || !strings.HasPrefix(s, "line 0\n") || !strings.HasSuffix(s, "line 99\n") {
				t.Fatalf("%d writes, %q", n, s)
			}
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatal("nothing written 2 s after the lines")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("written after %v, before the delay", d)
	}
	// The next line arms the delay again.
	fmt.Fprintf(w, "again\n")
	time.Sleep(200 * time.Millisecond)
	if s, n := rec.got(); n != 2 || !strings.HasSuffix(s, "again\n") {
		t.Fatalf("%d writes, %q", n, s)
	}
}

func TestWriteNowAndFullBufferWriteAtOnce(t *testing.T) {
	rec := &recorder{}
	w := New(rec, Options{Delay: time.Hour, Size: 64})
	_, _ = w.Write([]byte("info\n"))
	_, _ = w.WriteNow([]byte("warn\n"))
	if s, n := rec.got(); s != "info\nwarn\n" || n != 1 {
		t.Fatalf("after WriteNow: %d writes, %q", n, s)
	}
	_, _ = w.Write(bytes.Repeat([]byte("x"), 63))
	if _, n := rec.got(); n != 1 {
		t.Fatalf("written below the size")
	}
	_, _ = w.Write([]byte("\n"))
	if s, n := rec.got(); n != 2 || len(s) != len("info\nwarn\n")+64 {
		t.Fatalf("a full buffer was not written: %d writes", n)
	}
}

func TestCloseWritesTheRestAndThenPassesThrough(t *testing.T) {
	rec := &recorder{}
	w := New(rec, Options{Delay: time.Hour})
	_, _ = w.Write([]byte("a\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte("b\n"))
	if s, n := rec.got(); s != "a\nb\n" || n != 2 {
		t.Fatalf("%d writes, %q", n, s)
	}
}

// TestConcurrentWritersKeepEveryLineInOrder runs under the race detector
// in make test.
func TestConcurrentWritersKeepEveryLineInOrder(t *testing.T) {
	rec := &recorder{}
	w := New(rec, Options{Delay: time.Millisecond, Size: 512})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				fmt.Fprintf(w, "%d %d\n", g, i)
			}
		}()
	}
	wg.Wait()
	_ = w.Close()
	s, _ := rec.got()
	next := make([]int, 8)
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for _, l := range lines {
		var g, i int
		if _, err := fmt.Sscanf(l, "%d %d", &g, &i); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if i != next[g] {
			t.Fatalf("writer %d: line %d after %d", g, i, next[g]-1)
		}
		next[g]++
	}
	if len(lines) != 8*500 {
		t.Fatalf("%d lines, want %d", len(lines), 8*500)
	}
}
