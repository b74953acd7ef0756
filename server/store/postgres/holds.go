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

var _ store.LegalHolds = (*Store)(nil)

// Lock order: a hold's transactions lock the account row first (as
// AddDevice, ReplaceDevices and EraseAccount do), then the hold row,
// then device rows, so they cannot deadlock with those or each other.

const holdCols = `id, account_id, state, device_id, identity_key, record, version, updated_at`

func scanHold(row pgx.Row) (store.Hold, error) {
	var (
		h       store.Hold
		id      []byte
		acc     [16]byte
		state   string
		dev     *int64
		updated int64
	)
	if err := row.Scan(&id, &acc, &state, &dev, &h.IdentityKey, &h.Record, &h.Version, &updated); err != nil {
		return store.Hold{}, err
	}
	copy(h.ID[:], id)
	h.Account, h.State, h.UpdatedAt = acc, store.HoldState(state), rules.FromUnix(updated)
	if dev != nil {
		h.DeviceID = uint32(*dev)
	}
	if h.Record == nil {
		h.Record = []byte{}
	}
	return h, nil
}

// lockHold locks the hold's account row, then the hold row, and checks
// the hold is at version and in one of states: ErrNotFound, else
// ErrConflict.
func lockHold(ctx context.Context, tx pgx.Tx, id [16]byte, version int64, states ...store.HoldState) (store.Hold, error) {
	var acc [16]byte
	if err := tx.QueryRow(ctx, `SELECT account_id FROM legal_holds WHERE id = $1`, id[:]).Scan(&acc); err != nil {
		return store.Hold{}, err
	}
	var one int
	if err := tx.QueryRow(ctx, `SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE`, acc).Scan(&one); err != nil {
		return store.Hold{}, err
	}
	// A locked row is read in its latest committed version: a concurrent
	// change that committed first is seen here, and this one conflicts.
	h, err := scanHold(tx.QueryRow(ctx, `SELECT `+holdCols+` FROM legal_holds WHERE id = $1 FOR UPDATE`, id[:]))
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
	return s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO legal_holds (id, account_id, state, record, version, updated_at)
			SELECT $1, a.id, 'pending', $3, 1, $4 FROM accounts a WHERE a.id = $2`,
			h.ID[:], uid(h.Account), rules.NonNil(h.Record), rules.Second(h.UpdatedAt))
		if code, _ := pgCode(err); code == codeUniqueViolation {
			return fmt.Errorf("%w: hold id already exists", store.ErrInvalid)
		}
		if err == nil && tag.RowsAffected() == 0 {
			err = store.ErrNotFound
		}
		return err
	})
}

// Hold implements [store.LegalHolds].
func (s *Store) Hold(ctx context.Context, id [16]byte) (store.Hold, error) {
	if s.closed.Load() {
		return store.Hold{}, store.ErrClosed
	}
	h, err := scanHold(s.pool.QueryRow(ctx, `SELECT `+holdCols+` FROM legal_holds WHERE id = $1`, id[:]))
	return h, s.translate(ctx, err)
}

// Holds implements [store.LegalHolds].
func (s *Store) Holds(ctx context.Context, account *store.AccountID, activeOnly bool) ([]store.Hold, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	var acc *[16]byte // NULL: every account
	if account != nil {
		a := uid(*account)
		acc = &a
	}
	rows, err := s.pool.Query(ctx, `SELECT `+holdCols+` FROM legal_holds
		WHERE ($1::uuid IS NULL OR account_id = $1) AND (NOT $2 OR state = 'active') ORDER BY seq`, acc, activeOnly)
	if err != nil {
		return nil, s.translate(ctx, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Hold, error) { return scanHold(r) })
	return out, s.translate(ctx, err)
}

// UpdateHoldRecord implements [store.LegalHolds].
func (s *Store) UpdateHoldRecord(ctx context.Context, id [16]byte, version int64, record []byte, now time.Time) (store.Hold, error) {
	var h store.Hold
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := lockHold(ctx, tx, id, version, store.HoldPending); err != nil {
			return err
		}
		var err error
		h, err = scanHold(tx.QueryRow(ctx, `UPDATE legal_holds SET record = $2, version = version + 1, updated_at = $3
			WHERE id = $1 RETURNING `+holdCols, id[:], rules.NonNil(record), rules.Second(now)))
		return err
	})
	if err != nil {
		return store.Hold{}, err
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
	err := s.tx(ctx, func(tx pgx.Tx) error {
		cur, err := lockHold(ctx, tx, id, version, store.HoldPending)
		if err != nil {
			return err
		}
		acc := cur.Account
		if err := tx.QueryRow(ctx, `UPDATE accounts SET next_device_id = next_device_id + 1 WHERE id = $1 RETURNING next_device_id - 1`, uid(acc)).Scan(&dev); err != nil {
			return err
		}
		if err := insertDevice(ctx, tx, acc, dev, d.RegistrationID, d.CredentialHash, day); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE devices SET hold_id = $3 WHERE account_id = $1 AND device_id = $2`, uid(acc), dev, id[:]); err != nil {
			return err
		}
		if err := storePreKeys(ctx, tx, acc, dev, &d.PreKeys); err != nil {
			return err
		}
		h, err = scanHold(tx.QueryRow(ctx, `UPDATE legal_holds SET state = 'active', device_id = $2, identity_key = $3, record = $4,
			version = version + 1, updated_at = $5 WHERE id = $1 RETURNING `+holdCols,
			id[:], dev, identityKey, rules.NonNil(record), rules.Second(d.Now)))
		return err
	})
	if err != nil {
		return store.Hold{}, store.Device{}, err
	}
	return h, store.Device{Account: h.Account, DeviceID: dev, RegistrationID: d.RegistrationID, CredentialHash: clone(d.CredentialHash),
		CreatedAt: rules.FromUnix(day), LastSeen: rules.FromUnix(day), Compliance: true}, nil
}

// LiftHold implements [store.LegalHolds]; foreign keys cascade the
// compliance device's removal to its prekeys and envelopes.
func (s *Store) LiftHold(ctx context.Context, id [16]byte, version int64, record []byte, now time.Time) (store.Hold, error) {
	var h store.Hold
	err := s.tx(ctx, func(tx pgx.Tx) error {
		cur, err := lockHold(ctx, tx, id, version, store.HoldPending, store.HoldActive)
		if err != nil {
			return err
		}
		if cur.State == store.HoldActive {
			if _, err := tx.Exec(ctx, `DELETE FROM devices WHERE account_id = $1 AND device_id = $2 AND hold_id = $3`,
				uid(cur.Account), cur.DeviceID, id[:]); err != nil {
				return err
			}
		}
		h, err = scanHold(tx.QueryRow(ctx, `UPDATE legal_holds SET state = 'lifted', record = $2, version = version + 1, updated_at = $3
			WHERE id = $1 RETURNING `+holdCols, id[:], rules.NonNil(record), rules.Second(now)))
		return err
	})
	if err != nil {
		return store.Hold{}, err
	}
	return h, nil
}

// ComplianceDevices implements [store.LegalHolds].
func (s *Store) ComplianceDevices(ctx context.Context, account store.AccountID) (map[uint32][16]byte, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	rows, err := s.pool.Query(ctx, `SELECT device_id, hold_id FROM devices WHERE account_id = $1 AND hold_id IS NOT NULL`, uid(account))
	if err != nil {
		return nil, s.translate(ctx, err)
	}
	defer rows.Close()
	out := map[uint32][16]byte{}
	for rows.Next() {
		var (
			dev  int64
			hold []byte
			id   [16]byte
		)
		if err := rows.Scan(&dev, &hold); err != nil {
			return nil, s.translate(ctx, err)
		}
		copy(id[:], hold)
		out[uint32(dev)] = id
	}
	return out, s.translate(ctx, rows.Err())
}

// Setting implements [store.LegalHolds].
func (s *Store) Setting(ctx context.Context, name string) (string, error) {
	if s.closed.Load() {
		return "", store.ErrClosed
	}
	var v string
	err := s.pool.QueryRow(ctx, `SELECT value FROM server_settings WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return v, s.translate(ctx, err)
}

// SetSetting implements [store.LegalHolds].
func (s *Store) SetSetting(ctx context.Context, name, value string) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO server_settings (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
	return s.translate(ctx, err)
}
