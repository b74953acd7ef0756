package faultstore

import (
	"context"

	"github.com/veil-e2ee/veil/server/store"
)

var _ store.SealedAccess = (*Store)(nil)

func (f *Store) access() (store.SealedAccess, error) {
	a, ok := f.s.(store.SealedAccess)
	if !ok {
		return nil, store.ErrInvalid
	}
	return a, nil
}

func (f *Store) SetAccess(ctx context.Context, account store.AccountID, a store.Access) error {
	if err := f.fault("SetAccess"); err != nil {
		return err
	}
	s, err := f.access()
	if err != nil {
		return err
	}
	return s.SetAccess(ctx, account, a)
}

func (f *Store) AccessOf(ctx context.Context, accounts []store.AccountID) (map[store.AccountID]store.Access, error) {
	if err := f.fault("AccessOf"); err != nil {
		return nil, err
	}
	s, err := f.access()
	if err != nil {
		return nil, err
	}
	return s.AccessOf(ctx, accounts)
}
