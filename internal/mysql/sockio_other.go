//go:build !linux

package mysql

import (
	"io"
	"net"
)

// newSockIO returns the connection itself: raw socket I/O (sockio_linux.go)
// is Linux-only.
func newSockIO(c net.Conn) io.ReadWriter { return c }
