package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/veil-e2ee/veil/server/store"
)

var _ store.AuditPruner = (*Store)(nil)

// PruneAudit implements [store.AuditPruner].
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (uint64, int64, error) {
	var (
		anchor int64
		pruned int64
	)
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(c.seq), 0) FROM audit_checkpoints c JOIN audit_log e ON e.seq = c.seq WHERE e.minute < $1`,
			before.Unix()).Scan(&anchor); err != nil {
			return err
		}
		if anchor == 0 {
			return nil
		}
		tag, err := tx.Exec(ctx, `DELETE FROM audit_log WHERE seq <= $1`, anchor)
		if err != nil {
			return err
		}
		pruned = tag.RowsAffected()
		_, err = tx.Exec(ctx, `DELETE FROM audit_checkpoints WHERE seq < $1`, anchor)
		return err
	})
	return uint64(anchor), pruned, s.translate(ctx, err)
}
