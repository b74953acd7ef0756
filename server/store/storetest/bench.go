package storetest

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/veil-e2ee/veil/server/store"
)

// Bench measures the mailbox cycle every message goes through: Deliver
// (committed), Pending (read back) and Ack (deleted), with a 1 KiB
// opaque envelope. "serial" is one sender at a time, so each cycle pays
// its own commits; "parallel" runs 32 senders at once, each to its own
// recipient, which is how a server under load calls the store. Both
// report msgs/s (complete cycles per second). "parallel-batched" is
// "parallel" with each device reading 8 envelopes per Pending and
// acknowledging them with one [store.BatchAcker.AckBatch], as a busy
// WebSocket connection can.
func Bench(b *testing.B, open func(b *testing.B) store.Store) {
	b.Run("DeliverPendingAck/serial", func(b *testing.B) { benchCycle(b, open(b), 1, 1) })
	b.Run("DeliverPendingAck/parallel", func(b *testing.B) { benchCycle(b, open(b), 16, 1) })
	b.Run("DeliverPendingAck/parallel-batched", func(b *testing.B) { benchCycle(b, open(b), 16, 8) })
}

func benchCycle(b *testing.B, s store.Store, parallelism, batch int) {
	ba, _ := s.(store.BatchAcker)
	if batch > 1 && ba == nil {
		b.Skip("store does not implement store.BatchAcker")
	}
	ctx := context.Background()
	const recipients = 64
	var accs []store.AccountID
	for i := range recipients {
		id := ID(byte(i + 1))
		if _, err := s.CreateAccount(ctx, store.NewAccount{ID: id, Username: fmt.Sprint("bench", i), IdentityKey: []byte("ik"),
			RegistrationID: 1, CredentialHash: []byte("h"), PreKeys: Upload(1, 1, 0), Now: Epoch}); err != nil {
			b.Fatal(err)
		}
		accs = append(accs, id)
	}
	content := make([]byte, 1024)
	var next, msg atomic.Uint64
	b.SetParallelism(parallelism)
	b.SetBytes(int64(len(content)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		acc := accs[int(next.Add(1)-1)%recipients]
		var unacked int
		var after int64
		flush := func() bool {
			envs, err := s.Pending(ctx, acc, 1, after, batch)
			if err != nil || len(envs) != unacked {
				b.Errorf("Pending: %d envelopes (want %d), %v", len(envs), unacked, err)
				return false
			}
			var acks []int64
			for _, e := range envs {
				acks = append(acks, e.Seq)
			}
			after = acks[len(acks)-1]
			if batch > 1 {
				err = ba.AckBatch(ctx, acc, 1, acks)
			} else {
				err = s.Ack(ctx, acc, 1, acks[0])
			}
			if err != nil {
				b.Error(err)
				return false
			}
			unacked = 0
			return true
		}
		for pb.Next() {
			var id [16]byte
			binary.BigEndian.PutUint64(id[8:], msg.Add(1))
			if _, err := s.Deliver(ctx, store.Send{MessageID: id, Recipient: acc, Now: Epoch,
				Envelopes: []store.OutgoingEnvelope{{DeviceID: 1, RegistrationID: 1, Type: 1, Content: content}}}); err != nil {
				b.Error(err)
				return
			}
			if unacked++; unacked == batch && !flush() {
				return
			}
		}
		if unacked > 0 {
			flush()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
