package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/internal/rules"
)

// Sends are batched. A send's own work in the database is a few index
// lookups and inserts; the round trips, the statements' start-up and
// above all the commit around them cost as much again. Concurrent
// Deliver calls therefore hand their sends to a few deliverer goroutines,
// each of which takes every send waiting and stores them together
// (storeSends): one transaction, the same few statements whatever the
// number of sends, one commit. Sends arriving meanwhile wait for the next
// batch. If a batch fails as a whole, each of its sends is retried alone
// (deliverOne), so one send's error never becomes another's.
//
// The SQL functions veil_deliver and veil_deliver_many (migrations
// 0002–0005) did this before, one function call per send; they stay
// in the schema for nodes of earlier versions during a rolling upgrade.

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

// deliverBatch stores batch in one transaction (storeSends) and answers
// every request; if the transaction fails as a whole, each send is
// retried alone.
func (s *Store) deliverBatch(batch []*deliverReq) {
	sends := make([]*store.Send, len(batch))
	for i, r := range batch {
		sends[i] = r.snd
	}
	ctx, cancel := context.WithTimeout(context.Background(), deliverTimeout)
	defer cancel()
	answers, err := s.storeSends(ctx, sends)
	for i, r := range batch {
		if err != nil {
			r.done <- deliverAns{retry: true}
			continue
		}
		r.done <- answers[i]
	}
}

// deliverOne stores one send on its own (a batch that failed as a whole
// is retried this way, so one send's error never becomes another's).
func (s *Store) deliverOne(ctx context.Context, snd *store.Send) (store.SendResult, error) {
	answers, err := s.storeSends(ctx, []*store.Send{snd})
	if err != nil {
		return store.SendResult{}, s.translate(ctx, err)
	}
	return answers[0].res, answers[0].err
}

// devKey names one device of one account.
type devKey struct {
	acc store.AccountID
	dev uint32
}

// devState is what a batch knows about one recipient device.
type devState struct {
	last  int64 // last seq assigned, counting this batch's
	added int   // envelopes this batch queues for it
	first int64 // first seq this batch assigned (0: none)
	// The queued envelopes in the database, read once and only when a
	// queue bound is near (dbRead).
	dbRead  bool
	dbFirst int64 // 0: none queued
	dbCount int   // counted up to the bound
}

// storeSends stores sends in one transaction, in the order given, with
// exactly the checks and results of storing them one after another: a
// repeated message id (also within the batch) is a duplicate, then an
// unknown recipient, a device-list mismatch and a full queue refuse only
// their own send. It costs a fixed number of statements per batch, not
// per send:
//
//  1. Lock the device rows of every recipient, in one global order
//     (account, device: uuid order is byte order, the same in every
//     batch, so two batches cannot deadlock), and read them; a locked row
//     is read in its latest committed version, so last_seq is current.
//  2. Look up the batch's idempotency keys, after the locks (a new
//     snapshot: it sees what a send that held a lock before us committed).
//  3. Decide each send in Go (rules.CheckDevices, seqs from last_seq).
//  4. Insert the idempotency records, move last_seq and insert the
//     envelopes: three statements sent together, then the commit.
//
// An error fails every send (nothing is stored); answers are per send.
func (s *Store) storeSends(ctx context.Context, sends []*store.Send) ([]deliverAns, error) {
	recips := make([][16]byte, 0, len(sends))
	keys := make([][]byte, len(sends))
	for i, snd := range sends {
		recips = append(recips, uid(snd.Recipient))
		keys[i] = rules.DedupKey(snd.Recipient, snd.MessageID)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	devs := map[devKey]*devState{}
	lists := map[store.AccountID][]rules.DeviceReg{}
	seen := map[string]bool{}
	var b pgx.Batch
	b.Queue(`SELECT account_id, device_id, registration_id, last_seq FROM devices
		WHERE account_id = ANY ($1) ORDER BY account_id, device_id FOR NO KEY UPDATE`, recips).Query(func(rows pgx.Rows) error {
		var (
			acc      [16]byte
			dev, reg int64
			last     int64
		)
		_, err := pgx.ForEachRow(rows, []any{&acc, &dev, &reg, &last}, func() error {
			devs[devKey{acc, uint32(dev)}] = &devState{last: last}
			lists[acc] = append(lists[acc], rules.DeviceReg{DeviceID: uint32(dev), RegistrationID: uint32(reg)})
			return nil
		})
		return err
	})
	b.Queue(`SELECT key FROM idempotency WHERE key = ANY ($1)`, keys).Query(func(rows pgx.Rows) error {
		var key []byte
		_, err := pgx.ForEachRow(rows, []any{&key}, func() error {
			seen[string(key)] = true
			return nil
		})
		return err
	})
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return nil, err
	}

	var (
		w       deliverWrites
		answers = make([]deliverAns, len(sends))
		exists  map[store.AccountID]bool // accounts without devices, looked up when met
	)
	for i, snd := range sends {
		if seen[string(keys[i])] {
			answers[i].res.Duplicate = true
			continue
		}
		list := lists[snd.Recipient]
		if len(list) == 0 {
			if exists == nil {
				if exists, err = accountsExist(ctx, tx, sends, lists); err != nil {
					return nil, err
				}
			}
			if !exists[snd.Recipient] {
				answers[i].err = store.ErrNotFound
				continue
			}
		}
		if err := rules.CheckDevices(list, snd); err != nil {
			answers[i].err = err
			continue
		}
		full, err := queueFull(ctx, tx, snd, devs)
		if err != nil {
			return nil, err
		}
		if full != 0 {
			answers[i].err = fmt.Errorf("%w: device %d", store.ErrQueueFull, full)
			continue
		}
		seen[string(keys[i])] = true
		answers[i].res.Seqs = w.add(snd, keys[i], devs)
	}
	if err := w.exec(ctx, tx); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return answers, nil
}

// accountsExist reports which recipients without devices exist.
func accountsExist(ctx context.Context, tx pgx.Tx, sends []*store.Send, lists map[store.AccountID][]rules.DeviceReg) (map[store.AccountID]bool, error) {
	var ids [][16]byte
	for _, snd := range sends {
		if len(lists[snd.Recipient]) == 0 {
			ids = append(ids, uid(snd.Recipient))
		}
	}
	out := map[store.AccountID]bool{}
	rows, err := tx.Query(ctx, `SELECT id FROM accounts WHERE id = ANY ($1)`, ids)
	if err != nil {
		return nil, err
	}
	var id [16]byte
	_, err = pgx.ForEachRow(rows, []any{&id}, func() error {
		out[id] = true
		return nil
	})
	return out, err
}

// queueFull returns the first device whose queue the send would take
// past snd.MaxQueue (0: none). A queue never holds more envelopes than
// seqs were ever assigned (last_seq), nor more than the span from its
// first queued seq: only a queue whose span reaches the bound is counted,
// and then at most MaxQueue entries.
func queueFull(ctx context.Context, tx pgx.Tx, snd *store.Send, devs map[devKey]*devState) (uint32, error) {
	if snd.MaxQueue <= 0 {
		return 0, nil
	}
	for _, e := range snd.Envelopes {
		d := devs[devKey{snd.Recipient, e.DeviceID}]
		if d.last < int64(snd.MaxQueue) {
			continue
		}
		if !d.dbRead {
			err := tx.QueryRow(ctx, `SELECT coalesce(min(seq), 0), count(*) FROM (SELECT seq FROM envelopes
				WHERE account_id = $1 AND device_id = $2 ORDER BY seq LIMIT $3) q`,
				uid(snd.Recipient), e.DeviceID, snd.MaxQueue).Scan(&d.dbFirst, &d.dbCount)
			if err != nil {
				return 0, err
			}
			d.dbRead = true
		}
		first := d.dbFirst
		if first == 0 {
			first = d.first
		}
		if first == 0 || d.last+1-first < int64(snd.MaxQueue) {
			continue
		}
		if d.dbCount+d.added >= snd.MaxQueue {
			return e.DeviceID, nil
		}
	}
	return 0, nil
}

// deliverWrites collects a batch's rows, column by column, for the
// three statements that store them.
type deliverWrites struct {
	keys       [][]byte // idempotency
	minutes    []int64
	accs       [][16]byte // envelopes
	devs, seqs []int64
	mids       [][]byte
	types      []int16
	senders    []pgtype.UUID
	senderDevs []pgtype.Int8
	envMinutes []int64
	contents   [][]byte
	moved      map[devKey]*devState // devices whose last_seq moves
}

// add assigns snd's seqs from the batch's view of each device and
// records its rows.
func (w *deliverWrites) add(snd *store.Send, key []byte, devs map[devKey]*devState) []int64 {
	minute := rules.Minute(snd.Now)
	w.keys, w.minutes = append(w.keys, key), append(w.minutes, minute)
	var sender pgtype.UUID
	var senderDev pgtype.Int8
	if snd.Sender != (store.AccountID{}) {
		sender = pgtype.UUID{Bytes: snd.Sender, Valid: true}
		senderDev = pgtype.Int8{Int64: int64(snd.SenderDevice), Valid: true}
	}
	if w.moved == nil {
		w.moved = map[devKey]*devState{}
	}
	seqs := make([]int64, len(snd.Envelopes))
	for i, e := range snd.Envelopes {
		k := devKey{snd.Recipient, e.DeviceID}
		d := devs[k]
		d.last++
		d.added++
		if d.first == 0 {
			d.first = d.last
		}
		seqs[i] = d.last
		w.moved[k] = d
		w.accs, w.devs, w.seqs = append(w.accs, uid(snd.Recipient)), append(w.devs, int64(e.DeviceID)), append(w.seqs, d.last)
		w.mids, w.types, w.contents = append(w.mids, snd.MessageID[:]), append(w.types, int16(e.Type)), append(w.contents, e.Content)
		w.senders, w.senderDevs, w.envMinutes = append(w.senders, sender), append(w.senderDevs, senderDev), append(w.envMinutes, minute)
	}
	return seqs
}

// exec runs the batch's three statements in one round trip. A key that
// is already stored (which the checks above rule out) fails the batch
// rather than being skipped.
func (w *deliverWrites) exec(ctx context.Context, tx pgx.Tx) error {
	if len(w.keys) == 0 {
		return nil
	}
	accs, devs, lasts := make([][16]byte, 0, len(w.moved)), make([]int64, 0, len(w.moved)), make([]int64, 0, len(w.moved))
	for k, d := range w.moved {
		accs, devs, lasts = append(accs, uid(k.acc)), append(devs, int64(k.dev)), append(lasts, d.last)
	}
	var b pgx.Batch
	b.Queue(`INSERT INTO idempotency (key, created_minute) SELECT * FROM unnest($1::bytea[], $2::bigint[])`, w.keys, w.minutes)
	b.Queue(`UPDATE devices d SET last_seq = v.last FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS v(acc, dev, last)
		WHERE d.account_id = v.acc AND d.device_id = v.dev`, accs, devs, lasts)
	b.Queue(`INSERT INTO envelopes (account_id, device_id, seq, message_id, type, sender_id, sender_device, received_minute, content)
		SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bytea[], $5::smallint[], $6::uuid[], $7::bigint[], $8::bigint[], $9::bytea[])`,
		w.accs, w.devs, w.seqs, w.mids, w.types, w.senders, w.senderDevs, w.envMinutes, w.contents)
	return tx.SendBatch(ctx, &b).Close()
}
