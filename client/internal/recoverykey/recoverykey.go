// Package recoverykey is the account recovery key a person writes down:
// 256 random bits, shown as 56 characters with a checksum, from which the
// client derives the keys that protect its backups.
//
// # Text form
//
// The key is written as 14 groups of 4 characters of Crockford's base32
// (0-9 and A-Z without I, L, O and U), 280 bits in all:
//
//	symbols  0…51   the 256 key bits, then the first 4 bits of h
//	symbols 52…54   the next 15 bits of h
//	symbol  55      a check symbol
//
// where h = SHA-256("veil recovery key v1" ‖ key). The check symbol c
// makes Σ x^(55−i)·s[i] = 0 over the 56 symbol values s[i], in GF(32)
// with reduction polynomial x^5 + x^2 + 1 (a Damm check on the
// quasigroup u∘v = x·u + v). A substitution of one symbol by e changes
// the sum by x^j·e ≠ 0, and swapping unequal adjacent symbols u, v by
// x^j·(x+1)·(u+v) ≠ 0, so every single-character typo and every swap of
// neighbours is caught, whatever the key; the 19 bits of h catch any
// other error with probability 1 − 2^-19. Together: 24 check bits.
//
// [Parse] ignores case, spaces and dashes, and reads O as 0 and I and L
// as 1, as Crockford's alphabet intends.
//
// # Derived keys
//
// [Key.Derive] gives independent 32-byte keys for named purposes with
// HKDF-SHA256 (no salt, info "veil recovery key v1 " ‖ purpose).
//
// The key and its text form must be kept secret: whoever holds them can
// recover the account. Formatting a Key with fmt prints a placeholder;
// only [Key.String] gives the text.
package recoverykey

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"unicode"
)

var (
	// ErrFormat reports text that is not a recovery key: wrong length or
	// a character outside the alphabet.
	ErrFormat = errors.New("recoverykey: malformed recovery key")
	// ErrChecksum reports a well-formed recovery key whose checksum does
	// not match: most likely a typo.
	ErrChecksum = errors.New("recoverykey: recovery key checksum mismatch (typo?)")
)

// Purposes for [Key.Derive].
const (
	PurposeBackup             = "backup"
	PurposeRecoveryCredential = "recovery-credential"
)

const (
	// Size is the size of a key in bytes.
	Size = 32

	symbols   = 56 // in the text form
	groupLen  = 4
	alphabet  = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	hashLabel = "veil recovery key v1"
	infoLabel = "veil recovery key v1 "
	maxInput  = 512 // longer text is not a recovery key, whatever it holds
)

// Key is a recovery key. It must be kept secret.
type Key [Size]byte

// New draws a key from random; nil means crypto/rand.
func New(random io.Reader) (Key, error) {
	if random == nil {
		random = rand.Reader
	}
	var k Key
	if _, err := io.ReadFull(random, k[:]); err != nil {
		return Key{}, fmt.Errorf("recoverykey: reading randomness: %w", err)
	}
	return k, nil
}

// Equal reports whether k and o are the same key, in constant time.
func (k Key) Equal(o Key) bool { return subtle.ConstantTimeCompare(k[:], o[:]) == 1 }

// String returns the text form: 14 groups of 4 characters joined by
// dashes, e.g. "0RZ9-…-D4K7". The text is the secret itself.
func (k Key) String() string {
	s := k.symbols()
	out := make([]byte, 0, symbols+symbols/groupLen-1)
	for i, v := range s {
		if i > 0 && i%groupLen == 0 {
			out = append(out, '-')
		}
		out = append(out, symbol(v))
	}
	return string(out)
}

// Format prints a placeholder for every verb, so that a key formatted by
// accident (a struct in a log line) does not leak. Call [Key.String] for
// the text form.
func (k Key) Format(f fmt.State, verb rune) { io.WriteString(f, "recoverykey.Key{…}") }

// Derive returns the 32-byte sub-key for purpose. Distinct purposes give
// independent keys; the same purpose always gives the same key.
func (k Key) Derive(purpose string) [32]byte {
	b, err := hkdf.Key(sha256.New, k[:], nil, infoLabel+purpose, 32)
	if err != nil {
		// Only a length beyond 255·32 bytes fails.
		panic("recoverykey: hkdf: " + err.Error())
	}
	var out [32]byte
	copy(out[:], b)
	clear(b)
	return out
}

// Parse reads the text form of a key. It ignores case, white space and
// dashes, and reads O as 0 and I and L as 1. It returns [ErrChecksum]
// for 56 valid characters that fail the checksum (a typo) and
// [ErrFormat] for anything else that is not a key.
func Parse(text string) (Key, error) {
	if len(text) > maxInput {
		return Key{}, fmt.Errorf("%w: %d bytes", ErrFormat, len(text))
	}
	var s [symbols]byte
	n := 0
	valid := 1
	for _, r := range text {
		if r == '-' || unicode.IsSpace(r) {
			continue
		}
		if r >= 0x80 {
			return Key{}, fmt.Errorf("%w: non-ASCII character", ErrFormat)
		}
		if n == symbols {
			return Key{}, fmt.Errorf("%w: more than %d characters", ErrFormat, symbols)
		}
		v, ok := value(byte(r))
		s[n] = v
		valid &= ok
		n++
	}
	if n != symbols {
		return Key{}, fmt.Errorf("%w: %d characters, want %d", ErrFormat, n, symbols)
	}
	if valid != 1 {
		return Key{}, fmt.Errorf("%w: character outside the alphabet", ErrFormat)
	}
	var k Key
	unpack(k[:], s[:52])
	want := k.symbols()
	ok := subtle.ConstantTimeCompare(want[:], s[:]) & subtle.ConstantTimeByteEq(damm(s[:]), 0)
	clear(want[:])
	clear(s[:])
	if ok != 1 {
		clear(k[:])
		return Key{}, ErrChecksum
	}
	return k, nil
}

// symbols returns the 56 symbol values of k's text form.
func (k Key) symbols() [symbols]byte {
	h := sha256.New()
	h.Write([]byte(hashLabel))
	h.Write(k[:])
	sum := h.Sum(nil)
	// 256 key bits, then 19 hash bits, then 5 spare bits for the check
	// symbol: 35 bytes is 56 symbols.
	var buf [35]byte
	copy(buf[:], k[:])
	buf[32], buf[33], buf[34] = sum[0], sum[1], sum[2]&0xE0
	var s [symbols]byte
	unpackSymbols(s[:], buf[:])
	s[symbols-1] = 0
	s[symbols-1] = mulX(damm(s[:symbols-1]))
	clear(buf[:])
	return s
}

// unpackSymbols splits b into 5-bit values, most significant bit first;
// len(b)·8 must be 5·len(s).
func unpackSymbols(s, b []byte) {
	var acc uint32
	var bits uint
	j := 0
	for _, c := range b {
		acc = acc<<8 | uint32(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			s[j] = byte(acc>>bits) & 31
			j++
		}
	}
}

// unpack fills k from the first 256 bits of the 5-bit values s.
func unpack(k []byte, s []byte) {
	var acc uint32
	var bits uint
	j := 0
	for _, v := range s {
		acc = acc<<5 | uint32(v)
		bits += 5
		if bits >= 8 && j < len(k) {
			bits -= 8
			k[j] = byte(acc >> bits)
			j++
		}
	}
}

// damm returns Σ x^(len(s)−1−i)·s[i] in GF(32), by Horner's rule: the
// final state of the Damm check over the quasigroup u∘v = x·u + v.
func damm(s []byte) byte {
	var r byte
	for _, v := range s {
		r = mulX(r) ^ v
	}
	return r
}

// mulX multiplies by x in GF(32) modulo x^5 + x^2 + 1, without branches.
func mulX(r byte) byte {
	return (r<<1)&31 ^ 0x05&-(r>>4&1)
}

// symbol returns the character for the 5-bit value v, without indexing a
// table by v.
func symbol(v byte) byte {
	var c byte
	for i := range byte(32) {
		c |= alphabet[i] & -byte(subtle.ConstantTimeByteEq(v, i))
	}
	return c
}

// value returns the 5-bit value of character c (either case, with
// Crockford's aliases) and 1, or 0 and 0 if c is not in the alphabet. It
// compares c with every character rather than indexing a table by c.
func value(c byte) (byte, int) {
	// Fold ASCII letters to upper case; other characters are unaffected
	// or end up outside the alphabet.
	lower := subtle.ConstantTimeLessOrEq(int('a'), int(c)) & subtle.ConstantTimeLessOrEq(int(c), int('z'))
	c ^= 0x20 & -byte(lower)
	var v, found byte
	for i := range byte(32) {
		eq := byte(subtle.ConstantTimeByteEq(c, alphabet[i]))
		v |= i & -eq
		found |= eq
	}
	for _, a := range [...]struct{ c, v byte }{{'O', 0}, {'I', 1}, {'L', 1}} {
		eq := byte(subtle.ConstantTimeByteEq(c, a.c))
		v |= a.v & -eq
		found |= eq
	}
	return v, int(found)
}
