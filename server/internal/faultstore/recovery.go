package faultstore

import (
	"context"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

var _ store.Recovery = (*Store)(nil)

func (f *Store) recovery() (store.Recovery, error) {
	r, ok := f.s.(store.Recovery)
	if !ok {
		return nil, store.ErrInvalid
	}
	return r, nil
}

func (f *Store) SetRecoveryHash(ctx context.Context, account store.AccountID, hash []byte) error {
	if err := f.fault("SetRecoveryHash"); err != nil {
		return err
	}
	r, err := f.recovery()
	if err != nil {
		return err
	}
	return r.SetRecoveryHash(ctx, account, hash)
}

func (f *Store) RecoveryHash(ctx context.Context, account store.AccountID) ([]byte, error) {
	if err := f.fault("RecoveryHash"); err != nil {
		return nil, err
	}
	r, err := f.recovery()
	if err != nil {
		return nil, err
	}
	return r.RecoveryHash(ctx, account)
}

func (f *Store) ReplaceDevices(ctx context.Context, account store.AccountID, d store.NewDevice) (store.Device, []uint32, error) {
	if err := f.fault("ReplaceDevices"); err != nil {
		return store.Device{}, nil, err
	}
	r, err := f.recovery()
	if err != nil {
		return store.Device{}, nil, err
	}
	return r.ReplaceDevices(ctx, account, d)
}

var _ store.BackupStore = (*Store)(nil)

func (f *Store) PutAccountBackup(ctx context.Context, account store.AccountID, data []byte, now time.Time) error {
	if err := f.fault("PutAccountBackup"); err != nil {
		return err
	}
	b, ok := f.s.(store.BackupStore)
	if !ok {
		return store.ErrInvalid
	}
	return b.PutAccountBackup(ctx, account, data, now)
}

func (f *Store) AccountBackup(ctx context.Context, account store.AccountID) ([]byte, error) {
	if err := f.fault("AccountBackup"); err != nil {
		return nil, err
	}
	b, ok := f.s.(store.BackupStore)
	if !ok {
		return nil, store.ErrInvalid
	}
	return b.AccountBackup(ctx, account)
}
