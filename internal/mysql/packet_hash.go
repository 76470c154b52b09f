package mysql

import "io"

// CopyBodyHashed is CopyBody that also writes the payload to h (a hash,
// which never fails); with dst nil the payload is only hashed and dropped.
// A read failure is returned as readErr, a write failure as writeErr.
func (c *Conn) CopyBodyHashed(dst *Conn, n int, h io.Writer) (readErr, writeErr error) {
	if dst != nil {
		if err := dst.writeHeader(n); err != nil {
			return nil, err
		}
	}
	for n > 0 {
		k := c.br.Buffered()
		if k == 0 {
			if _, err := c.br.Peek(1); err != nil {
				return err, nil
			}
			k = c.br.Buffered()
		}
		if k > n {
			k = n
		}
		b, _ := c.br.Peek(k)
		_, _ = h.Write(b)
		if dst != nil {
			if _, err := dst.bw.Write(b); err != nil {
				return nil, err
			}
		}
		_, _ = c.br.Discard(k)
		n -= k
	}
	return nil, nil
}
