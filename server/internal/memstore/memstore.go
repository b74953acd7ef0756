// Package memstore is an in-memory [store.Store] for the server's tests:
// fast, dependency-free, and able to inject faults (see [Store.Inject]).
// It follows the contract of package store; the real implementations are
// server/store/sqlite and server/store/postgres.
package memstore

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

// MaxDevices is the per-account device bound this fake enforces.
const MaxDevices = 6

type devKey struct {
	a store.AccountID
	d uint32
}

type device struct {
	dev   store.Device
	spk   store.SignedPreKey
	lrk   store.SignedPreKey
	ec    []store.PreKey
	kem   []store.SignedPreKey
	queue []store.Envelope
	seq   int64
}

type bucket struct {
	tokens float64
	at     time.Time
}

// Store is the in-memory store. The zero value is not usable; call New.
type Store struct {
	mu       sync.Mutex
	accounts map[store.AccountID]store.Account
	nextDev  map[store.AccountID]uint32
	byName   map[string]store.AccountID
	devices  map[devKey]*device
	dedup    map[[32]byte]time.Time
	buckets  map[string]bucket
	closed   bool

	// Inject, when set, is called at the start of every method with the
	// method's name; a non-nil result is returned as the method's error.
	Inject func(op string) error
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		accounts: make(map[store.AccountID]store.Account),
		nextDev:  make(map[store.AccountID]uint32),
		byName:   make(map[string]store.AccountID),
		devices:  make(map[devKey]*device),
		dedup:    make(map[[32]byte]time.Time),
		buckets:  make(map[string]bucket),
	}
}

func (s *Store) enter(op string) error {
	if s.Inject != nil {
		if err := s.Inject(op); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	return nil
}

func clone(b []byte) []byte { return bytes.Clone(b) }

func (s *Store) CreateAccount(_ context.Context, a store.NewAccount) (store.Account, error) {
	if err := s.enter("CreateAccount"); err != nil {
		return store.Account{}, err
	}
	defer s.mu.Unlock()
	if _, ok := s.byName[a.Username]; ok {
		return store.Account{}, store.ErrUsernameTaken
	}
	if a.PreKeys.SignedPreKey == nil || a.PreKeys.LastResortKEM == nil {
		return store.Account{}, store.ErrInvalid
	}
	acc := store.Account{ID: a.ID, Username: a.Username, IdentityKey: clone(a.IdentityKey), CreatedAt: a.Now.UTC().Truncate(24 * time.Hour)}
	s.nextDev[a.ID] = 2
	s.accounts[a.ID] = acc
	s.byName[a.Username] = a.ID
	d := &device{dev: store.Device{Account: a.ID, DeviceID: 1, RegistrationID: a.RegistrationID,
		CredentialHash: clone(a.CredentialHash), CreatedAt: acc.CreatedAt, LastSeen: a.Now.Truncate(24 * time.Hour)}}
	s.devices[devKey{a.ID, 1}] = d
	applyUpload(d, a.PreKeys)
	return acc, nil
}

func applyUpload(d *device, up store.PreKeyUpload) {
	if up.SignedPreKey != nil {
		d.spk = store.SignedPreKey{KeyID: up.SignedPreKey.KeyID, PublicKey: clone(up.SignedPreKey.PublicKey), Signature: clone(up.SignedPreKey.Signature)}
	}
	if up.LastResortKEM != nil {
		d.lrk = store.SignedPreKey{KeyID: up.LastResortKEM.KeyID, PublicKey: clone(up.LastResortKEM.PublicKey), Signature: clone(up.LastResortKEM.Signature)}
	}
	for _, k := range up.OneTimeEC {
		if slices.ContainsFunc(d.ec, func(o store.PreKey) bool { return o.KeyID == k.KeyID }) {
			continue
		}
		d.ec = append(d.ec, store.PreKey{KeyID: k.KeyID, PublicKey: clone(k.PublicKey)})
	}
	for _, k := range up.OneTimeKEM {
		if slices.ContainsFunc(d.kem, func(o store.SignedPreKey) bool { return o.KeyID == k.KeyID }) {
			continue
		}
		d.kem = append(d.kem, store.SignedPreKey{KeyID: k.KeyID, PublicKey: clone(k.PublicKey), Signature: clone(k.Signature)})
	}
}

func (s *Store) Account(_ context.Context, id store.AccountID) (store.Account, error) {
	if err := s.enter("Account"); err != nil {
		return store.Account{}, err
	}
	defer s.mu.Unlock()
	a, ok := s.accounts[id]
	if !ok {
		return store.Account{}, store.ErrNotFound
	}
	a.IdentityKey = clone(a.IdentityKey)
	return a, nil
}

func (s *Store) AccountByUsername(_ context.Context, username string) (store.Account, error) {
	if err := s.enter("AccountByUsername"); err != nil {
		return store.Account{}, err
	}
	defer s.mu.Unlock()
	id, ok := s.byName[username]
	if !ok {
		return store.Account{}, store.ErrNotFound
	}
	a := s.accounts[id]
	a.IdentityKey = clone(a.IdentityKey)
	return a, nil
}

func (s *Store) Device(_ context.Context, account store.AccountID, deviceID uint32) (store.Device, error) {
	if err := s.enter("Device"); err != nil {
		return store.Device{}, err
	}
	defer s.mu.Unlock()
	d, ok := s.devices[devKey{account, deviceID}]
	if !ok {
		return store.Device{}, store.ErrNotFound
	}
	out := d.dev
	out.CredentialHash = clone(out.CredentialHash)
	return out, nil
}

func (s *Store) Devices(_ context.Context, account store.AccountID) ([]store.Device, error) {
	if err := s.enter("Devices"); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	if _, ok := s.accounts[account]; !ok {
		return nil, store.ErrNotFound
	}
	return s.devicesLocked(account), nil
}

func (s *Store) devicesLocked(account store.AccountID) []store.Device {
	var out []store.Device
	for k, d := range s.devices {
		if k.a == account {
			dd := d.dev
			dd.CredentialHash = clone(dd.CredentialHash)
			out = append(out, dd)
		}
	}
	slices.SortFunc(out, func(a, b store.Device) int { return int(a.DeviceID) - int(b.DeviceID) })
	return out
}

func (s *Store) TouchDevice(_ context.Context, account store.AccountID, deviceID uint32, now time.Time) error {
	if err := s.enter("TouchDevice"); err != nil {
		return err
	}
	defer s.mu.Unlock()
	d, ok := s.devices[devKey{account, deviceID}]
	if !ok {
		return store.ErrNotFound
	}
	d.dev.LastSeen = now.Truncate(24 * time.Hour)
	return nil
}

func (s *Store) AddDevice(_ context.Context, account store.AccountID, nd store.NewDevice, maxDevices int) (store.Device, error) {
	if err := s.enter("AddDevice"); err != nil {
		return store.Device{}, err
	}
	defer s.mu.Unlock()
	if _, ok := s.accounts[account]; !ok {
		return store.Device{}, store.ErrNotFound
	}
	if nd.PreKeys.SignedPreKey == nil || nd.PreKeys.LastResortKEM == nil {
		return store.Device{}, store.ErrInvalid
	}
	if maxDevices > 0 && len(s.devicesLocked(account)) >= maxDevices {
		return store.Device{}, store.ErrDeviceLimit
	}
	id := s.nextDev[account]
	s.nextDev[account] = id + 1
	day := nd.Now.UTC().Truncate(24 * time.Hour)
	d := &device{dev: store.Device{Account: account, DeviceID: id, RegistrationID: nd.RegistrationID,
		CredentialHash: clone(nd.CredentialHash), CreatedAt: day, LastSeen: day}}
	s.devices[devKey{account, id}] = d
	applyUpload(d, nd.PreKeys)
	out := d.dev
	out.CredentialHash = clone(out.CredentialHash)
	return out, nil
}

func (s *Store) RemoveDevice(_ context.Context, account store.AccountID, deviceID uint32) error {
	if err := s.enter("RemoveDevice"); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.devices[devKey{account, deviceID}]; !ok {
		return store.ErrNotFound
	}
	delete(s.devices, devKey{account, deviceID})
	return nil
}

func (s *Store) StorePreKeys(_ context.Context, account store.AccountID, deviceID uint32, up store.PreKeyUpload) error {
	if err := s.enter("StorePreKeys"); err != nil {
		return err
	}
	defer s.mu.Unlock()
	d, ok := s.devices[devKey{account, deviceID}]
	if !ok {
		return store.ErrNotFound
	}
	applyUpload(d, up)
	return nil
}

func (s *Store) PreKeyCounts(_ context.Context, account store.AccountID, deviceID uint32) (store.PreKeyCounts, error) {
	if err := s.enter("PreKeyCounts"); err != nil {
		return store.PreKeyCounts{}, err
	}
	defer s.mu.Unlock()
	d, ok := s.devices[devKey{account, deviceID}]
	if !ok {
		return store.PreKeyCounts{}, store.ErrNotFound
	}
	return store.PreKeyCounts{EC: len(d.ec), KEM: len(d.kem)}, nil
}

func (s *Store) TakeBundles(_ context.Context, account store.AccountID, deviceID uint32) ([]store.Bundle, error) {
	if err := s.enter("TakeBundles"); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	if _, ok := s.accounts[account]; !ok {
		return nil, store.ErrNotFound
	}
	var out []store.Bundle
	for _, dv := range s.devicesLocked(account) {
		if deviceID != 0 && dv.DeviceID != deviceID {
			continue
		}
		d := s.devices[devKey{account, dv.DeviceID}]
		b := store.Bundle{DeviceID: dv.DeviceID, RegistrationID: dv.RegistrationID, SignedPreKey: d.spk}
		if len(d.ec) > 0 {
			k := d.ec[0]
			d.ec = d.ec[1:]
			b.PreKey = &k
		}
		if len(d.kem) > 0 {
			b.KEM = d.kem[0]
			d.kem = d.kem[1:]
		} else {
			b.KEM = d.lrk
			b.KEMIsLastResort = true
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, store.ErrNotFound
	}
	return out, nil
}

func dedupKey(recipient store.AccountID, id [16]byte) [32]byte {
	var k [32]byte
	copy(k[:16], recipient[:])
	copy(k[16:], id[:])
	return k
}

func (s *Store) Deliver(_ context.Context, snd store.Send) (store.SendResult, error) {
	if err := s.enter("Deliver"); err != nil {
		return store.SendResult{}, err
	}
	defer s.mu.Unlock()
	if _, ok := s.accounts[snd.Recipient]; !ok {
		return store.SendResult{}, store.ErrNotFound
	}
	dk := dedupKey(snd.Recipient, snd.MessageID)
	if _, ok := s.dedup[dk]; ok {
		return store.SendResult{Duplicate: true}, nil
	}
	var mm store.DeviceMismatchError
	addressed := map[uint32]bool{}
	seen := map[uint32]bool{}
	for _, e := range snd.Envelopes {
		if e.Content == nil || seen[e.DeviceID] {
			return store.SendResult{}, store.ErrInvalid
		}
		seen[e.DeviceID] = true
	}
	for _, e := range snd.Envelopes {
		d, ok := s.devices[devKey{snd.Recipient, e.DeviceID}]
		if !ok || (snd.ExcludeDevice != 0 && e.DeviceID == snd.ExcludeDevice) || addressed[e.DeviceID] {
			mm.Extra = append(mm.Extra, e.DeviceID)
			continue
		}
		addressed[e.DeviceID] = true
		if d.dev.RegistrationID != e.RegistrationID {
			mm.Stale = append(mm.Stale, e.DeviceID)
		}
	}
	for _, dv := range s.devicesLocked(snd.Recipient) {
		if dv.DeviceID == snd.ExcludeDevice && snd.ExcludeDevice != 0 {
			continue
		}
		if !addressed[dv.DeviceID] {
			mm.Missing = append(mm.Missing, dv.DeviceID)
		}
	}
	if len(mm.Missing)+len(mm.Extra)+len(mm.Stale) > 0 {
		return store.SendResult{}, &mm
	}
	if snd.MaxQueue > 0 {
		for _, e := range snd.Envelopes {
			if len(s.devices[devKey{snd.Recipient, e.DeviceID}].queue) >= snd.MaxQueue {
				return store.SendResult{}, store.ErrQueueFull
			}
		}
	}
	res := store.SendResult{}
	for _, e := range snd.Envelopes {
		d := s.devices[devKey{snd.Recipient, e.DeviceID}]
		d.seq++
		d.queue = append(d.queue, store.Envelope{Seq: d.seq, MessageID: snd.MessageID, Recipient: snd.Recipient,
			DeviceID: e.DeviceID, Type: e.Type, Sender: snd.Sender, SenderDevice: snd.SenderDevice,
			Content: clone(e.Content), ReceivedAt: snd.Now.Truncate(time.Minute)})
		res.Seqs = append(res.Seqs, d.seq)
	}
	s.dedup[dk] = snd.Now
	return res, nil
}

func (s *Store) Pending(_ context.Context, account store.AccountID, deviceID uint32, after int64, limit int) ([]store.Envelope, error) {
	if err := s.enter("Pending"); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	d, ok := s.devices[devKey{account, deviceID}]
	if !ok {
		return nil, store.ErrNotFound
	}
	var out []store.Envelope
	for _, e := range d.queue {
		if len(out) >= limit {
			break
		}
		if e.Seq > after {
			e.Content = clone(e.Content)
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *Store) Ack(_ context.Context, account store.AccountID, deviceID uint32, seq int64) error {
	if err := s.enter("Ack"); err != nil {
		return err
	}
	defer s.mu.Unlock()
	d, ok := s.devices[devKey{account, deviceID}]
	if !ok {
		return store.ErrNotFound
	}
	d.queue = slices.DeleteFunc(d.queue, func(e store.Envelope) bool { return e.Seq == seq })
	return nil
}

func (s *Store) QueueDepth(_ context.Context, account store.AccountID, deviceID uint32) (int, error) {
	if err := s.enter("QueueDepth"); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	d, ok := s.devices[devKey{account, deviceID}]
	if !ok {
		return 0, store.ErrNotFound
	}
	return len(d.queue), nil
}

func (s *Store) Sweep(_ context.Context, envelopeCutoff, dedupCutoff time.Time) (int, error) {
	if err := s.enter("Sweep"); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	n := 0
	for _, d := range s.devices {
		before := len(d.queue)
		d.queue = slices.DeleteFunc(d.queue, func(e store.Envelope) bool { return e.ReceivedAt.Before(envelopeCutoff) })
		n += before - len(d.queue)
	}
	for k, at := range s.dedup {
		if at.Before(dedupCutoff) {
			delete(s.dedup, k)
		}
	}
	return n, nil
}

func (s *Store) TakeToken(_ context.Context, key []byte, burst int, interval time.Duration, now time.Time) (bool, time.Duration, error) {
	if err := s.enter("TakeToken"); err != nil {
		return false, 0, err
	}
	defer s.mu.Unlock()
	if burst < 1 || interval <= 0 {
		return false, 0, store.ErrInvalid
	}
	b, ok := s.buckets[string(key)]
	if !ok {
		b = bucket{tokens: float64(burst), at: now}
	}
	if el := now.Sub(b.at); el > 0 {
		b.tokens = min(float64(burst), b.tokens+float64(el)/float64(interval))
	}
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		s.buckets[string(key)] = b
		return true, 0, nil
	}
	s.buckets[string(key)] = b
	return false, time.Duration((1 - b.tokens) * float64(interval)), nil
}

func (s *Store) Ping(context.Context) error {
	if err := s.enter("Ping"); err != nil {
		return err
	}
	s.mu.Unlock()
	return nil
}

func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}
