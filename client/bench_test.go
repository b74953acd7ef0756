package client

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkReceive measures the client's receive path on one device:
// WebSocket push → decrypt → commit (ratchet state and message in one
// transaction, fsync'd) → ack, against a real server on SQLite. The
// sends that fill the queue are not timed.
func BenchmarkReceive(b *testing.B) {
	ts := startServer(b, "sqlite")
	alice, _ := register(b, ts, "alice")
	bob, _ := register(b, ts, "bob")
	bn := bob.Self().Username
	mustSend(b, alice, bn, "warm-up")
	drain(b, bob)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		const n = 500
		for i := 0; i < n; i++ {
			mustSend(b, alice, bn, fmt.Sprintf("message %d with about a hundred bytes of text, which is a typical chat message size today..", i))
		}
		b.StartTimer()
		got := 0
		for ev, err := range bob.Receive(ctx, ReceiveOptions{Once: true}) {
			if err != nil {
				b.Fatal(err)
			}
			if ev.Kind == EventMessage {
				got++
			}
		}
		if got != n {
			b.Fatalf("received %d of %d", got, n)
		}
		b.ReportMetric(float64(n), "msgs/op")
	}
}
