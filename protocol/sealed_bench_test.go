package protocol_test

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/interop"
	"github.com/veil-e2ee/veil/protocol"
	"github.com/veil-e2ee/veil/protocol/internal/sealed"
)

// Sealed sender benchmarks for docs/BENCHMARKS.md:
//
//	go test ./protocol -run '^$' -bench 'Seal' -cpu 1 -count 5

// BenchmarkSealedV1 seals a 1 KiB message over an established session
// (SealedEncrypt) and opens it (SealedDecrypt, certificate validation
// included), as libsignal's sealed_v1 bench op does; "libsignal" runs that
// op in the Node peer in the same run.
func BenchmarkSealedV1(b *testing.B) {
	b.Run("veil", func(b *testing.B) {
		ctx := context.Background()
		alice, bob := sealedPair(b, true)
		cs := newCertSet(b, 1)
		now := time.Now()
		cert := cs.issue(b, alice, now.Add(time.Hour))
		pt := make([]byte, 1024)
		b.SetBytes(1024)
		b.ReportAllocs()
		c0 := cpuTime()
		for b.Loop() {
			body, err := alice.cipher.SealedEncrypt(ctx, bob.addr, cert, pt)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := bob.cipher.SealedDecrypt(ctx, body, cs.root.Public, now, bob.addr); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		// On a busy machine wall time understates the code: also report
		// messages per second of this process's CPU time.
		b.ReportMetric(float64(b.N)/(cpuTime()-c0).Seconds(), "msgs/cpu-s")
	})
	b.Run("libsignal", func(b *testing.B) {
		p := interop.Start(b)
		// One untimed batch first, so Node's JIT has compiled the path.
		if _, err := p.Bench(interop.BenchSealedV1, 300, 1024); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		var rates []float64
		for b.Loop() {
			r, err := p.Bench(interop.BenchSealedV1, 300, 1024)
			if err != nil {
				b.Fatal(err)
			}
			rates = append(rates, r)
		}
		slices.Sort(rates)
		med := rates[len(rates)/2]
		b.ReportMetric(med, "msgs/s")
		b.ReportMetric(1e9/med, "ns/op")
	})
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSealV2_1000 seals a 1 KiB sender-key content once for 1,000
// recipients with one device each (sessions in memory). "warm" is the
// steady state of a group sent to repeatedly, where the sender↔recipient
// identity agreements are cached (one X25519 per recipient); "cold" clears
// that cache before each message (two per recipient, as libsignal always
// does). cpu-ms/msg is the process's CPU time per message, whatever the
// number of cores used.
func BenchmarkSealV2_1000(b *testing.B) {
	ctx := context.Background()
	alice := newDevice(b, newUUID(b))
	var addrs []protocol.Address
	for range 1000 {
		r := newDevice(b, newUUID(b))
		if err := alice.cipher.ProcessPreKeyBundle(ctx, r.addr, r.bundle(b, false)); err != nil {
			b.Fatal(err)
		}
		addrs = append(addrs, r.addr)
	}
	cs := newCertSet(b, 1)
	cert, err := protocol.ParseSenderCertificate(cs.issue(b, alice, time.Now().Add(time.Hour)))
	if err != nil {
		b.Fatal(err)
	}
	u := &protocol.UnidentifiedContent{Type: protocol.SenderKeyMessageType, Contents: make([]byte, 1024), Sender: cert}
	for _, cold := range []bool{false, true} {
		name := "warm"
		if cold {
			name = "cold"
		}
		b.Run(name, func(b *testing.B) {
			if _, err := alice.cipher.SealV2(ctx, addrs, u); err != nil { // warms the cache
				b.Fatal(err)
			}
			var cpu time.Duration
			for b.Loop() {
				if cold {
					b.StopTimer()
					sealed.ForgetStaticAgreements()
					b.StartTimer()
				}
				c0 := cpuTime()
				if _, err := alice.cipher.SealV2(ctx, addrs, u); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - c0
			}
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/msg")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/msg")
		})
	}
}
