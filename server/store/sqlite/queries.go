package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/internal/rules"
)

var _ store.BatchAcker = (*Store)(nil)

const (
	kindEC  = 1 // signed EC prekey / one-time EC prekey
	kindKEM = 2 // last-resort KEM prekey / one-time KEM prekey
)

// CreateAccount implements [store.Store].
func (s *Store) CreateAccount(ctx context.Context, a store.NewAccount) (store.Account, error) {
	if err := rules.ValidateUpload(&a.PreKeys, true); err != nil {
		return store.Account{}, err
	}
	if a.IdentityKey == nil || a.CredentialHash == nil {
		return store.Account{}, fmt.Errorf("%w: identity key and credential hash are required", store.ErrInvalid)
	}
	day := rules.Day(a.Now)
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO accounts (id, username, identity_key, created_day, next_device_id) VALUES (?, ?, ?, ?, 2)`,
			a.ID[:], a.Username, a.IdentityKey, day)
		if isUnique(err) {
			var n int
			if qerr := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE username = ?`, a.Username).Scan(&n); qerr == nil && n > 0 {
				return store.ErrUsernameTaken
			}
			return fmt.Errorf("%w: account id already exists", store.ErrInvalid)
		}
		if err != nil {
			return err
		}
		if err := insertDevice(ctx, tx, a.ID, 1, a.RegistrationID, a.CredentialHash, day); err != nil {
			return err
		}
		return storePreKeys(ctx, tx, a.ID, 1, &a.PreKeys)
	})
	if err != nil {
		return store.Account{}, err
	}
	return store.Account{ID: a.ID, Username: a.Username, IdentityKey: clone(a.IdentityKey), CreatedAt: rules.FromUnix(day)}, nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func insertDevice(ctx context.Context, tx *wtx, acc store.AccountID, id, reg uint32, cred []byte, day int64) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO devices (account_id, device_id, registration_id, credential_hash, created_day, last_seen_day) VALUES (?, ?, ?, ?, ?, ?)`,
		acc[:], id, reg, cred, day, day)
	return err
}

func storePreKeys(ctx context.Context, tx *wtx, acc store.AccountID, dev uint32, up *store.PreKeyUpload) error {
	for kind, k := range map[int]*store.SignedPreKey{kindEC: up.SignedPreKey, kindKEM: up.LastResortKEM} {
		if k == nil {
			continue
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO signed_prekeys (account_id, device_id, kind, key_id, public_key, signature) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (account_id, device_id, kind) DO UPDATE SET key_id = excluded.key_id, public_key = excluded.public_key, signature = excluded.signature`,
			acc[:], dev, kind, k.KeyID, k.PublicKey, k.Signature); err != nil {
			return err
		}
	}
	const ins = `INSERT INTO one_time_prekeys (account_id, device_id, kind, key_id, public_key, signature) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (account_id, device_id, kind, key_id) DO NOTHING`
	for _, k := range up.OneTimeEC {
		if _, err := tx.ExecContext(ctx, ins, acc[:], dev, kindEC, k.KeyID, k.PublicKey, nil); err != nil {
			return err
		}
	}
	for _, k := range up.OneTimeKEM {
		if _, err := tx.ExecContext(ctx, ins, acc[:], dev, kindKEM, k.KeyID, k.PublicKey, k.Signature); err != nil {
			return err
		}
	}
	return nil
}

type rowScanner interface{ Scan(...any) error }

func scanAccount(row rowScanner) (store.Account, error) {
	var a store.Account
	var id []byte
	var day int64
	if err := row.Scan(&id, &a.Username, &a.IdentityKey, &day); err != nil {
		return store.Account{}, err
	}
	copy(a.ID[:], id)
	a.CreatedAt = rules.FromUnix(day)
	return a, nil
}

// Account implements [store.Store].
func (s *Store) Account(ctx context.Context, id store.AccountID) (store.Account, error) {
	r, err := s.reader()
	if err != nil {
		return store.Account{}, err
	}
	a, err := scanAccount(r.queryRow(ctx, `SELECT id, username, identity_key, created_day FROM accounts WHERE id = ?`, id[:]))
	return a, s.translate(ctx, err)
}

// AccountByUsername implements [store.Store].
func (s *Store) AccountByUsername(ctx context.Context, username string) (store.Account, error) {
	r, err := s.reader()
	if err != nil {
		return store.Account{}, err
	}
	a, err := scanAccount(r.queryRow(ctx, `SELECT id, username, identity_key, created_day FROM accounts WHERE username = ?`, username))
	return a, s.translate(ctx, err)
}

const deviceCols = `account_id, device_id, registration_id, credential_hash, created_day, last_seen_day, hold_id IS NOT NULL`

func scanDevice(row rowScanner) (store.Device, error) {
	var d store.Device
	var acc []byte
	var created, seen int64
	if err := row.Scan(&acc, &d.DeviceID, &d.RegistrationID, &d.CredentialHash, &created, &seen, &d.Compliance); err != nil {
		return store.Device{}, err
	}
	copy(d.Account[:], acc)
	d.CreatedAt, d.LastSeen = rules.FromUnix(created), rules.FromUnix(seen)
	return d, nil
}

// Device implements [store.Store].
func (s *Store) Device(ctx context.Context, account store.AccountID, deviceID uint32) (store.Device, error) {
	r, err := s.reader()
	if err != nil {
		return store.Device{}, err
	}
	d, err := scanDevice(r.queryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE account_id = ? AND device_id = ?`, account[:], deviceID))
	return d, s.translate(ctx, err)
}

// Devices implements [store.Store].
func (s *Store) Devices(ctx context.Context, account store.AccountID) ([]store.Device, error) {
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := r.query(ctx, `SELECT `+deviceCols+` FROM devices WHERE account_id = ? ORDER BY device_id`, account[:])
	if err != nil {
		return nil, s.translate(ctx, err)
	}
	defer rows.Close()
	var out []store.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, s.translate(ctx, err)
		}
		out = append(out, d)
	}
	return out, s.translate(ctx, rows.Err())
}

// TouchDevice implements [store.Store]. It writes only when the day
// changed, so it is cheap to call on every connection.
func (s *Store) TouchDevice(ctx context.Context, account store.AccountID, deviceID uint32, now time.Time) error {
	day := rules.Day(now)
	r, err := s.reader()
	if err != nil {
		return err
	}
	var seen int64
	if err := r.queryRow(ctx, `SELECT last_seen_day FROM devices WHERE account_id = ? AND device_id = ?`, account[:], deviceID).Scan(&seen); err != nil {
		return s.translate(ctx, err)
	}
	if seen >= day {
		return nil
	}
	return s.write1(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE devices SET last_seen_day = max(last_seen_day, ?) WHERE account_id = ? AND device_id = ?`, day, account[:], deviceID)
		return mustAffect(res, err)
	})
}

// mustAffect turns "no row changed" into ErrNotFound.
func mustAffect(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// AddDevice implements [store.Store].
func (s *Store) AddDevice(ctx context.Context, account store.AccountID, d store.NewDevice, maxDevices int) (store.Device, error) {
	if err := rules.ValidateUpload(&d.PreKeys, true); err != nil {
		return store.Device{}, err
	}
	if d.CredentialHash == nil {
		return store.Device{}, fmt.Errorf("%w: credential hash is required", store.ErrInvalid)
	}
	day := rules.Day(d.Now)
	var id uint32
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `UPDATE accounts SET next_device_id = next_device_id + 1 WHERE id = ? RETURNING next_device_id - 1`, account[:]).Scan(&id); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM devices WHERE account_id = ? AND hold_id IS NULL`, account[:]).Scan(&n); err != nil {
			return err
		}
		if maxDevices > 0 && n >= maxDevices {
			return store.ErrDeviceLimit
		}
		if err := insertDevice(ctx, tx, account, id, d.RegistrationID, d.CredentialHash, day); err != nil {
			return err
		}
		return storePreKeys(ctx, tx, account, id, &d.PreKeys)
	})
	if err != nil {
		return store.Device{}, err
	}
	return store.Device{Account: account, DeviceID: id, RegistrationID: d.RegistrationID, CredentialHash: clone(d.CredentialHash),
		CreatedAt: rules.FromUnix(day), LastSeen: rules.FromUnix(day)}, nil
}

// RemoveDevice implements [store.Store]; foreign keys cascade the
// deletion to the device's prekeys and envelopes. A legal hold's
// compliance device is refused (ErrInvalid): only LiftHold removes it.
func (s *Store) RemoveDevice(ctx context.Context, account store.AccountID, deviceID uint32) error {
	return s.write1(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE account_id = ? AND device_id = ? AND hold_id IS NULL`, account[:], deviceID)
		if err := mustAffect(res, err); !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var compliance bool
		if err := tx.QueryRowContext(ctx, `SELECT hold_id IS NOT NULL FROM devices WHERE account_id = ? AND device_id = ?`, account[:], deviceID).Scan(&compliance); err != nil {
			return err
		}
		if compliance {
			return fmt.Errorf("%w: device %d is a legal hold's compliance device", store.ErrInvalid, deviceID)
		}
		return store.ErrNotFound
	})
}

// deviceExists is ErrNotFound unless the device exists.
func deviceExists(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, account store.AccountID, deviceID uint32) error {
	var one int
	return q.QueryRowContext(ctx, `SELECT 1 FROM devices WHERE account_id = ? AND device_id = ?`, account[:], deviceID).Scan(&one)
}

// StorePreKeys implements [store.Store].
func (s *Store) StorePreKeys(ctx context.Context, account store.AccountID, deviceID uint32, up store.PreKeyUpload) error {
	if err := rules.ValidateUpload(&up, false); err != nil {
		return err
	}
	return s.write(ctx, func(ctx context.Context, tx *wtx) error {
		if err := deviceExists(ctx, tx, account, deviceID); err != nil {
			return err
		}
		return storePreKeys(ctx, tx, account, deviceID, &up)
	})
}

// PreKeyCounts implements [store.Store].
func (s *Store) PreKeyCounts(ctx context.Context, account store.AccountID, deviceID uint32) (store.PreKeyCounts, error) {
	r, err := s.reader()
	if err != nil {
		return store.PreKeyCounts{}, err
	}
	var c store.PreKeyCounts
	err = r.queryRow(ctx, `SELECT
		(SELECT count(*) FROM one_time_prekeys WHERE account_id = d.account_id AND device_id = d.device_id AND kind = 1),
		(SELECT count(*) FROM one_time_prekeys WHERE account_id = d.account_id AND device_id = d.device_id AND kind = 2)
		FROM devices d WHERE d.account_id = ? AND d.device_id = ?`, account[:], deviceID).Scan(&c.EC, &c.KEM)
	return c, s.translate(ctx, err)
}

// TakeBundles implements [store.Store]. Writes are serialized, so each
// one-time key is deleted by exactly one caller.
func (s *Store) TakeBundles(ctx context.Context, account store.AccountID, deviceID uint32) ([]store.Bundle, error) {
	var out []store.Bundle
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		out = out[:0]
		q := `SELECT device_id, registration_id FROM devices WHERE account_id = ? ORDER BY device_id`
		args := []any{account[:]}
		if deviceID != 0 {
			q = `SELECT device_id, registration_id FROM devices WHERE account_id = ? AND device_id = ?`
			args = append(args, deviceID)
		}
		devs, err := queryDevices(ctx, tx, q, args...)
		if err != nil {
			return err
		}
		if len(devs) == 0 {
			if deviceID != 0 {
				return store.ErrNotFound
			}
			var one int
			return tx.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE id = ?`, account[:]).Scan(&one)
		}
		for _, d := range devs {
			b := store.Bundle{DeviceID: d.DeviceID, RegistrationID: d.RegistrationID}
			rows, err := tx.QueryContext(ctx, `SELECT kind, key_id, public_key, signature FROM signed_prekeys WHERE account_id = ? AND device_id = ?`, account[:], d.DeviceID)
			if err != nil {
				return err
			}
			have := 0
			for rows.Next() {
				var kind int
				var k store.SignedPreKey
				if err := rows.Scan(&kind, &k.KeyID, &k.PublicKey, &k.Signature); err != nil {
					rows.Close()
					return err
				}
				have |= kind
				if kind == kindEC {
					b.SignedPreKey = k
				} else {
					b.KEM, b.KEMIsLastResort = k, true
				}
			}
			if err := rows.Close(); err != nil {
				return err
			}
			if have != kindEC|kindKEM {
				return fmt.Errorf("%w: device %d has no signed prekeys", store.ErrNotFound, d.DeviceID)
			}
			const take = `DELETE FROM one_time_prekeys WHERE seq = (SELECT seq FROM one_time_prekeys
				WHERE account_id = ? AND device_id = ? AND kind = ? ORDER BY seq LIMIT 1) RETURNING key_id, public_key, signature`
			var ec store.PreKey
			var sig []byte
			switch err := tx.QueryRowContext(ctx, take, account[:], d.DeviceID, kindEC).Scan(&ec.KeyID, &ec.PublicKey, &sig); {
			case err == nil:
				b.PreKey = &ec
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
			var kem store.SignedPreKey
			switch err := tx.QueryRowContext(ctx, take, account[:], d.DeviceID, kindKEM).Scan(&kem.KeyID, &kem.PublicKey, &kem.Signature); {
			case err == nil:
				b.KEM, b.KEMIsLastResort = kem, false
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
			out = append(out, b)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// queryDeviceSeqs lists an account's devices in device order with each
// one's last assigned seq. Inside the writer's transaction the values
// are current: no other connection writes.
func queryDeviceSeqs(ctx context.Context, tx *wtx, acc store.AccountID) (devs []rules.DeviceReg, last map[uint32]int64, err error) {
	rows, err := tx.QueryContext(ctx, `SELECT device_id, registration_id, last_seq FROM devices WHERE account_id = ? ORDER BY device_id`, acc[:])
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	last = make(map[uint32]int64, 2)
	for rows.Next() {
		var d rules.DeviceReg
		var seq int64
		if err := rows.Scan(&d.DeviceID, &d.RegistrationID, &seq); err != nil {
			return nil, nil, err
		}
		devs = append(devs, d)
		last[d.DeviceID] = seq
	}
	return devs, last, rows.Err()
}

func queryDevices(ctx context.Context, tx *wtx, q string, args ...any) ([]rules.DeviceReg, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var devs []rules.DeviceReg
	for rows.Next() {
		var d rules.DeviceReg
		if err := rows.Scan(&d.DeviceID, &d.RegistrationID); err != nil {
			return nil, err
		}
		devs = append(devs, d)
	}
	return devs, rows.Err()
}

// Deliver implements [store.Store]. The order of checks: a repeat is
// reported as Duplicate even if the device list changed since, so a
// retried send always learns it was accepted.
func (s *Store) Deliver(ctx context.Context, snd store.Send) (store.SendResult, error) {
	if err := rules.ValidateSend(&snd); err != nil {
		return store.SendResult{}, err
	}
	key := rules.DedupKey(snd.Recipient, snd.MessageID)
	minute := rules.Minute(snd.Now)
	var res store.SendResult
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		res = store.SendResult{}
		// The idempotency record doubles as the duplicate check: it is
		// kept while any envelope of the message may be queued (see
		// sweep). A send refused below is rolled back with its record.
		ins, err := tx.ExecContext(ctx, `INSERT INTO idempotency (key, created_minute) VALUES (?, ?) ON CONFLICT DO NOTHING`, key, minute)
		if err != nil {
			return err
		}
		if n, err := ins.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			res.Duplicate = true
			return nil
		}
		devs, last, err := queryDeviceSeqs(ctx, tx, snd.Recipient)
		if err != nil {
			return err
		}
		if len(devs) == 0 {
			var one int
			if err := tx.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE id = ?`, snd.Recipient[:]).Scan(&one); err != nil {
				return err
			}
		}
		if err := rules.CheckDevices(devs, &snd); err != nil {
			return err
		}
		if snd.MaxQueue > 0 {
			for _, e := range snd.Envelopes {
				// A queue never holds more envelopes than seqs were
				// ever assigned (last_seq): below the bound, no lookup.
				if last[e.DeviceID] < int64(snd.MaxQueue) {
					continue
				}
				if err := checkQueue(ctx, tx, snd.Recipient, e.DeviceID, snd.MaxQueue); err != nil {
					return err
				}
			}
		}
		var sender []byte
		var senderDev any
		if snd.Sender != (store.AccountID{}) {
			sender, senderDev = snd.Sender[:], snd.SenderDevice
		}
		res.Seqs = make([]int64, len(snd.Envelopes))
		for i, e := range snd.Envelopes {
			if err := tx.QueryRowContext(ctx, `UPDATE devices SET last_seq = last_seq + 1 WHERE account_id = ? AND device_id = ? RETURNING last_seq`,
				snd.Recipient[:], e.DeviceID).Scan(&res.Seqs[i]); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO envelopes (account_id, device_id, seq, message_id, type, sender_id, sender_device, received_minute, content)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				snd.Recipient[:], e.DeviceID, res.Seqs[i], snd.MessageID[:], e.Type, sender, senderDev, minute, e.Content); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return store.SendResult{}, err
	}
	return res, nil
}

// checkQueue is ErrQueueFull when the device holds max envelopes. The
// queue holds at most last_seq - first + 1 envelopes (seqs are dense
// until acks punch holes), so the common case costs two index lookups;
// only a queue whose seq span reaches the bound is counted, and then at
// most max entries.
func checkQueue(ctx context.Context, tx *wtx, acc store.AccountID, dev uint32, max int) error {
	var last int64
	var first sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT d.last_seq, (SELECT e.seq FROM envelopes e
		WHERE e.account_id = d.account_id AND e.device_id = d.device_id ORDER BY e.seq LIMIT 1)
		FROM devices d WHERE d.account_id = ? AND d.device_id = ?`, acc[:], dev).Scan(&last, &first); err != nil {
		return err
	}
	if !first.Valid || last-first.Int64+1 < int64(max) {
		return nil
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM envelopes WHERE account_id = ? AND device_id = ? LIMIT ?)`,
		acc[:], dev, max).Scan(&n); err != nil {
		return err
	}
	if n >= max {
		return fmt.Errorf("%w: device %d", store.ErrQueueFull, dev)
	}
	return nil
}

// Pending implements [store.Store].
func (s *Store) Pending(ctx context.Context, account store.AccountID, deviceID uint32, after int64, limit int) ([]store.Envelope, error) {
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, fmt.Errorf("%w: limit %d", store.ErrInvalid, limit)
	}
	rows, err := r.query(ctx, `SELECT seq, message_id, type, sender_id, sender_device, received_minute, content FROM envelopes
		WHERE account_id = ? AND device_id = ? AND seq > ? ORDER BY seq LIMIT ?`, account[:], deviceID, after, limit)
	if err != nil {
		return nil, s.translate(ctx, err)
	}
	defer rows.Close()
	var out []store.Envelope
	for rows.Next() {
		e := store.Envelope{Recipient: account, DeviceID: deviceID}
		var mid, sender []byte
		var senderDev sql.NullInt64
		var minute int64
		if err := rows.Scan(&e.Seq, &mid, &e.Type, &sender, &senderDev, &minute, &e.Content); err != nil {
			return nil, s.translate(ctx, err)
		}
		copy(e.MessageID[:], mid)
		copy(e.Sender[:], sender)
		e.SenderDevice = uint32(senderDev.Int64)
		e.ReceivedAt = rules.FromUnix(minute)
		out = append(out, e)
	}
	return out, s.translate(ctx, rows.Err())
}

// Ack implements [store.Store].
func (s *Store) Ack(ctx context.Context, account store.AccountID, deviceID uint32, seq int64) error {
	return s.write1(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM envelopes WHERE account_id = ? AND device_id = ? AND seq = ?`, account[:], deviceID, seq)
		return err
	})
}

// AckBatch implements [store.BatchAcker]: one write, one commit.
func (s *Store) AckBatch(ctx context.Context, account store.AccountID, deviceID uint32, seqs []int64) error {
	if len(seqs) == 0 {
		if s.closed.Load() {
			return store.ErrClosed
		}
		return nil
	}
	if len(seqs) == 1 {
		return s.Ack(ctx, account, deviceID, seqs[0])
	}
	return s.write(ctx, func(ctx context.Context, tx *wtx) error {
		for _, seq := range seqs {
			if _, err := tx.ExecContext(ctx, `DELETE FROM envelopes WHERE account_id = ? AND device_id = ? AND seq = ?`, account[:], deviceID, seq); err != nil {
				return err
			}
		}
		return nil
	})
}

// QueueDepth implements [store.Store].
func (s *Store) QueueDepth(ctx context.Context, account store.AccountID, deviceID uint32) (int, error) {
	r, err := s.reader()
	if err != nil {
		return 0, err
	}
	var n int
	err = r.queryRow(ctx, `SELECT count(*) FROM envelopes WHERE account_id = ? AND device_id = ?`, account[:], deviceID).Scan(&n)
	return n, s.translate(ctx, err)
}

// Sweep implements [store.Store]. After deleting it checkpoints and
// truncates the WAL (best effort), so the bytes of envelopes deleted
// since the last sweep, acknowledged or expired, leave the database
// files within one sweep interval: secure_delete has zeroed them in the
// database file, and the WAL frames that still held them are gone.
func (s *Store) Sweep(ctx context.Context, envelopeCutoff, dedupCutoff time.Time) (int, error) {
	n, err := s.sweep(ctx, envelopeCutoff, dedupCutoff)
	if err == nil {
		// A checkpoint blocked by a long read is retried next sweep.
		_ = s.Checkpoint(ctx)
	}
	return n, err
}

func (s *Store) sweep(ctx context.Context, envelopeCutoff, dedupCutoff time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		// Envelopes are inserted in rowid order and received_minute
		// follows the clock, so the expired ones are the rows before the
		// first that is not: found without an index on received_minute
		// (one less index to keep on every send and ack). Should the
		// clock have stepped back, rows behind a newer one wait for it.
		res, err := tx.ExecContext(ctx, `DELETE FROM envelopes WHERE received_minute < ?1
			AND id < coalesce((SELECT id FROM envelopes WHERE received_minute >= ?1 ORDER BY id LIMIT 1), 9223372036854775807)`,
			envelopeCutoff.Unix())
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil {
			return err
		}
		// An idempotency record is Deliver's only duplicate check, so
		// it stays until both cutoffs pass (see store.Store.Deliver).
		if _, err := tx.ExecContext(ctx, `DELETE FROM idempotency WHERE created_minute < ?`, rules.DedupCutoff(envelopeCutoff, dedupCutoff).Unix()); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM rate_limits WHERE tat < ?`, dedupCutoff.UnixNano())
		return err
	})
	return int(n), err
}

// TakeToken implements [store.Store] with one upsert: the bucket's TAT
// moves only when a token is available (see package rules).
func (s *Store) TakeToken(ctx context.Context, key []byte, burst int, interval time.Duration, now time.Time) (bool, time.Duration, error) {
	if err := rules.ValidateBucket(burst, interval); err != nil {
		return false, 0, err
	}
	if key == nil {
		key = []byte{}
	}
	ns, iv, limit := now.UnixNano(), int64(interval), int64(burst)*int64(interval)
	var ok bool
	var retry time.Duration
	err := s.write1(ctx, func(ctx context.Context, tx *wtx) error {
		var tat int64
		err := tx.QueryRowContext(ctx, `INSERT INTO rate_limits (key, tat) VALUES (?1, ?2 + ?3)
			ON CONFLICT (key) DO UPDATE SET tat = max(tat, ?2) + ?3 WHERE max(tat, ?2) + ?3 - ?2 <= ?4
			RETURNING tat`, key, ns, iv, limit).Scan(&tat)
		switch {
		case err == nil:
			ok, retry = true, 0
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT tat FROM rate_limits WHERE key = ?`, key).Scan(&tat); err != nil {
			return err
		}
		ok, retry = false, rules.RetryAfter(tat, ns, burst, interval)
		return nil
	})
	if err != nil {
		return false, 0, err
	}
	return ok, retry, nil
}
