//go:build linux && !race

package mysql

import (
	"syscall"
	"unsafe"
)

// sysRead is read(2) without the scheduler's system-call bookkeeping (the
// socket is non-blocking: the call never blocks).
func sysRead(fd uintptr, b []byte) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(r), e
}

// sysWrite is write(2), as sysRead.
func sysWrite(fd uintptr, b []byte) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	return int(r), e
}
