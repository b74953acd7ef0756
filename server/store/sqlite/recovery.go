package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/internal/rules"
)

var _ store.Recovery = (*Store)(nil)

// SetRecoveryHash implements [store.Recovery].
func (s *Store) SetRecoveryHash(ctx context.Context, account store.AccountID, hash []byte) error {
	err := s.write1(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE accounts SET recovery_hash = ? WHERE id = ?`, hash, account[:])
		return mustAffect(res, err)
	})
	return s.translate(ctx, err)
}

// RecoveryHash implements [store.Recovery].
func (s *Store) RecoveryHash(ctx context.Context, account store.AccountID) ([]byte, error) {
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	var h []byte
	if err := r.queryRow(ctx, `SELECT recovery_hash FROM accounts WHERE id = ?`, account[:]).Scan(&h); err != nil {
		return nil, s.translate(ctx, err)
	}
	if h == nil {
		return nil, store.ErrNotFound
	}
	return h, nil
}

// ReplaceDevices implements [store.Recovery]; foreign keys cascade the
// removal to the devices' prekeys and envelopes. Legal holds' compliance
// devices stay.
func (s *Store) ReplaceDevices(ctx context.Context, account store.AccountID, d store.NewDevice) (store.Device, []uint32, error) {
	if err := rules.ValidateUpload(&d.PreKeys, true); err != nil {
		return store.Device{}, nil, err
	}
	if d.CredentialHash == nil {
		return store.Device{}, nil, fmt.Errorf("%w: credential hash is required", store.ErrInvalid)
	}
	day := rules.Day(d.Now)
	var (
		id      uint32
		removed []uint32
	)
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		removed = removed[:0]
		if err := tx.QueryRowContext(ctx, `UPDATE accounts SET next_device_id = next_device_id + 1 WHERE id = ? RETURNING next_device_id - 1`, account[:]).Scan(&id); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, `DELETE FROM devices WHERE account_id = ? AND hold_id IS NULL RETURNING device_id`, account[:])
		if err != nil {
			return err
		}
		for rows.Next() {
			var r uint32
			if err := rows.Scan(&r); err != nil {
				rows.Close()
				return err
			}
			removed = append(removed, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if err := insertDevice(ctx, tx, account, id, d.RegistrationID, d.CredentialHash, day); err != nil {
			return err
		}
		return storePreKeys(ctx, tx, account, id, &d.PreKeys)
	})
	if err != nil {
		return store.Device{}, nil, s.translate(ctx, err)
	}
	return store.Device{Account: account, DeviceID: id, RegistrationID: d.RegistrationID, CredentialHash: clone(d.CredentialHash),
		CreatedAt: rules.FromUnix(day), LastSeen: rules.FromUnix(day)}, removed, nil
}

var _ store.BackupStore = (*Store)(nil)

// PutAccountBackup implements [store.BackupStore].
func (s *Store) PutAccountBackup(ctx context.Context, account store.AccountID, data []byte, now time.Time) error {
	err := s.write1(ctx, func(ctx context.Context, tx *wtx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE id = ?`, account[:]).Scan(&one); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO account_backups (account_id, data, updated_day) VALUES (?, ?, ?)
			ON CONFLICT (account_id) DO UPDATE SET data = excluded.data, updated_day = excluded.updated_day`, account[:], data, rules.Day(now))
		return err
	})
	return s.translate(ctx, err)
}

// AccountBackup implements [store.BackupStore].
func (s *Store) AccountBackup(ctx context.Context, account store.AccountID) ([]byte, error) {
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	var b []byte
	err = r.queryRow(ctx, `SELECT data FROM account_backups WHERE account_id = ?`, account[:]).Scan(&b)
	return b, s.translate(ctx, err)
}
