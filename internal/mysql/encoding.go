package mysql

import (
	"encoding/binary"
	"errors"
)

// ErrMalformed is returned for packets that cannot be decoded.
var ErrMalformed = errors.New("mysql: malformed packet")

// AppendLenEncInt appends a length-encoded integer.
func AppendLenEncInt(b []byte, v uint64) []byte {
	switch {
	case v < 251:
		return append(b, byte(v))
	case v < 1<<16:
		return append(b, 0xfc, byte(v), byte(v>>8))
	case v < 1<<24:
		return append(b, 0xfd, byte(v), byte(v>>8), byte(v>>16))
	default:
		return append(b, 0xfe, byte(v), byte(v>>8), byte(v>>16), byte(v>>24),
			byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
	}
}

// AppendLenEncString appends a length-encoded string.
func AppendLenEncString(b []byte, s string) []byte {
	b = AppendLenEncInt(b, uint64(len(s)))
	return append(b, s...)
}

// ReadLenEncInt decodes a length-encoded integer at b[0:]. null is true for
// the NULL marker 0xfb. n is the number of bytes consumed.
func ReadLenEncInt(b []byte) (v uint64, null bool, n int, err error) {
	if len(b) == 0 {
		return 0, false, 0, ErrMalformed
	}
	switch b[0] {
	case 0xfb:
		return 0, true, 1, nil
	case 0xfc:
		if len(b) < 3 {
			return 0, false, 0, ErrMalformed
		}
		return uint64(binary.LittleEndian.Uint16(b[1:])), false, 3, nil
	case 0xfd:
		if len(b) < 4 {
			return 0, false, 0, ErrMalformed
		}
		return uint64(b[1]) | uint64(b[2])<<8 | uint64(b[3])<<16, false, 4, nil
	case 0xfe:
		if len(b) < 9 {
			return 0, false, 0, ErrMalformed
		}
		return binary.LittleEndian.Uint64(b[1:]), false, 9, nil
	case 0xff:
		return 0, false, 0, ErrMalformed
	default:
		return uint64(b[0]), false, 1, nil
	}
}

// ReadLenEncBytes decodes a length-encoded string; the result aliases b.
func ReadLenEncBytes(b []byte) (s []byte, null bool, n int, err error) {
	v, null, k, err := ReadLenEncInt(b)
	if err != nil || null {
		return nil, null, k, err
	}
	if uint64(len(b)-k) < v {
		return nil, false, 0, ErrMalformed
	}
	end := k + int(v)
	return b[k:end], false, end, nil
}

// readNulString reads a NUL-terminated string; n includes the NUL.
func readNulString(b []byte) (string, int, error) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), i + 1, nil
		}
	}
	return "", 0, ErrMalformed
}

func appendUint16(b []byte, v uint16) []byte { return append(b, byte(v), byte(v>>8)) }
func appendUint32(b []byte, v uint32) []byte {
	return append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
}
