package shamir

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

const (
	prefix      = "veil-share-1-"
	checksumLen = 4
	// alphabet is Crockford's base32, lowercase.
	alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
)

// Encode returns the share's text form,
// veil-share-1-<index>-<k>-<set>-<data>-<check> (see the package doc).
// The text is as secret as the share.
func (s Share) Encode() string {
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteString(strconv.Itoa(int(s.Index)))
	b.WriteByte('-')
	b.WriteString(strconv.Itoa(s.Threshold))
	b.WriteByte('-')
	b.Write(encode32(s.Set[:]))
	b.WriteByte('-')
	b.Write(encode32(s.Data))
	body := b.String()
	sum := sha256.Sum256([]byte(body))
	return body + "-" + string(encode32(sum[:checksumLen]))
}

// ParseShare parses the text form of a share, ignoring case and white
// space. It returns [ErrChecksum] when the text is well formed but the
// checksum does not match, and [ErrFormat] for anything else that is not
// the encoding of a valid share. For every share s,
// ParseShare(s.Encode()) returns s, and a parsed share re-encodes to its
// input with white space removed and letters lowercased.
func ParseShare(text string) (Share, error) {
	var nb strings.Builder
	for _, r := range text {
		switch {
		case unicode.IsSpace(r):
		case r >= 'A' && r <= 'Z':
			nb.WriteRune(r + ('a' - 'A'))
		case r < 0x80:
			nb.WriteRune(r)
		default:
			return Share{}, fmt.Errorf("%w: non-ASCII character", ErrFormat)
		}
	}
	norm := nb.String()
	rest, ok := strings.CutPrefix(norm, prefix)
	if !ok {
		return Share{}, fmt.Errorf("%w: does not start with %q", ErrFormat, prefix)
	}
	fields := strings.Split(rest, "-")
	if len(fields) != 5 {
		return Share{}, fmt.Errorf("%w: %d fields after the prefix, want 5", ErrFormat, len(fields))
	}
	index, err := decimal(fields[0], 1, MaxShares)
	if err != nil {
		return Share{}, fmt.Errorf("%w: index: %v", ErrFormat, err)
	}
	k, err := decimal(fields[1], 2, MaxShares)
	if err != nil {
		return Share{}, fmt.Errorf("%w: threshold: %v", ErrFormat, err)
	}
	var s Share
	s.Index, s.Threshold = byte(index), k
	set, ok := decode32(fields[2])
	if !ok || len(set) != SetIDSize {
		return Share{}, fmt.Errorf("%w: set id", ErrFormat)
	}
	copy(s.Set[:], set)
	s.Data, ok = decode32(fields[3])
	if !ok || len(s.Data) == 0 {
		return Share{}, fmt.Errorf("%w: data", ErrFormat)
	}
	check, ok := decode32(fields[4])
	if !ok || len(check) != checksumLen {
		return Share{}, fmt.Errorf("%w: checksum field", ErrFormat)
	}
	sum := sha256.Sum256([]byte(norm[:len(norm)-len(fields[4])-1]))
	if subtle.ConstantTimeCompare(sum[:checksumLen], check) != 1 {
		clear(s.Data)
		return Share{}, ErrChecksum
	}
	return s, nil
}

// decimal parses a decimal number in [lo, hi] written without sign or
// leading zeros.
func decimal(f string, lo, hi int) (int, error) {
	v, err := strconv.Atoi(f)
	if err != nil || strconv.Itoa(v) != f {
		return 0, fmt.Errorf("%q is not a decimal number", f)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%d outside %d…%d", v, lo, hi)
	}
	return v, nil
}

// encode32 returns b in lowercase Crockford base32, most significant bit
// first, the last symbol padded with zero bits. Symbols are chosen
// without indexing a table by data.
func encode32(b []byte) []byte {
	out := make([]byte, 0, (len(b)*8+4)/5)
	var acc uint32
	var bits uint
	for _, c := range b {
		acc = acc<<8 | uint32(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out = append(out, symbol(byte(acc>>bits)&31))
		}
	}
	if bits > 0 {
		out = append(out, symbol(byte(acc<<(5-bits))&31))
	}
	return out
}

func symbol(v byte) byte {
	var c byte
	for i := range byte(32) {
		c |= alphabet[i] & -byte(subtle.ConstantTimeByteEq(v, i))
	}
	return c
}

// decode32 reverses encode32. It accepts only the canonical encoding: a
// length that encode32 produces and zero padding bits.
func decode32(s string) ([]byte, bool) {
	n := len(s) * 5 / 8
	if (n*8+4)/5 != len(s) {
		return nil, false
	}
	out := make([]byte, 0, n)
	var acc uint32
	var bits uint
	valid := 1
	for i := range len(s) {
		var v, found byte
		for j := range byte(32) {
			eq := byte(subtle.ConstantTimeByteEq(s[i], alphabet[j]))
			v |= j & -eq
			found |= eq
		}
		valid &= int(found)
		acc = acc<<5 | uint32(v)
		bits += 5
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
	}
	pad := acc & (1<<bits - 1)
	if valid != 1 || pad != 0 {
		clear(out)
		return nil, false
	}
	return out, true
}
