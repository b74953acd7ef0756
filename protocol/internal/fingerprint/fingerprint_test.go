package fingerprint

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// Vectors from libsignal's rust/protocol/src/fingerprint.rs tests (testVectorsVersion1/2 in
// libsignal-protocol-java): E.164 stable identifiers, 5200 iterations.
const (
	aliceIdentity    = "0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868"
	bobIdentity      = "05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b"
	aliceStableID    = "+14152222222"
	bobStableID      = "+14153333333"
	displayableV1    = "300354477692869396892869876765458257569162576843440918079131"
	aliceScannableV1 = "080112220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df1a220a20d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d"
	bobScannableV1   = "080112220a20d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d1a220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df"
	aliceScannableV2 = "080212220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df1a220a20d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d"
	bobScannableV2   = "080212220a20d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d1a220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLibsignalVectors(t *testing.T) {
	a, b := unhex(t, aliceIdentity), unhex(t, bobIdentity)
	for _, tc := range []struct {
		version            uint32
		aliceScan, bobScan string
	}{{1, aliceScannableV1, bobScannableV1}, {2, aliceScannableV2, bobScannableV2}} {
		af, err := New(tc.version, DefaultIterations, []byte(aliceStableID), a, []byte(bobStableID), b)
		if err != nil {
			t.Fatal(err)
		}
		bf, err := New(tc.version, DefaultIterations, []byte(bobStableID), b, []byte(aliceStableID), a)
		if err != nil {
			t.Fatal(err)
		}
		// The displayable number does not depend on the version.
		if af.Displayable != displayableV1 || bf.Displayable != displayableV1 {
			t.Errorf("v%d displayable: %s / %s, want %s", tc.version, af.Displayable, bf.Displayable, displayableV1)
		}
		if got := hex.EncodeToString(af.Scannable); got != tc.aliceScan {
			t.Errorf("v%d alice scannable: %s", tc.version, got)
		}
		if got := hex.EncodeToString(bf.Scannable); got != tc.bobScan {
			t.Errorf("v%d bob scannable: %s", tc.version, got)
		}
		for _, pair := range [][2][]byte{{af.Scannable, bf.Scannable}, {bf.Scannable, af.Scannable}} {
			if ok, err := CompareScannable(pair[0], pair[1]); !ok || err != nil {
				t.Errorf("v%d: peers do not match: %v", tc.version, err)
			}
		}
		// Scanning one's own code is not a match (libsignal checks this too).
		if ok, err := CompareScannable(af.Scannable, af.Scannable); ok || err != nil {
			t.Errorf("v%d: own code matched: %v", tc.version, err)
		}
	}
}

func TestEncodingShape(t *testing.T) {
	l := bytes.Repeat([]byte{0x12}, 32)
	r := bytes.Repeat([]byte{0xBA}, 32)
	want := "080212220a20" + strings.Repeat("12", 32) + "1a220a20" + strings.Repeat("ba", 32)
	if got := hex.EncodeToString(encodeScannable(nil, 2, l, r)); got != want {
		t.Errorf("encoding %s, want %s", got, want)
	}
}

func randomKey(t *testing.T) []byte {
	k := make([]byte, 33)
	rand.Read(k)
	k[0] = 0x05
	return k
}

func TestMismatches(t *testing.T) {
	a, b, m := randomKey(t), randomKey(t), randomKey(t)
	const it = 1024
	af, _ := New(2, it, []byte(aliceStableID), a, []byte(bobStableID), b)
	bf, _ := New(2, it, []byte(bobStableID), b, []byte(aliceStableID), a)
	if af.Displayable != bf.Displayable || len(af.Displayable) != 60 {
		t.Fatalf("displayables differ: %s %s", af.Displayable, bf.Displayable)
	}
	for _, c := range []byte(af.Displayable) {
		if c < '0' || c > '9' {
			t.Fatalf("non-digit in %q", af.Displayable)
		}
	}
	// A man in the middle: Alice sees M's key for Bob.
	mitm, _ := New(2, it, []byte(aliceStableID), a, []byte(bobStableID), m)
	// A wrong identifier for Alice.
	wrongID, _ := New(2, it, []byte("+141512222222"), a, []byte(bobStableID), b)
	for name, f := range map[string]Fingerprint{"mitm": mitm, "identifier": wrongID} {
		if f.Displayable == bf.Displayable {
			t.Errorf("%s: displayable numbers match", name)
		}
		for _, pair := range [][2][]byte{{f.Scannable, bf.Scannable}, {bf.Scannable, f.Scannable}} {
			if ok, err := CompareScannable(pair[0], pair[1]); ok || err != nil {
				t.Errorf("%s: ok=%v err=%v", name, ok, err)
			}
		}
	}
	// Versions: the display is unchanged, the scannable form differs and compares as an error.
	v1, _ := New(1, it, []byte(bobStableID), b, []byte(aliceStableID), a)
	if v1.Displayable != bf.Displayable || bytes.Equal(v1.Scannable, bf.Scannable) {
		t.Error("version changed the display or not the scannable form")
	}
	_, err := CompareScannable(af.Scannable, v1.Scannable)
	var vm *VersionMismatchError
	if !errors.Is(err, ErrVersionMismatch) || !errors.As(err, &vm) || vm.Theirs != 1 || vm.Ours != 2 {
		t.Errorf("version mismatch: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	k := randomKey(t)
	for _, it := range []int{-1, 0, 1, MaxIterations + 1} {
		if _, err := New(2, it, nil, k, nil, k); !errors.Is(err, ErrIterations) {
			t.Errorf("iterations %d: %v", it, err)
		}
	}
	bad := [][]byte{nil, k[:32], append(bytes.Clone(k), 0), append([]byte{0x06}, k[1:]...)}
	for _, key := range bad {
		if _, err := New(2, 2, nil, key, nil, k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("local key %x: %v", key, err)
		}
		if _, err := New(2, 2, nil, k, nil, key); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("remote key %x: %v", key, err)
		}
	}
}

func TestDecoderStrictness(t *testing.T) {
	good := unhex(t, aliceScannableV2)
	if _, err := decodeScannable(good); err != nil {
		t.Fatal(err)
	}
	local := good[6:38]
	remote := good[42:74]
	cat := func(parts ...string) []byte { return unhex(t, strings.Join(parts, "")) }
	L, R := hex.EncodeToString(local), hex.EncodeToString(remote)
	cases := map[string][]byte{
		"empty":             nil,
		"trailing byte":     append(bytes.Clone(good), 0),
		"truncated":         good[:len(good)-1],
		"no version":        cat("12220a20", L, "1a220a20", R),
		"non-minimal ver":   cat("088200", "12220a20", L, "1a220a20", R),
		"version too big":   cat("088080808010", "12220a20", L, "1a220a20", R),
		"swapped fields":    cat("0802", "1a220a20", R, "12220a20", L),
		"duplicate version": cat("0802", "0802", "12220a20", L, "1a220a20", R),
		"duplicate local":   cat("0802", "12220a20", L, "12220a20", L, "1a220a20", R),
		"unknown field":     cat("0802", "12220a20", L, "1a220a20", R, "2000"),
		"unknown inner":     cat("0802", "12240a20", L, "1000", "1a220a20", R),
		"short content":     cat("0802", "12210a1f", L[:62], "1a220a20", R),
		"long content":      cat("0802", "12230a21", L, "00", "1a220a20", R),
		"wrong wire type":   cat("0a0102", "12220a20", L, "1a220a20", R),
		"missing remote":    cat("0802", "12220a20", L),
		"non-minimal len":   cat("0802", "12a2000a20", L, "1a220a20", R),
	}
	for name, in := range cases {
		if _, err := decodeScannable(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v", name, err)
		}
		if ok, err := CompareScannable(good, in); ok || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: compare ok=%v err=%v", name, ok, err)
		}
	}
	if _, err := CompareScannable(nil, good); !errors.Is(err, ErrMalformed) {
		t.Errorf("malformed ours: %v", err)
	}
}

func FuzzDecodeScannable(f *testing.F) {
	f.Add(unhex(f, aliceScannableV2))
	f.Add(unhex(f, bobScannableV1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := decodeScannable(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || s != nil {
				t.Fatalf("err %v", err)
			}
			return
		}
		// One encoding per value: what is accepted re-encodes to the same bytes.
		if re := encodeScannable(nil, s.version, s.local[:], s.remote[:]); !bytes.Equal(re, in) {
			t.Fatalf("accepted %x, re-encodes as %x", in, re)
		}
		if _, err := CompareScannable(in, in); err != nil {
			t.Fatal(err)
		}
	})
}

func BenchmarkNew(b *testing.B) {
	a, k := make([]byte, 33), make([]byte, 33)
	a[0], k[0] = 5, 5
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(ScannableVersion, DefaultIterations, []byte(aliceStableID), a, []byte(bobStableID), k); err != nil {
			b.Fatal(err)
		}
	}
}
