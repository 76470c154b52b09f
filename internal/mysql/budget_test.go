package mysql

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"
)

// pipeConn returns a Conn reading what the returned writer sends.
func pipeConn(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return NewConn(a), b
}

func sendPackets(w net.Conn, seq byte, payload []byte) {
	for {
		n := min(len(payload), MaxPayload)
		w.Write([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq})
		w.Write(payload[:n])
		seq++
		payload = payload[n:]
		if n < MaxPayload {
			return
		}
	}
}

func TestBudgetChargedAndGivenBack(t *testing.T) {
	c, w := pipeConn(t)
	c.Budget = NewBudget(8 << 20)
	big := bytes.Repeat([]byte{'x'}, 3<<20)
	go sendPackets(w, 0, big)
	p, err := c.ReadPacket()
	if err != nil || !bytes.Equal(p, big) {
		t.Fatalf("read: %v (len %d)", err, len(p))
	}
	if u := c.Budget.Used(); u < 3<<20-smallBuf || u > 4<<20 {
		t.Fatalf("charged %d for a 3 MiB packet", u)
	}
	c.ShrinkBuffers()
	if u := c.Budget.Used(); u != 0 {
		t.Fatalf("still charged %d after ShrinkBuffers", u)
	}
	if cap(c.buf) > smallBuf {
		t.Fatalf("buffer of %d kept", cap(c.buf))
	}
	// Small packets cost the budget nothing.
	c.ResetSeq()
	go sendPackets(w, 0, []byte("SELECT 1"))
	if _, err := c.ReadPacket(); err != nil || c.Budget.Used() != 0 {
		t.Fatalf("small packet: %v, charged %d", err, c.Budget.Used())
	}
}

// A packet the budget cannot cover is read and dropped; the connection
// reads the next packet normally.
func TestBudgetExhaustedDropsPacket(t *testing.T) {
	c, w := pipeConn(t)
	c.Budget = NewBudget(1 << 20)
	c.BudgetWait = 50 * time.Millisecond
	go func() {
		sendPackets(w, 0, bytes.Repeat([]byte{'y'}, 20<<20)) // two physical packets
		sendPackets(w, 0, []byte("next"))
	}()
	if _, err := c.ReadPacket(); !errors.Is(err, ErrNoPacketMemory) {
		t.Fatalf("want ErrNoPacketMemory, got %v", err)
	}
	if u := c.Budget.Used(); u != 0 {
		t.Fatalf("charged %d after a dropped packet", u)
	}
	c.ResetSeq()
	p, err := c.ReadPacket()
	if err != nil || string(p) != "next" {
		t.Fatalf("next packet: %q %v", p, err)
	}
}

// A waiting packet gets the memory another connection gives back.
func TestBudgetWaitsForMemory(t *testing.T) {
	b := NewBudget(2 << 20)
	if !b.acquire(2<<20, time.Second) {
		t.Fatal("first acquire")
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		b.release(2 << 20)
	}()
	if !b.acquire(1<<20, 2*time.Second) {
		t.Fatal("acquire did not get the memory given back")
	}
	if b.acquire(4<<20, time.Millisecond) {
		t.Fatal("more than the limit acquired")
	}
}

func TestPacketTooLarge(t *testing.T) {
	c, w := pipeConn(t)
	c.MaxPacketSize = 1024
	go w.Write([]byte{0, 0, 1, 0}) // claims 64 KiB, sends nothing
	_, err := c.ReadPacket()
	if !errors.Is(err, ErrPacketTooLarge) {
		t.Fatalf("got %v", err)
	}
	if e := ProtocolError(err); e == nil || e.Code != 1153 || e.SQLState != "08S01" {
		t.Fatalf("ProtocolError = %v", e)
	}
}

// The rest of a packet must arrive within ReadTimeout once it started; the
// wait for its first byte is not bounded by it.
func TestReadTimeoutMidPacket(t *testing.T) {
	c, w := pipeConn(t)
	c.ReadTimeout = 100 * time.Millisecond
	go func() {
		time.Sleep(300 * time.Millisecond) // idle before the packet: fine
		w.Write([]byte{10, 0, 0, 0, 'a'})  // then 1 byte of 10, and a stall
	}()
	start := time.Now()
	_, err := c.ReadPacket()
	if !errors.Is(err, ErrReadTimeout) {
		t.Fatalf("want ErrReadTimeout, got %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 2*time.Second {
		t.Fatalf("timed out after %v", d)
	}
	if e := ProtocolError(err); e == nil || e.Code != 1159 {
		t.Fatalf("ProtocolError = %v", e)
	}
}

func TestTruncateUserName(t *testing.T) {
	long := string(bytes.Repeat([]byte("é"), 200))
	got := TruncateUserName(long)
	if n := len([]rune(got)); n != MaxUserNameChars {
		t.Fatalf("%d characters", n)
	}
	if TruncateUserName("root") != "root" {
		t.Fatal("short name changed")
	}
}
