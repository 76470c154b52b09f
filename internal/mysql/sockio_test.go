//go:build linux

package mysql

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- nil
			return
		}
		done <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-done
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestSockIOStream moves more than the socket buffers hold in both
// directions, so that writes meet EAGAIN and wait for the reader.
func TestSockIOStream(t *testing.T) {
	a, b := tcpPair(t)
	ra, rb := newSockIO(a), newSockIO(b)
	if _, ok := ra.(*sockIO); !ok {
		t.Skipf("no raw socket I/O here (%T)", ra)
	}
	want := make([]byte, 8<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	errc := make(chan error, 1)
	go func() {
		n, err := ra.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		errc <- err
	}()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(rb, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("data differs")
	}
	// Closing one end: the other reads io.EOF.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := rb.Read(got[:10]); n != 0 || err != io.EOF {
		t.Fatalf("after peer close: %d, %v; want 0, EOF", n, err)
	}
}

// TestSockIOErrors checks that deadlines, a locally closed socket and a
// reset peer give the errors net.Conn gives.
func TestSockIOErrors(t *testing.T) {
	a, b := tcpPair(t)
	ra := newSockIO(a)
	if _, ok := ra.(*sockIO); !ok {
		t.Skipf("no raw socket I/O here (%T)", ra)
	}
	buf := make([]byte, 16)

	_ = a.SetReadDeadline(time.Now().Add(-time.Second))
	_, err := ra.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("past deadline: %v; want a timeout", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("past deadline: %#v; want an OpError named read", err)
	}
	_ = a.SetReadDeadline(time.Time{})

	// Data still flows after a timeout.
	if _, err := b.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if n, err := ra.Read(buf); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}

	// Close while a read waits: the read ends with net.ErrClosed.
	errc := make(chan error, 1)
	go func() {
		_, err := ra.Read(buf)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the read park (not a timed assertion)
	a.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on closed socket: %v; want net.ErrClosed", err)
	}
	if _, err := ra.Write(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on closed socket: %v; want net.ErrClosed", err)
	}
}

// TestSockIOWriteToResetPeer: writing to a peer that is gone fails with an
// error (EPIPE or ECONNRESET), never a signal or a hang.
func TestSockIOWriteToResetPeer(t *testing.T) {
	a, b := tcpPair(t)
	ra := newSockIO(a)
	if tc, ok := b.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close with RST
	}
	b.Close()
	buf := make([]byte, 64<<10)
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = ra.Write(buf)
	}
	if err == nil {
		t.Fatal("writes to a reset peer kept succeeding")
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "write" {
		t.Fatalf("write error %#v; want an OpError named write", err)
	}
}

// TestSockIONoAllocs: a read and a write through sockIO allocate nothing.
func TestSockIONoAllocs(t *testing.T) {
	a, b := tcpPair(t)
	ra, rb := newSockIO(a), newSockIO(b)
	if _, ok := ra.(*sockIO); !ok {
		t.Skipf("no raw socket I/O here (%T)", ra)
	}
	msg := []byte("0123456789abcdef")
	buf := make([]byte, len(msg))
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := ra.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rb, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per write+read; want 0", allocs)
	}
}
