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

var _ store.LegalHolds = (*Store)(nil)

const holdCols = `id, account_id, state, device_id, identity_key, record, version, updated_at`

func scanHold(row rowScanner) (store.Hold, error) {
	var (
		h       store.Hold
		id, acc []byte
		state   string
		dev     sql.NullInt64
		updated int64
	)
	if err := row.Scan(&id, &acc, &state, &dev, &h.IdentityKey, &h.Record, &h.Version, &updated); err != nil {
		return store.Hold{}, err
	}
	copy(h.ID[:], id)
	copy(h.Account[:], acc)
	h.State, h.DeviceID, h.UpdatedAt = store.HoldState(state), uint32(dev.Int64), rules.FromUnix(updated)
	if h.Record == nil {
		h.Record = []byte{}
	}
	return h, nil
}

// holdForUpdate reads a hold inside the writer's transaction and checks
// it is at version and in one of states: ErrNotFound, else ErrConflict.
func holdForUpdate(ctx context.Context, tx *wtx, id [16]byte, version int64, states ...store.HoldState) (store.Hold, error) {
	h, err := scanHold(tx.QueryRowContext(ctx, `SELECT `+holdCols+` FROM legal_holds WHERE id = ?`, id[:]))
	if err != nil {
		return h, err
	}
	return h, rules.CheckHold(&h, version, states...)
}

// CreateHold implements [store.LegalHolds].
func (s *Store) CreateHold(ctx context.Context, h store.Hold) error {
	if err := rules.ValidateNewHold(&h); err != nil {
		return err
	}
	return s.write(ctx, func(ctx context.Context, tx *wtx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE id = ?`, h.Account[:]).Scan(&one); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO legal_holds (id, seq, account_id, state, record, version, updated_at)
			VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM legal_holds), ?, 'pending', ?, 1, ?)`,
			h.ID[:], h.Account[:], rules.NonNil(h.Record), rules.Second(h.UpdatedAt))
		if isUnique(err) {
			return fmt.Errorf("%w: hold id already exists", store.ErrInvalid)
		}
		return err
	})
}

// Hold implements [store.LegalHolds].
func (s *Store) Hold(ctx context.Context, id [16]byte) (store.Hold, error) {
	r, err := s.reader()
	if err != nil {
		return store.Hold{}, err
	}
	h, err := scanHold(r.queryRow(ctx, `SELECT `+holdCols+` FROM legal_holds WHERE id = ?`, id[:]))
	return h, s.translate(ctx, err)
}

// Holds implements [store.LegalHolds].
func (s *Store) Holds(ctx context.Context, account *store.AccountID, activeOnly bool) ([]store.Hold, error) {
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	var acc []byte // NULL: every account
	if account != nil {
		acc = account[:]
	}
	rows, err := r.query(ctx, `SELECT `+holdCols+` FROM legal_holds
		WHERE (?1 IS NULL OR account_id = ?1) AND (NOT ?2 OR state = 'active') ORDER BY seq`, acc, activeOnly)
	if err != nil {
		return nil, s.translate(ctx, err)
	}
	defer rows.Close()
	var out []store.Hold
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			return nil, s.translate(ctx, err)
		}
		out = append(out, h)
	}
	return out, s.translate(ctx, rows.Err())
}

// UpdateHoldRecord implements [store.LegalHolds].
func (s *Store) UpdateHoldRecord(ctx context.Context, id [16]byte, version int64, record []byte, now time.Time) (store.Hold, error) {
	var h store.Hold
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		if _, err := holdForUpdate(ctx, tx, id, version, store.HoldPending); err != nil {
			return err
		}
		var err error
		h, err = scanHold(tx.QueryRowContext(ctx, `UPDATE legal_holds SET record = ?, version = version + 1, updated_at = ?
			WHERE id = ? RETURNING `+holdCols, rules.NonNil(record), rules.Second(now), id[:]))
		return err
	})
	if err != nil {
		return store.Hold{}, s.translate(ctx, err)
	}
	return h, nil
}

// ActivateHold implements [store.LegalHolds]: the compliance device is
// added as AddDevice adds one (the account's device counter, the same
// prekey storage) but marked with its hold and outside the device limit.
func (s *Store) ActivateHold(ctx context.Context, id [16]byte, version int64, record, identityKey []byte, d store.NewDevice) (store.Hold, store.Device, error) {
	if err := rules.ValidateActivation(identityKey, &d); err != nil {
		return store.Hold{}, store.Device{}, err
	}
	day := rules.Day(d.Now)
	var (
		h   store.Hold
		dev uint32
	)
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		cur, err := holdForUpdate(ctx, tx, id, version, store.HoldPending)
		if err != nil {
			return err
		}
		acc := cur.Account
		if err := tx.QueryRowContext(ctx, `UPDATE accounts SET next_device_id = next_device_id + 1 WHERE id = ? RETURNING next_device_id - 1`, acc[:]).Scan(&dev); err != nil {
			return err
		}
		if err := insertDevice(ctx, tx, acc, dev, d.RegistrationID, d.CredentialHash, day); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE devices SET hold_id = ? WHERE account_id = ? AND device_id = ?`, id[:], acc[:], dev); err != nil {
			return err
		}
		if err := storePreKeys(ctx, tx, acc, dev, &d.PreKeys); err != nil {
			return err
		}
		h, err = scanHold(tx.QueryRowContext(ctx, `UPDATE legal_holds SET state = 'active', device_id = ?, identity_key = ?, record = ?,
			version = version + 1, updated_at = ? WHERE id = ? RETURNING `+holdCols,
			dev, identityKey, rules.NonNil(record), rules.Second(d.Now), id[:]))
		return err
	})
	if err != nil {
		return store.Hold{}, store.Device{}, s.translate(ctx, err)
	}
	return h, store.Device{Account: h.Account, DeviceID: dev, RegistrationID: d.RegistrationID, CredentialHash: clone(d.CredentialHash),
		CreatedAt: rules.FromUnix(day), LastSeen: rules.FromUnix(day), Compliance: true}, nil
}

// LiftHold implements [store.LegalHolds]; foreign keys cascade the
// compliance device's removal to its prekeys and envelopes.
func (s *Store) LiftHold(ctx context.Context, id [16]byte, version int64, record []byte, now time.Time) (store.Hold, error) {
	var h store.Hold
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		cur, err := holdForUpdate(ctx, tx, id, version, store.HoldPending, store.HoldActive)
		if err != nil {
			return err
		}
		if cur.State == store.HoldActive {
			if _, err := tx.ExecContext(ctx, `DELETE FROM devices WHERE account_id = ? AND device_id = ? AND hold_id = ?`,
				cur.Account[:], cur.DeviceID, id[:]); err != nil {
				return err
			}
		}
		h, err = scanHold(tx.QueryRowContext(ctx, `UPDATE legal_holds SET state = 'lifted', record = ?, version = version + 1, updated_at = ?
			WHERE id = ? RETURNING `+holdCols, rules.NonNil(record), rules.Second(now), id[:]))
		return err
	})
	if err != nil {
		return store.Hold{}, s.translate(ctx, err)
	}
	return h, nil
}

// ComplianceDevices implements [store.LegalHolds].
func (s *Store) ComplianceDevices(ctx context.Context, account store.AccountID) (map[uint32][16]byte, error) {
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := r.query(ctx, `SELECT device_id, hold_id FROM devices WHERE account_id = ? AND hold_id IS NOT NULL`, account[:])
	if err != nil {
		return nil, s.translate(ctx, err)
	}
	defer rows.Close()
	out := map[uint32][16]byte{}
	for rows.Next() {
		var (
			dev  uint32
			hold []byte
			id   [16]byte
		)
		if err := rows.Scan(&dev, &hold); err != nil {
			return nil, s.translate(ctx, err)
		}
		copy(id[:], hold)
		out[dev] = id
	}
	return out, s.translate(ctx, rows.Err())
}

// Setting implements [store.LegalHolds].
func (s *Store) Setting(ctx context.Context, name string) (string, error) {
	r, err := s.reader()
	if err != nil {
		return "", err
	}
	var v string
	err = r.queryRow(ctx, `SELECT value FROM server_settings WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, s.translate(ctx, err)
}

// SetSetting implements [store.LegalHolds].
func (s *Store) SetSetting(ctx context.Context, name, value string) error {
	return s.write1(ctx, func(ctx context.Context, tx *wtx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO server_settings (name, value) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
		return err
	})
}
