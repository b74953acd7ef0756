package client

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/client/internal/converge"
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

// BenchmarkHistoryTransfer measures handing 100,000 messages to a newly
// linked device end to end: export and encrypt on the old device, upload
// to a real server (SQLite), download, decrypt and import in one
// transaction on the new one (target ≥ 20,000 messages/s).
func BenchmarkHistoryTransfer(b *testing.B) {
	const n = 100_000
	ts := startServer(b, "sqlite")
	alice, _ := register(b, ts, "alice")
	ctx := context.Background()
	peers := []string{"11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222", "33333333-3333-4333-8333-333333333333"}
	err := alice.store.Update(ctx, func(tx *devicestore.Tx) error {
		for i := 0; i < n; i++ {
			id := make([]byte, 16)
			binary.BigEndian.PutUint64(id, uint64(i))
			peer := peers[i%len(peers)]
			_, err := tx.ImportMessage(ctx, devicestore.HistoryMessage{Peer: peer, Message: devicestore.Message{
				Sender: peer, SenderDevice: 1, MessageID: id, SentAt: time.UnixMilli(int64(i)), ReceivedAt: time.UnixMilli(int64(i)),
				Body: []byte(fmt.Sprintf("message %d with about a hundred bytes of text, which is a typical chat message size today…", i))},
				BodyStamp: converge.Stamp{Time: int64(i), Origin: peer + ".1"}})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		alice2, _ := linkDevice(b, ts, alice)
		b.StartTimer()
		id, key, err := alice.sendHistory(ctx)
		if err != nil {
			b.Fatal(err)
		}
		got, err := alice2.receiveHistory(ctx, id, key)
		if err != nil || got != n {
			b.Fatalf("imported %d of %d: %v", got, n, err)
		}
		b.StopTimer()
		alice2.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkFanOut measures one Send to a recipient with 6 devices from a
// sender with 6 (so 6 envelopes to the recipient and 5 sync transcripts
// to the sender's other devices), through a real server on SQLite, with
// sessions established: encrypt 11 times, two committed sends.
func BenchmarkFanOut(b *testing.B) {
	ts := startServer(b, "sqlite")
	alice, _ := register(b, ts, "alice")
	bob, _ := register(b, ts, "bob")
	for i := 0; i < 5; i++ {
		linkDevice(b, ts, alice)
		linkDevice(b, ts, bob)
	}
	bn := bob.Self().Username
	mustSend(b, alice, bn, "warm-up: sessions with every device")
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := alice.Send(ctx, bn, "a message of about a hundred bytes, to every device of the recipient and to our own."); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(11, "envelopes/op")
}
