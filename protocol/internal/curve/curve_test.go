package curve

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"

	"github.com/veil-e2ee/veil/protocol/internal/wycheproof"
)

func TestAgreesWithStdlib(t *testing.T) {
	for i := 0; i < 200; i++ {
		var a, b [32]byte
		rand.Read(a[:])
		rand.Read(b[:])
		ka, _ := ecdh.X25519().NewPrivateKey(a[:])
		kb, _ := ecdh.X25519().NewPrivateKey(b[:])
		var pa, pb [32]byte
		PublicKey(&pa, &a)
		PublicKey(&pb, &b)
		if !bytes.Equal(pa[:], ka.PublicKey().Bytes()) || !bytes.Equal(pb[:], kb.PublicKey().Bytes()) {
			t.Fatalf("public key mismatch with crypto/ecdh")
		}
		want, _ := ka.ECDH(kb.PublicKey())
		var got [32]byte
		if err := X25519(&got, &a, &pb); err != nil || !bytes.Equal(got[:], want) {
			t.Fatalf("agreement mismatch: %v", err)
		}
		if !IsCanonical(&pa) {
			t.Fatalf("a generated public key is not canonical")
		}
	}
}

func TestRFC7748(t *testing.T) {
	k, _ := hex.DecodeString("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
	u, _ := hex.DecodeString("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
	want := "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
	var kk, uu, out [32]byte
	copy(kk[:], k)
	copy(uu[:], u)
	if err := X25519(&out, &kk, &uu); err != nil || hex.EncodeToString(out[:]) != want {
		t.Fatalf("got %x, %v", out, err)
	}
}

func TestLowOrderRejected(t *testing.T) {
	var k, zero, out [32]byte
	rand.Read(k[:])
	if err := X25519(&out, &k, &zero); !errors.Is(err, ErrLowOrder) {
		t.Fatalf("all-zero point: got %v, want ErrLowOrder", err)
	}
	one := [32]byte{1}
	if err := X25519(&out, &k, &one); !errors.Is(err, ErrLowOrder) {
		t.Fatalf("u=1: got %v, want ErrLowOrder", err)
	}
	if IsCanonical(&zero) || IsCanonical(&one) {
		t.Fatal("low-order points must not be canonical")
	}
	high := [32]byte{9}
	high[31] |= 0x80
	if IsCanonical(&high) {
		t.Fatal("high bit set must not be canonical")
	}
}

func TestWycheproofX25519(t *testing.T) {
	data := wycheproof.Read(t, "x25519_test.json")
	var f struct {
		NumberOfTests int
		TestGroups    []struct {
			Tests []struct {
				TcID                    int
				Public, Private, Shared string
				Result                  string
				Flags                   []string
			}
		}
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	n, lowOrder := 0, 0
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			pub, _ := hex.DecodeString(tc.Public)
			priv, _ := hex.DecodeString(tc.Private)
			if len(pub) != 32 || len(priv) != 32 {
				t.Errorf("tc %d: not 32-byte inputs", tc.TcID)
				continue
			}
			n++
			var p, k, out [32]byte
			copy(p[:], pub)
			copy(k[:], priv)
			err := X25519(&out, &k, &p)
			zero := tc.Shared == "0000000000000000000000000000000000000000000000000000000000000000"
			switch {
			case zero:
				lowOrder++
				if !errors.Is(err, ErrLowOrder) {
					t.Errorf("tc %d: low-order result not rejected", tc.TcID)
				}
			case tc.Result == "invalid":
				// Invalid inputs with a non-zero result: X25519 is defined
				// for them; the caller rejects the all-zero ones only.
			default:
				if err != nil || hex.EncodeToString(out[:]) != tc.Shared {
					t.Errorf("tc %d: got %x %v want %s", tc.TcID, out, err, tc.Shared)
				}
			}
		}
	}
	if n != f.NumberOfTests || n < 500 || lowOrder < 20 {
		t.Fatalf("%d of %d X25519 vectors ran (%d low-order)", n, f.NumberOfTests, lowOrder)
	}
}

// libsignal's own agreement vector (rust/core/src/curve/curve25519.rs,
// test_agreement): key derivation and agreement both match.
func TestLibsignalAgreementVector(t *testing.T) {
	alicePub := [32]byte(mustHex("1bb75966f2e93a3691dfff942bb2a466a1c08b8d78ca3f4d6df8b8bfa2e4ee28"))
	alicePriv := [32]byte(mustHex("c806439dc9d2c476ffed8f2580c0888d58ab406bf7ae3698879021b96bb4bf59"))
	bobPub := [32]byte(mustHex("653614993d2b15ee9e5fd3d86ce719ef4ec1daae1886a87b3f5fa9565a27a22f"))
	bobPriv := [32]byte(mustHex("b03b34c33a1c44f225b662d2bf4859b8135411fa7b0386d45fb75dc5b91b4466"))
	shared := mustHex("325f239328941ced6e673b86ba41017448e99b649a9c3806c1dd7ca4c477e629")
	var pa, pb, s1, s2 [32]byte
	PublicKey(&pa, &alicePriv)
	PublicKey(&pb, &bobPriv)
	if pa != alicePub || pb != bobPub {
		t.Fatal("public keys differ from libsignal's")
	}
	err1 := X25519(&s1, &alicePriv, &bobPub)
	err2 := X25519(&s2, &bobPriv, &alicePub)
	if err1 != nil || err2 != nil || !bytes.Equal(s1[:], shared) || !bytes.Equal(s2[:], shared) {
		t.Fatalf("shared %x / %x (%v %v), want %x", s1, s2, err1, err2, shared)
	}
}

func BenchmarkX25519(b *testing.B) {
	var k, p, out [32]byte
	rand.Read(k[:])
	PublicKey(&p, &k)
	for b.Loop() {
		X25519(&out, &k, &p)
	}
}

func BenchmarkPublicKey(b *testing.B) {
	var k, p [32]byte
	rand.Read(k[:])
	for b.Loop() {
		PublicKey(&p, &k)
	}
}

func BenchmarkIsCanonical(b *testing.B) {
	var k, p [32]byte
	rand.Read(k[:])
	PublicKey(&p, &k)
	for b.Loop() {
		IsCanonical(&p)
	}
}

// isCanonicalEdwards is the reference: dalek's to_edwards(0) followed by
// is_torsion_free ([L]P = O computed as [L-1]P + P), plus the range check.
func isCanonicalEdwards(u *[32]byte) bool {
	if u[31]&0x80 != 0 {
		return false
	}
	var fu field.Element
	if _, err := fu.SetBytes(u[:]); err != nil || !bytes.Equal(fu.Bytes(), u[:]) {
		return false
	}
	var one, num, den, y field.Element
	one.One()
	num.Subtract(&fu, &one)
	den.Add(&fu, &one)
	if den.Equal(new(field.Element).Zero()) == 1 {
		return false
	}
	y.Multiply(&num, den.Invert(&den))
	p, err := new(edwards25519.Point).SetBytes(y.Bytes())
	if err != nil {
		return false
	}
	oneS, _ := edwards25519.NewScalar().SetCanonicalBytes((&[32]byte{1})[:])
	q := new(edwards25519.Point).ScalarMult(edwards25519.NewScalar().Negate(oneS), p)
	q.Add(q, p)
	return q.Equal(edwards25519.NewIdentityPoint()) == 1
}

func TestIsCanonicalMatchesEdwardsReference(t *testing.T) {
	check := func(u [32]byte, what string) {
		t.Helper()
		if got, want := IsCanonical(&u), isCanonicalEdwards(&u); got != want {
			t.Fatalf("%s %x: ladder says %v, Edwards reference says %v", what, u, got, want)
		}
	}
	// Honest public keys: canonical.
	for i := 0; i < 50; i++ {
		var k, p [32]byte
		rand.Read(k[:])
		PublicKey(&p, &k)
		if !IsCanonical(&p) {
			t.Fatalf("public key %x not canonical", p)
		}
		check(p, "public key")
	}
	// Public keys plus a torsion point: not canonical.
	lowOrder := new(edwards25519.Point)
	if _, err := lowOrder.SetBytes(mustHex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")); err != nil {
		t.Fatal(err) // a point of order 8
	}
	if new(edwards25519.Point).MultByCofactor(lowOrder).Equal(edwards25519.NewIdentityPoint()) != 1 {
		t.Fatal("not a low-order point")
	}
	for i := 0; i < 50; i++ {
		var k [32]byte
		rand.Read(k[:])
		s, _ := edwards25519.NewScalar().SetBytesWithClamping(k[:])
		p := new(edwards25519.Point).ScalarBaseMult(s)
		p.Add(p, lowOrder)
		var u [32]byte
		copy(u[:], p.BytesMontgomery())
		if IsCanonical(&u) {
			t.Fatalf("key with a torsion component %x accepted", u)
		}
		check(u, "torsioned key")
	}
	// Arbitrary strings (mostly twist or off-subgroup points).
	for i := 0; i < 300; i++ {
		var u [32]byte
		rand.Read(u[:])
		u[31] &= 0x7f
		check(u, "random")
	}
	// Small values and the edges of the field.
	for _, v := range []uint64{0, 1, 2, 9} {
		var u [32]byte
		u[0] = byte(v)
		check(u, "small")
	}
	p := mustHex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")   // p
	pm1 := mustHex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f") // p-1 = -1
	check([32]byte(p), "p")
	check([32]byte(pm1), "p-1")
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
