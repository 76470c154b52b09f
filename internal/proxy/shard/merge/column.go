package merge

import (
	"fmt"

	"github.com/database-mesh/pisanix-go/internal/mysql"
)

// Column types (Protocol::ColumnType).
const (
	TypeDecimal    byte = 0x00
	TypeTiny       byte = 0x01
	TypeShort      byte = 0x02
	TypeLong       byte = 0x03
	TypeFloat      byte = 0x04
	TypeDouble     byte = 0x05
	TypeNull       byte = 0x06
	TypeTimestamp  byte = 0x07
	TypeLongLong   byte = 0x08
	TypeInt24      byte = 0x09
	TypeDate       byte = 0x0a
	TypeTime       byte = 0x0b
	TypeDateTime   byte = 0x0c
	TypeYear       byte = 0x0d
	TypeNewDate    byte = 0x0e
	TypeVarchar    byte = 0x0f
	TypeBit        byte = 0x10
	TypeTimestamp2 byte = 0x11
	TypeDateTime2  byte = 0x12
	TypeTime2      byte = 0x13
	TypeJSON       byte = 0xf5
	TypeNewDecimal byte = 0xf6
	TypeEnum       byte = 0xf7
	TypeSet        byte = 0xf8
	TypeTinyBlob   byte = 0xf9
	TypeMediumBlob byte = 0xfa
	TypeLongBlob   byte = 0xfb
	TypeBlob       byte = 0xfc
	TypeVarString  byte = 0xfd
	TypeString     byte = 0xfe
	TypeGeometry   byte = 0xff
)

// Column flags (the 2-byte "flags" field of a column definition).
const (
	FlagNotNull   uint16 = 0x0001
	FlagUnsigned  uint16 = 0x0020
	FlagBinary    uint16 = 0x0080
	FlagEnum      uint16 = 0x0100
	FlagTimestamp uint16 = 0x0400
	FlagSet       uint16 = 0x0800
	FlagNum       uint16 = 0x8000
)

// CollationBinary is the collation id of the binary character set.
const CollationBinary uint16 = 63

// notFixedDecimals is the decimals value of a FLOAT/DOUBLE column whose
// values are printed with as many digits as they need (MariaDB: 31 on the
// wire, 39 internally in some versions).
const notFixedDecimals = 31

// Column is what the merger needs from a column definition.
type Column struct {
	Name string // the column's alias (for error messages)
	Type byte
	// Flags are the column flags (FlagUnsigned, FlagBinary, ...).
	Flags uint16
	// Collation is the 2-byte "character set" field, which is a collation
	// id. Note that MariaDB reports the default collation of
	// character_set_results there (45 for utf8mb4, 33 for utf8mb3), not the
	// collation of the column, unless character_set_results is NULL or
	// binary; a caller that knows the column's real collation (from the
	// schema) may overwrite it before calling New.
	Collation uint16
	Decimals  byte
	Length    uint32
}

// Unsigned reports whether the UNSIGNED flag is set.
func (c Column) Unsigned() bool { return c.Flags&FlagUnsigned != 0 }

// ParseColumn decodes a column definition payload
// (Protocol::ColumnDefinition41), with or without MariaDB's extended
// metadata (a length-encoded block between org_name and the fixed fields).
func ParseColumn(p []byte) (Column, error) {
	var c Column
	off := 0
	for i := 0; i < 6; i++ {
		s, null, n, err := mysql.ReadLenEncBytes(p[off:])
		if err != nil || null {
			return c, fmt.Errorf("merge: column definition: field %d: %w", i, mysql.ErrMalformed)
		}
		if i == 4 {
			c.Name = string(s)
		}
		off += n
	}
	rest := p[off:]
	// Without extended metadata the rest is 0x0c and 12 bytes (plus, for
	// COM_FIELD_LIST only, default values). With it, a length-encoded block
	// comes first.
	if !(len(rest) == 13 && rest[0] == 0x0c) {
		if _, null, n, err := mysql.ReadLenEncBytes(rest); err == nil && !null &&
			len(rest) >= n+13 && rest[n] == 0x0c {
			rest = rest[n:]
		}
	}
	if len(rest) < 13 || rest[0] != 0x0c {
		return c, fmt.Errorf("merge: column definition: fixed fields: %w", mysql.ErrMalformed)
	}
	f := rest[1:]
	c.Collation = uint16(f[0]) | uint16(f[1])<<8
	c.Length = uint32(f[2]) | uint32(f[3])<<8 | uint32(f[4])<<16 | uint32(f[5])<<24
	c.Type = f[6]
	c.Flags = uint16(f[7]) | uint16(f[8])<<8
	c.Decimals = f[9]
	return c, nil
}
