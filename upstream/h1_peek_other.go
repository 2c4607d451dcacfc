//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package upstream

import "net"

// peerClosed cannot peek on this platform; a connection the upstream closed
// is found when the request on it fails, and the request is sent again.
func peerClosed(net.Conn) bool { return false }
