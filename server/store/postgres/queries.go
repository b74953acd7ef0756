package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/internal/rules"
)

var _ store.BatchAcker = (*Store)(nil)

const (
	kindEC  = 1 // signed EC prekey / one-time EC prekey
	kindKEM = 2 // last-resort KEM prekey / one-time KEM prekey
)

// uid passes an account id to pgx as a uuid.
func uid(a store.AccountID) [16]byte { return a }

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// CreateAccount implements [store.Store].
func (s *Store) CreateAccount(ctx context.Context, a store.NewAccount) (store.Account, error) {
	if err := rules.ValidateUpload(&a.PreKeys, true); err != nil {
		return store.Account{}, err
	}
	if a.IdentityKey == nil || a.CredentialHash == nil {
		return store.Account{}, fmt.Errorf("%w: identity key and credential hash are required", store.ErrInvalid)
	}
	day := rules.Day(a.Now)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO accounts (id, username, identity_key, created_day, next_device_id) VALUES ($1, $2, $3, $4, 2)`,
			uid(a.ID), a.Username, a.IdentityKey, day)
		if code, constraint := pgCode(err); code == codeUniqueViolation {
			if constraint == "accounts_username_key" {
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

func insertDevice(ctx context.Context, tx pgx.Tx, acc store.AccountID, id, reg uint32, cred []byte, day int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO devices (account_id, device_id, registration_id, credential_hash, created_day, last_seen_day) VALUES ($1, $2, $3, $4, $5, $5)`,
		uid(acc), id, reg, cred, day)
	return err
}

// storePreKeys queues the upload's statements in one batch.
func storePreKeys(ctx context.Context, tx pgx.Tx, acc store.AccountID, dev uint32, up *store.PreKeyUpload) error {
	b := &pgx.Batch{}
	for _, sk := range []struct {
		kind int
		k    *store.SignedPreKey
	}{{kindEC, up.SignedPreKey}, {kindKEM, up.LastResortKEM}} {
		if sk.k == nil {
			continue
		}
		b.Queue(`INSERT INTO signed_prekeys (account_id, device_id, kind, key_id, public_key, signature) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (account_id, device_id, kind) DO UPDATE SET key_id = excluded.key_id, public_key = excluded.public_key, signature = excluded.signature`,
			uid(acc), dev, sk.kind, sk.k.KeyID, sk.k.PublicKey, sk.k.Signature)
	}
	const ins = `INSERT INTO one_time_prekeys (account_id, device_id, kind, key_id, public_key, signature) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (account_id, device_id, kind, key_id) DO NOTHING`
	for _, k := range up.OneTimeEC {
		b.Queue(ins, uid(acc), dev, kindEC, k.KeyID, k.PublicKey, nil)
	}
	for _, k := range up.OneTimeKEM {
		b.Queue(ins, uid(acc), dev, kindKEM, k.KeyID, k.PublicKey, k.Signature)
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}

func scanAccount(row pgx.Row) (store.Account, error) {
	var a store.Account
	var id [16]byte
	var day int64
	if err := row.Scan(&id, &a.Username, &a.IdentityKey, &day); err != nil {
		return store.Account{}, err
	}
	a.ID = id
	a.CreatedAt = rules.FromUnix(day)
	return a, nil
}

// Account implements [store.Store].
func (s *Store) Account(ctx context.Context, id store.AccountID) (store.Account, error) {
	if s.closed.Load() {
		return store.Account{}, store.ErrClosed
	}
	a, err := scanAccount(s.pool.QueryRow(ctx, `SELECT id, username, identity_key, created_day FROM accounts WHERE id = $1`, uid(id)))
	return a, s.translate(ctx, err)
}

// AccountByUsername implements [store.Store].
func (s *Store) AccountByUsername(ctx context.Context, username string) (store.Account, error) {
	if s.closed.Load() {
		return store.Account{}, store.ErrClosed
	}
	a, err := scanAccount(s.pool.QueryRow(ctx, `SELECT id, username, identity_key, created_day FROM accounts WHERE username = $1`, username))
	return a, s.translate(ctx, err)
}

const deviceCols = `account_id, device_id, registration_id, credential_hash, created_day, last_seen_day, hold_id IS NOT NULL`

func scanDevice(row pgx.Row) (store.Device, error) {
	var d store.Device
	var acc [16]byte
	var created, seen int64
	if err := row.Scan(&acc, &d.DeviceID, &d.RegistrationID, &d.CredentialHash, &created, &seen, &d.Compliance); err != nil {
		return store.Device{}, err
	}
	d.Account = acc
	d.CreatedAt, d.LastSeen = rules.FromUnix(created), rules.FromUnix(seen)
	return d, nil
}

// Device implements [store.Store].
func (s *Store) Device(ctx context.Context, account store.AccountID, deviceID uint32) (store.Device, error) {
	if s.closed.Load() {
		return store.Device{}, store.ErrClosed
	}
	d, err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceCols+` FROM devices WHERE account_id = $1 AND device_id = $2`, uid(account), deviceID))
	return d, s.translate(ctx, err)
}

// Devices implements [store.Store].
func (s *Store) Devices(ctx context.Context, account store.AccountID) ([]store.Device, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	rows, err := s.pool.Query(ctx, `SELECT `+deviceCols+` FROM devices WHERE account_id = $1 ORDER BY device_id`, uid(account))
	if err != nil {
		return nil, s.translate(ctx, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Device, error) { return scanDevice(r) })
	return out, s.translate(ctx, err)
}

// TouchDevice implements [store.Store]. It writes only when the day
// changed, so it is cheap to call on every connection.
func (s *Store) TouchDevice(ctx context.Context, account store.AccountID, deviceID uint32, now time.Time) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	var seen int64
	err := s.pool.QueryRow(ctx, `WITH u AS (
			UPDATE devices SET last_seen_day = $3 WHERE account_id = $1 AND device_id = $2 AND last_seen_day < $3 RETURNING last_seen_day)
		SELECT last_seen_day FROM u UNION ALL SELECT last_seen_day FROM devices WHERE account_id = $1 AND device_id = $2 LIMIT 1`,
		uid(account), deviceID, rules.Day(now)).Scan(&seen)
	return s.translate(ctx, err)
}

// AddDevice implements [store.Store]. Bumping the account's device
// counter locks the account row, so concurrent links of one account
// count devices one at a time.
func (s *Store) AddDevice(ctx context.Context, account store.AccountID, d store.NewDevice, maxDevices int) (store.Device, error) {
	if err := rules.ValidateUpload(&d.PreKeys, true); err != nil {
		return store.Device{}, err
	}
	if d.CredentialHash == nil {
		return store.Device{}, fmt.Errorf("%w: credential hash is required", store.ErrInvalid)
	}
	day := rules.Day(d.Now)
	var id uint32
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `UPDATE accounts SET next_device_id = next_device_id + 1 WHERE id = $1 RETURNING next_device_id - 1`, uid(account)).Scan(&id); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM devices WHERE account_id = $1 AND hold_id IS NULL`, uid(account)).Scan(&n); err != nil {
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
	if s.closed.Load() {
		return store.ErrClosed
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM devices WHERE account_id = $1 AND device_id = $2 AND hold_id IS NULL`, uid(account), deviceID)
	if err != nil || tag.RowsAffected() > 0 {
		return s.translate(ctx, err)
	}
	// Nothing deleted: no such device, or a compliance device (whose
	// hold_id never changes while it exists).
	var compliance bool
	if err := s.pool.QueryRow(ctx, `SELECT hold_id IS NOT NULL FROM devices WHERE account_id = $1 AND device_id = $2`, uid(account), deviceID).Scan(&compliance); err != nil {
		return s.translate(ctx, err)
	}
	if compliance {
		return fmt.Errorf("%w: device %d is a legal hold's compliance device", store.ErrInvalid, deviceID)
	}
	return store.ErrNotFound
}

// StorePreKeys implements [store.Store]. The device row is share-locked
// so a concurrent RemoveDevice cannot orphan the keys.
func (s *Store) StorePreKeys(ctx context.Context, account store.AccountID, deviceID uint32, up store.PreKeyUpload) error {
	if err := rules.ValidateUpload(&up, false); err != nil {
		return err
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM devices WHERE account_id = $1 AND device_id = $2 FOR KEY SHARE`, uid(account), deviceID).Scan(&one); err != nil {
			return err
		}
		return storePreKeys(ctx, tx, account, deviceID, &up)
	})
}

// PreKeyCounts implements [store.Store].
func (s *Store) PreKeyCounts(ctx context.Context, account store.AccountID, deviceID uint32) (store.PreKeyCounts, error) {
	if s.closed.Load() {
		return store.PreKeyCounts{}, store.ErrClosed
	}
	var c store.PreKeyCounts
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM one_time_prekeys WHERE account_id = d.account_id AND device_id = d.device_id AND kind = 1),
		(SELECT count(*) FROM one_time_prekeys WHERE account_id = d.account_id AND device_id = d.device_id AND kind = 2)
		FROM devices d WHERE d.account_id = $1 AND d.device_id = $2`, uid(account), deviceID).Scan(&c.EC, &c.KEM)
	return c, s.translate(ctx, err)
}

// takeKey claims the oldest unclaimed one-time key of one kind. SKIP
// LOCKED lets concurrent fetchers each claim a different key instead of
// queueing on the first one.
const takeKey = `DELETE FROM one_time_prekeys WHERE seq = (
	SELECT seq FROM one_time_prekeys WHERE account_id = $1 AND device_id = $2 AND kind = $3
	ORDER BY seq LIMIT 1 FOR UPDATE SKIP LOCKED)
	RETURNING key_id, public_key, signature`

// TakeBundles implements [store.Store].
func (s *Store) TakeBundles(ctx context.Context, account store.AccountID, deviceID uint32) ([]store.Bundle, error) {
	var out []store.Bundle
	err := s.tx(ctx, func(tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `SELECT d.device_id, d.registration_id, k.kind, k.key_id, k.public_key, k.signature
			FROM devices d LEFT JOIN signed_prekeys k ON k.account_id = d.account_id AND k.device_id = d.device_id
			WHERE d.account_id = $1 AND ($2 = 0 OR d.device_id = $2) ORDER BY d.device_id, k.kind`, uid(account), int64(deviceID))
		if err != nil {
			return err
		}
		var have []int
		for rows.Next() {
			var dev, reg uint32
			var kind *int16
			var k store.SignedPreKey
			var keyID *int64
			if err := rows.Scan(&dev, &reg, &kind, &keyID, &k.PublicKey, &k.Signature); err != nil {
				rows.Close()
				return err
			}
			if len(out) == 0 || out[len(out)-1].DeviceID != dev {
				out = append(out, store.Bundle{DeviceID: dev, RegistrationID: reg})
				have = append(have, 0)
			}
			if kind == nil {
				continue
			}
			k.KeyID = uint32(*keyID)
			b := &out[len(out)-1]
			have[len(have)-1] |= int(*kind)
			if *kind == kindEC {
				b.SignedPreKey = k
			} else {
				b.KEM, b.KEMIsLastResort = k, true
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) == 0 {
			if deviceID != 0 {
				return store.ErrNotFound
			}
			var one int
			return tx.QueryRow(ctx, `SELECT 1 FROM accounts WHERE id = $1`, uid(account)).Scan(&one)
		}
		batch := &pgx.Batch{}
		for i := range out {
			if have[i] != kindEC|kindKEM {
				return fmt.Errorf("%w: device %d has no signed prekeys", store.ErrNotFound, out[i].DeviceID)
			}
			batch.Queue(takeKey, uid(account), out[i].DeviceID, kindEC)
			batch.Queue(takeKey, uid(account), out[i].DeviceID, kindKEM)
		}
		br := tx.SendBatch(ctx, batch)
		for i := range out {
			var ec store.PreKey
			var sig []byte
			switch err := br.QueryRow().Scan(&ec.KeyID, &ec.PublicKey, &sig); {
			case err == nil:
				out[i].PreKey = &ec
			case !errors.Is(err, pgx.ErrNoRows):
				br.Close()
				return err
			}
			var kem store.SignedPreKey
			switch err := br.QueryRow().Scan(&kem.KeyID, &kem.PublicKey, &kem.Signature); {
			case err == nil:
				out[i].KEM, out[i].KEMIsLastResort = kem, false
			case !errors.Is(err, pgx.ErrNoRows):
				br.Close()
				return err
			}
		}
		return br.Close()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Pending implements [store.Store].
func (s *Store) Pending(ctx context.Context, account store.AccountID, deviceID uint32, after int64, limit int) ([]store.Envelope, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	if limit <= 0 {
		return nil, fmt.Errorf("%w: limit %d", store.ErrInvalid, limit)
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, message_id, type, sender_id, sender_device, received_minute, content FROM envelopes
		WHERE account_id = $1 AND device_id = $2 AND seq > $3 ORDER BY seq LIMIT $4`, uid(account), deviceID, after, limit)
	if err != nil {
		return nil, s.translate(ctx, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Envelope, error) {
		e := store.Envelope{Recipient: account, DeviceID: deviceID}
		var mid []byte
		var typ int16
		var sender *[16]byte
		var senderDev *int64
		var minute int64
		if err := r.Scan(&e.Seq, &mid, &typ, &sender, &senderDev, &minute, &e.Content); err != nil {
			return e, err
		}
		copy(e.MessageID[:], mid)
		e.Type = uint8(typ)
		if sender != nil {
			e.Sender = *sender
		}
		if senderDev != nil {
			e.SenderDevice = uint32(*senderDev)
		}
		e.ReceivedAt = rules.FromUnix(minute)
		return e, nil
	})
	return out, s.translate(ctx, err)
}

// Ack implements [store.Store]. Acks from concurrent callers are merged
// (see acker).
func (s *Store) Ack(ctx context.Context, account store.AccountID, deviceID uint32, seq int64) error {
	return s.ack(ctx, account, deviceID, []int64{seq})
}

// AckBatch implements [store.BatchAcker].
func (s *Store) AckBatch(ctx context.Context, account store.AccountID, deviceID uint32, seqs []int64) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if len(seqs) == 0 {
		return nil
	}
	return s.ack(ctx, account, deviceID, seqs)
}

// QueueDepth implements [store.Store].
func (s *Store) QueueDepth(ctx context.Context, account store.AccountID, deviceID uint32) (int, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM envelopes WHERE account_id = $1 AND device_id = $2`, uid(account), deviceID).Scan(&n)
	return n, s.translate(ctx, err)
}

// Sweep implements [store.Store].
func (s *Store) Sweep(ctx context.Context, envelopeCutoff, dedupCutoff time.Time) (int, error) {
	var n int64
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM envelopes WHERE received_minute < $1`, envelopeCutoff.Unix())
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		if _, err := tx.Exec(ctx, `DELETE FROM idempotency WHERE created_minute < $1`, rules.DedupCutoff(envelopeCutoff, dedupCutoff).Unix()); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM rate_limits WHERE tat < $1`, dedupCutoff.UnixNano())
		return err
	})
	return int(n), err
}

// TakeToken implements [store.Store] with one atomic upsert: the
// bucket's TAT moves only when a token is available (see package rules).
func (s *Store) TakeToken(ctx context.Context, key []byte, burst int, interval time.Duration, now time.Time) (bool, time.Duration, error) {
	if err := rules.ValidateBucket(burst, interval); err != nil {
		return false, 0, err
	}
	if s.closed.Load() {
		return false, 0, store.ErrClosed
	}
	if key == nil {
		key = []byte{}
	}
	ns, iv, limit := now.UnixNano(), int64(interval), int64(burst)*int64(interval)
	var tat int64
	err := s.pool.QueryRow(ctx, `INSERT INTO rate_limits AS r (key, tat) VALUES ($1, $2::bigint + $3::bigint)
		ON CONFLICT (key) DO UPDATE SET tat = GREATEST(r.tat, $2::bigint) + $3::bigint
		WHERE GREATEST(r.tat, $2::bigint) + $3::bigint - $2::bigint <= $4::bigint
		RETURNING tat`, key, ns, iv, limit).Scan(&tat)
	switch {
	case err == nil:
		return true, 0, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return false, 0, s.translate(ctx, err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT tat FROM rate_limits WHERE key = $1`, key).Scan(&tat); err != nil {
		return false, 0, s.translate(ctx, err)
	}
	return false, rules.RetryAfter(tat, ns, burst, interval), nil
}
