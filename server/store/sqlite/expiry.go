package sqlite

import (
	"context"
	"time"

	"github.com/veil-e2ee/veil/server/store"
	"github.com/veil-e2ee/veil/server/store/internal/rules"
)

var _ store.DeviceExpirer = (*Store)(nil)

// ExpireDevices implements [store.DeviceExpirer].
func (s *Store) ExpireDevices(ctx context.Context, cutoff time.Time) ([]store.DeviceRef, error) {
	var out []store.DeviceRef
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		out = out[:0]
		rows, err := tx.QueryContext(ctx, `DELETE FROM devices WHERE device_id > 1 AND last_seen_day < ? RETURNING account_id, device_id`, rules.Day(cutoff))
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
