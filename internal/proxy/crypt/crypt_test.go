package crypt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/database-mesh/pisanix-go/internal/mysql"
	"github.com/database-mesh/pisanix-go/internal/proxyconfig"
)

func TestKeyRing(t *testing.T) {
	s := testSchema(t)
	c := s.Table("users").Column("email")
	ct := s.Keys.Encrypt(nil, []byte("alice@example.com"), c.aad)
	if bytes.Contains(ct, []byte("alice")) {
		t.Fatal("plaintext in ciphertext")
	}
	if id, err := KeyID(ct); err != nil || id != "k1" {
		t.Fatalf("KeyID = %q, %v", id, err)
	}
	ct2 := s.Keys.Encrypt(nil, []byte("alice@example.com"), c.aad)
	if bytes.Equal(ct, ct2) {
		t.Fatal("two encryptions of one value are equal (nonce reused)")
	}
	pt, err := s.Keys.Decrypt(nil, ct, c.aad)
	if err != nil || string(pt) != "alice@example.com" {
		t.Fatalf("Decrypt = %q, %v", pt, err)
	}
	// Another column's AAD: refused.
	if _, err := s.Keys.Decrypt(nil, ct, s.Table("users").Column("phone").aad); !errors.Is(err, ErrCiphertext) {
		t.Fatalf("decrypt under another column: %v", err)
	}
	ct[len(ct)-1] ^= 1
	if _, err := s.Keys.Decrypt(nil, ct, c.aad); !errors.Is(err, ErrCiphertext) {
		t.Fatalf("tampered: %v", err)
	}
	if _, err := s.Keys.Decrypt(nil, []byte("plain text"), c.aad); !errors.Is(err, ErrCiphertext) {
		t.Fatalf("plaintext: %v", err)
	}
	// Rotation: a ring whose active key is k2 still reads k1's values.
	cl := testClaim()
	cl.ActiveKey = "k2"
	s2, err := Compile(cl)
	if err != nil {
		t.Fatal(err)
	}
	ct = s.Keys.Encrypt(nil, []byte("x"), c.aad)
	if pt, err := s2.Keys.Decrypt(nil, ct, c.aad); err != nil || string(pt) != "x" {
		t.Fatalf("old key after rotation: %q %v", pt, err)
	}
	if id, _ := KeyID(s2.Keys.Encrypt(nil, []byte("x"), c.aad)); id != "k2" {
		t.Fatalf("new values under %q, want k2", id)
	}
	if !bytes.Equal(s.Keys.Assist(nil, []byte("a")), s2.Keys.Assist(nil, []byte("a"))) || len(s.Keys.Assist(nil, []byte("a"))) != AssistedSize {
		t.Fatal("assisted values differ between rings with the same assisted key")
	}
}

func TestLoadKeySources(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/k"
	if err := writeFile(path, testKey1+"\n"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PISA_TEST_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	a, err := LoadKey(proxyconfig.EncryptionKey{ID: "f", File: path})
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadKey(proxyconfig.EncryptionKey{ID: "e", Env: "PISA_TEST_KEY"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("hex file and base64 env of the same key differ")
	}
	if _, err := LoadKey(proxyconfig.EncryptionKey{ID: "e", Env: "PISA_TEST_KEY_UNSET"}); err == nil || !strings.Contains(err.Error(), "not set") {
		t.Fatalf("unset env: %v", err)
	}
	if _, err := LoadKey(proxyconfig.EncryptionKey{ID: "v", Value: "short"}); err == nil {
		t.Fatal("short key accepted")
	}
}

// colDefBytes builds a ColumnDefinition41 payload.
func colDefBytes(table, name, orgName string, typ byte, flags uint16, coll uint16) []byte {
	var p []byte
	for _, s := range []string{"def", "test", table, table, name, orgName} {
		p = mysql.AppendLenEncString(p, s)
	}
	p = append(p, 0x0c, byte(coll), byte(coll>>8), 0, 1, 0, 0, typ, byte(flags), byte(flags>>8), 0, 0, 0)
	return p
}

func textRow(vals ...[]byte) []byte {
	var p []byte
	for _, v := range vals {
		if v == nil {
			p = append(p, 0xfb)
			continue
		}
		p = mysql.AppendLenEncInt(p, uint64(len(v)))
		p = append(p, v...)
	}
	return p
}

func TestTransformerText(t *testing.T) {
	s := testSchema(t)
	c := s.Table("users").Column("email")
	tr := s.NewTransformer("app")
	defs := [][]byte{
		colDefBytes("users", "id", "id", typeLong, 0, 63),
		colDefBytes("users", "email", "email_c", 0xfc, flagBinary|flagBlob, 63),
		colDefBytes("users", "email_a", "email_a", 0xfe, flagBinary, 63),
		colDefBytes("users", "email_p", "email_p", typeVarString, 0, 45),
		colDefBytes("users", "phone_c", "phone_c", 0xfc, flagBinary|flagBlob, 63),
	}
	out, err := tr.Columns(defs)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || tr.Identity() {
		t.Fatalf("%d columns out, identity %v", len(out), tr.Identity())
	}
	d, _ := parseColDef(out[1])
	if string(d.name) != "email" || string(d.orgName) != "email" || out[1][d.fixedOff+7] != typeVarString {
		t.Fatalf("decrypted column def: name %q org %q", d.name, d.orgName)
	}
	d, _ = parseColDef(out[2])
	if string(d.name) != "phone" {
		t.Fatalf("unaliased cipher column is named %q, want phone", d.name)
	}
	ct := s.Keys.Encrypt(nil, []byte("a@b.c"), c.aad)
	ph := s.Keys.Encrypt(nil, []byte("555"), s.Table("users").Column("phone").aad)
	row := textRow([]byte("7"), ct, s.Keys.Assist(nil, []byte("a@b.c")), []byte("a@b.c"), ph)
	got, err := tr.Row(nil, row, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := textRow([]byte("7"), []byte("a@b.c"), []byte("555")); !bytes.Equal(got, want) {
		t.Fatalf("row %q, want %q", got, want)
	}
	got, err = tr.Row(nil, textRow([]byte("8"), nil, nil, nil, nil), false)
	if err != nil || !bytes.Equal(got, textRow([]byte("8"), nil, nil)) {
		t.Fatalf("NULL row %q %v", got, err)
	}
	if _, err := tr.Row(nil, textRow([]byte("9"), []byte("not encrypted"), nil, nil, nil), false); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("undecryptable: %v", err)
	}
	// A plain table passes unchanged.
	if _, err := tr.Columns([][]byte{colDefBytes("other", "a", "a", typeLong, 0, 63)}); err != nil || !tr.Identity() {
		t.Fatalf("plain table: identity %v %v", tr.Identity(), err)
	}
}

func TestTransformerBinaryAndMask(t *testing.T) {
	cl := testClaim()
	cl.Masking = append(cl.Masking,
		proxyconfig.MaskingRule{Name: "m-email", Table: "users", Column: "email", Mode: "keep", KeepFirst: 1, KeepLast: 2},
		proxyconfig.MaskingRule{Name: "m-age", Users: []string{"ro"}, Table: "people", Column: "age", Mode: "fixed", Fixed: "XX"},
		proxyconfig.MaskingRule{Name: "m-ssn", Users: []string{"ro"}, Table: "people", Column: "ssn", Mode: "null"})
	s, err := Compile(cl)
	if err != nil {
		t.Fatal(err)
	}
	tr := s.NewTransformer("ro")
	defs := [][]byte{
		colDefBytes("users", "id", "id", typeLongLong, 0, 63),
		colDefBytes("users", "email", "email_c", 0xfc, flagBinary|flagBlob, 63),
		colDefBytes("users", "email_a", "email_a", 0xfe, flagBinary, 63),
	}
	if _, err := tr.Columns(defs); err != nil {
		t.Fatal(err)
	}
	ct := s.Keys.Encrypt(nil, []byte("alice@x.io"), s.Table("users").Column("email").aad)
	// binary row: 0x00, bitmap (3+9)/8 = 1 byte, id (8 bytes), email, assisted
	row := []byte{0, 0}
	row = binary.LittleEndian.AppendUint64(row, 42)
	row = mysql.AppendLenEncInt(row, uint64(len(ct)))
	row = append(row, ct...)
	row = mysql.AppendLenEncInt(row, 32)
	row = append(row, make([]byte, 32)...)
	got, err := tr.Row(nil, row, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 0}
	want = binary.LittleEndian.AppendUint64(want, 42)
	want = mysql.AppendLenEncString(want, "a*******io")
	if !bytes.Equal(got, want) {
		t.Fatalf("binary row %q, want %q", got, want)
	}
	if len(tr.Applied) != 1 || tr.Applied[0] != "m-email" || tr.Decrypted != 1 {
		t.Fatalf("applied %v, decrypted %d", tr.Applied, tr.Decrypted)
	}
	// A plain table: an INT masked to a fixed text, a NULL mask (the
	// column loses NOT NULL).
	tr.ResetCounts()
	defs, err = tr.Columns([][]byte{colDefBytes("people", "age", "age", typeLong, 0, 63), colDefBytes("people", "ssn", "ssn", typeVarString, flagNotNull, 45)})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := parseColDef(defs[1]); defs[1][d.fixedOff+8]&flagNotNull != 0 {
		t.Fatal("a column masked to NULL keeps NOT NULL")
	}
	if d, _ := parseColDef(defs[0]); defs[0][d.fixedOff+7] != typeVarString {
		t.Fatal("an INT masked to text is not described as VAR_STRING")
	}
	row = []byte{0, 0}
	row = binary.LittleEndian.AppendUint32(row, 31)
	row = mysql.AppendLenEncString(row, "123-45")
	got, err = tr.Row(nil, row, true)
	if err != nil {
		t.Fatal(err)
	}
	want = []byte{0, 1 << 3} // ssn NULL (bit 1+2)
	want = mysql.AppendLenEncString(want, "XX")
	if !bytes.Equal(got, want) {
		t.Fatalf("masked binary row %q, want %q", got, want)
	}
	got, err = tr.Row(nil, textRow([]byte("31"), []byte("123-45")), false)
	if err != nil || !bytes.Equal(got, textRow([]byte("XX"), nil)) {
		t.Fatalf("masked text row %q %v", got, err)
	}
	// Another user: no masking of people.
	tr2 := s.NewTransformer("app")
	if _, err := tr2.Columns([][]byte{colDefBytes("people", "age", "age", typeLong, 0, 63)}); err != nil || !tr2.Identity() {
		t.Fatalf("unmasked user: identity %v %v", tr2.Identity(), err)
	}
}

func TestMaskModes(t *testing.T) {
	for _, c := range []struct {
		rule proxyconfig.MaskingRule
		in   string
		want string
	}{
		{proxyconfig.MaskingRule{Mode: "keep", KeepFirst: 2, KeepLast: 1}, "héllo!", "hé***!"},
		{proxyconfig.MaskingRule{Mode: "keep", KeepLast: 4, MaskChar: "#"}, "4111111111111111", "############1111"},
		{proxyconfig.MaskingRule{Mode: "keep", KeepFirst: 3, KeepLast: 3}, "abc", "abc"},
		{proxyconfig.MaskingRule{Mode: "fixed", Fixed: "***"}, "secret", "***"},
		{proxyconfig.MaskingRule{Mode: "hash"}, "a", "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"},
	} {
		m, _ := newMask(c.rule)
		if got := string(m.Apply(nil, []byte(c.in))); got != c.want {
			t.Errorf("%+v(%q) = %q, want %q", c.rule, c.in, got, c.want)
		}
	}
}

func TestExecuteParams(t *testing.T) {
	s := testSchema(t)
	p := newTestParser()
	r, err := s.Rewrite(p, "INSERT INTO users (id, email) VALUES (?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	st := NewStmt(&r)
	// client execute: id=5 (LONGLONG), email="a@b" (VAR_STRING)
	pk := []byte{0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 8, 0, typeVarString, 0}
	pk = binary.LittleEndian.AppendUint64(pk, 5)
	pk = mysql.AppendLenEncString(pk, "a@b")
	out, err := s.Execute(nil, st, pk)
	if err != nil {
		t.Fatal(err)
	}
	// 4 backend params: bitmap 1 byte, bound 1, 8 type bytes
	if out[10] != 0 || out[11] != 1 || !bytes.Equal(out[12:20], []byte{8, 0, typeBlob, 0, typeBlob, 0, typeVarString, 0}) {
		t.Fatalf("header % x", out[:20])
	}
	rest := out[20:]
	if binary.LittleEndian.Uint64(rest) != 5 {
		t.Fatal("id not copied")
	}
	rest = rest[8:]
	ct, _, n, _ := mysql.ReadLenEncBytes(rest)
	if pt, err := s.Keys.Decrypt(nil, ct, s.Table("users").Column("email").aad); err != nil || string(pt) != "a@b" {
		t.Fatalf("encrypted param decrypts to %q %v", pt, err)
	}
	rest = rest[n:]
	as, _, n, _ := mysql.ReadLenEncBytes(rest)
	if !bytes.Equal(as, s.Keys.Assist(nil, []byte("a@b"))) {
		t.Fatal("assisted param")
	}
	if pl, _, _, _ := mysql.ReadLenEncBytes(rest[n:]); string(pl) != "a@b" {
		t.Fatalf("plain param %q", pl)
	}
	// Second execute without types (bound = 0), email NULL.
	pk2 := []byte{0x17, 1, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0}
	pk2 = binary.LittleEndian.AppendUint64(pk2, 6)
	out, err = s.Execute(nil, st, pk2)
	if err != nil {
		t.Fatal(err)
	}
	if out[10] != 0b1110 {
		t.Fatalf("null bitmap %08b, want 1110", out[10])
	}
	st.LongData = true
	if _, err := s.Execute(nil, st, pk2); err == nil {
		t.Fatal("long data accepted")
	}
}
