package sqlite

import (
	"context"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

var _ store.AuditPruner = (*Store)(nil)

// PruneAudit implements [store.AuditPruner].
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (uint64, int64, error) {
	var (
		anchor int64
		pruned int64
	)
	err := s.write(ctx, func(ctx context.Context, tx *wtx) error {
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(c.seq), 0) FROM audit_checkpoints c JOIN audit_log e ON e.seq = c.seq WHERE e.minute < ?`,
			before.Unix()).Scan(&anchor); err != nil {
			return err
		}
		if anchor == 0 {
			return nil
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM audit_log WHERE seq <= ?`, anchor)
		if err != nil {
			return err
		}
		if pruned, err = res.RowsAffected(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM audit_checkpoints WHERE seq < ?`, anchor)
		return err
	})
	return uint64(anchor), pruned, s.translate(ctx, err)
}
