package postgres

import (
	"context"
	"time"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/internal/rules"
)

var _ store.DeviceExpirer = (*Store)(nil)

// ExpireDevices implements [store.DeviceExpirer].
func (s *Store) ExpireDevices(ctx context.Context, cutoff time.Time) ([]store.DeviceRef, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	rows, err := s.pool.Query(ctx, `DELETE FROM devices WHERE device_id > 1 AND last_seen_day < $1 RETURNING account_id, device_id`, rules.Day(cutoff))
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
