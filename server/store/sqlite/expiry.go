package sqlite

import (
	"context"
	"time"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/internal/rules"
)

var _ store.DeviceExpirer = (*Store)(nil)

// ExpireDevices implements [store.DeviceExpirer]. Compliance devices
// (legal holds) never expire and are never the oldest device kept.
func (s *Store) ExpireDevices(ctx context.Context, cutoff time.Time) ([]store.DeviceRef, error) {
	var out []store.DeviceRef
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `DELETE FROM devices WHERE last_seen_day < ? AND hold_id IS NULL
			AND device_id > (SELECT min(d2.device_id) FROM devices d2 WHERE d2.account_id = devices.account_id AND d2.hold_id IS NULL)
			RETURNING account_id, device_id`, rules.Day(cutoff))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				a []byte
				d store.DeviceRef
			)
			if err := rows.Scan(&a, &d.DeviceID); err != nil {
				return err
			}
			copy(d.Account[:], a)
			out = append(out, d)
		}
		return rows.Err()
	})
	return out, s.translate(ctx, err)
}

var _ store.DeviceNamer = (*Store)(nil)

// SetDeviceName implements [store.DeviceNamer].
func (s *Store) SetDeviceName(ctx context.Context, account store.AccountID, deviceID uint32, name []byte) error {
	err := s.write1(ctx, func(ctx context.Context, tx *wtx) error {
		res, err := tx.ExecContext(ctx, `UPDATE devices SET name = ? WHERE account_id = ? AND device_id = ?`, name, account[:], deviceID)
		return mustAffect(res, err)
	})
	return s.translate(ctx, err)
}

// DeviceNames implements [store.DeviceNamer].
func (s *Store) DeviceNames(ctx context.Context, account store.AccountID) (map[uint32][]byte, error) {
	r, err := s.reader()
	if err != nil {
		return nil, err
	}
	rows, err := r.query(ctx, `SELECT device_id, name FROM devices WHERE account_id = ? AND name IS NOT NULL`, account[:])
	if err != nil {
		return nil, s.translate(ctx, err)
	}
	defer rows.Close()
	out := map[uint32][]byte{}
	for rows.Next() {
		var (
			id   uint32
			name []byte
		)
		if err := rows.Scan(&id, &name); err != nil {
			return nil, s.translate(ctx, err)
		}
		out[id] = name
	}
	return out, s.translate(ctx, rows.Err())
}
