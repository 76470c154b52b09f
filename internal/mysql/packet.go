package mysql

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"sync"
	"time"
)

// ErrPacketSequence is returned when a peer sends a packet with an unexpected
// sequence id.
var ErrPacketSequence = errors.New("mysql: packets out of order")

// ErrPacketTooLarge is returned by ReadPacket for a logical packet larger
// than MaxPacketSize. The rest of the packet is not read: the connection
// cannot continue (MariaDB sends ERR 1153 and closes it).
var ErrPacketTooLarge = errors.New("mysql: packet larger than max_allowed_packet")

// ErrReadTimeout wraps the timeout of a packet whose first bytes arrived
// but whose rest did not within ReadTimeout (MariaDB's net_read_timeout).
var ErrReadTimeout = errors.New("mysql: timeout reading the rest of a packet")

// ErrNoPacketMemory is returned by ReadPacket when the packet memory budget
// stayed exhausted for BudgetWait. The whole packet was read and dropped:
// the connection can go on with the next command.
var ErrNoPacketMemory = errors.New("mysql: packet memory budget exhausted")

// ProtocolError returns the ERR a MariaDB server sends before closing a
// connection whose read failed with err, or nil when it sends none (the peer
// went away, or the error is not the peer's fault).
func ProtocolError(err error) *Error {
	switch {
	case errors.Is(err, ErrPacketTooLarge):
		return NewError(ErrCodeNetPacketTooLarge, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes")
	case errors.Is(err, ErrPacketSequence):
		return NewError(ErrCodePacketsOutOfOrder, "08S01", "Got packets out of order")
	case errors.Is(err, ErrReadTimeout):
		return NewError(ErrCodeNetReadInterrupted, "08S01", "Got timeout reading communication packets")
	}
	return nil
}

const (
	readBufSize  = 16 * 1024
	writeBufSize = 16 * 1024
	// smallBuf is what a connection's payload buffer may keep between
	// packets: a larger one (grown for a large packet) is dropped by
	// ShrinkBuffers, and only capacity above it counts against a Budget.
	smallBuf = 64 * 1024
)

// Conn is one end of a MySQL protocol connection: buffered packet I/O with
// sequence-id tracking. It is not safe for concurrent use, except Close.
type Conn struct {
	raw net.Conn // the socket (possibly TLS-wrapped)
	tcp net.Conn // the original socket, for liveness checks
	// io is what the buffers (or the compressor) read and write: raw
	// socket I/O for a plain TCP socket (see sockIO), else raw.
	io   io.ReadWriter
	comp *compressor
	br   *bufio.Reader
	bw   *bufio.Writer

	seq  uint8
	buf  []byte // reusable payload buffer
	head [4]byte

	// MaxPacketSize bounds the size of a logical packet that ReadPacket will
	// assemble (0 = no limit beyond 1 GiB).
	MaxPacketSize int
	// ReadTimeout, when set, bounds how long the rest of a packet may take
	// once its first byte arrived (MariaDB's net_read_timeout). The wait
	// for the first byte is the caller's deadline (set it with
	// SetReadDeadline, so that it is restored afterwards).
	ReadTimeout time.Duration
	// Budget, when set, is charged with the payload buffer's capacity
	// above smallBuf while ReadPacket assembles a large packet; when it
	// stays exhausted for BudgetWait (default 5 s), the packet is read,
	// dropped and ReadPacket returns ErrNoPacketMemory.
	Budget     *Budget
	BudgetWait time.Duration
	charged    int64 // capacity charged to Budget
	// readDeadline is the deadline set by SetReadDeadline, restored after
	// ReadPacket bounded the rest of a packet with ReadTimeout.
	readDeadline time.Time
}

// NewConn wraps a network connection.
func NewConn(c net.Conn) *Conn {
	rw := newSockIO(c)
	return &Conn{
		raw: c,
		tcp: c,
		io:  rw,
		br:  bufio.NewReaderSize(rw, readBufSize),
		bw:  bufio.NewWriterSize(rw, writeBufSize),
	}
}

// NetConn returns the current underlying connection (TLS after an upgrade).
func (c *Conn) NetConn() net.Conn { return c.raw }

// TCPConn returns the original socket.
func (c *Conn) TCPConn() net.Conn { return c.tcp }

// Close closes the underlying connection.
func (c *Conn) Close() error { return c.raw.Close() }

// SetDeadline sets read and write deadlines on the underlying connection.
func (c *Conn) SetDeadline(t time.Time) error {
	c.readDeadline = t
	return c.raw.SetDeadline(t)
}

// SetReadDeadline sets the read deadline of the underlying connection.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.readDeadline = t
	return c.raw.SetReadDeadline(t)
}

// ReadDeadline is the deadline last set with SetReadDeadline or SetDeadline.
func (c *Conn) ReadDeadline() time.Time { return c.readDeadline }

// Seq returns the next expected sequence id.
func (c *Conn) Seq() uint8 { return c.seq }

// SetSeq sets the next sequence id (used when relaying between two peers).
func (c *Conn) SetSeq(s uint8) { c.seq = s }

// ResetSeq starts a new command: sequence ids restart at 0.
func (c *Conn) ResetSeq() {
	c.seq = 0
	if c.comp != nil {
		c.comp.resetSeq()
	}
}

// replaceTransport swaps the socket under the buffers (TLS upgrade).
func (c *Conn) replaceTransport(nc net.Conn) {
	c.raw = nc
	c.io = nc
	c.br.Reset(nc)
	c.bw.Reset(nc)
}

// transportForUpgrade returns the socket to run a TLS handshake on: bytes
// the peer sent early (a ClientHello right behind the SSLRequest) and that
// sit in the read buffer are read first.
func (c *Conn) transportForUpgrade() net.Conn {
	n := c.br.Buffered()
	if n == 0 {
		return c.raw
	}
	pre, _ := c.br.Peek(n)
	return &prefixConn{Conn: c.raw, pre: bytes.Clone(pre)}
}

// prefixConn reads pre before the connection.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// EnableCompression switches to the compressed protocol (after the handshake).
func (c *Conn) EnableCompression() {
	c.comp = newCompressor(c.io)
	c.br.Reset(c.comp)
	c.bw.Reset(c.comp)
}

// Compressed reports whether the compression protocol is on.
func (c *Conn) Compressed() bool { return c.comp != nil }

// Buffered reports how many bytes are waiting in the read buffer.
func (c *Conn) Buffered() int { return c.br.Buffered() }

func (c *Conn) readHeader() (int, error) {
	if c.br.Buffered() >= 4 {
		// Buffered: copied without io.ReadFull's calls through the
		// io.Reader interface.
		h, _ := c.br.Peek(4)
		c.head = [4]byte(h)
		_, _ = c.br.Discard(4)
	} else if _, err := io.ReadFull(c.br, c.head[:]); err != nil {
		return 0, err
	}
	n := int(uint32(c.head[0]) | uint32(c.head[1])<<8 | uint32(c.head[2])<<16)
	if c.head[3] != c.seq {
		return 0, fmt.Errorf("%w: got sequence %d, want %d", ErrPacketSequence, c.head[3], c.seq)
	}
	c.seq++
	return n, nil
}

// ReadPacket reads one logical packet, joining payloads split over several
// physical packets. The returned slice is valid until the next read.
func (c *Conn) ReadPacket() ([]byte, error) {
	limit := c.MaxPacketSize
	if limit <= 0 {
		limit = 1 << 30
	}
	if c.ReadTimeout > 0 {
		// The first byte arrives under the caller's deadline (idle
		// timeout); the rest must follow within ReadTimeout. A packet
		// already buffered whole (most commands) needs no deadline.
		if _, err := c.br.Peek(1); err != nil {
			return nil, err
		}
		if !c.packetBuffered() {
			if err := c.raw.SetReadDeadline(time.Now().Add(c.ReadTimeout)); err != nil {
				return nil, err
			}
			p, err := c.readPacket(limit)
			_ = c.raw.SetReadDeadline(c.readDeadline)
			var ne net.Error
			if err != nil && errors.As(err, &ne) && ne.Timeout() {
				err = fmt.Errorf("%w: %w", ErrReadTimeout, err)
			}
			return p, err
		}
	}
	return c.readPacket(limit)
}

// packetBuffered reports whether a whole short packet sits in the read
// buffer.
func (c *Conn) packetBuffered() bool {
	n := c.br.Buffered()
	if n < 4 {
		return false
	}
	h, _ := c.br.Peek(4)
	size := int(h[0]) | int(h[1])<<8 | int(h[2])<<16
	return size < MaxPayload && 4+size <= n
}

func (c *Conn) readPacket(limit int) ([]byte, error) {
	total := 0
	dropping := false // the budget refused: read the packet, keep nothing
	for {
		n, err := c.readHeader()
		if err != nil {
			return nil, err
		}
		if total+n > limit {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrPacketTooLarge, limit)
		}
		budgeted := !dropping && c.Budget != nil && total+n > smallBuf
		if budgeted && !c.charge(total+n) {
			budgeted, dropping = false, true
		}
		switch {
		case dropping:
			if _, err := c.br.Discard(n); err != nil {
				return nil, err
			}
		case budgeted:
			// The budget covers the size the header announces: take a
			// buffer of that size at once (from the pool of large
			// buffers) instead of growing one as the bytes arrive.
			if cap(c.buf) < total+n {
				nb := getBigBuf(total + n)[:total]
				copy(nb, c.buf[:total])
				c.buf = nb // the old one is garbage: pooled, it would stay alive
			}
			c.buf = c.buf[:total+n]
			if _, err := io.ReadFull(c.br, c.buf[total:]); err != nil {
				return nil, err
			}
		case n <= c.br.Buffered() && total+n <= cap(c.buf):
			// The payload is buffered and fits: one copy.
			b, _ := c.br.Peek(n)
			c.buf = append(c.buf[:total], b...)
			_, _ = c.br.Discard(n)
		default:
			if c.buf, err = readAppend(c.br, c.buf[:total], n); err != nil {
				return nil, err
			}
		}
		total += n
		if n < MaxPayload {
			if dropping {
				c.ShrinkBuffers()
				return nil, fmt.Errorf("%w: %d bytes needed", ErrNoPacketMemory, total)
			}
			return c.buf[:total], nil
		}
	}
}

// charge makes sure the budget covers a payload buffer of need bytes
// (growCap's rounding included), waiting up to BudgetWait for memory other
// connections give back.
func (c *Conn) charge(need int) bool {
	want := int64(max(cap(c.buf), growCap(0, need))) - smallBuf
	if want <= c.charged {
		return true
	}
	wait := c.BudgetWait
	if wait <= 0 {
		wait = 5 * time.Second
	}
	if !c.Budget.acquire(want-c.charged, wait) {
		return false
	}
	c.charged = want
	return true
}

// PayloadCap is the capacity of the payload buffer (for tests).
func (c *Conn) PayloadCap() int { return cap(c.buf) }

// ShrinkBuffers drops payload buffers grown beyond smallBuf for a large
// packet (the last packet read is no longer valid) and gives their memory
// back to the budget. Call it between commands, and when the connection
// ends, from the goroutine that reads.
func (c *Conn) ShrinkBuffers() {
	if cap(c.buf) > smallBuf {
		putBigBuf(c.buf)
		c.buf = nil
	}
	if c.charged > 0 {
		c.Budget.release(c.charged)
		c.charged = 0
	}
	if c.comp != nil {
		c.comp.shrink()
	}
}

// readChunk bounds how far ahead of the bytes that actually arrived a read
// allocates: a length header alone (4 bytes claiming 16 MiB) cannot make a
// peer, authenticated or not, cost more than this.
const readChunk = 256 * 1024

// readAppend reads n bytes from r and appends them to buf, growing buf as
// the bytes arrive rather than trusting n up front.
func readAppend(r io.Reader, buf []byte, n int) ([]byte, error) {
	for n > 0 {
		k := min(n, readChunk)
		have := len(buf)
		if cap(buf)-have < k {
			nb := make([]byte, have, growCap(cap(buf), have+k))
			copy(nb, buf)
			buf = nb
		}
		buf = buf[:have+k]
		if _, err := io.ReadFull(r, buf[have:]); err != nil {
			return buf[:have], err
		}
		n -= k
	}
	return buf, nil
}

// bigBufs pools payload buffers larger than smallBuf by power-of-two
// capacity, so that a buffer given back after a large packet serves the next
// one (of any connection) instead of becoming garbage.
var bigBufs [32]sync.Pool

func bigBufClass(c int) int { return bits.Len(uint(c)) - 1 }

// getBigBuf returns an empty buffer of at least growCap(0, n) bytes: a
// pooled one of that size or up to 4 times larger (a packet split over
// several physical packets grows into it without copies), else a new one.
func getBigBuf(n int) []byte {
	c := growCap(0, n)
	for k := bigBufClass(c); k <= bigBufClass(c)+2 && k < len(bigBufs); k++ {
		if b, ok := bigBufs[k].Get().(*[]byte); ok {
			return (*b)[:0]
		}
	}
	return make([]byte, 0, c)
}

// putBigBuf keeps b for getBigBuf if it is a large power-of-two buffer.
func putBigBuf(b []byte) {
	c := cap(b)
	if c <= smallBuf || c&(c-1) != 0 {
		return
	}
	b = b[:0]
	bigBufs[bigBufClass(c)].Put(&b)
}

func growCap(have, need int) int {
	if have == 0 {
		have = 4096
	}
	for have < need {
		have *= 2
	}
	return have
}

// WritePacket writes one logical packet (split when larger than MaxPayload)
// into the write buffer. Call Flush to send it.
func (c *Conn) WritePacket(payload []byte) error {
	for {
		n := len(payload)
		if n > MaxPayload {
			n = MaxPayload
		}
		c.head[0] = byte(n)
		c.head[1] = byte(n >> 8)
		c.head[2] = byte(n >> 16)
		c.head[3] = c.seq
		c.seq++
		if _, err := c.bw.Write(c.head[:]); err != nil {
			return err
		}
		if _, err := c.bw.Write(payload[:n]); err != nil {
			return err
		}
		payload = payload[n:]
		if n < MaxPayload {
			return nil
		}
	}
}

// Flush sends buffered packets.
func (c *Conn) Flush() error {
	if err := c.bw.Flush(); err != nil {
		return err
	}
	if c.comp != nil {
		return c.comp.flush()
	}
	return nil
}

// WritePacketFlush writes one packet and flushes.
func (c *Conn) WritePacketFlush(payload []byte) error {
	if err := c.WritePacket(payload); err != nil {
		return err
	}
	return c.Flush()
}

// NextPacket reads the header of the next physical packet and peeks at its
// first payload byte (0 for an empty payload) without consuming the payload.
// Follow it with ReadBody, CopyBody or DiscardBody.
func (c *Conn) NextPacket() (n int, first byte, err error) {
	if n, err = c.readHeader(); err != nil {
		return 0, 0, err
	}
	if n == 0 {
		return 0, 0, nil
	}
	b, err := c.br.Peek(1)
	if err != nil {
		return 0, 0, err
	}
	return n, b[0], nil
}

// ReadBody reads a payload of n bytes announced by NextPacket. The slice is
// valid until the next read.
func (c *Conn) ReadBody(n int) ([]byte, error) {
	if cap(c.buf) < n {
		c.buf = make([]byte, growCap(cap(c.buf), n))
	}
	c.buf = c.buf[:n]
	if _, err := io.ReadFull(c.br, c.buf); err != nil {
		return nil, err
	}
	return c.buf, nil
}

// CopyBody copies a payload of n bytes announced by NextPacket to dst as
// one packet with dst's next sequence id, through the read buffer, without
// buffering it whole and without allocating.
func (c *Conn) CopyBody(dst *Conn, n int) error {
	if err := dst.writeHeader(n); err != nil {
		return err
	}
	for n > 0 {
		k := c.br.Buffered()
		if k == 0 {
			if _, err := c.br.Peek(1); err != nil {
				return err
			}
			k = c.br.Buffered()
		}
		if k > n {
			k = n
		}
		b, _ := c.br.Peek(k)
		if _, err := dst.bw.Write(b); err != nil {
			return err
		}
		_, _ = c.br.Discard(k)
		n -= k
	}
	return nil
}

// DiscardBody skips a payload of n bytes announced by NextPacket.
func (c *Conn) DiscardBody(n int) error {
	_, err := c.br.Discard(n)
	return err
}

func (c *Conn) writeHeader(n int) error {
	c.head[0] = byte(n)
	c.head[1] = byte(n >> 8)
	c.head[2] = byte(n >> 16)
	c.head[3] = c.seq
	c.seq++
	_, err := c.bw.Write(c.head[:])
	return err
}
