//go:build !linux

package sockio

import "net"

func wrap(c net.Conn) net.Conn { return c }
