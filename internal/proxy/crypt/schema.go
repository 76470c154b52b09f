package crypt

import (
	"fmt"
	"os"
	"strings"

	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

// Column is one encrypted logical column of a table.
type Column struct {
	Table    string // logical table name, lower case
	Name     string // logical column name as configured
	Cipher   string
	Assisted string // "" when none
	Plain    string // "" when none
	aad      []byte // "table.column", lower case
}

// QualifiedName returns "table.column" (for messages and metrics).
func (c *Column) QualifiedName() string { return c.Table + "." + c.Name }

// physical roles of a column of an encrypted table, as a result column.
const (
	roleCipher = iota + 1
	roleAssisted
	rolePlain
)

type physCol struct {
	role int
	col  *Column
}

// Table is an encrypted table.
type Table struct {
	Name    string             // lower case
	columns map[string]*Column // by lower-case logical name
	phys    map[string]physCol // by lower-case physical name
}

// Column returns the encrypted column named name (any case), or nil.
func (t *Table) Column(name string) *Column { return t.columns[strings.ToLower(name)] }

// Schema is a listener's compiled security claim: keys, encrypted tables
// and masking rules. It is immutable and safe for concurrent use.
type Schema struct {
	Keys   *KeyRing
	tables map[string]*Table // by lower-case name
	masks  []*Mask
	// names are the lower-case names of every encrypted or masked table:
	// a statement whose text contains none of them is not parsed.
	names []string
	// physical maps lower-case physical table names of sharded tables to
	// their logical names (SetPhysicalNames).
	physical map[string]string

	cEncrypt, cDecrypt, cAssist, cMask, cRefusal, cFailure counter
}

// Compile builds a Schema from the listener's configuration, reading the
// key material (files, environment). nil, nil when sc is nil.
func Compile(sc *proxyconfig.SecurityClaim) (*Schema, error) {
	if sc == nil {
		return nil, nil
	}
	s := &Schema{tables: map[string]*Table{}}
	if len(sc.Tables) > 0 || len(sc.Keys) > 0 {
		keys := map[string][]byte{}
		for _, k := range sc.Keys {
			b, err := LoadKey(k)
			if err != nil {
				return nil, err
			}
			keys[k.ID] = b
		}
		var assisted []byte
		if sc.AssistedKey != "" {
			assisted = keys[sc.AssistedKey]
			delete(keys, sc.AssistedKey) // never a data key
		}
		kr, err := NewKeyRing(keys, sc.ActiveKey, assisted)
		if err != nil {
			return nil, err
		}
		s.Keys = kr
	}
	for _, t := range sc.Tables {
		tb := &Table{Name: strings.ToLower(t.Name), columns: map[string]*Column{}, phys: map[string]physCol{}}
		for _, c := range t.Columns {
			col := &Column{Table: tb.Name, Name: c.Name, Cipher: c.CipherColumn, Assisted: c.AssistedColumn,
				Plain: c.PlainColumn, aad: []byte(tb.Name + "." + strings.ToLower(c.Name))}
			tb.columns[strings.ToLower(c.Name)] = col
			tb.phys[strings.ToLower(c.CipherColumn)] = physCol{roleCipher, col}
			if c.AssistedColumn != "" {
				tb.phys[strings.ToLower(c.AssistedColumn)] = physCol{roleAssisted, col}
			}
			if c.PlainColumn != "" {
				tb.phys[strings.ToLower(c.PlainColumn)] = physCol{rolePlain, col}
			}
		}
		s.tables[tb.Name] = tb
		s.names = append(s.names, tb.Name)
	}
	for _, m := range sc.Masking {
		mk, err := newMask(m)
		if err != nil {
			return nil, err
		}
		s.masks = append(s.masks, mk)
		if !contains(s.names, mk.table) {
			s.names = append(s.names, mk.table)
		}
	}
	return s, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// LoadKey reads one key's material from its value, file or environment
// variable.
func LoadKey(k proxyconfig.EncryptionKey) ([]byte, error) {
	var text, from string
	switch {
	case k.Value != "":
		text, from = k.Value, "value"
	case k.File != "":
		b, err := os.ReadFile(k.File)
		if err != nil {
			return nil, fmt.Errorf("crypt: key %q: %w", k.ID, err)
		}
		text, from = string(b), "file "+k.File
	case k.Env != "":
		v, ok := os.LookupEnv(k.Env)
		if !ok {
			return nil, fmt.Errorf("crypt: key %q: environment variable %s is not set", k.ID, k.Env)
		}
		text, from = v, "environment variable "+k.Env
	default:
		return nil, fmt.Errorf("crypt: key %q: no value, file or env", k.ID)
	}
	b, err := proxyconfig.DecodeKey(text)
	if err != nil {
		return nil, fmt.Errorf("crypt: key %q (%s): %w", k.ID, from, err)
	}
	return b, nil
}

// Table returns the encrypted table named name (any case), or nil.
// SetPhysicalNames tells the schema the physical tables of a sharding
// listener's logical tables (lower-case physical name to logical name):
// result columns of a physical table are decrypted and masked as its
// logical table's. Call it before the schema is used.
func (s *Schema) SetPhysicalNames(m map[string]string) {
	s.physical = make(map[string]string, len(m))
	for phys, logical := range m {
		s.physical[strings.ToLower(phys)] = strings.ToLower(logical)
	}
}

func (s *Schema) Table(name string) *Table { return s.tables[strings.ToLower(name)] }

// Encrypted reports whether the schema has encrypted tables.
func (s *Schema) Encrypted() bool { return len(s.tables) > 0 }

// Mentions reports whether sql may name an encrypted or masked table: a
// case-insensitive substring test, so statements on other tables are not
// parsed.
func (s *Schema) Mentions(sql string) bool {
	for _, n := range s.names {
		if indexFold(sql, n) >= 0 {
			return true
		}
	}
	return false
}

// indexFold finds lower-case ASCII needle in s, ignoring ASCII case.
func indexFold(s, needle string) int {
	n := len(needle)
	if n == 0 {
		return 0
	}
	first := needle[0]
	for i := 0; i+n <= len(s); i++ {
		c := s[i]
		if c|0x20 != first && c != first {
			continue
		}
		j := 1
		for ; j < n; j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != needle[j] {
				break
			}
		}
		if j == n {
			return i
		}
	}
	return -1
}
