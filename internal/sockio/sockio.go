// Package sockio reads and writes TCP sockets without telling the Go
// scheduler that a system call may block.
//
// Every Read and Write of a net.Conn goes through syscall.Syscall, which
// announces a possibly blocking call to the runtime first. That has two
// costs for a relay on a small machine. When the process was idle, as a
// relay is between the steps of each call, the runtime's monitor thread is
// asleep and the announcement wakes it (a futex call, and a thread to run
// on the other core, where the client or the upstream is working). And a
// call that takes a while (a loopback write does the receiver's TCP work)
// may see its processor handed to another thread meanwhile. A socket in
// non-blocking mode never blocks, so these reads and writes are raw system
// calls, and waiting for readiness goes through the connection's own poller
// (syscall.RawConn), as net's does. Measured on the relay (BENCHMARKS.md):
// a third fewer context switches and about a tenth less CPU per call.
package sockio

import "net"

// Wrap returns c, reading and writing through raw system calls where the
// platform allows it (Linux TCP connections); anything else is returned
// unchanged. Deadlines, Close and the addresses are c's own.
func Wrap(c net.Conn) net.Conn {
	return wrap(c)
}
