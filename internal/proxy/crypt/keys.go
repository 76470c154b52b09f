// Package crypt is pisa-proxy's transparent column encryption (the
// SecurityClaim): statements on encrypted tables are rewritten through the
// parser's AST so that the backend stores AES-256-GCM ciphertext (and an
// HMAC-SHA-256 "assisted" value for equality lookups), and result columns
// are decrypted as rows stream back to the client.
//
// The pieces are independent of the session: a KeyRing (key material and
// the cipher format), a Schema (which table columns are encrypted, and how),
// the Rewriter (statement text in, statement text plus a parameter map
// out, or a 1235 refusal naming the column), and the result Transformer
// (column definitions and rows, text and binary protocol).
package crypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"sync"
)

// Ciphertext format (stored in the cipher column, binary):
//
//	byte 0      format version (1)
//	byte 1      length k of the key id (1..255)
//	bytes 2..   key id (k bytes), then the 12-byte nonce, then the
//	            AES-256-GCM ciphertext with its 16-byte tag
//
// The additional authenticated data is "table.column" (logical names,
// lower case), so a value copied into another column does not decrypt.
const (
	formatV1  = 1
	nonceSize = 12
	tagSize   = 16
	// KeySize is the size of every key: AES-256 and the HMAC key.
	KeySize = 32
	// AssistedSize is the size of an assisted (HMAC-SHA-256) value.
	AssistedSize = sha256.Size
)

// ErrCiphertext is returned for a stored value that is not a ciphertext of
// this format, or whose key is unknown, or that fails authentication.
var ErrCiphertext = errors.New("crypt: not a valid ciphertext")

// KeyRing holds the data keys by id, the active one (new values are
// encrypted with it) and the HMAC key of the assisted columns. It is
// immutable once built and safe for concurrent use.
type KeyRing struct {
	aeads    map[string]cipher.AEAD
	active   string
	activeAE cipher.AEAD
	hmacPool sync.Pool // of hash.Hash keyed with the assisted key
}

// NewKeyRing builds a key ring. keys maps key ids to 32-byte keys; active
// names the key new values are encrypted with; assisted is the 32-byte
// HMAC-SHA-256 key of the assisted columns (nil: no assisted columns).
func NewKeyRing(keys map[string][]byte, active string, assisted []byte) (*KeyRing, error) {
	kr := &KeyRing{aeads: make(map[string]cipher.AEAD, len(keys)), active: active}
	for id, k := range keys {
		if id == "" || len(id) > 255 {
			return nil, fmt.Errorf("crypt: key id %q: must be 1 to 255 bytes", id)
		}
		if len(k) != KeySize {
			return nil, fmt.Errorf("crypt: key %q: %d bytes, want %d", id, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("crypt: key %q: %w", id, err)
		}
		ae, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("crypt: key %q: %w", id, err)
		}
		kr.aeads[id] = ae
	}
	ae, ok := kr.aeads[active]
	if !ok {
		return nil, fmt.Errorf("crypt: active key %q is not among the keys", active)
	}
	kr.activeAE = ae
	if assisted != nil {
		if len(assisted) != KeySize {
			return nil, fmt.Errorf("crypt: assisted key: %d bytes, want %d", len(assisted), KeySize)
		}
		key := append([]byte(nil), assisted...)
		kr.hmacPool.New = func() any { return hmac.New(sha256.New, key) }
	}
	return kr, nil
}

// Active returns the id of the key new values are encrypted with.
func (kr *KeyRing) Active() string { return kr.active }

// HasAssisted reports whether the ring has an assisted (HMAC) key.
func (kr *KeyRing) HasAssisted() bool { return kr.hmacPool.New != nil }

// Encrypt appends the ciphertext of plain (format above) to dst, with the
// active key and a random nonce; aad binds it to its column.
func (kr *KeyRing) Encrypt(dst, plain []byte, aad []byte) []byte {
	id := kr.active
	dst = append(dst, formatV1, byte(len(id)))
	dst = append(dst, id...)
	start := len(dst)
	dst = append(dst, make([]byte, nonceSize)...)
	nonce := dst[start:]
	if _, err := rand.Read(nonce); err != nil {
		// crypto/rand never fails on Linux; a broken source must not
		// produce a repeated nonce.
		panic("crypt: random source failed: " + err.Error())
	}
	return kr.activeAE.Seal(dst, nonce, plain, aad)
}

// KeyID returns the key id of a stored ciphertext.
func KeyID(ct []byte) (string, error) {
	if len(ct) < 2 || ct[0] != formatV1 || len(ct) < 2+int(ct[1])+nonceSize+tagSize || ct[1] == 0 {
		return "", ErrCiphertext
	}
	return string(ct[2 : 2+int(ct[1])]), nil
}

// Decrypt appends the plaintext of ct to dst.
func (kr *KeyRing) Decrypt(dst, ct []byte, aad []byte) ([]byte, error) {
	if len(ct) < 2 || ct[0] != formatV1 || ct[1] == 0 || len(ct) < 2+int(ct[1])+nonceSize+tagSize {
		return dst, ErrCiphertext
	}
	k := int(ct[1])
	ae, ok := kr.aeads[string(ct[2:2+k])]
	if !ok {
		return dst, fmt.Errorf("%w: unknown key id %q", ErrCiphertext, ct[2:2+k])
	}
	nonce := ct[2+k : 2+k+nonceSize]
	out, err := ae.Open(dst, nonce, ct[2+k+nonceSize:], aad)
	if err != nil {
		return dst, fmt.Errorf("%w: %w", ErrCiphertext, err)
	}
	return out, nil
}

// Assist appends the assisted value of plain (HMAC-SHA-256 with the
// assisted key) to dst. Equal plaintexts give equal values in every
// column, so equality lookups and joins work across columns.
func (kr *KeyRing) Assist(dst, plain []byte) []byte {
	h := kr.hmacPool.Get().(hash.Hash)
	h.Reset()
	h.Write(plain)
	dst = h.Sum(dst)
	kr.hmacPool.Put(h)
	return dst
}
