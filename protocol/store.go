package protocol

import (
	"context"
	"fmt"
	"sync"
)

// IdentityStore holds our identity and the identities we have seen.
type IdentityStore interface {
	// IdentityKeyPair returns our identity key pair.
	IdentityKeyPair(ctx context.Context) (IdentityKeyPair, error)
	// LocalRegistrationID returns our registration id.
	LocalRegistrationID(ctx context.Context) (uint32, error)
	// SaveIdentity records key as addr's identity. It reports whether a
	// different key was stored before (the identity changed).
	SaveIdentity(ctx context.Context, addr Address, key PublicKey) (changed bool, err error)
	// IsTrustedIdentity reports whether key may be used for addr. The
	// usual rule is trust on first use: true if nothing is stored for
	// addr or the stored key equals key.
	IsTrustedIdentity(ctx context.Context, addr Address, key PublicKey, dir Direction) (bool, error)
	// Identity returns the stored identity for addr, if any.
	Identity(ctx context.Context, addr Address) (key PublicKey, ok bool, err error)
}

// PreKeyStore holds our one-time EC prekeys.
type PreKeyStore interface {
	// LoadPreKey returns ErrNoPreKey (possibly wrapped) if id is unknown.
	LoadPreKey(ctx context.Context, id uint32) (PreKeyRecord, error)
	StorePreKey(ctx context.Context, r PreKeyRecord) error
	RemovePreKey(ctx context.Context, id uint32) error
}

// SignedPreKeyStore holds our signed EC prekeys.
type SignedPreKeyStore interface {
	// LoadSignedPreKey returns ErrNoSignedPreKey if id is unknown.
	LoadSignedPreKey(ctx context.Context, id uint32) (SignedPreKeyRecord, error)
	StoreSignedPreKey(ctx context.Context, r SignedPreKeyRecord) error
}

// KyberPreKeyStore holds our Kyber prekeys.
type KyberPreKeyStore interface {
	// LoadKyberPreKey returns ErrNoKyberPreKey if id is unknown.
	LoadKyberPreKey(ctx context.Context, id uint32) (KyberPreKeyRecord, error)
	StoreKyberPreKey(ctx context.Context, r KyberPreKeyRecord) error
	// MarkKyberPreKeyUsed is called after a PreKey message used id, before
	// the new session is stored: a one-time key should be deleted; a
	// last-resort key is kept, and the store should remember (signed
	// prekey id, base key) and return ErrPreKeyReplayed when the same pair
	// comes again, so a replayed PreKey message cannot start a session
	// twice.
	MarkKyberPreKeyUsed(ctx context.Context, id uint32, signedPreKeyID uint32, baseKey PublicKey) error
}

// SessionStore holds session records by address.
type SessionStore interface {
	// LoadSession returns the record for addr, or (nil, nil) if none.
	// The caller may modify the returned record; it is saved back only
	// through StoreSession.
	LoadSession(ctx context.Context, addr Address) (*SessionRecord, error)
	StoreSession(ctx context.Context, addr Address, r *SessionRecord) error
}

// Stores bundles what a Cipher needs. One value (e.g. *InMemoryStore, or a
// device database bound to one transaction) may implement them all.
type Stores struct {
	Identity      IdentityStore
	Sessions      SessionStore
	PreKeys       PreKeyStore
	SignedPreKeys SignedPreKeyStore
	KyberPreKeys  KyberPreKeyStore
}

// AllStores is implemented by a store that provides every interface.
type AllStores interface {
	IdentityStore
	SessionStore
	PreKeyStore
	SignedPreKeyStore
	KyberPreKeyStore
}

// StoresOf returns Stores backed entirely by s.
func StoresOf(s AllStores) Stores {
	return Stores{Identity: s, Sessions: s, PreKeys: s, SignedPreKeys: s, KyberPreKeys: s}
}

// InMemoryStore implements every store interface in memory, for tests and
// examples. It is safe for concurrent use. Records are copied in and out,
// so callers never share state with it.
type InMemoryStore struct {
	mu         sync.Mutex
	identity   IdentityKeyPair
	regID      uint32
	identities map[Address]PublicKey
	preKeys    map[uint32]PreKeyRecord
	signed     map[uint32]SignedPreKeyRecord
	kyber      map[uint32]KyberPreKeyRecord
	sessions   map[Address]*SessionRecord
	lastResort map[string]bool // uses of last-resort keys: Kyber id/signed prekey id/base key

	// Sender-key records (groups).
	*InMemorySenderKeyStore
}

var (
	_ AllStores      = (*InMemoryStore)(nil)
	_ SenderKeyStore = (*InMemoryStore)(nil)
)

// NewInMemoryStore returns an empty store for the given identity.
func NewInMemoryStore(identity IdentityKeyPair, registrationID uint32) *InMemoryStore {
	return &InMemoryStore{
		identity:   identity,
		regID:      registrationID,
		identities: map[Address]PublicKey{},
		preKeys:    map[uint32]PreKeyRecord{},
		signed:     map[uint32]SignedPreKeyRecord{},
		kyber:      map[uint32]KyberPreKeyRecord{},
		sessions:   map[Address]*SessionRecord{},
		lastResort: map[string]bool{},

		InMemorySenderKeyStore: NewInMemorySenderKeyStore(),
	}
}

// IdentityKeyPair implements IdentityStore.
func (s *InMemoryStore) IdentityKeyPair(context.Context) (IdentityKeyPair, error) {
	return s.identity, nil
}

// LocalRegistrationID implements IdentityStore.
func (s *InMemoryStore) LocalRegistrationID(context.Context) (uint32, error) { return s.regID, nil }

// SaveIdentity implements IdentityStore.
func (s *InMemoryStore) SaveIdentity(_ context.Context, addr Address, key PublicKey) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.identities[addr]
	s.identities[addr] = key
	return ok && !old.Equal(key), nil
}

// IsTrustedIdentity implements IdentityStore: trust on first use.
func (s *InMemoryStore) IsTrustedIdentity(_ context.Context, addr Address, key PublicKey, _ Direction) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.identities[addr]
	return !ok || old.Equal(key), nil
}

// Identity implements IdentityStore.
func (s *InMemoryStore) Identity(_ context.Context, addr Address) (PublicKey, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.identities[addr]
	return k, ok, nil
}

// LoadPreKey implements PreKeyStore.
func (s *InMemoryStore) LoadPreKey(_ context.Context, id uint32) (PreKeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.preKeys[id]
	if !ok {
		return r, fmt.Errorf("%w: id %d", ErrNoPreKey, id)
	}
	return r, nil
}

// StorePreKey implements PreKeyStore.
func (s *InMemoryStore) StorePreKey(_ context.Context, r PreKeyRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.preKeys[r.ID] = r
	return nil
}

// RemovePreKey implements PreKeyStore.
func (s *InMemoryStore) RemovePreKey(_ context.Context, id uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.preKeys, id)
	return nil
}

// LoadSignedPreKey implements SignedPreKeyStore.
func (s *InMemoryStore) LoadSignedPreKey(_ context.Context, id uint32) (SignedPreKeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.signed[id]
	if !ok {
		return r, fmt.Errorf("%w: id %d", ErrNoSignedPreKey, id)
	}
	return r, nil
}

// StoreSignedPreKey implements SignedPreKeyStore.
func (s *InMemoryStore) StoreSignedPreKey(_ context.Context, r SignedPreKeyRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signed[r.ID] = r
	return nil
}

// LoadKyberPreKey implements KyberPreKeyStore.
func (s *InMemoryStore) LoadKyberPreKey(_ context.Context, id uint32) (KyberPreKeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.kyber[id]
	if !ok {
		return r, fmt.Errorf("%w: id %d", ErrNoKyberPreKey, id)
	}
	return r, nil
}

// StoreKyberPreKey implements KyberPreKeyStore.
func (s *InMemoryStore) StoreKyberPreKey(_ context.Context, r KyberPreKeyRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kyber[r.ID] = r
	return nil
}

// MarkKyberPreKeyUsed implements KyberPreKeyStore: one-time keys are
// deleted; uses of last-resort keys are remembered to refuse replays.
func (s *InMemoryStore) MarkKyberPreKeyUsed(_ context.Context, id uint32, signedPreKeyID uint32, baseKey PublicKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.kyber[id]
	if !ok {
		return nil
	}
	if !r.LastResort {
		delete(s.kyber, id)
		return nil
	}
	use := fmt.Sprintf("%d/%d/%x", id, signedPreKeyID, baseKey.b)
	if s.lastResort[use] {
		return fmt.Errorf("%w: Kyber prekey %d", ErrPreKeyReplayed, id)
	}
	s.lastResort[use] = true
	return nil
}

// LoadSession implements SessionStore; it returns a copy.
func (s *InMemoryStore) LoadSession(_ context.Context, addr Address) (*SessionRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.sessions[addr]
	if !ok {
		return nil, nil
	}
	return r.Clone(), nil
}

// StoreSession implements SessionStore; it stores a copy.
func (s *InMemoryStore) StoreSession(_ context.Context, addr Address, r *SessionRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[addr] = r.Clone()
	return nil
}
