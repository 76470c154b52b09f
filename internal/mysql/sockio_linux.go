package mysql

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// sockIO reads and writes a TCP socket with raw read(2) and write(2) calls
// made through the socket's poller (syscall.RawConn), instead of net.Conn's
// Read and Write.
//
// Why: the socket is non-blocking, so these calls never block, but Go's
// ordinary path enters the scheduler's "in a system call" state for each of
// them, and the first one after the process went idle wakes the runtime's
// monitor thread (sysmon), which then polls for a while and sleeps again.
// For a proxy that goes idle between statements, that is a futex wake, a
// futex wait and a few nanosleeps per idle period: measured, 0.4–0.8 extra
// system calls and context switches per statement. Raw calls skip that.
// Readiness, deadlines and Close behave as for net.Conn: the poller waits
// when a call reports EAGAIN.
//
// It is used by one reader and one writer at a time (the buffers above it
// are not safe for concurrent use either).
type sockIO struct {
	nc net.Conn
	rc syscall.RawConn

	// Arguments and results of the call in progress, so that the callbacks
	// are bound once (no allocation per call).
	rbuf    []byte
	rn      int
	rerr    error
	wbuf    []byte
	wn      int
	werr    error
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
}

// newSockIO returns the reader/writer to put under a connection's buffers:
// raw I/O for a TCP socket, the connection itself otherwise.
func newSockIO(c net.Conn) io.ReadWriter {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	s := &sockIO{nc: c, rc: rc}
	s.readFn = s.doRead
	s.writeFn = s.doWrite
	return s
}

// maxRW bounds one call, as the net package does.
const maxRW = 1 << 30

func (s *sockIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > maxRW {
		p = p[:maxRW]
	}
	s.rbuf, s.rn, s.rerr = p, 0, nil
	err := s.rc.Read(s.readFn)
	n, rerr := s.rn, s.rerr
	s.rbuf, s.rerr = nil, nil
	if err != nil {
		return 0, pollError("read", err)
	}
	return n, rerr
}

func (s *sockIO) doRead(fd uintptr) bool {
	for {
		r, e := sysRead(fd, s.rbuf)
		switch e {
		case 0:
			s.rn = r
			if r == 0 {
				s.rerr = io.EOF
			}
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait for readability, then call again
		default:
			s.rerr = s.opError("read", e)
			return true
		}
	}
}

func (s *sockIO) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.wbuf, s.wn, s.werr = p, 0, nil
	err := s.rc.Write(s.writeFn)
	n, werr := s.wn, s.werr
	s.wbuf, s.werr = nil, nil
	if err != nil {
		return n, pollError("write", err)
	}
	return n, werr
}

func (s *sockIO) doWrite(fd uintptr) bool {
	for s.wn < len(s.wbuf) {
		b := s.wbuf[s.wn:]
		if len(b) > maxRW {
			b = b[:maxRW]
		}
		r, e := sysWrite(fd, b)
		switch e {
		case 0:
			s.wn += r
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // wait for writability, then go on
		default:
			s.werr = s.opError("write", e)
			return true
		}
	}
	return true
}

func (s *sockIO) opError(op string, e syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: s.nc.LocalAddr(), Addr: s.nc.RemoteAddr(), Err: os.NewSyscallError(op, e)}
}

// pollError names the operation as net.Conn would ("read", not "raw-read")
// in an error from the poller (deadline, closed connection).
func pollError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op != op {
		oe.Op = op
	}
	return err
}
