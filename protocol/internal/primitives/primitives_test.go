package primitives

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	mrand "math/rand/v2"
	"testing"
)

func TestHMACMatchesStdlib(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	for _, keyLen := range []int{0, 1, 32, 63, 64, 65, 200} {
		for _, msgLen := range []int{0, 1, 255, 256, 257, 1100} {
			key := make([]byte, keyLen)
			msg := make([]byte, msgLen)
			for i := range key {
				key[i] = byte(r.Uint32())
			}
			for i := range msg {
				msg[i] = byte(r.Uint32())
			}
			m := hmac.New(sha256.New, key)
			m.Write(msg)
			want := m.Sum(nil)
			got := HMACSHA256(nil, key, msg[:msgLen/3], msg[msgLen/3:])
			if !bytes.Equal(got, want) {
				t.Errorf("key %d msg %d: %x, want %x", keyLen, msgLen, got, want)
			}
		}
	}
}

func TestHKDFMatchesStdlib(t *testing.T) {
	secret := []byte("input keying material")
	info := []byte("WhisperMessageKeys")
	for _, n := range []int{0, 1, 32, 33, 64, 80, 96, 1000} {
		for _, salt := range [][]byte{nil, {}, make([]byte, 32), []byte("salt"), bytes.Repeat([]byte{7}, 100)} {
			want, err := hkdf.Key(sha256.New, secret, salt, string(info), n)
			if n == 0 {
				want, err = []byte{}, nil
			}
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, n)
			HKDF(got, secret, salt, info)
			if !bytes.Equal(got, want) {
				t.Errorf("n=%d salt=%x: %x, want %x", n, salt, got, want)
			}
		}
	}
	// A nil salt is libsignal's "no salt": 32 zero bytes.
	a, b := make([]byte, 64), make([]byte, 64)
	HKDF(a, secret, nil, info)
	HKDF(b, secret, make([]byte, 32), info)
	if !bytes.Equal(a, b) {
		t.Error("nil salt differs from 32 zero bytes")
	}
}

func TestCBCRoundTripAndAppend(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	iv := bytes.Repeat([]byte{2}, 16)
	for n := 0; n <= 48; n++ {
		pt := bytes.Repeat([]byte{byte(n)}, n)
		ct, err := EncryptCBC([]byte("hdr"), key, iv, pt)
		if err != nil {
			t.Fatal(err)
		}
		wantLen := 3 + (n/16+1)*16
		if len(ct) != wantLen || string(ct[:3]) != "hdr" {
			t.Fatalf("n=%d: len %d, want %d", n, len(ct), wantLen)
		}
		back, err := DecryptCBC([]byte("hdr"), key, iv, ct[3:])
		if err != nil || !bytes.Equal(back[3:], pt) || string(back[:3]) != "hdr" {
			t.Fatalf("n=%d: %x, %v", n, back, err)
		}
		// In place: dst[len(dst):] starts exactly at the input.
		buf := make([]byte, 0, n+16)
		buf = append(buf, pt...)
		inPlace, err := EncryptCBC(buf[:0], key, iv, buf)
		if err != nil || !bytes.Equal(inPlace, ct[3:]) {
			t.Fatalf("n=%d: in-place encrypt differs: %v", n, err)
		}
		plain, err := DecryptCBC(inPlace[:0], key, iv, inPlace)
		if err != nil || !bytes.Equal(plain, pt) {
			t.Fatalf("n=%d: in-place decrypt: %x, %v", n, plain, err)
		}
	}
}

func TestCBCErrors(t *testing.T) {
	key := make([]byte, 32)
	iv := make([]byte, 16)
	for _, k := range []int{0, 15, 17, 31, 33, 64} {
		if _, err := EncryptCBC(nil, make([]byte, k), iv, nil); !errors.Is(err, ErrKeySize) {
			t.Errorf("key %d: encrypt err = %v", k, err)
		}
		if _, err := DecryptCBC(nil, make([]byte, k), iv, make([]byte, 16)); !errors.Is(err, ErrKeySize) {
			t.Errorf("key %d: decrypt err = %v", k, err)
		}
	}
	for _, n := range []int{0, 15, 17} {
		if _, err := EncryptCBC(nil, key, make([]byte, n), nil); !errors.Is(err, ErrKeySize) {
			t.Errorf("iv %d: err = %v", n, err)
		}
	}
	for _, n := range []int{0, 1, 15, 17, 31} {
		if _, err := DecryptCBC(nil, key, iv, make([]byte, n)); !errors.Is(err, ErrDecrypt) {
			t.Errorf("ciphertext %d: err = %v", n, err)
		}
	}
	// Every wrong final padding byte is refused, and the spare capacity of dst is cleared.
	ct, _ := EncryptCBC(nil, key, iv, []byte("0123456789abcdef0123456789abc")) // 3 bytes of padding
	for delta := 1; delta < 256; delta++ {
		bad := bytes.Clone(ct)
		bad[len(bad)-16-1] ^= byte(delta) // flips the last plaintext byte through CBC
		dst := make([]byte, 0, 64)
		out, err := DecryptCBC(dst, key, iv, bad)
		last := byte(3) ^ byte(delta)
		if last == 1 { // padding 0x01 is valid
			if err != nil || len(out) != 31 {
				t.Errorf("delta %d: %v %d", delta, err, len(out))
			}
			continue
		}
		if !errors.Is(err, ErrDecrypt) || out != nil {
			t.Errorf("delta %d: err = %v", delta, err)
		}
		if !bytes.Equal(dst[:32], make([]byte, 32)) {
			t.Errorf("delta %d: plaintext left in dst's capacity", delta)
		}
	}
}

func TestAllocations(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts are a measurement; not under -short or -race")
	}
	key := make([]byte, 32)
	var out [80]byte
	var tag [32]byte
	if n := testing.AllocsPerRun(100, func() { HKDF(out[:], key, nil, key) }); n > 0 {
		t.Errorf("HKDF: %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() { HMACSHA256(tag[:0], key, key, key) }); n > 0 {
		t.Errorf("HMACSHA256: %v allocations", n)
	}
}

func FuzzDecryptCBC(f *testing.F) {
	key := bytes.Repeat([]byte{0x42}, 32)
	iv := bytes.Repeat([]byte{0x24}, 16)
	for _, s := range []string{"", "a", "0123456789abcdef", "a longer message that spans blocks"} {
		ct, _ := EncryptCBC(nil, key, iv, []byte(s))
		f.Add(ct, []byte(s))
	}
	f.Fuzz(func(t *testing.T, ct, pt []byte) {
		if out, err := DecryptCBC(nil, key, iv, ct); err != nil {
			if !errors.Is(err, ErrDecrypt) || out != nil {
				t.Fatalf("err %v, out %x", err, out)
			}
		} else if len(out) > len(ct)-1 || len(ct)-len(out) > 16 {
			t.Fatalf("bad plaintext length %d for %d", len(out), len(ct))
		}
		ct2, err := EncryptCBC(nil, key, iv, pt)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecryptCBC(nil, key, iv, ct2)
		if err != nil || !bytes.Equal(back, pt) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

var sink []byte

func BenchmarkCBC1KiB(b *testing.B) {
	key := make([]byte, 32)
	iv := make([]byte, 16)
	pt := make([]byte, 1024)
	ct := make([]byte, 0, 1040)
	out := make([]byte, 0, 1040)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		ct, _ = EncryptCBC(ct[:0], key, iv, pt)
		out, _ = DecryptCBC(out[:0], key, iv, ct)
	}
	sink = out
}

func BenchmarkHMACSHA256(b *testing.B) {
	key := make([]byte, 32)
	for _, n := range []int{1, 1100} {
		msg := make([]byte, n)
		b.Run(map[int]string{1: "1B", 1100: "1100B"}[n], func(b *testing.B) {
			var tag [32]byte
			b.ReportAllocs()
			for b.Loop() {
				HMACSHA256(tag[:0], key, msg)
			}
		})
	}
}

func BenchmarkHMACStdlib1B(b *testing.B) {
	key := make([]byte, 32)
	var tag [32]byte
	b.ReportAllocs()
	for b.Loop() {
		m := hmac.New(sha256.New, key)
		m.Write([]byte{1})
		m.Sum(tag[:0])
	}
}

func BenchmarkHKDF80(b *testing.B) {
	secret := make([]byte, 32)
	info := []byte("WhisperMessageKeys")
	var out [80]byte
	b.ReportAllocs()
	for b.Loop() {
		HKDF(out[:], secret, nil, info)
	}
}

func BenchmarkHKDFStdlib80(b *testing.B) {
	secret := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		sink, _ = hkdf.Key(sha256.New, secret, nil, "WhisperMessageKeys", 80)
	}
}

// BenchmarkMessage1KiB is the primitive floor of one Signal message sent and received: on each
// side two chain-key HMACs, the message-key HKDF, AES-256-CBC and the MAC over
// identities ‖ version ‖ body. The ratchet's own benchmarks should come close to it.
func BenchmarkMessage1KiB(b *testing.B) {
	chain := make([]byte, 32)
	ids := make([]byte, 66)
	pt := make([]byte, 1024)
	ct := make([]byte, 0, 1100)
	out := make([]byte, 0, 1100)
	var seed, next, tag, tag2 [32]byte
	var keys [80]byte
	info := []byte("WhisperMessageKeys")
	side := func() {
		HMACSHA256(seed[:0], chain, []byte{1})
		HMACSHA256(next[:0], chain, []byte{2})
		HKDF(keys[:], seed[:], nil, info)
	}
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		side()
		ct, _ = EncryptCBC(ct[:0], keys[:32], keys[64:], pt)
		HMACSHA256(tag[:0], keys[32:64], ids, []byte{0x44}, ct)
		side()
		HMACSHA256(tag2[:0], keys[32:64], ids, []byte{0x44}, ct)
		if !hmac.Equal(tag[:8], tag2[:8]) {
			b.Fatal("MAC")
		}
		out, _ = DecryptCBC(out[:0], keys[:32], keys[64:], ct)
	}
}
