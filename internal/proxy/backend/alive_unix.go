//go:build unix

package backend

import (
	"errors"
	"net"
	"syscall"
)

// peekAlive peeks at the socket without blocking and without consuming
// anything: EAGAIN means nothing to read and the peer still there (alive); EOF
// or an error means closed; pending data on an idle connection means the
// server said something unsolicited (typically an error before closing).
func peekAlive(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil:
			alive = false // 0 bytes: EOF; 1 byte: unsolicited data
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
			alive = true
		default:
			alive = false
		}
		return true // never wait for readability
	})
	return err == nil && alive
}
