package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/internal/rules"
)

var _ store.DataSubject = (*Store)(nil)

// ExportAccount implements [store.DataSubject], in one repeatable-read
// snapshot.
func (s *Store) ExportAccount(ctx context.Context, id store.AccountID) (store.AccountData, error) {
	if s.closed.Load() {
		return store.AccountData{}, store.ErrClosed
	}
	d := store.AccountData{DeviceNames: map[uint32][]byte{}, PreKeys: map[uint32]store.PreKeyCounts{}, Queued: map[uint32]store.QueueStat{}}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var (
			created          int64
			access, recovery []byte
		)
		err := tx.QueryRow(ctx, `SELECT username, identity_key, created_day, access_key_hash, unrestricted_access, recovery_hash
			FROM accounts WHERE id = $1`, uid(id)).Scan(&d.Account.Username, &d.Account.IdentityKey, &created, &access, &d.SealedFromAnyone, &recovery)
		if err != nil {
			return err
		}
		d.Account.ID, d.Account.CreatedAt, d.AccessKeySet, d.RecoverySet = id, rules.FromUnix(created), access != nil, recovery != nil
		rows, err := tx.Query(ctx, `SELECT device_id, registration_id, created_day, last_seen_day, name FROM devices WHERE account_id = $1 ORDER BY device_id`, uid(id))
		if err != nil {
			return err
		}
		for rows.Next() {
			var (
				dev       store.Device
				devID, rg int64
				c, l      int64
				name      []byte
			)
			if err := rows.Scan(&devID, &rg, &c, &l, &name); err != nil {
				rows.Close()
				return err
			}
			dev.Account, dev.DeviceID, dev.RegistrationID, dev.CreatedAt, dev.LastSeen = id, uint32(devID), uint32(rg), rules.FromUnix(c), rules.FromUnix(l)
			d.Devices = append(d.Devices, dev)
			if name != nil {
				d.DeviceNames[dev.DeviceID] = name
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, dev := range d.Devices {
			var pk store.PreKeyCounts
			if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE kind = 1), count(*) FILTER (WHERE kind = 2) FROM one_time_prekeys WHERE account_id = $1 AND device_id = $2`,
				uid(id), dev.DeviceID).Scan(&pk.EC, &pk.KEM); err != nil {
				return err
			}
			d.PreKeys[dev.DeviceID] = pk
			var q store.QueueStat
			if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(sum(octet_length(content)), 0) FROM envelopes WHERE account_id = $1 AND device_id = $2`,
				uid(id), dev.DeviceID).Scan(&q.Count, &q.Bytes); err != nil {
				return err
			}
			d.Queued[dev.DeviceID] = q
		}
		if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(sum(octet_length(data)), 0) FROM blobs WHERE account_id = $1`, uid(id)).Scan(&d.Blobs.Count, &d.Blobs.Bytes); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(octet_length(data)), 0) FROM account_backups WHERE account_id = $1`, uid(id)).Scan(&d.BackupBytes); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT count(*) FROM link_tokens WHERE account_id = $1`, uid(id)).Scan(&d.LinkTokens)
	})
	return d, s.translate(ctx, err)
}

// EraseAccount implements [store.DataSubject].
func (s *Store) EraseAccount(ctx context.Context, id store.AccountID) (store.Erased, error) {
	var e store.Erased
	err := s.tx(ctx, func(tx pgx.Tx) error {
		e = store.Erased{}
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE`, uid(id)).Scan(&one); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM devices WHERE account_id = $1),
			(SELECT count(*) FROM one_time_prekeys WHERE account_id = $1) + (SELECT count(*) FROM signed_prekeys WHERE account_id = $1),
			(SELECT count(*) FROM envelopes WHERE account_id = $1 OR sender_id = $1),
			(SELECT coalesce(sum(octet_length(content)), 0) FROM envelopes WHERE account_id = $1 OR sender_id = $1),
			(SELECT count(*) FROM blobs WHERE account_id = $1),
			(SELECT count(*) FROM link_tokens WHERE account_id = $1)`, uid(id)).
			Scan(&e.Devices, &e.PreKeys, &e.Envelopes, &e.EnvelopeBytes, &e.Blobs, &e.LinkTokens)
		if err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM envelopes WHERE sender_id = $1`,
			`DELETE FROM one_time_prekeys WHERE account_id = $1`,
			`DELETE FROM signed_prekeys WHERE account_id = $1`,
			`DELETE FROM envelopes WHERE account_id = $1`,
			`DELETE FROM link_tokens WHERE account_id = $1`,
			`DELETE FROM blobs WHERE account_id = $1`,
			`DELETE FROM account_backups WHERE account_id = $1`,
			`DELETE FROM devices WHERE account_id = $1`,
			`DELETE FROM legal_holds WHERE account_id = $1`,
			`DELETE FROM accounts WHERE id = $1`,
		} {
			if _, err := tx.Exec(ctx, q, uid(id)); err != nil {
				return err
			}
		}
		return nil
	})
	return e, s.translate(ctx, err)
}

// AccountTraces implements [store.DataSubject].
func (s *Store) AccountTraces(ctx context.Context, id store.AccountID) ([]string, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	var out []string
	for _, t := range []struct{ table, q string }{
		{"accounts", `SELECT count(*) FROM accounts WHERE id = $1`},
		{"devices", `SELECT count(*) FROM devices WHERE account_id = $1`},
		{"signed_prekeys", `SELECT count(*) FROM signed_prekeys WHERE account_id = $1`},
		{"one_time_prekeys", `SELECT count(*) FROM one_time_prekeys WHERE account_id = $1`},
		{"envelopes", `SELECT count(*) FROM envelopes WHERE account_id = $1 OR sender_id = $1`},
		{"link_tokens", `SELECT count(*) FROM link_tokens WHERE account_id = $1`},
		{"blobs", `SELECT count(*) FROM blobs WHERE account_id = $1`},
		{"account_backups", `SELECT count(*) FROM account_backups WHERE account_id = $1`},
		{"legal_holds", `SELECT count(*) FROM legal_holds WHERE account_id = $1`},
	} {
		var n int
		if err := s.pool.QueryRow(ctx, t.q, uid(id)).Scan(&n); err != nil {
			return nil, s.translate(ctx, err)
		}
		if n > 0 {
			out = append(out, t.table)
		}
	}
	return out, nil
}

// InactiveAccounts implements [store.DataSubject].
func (s *Store) InactiveAccounts(ctx context.Context, cutoff time.Time, limit int) ([]store.AccountID, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	rows, err := s.pool.Query(ctx, `SELECT id FROM accounts a WHERE a.created_day < $1
		AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.account_id = a.id AND d.last_seen_day >= $1) LIMIT $2`, rules.Day(cutoff), limit)
	if err != nil {
		return nil, s.translate(ctx, err)
	}
	defer rows.Close()
	var out []store.AccountID
	for rows.Next() {
		var id [16]byte
		if err := rows.Scan(&id); err != nil {
			return nil, s.translate(ctx, err)
		}
		out = append(out, store.AccountID(id))
	}
	return out, s.translate(ctx, rows.Err())
}
