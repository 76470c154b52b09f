package mysql

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
)

// minCompressLength is the size under which payloads are sent uncompressed
// (as MySQL does).
const minCompressLength = 50

// compressor implements the MySQL compressed protocol under the packet layer:
// it reads compressed packets from the socket and yields their decompressed
// bytes, and collects written bytes until flush, when it sends them as
// compressed packets.
type compressor struct {
	rw  io.ReadWriter
	seq uint8

	// read side
	rbuf []byte // decompressed bytes not yet consumed
	rpos int
	head [7]byte
	zr   io.ReadCloser
	cbuf []byte

	// write side
	wbuf []byte
	zbuf bytes.Buffer
	zw   *zlib.Writer
}

func newCompressor(rw io.ReadWriter) *compressor {
	return &compressor{rw: rw}
}

func (z *compressor) resetSeq() { z.seq = 0 }

// shrink drops buffers grown beyond smallBuf for a large packet, unless
// they still hold bytes not yet consumed.
func (z *compressor) shrink() {
	if cap(z.cbuf) > smallBuf {
		z.cbuf = nil
	}
	if cap(z.rbuf) > smallBuf && z.rpos >= len(z.rbuf) {
		z.rbuf, z.rpos = nil, 0
	}
	if cap(z.wbuf) > smallBuf && len(z.wbuf) == 0 {
		z.wbuf = nil
	}
	if z.zbuf.Cap() > smallBuf {
		z.zbuf = bytes.Buffer{}
		z.zw = nil
	}
}

func (z *compressor) Read(p []byte) (int, error) {
	for z.rpos >= len(z.rbuf) {
		if err := z.readPacket(); err != nil {
			return 0, err
		}
	}
	n := copy(p, z.rbuf[z.rpos:])
	z.rpos += n
	return n, nil
}

func (z *compressor) readPacket() error {
	if _, err := io.ReadFull(z.rw, z.head[:]); err != nil {
		return err
	}
	clen := int(z.head[0]) | int(z.head[1])<<8 | int(z.head[2])<<16
	z.seq = z.head[3] + 1
	ulen := int(z.head[4]) | int(z.head[5])<<8 | int(z.head[6])<<16
	var err error
	if z.cbuf, err = readAppend(z.rw, z.cbuf[:0], clen); err != nil {
		return err
	}
	if ulen == 0 {
		z.rbuf = append(z.rbuf[:0], z.cbuf...)
		z.rpos = 0
		return nil
	}
	if z.zr == nil {
		z.zr, err = zlib.NewReader(bytes.NewReader(z.cbuf))
	} else {
		err = z.zr.(zlib.Resetter).Reset(bytes.NewReader(z.cbuf), nil)
	}
	if err != nil {
		return fmt.Errorf("mysql: compressed packet: %w", err)
	}
	// Grow with the inflated output: a small packet claiming a large
	// uncompressed length costs only what it really inflates to.
	if z.rbuf, err = readAppend(z.zr, z.rbuf[:0], ulen); err != nil {
		z.rbuf, z.rpos = z.rbuf[:0], 0
		return fmt.Errorf("mysql: compressed packet: %w", err)
	}
	z.rpos = 0
	return nil
}

func (z *compressor) Write(p []byte) (int, error) {
	z.wbuf = append(z.wbuf, p...)
	// Keep memory bounded: emit full packets as soon as they are complete.
	for len(z.wbuf) >= MaxPayload {
		if err := z.writePacket(z.wbuf[:MaxPayload]); err != nil {
			return 0, err
		}
		z.wbuf = append(z.wbuf[:0], z.wbuf[MaxPayload:]...)
	}
	return len(p), nil
}

func (z *compressor) flush() error {
	if len(z.wbuf) == 0 {
		return nil
	}
	err := z.writePacket(z.wbuf)
	z.wbuf = z.wbuf[:0]
	return err
}

func (z *compressor) writePacket(data []byte) error {
	var payload []byte
	ulen := 0
	if len(data) >= minCompressLength {
		z.zbuf.Reset()
		if z.zw == nil {
			z.zw = zlib.NewWriter(&z.zbuf)
		} else {
			z.zw.Reset(&z.zbuf)
		}
		if _, err := z.zw.Write(data); err != nil {
			return err
		}
		if err := z.zw.Close(); err != nil {
			return err
		}
		if z.zbuf.Len() < len(data) {
			payload = z.zbuf.Bytes()
			ulen = len(data)
		}
	}
	if payload == nil {
		payload = data
	}
	h := [7]byte{byte(len(payload)), byte(len(payload) >> 8), byte(len(payload) >> 16), z.seq,
		byte(ulen), byte(ulen >> 8), byte(ulen >> 16)}
	z.seq++
	if _, err := z.rw.Write(h[:]); err != nil {
		return err
	}
	_, err := z.rw.Write(payload)
	return err
}
