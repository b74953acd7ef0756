package curve

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
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

// wycheproofDir finds ../shared/testdata/wycheproof from the module root.
func wycheproofDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("VEIL_WYCHEPROOF"); d != "" {
		return d
	}
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared", "testdata", "wycheproof")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func TestWycheproofX25519(t *testing.T) {
	path := filepath.Join(wycheproofDir(t), "x25519_test.json")
	data, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Wycheproof vectors are required in CI: %v", err)
		}
		t.Skipf("SKIPPING Wycheproof X25519 vectors: %v (set VEIL_WYCHEPROOF)", err)
	}
	var f struct {
		TestGroups []struct {
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
	n := 0
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			pub, _ := hex.DecodeString(tc.Public)
			priv, _ := hex.DecodeString(tc.Private)
			if len(pub) != 32 || len(priv) != 32 {
				continue // wrong-length inputs are rejected by the callers' types
			}
			n++
			var p, k, out [32]byte
			copy(p[:], pub)
			copy(k[:], priv)
			err := X25519(&out, &k, &p)
			zero := tc.Shared == "0000000000000000000000000000000000000000000000000000000000000000"
			switch {
			case zero:
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
	if n < 400 {
		t.Fatalf("only %d X25519 vectors ran", n)
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
