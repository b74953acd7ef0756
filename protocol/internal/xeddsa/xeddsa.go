// Package xeddsa signs and verifies with X25519 keys the way libsignal does, so that one
// Curve25519 identity key serves both for Diffie-Hellman and for signatures.
//
// # The scheme
//
// XEdDSA (Signal's specification "The XEdDSA and VXEdDSA Signature Schemes") turns the X25519
// private scalar a into an Ed25519-style signer. The verifier knows only the Montgomery
// u-coordinate, which fixes the Edwards point up to its sign, so the sign has to come from
// somewhere. The paper forces it to zero by negating a; libsignal (and libsignal-protocol-java
// before it) instead keeps a and carries the sign of A = aB in the top bit of the signature's
// last byte, which an s below 2^253 never uses. This package does the same, bit for bit:
//
//	r = SHA-512(0xFE ‖ 0xFF×31 ‖ a ‖ M ‖ Z) mod ℓ      (Z: 64 random bytes)
//	R = rB;  h = SHA-512(R ‖ A ‖ M) mod ℓ;  s = r + h·a mod ℓ
//	signature = R ‖ s, with sign(A) in bit 7 of byte 63
//
// # Verification
//
// [Verify] rebuilds A from u and the carried sign bit (y = (u−1)/(u+1); u = −1 has no image),
// then accepts only if the canonical encoding of sB − hA equals R byte for byte. It refuses
// everything libsignal refuses, and additionally any s that is not fully reduced mod ℓ:
// libsignal only checks s < 2^253, but its signer always emits reduced s, so the stricter
// check removes malleability without losing any real signature.
package xeddsa

import (
	"crypto/sha512"
	"crypto/subtle"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// SignatureSize is the length of an XEdDSA signature.
const SignatureSize = 64

// hashPrefix domain-separates the nonce hash from Ed25519's: 2^256 − 2 little-endian, as in
// the XEdDSA paper's hash_1.
var hashPrefix = [32]byte{
	0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
	0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
}

// Sign makes a libsignal-compatible XEdDSA signature over message with the X25519 private key
// priv (32 bytes as libsignal stores it; it is clamped here too, which changes nothing for a
// stored key). random must be 64 fresh random bytes; the signature is a deterministic function
// of priv, message and random, which is what lets tests fix it. priv must be kept secret.
func Sign(priv *[32]byte, message []byte, random *[64]byte) [64]byte {
	var k [32]byte
	copy(k[:], priv[:])
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64
	a, _ := new(edwards25519.Scalar).SetBytesWithClamping(k[:]) // cannot fail: 32 bytes
	A := new(edwards25519.Point).ScalarBaseMult(a).Bytes()
	signBit := A[31] & 0x80

	h1 := sha512.New()
	h1.Write(hashPrefix[:])
	h1.Write(k[:])
	h1.Write(message)
	h1.Write(random[:])
	var digest [64]byte
	r, _ := new(edwards25519.Scalar).SetUniformBytes(h1.Sum(digest[:0]))
	R := new(edwards25519.Point).ScalarBaseMult(r).Bytes()

	h2 := sha512.New()
	h2.Write(R)
	h2.Write(A)
	h2.Write(message)
	h, _ := new(edwards25519.Scalar).SetUniformBytes(h2.Sum(digest[:0]))
	s := new(edwards25519.Scalar).MultiplyAdd(h, a, r)

	var sig [64]byte
	copy(sig[:32], R)
	copy(sig[32:], s.Bytes())
	sig[63] = sig[63]&0x7F | signBit
	clear(k[:])
	clear(digest[:])
	return sig
}

var minusOne = new(field.Element).Negate(new(field.Element).One())

// edwardsFromMontgomery maps the u-coordinate to the Edwards point with the given sign bit,
// as curve25519-dalek's MontgomeryPoint::to_edwards does: the top bit of u is ignored and
// non-canonical u are reduced, u = −1 is refused, and y is decoded like any point encoding.
// It also returns the point's encoding, which is exactly the decoded bytes.
func edwardsFromMontgomery(u *[32]byte, sign byte) (*edwards25519.Point, []byte, bool) {
	fu, err := new(field.Element).SetBytes(u[:])
	if err != nil || fu.Equal(minusOne) == 1 {
		return nil, nil, false
	}
	one := new(field.Element).One()
	num := new(field.Element).Subtract(fu, one)
	den := new(field.Element).Add(fu, one)
	y := new(field.Element).Multiply(num, den.Invert(den))
	yb := y.Bytes()
	yb[31] |= sign << 7
	p, err := new(edwards25519.Point).SetBytes(yb)
	if err != nil {
		return nil, nil, false
	}
	// SetBytes accepted yb and y is reduced, so yb is p's encoding (no
	// need to pay an inversion for p.Bytes()) — except when x = 0 (y = ±1),
	// where a set sign bit is dropped on re-encoding, as dalek's compress
	// drops it.
	if y.Equal(one) == 1 || y.Equal(minusOne) == 1 {
		return p, p.Bytes(), true
	}
	return p, yb, true
}

// Verify reports whether sig is a valid XEdDSA signature over message by the X25519 public
// key whose u-coordinate is pub. It never panics and runs in time that depends only on public
// data.
func Verify(pub *[32]byte, message []byte, sig *[64]byte) bool {
	A, aBytes, ok := edwardsFromMontgomery(pub, sig[63]>>7)
	if !ok {
		return false
	}
	var sb [32]byte
	copy(sb[:], sig[32:])
	sb[31] &= 0x7F
	if sb[31]&0xE0 != 0 { // libsignal's own bound, s < 2^253
		return false
	}
	s, err := new(edwards25519.Scalar).SetCanonicalBytes(sb[:]) // and ours: s < ℓ
	if err != nil {
		return false
	}
	hh := sha512.New()
	hh.Write(sig[:32])
	hh.Write(aBytes)
	hh.Write(message)
	var digest [64]byte
	h, _ := new(edwards25519.Scalar).SetUniformBytes(hh.Sum(digest[:0]))

	minusA := new(edwards25519.Point).Negate(A)
	check := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(h, minusA, s).Bytes()
	return subtle.ConstantTimeCompare(check, sig[:32]) == 1
}
