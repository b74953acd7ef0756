package protocol

import (
	"context"
	"sync"
)

// InMemorySenderKeyStore implements SenderKeyStore in memory, for tests and
// examples. It is safe for concurrent use. Records are copied in and out,
// so callers never share state with it.
type InMemorySenderKeyStore struct {
	mu      sync.Mutex
	records map[senderKeyName]*SenderKeyRecord
}

type senderKeyName struct {
	sender Address
	id     DistributionID
}

var _ SenderKeyStore = (*InMemorySenderKeyStore)(nil)

// NewInMemorySenderKeyStore returns an empty store.
func NewInMemorySenderKeyStore() *InMemorySenderKeyStore {
	return &InMemorySenderKeyStore{records: map[senderKeyName]*SenderKeyRecord{}}
}

// LoadSenderKey implements SenderKeyStore; it returns a copy.
func (s *InMemorySenderKeyStore) LoadSenderKey(_ context.Context, sender Address, id DistributionID) (*SenderKeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[senderKeyName{sender, id}]
	if !ok {
		return nil, nil
	}
	return r.Clone(), nil
}

// StoreSenderKey implements SenderKeyStore; it stores a copy.
func (s *InMemorySenderKeyStore) StoreSenderKey(_ context.Context, sender Address, id DistributionID, r *SenderKeyRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[senderKeyName{sender, id}] = r.Clone()
	return nil
}
