package mysql

import (
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"strings"
)

// mysql_native_password with only the stored hash, as a server keeps it:
// the account's hash is "*" + hex(SHA1(SHA1(password))) (stage 2); a client's
// scramble is SHA1(password) XOR SHA1(salt + stage2). From a valid scramble
// the server recovers SHA1(password) (stage 1), which is enough to log in
// to another server with the same account (NativeScrambleFromStage1).

// ParseNativeHash decodes a stored mysql_native_password hash ("*" and 40
// hex digits). An empty hash is an account without password (nil, true).
func ParseNativeHash(s string) (stage2 []byte, ok bool) {
	if s == "" {
		return nil, true
	}
	if len(s) != 41 || s[0] != '*' {
		return nil, false
	}
	b, err := hex.DecodeString(strings.ToLower(s[1:]))
	if err != nil {
		return nil, false
	}
	return b, true
}

// CheckNativeHash verifies a mysql_native_password scramble against the
// stored stage-2 hash and returns the client's stage-1 hash (SHA1 of the
// password). An account without password (stage2 nil) accepts only an
// empty response.
func CheckNativeHash(salt, response, stage2 []byte) (stage1 []byte, ok bool) {
	if stage2 == nil {
		return nil, len(response) == 0
	}
	if len(response) != sha1.Size || len(stage2) != sha1.Size {
		return nil, false
	}
	h := sha1.New()
	h.Write(salt)
	h.Write(stage2)
	x := h.Sum(nil)
	for i := range x {
		x[i] ^= response[i]
	}
	check := sha1.Sum(x)
	if subtle.ConstantTimeCompare(check[:], stage2) != 1 {
		return nil, false
	}
	return x, true
}

// NativeScrambleFromStage1 computes a mysql_native_password response for
// salt from SHA1(password).
func NativeScrambleFromStage1(salt, stage1 []byte) []byte {
	if len(stage1) == 0 {
		return nil
	}
	stage2 := sha1.Sum(stage1)
	h := sha1.New()
	h.Write(salt)
	h.Write(stage2[:])
	out := h.Sum(nil)
	for i := range out {
		out[i] ^= stage1[i]
	}
	return out
}
