package faultstore

import (
	"context"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

var _ store.Provisioner = (*Store)(nil)

// prov is the wrapped store's Provisioner; the backends both implement it.
func (f *Store) prov() (store.Provisioner, error) {
	p, ok := f.s.(store.Provisioner)
	if !ok {
		return nil, store.ErrInvalid
	}
	return p, nil
}

func (f *Store) CreateLinkToken(ctx context.Context, tokenHash []byte, account store.AccountID, expires time.Time) error {
	if err := f.fault("CreateLinkToken"); err != nil {
		return err
	}
	p, err := f.prov()
	if err != nil {
		return err
	}
	return p.CreateLinkToken(ctx, tokenHash, account, expires)
}

func (f *Store) UseLinkToken(ctx context.Context, tokenHash []byte, now time.Time) (store.AccountID, error) {
	if err := f.fault("UseLinkToken"); err != nil {
		return store.AccountID{}, err
	}
	p, err := f.prov()
	if err != nil {
		return store.AccountID{}, err
	}
	return p.UseLinkToken(ctx, tokenHash, now)
}

func (f *Store) PutProvisioning(ctx context.Context, idHash, message []byte, expires time.Time) error {
	if err := f.fault("PutProvisioning"); err != nil {
		return err
	}
	p, err := f.prov()
	if err != nil {
		return err
	}
	return p.PutProvisioning(ctx, idHash, message, expires)
}

func (f *Store) TakeProvisioning(ctx context.Context, idHash []byte, now time.Time) ([]byte, error) {
	if err := f.fault("TakeProvisioning"); err != nil {
		return nil, err
	}
	p, err := f.prov()
	if err != nil {
		return nil, err
	}
	return p.TakeProvisioning(ctx, idHash, now)
}

func (f *Store) SweepProvisioning(ctx context.Context, now time.Time) error {
	if err := f.fault("SweepProvisioning"); err != nil {
		return err
	}
	p, err := f.prov()
	if err != nil {
		return err
	}
	return p.SweepProvisioning(ctx, now)
}

var _ store.Blobs = (*Store)(nil)

func (f *Store) blobs() (store.Blobs, error) {
	b, ok := f.s.(store.Blobs)
	if !ok {
		return nil, store.ErrInvalid
	}
	return b, nil
}

func (f *Store) PutBlob(ctx context.Context, idHash []byte, account store.AccountID, data []byte, expires time.Time) error {
	if err := f.fault("PutBlob"); err != nil {
		return err
	}
	b, err := f.blobs()
	if err != nil {
		return err
	}
	return b.PutBlob(ctx, idHash, account, data, expires)
}

func (f *Store) TakeBlob(ctx context.Context, idHash []byte, account store.AccountID, now time.Time) ([]byte, error) {
	if err := f.fault("TakeBlob"); err != nil {
		return nil, err
	}
	b, err := f.blobs()
	if err != nil {
		return nil, err
	}
	return b.TakeBlob(ctx, idHash, account, now)
}

func (f *Store) SweepBlobs(ctx context.Context, now time.Time) error {
	if err := f.fault("SweepBlobs"); err != nil {
		return err
	}
	b, err := f.blobs()
	if err != nil {
		return err
	}
	return b.SweepBlobs(ctx, now)
}

var _ store.DeviceExpirer = (*Store)(nil)

func (f *Store) ExpireDevices(ctx context.Context, cutoff time.Time) ([]store.DeviceRef, error) {
	if err := f.fault("ExpireDevices"); err != nil {
		return nil, err
	}
	x, ok := f.s.(store.DeviceExpirer)
	if !ok {
		return nil, store.ErrInvalid
	}
	return x.ExpireDevices(ctx, cutoff)
}

var _ store.DeviceNamer = (*Store)(nil)

func (f *Store) SetDeviceName(ctx context.Context, account store.AccountID, deviceID uint32, name []byte) error {
	if err := f.fault("SetDeviceName"); err != nil {
		return err
	}
	n, ok := f.s.(store.DeviceNamer)
	if !ok {
		return store.ErrInvalid
	}
	return n.SetDeviceName(ctx, account, deviceID, name)
}

func (f *Store) DeviceNames(ctx context.Context, account store.AccountID) (map[uint32][]byte, error) {
	if err := f.fault("DeviceNames"); err != nil {
		return nil, err
	}
	n, ok := f.s.(store.DeviceNamer)
	if !ok {
		return nil, store.ErrInvalid
	}
	return n.DeviceNames(ctx, account)
}
