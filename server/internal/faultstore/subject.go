package faultstore

import (
	"context"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

var _ store.DataSubject = (*Store)(nil)

func (f *Store) subject() (store.DataSubject, error) {
	s, ok := f.s.(store.DataSubject)
	if !ok {
		return nil, store.ErrInvalid
	}
	return s, nil
}

func (f *Store) ExportAccount(ctx context.Context, id store.AccountID) (store.AccountData, error) {
	if err := f.fault("ExportAccount"); err != nil {
		return store.AccountData{}, err
	}
	s, err := f.subject()
	if err != nil {
		return store.AccountData{}, err
	}
	return s.ExportAccount(ctx, id)
}

func (f *Store) EraseAccount(ctx context.Context, id store.AccountID) (store.Erased, error) {
	if err := f.fault("EraseAccount"); err != nil {
		return store.Erased{}, err
	}
	s, err := f.subject()
	if err != nil {
		return store.Erased{}, err
	}
	return s.EraseAccount(ctx, id)
}

func (f *Store) AccountTraces(ctx context.Context, id store.AccountID) ([]string, error) {
	if err := f.fault("AccountTraces"); err != nil {
		return nil, err
	}
	s, err := f.subject()
	if err != nil {
		return nil, err
	}
	return s.AccountTraces(ctx, id)
}

func (f *Store) InactiveAccounts(ctx context.Context, cutoff time.Time, limit int) ([]store.AccountID, error) {
	if err := f.fault("InactiveAccounts"); err != nil {
		return nil, err
	}
	s, err := f.subject()
	if err != nil {
		return nil, err
	}
	return s.InactiveAccounts(ctx, cutoff, limit)
}
