//go:build linux || darwin || freebsd || netbsd || openbsd

package upstream

import (
	"net"
	"syscall"
)

// peerClosed reports whether an idle connection can no longer carry a
// request: the upstream closed it, reset it, or sent bytes nobody asked for.
// It peeks without blocking and without consuming, one system call.
func peerClosed(c net.Conn) bool {
	if q, ok := c.(quietConn); ok {
		return !q.Quiet()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	dead := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		// EAGAIN: nothing to read and not closed, the one healthy answer;
		// 0 bytes is end of stream; anything read is unexpected.
		rerr := peek(fd, b[:])
		dead = rerr != syscall.EAGAIN && rerr != syscall.EWOULDBLOCK
		return true // never wait for readability
	})
	return dead || err != nil
}

// quietConn is a connection that can tell by itself (internal/sockio's, on
// Linux, without allocating).
type quietConn interface{ Quiet() bool }
