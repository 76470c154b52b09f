//go:build linux && race

package mysql

import "syscall"

// Under the race detector, socket I/O goes through syscall.Read and
// syscall.Write: they tell the detector that a write to a socket happens
// before the read of the same bytes on the other end (raw calls would hide
// that and produce false reports).

func sysRead(fd uintptr, b []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), b)
	if err != nil {
		return 0, err.(syscall.Errno)
	}
	return n, 0
}

func sysWrite(fd uintptr, b []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), b)
	if err != nil {
		return 0, err.(syscall.Errno)
	}
	return n, 0
}
