//go:build linux

package sockio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"
)

func wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	w := &conn{TCPConn: tc, rc: rc}
	// The callbacks are bound once: a closure per call would cost three
	// allocations per Read or Write (it and the variables it captures).
	w.readFn, w.writeFn, w.peekFn = w.read, w.write, w.peek
	return w
}

// conn is a TCP connection whose Read and Write are raw system calls. The
// embedded *net.TCPConn gives every other method (deadlines, CloseWrite,
// SyscallConn) unchanged; the deadlines hold for these reads and writes
// too, since they wait on the same poller.
type conn struct {
	*net.TCPConn
	rc syscall.RawConn

	// The arguments and results of the bound callbacks, for one Read (or
	// Quiet) and one Write at a time, as net.Conn allows.
	rmu            sync.Mutex
	rb             []byte
	rn             int
	rerr           syscall.Errno
	peekDead       bool
	readFn, peekFn func(uintptr) bool

	wmu     sync.Mutex
	wb      []byte
	wn      int
	werr    syscall.Errno
	writeFn func(uintptr) bool
}

func (c *conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	c.rb, c.rn, c.rerr = b, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerr
	c.rb = nil
	c.rmu.Unlock()
	if err := c.failure("read", err, errno); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// read is Read's callback; false means wait until readable, then again.
func (c *conn) read(fd uintptr) bool {
	for {
		r, e := sysRead(fd, c.rb)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.rn, c.rerr = r, e
		return true
	}
}

func (c *conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	c.wb, c.wn, c.werr = b, 0, 0
	err := c.rc.Write(c.writeFn)
	n, errno := c.wn, c.werr
	c.wb = nil
	c.wmu.Unlock()
	return n, c.failure("write", err, errno)
}

// failure is the error of a read or write: the poller's (a deadline, a
// closed connection) or the system call's, or nil.
func (c *conn) failure(op string, err error, errno syscall.Errno) error {
	switch {
	case err != nil:
		return c.opError(op, err)
	case errno != 0:
		return c.opError(op, os.NewSyscallError(op, errno))
	}
	return nil
}

// write is Write's callback; false means wait until writable, then go on.
func (c *conn) write(fd uintptr) bool {
	for c.wn < len(c.wb) {
		r, e := sysWrite(fd, c.wb[c.wn:])
		switch e {
		case 0:
			c.wn += r
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.werr = e
			return true
		}
	}
	return true
}

// Quiet reports whether the connection is open and has nothing to read:
// what an idle pooled connection must be to carry the next request. The
// peer closing it, resetting it, or sending bytes nobody asked for all
// make it unfit. One raw peek, which neither consumes nor waits.
func (c *conn) Quiet() bool {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.peekDead = true
	if err := c.rc.Read(c.peekFn); err != nil {
		return false
	}
	return !c.peekDead
}

// peek is Quiet's callback: EAGAIN (nothing to read, not closed) is the
// one healthy answer; 0 bytes is the end of the stream.
func (c *conn) peek(fd uintptr) bool {
	var b [1]byte
	_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	c.peekDead = e != syscall.EAGAIN
	return true // never wait for readability
}

// opError dresses err as net's own errors are, so that callers matching
// net.Error, os.ErrDeadlineExceeded or net.ErrClosed see what they expect.
func (c *conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
