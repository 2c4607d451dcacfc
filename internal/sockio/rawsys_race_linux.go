//go:build linux && race

package sockio

import "syscall"

// With the race detector, reads and writes go through package syscall,
// whose annotations tell the detector that what one goroutine wrote to a
// socket happens before another reads it; raw system calls would leave
// every exchange over the network looking like a data race. The rest of
// the package's code is the same in both builds.
func sysRead(fd uintptr, b []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), b)
	return max(n, 0), errno(err)
}

func sysWrite(fd uintptr, b []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), b)
	return max(n, 0), errno(err)
}

func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	return syscall.EIO
}
