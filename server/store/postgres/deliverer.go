package postgres

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/internal/rules"
)

// Sends are batched. A send's own work in the database is a few index
// lookups and inserts; the round trip, the function call and above all
// the commit around it cost as much again. Concurrent Deliver calls
// therefore hand their sends to a few deliverer goroutines, each of which
// takes every send waiting and stores them with one call of
// veil_deliver_many (migration 0005): one round trip, one transaction,
// one commit. Sends arriving meanwhile wait for the next batch. If a batch
// fails as a whole, each of its sends is retried alone (deliverOne), so
// one send's error never becomes another's.

const (
	// deliverWorkers is how many batches may be in flight at once.
	deliverWorkers = 2
	// maxDeliverBatch bounds the sends in one batch.
	maxDeliverBatch = 64
	// deliverTimeout bounds one batch's call.
	deliverTimeout = 30 * time.Second
)

type deliverReq struct {
	snd  *store.Send
	rows []deliverRow
	done chan deliverAns
}

type deliverAns struct {
	res   store.SendResult
	err   error
	retry bool // the batch failed: store this send alone
}

// Deliver implements [store.Store]; see above for how sends are batched.
// A repeat is reported as Duplicate even if the device list changed
// since, so a retried send always learns it was accepted. A caller whose
// context ends while its send waits in a batch still waits for the
// batch: the send may have been stored.
func (s *Store) Deliver(ctx context.Context, snd store.Send) (store.SendResult, error) {
	if err := rules.ValidateSend(&snd); err != nil {
		return store.SendResult{}, err
	}
	if s.closed.Load() {
		return store.SendResult{}, store.ErrClosed
	}
	r := &deliverReq{snd: &snd, done: make(chan deliverAns, 1)}
	select {
	case s.sends <- r:
	case <-s.quit:
		return store.SendResult{}, store.ErrClosed
	case <-ctx.Done():
		return store.SendResult{}, fmt.Errorf("store/postgres: %w", ctx.Err())
	}
	a := <-r.done
	if a.retry {
		return s.deliverOne(ctx, &snd)
	}
	return a.res, a.err
}

// deliverer runs batches until the store closes.
func (s *Store) deliverer(wg *sync.WaitGroup) {
	defer wg.Done()
	var batch []*deliverReq
	for {
		select {
		case r := <-s.sends:
			batch = append(batch[:0], r)
		case <-s.quit:
			return
		}
	fill:
		for len(batch) < maxDeliverBatch {
			select {
			case r := <-s.sends:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.deliverBatch(batch)
		clear(batch)
	}
}

// deliverBatch stores batch with one call of veil_deliver_many and
// answers every request.
func (s *Store) deliverBatch(batch []*deliverReq) {
	// One lock order for every batch: by recipient (then device, inside
	// veil_deliver).
	slices.SortStableFunc(batch, func(a, b *deliverReq) int {
		return bytes.Compare(a.snd.Recipient[:], b.snd.Recipient[:])
	})
	n := len(batch)
	recips, mids, keys := make([][16]byte, n), make([][]byte, n), make([][]byte, n)
	minutes, excludes := make([]int64, n), make([]int64, n)
	senders, senderDevs := make([]pgtype.UUID, n), make([]pgtype.Int8, n)
	maxQueues, counts := make([]int32, n), make([]int32, n)
	var devs, regs []int64
	var types []int16
	var contents [][]byte
	for i, r := range batch {
		snd := r.snd
		recips[i], mids[i] = uid(snd.Recipient), snd.MessageID[:]
		keys[i], minutes[i] = rules.DedupKey(snd.Recipient, snd.MessageID), rules.Minute(snd.Now)
		excludes[i], maxQueues[i], counts[i] = int64(snd.ExcludeDevice), int32(snd.MaxQueue), int32(len(snd.Envelopes))
		if snd.Sender != (store.AccountID{}) {
			senders[i] = pgtype.UUID{Bytes: snd.Sender, Valid: true}
			senderDevs[i] = pgtype.Int8{Int64: int64(snd.SenderDevice), Valid: true}
		}
		for _, e := range snd.Envelopes {
			devs, regs = append(devs, int64(e.DeviceID)), append(regs, int64(e.RegistrationID))
			types, contents = append(types, int16(e.Type)), append(contents, e.Content)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), deliverTimeout)
	defer cancel()
	err := func() error {
		rows, err := s.pool.Query(ctx, `SELECT o_send, o_status, o_device, o_reg, o_seq FROM veil_deliver_many(
			$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
			recips, mids, keys, minutes, senders, senderDevs, excludes, maxQueues, counts, devs, regs, types, contents)
		if err != nil {
			return err
		}
		var i int32
		var o deliverRow
		_, err = pgx.ForEachRow(rows, []any{&i, &o.status, &o.dev, &o.reg, &o.seq}, func() error {
			if i < 1 || int(i) > n {
				return fmt.Errorf("store/postgres: veil_deliver_many returned send %d of %d", i, n)
			}
			batch[i-1].rows = append(batch[i-1].rows, o)
			o = deliverRow{}
			return nil
		})
		return err
	}()
	for _, r := range batch {
		if err != nil {
			r.done <- deliverAns{retry: true}
			continue
		}
		res, rerr := deliverResult(r.snd, r.rows)
		r.done <- deliverAns{res: res, err: rerr}
	}
}
