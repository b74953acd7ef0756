package protocol_test

import (
	"context"
	"crypto/rand"
	"strconv"
	"testing"

	"github.com/veil-e2ee/veil/protocol"
)

// Benchmarks for docs/BENCHMARKS.md. Each reports messages (or setups)
// per second on one goroutine; run with -cpu 1 for one core:
//
//	go test ./protocol -run '^$' -bench . -benchmem -cpu 1

// BenchmarkSessionSetup: a bundle is processed, the first message is
// encrypted, and the responder decrypts it (PQXDH on both sides). Each
// setup is with a new contact (fresh addresses), as when a user first
// writes to someone.
func BenchmarkSessionSetup(b *testing.B) {
	ctx := context.Background()
	alice, bob := newDevice(b, "alice"), newDevice(b, "bob")
	pt := make([]byte, 1024)
	bundles := make([]*protocol.PreKeyBundle, 0, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if len(bundles) == 0 {
			b.StopTimer()
			for j := 0; j < 64; j++ {
				bundles = append(bundles, bob.bundle(b, true))
			}
			b.StartTimer()
		}
		bundle := bundles[len(bundles)-1]
		bundles = bundles[:len(bundles)-1]
		bobAddr := protocol.Address{Name: "bob" + strconv.Itoa(i), DeviceID: 1}
		aliceAddr := protocol.Address{Name: "alice" + strconv.Itoa(i), DeviceID: 1}
		if err := alice.cipher.ProcessPreKeyBundle(ctx, bobAddr, bundle); err != nil {
			b.Fatal(err)
		}
		ct, err := alice.cipher.Encrypt(ctx, bobAddr, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bob.cipher.Decrypt(ctx, aliceAddr, ct); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "setups/s")
}

func established(b *testing.B) (*device, *device) {
	alice, bob := setup(b, true)
	mustDecrypt(b, bob, alice, mustEncrypt(b, alice, bob, "hello"), "hello")
	mustDecrypt(b, alice, bob, mustEncrypt(b, bob, alice, "hi"), "hi")
	return alice, bob
}

// BenchmarkSameChain1KiB: Alice sends 1 KiB messages that Bob decrypts,
// all on one chain (the common case for a burst of messages).
func BenchmarkSameChain1KiB(b *testing.B) {
	ctx := context.Background()
	alice, bob := established(b)
	pt := make([]byte, 1024)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		ct, err := alice.cipher.Encrypt(ctx, bob.addr, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bob.cipher.Decrypt(ctx, alice.addr, ct); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkAlternating1KiB: the direction changes on every message, so
// every decryption performs a DH ratchet step.
func BenchmarkAlternating1KiB(b *testing.B) {
	ctx := context.Background()
	alice, bob := established(b)
	pt := make([]byte, 1024)
	b.SetBytes(1024)
	b.ReportAllocs()
	from, to := alice, bob
	for b.Loop() {
		ct, err := from.cipher.Encrypt(ctx, to.addr, pt)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := to.cipher.Decrypt(ctx, from.addr, ct); err != nil {
			b.Fatal(err)
		}
		from, to = to, from
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkRecordEncrypt1KiB is the encrypt path alone on a session
// record, without a store: allocations here are the output buffer only.
func BenchmarkRecordEncrypt1KiB(b *testing.B) {
	ctx := context.Background()
	alice, bob := established(b)
	rec, _ := alice.store.LoadSession(ctx, bob.addr)
	st := protocol.NewInMemoryStore(alice.id, alice.regID)
	st.StoreSession(ctx, bob.addr, rec)
	st.SaveIdentity(ctx, bob.addr, bob.id.Public)
	c := protocol.NewCipher(protocol.StoresOf(st), rand.Reader, nil)
	pt := make([]byte, 1024)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Encrypt(ctx, bob.addr, pt); err != nil {
			b.Fatal(err)
		}
	}
}
