// Package curve is X25519 as the Signal protocol uses it: key agreement,
// public keys from private scalars, and libsignal's canonical-point check.
//
// # Why not crypto/ecdh
//
// crypto/ecdh computes the public key eagerly whenever a private key is
// loaded, so every agreement with a stored ratchet key would cost two
// scalar multiplications instead of one. This package works on plain
// 32-byte arrays with the same constant-time field arithmetic
// (filippo.io/edwards25519/field, the code the standard library uses), and
// derives public keys with the much faster fixed-base Edwards
// multiplication. It is checked against the Wycheproof X25519 vectors.
package curve

import (
	"crypto/subtle"
	"errors"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// ErrLowOrder is returned when an agreement produces the all-zero value,
// i.e. the peer sent a low-order point.
var ErrLowOrder = errors.New("curve: X25519 result is all zero (low-order point)")

// Clamp clears and sets the bits RFC 7748 requires of an X25519 scalar.
func Clamp(k *[32]byte) {
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64
}

// X25519 sets dst to scalar·point (RFC 7748). The scalar is clamped as
// part of the operation. It returns ErrLowOrder for an all-zero result.
func X25519(dst, scalar, point *[32]byte) error {
	var k [32]byte
	copy(k[:], scalar[:])
	Clamp(&k)

	var x1 field.Element
	if _, err := x1.SetBytes(point[:]); err != nil {
		return err // cannot happen: SetBytes accepts any 32 bytes
	}
	x2, z2 := ladder(&k, &x1)
	z2.Invert(&z2)
	x2.Multiply(&x2, &z2)
	copy(dst[:], x2.Bytes())

	var zero [32]byte
	if subtle.ConstantTimeCompare(dst[:], zero[:]) == 1 {
		return ErrLowOrder
	}
	return nil
}

// PublicKey sets pub to the X25519 public key (u-coordinate) of priv,
// using fixed-base Edwards multiplication (several times faster than a
// ladder from the base point).
func PublicKey(pub, priv *[32]byte) {
	s, err := edwards25519.NewScalar().SetBytesWithClamping(priv[:])
	if err != nil {
		panic("curve: SetBytesWithClamping failed on 32 bytes") // unreachable
	}
	p := new(edwards25519.Point).ScalarBaseMult(s)
	copy(pub[:], p.BytesMontgomery())
}

// groupOrder is L = 2^252 + 27742317777372353535851937790883648493,
// little-endian.
var groupOrder = [32]byte{
	0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
}

// IsCanonical reports whether u is a canonical encoding (high bit clear,
// u < 2^255-19) of a point in the prime-order subgroup, as libsignal
// requires of a PreKeySignalMessage's base key (curve25519-dalek's
// to_edwards + is_torsion_free + a range check). A base key with a
// torsion component would give the same shared secrets under a different
// encoding, letting a replayed PreKey message look like a new session.
//
// The subgroup test runs the x-only Montgomery ladder with the scalar L
// and checks that the result is the point at infinity (Z = 0); it needs
// no field inversion and no Edwards conversion.
func IsCanonical(u *[32]byte) bool {
	if u[31]&0x80 != 0 {
		return false
	}
	var x1 field.Element
	if _, err := x1.SetBytes(u[:]); err != nil {
		return false
	}
	if subtle.ConstantTimeCompare(x1.Bytes(), u[:]) != 1 {
		return false // u ≥ p
	}
	var zero, minusOne field.Element
	minusOne.Negate(new(field.Element).One())
	// u = 0 is the point of order 2 (the ladder degenerates on it); u = −1
	// has no Edwards image. Neither is in the prime-order subgroup.
	if x1.Equal(&zero) == 1 || x1.Equal(&minusOne) == 1 {
		return false
	}
	_, z := ladder(&groupOrder, &x1)
	return z.Equal(&zero) == 1
}

// ladder computes [k]P for the point with u-coordinate x1, x-only, and
// returns the projective (X : Z). k is used as given (not clamped).
func ladder(k *[32]byte, x1 *field.Element) (x2, z2 field.Element) {
	var x3, z3, tmp0, tmp1 field.Element
	x2.One()
	x3.Set(x1)
	z3.One()
	swap := 0
	for pos := 254; pos >= 0; pos-- {
		b := int(k[pos/8]>>uint(pos&7)) & 1
		swap ^= b
		x2.Swap(&x3, swap)
		z2.Swap(&z3, swap)
		swap = b

		tmp0.Subtract(&x3, &z3)
		tmp1.Subtract(&x2, &z2)
		x2.Add(&x2, &z2)
		z2.Add(&x3, &z3)
		z3.Multiply(&tmp0, &x2)
		z2.Multiply(&z2, &tmp1)
		tmp0.Square(&tmp1)
		tmp1.Square(&x2)
		x3.Add(&z3, &z2)
		z2.Subtract(&z3, &z2)
		x2.Multiply(&tmp1, &tmp0)
		tmp1.Subtract(&tmp1, &tmp0)
		z2.Square(&z2)
		z3.Mult32(&tmp1, 121666)
		x3.Square(&x3)
		tmp0.Add(&tmp0, &z3)
		z3.Multiply(x1, &z2)
		z2.Multiply(&tmp1, &tmp0)
	}
	x2.Swap(&x3, swap)
	z2.Swap(&z3, swap)
	return x2, z2
}
