package xeddsa

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"filippo.io/edwards25519"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Vectors from libsignal's rust/core/src/curve/curve25519.rs, test_signature: Alice's identity
// key signing her ephemeral public key (0x05-prefixed).
const (
	aliceIdentityPrivate = "c097248412e58bf05df48796820513279417" + "8e367637f5818f81e0e6ce73e865"
	aliceIdentityPublic  = "ab7e717d4a163b7d9a1d8071dfe9dcf8cdcd1cea3339b6356be84d887e322c64"
	aliceEphemeralPublic = "05edce9d9c415ca78cb7252e72c2c4a554d3eb29485a0e1d503118d1a82d99fb4a"
	aliceSignature       = "5de88ca9a89b4a115da79109c67c9c7464a3e4180274f1cb8c63c2984e286dfb" +
		"ede82deb9dcd9fae0bfbb821569b3d9001bd8130cd11d486cef047bd60b86e88"
)

func libsignalVector(t testing.TB) (priv, pub [32]byte, msg []byte, sig [64]byte) {
	copy(priv[:], unhex(t, aliceIdentityPrivate))
	copy(pub[:], unhex(t, aliceIdentityPublic))
	copy(sig[:], unhex(t, aliceSignature))
	return priv, pub, unhex(t, aliceEphemeralPublic), sig
}

func TestLibsignalVector(t *testing.T) {
	priv, pub, msg, sig := libsignalVector(t)
	k, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil || !bytes.Equal(k.PublicKey().Bytes(), pub[:]) {
		t.Fatalf("public key derivation: %v", err)
	}
	if !Verify(&pub, msg, &sig) {
		t.Fatal("libsignal's signature does not verify")
	}
	// Every single-bit change of the signature is refused (libsignal's test flips bit 0 of
	// each byte; this flips all of them).
	for i := 0; i < 64*8; i++ {
		bad := sig
		bad[i/8] ^= 1 << (i % 8)
		if Verify(&pub, msg, &bad) {
			t.Errorf("signature with bit %d flipped verifies", i)
		}
	}
	// Our own signature under the same key verifies too.
	var z [64]byte
	ours := Sign(&priv, msg, &z)
	if !Verify(&pub, msg, &ours) {
		t.Fatal("our signature with libsignal's key does not verify")
	}
}

func TestSignDeterministicInRandom(t *testing.T) {
	priv, _, msg, _ := libsignalVector(t)
	var z1, z2 [64]byte
	z2[0] = 1
	a, b, c := Sign(&priv, msg, &z1), Sign(&priv, msg, &z1), Sign(&priv, msg, &z2)
	if a != b {
		t.Error("same randomness, different signatures")
	}
	if a == c {
		t.Error("different randomness, same signature")
	}
}

func randomKey(t testing.TB) (priv, pub [32]byte) {
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	copy(priv[:], k.Bytes())
	copy(pub[:], k.PublicKey().Bytes())
	return
}

func TestRoundTripAndTampering(t *testing.T) {
	signs := map[byte]int{}
	for n := 0; n < 8; n++ {
		priv, pub := randomKey(t)
		msg := make([]byte, 33)
		rand.Read(msg)
		var z [64]byte
		rand.Read(z[:])
		sig := Sign(&priv, msg, &z)
		signs[sig[63]>>7]++
		if !Verify(&pub, msg, &sig) {
			t.Fatal("round trip failed")
		}
		if n > 1 {
			continue // the exhaustive flips below are slow; two keys are enough
		}
		for i := 0; i < len(sig)*8; i++ {
			bad := sig
			bad[i/8] ^= 1 << (i % 8)
			if Verify(&pub, msg, &bad) {
				t.Errorf("sig bit %d flipped verifies", i)
			}
		}
		for i := 0; i < len(msg)*8; i++ {
			bad := bytes.Clone(msg)
			bad[i/8] ^= 1 << (i % 8)
			if Verify(&pub, bad, &sig) {
				t.Errorf("message bit %d flipped verifies", i)
			}
		}
		for i := 0; i < 255; i++ { // bit 255 of u is ignored, as by X25519 itself
			bad := pub
			bad[i/8] ^= 1 << (i % 8)
			if Verify(&bad, msg, &sig) {
				t.Errorf("key bit %d flipped verifies", i)
			}
		}
		high := pub
		high[31] |= 0x80
		if !Verify(&high, msg, &sig) {
			t.Error("the ignored top bit of u changed the result")
		}
		if Verify(&pub, append(msg, 0), &sig) || Verify(&pub, msg[:32], &sig) {
			t.Error("extended or truncated message verifies")
		}
	}
	t.Logf("sign bits seen: %v", signs)
}

// XEdDSA's challenge hash is Ed25519's, so once the sign bit is moved from the signature to
// the Edwards key, crypto/ed25519 must accept our signature: an independent check of R, s and
// the Montgomery-to-Edwards map.
func TestAgreesWithEd25519(t *testing.T) {
	for n := 0; n < 16; n++ {
		priv, pub := randomKey(t)
		msg := []byte("cross-check with crypto/ed25519")
		var z [64]byte
		rand.Read(z[:])
		sig := Sign(&priv, msg, &z)
		A, aBytes, ok := edwardsFromMontgomery(&pub, sig[63]>>7)
		if !ok {
			t.Fatal("no Edwards point")
		}
		if !bytes.Equal(aBytes, A.Bytes()) {
			t.Fatal("edwardsFromMontgomery's encoding differs from the point's")
		}
		for _, sign := range []byte{0, 1} {
			if B, bb, ok := edwardsFromMontgomery(&pub, sign); ok && !bytes.Equal(bb, B.Bytes()) {
				t.Fatal("encoding differs from the point's")
			}
		}
		edSig := sig
		edSig[63] &= 0x7F
		if !ed25519.Verify(A.Bytes(), msg, edSig[:]) {
			t.Fatalf("crypto/ed25519 rejects the signature (sign bit %d)", sig[63]>>7)
		}
	}
}

func TestRejectsNonCanonicalS(t *testing.T) {
	priv, pub := randomKey(t)
	msg := []byte("m")
	var z [64]byte
	sig := Sign(&priv, msg, &z)
	sign := sig[63] & 0x80
	// s + ℓ is below 2^253 (libsignal would accept it) but not reduced: refused here.
	var sb [32]byte
	copy(sb[:], sig[32:])
	sb[31] &= 0x7F
	s, err := new(edwards25519.Scalar).SetCanonicalBytes(sb[:])
	if err != nil {
		t.Fatal(err)
	}
	l := [32]byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10}
	var sum [32]byte
	carry := 0
	sbytes := s.Bytes()
	for i := range sum {
		v := int(sbytes[i]) + int(l[i]) + carry
		sum[i], carry = byte(v), v>>8
	}
	if sum[31]&0xE0 != 0 {
		t.Skip("s+ℓ ≥ 2^253 for this key; rerun")
	}
	bad := sig
	copy(bad[32:], sum[:])
	bad[63] |= sign
	if Verify(&pub, msg, &bad) {
		t.Error("non-canonical s accepted")
	}
}

func TestRejectsBadKeys(t *testing.T) {
	priv, _ := randomKey(t)
	msg := []byte("m")
	var z [64]byte
	sig := Sign(&priv, msg, &z)
	minusOne := [32]byte{0xec}
	for i := 1; i < 31; i++ {
		minusOne[i] = 0xff
	}
	minusOne[31] = 0x7f
	for _, u := range [][32]byte{minusOne, {}, {1}} {
		if Verify(&u, msg, &sig) {
			t.Errorf("u=%x accepted", u)
		}
	}
	if _, _, ok := edwardsFromMontgomery(&minusOne, 0); ok {
		t.Error("u = -1 mapped to a point")
	}
}

func FuzzVerify(f *testing.F) {
	_, pub, msg, sig := libsignalVector(f)
	f.Add(pub[:], msg, sig[:])
	f.Add(make([]byte, 32), []byte{}, make([]byte, 64))
	f.Fuzz(func(t *testing.T, pub, msg, sig []byte) {
		var p [32]byte
		var s [64]byte
		copy(p[:], pub)
		copy(s[:], sig)
		Verify(&p, msg, &s) // must not panic
	})
}

func BenchmarkSign(b *testing.B) {
	priv, _ := randomKey(b)
	msg := make([]byte, 33)
	var z [64]byte
	b.ReportAllocs()
	for b.Loop() {
		Sign(&priv, msg, &z)
	}
}

func BenchmarkVerify(b *testing.B) {
	priv, pub := randomKey(b)
	msg := make([]byte, 33)
	var z [64]byte
	sig := Sign(&priv, msg, &z)
	b.ReportAllocs()
	for b.Loop() {
		if !Verify(&pub, msg, &sig) {
			b.Fatal("verify failed")
		}
	}
}

// FuzzSignVerify: any private key bytes, message and randomness give a signature that
// verifies under the key's X25519 public key, and not under a different message.
func FuzzSignVerify(f *testing.F) {
	priv, _, msg, _ := libsignalVector(f)
	f.Add(priv[:], msg, make([]byte, 64))
	f.Add(make([]byte, 32), []byte{}, bytes.Repeat([]byte{0xFF}, 64))
	f.Fuzz(func(t *testing.T, privBytes, msg, random []byte) {
		var p [32]byte
		var z [64]byte
		copy(p[:], privBytes)
		copy(z[:], random)
		k, err := ecdh.X25519().NewPrivateKey(p[:])
		if err != nil {
			t.Fatal(err)
		}
		var pub [32]byte
		copy(pub[:], k.PublicKey().Bytes())
		sig := Sign(&p, msg, &z)
		if !Verify(&pub, msg, &sig) {
			t.Fatalf("signature by %x does not verify", p)
		}
		if Verify(&pub, append(bytes.Clone(msg), 1), &sig) {
			t.Fatal("signature verifies for another message")
		}
	})
}

// The encoding shortcut must match the point's own encoding for the
// x = 0 points (u = 0 maps to y = −1) with either sign bit.
func TestEncodingOfXZeroPoints(t *testing.T) {
	var u0 [32]byte
	for _, sign := range []byte{0, 1} {
		if p, b, ok := edwardsFromMontgomery(&u0, sign); ok && !bytes.Equal(b, p.Bytes()) {
			t.Fatalf("sign %d: %x vs %x", sign, b, p.Bytes())
		}
	}
}
