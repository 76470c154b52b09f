package mysql

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// NewSalt returns a 20-byte scramble of printable, non-NUL bytes.
func NewSalt() []byte {
	s := make([]byte, 20)
	if _, err := rand.Read(s); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	for i := range s {
		s[i] = s[i]&0x7f | 0x01 // avoid NUL and '$'-free high bytes
		if s[i] == '$' {
			s[i] = '#'
		}
	}
	return s
}

// ScrambleNative computes the mysql_native_password auth response:
// SHA1(password) XOR SHA1(salt + SHA1(SHA1(password))).
func ScrambleNative(salt []byte, password string) []byte {
	if password == "" {
		return nil
	}
	h1 := sha1.Sum([]byte(password))
	h2 := sha1.Sum(h1[:])
	h := sha1.New()
	h.Write(salt)
	h.Write(h2[:])
	h3 := h.Sum(nil)
	for i := range h3 {
		h3[i] ^= h1[i]
	}
	return h3
}

// ScrambleCachingSha2 computes the caching_sha2_password fast-auth response:
// SHA256(password) XOR SHA256(SHA256(SHA256(password)) + salt).
func ScrambleCachingSha2(salt []byte, password string) []byte {
	if password == "" {
		return nil
	}
	h1 := sha256.Sum256([]byte(password))
	h2 := sha256.Sum256(h1[:])
	h := sha256.New()
	h.Write(h2[:])
	h.Write(salt)
	h3 := h.Sum(nil)
	for i := range h3 {
		h3[i] ^= h1[i]
	}
	return h3
}

// CheckScramble compares an auth response with the expected one in constant
// time; an empty password expects an empty response.
func CheckScramble(plugin string, salt, response []byte, password string) bool {
	var want []byte
	switch plugin {
	case AuthNativePassword:
		want = ScrambleNative(salt, password)
	case AuthCachingSha2:
		want = ScrambleCachingSha2(salt, password)
	default:
		return false
	}
	if len(want) == 0 {
		return len(response) == 0
	}
	return subtle.ConstantTimeCompare(want, response) == 1
}

// xorPassword returns (password + NUL) XOR salt, repeating the salt.
func xorPassword(password string, salt []byte) []byte {
	p := append([]byte(password), 0)
	for i := range p {
		p[i] ^= salt[i%len(salt)]
	}
	return p
}

// EncryptPassword RSA-OAEP(SHA1)-encrypts (password+NUL) XOR salt with a
// server's PEM public key (caching_sha2_password / sha256_password).
func EncryptPassword(password string, salt []byte, pemKey []byte) ([]byte, error) {
	block, _ := pem.Decode(pemKey)
	if block == nil {
		return nil, errors.New("mysql: invalid server public key")
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("mysql: parse server public key: %w", err)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("mysql: server public key is not RSA")
	}
	return rsa.EncryptOAEP(sha1.New(), rand.Reader, rsaPub, xorPassword(password, salt), nil)
}

// DecryptPassword reverses EncryptPassword with the private key.
func DecryptPassword(ciphertext, salt []byte, key *rsa.PrivateKey) (string, error) {
	plain, err := rsa.DecryptOAEP(sha1.New(), rand.Reader, key, ciphertext, nil)
	if err != nil {
		return "", fmt.Errorf("mysql: decrypt password: %w", err)
	}
	for i := range plain {
		plain[i] ^= salt[i%len(salt)]
	}
	if n := len(plain); n > 0 && plain[n-1] == 0 {
		plain = plain[:n-1]
	}
	return string(plain), nil
}

// PublicKeyPEM encodes an RSA public key as PEM (PKIX).
func PublicKeyPEM(key *rsa.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
