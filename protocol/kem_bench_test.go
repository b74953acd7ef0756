package protocol

import (
	"crypto/rand"
	"testing"
)

// Kyber1024 costs, quoted in docs/BENCHMARKS.md's breakdown of a session
// setup (one encapsulation by the initiator, one decapsulation by the
// responder).
func BenchmarkKyberEncapsulate(b *testing.B) {
	kp, err := GenerateKEMKeyPair(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := kp.Public.encapsulate(rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkKyberDecapsulate(b *testing.B) {
	kp, err := GenerateKEMKeyPair(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	ct, ss, err := kp.Public.encapsulate(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	got, err := kp.Private.decapsulate(ct)
	if err != nil || string(got) != string(ss) {
		b.Fatal("decapsulation does not recover the shared secret")
	}
	for b.Loop() {
		if _, err := kp.Private.decapsulate(ct); err != nil {
			b.Fatal(err)
		}
	}
}
