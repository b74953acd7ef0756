package faultstore

import (
	"context"

	"github.com/veil-e2ee/veil/server/store"
)

var _ store.AuditLog = (*Store)(nil)

func (f *Store) auditLog() (store.AuditLog, error) {
	a, ok := f.s.(store.AuditLog)
	if !ok {
		return nil, store.ErrInvalid
	}
	return a, nil
}

func (f *Store) AppendAudit(ctx context.Context, e store.AuditEntry, seal func(e *store.AuditEntry) error) (store.AuditEntry, error) {
	if err := f.fault("AppendAudit"); err != nil {
		return store.AuditEntry{}, err
	}
	a, err := f.auditLog()
	if err != nil {
		return store.AuditEntry{}, err
	}
	return a.AppendAudit(ctx, e, seal)
}

func (f *Store) AuditHead(ctx context.Context) (uint64, []byte, error) {
	if err := f.fault("AuditHead"); err != nil {
		return 0, nil, err
	}
	a, err := f.auditLog()
	if err != nil {
		return 0, nil, err
	}
	return a.AuditHead(ctx)
}

func (f *Store) ListAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error) {
	if err := f.fault("ListAudit"); err != nil {
		return nil, err
	}
	a, err := f.auditLog()
	if err != nil {
		return nil, err
	}
	return a.ListAudit(ctx, q)
}

func (f *Store) PutAuditCheckpoint(ctx context.Context, c store.AuditCheckpoint) error {
	if err := f.fault("PutAuditCheckpoint"); err != nil {
		return err
	}
	a, err := f.auditLog()
	if err != nil {
		return err
	}
	return a.PutAuditCheckpoint(ctx, c)
}

func (f *Store) AuditCheckpoints(ctx context.Context, after uint64, limit int) ([]store.AuditCheckpoint, error) {
	if err := f.fault("AuditCheckpoints"); err != nil {
		return nil, err
	}
	a, err := f.auditLog()
	if err != nil {
		return nil, err
	}
	return a.AuditCheckpoints(ctx, after, limit)
}
