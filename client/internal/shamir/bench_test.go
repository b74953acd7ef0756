package shamir

import (
	"crypto/rand"
	"testing"
)

func BenchmarkSplit32Bytes3of5(b *testing.B) {
	secret := make([]byte, 32)
	for b.Loop() {
		if _, err := Split(secret, 3, 5, rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCombine32Bytes3of5(b *testing.B) {
	shares, _ := Split(make([]byte, 32), 3, 5, rand.Reader)
	for b.Loop() {
		if _, err := Combine(shares[:3]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseShare32Bytes(b *testing.B) {
	shares, _ := Split(make([]byte, 32), 3, 5, rand.Reader)
	text := shares[0].Encode()
	for b.Loop() {
		if _, err := ParseShare(text); err != nil {
			b.Fatal(err)
		}
	}
}
