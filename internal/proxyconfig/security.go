package proxyconfig

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// SecurityClaim is [proxy.config.security_claim] (beyond Pisanix, the
// Database Mesh "Security Claim"): transparent column encryption and
// dynamic masking. See docs/security-claim.md.
type SecurityClaim struct {
	// Keys are the data keys; ActiveKey names the one new values are
	// encrypted with (the others still decrypt: rotation).
	Keys      []EncryptionKey `toml:"key,omitempty" json:"key,omitempty"`
	ActiveKey string          `toml:"active_key,omitempty" json:"active_key,omitempty"`
	// AssistedKey names the key (among Keys) used as the HMAC-SHA-256 key
	// of assisted columns. It must not be the active key.
	AssistedKey string `toml:"assisted_key,omitempty" json:"assisted_key,omitempty"`
	// Tables are the encrypted tables.
	Tables []EncryptedTable `toml:"table,omitempty" json:"table,omitempty"`
	// Masking are the dynamic masking rules.
	Masking []MaskingRule `toml:"masking,omitempty" json:"masking,omitempty"`
}

// EncryptionKey is one [[proxy.config.security_claim.key]]: a 32-byte key
// given as 64 hex digits or standard base64, read from exactly one of
// Value, File or Env.
type EncryptionKey struct {
	ID    string `toml:"id" json:"id"`
	Value string `toml:"value,omitempty" json:"value,omitempty"`
	File  string `toml:"file,omitempty" json:"file,omitempty"`
	Env   string `toml:"env,omitempty" json:"env,omitempty"`
}

// EncryptedTable is one [[proxy.config.security_claim.table]].
type EncryptedTable struct {
	// Name is the table name as statements write it (any schema).
	Name    string            `toml:"name" json:"name"`
	Columns []EncryptedColumn `toml:"column" json:"column"`
}

// EncryptedColumn is one logical column the application reads and writes
// in plaintext, stored as CipherColumn.
type EncryptedColumn struct {
	Name         string `toml:"name" json:"name"`
	CipherColumn string `toml:"cipher_column" json:"cipher_column"`
	// AssistedColumn, when set, holds HMAC-SHA-256 of the plaintext:
	// = / IN / JOIN / unique indexes work on it.
	AssistedColumn string `toml:"assisted_column,omitempty" json:"assisted_column,omitempty"`
	// PlainColumn, when set (migration), is written with the plaintext as
	// well; reads still come from CipherColumn.
	PlainColumn string `toml:"plain_column,omitempty" json:"plain_column,omitempty"`
}

// Masking modes.
const (
	MaskKeep  = "keep"  // keep the first KeepFirst and last KeepLast characters, the rest replaced by MaskChar
	MaskHash  = "hash"  // hex SHA-256 of the value
	MaskNull  = "null"  // NULL
	MaskFixed = "fixed" // Fixed
)

// MaskingRule is one [[proxy.config.security_claim.masking]]: for the
// listed users (empty: every user), values of table.column come back
// masked. Stored data is unchanged.
type MaskingRule struct {
	Name      string   `toml:"name" json:"name"`
	Users     []string `toml:"users,omitempty" json:"users,omitempty"`
	Table     string   `toml:"table" json:"table"`
	Column    string   `toml:"column" json:"column"`
	Mode      string   `toml:"mode" json:"mode"`
	KeepFirst int      `toml:"keep_first,omitempty" json:"keep_first,omitempty"`
	KeepLast  int      `toml:"keep_last,omitempty" json:"keep_last,omitempty"`
	MaskChar  string   `toml:"mask_char,omitempty" json:"mask_char,omitempty"`
	Fixed     string   `toml:"fixed,omitempty" json:"fixed,omitempty"`
}

// DecodeKey decodes key material: 64 hex digits or base64 of 32 bytes
// (surrounding white space ignored, as in a file written by echo).
func DecodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("not a 32-byte key (64 hex digits or base64 of 32 bytes)")
	}
	return b, nil
}

func (c *Config) validateSecurityClaim(v *validator, p string, l *Listener) {
	sc := l.SecurityClaim
	if sc == nil {
		return
	}
	p += ".security_claim"
	validateSecuritySharding(v, p, l)
	if l.BackendType == BackendShardingSphereProxy {
		v.addf(p, "is not supported with backend_type %q", l.BackendType)
	}
	ids := map[string]bool{}
	for i, k := range sc.Keys {
		kp := fmt.Sprintf("%s.key[%d]", p, i)
		if k.ID == "" || len(k.ID) > 255 {
			v.addf(kp+".id", "must be 1 to 255 bytes")
		} else if ids[k.ID] {
			v.addf(kp+".id", "duplicate key id %q", k.ID)
		}
		ids[k.ID] = true
		n := 0
		for _, s := range []string{k.Value, k.File, k.Env} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			v.addf(kp, "needs exactly one of value, file or env")
		}
		if k.Value != "" && k.Value != RedactedPassword {
			if _, err := DecodeKey(k.Value); err != nil {
				v.addf(kp+".value", "%v", err)
			}
		}
	}
	needAssisted := false
	tables := map[string]bool{}
	for i, t := range sc.Tables {
		tp := fmt.Sprintf("%s.table[%d]", p, i)
		if t.Name == "" {
			v.addf(tp+".name", "is required")
		} else if tables[strings.ToLower(t.Name)] {
			v.addf(tp+".name", "duplicate table %q", t.Name)
		}
		tables[strings.ToLower(t.Name)] = true
		if len(t.Columns) == 0 {
			v.addf(tp+".column", "at least one encrypted column is required")
		}
		phys := map[string]string{}
		claim := func(path, col, what string) {
			if col == "" {
				return
			}
			if prev, dup := phys[strings.ToLower(col)]; dup {
				v.addf(path, "column %q is already used as %s", col, prev)
				return
			}
			phys[strings.ToLower(col)] = what
		}
		for j, col := range t.Columns {
			cp := fmt.Sprintf("%s.column[%d]", tp, j)
			if col.Name == "" {
				v.addf(cp+".name", "is required")
			}
			if col.CipherColumn == "" {
				v.addf(cp+".cipher_column", "is required")
			}
			if strings.EqualFold(col.CipherColumn, col.Name) && col.Name != "" {
				v.addf(cp+".cipher_column", "must differ from the logical name %q (the plaintext column during migration is plain_column)", col.Name)
			}
			claim(cp+".cipher_column", col.CipherColumn, "the cipher column of "+col.Name)
			claim(cp+".assisted_column", col.AssistedColumn, "the assisted column of "+col.Name)
			claim(cp+".plain_column", col.PlainColumn, "the plain column of "+col.Name)
			if col.AssistedColumn != "" {
				needAssisted = true
			}
		}
		// A logical name may not name another column's physical column.
		for j, col := range t.Columns {
			if what, ok := phys[strings.ToLower(col.Name)]; ok && !strings.EqualFold(what, "the plain column of "+col.Name) {
				v.addf(fmt.Sprintf("%s.column[%d].name", tp, j), "%q is also %s", col.Name, what)
			}
		}
	}
	if len(sc.Tables) > 0 {
		if sc.ActiveKey == "" {
			v.addf(p+".active_key", "is required with encrypted tables")
		} else if !ids[sc.ActiveKey] {
			v.addf(p+".active_key", "names no key: %q", sc.ActiveKey)
		}
	}
	if needAssisted && sc.AssistedKey == "" {
		v.addf(p+".assisted_key", "is required when a column has an assisted_column")
	}
	if sc.AssistedKey != "" {
		if !ids[sc.AssistedKey] {
			v.addf(p+".assisted_key", "names no key: %q", sc.AssistedKey)
		} else if sc.AssistedKey == sc.ActiveKey {
			v.addf(p+".assisted_key", "must not be the active (encryption) key")
		}
	}
	names := map[string]bool{}
	for i, m := range sc.Masking {
		mp := fmt.Sprintf("%s.masking[%d]", p, i)
		if m.Name == "" {
			v.addf(mp+".name", "is required (the audit log names the rule)")
		} else if names[m.Name] {
			v.addf(mp+".name", "duplicate masking rule %q", m.Name)
		}
		names[m.Name] = true
		if m.Table == "" {
			v.addf(mp+".table", "is required")
		}
		if m.Column == "" {
			v.addf(mp+".column", "is required")
		}
		switch m.Mode {
		case MaskKeep:
			if m.KeepFirst < 0 || m.KeepLast < 0 {
				v.addf(mp, "keep_first and keep_last must not be negative")
			}
			if len([]rune(m.MaskChar)) > 1 {
				v.addf(mp+".mask_char", "must be one character")
			}
		case MaskHash, MaskNull:
		case MaskFixed:
		default:
			v.addf(mp+".mode", "must be %q, %q, %q or %q, got %q", MaskKeep, MaskHash, MaskNull, MaskFixed, m.Mode)
		}
		if m.Mode != MaskKeep && (m.KeepFirst != 0 || m.KeepLast != 0 || m.MaskChar != "") {
			v.addf(mp, "keep_first, keep_last and mask_char apply to mode %q only", MaskKeep)
		}
		if m.Mode != MaskFixed && m.Fixed != "" {
			v.addf(mp+".fixed", "applies to mode %q only", MaskFixed)
		}
	}
}

// validateSecuritySharding refuses an encrypted column (its logical name or
// any of its physical columns) that a sharding rule of the same table
// routes by or generates keys for: the shards see ciphertext, so routing
// by it could not be exact.
func validateSecuritySharding(v *validator, p string, l *Listener) {
	for i, sh := range l.Sharding {
		var cols []string
		if ts := sh.TableStrategy; ts != nil {
			cols = append(cols, ts.TableShardingColumn)
		}
		if ds := sh.DatabaseStrategy; ds != nil {
			cols = append(cols, ds.DatabaseShardingColumn)
		}
		if dts := sh.DatabaseTableStrategy; dts != nil {
			cols = append(cols, dts.DatabaseShardingColumn, dts.TableShardingColumn)
		}
		if kg := sh.KeyGenerator; kg != nil && kg.Column != "" {
			cols = append(cols, kg.Column)
		}
		for j, t := range l.SecurityClaim.Tables {
			if !strings.EqualFold(t.Name, sh.TableName) {
				continue
			}
			for k, col := range t.Columns {
				for _, sc := range cols {
					if sc == "" {
						continue
					}
					for _, name := range []string{col.Name, col.CipherColumn, col.AssistedColumn, col.PlainColumn} {
						if name != "" && strings.EqualFold(name, sc) {
							v.addf(fmt.Sprintf("%s.table[%d].column[%d]", p, j, k),
								"encrypted column %s.%s is a sharding or key generator column of sharding[%d] (%q): routing by ciphertext is not supported", t.Name, col.Name, i, sc)
							break
						}
					}
				}
			}
		}
	}
}
