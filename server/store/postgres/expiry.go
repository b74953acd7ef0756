package postgres

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
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	rows, err := s.pool.Query(ctx, `DELETE FROM devices d WHERE d.last_seen_day < $1 AND d.hold_id IS NULL
		AND d.device_id > (SELECT min(d2.device_id) FROM devices d2 WHERE d2.account_id = d.account_id AND d2.hold_id IS NULL)
		RETURNING d.account_id, d.device_id`, rules.Day(cutoff))
	if err != nil {
		return nil, s.translate(ctx, err)
	}
	defer rows.Close()
	var out []store.DeviceRef
	for rows.Next() {
		var (
			a [16]byte
			d store.DeviceRef
		)
		if err := rows.Scan(&a, &d.DeviceID); err != nil {
			return nil, s.translate(ctx, err)
		}
		d.Account = a
		out = append(out, d)
	}
	return out, s.translate(ctx, rows.Err())
}

var _ store.DeviceNamer = (*Store)(nil)

// SetDeviceName implements [store.DeviceNamer].
func (s *Store) SetDeviceName(ctx context.Context, account store.AccountID, deviceID uint32, name []byte) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	tag, err := s.pool.Exec(ctx, `UPDATE devices SET name = $1 WHERE account_id = $2 AND device_id = $3`, name, uid(account), deviceID)
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrNotFound
	}
	return s.translate(ctx, err)
}

// DeviceNames implements [store.DeviceNamer].
func (s *Store) DeviceNames(ctx context.Context, account store.AccountID) (map[uint32][]byte, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	rows, err := s.pool.Query(ctx, `SELECT device_id, name FROM devices WHERE account_id = $1 AND name IS NOT NULL`, uid(account))
	if err != nil {
		return nil, s.translate(ctx, err)
	}
	defer rows.Close()
	out := map[uint32][]byte{}
	for rows.Next() {
		var (
			id   int64
			name []byte
		)
		if err := rows.Scan(&id, &name); err != nil {
			return nil, s.translate(ctx, err)
		}
		out[uint32(id)] = name
	}
	return out, s.translate(ctx, rows.Err())
}
