package protocol_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	"github.com/veil-e2ee/veil/interop"
)

// Sender-key benchmarks. Run both together to compare with libsignal:
//
//	go test ./protocol -run '^$' -bench 'SenderKey' -count 5 -cpu 1
//
// Each reports msgs/s, an encrypt plus its decrypt counting as one message.

// BenchmarkSenderKey1KiB: a sender encrypts 1 KiB and a member decrypts it,
// each through an InMemorySenderKeyStore (records copied in and out).
func BenchmarkSenderKey1KiB(b *testing.B) {
	ctx := context.Background()
	alice, bob := newSKMember("alice"), newSKMember("bob")
	id := newSKDistributionID(b)
	skDistribute(b, alice, id, bob)
	pt := make([]byte, 1024)
	rand.Read(pt)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		m, err := alice.cipher.Encrypt(ctx, alice.addr, id, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bob.cipher.Decrypt(ctx, alice.addr, m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkSenderKeyLibsignal1KiB reports libsignal's figure for the same
// loop (groupEncrypt + groupDecrypt of 1 KiB), timed inside Node by the
// peer's "sender_key" bench operation.
func BenchmarkSenderKeyLibsignal1KiB(b *testing.B) {
	p := interop.Start(b)
	rate, err := p.Bench("sender_key", 2000, 1024)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkEd25519Ceiling measures Go's own crypto/ed25519 signing and
// verification of a 1.1 KB message: one sender-key message costs at
// least one of each (XEdDSA over the same curve), so this is the ceiling
// docs/BENCHMARKS.md quotes for sender keys on a machine.
func BenchmarkEd25519Ceiling(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := make([]byte, 1100)
	sig := ed25519.Sign(priv, msg)
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			ed25519.Sign(priv, msg)
		}
	})
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("does not verify")
			}
		}
	})
}
