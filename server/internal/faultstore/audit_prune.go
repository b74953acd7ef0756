package faultstore

import (
	"context"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

var _ store.AuditPruner = (*Store)(nil)

func (f *Store) PruneAudit(ctx context.Context, before time.Time) (uint64, int64, error) {
	if err := f.fault("PruneAudit"); err != nil {
		return 0, 0, err
	}
	p, ok := f.s.(store.AuditPruner)
	if !ok {
		return 0, 0, store.ErrInvalid
	}
	return p.PruneAudit(ctx, before)
}
