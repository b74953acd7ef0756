package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/internal/rules"
)

var _ store.DataSubject = (*Store)(nil)

// ExportAccount implements [store.DataSubject], in one read transaction.
func (s *Store) ExportAccount(ctx context.Context, id store.AccountID) (store.AccountData, error) {
	r, err := s.reader()
	if err != nil {
		return store.AccountData{}, err
	}
	tx, err := r.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return store.AccountData{}, s.translate(ctx, err)
	}
	defer tx.Rollback()
	d, err := exportAccount(ctx, tx, id)
	return d, s.translate(ctx, err)
}

func exportAccount(ctx context.Context, tx *sql.Tx, id store.AccountID) (store.AccountData, error) {
	d := store.AccountData{DeviceNames: map[uint32][]byte{}, PreKeys: map[uint32]store.PreKeyCounts{}, Queued: map[uint32]store.QueueStat{}}
	var (
		created          int64
		access, recovery []byte
	)
	err := tx.QueryRowContext(ctx, `SELECT username, identity_key, created_day, access_key_hash, unrestricted_access, recovery_hash
		FROM accounts WHERE id = ?`, id[:]).Scan(&d.Account.Username, &d.Account.IdentityKey, &created, &access, &d.SealedFromAnyone, &recovery)
	if err != nil {
		return d, err
	}
	d.Account.ID, d.AccessKeySet, d.RecoverySet = id, access != nil, recovery != nil
	d.Account.CreatedAt = rules.FromUnix(created)
	rows, err := tx.QueryContext(ctx, `SELECT device_id, registration_id, created_day, last_seen_day, name FROM devices WHERE account_id = ? ORDER BY device_id`, id[:])
	if err != nil {
		return d, err
	}
	for rows.Next() {
		var (
			dev  store.Device
			c, l int64
			name []byte
		)
		if err := rows.Scan(&dev.DeviceID, &dev.RegistrationID, &c, &l, &name); err != nil {
			rows.Close()
			return d, err
		}
		dev.Account, dev.CreatedAt, dev.LastSeen = id, rules.FromUnix(c), rules.FromUnix(l)
		d.Devices = append(d.Devices, dev)
		if name != nil {
			d.DeviceNames[dev.DeviceID] = name
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return d, err
	}
	for _, dev := range d.Devices {
		var pk store.PreKeyCounts
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE kind = 1), count(*) FILTER (WHERE kind = 2) FROM one_time_prekeys WHERE account_id = ? AND device_id = ?`,
			id[:], dev.DeviceID).Scan(&pk.EC, &pk.KEM); err != nil {
			return d, err
		}
		d.PreKeys[dev.DeviceID] = pk
		var q store.QueueStat
		if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(length(content)), 0) FROM envelopes WHERE account_id = ? AND device_id = ?`,
			id[:], dev.DeviceID).Scan(&q.Count, &q.Bytes); err != nil {
			return d, err
		}
		d.Queued[dev.DeviceID] = q
	}
	if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(length(data)), 0) FROM blobs WHERE account_id = ?`, id[:]).Scan(&d.Blobs.Count, &d.Blobs.Bytes); err != nil {
		return d, err
	}
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(length(data)), 0) FROM account_backups WHERE account_id = ?`, id[:]).Scan(&d.BackupBytes); err != nil {
		return d, err
	}
	err = tx.QueryRowContext(ctx, `SELECT count(*) FROM link_tokens WHERE account_id = ?`, id[:]).Scan(&d.LinkTokens)
	return d, err
}

// EraseAccount implements [store.DataSubject]. Envelopes the account sent
// that are still queued for others go too: they name it as sender.
func (s *Store) EraseAccount(ctx context.Context, id store.AccountID) (store.Erased, error) {
	var e store.Erased
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		e = store.Erased{}
		counts := []struct {
			q   string
			dst *int
		}{
			{`SELECT count(*) FROM devices WHERE account_id = ?`, &e.Devices},
			{`SELECT (SELECT count(*) FROM one_time_prekeys WHERE account_id = ?1) + (SELECT count(*) FROM signed_prekeys WHERE account_id = ?1)`, &e.PreKeys},
			{`SELECT count(*) FROM envelopes WHERE account_id = ?1 OR sender_id = ?1`, &e.Envelopes},
			{`SELECT count(*) FROM blobs WHERE account_id = ?`, &e.Blobs},
			{`SELECT count(*) FROM link_tokens WHERE account_id = ?`, &e.LinkTokens},
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE id = ?`, id[:]).Scan(&one); err != nil {
			return err
		}
		for _, c := range counts {
			if err := tx.QueryRowContext(ctx, c.q, id[:]).Scan(c.dst); err != nil {
				return err
			}
		}
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(length(content)), 0) FROM envelopes WHERE account_id = ?1 OR sender_id = ?1`, id[:]).Scan(&e.EnvelopeBytes); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM envelopes WHERE sender_id = ?`,
			`DELETE FROM one_time_prekeys WHERE account_id = ?`,
			`DELETE FROM signed_prekeys WHERE account_id = ?`,
			`DELETE FROM envelopes WHERE account_id = ?`,
			`DELETE FROM link_tokens WHERE account_id = ?`,
			`DELETE FROM blobs WHERE account_id = ?`,
			`DELETE FROM account_backups WHERE account_id = ?`,
			`DELETE FROM devices WHERE account_id = ?`,
			`DELETE FROM legal_holds WHERE account_id = ?`,
			`DELETE FROM accounts WHERE id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, id[:]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return store.Erased{}, s.translate(ctx, err)
	}
	// Deleted bytes leave the WAL too (secure_delete zeroed them in the
	// pages).
	return e, s.translate(ctx, s.Checkpoint(ctx))
}

// AccountTraces implements [store.DataSubject].
func (s *Store) AccountTraces(ctx context.Context, id store.AccountID) ([]string, error) {
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range []struct{ table, q string }{
		{"accounts", `SELECT count(*) FROM accounts WHERE id = ?1`},
		{"devices", `SELECT count(*) FROM devices WHERE account_id = ?1`},
		{"signed_prekeys", `SELECT count(*) FROM signed_prekeys WHERE account_id = ?1`},
		{"one_time_prekeys", `SELECT count(*) FROM one_time_prekeys WHERE account_id = ?1`},
		{"envelopes", `SELECT count(*) FROM envelopes WHERE account_id = ?1 OR sender_id = ?1`},
		{"link_tokens", `SELECT count(*) FROM link_tokens WHERE account_id = ?1`},
		{"blobs", `SELECT count(*) FROM blobs WHERE account_id = ?1`},
		{"account_backups", `SELECT count(*) FROM account_backups WHERE account_id = ?1`},
		{"legal_holds", `SELECT count(*) FROM legal_holds WHERE account_id = ?1`},
	} {
		var n int
		if err := r.queryRow(ctx, t.q, id[:]).Scan(&n); err != nil {
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
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	day := rules.Day(cutoff)
	rows, err := r.query(ctx, `SELECT id FROM accounts a WHERE a.created_day < ?1
		AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.account_id = a.id AND d.last_seen_day >= ?1) LIMIT ?2`, day, limit)
	if err != nil {
		return nil, s.translate(ctx, err)
	}
	defer rows.Close()
	var out []store.AccountID
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, s.translate(ctx, err)
		}
		var id store.AccountID
		copy(id[:], b)
		out = append(out, id)
	}
	return out, s.translate(ctx, rows.Err())
}
