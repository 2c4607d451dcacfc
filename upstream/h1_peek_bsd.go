//go:build darwin || freebsd || netbsd || openbsd

package upstream

import "syscall"

// peek reads into b without consuming and without waiting.
func peek(fd uintptr, b []byte) error {
	_, _, err := syscall.Recvfrom(int(fd), b, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err
}
