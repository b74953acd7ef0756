package interop

import (
	"slices"
	"testing"
)

// The libsignal figures Veil's own protocol benchmarks are compared with.
// Each iteration runs a batch of n inside Node; the reported msgs/s is the
// median over iterations, and ns/op is rewritten to nanoseconds per message
// (or per session setup) so it reads like a Go benchmark.
func benchLibsignal(b *testing.B, op string, n, size int) {
	p := Start(b)
	var rates []float64
	for b.Loop() {
		r, err := p.Bench(op, n, size)
		if err != nil {
			b.Fatal(err)
		}
		rates = append(rates, r)
	}
	slices.Sort(rates)
	med := rates[len(rates)/2]
	b.ReportMetric(med, "msgs/s")
	b.ReportMetric(1e9/med, "ns/op")
}

func BenchmarkLibsignalSetup(b *testing.B)           { benchLibsignal(b, BenchSetup, 100, 1024) }
func BenchmarkLibsignalSameChain1KiB(b *testing.B)   { benchLibsignal(b, BenchSameChain, 1000, 1024) }
func BenchmarkLibsignalAlternating1KiB(b *testing.B) { benchLibsignal(b, BenchAlternating, 500, 1024) }
func BenchmarkLibsignalSealedV1KiB(b *testing.B)     { benchLibsignal(b, BenchSealedV1, 300, 1024) }
