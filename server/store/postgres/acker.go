package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/veil-e2ee/veil/server/store"
)

// Acks are group-committed. Every delivered envelope is acknowledged, so
// acks are as frequent as sends; a DELETE and a commit (a WAL flush) each
// would cost the database about as much as the send. Instead one
// goroutine, the acker, takes every ack waiting, from any device and any
// caller, and deletes them all in one statement, its own transaction;
// acks arriving meanwhile wait for the next round. Each caller hears back
// after the commit that covered its ack.
//
// That commit does not wait for the WAL flush (synchronous_commit=off for
// its transaction only; PostgreSQL's WAL writer flushes within
// wal_writer_delay, 200 ms by default). An ack lost in a crash only
// means its envelope is pushed again after the restart, and the client
// drops the repeat by its message id, as it does for every redelivery.

// maxAckRound bounds the envelopes one DELETE removes.
const maxAckRound = 4096

// ackTimeout bounds one round's statement.
const ackTimeout = 30 * time.Second

type ackReq struct {
	account store.AccountID
	device  uint32
	seqs    []int64
	done    chan error
}

// ack queues one device's acks for the acker and waits for their round.
// Acks are idempotent, so a caller whose context ends while it waits
// still waits for the answer: the round may have deleted its envelopes.
func (s *Store) ack(ctx context.Context, account store.AccountID, deviceID uint32, seqs []int64) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	r := &ackReq{account: account, device: deviceID, seqs: seqs, done: make(chan error, 1)}
	select {
	case s.acks <- r:
	case <-s.quit:
		return store.ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("store/postgres: %w", ctx.Err())
	}
	return <-r.done
}

// acker runs rounds until the store closes.
func (s *Store) acker() {
	defer close(s.ackerDone)
	var round []*ackReq
	var accs [][16]byte
	var devs, seqs []int64
	for {
		var first *ackReq
		select {
		case first = <-s.acks:
		case <-s.quit:
			return
		}
		round = append(round[:0], first)
		n := len(first.seqs)
	fill:
		for n < maxAckRound {
			select {
			case r := <-s.acks:
				round = append(round, r)
				n += len(r.seqs)
			default:
				break fill
			}
		}
		accs, devs, seqs = accs[:0], devs[:0], seqs[:0]
		for _, r := range round {
			for _, q := range r.seqs {
				accs, devs, seqs = append(accs, uid(r.account)), append(devs, int64(r.device)), append(seqs, q)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
		var err error
		for try := 0; try < 3; try++ {
			// A round locks rows of many devices; a concurrent
			// RemoveDevice or Sweep can deadlock with it, and then
			// PostgreSQL aborts one of them: try again.
			var b pgx.Batch
			b.Queue(`SET LOCAL synchronous_commit TO off`)
			b.Queue(`DELETE FROM envelopes e USING unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS a(account_id, device_id, seq)
				WHERE e.account_id = a.account_id AND e.device_id = a.device_id AND e.seq = a.seq`, accs, devs, seqs)
			err = s.pool.SendBatch(ctx, &b).Close()
			if code, _ := pgCode(err); code != codeDeadlock {
				break
			}
		}
		err = s.translate(ctx, err)
		cancel()
		for _, r := range round {
			r.done <- err
		}
		clear(round)
	}
}
