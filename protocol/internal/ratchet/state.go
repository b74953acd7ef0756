// Package ratchet is the Double Ratchet as libsignal runs it: PQXDH
// session initialisation, sending and receiving chains, skipped message
// keys, archived session states, and the session record that holds them.
//
// # Failure leaves state untouched
//
// Decryption first computes everything it would change (a new DH ratchet
// step, chain advances, skipped keys), verifies the MAC and decrypts, and
// only then applies the changes. A message that fails — bad MAC, bad
// padding, replay, too far in the future — leaves the record exactly as it
// was, so a forged or corrupted message cannot wedge a session.
package ratchet

import (
	"crypto/hmac"
	"crypto/subtle"
	"errors"
	"io"

	"github.com/veil-e2ee/veil/protocol/internal/primitives"
	"github.com/veil-e2ee/veil/protocol/internal/wire"
)

// Errors. ErrDecrypt is deliberately uninformative: it covers a bad MAC,
// bad padding and "no session state could decrypt this".
var (
	ErrDecrypt      = errors.New("ratchet: message could not be decrypted")
	ErrDuplicate    = errors.New("ratchet: message already received")
	ErrTooFarAhead  = errors.New("ratchet: message too far in the future")
	ErrNoSession    = errors.New("ratchet: no session")
	ErrStaleSession = errors.New("ratchet: unacknowledged session too old")
	ErrBadKey       = errors.New("ratchet: invalid key")
)

// SkippedKey is a stored message-key seed for a message not yet received.
type SkippedKey struct {
	Index uint32
	Seed  [32]byte
}

// ReceiverChain is the receiving chain for one of the peer's ratchet keys.
type ReceiverChain struct {
	RatchetKey [33]byte
	Chain      ChainKey
	Skipped    []SkippedKey // oldest first
}

// SenderChain is our current ratchet key pair and sending chain.
type SenderChain struct {
	Ratchet KeyPair
	Chain   ChainKey
}

// PendingPreKey is what an initiator repeats in every message until the
// responder answers: the PQXDH parameters of the session.
type PendingPreKey struct {
	HasPreKeyID     bool
	PreKeyID        uint32
	SignedPreKeyID  uint32
	KyberPreKeyID   uint32
	KyberCiphertext []byte
	BaseKey         [33]byte
	TimestampMillis uint64
}

// State is one session state (libsignal's SessionState).
type State struct {
	Version              uint32
	LocalIdentity        [33]byte
	RemoteIdentity       [33]byte
	RootKey              [32]byte
	PreviousCounter      uint32
	Sender               SenderChain
	Receivers            []ReceiverChain // oldest first, at most MaxReceiverChains
	Pending              *PendingPreKey
	LocalRegistrationID  uint32
	RemoteRegistrationID uint32
	// AliceBaseKey identifies the PQXDH run that created the state (ours
	// if we initiated, theirs if we responded).
	AliceBaseKey [33]byte
}

func (s *State) withSelf() bool {
	return subtle.ConstantTimeCompare(s.LocalIdentity[:], s.RemoteIdentity[:]) == 1
}

func (s *State) receiver(key *[33]byte) int {
	for i := range s.Receivers {
		if s.Receivers[i].RatchetKey == *key {
			return i
		}
	}
	return -1
}

// Clone returns a deep copy.
func (s *State) Clone() *State {
	c := *s
	c.Receivers = make([]ReceiverChain, len(s.Receivers))
	for i, r := range s.Receivers {
		c.Receivers[i] = r
		c.Receivers[i].Skipped = append([]SkippedKey(nil), r.Skipped...)
	}
	if s.Pending != nil {
		p := *s.Pending
		p.KyberCiphertext = append([]byte(nil), s.Pending.KyberCiphertext...)
		c.Pending = &p
	}
	return &c
}

// HasUsableSenderChain reports whether the state can send at nowMillis:
// it has a sender chain and any unanswered PreKey message is not stale.
func (s *State) HasUsableSenderChain(nowMillis uint64) bool {
	if s.Pending != nil && s.Pending.TimestampMillis+MaxUnacknowledgedSessionAgeMillis < nowMillis {
		return false
	}
	return true
}

// Encrypt encrypts plaintext on the sending chain, appends the serialized
// SignalMessage to dst and advances the chain.
func (s *State) Encrypt(dst, plaintext []byte) ([]byte, error) {
	seed := s.Sender.Chain.MessageSeed()
	mk := DeriveMessageKeys(&seed)
	defer clear(mk.Cipher[:])
	defer clear(mk.MAC[:])

	ctLen := (len(plaintext)/16 + 1) * 16
	need := wire.SignalMessageSize(33, s.Sender.Chain.Index, s.PreviousCounter, ctLen)
	if cap(dst)-len(dst) < need {
		nd := make([]byte, len(dst), len(dst)+need)
		copy(nd, dst)
		dst = nd
	}
	start := len(dst)
	dst = append(dst, wire.VersionByte)
	dst = wire.AppendBytes(dst, 1, s.Sender.Ratchet.Public[:])
	dst = wire.AppendUint(dst, 2, uint64(s.Sender.Chain.Index))
	dst = wire.AppendUint(dst, 3, uint64(s.PreviousCounter))
	dst = appendBytesHeader(dst, 4, ctLen)
	var err error
	dst, err = primitives.EncryptCBC(dst, mk.Cipher[:], mk.IV[:], plaintext)
	if err != nil {
		return nil, err
	}
	var mac [32]byte
	primitives.HMACSHA256(mac[:0], mk.MAC[:], s.LocalIdentity[:], s.RemoteIdentity[:], dst[start:])
	dst = append(dst, mac[:wire.MACSize]...)
	s.Sender.Chain = s.Sender.Chain.Next()
	return dst, nil
}

// update is everything a successful decryption changes, computed before
// anything is changed.
type update struct {
	newChain    bool
	rootKey     [32]byte
	recvKey     [33]byte // the peer's ratchet key this message used
	recvChain   ChainKey
	newSender   SenderChain
	prevCounter uint32

	chainAfter  ChainKey // receiver chain key after this message
	skipped     []SkippedKey
	usedSkipped int // index into the chain's Skipped list, or -1
}

// plan works out the message keys for m and the changes to s, without
// changing s.
func (s *State) plan(m *wire.SignalMessage, rand io.Reader) (mk MessageKeys, u update, err error) {
	u.usedSkipped = -1
	var theirKey [33]byte
	copy(theirKey[:], m.RatchetKey)
	if theirKey[0] != 0x05 {
		return mk, u, ErrDecrypt
	}
	u.recvKey = theirKey
	var chain ChainKey
	var skipped []SkippedKey
	if i := s.receiver(&theirKey); i >= 0 {
		chain = s.Receivers[i].Chain
		skipped = s.Receivers[i].Skipped
	} else {
		// DH ratchet step.
		root, recv, err := createChain(&s.RootKey, &theirKey, &s.Sender.Ratchet.Private)
		if err != nil {
			return mk, u, ErrDecrypt // a low-order ratchet key
		}
		var priv [32]byte
		if _, err := io.ReadFull(rand, priv[:]); err != nil {
			return mk, u, err
		}
		ours := NewKeyPair(&priv)
		clear(priv[:])
		root2, send, err := createChain(&root, &theirKey, &ours.Private)
		if err != nil {
			return mk, u, ErrDecrypt
		}
		u.newChain = true
		u.rootKey = root2
		u.recvChain = recv
		u.newSender = SenderChain{Ratchet: ours, Chain: send}
		if idx := s.Sender.Chain.Index; idx > 0 {
			u.prevCounter = idx - 1
		}
		chain = recv
	}

	counter := m.Counter
	if chain.Index > counter {
		for j := range skipped {
			if skipped[j].Index == counter {
				u.usedSkipped = j
				return DeriveMessageKeys(&skipped[j].Seed), u, nil
			}
		}
		return mk, u, ErrDuplicate
	}
	if counter-chain.Index > MaxForwardJumps && !s.withSelf() {
		return mk, u, ErrTooFarAhead
	}
	// Keep at most MaxMessageKeys of the keys we skip over.
	first := chain.Index
	if counter-first > MaxMessageKeys {
		first = counter - MaxMessageKeys
	}
	if counter > chain.Index {
		u.skipped = make([]SkippedKey, 0, counter-first)
	}
	for chain.Index < counter {
		if chain.Index >= first {
			u.skipped = append(u.skipped, SkippedKey{Index: chain.Index, Seed: chain.MessageSeed()})
		}
		chain = chain.Next()
	}
	seed := chain.MessageSeed()
	u.chainAfter = chain.Next()
	return DeriveMessageKeys(&seed), u, nil
}

// apply commits a planned update.
func (s *State) apply(u *update) {
	if u.newChain {
		s.RootKey = u.rootKey
		s.Receivers = append(s.Receivers, ReceiverChain{RatchetKey: u.recvKey, Chain: u.recvChain})
		if len(s.Receivers) > MaxReceiverChains {
			s.Receivers = append(s.Receivers[:0], s.Receivers[len(s.Receivers)-MaxReceiverChains:]...)
		}
		s.PreviousCounter = u.prevCounter
		s.Sender = u.newSender
	}
	i := s.receiver(&u.recvKey)
	r := &s.Receivers[i]
	if u.usedSkipped >= 0 {
		r.Skipped = append(r.Skipped[:u.usedSkipped], r.Skipped[u.usedSkipped+1:]...)
	} else {
		r.Chain = u.chainAfter
		r.Skipped = append(r.Skipped, u.skipped...)
		if over := len(r.Skipped) - MaxMessageKeys; over > 0 {
			r.Skipped = append(r.Skipped[:0], r.Skipped[over:]...)
		}
	}
	s.Pending = nil
}

// Decrypt decrypts a parsed SignalMessage whose authenticated bytes (the
// serialized message without its MAC) are auth. On success it updates s;
// on any failure s is unchanged.
func (s *State) Decrypt(m *wire.SignalMessage, auth []byte, rand io.Reader) ([]byte, error) {
	if s.Version != wire.CurrentVersion {
		return nil, ErrDecrypt
	}
	mk, u, err := s.plan(m, rand)
	if err != nil {
		return nil, err
	}
	defer clear(mk.Cipher[:])
	defer clear(mk.MAC[:])
	var mac [32]byte
	primitives.HMACSHA256(mac[:0], mk.MAC[:], s.RemoteIdentity[:], s.LocalIdentity[:], auth)
	if !hmac.Equal(mac[:wire.MACSize], m.MAC[:]) {
		return nil, ErrDecrypt
	}
	pt, err := primitives.DecryptCBC(nil, mk.Cipher[:], mk.IV[:], m.Ciphertext)
	if err != nil {
		return nil, ErrDecrypt
	}
	s.apply(&u)
	return pt, nil
}

func appendBytesHeader(b []byte, num int, n int) []byte {
	b = append(b, byte(num<<3|2))
	for n >= 0x80 {
		b = append(b, byte(n)|0x80)
		n >>= 7
	}
	return append(b, byte(n))
}
