// Package faultstore wraps a real [store.Store] to inject faults in tests:
// errors, delays or panics before any method. Wrapping the real store
// (rather than faking one) keeps every other behaviour exactly the
// contract's, which the conformance suite checks for the real stores.
package faultstore

import (
	"context"
	"sync"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

// Store forwards to the wrapped store after asking the injector.
type Store struct {
	s  store.Store
	mu sync.RWMutex
	fn func(op string) error
}

var _ store.Store = (*Store)(nil)

// Wrap returns a Store that forwards to s.
func Wrap(s store.Store) *Store { return &Store{s: s} }

// Inject sets the function called with the method name before every
// call; a non-nil result is returned instead of calling the store. It may
// also sleep or panic. nil removes it.
func (f *Store) Inject(fn func(op string) error) {
	f.mu.Lock()
	f.fn = fn
	f.mu.Unlock()
}

func (f *Store) fault(op string) error {
	f.mu.RLock()
	fn := f.fn
	f.mu.RUnlock()
	if fn == nil {
		return nil
	}
	return fn(op)
}

func (f *Store) CreateAccount(ctx context.Context, a store.NewAccount) (store.Account, error) {
	if err := f.fault("CreateAccount"); err != nil {
		return store.Account{}, err
	}
	return f.s.CreateAccount(ctx, a)
}

func (f *Store) Account(ctx context.Context, id store.AccountID) (store.Account, error) {
	if err := f.fault("Account"); err != nil {
		return store.Account{}, err
	}
	return f.s.Account(ctx, id)
}

func (f *Store) AccountByUsername(ctx context.Context, u string) (store.Account, error) {
	if err := f.fault("AccountByUsername"); err != nil {
		return store.Account{}, err
	}
	return f.s.AccountByUsername(ctx, u)
}

func (f *Store) Device(ctx context.Context, a store.AccountID, d uint32) (store.Device, error) {
	if err := f.fault("Device"); err != nil {
		return store.Device{}, err
	}
	return f.s.Device(ctx, a, d)
}

func (f *Store) Devices(ctx context.Context, a store.AccountID) ([]store.Device, error) {
	if err := f.fault("Devices"); err != nil {
		return nil, err
	}
	return f.s.Devices(ctx, a)
}

func (f *Store) TouchDevice(ctx context.Context, a store.AccountID, d uint32, now time.Time) error {
	if err := f.fault("TouchDevice"); err != nil {
		return err
	}
	return f.s.TouchDevice(ctx, a, d, now)
}

func (f *Store) AddDevice(ctx context.Context, a store.AccountID, nd store.NewDevice, max int) (store.Device, error) {
	if err := f.fault("AddDevice"); err != nil {
		return store.Device{}, err
	}
	return f.s.AddDevice(ctx, a, nd, max)
}

func (f *Store) RemoveDevice(ctx context.Context, a store.AccountID, d uint32) error {
	if err := f.fault("RemoveDevice"); err != nil {
		return err
	}
	return f.s.RemoveDevice(ctx, a, d)
}

func (f *Store) StorePreKeys(ctx context.Context, a store.AccountID, d uint32, up store.PreKeyUpload) error {
	if err := f.fault("StorePreKeys"); err != nil {
		return err
	}
	return f.s.StorePreKeys(ctx, a, d, up)
}

func (f *Store) PreKeyCounts(ctx context.Context, a store.AccountID, d uint32) (store.PreKeyCounts, error) {
	if err := f.fault("PreKeyCounts"); err != nil {
		return store.PreKeyCounts{}, err
	}
	return f.s.PreKeyCounts(ctx, a, d)
}

func (f *Store) TakeBundles(ctx context.Context, a store.AccountID, d uint32) ([]store.Bundle, error) {
	if err := f.fault("TakeBundles"); err != nil {
		return nil, err
	}
	return f.s.TakeBundles(ctx, a, d)
}

func (f *Store) Deliver(ctx context.Context, s store.Send) (store.SendResult, error) {
	if err := f.fault("Deliver"); err != nil {
		return store.SendResult{}, err
	}
	return f.s.Deliver(ctx, s)
}

func (f *Store) Pending(ctx context.Context, a store.AccountID, d uint32, after int64, limit int) ([]store.Envelope, error) {
	if err := f.fault("Pending"); err != nil {
		return nil, err
	}
	return f.s.Pending(ctx, a, d, after, limit)
}

func (f *Store) Ack(ctx context.Context, a store.AccountID, d uint32, seq int64) error {
	if err := f.fault("Ack"); err != nil {
		return err
	}
	return f.s.Ack(ctx, a, d, seq)
}

func (f *Store) QueueDepth(ctx context.Context, a store.AccountID, d uint32) (int, error) {
	if err := f.fault("QueueDepth"); err != nil {
		return 0, err
	}
	return f.s.QueueDepth(ctx, a, d)
}

func (f *Store) Sweep(ctx context.Context, ec, dc time.Time) (int, error) {
	if err := f.fault("Sweep"); err != nil {
		return 0, err
	}
	return f.s.Sweep(ctx, ec, dc)
}

func (f *Store) TakeToken(ctx context.Context, key []byte, burst int, interval time.Duration, now time.Time) (bool, time.Duration, error) {
	if err := f.fault("TakeToken"); err != nil {
		return false, 0, err
	}
	return f.s.TakeToken(ctx, key, burst, interval, now)
}

func (f *Store) Ping(ctx context.Context) error {
	if err := f.fault("Ping"); err != nil {
		return err
	}
	return f.s.Ping(ctx)
}

func (f *Store) Close() error { return f.s.Close() }
