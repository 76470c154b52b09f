package mysql

import "encoding/binary"

// OK is a decoded OK packet (or an EOF packet, for which only Status and
// Warnings are set).
type OK struct {
	AffectedRows uint64
	LastInsertID uint64
	Status       uint16
	Warnings     uint16
	Info         []byte
	// SessionState is the raw session-state-change block (only when the
	// connection negotiated CLIENT_SESSION_TRACK and Status has
	// StatusSessionStateChange). It aliases the packet.
	SessionState []byte
}

// IsEOF reports whether p is an EOF packet (0xfe header, short payload).
func IsEOF(p []byte) bool { return len(p) > 0 && p[0] == EOFHeader && len(p) < 9 }

// IsOKAsEOF reports whether p is an OK packet with an 0xfe header, which ends
// a result set when CLIENT_DEPRECATE_EOF is on.
func IsOKAsEOF(p []byte) bool {
	return len(p) > 0 && p[0] == EOFHeader && len(p) < 0xffffff
}

// ParseEOF decodes an EOF packet's warnings and status.
func ParseEOF(p []byte) (warnings, status uint16) {
	if len(p) >= 5 {
		return binary.LittleEndian.Uint16(p[1:]), binary.LittleEndian.Uint16(p[3:])
	}
	return 0, 0
}

// ParseOK decodes an OK packet (header 0x00 or 0xfe) for a connection with
// the given capabilities.
func ParseOK(p []byte, caps uint32) (OK, error) {
	var ok OK
	if len(p) < 1 {
		return ok, ErrMalformed
	}
	pos := 1
	v, _, n, err := ReadLenEncInt(p[pos:])
	if err != nil {
		return ok, err
	}
	ok.AffectedRows = v
	pos += n
	v, _, n, err = ReadLenEncInt(p[pos:])
	if err != nil {
		return ok, err
	}
	ok.LastInsertID = v
	pos += n
	if len(p) < pos+4 {
		// Pre-4.1 servers omit status; tolerate.
		return ok, nil
	}
	ok.Status = binary.LittleEndian.Uint16(p[pos:])
	ok.Warnings = binary.LittleEndian.Uint16(p[pos+2:])
	pos += 4
	if pos >= len(p) {
		return ok, nil
	}
	if caps&ClientSessionTrack != 0 {
		info, _, n, err := ReadLenEncBytes(p[pos:])
		if err != nil {
			return ok, err
		}
		ok.Info = info
		pos += n
		if ok.Status&StatusSessionStateChange != 0 && pos < len(p) {
			st, _, _, err := ReadLenEncBytes(p[pos:])
			if err != nil {
				return ok, err
			}
			ok.SessionState = st
		}
		return ok, nil
	}
	ok.Info = p[pos:]
	return ok, nil
}

// AppendOK encodes an OK packet with the given header byte (0x00, or 0xfe
// for the end of a result set under CLIENT_DEPRECATE_EOF).
func AppendOK(b []byte, header byte, ok *OK, caps uint32) []byte {
	b = append(b, header)
	b = AppendLenEncInt(b, ok.AffectedRows)
	b = AppendLenEncInt(b, ok.LastInsertID)
	status := ok.Status
	if caps&ClientSessionTrack == 0 || len(ok.SessionState) == 0 {
		status &^= StatusSessionStateChange
	}
	b = appendUint16(b, status)
	b = appendUint16(b, ok.Warnings)
	if caps&ClientSessionTrack != 0 {
		if len(ok.Info) > 0 || status&StatusSessionStateChange != 0 {
			b = AppendLenEncInt(b, uint64(len(ok.Info)))
			b = append(b, ok.Info...)
		}
		if status&StatusSessionStateChange != 0 {
			b = AppendLenEncInt(b, uint64(len(ok.SessionState)))
			b = append(b, ok.SessionState...)
		}
		return b
	}
	return append(b, ok.Info...)
}

// AppendEOF encodes an EOF packet.
func AppendEOF(b []byte, warnings, status uint16) []byte {
	b = append(b, EOFHeader)
	b = appendUint16(b, warnings)
	return appendUint16(b, status&^StatusSessionStateChange)
}

// SessionChange is one entry of a session-state-change block.
type SessionChange struct {
	Type  byte
	Name  string // system variable name, or schema name
	Value string // system variable value, or "1" for state change
}

// ParseSessionState decodes a session-state-change block, calling fn for each
// system variable, schema and state-change entry.
func ParseSessionState(b []byte, fn func(SessionChange)) error {
	for len(b) > 0 {
		typ := b[0]
		data, _, n, err := ReadLenEncBytes(b[1:])
		if err != nil {
			return err
		}
		b = b[1+n:]
		switch typ {
		case SessionTrackSystemVariables:
			name, _, k, err := ReadLenEncBytes(data)
			if err != nil {
				return err
			}
			val, _, _, err := ReadLenEncBytes(data[k:])
			if err != nil {
				return err
			}
			fn(SessionChange{Type: typ, Name: string(name), Value: string(val)})
		case SessionTrackSchema:
			name, _, _, err := ReadLenEncBytes(data)
			if err != nil {
				return err
			}
			fn(SessionChange{Type: typ, Name: string(name)})
		case SessionTrackStateChange:
			fn(SessionChange{Type: typ, Value: string(data)})
		default:
			fn(SessionChange{Type: typ})
		}
	}
	return nil
}
