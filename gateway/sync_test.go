package gateway

import (
	"io"
	"os"
	"strings"
	"sync"
)

// syncWriter makes a log buffer safe for concurrent request goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func readFile(f string) (string, error) {
	b, err := os.ReadFile(f)
	return strings.TrimSpace(string(b)), err
}
