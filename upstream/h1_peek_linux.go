package upstream

import (
	"syscall"
	"unsafe"
)

// peek reads into b without consuming and without waiting. It is a raw
// system call, which never blocks here, so that it does not announce a
// blocking one to the scheduler (see package internal/sockio: it is the
// first system call of a relayed call after the client's request).
func peek(fd uintptr, b []byte) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
