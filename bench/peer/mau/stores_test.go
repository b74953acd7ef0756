package mau

import (
	"context"

	"go.mau.fi/libsignal/keys/identity"
	"go.mau.fi/libsignal/protocol"
	"go.mau.fi/libsignal/serialize"
	"go.mau.fi/libsignal/state/record"
)

// In-memory stores, the most favourable setting for the peer: records are kept as Go values,
// never serialized, and there is no I/O.

type identityStore struct {
	pair    *identity.KeyPair
	regID   uint32
	trusted map[string]*identity.Key
}

func (s *identityStore) GetIdentityKeyPair() *identity.KeyPair { return s.pair }
func (s *identityStore) GetLocalRegistrationID() uint32        { return s.regID }
func (s *identityStore) SaveIdentity(_ context.Context, a *protocol.SignalAddress, k *identity.Key) error {
	s.trusted[a.String()] = k
	return nil
}
func (s *identityStore) IsTrustedIdentity(_ context.Context, a *protocol.SignalAddress, k *identity.Key) (bool, error) {
	t := s.trusted[a.String()]
	return t == nil || t.Fingerprint() == k.Fingerprint(), nil
}

type preKeyStore struct{ m map[uint32]*record.PreKey }

func (s *preKeyStore) LoadPreKey(_ context.Context, id uint32) (*record.PreKey, error) {
	return s.m[id], nil
}
func (s *preKeyStore) StorePreKey(_ context.Context, id uint32, r *record.PreKey) error {
	s.m[id] = r
	return nil
}
func (s *preKeyStore) ContainsPreKey(_ context.Context, id uint32) (bool, error) {
	_, ok := s.m[id]
	return ok, nil
}
func (s *preKeyStore) RemovePreKey(_ context.Context, id uint32) error {
	delete(s.m, id)
	return nil
}

type signedPreKeyStore struct {
	m map[uint32]*record.SignedPreKey
}

func (s *signedPreKeyStore) LoadSignedPreKey(_ context.Context, id uint32) (*record.SignedPreKey, error) {
	return s.m[id], nil
}
func (s *signedPreKeyStore) LoadSignedPreKeys(context.Context) ([]*record.SignedPreKey, error) {
	var out []*record.SignedPreKey
	for _, r := range s.m {
		out = append(out, r)
	}
	return out, nil
}
func (s *signedPreKeyStore) StoreSignedPreKey(_ context.Context, id uint32, r *record.SignedPreKey) error {
	s.m[id] = r
	return nil
}
func (s *signedPreKeyStore) ContainsSignedPreKey(_ context.Context, id uint32) (bool, error) {
	_, ok := s.m[id]
	return ok, nil
}
func (s *signedPreKeyStore) RemoveSignedPreKey(_ context.Context, id uint32) error {
	delete(s.m, id)
	return nil
}

type sessionStore struct {
	m   map[string]*record.Session
	ser *serialize.Serializer
}

func (s *sessionStore) LoadSession(_ context.Context, a *protocol.SignalAddress) (*record.Session, error) {
	if r, ok := s.m[a.String()]; ok {
		return r, nil
	}
	r := record.NewSession(s.ser.Session, s.ser.State)
	s.m[a.String()] = r
	return r, nil
}
func (s *sessionStore) GetSubDeviceSessions(context.Context, string) ([]uint32, error) {
	return nil, nil
}
func (s *sessionStore) StoreSession(_ context.Context, a *protocol.SignalAddress, r *record.Session) error {
	s.m[a.String()] = r
	return nil
}
func (s *sessionStore) ContainsSession(_ context.Context, a *protocol.SignalAddress) (bool, error) {
	_, ok := s.m[a.String()]
	return ok, nil
}
func (s *sessionStore) DeleteSession(_ context.Context, a *protocol.SignalAddress) error {
	delete(s.m, a.String())
	return nil
}
func (s *sessionStore) DeleteAllSessions(context.Context) error {
	clear(s.m)
	return nil
}
