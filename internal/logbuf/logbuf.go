// Package logbuf batches log lines on their way to a file or pipe: one
// write system call per batch instead of one per line. The gateway logs an
// access event for every MCP request; written one by one, those writes
// cost about a fifth of the CPU of a relayed call (BENCHMARKS.md). nginx's
// buffered access_log and Envoy's access-log flush interval make the same
// trade: a line waits at most the flush delay, and what is buffered when
// the process dies without closing the writer is lost.
package logbuf

import (
	"io"
	"sync"
	"time"
)

// Options tune a Writer; the zero value takes the defaults.
type Options struct {
	// Delay is how long a line may wait before it is written (default 100 ms).
	Delay time.Duration
	// Size is how many buffered bytes make the writer write at once (default 64 KiB).
	Size int
}

// Writer buffers what is written to it and hands it to the underlying
// writer in order, at the latest Delay after it came. It is safe for
// concurrent use; each Write should be one whole line, as zerolog's are.
type Writer struct {
	out   io.Writer
	delay time.Duration
	size  int

	mu     sync.Mutex // guards buf, spare, armed, closed
	buf    []byte
	spare  []byte
	armed  bool
	closed bool
	timer  *time.Timer

	outMu sync.Mutex // held while writing to out, so batches stay in order
}

// New returns a Writer that writes to out.
func New(out io.Writer, opts Options) *Writer {
	if opts.Delay <= 0 {
		opts.Delay = 100 * time.Millisecond
	}
	if opts.Size <= 0 {
		opts.Size = 64 << 10
	}
	w := &Writer{out: out, delay: opts.Delay, size: opts.Size}
	w.timer = time.AfterFunc(time.Hour, func() { _ = w.Flush() })
	w.timer.Stop()
	return w
}

// Write buffers p. A full buffer is written at once; otherwise the first
// line into an empty buffer arms the flush delay.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return w.write(p)
	}
	w.buf = append(w.buf, p...)
	full := len(w.buf) >= w.size
	if !full && !w.armed {
		w.armed = true
		w.timer.Reset(w.delay)
	}
	w.mu.Unlock()
	if full {
		return len(p), w.Flush()
	}
	return len(p), nil
}

// WriteNow writes what is buffered and then p, before it returns: for
// warnings and errors, which should be on the terminal the moment they
// happen and survive a crash right after.
func (w *Writer) WriteNow(p []byte) (int, error) {
	w.mu.Lock()
	w.buf = append(w.buf, p...)
	w.mu.Unlock()
	return len(p), w.Flush()
}

// Flush writes what is buffered.
func (w *Writer) Flush() error {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	w.mu.Lock()
	b := w.buf
	w.buf, w.spare = w.spare[:0], nil
	if w.armed {
		w.armed = false
		w.timer.Stop()
	}
	w.mu.Unlock()
	if len(b) == 0 {
		w.giveBack(b)
		return nil
	}
	_, err := w.out.Write(b)
	w.giveBack(b)
	return err
}

// giveBack keeps a written batch's buffer for the next one, unless it grew
// unusually large.
func (w *Writer) giveBack(b []byte) {
	if cap(b) > 4*w.size {
		return
	}
	w.mu.Lock()
	w.spare = b[:0]
	w.mu.Unlock()
}

// write passes p straight through, in order with the batches.
func (w *Writer) write(p []byte) (int, error) {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	return w.out.Write(p)
}

// Close writes what is buffered; later writes go straight through.
func (w *Writer) Close() error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	return w.Flush()
}
