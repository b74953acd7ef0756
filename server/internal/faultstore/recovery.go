package faultstore

import (
	"context"

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
