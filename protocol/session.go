package protocol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/veil-e2ee/veil/protocol/internal/curve"
	"github.com/veil-e2ee/veil/protocol/internal/ratchet"
	"github.com/veil-e2ee/veil/protocol/internal/wire"
)

// SessionRecord is everything we keep about the session with one peer
// device: the current state and up to 40 archived states. It contains
// secret keys; store it encrypted at rest.
type SessionRecord struct {
	r *ratchet.Record
}

// NewSessionRecord returns an empty record.
func NewSessionRecord() *SessionRecord { return &SessionRecord{r: &ratchet.Record{}} }

// ParseSessionRecord decodes a record written by Marshal (by this or an
// earlier version of Veil).
func ParseSessionRecord(b []byte) (*SessionRecord, error) {
	r, err := ratchet.ParseRecord(b)
	switch {
	case errors.Is(err, ratchet.ErrRecordVersion):
		return nil, ErrRecordVersion
	case err != nil:
		return nil, ErrInvalidRecord
	}
	return &SessionRecord{r: r}, nil
}

// Marshal returns the record's stored form (versioned). It must be kept
// secret.
func (s *SessionRecord) Marshal() []byte { return s.r.Marshal(nil) }

// Clone returns a deep copy.
func (s *SessionRecord) Clone() *SessionRecord { return &SessionRecord{r: s.r.Clone()} }

// HasCurrentState reports whether the record has a usable current session.
func (s *SessionRecord) HasCurrentState() bool { return s.r.Current != nil }

// ArchiveCurrentState retires the current session (kept to decrypt late
// messages, never used to send). The next send needs a new prekey bundle.
func (s *SessionRecord) ArchiveCurrentState() { s.r.Archive() }

// ArchivedStates is the number of archived session states.
func (s *SessionRecord) ArchivedStates() int { return len(s.r.Previous) }

// RemoteRegistrationID is the peer's registration id in the current state.
func (s *SessionRecord) RemoteRegistrationID() (uint32, bool) {
	if s.r.Current == nil {
		return 0, false
	}
	return s.r.Current.RemoteRegistrationID, true
}

// RemoteIdentity is the peer's identity key in the current state.
func (s *SessionRecord) RemoteIdentity() (PublicKey, bool) {
	if s.r.Current == nil {
		return PublicKey{}, false
	}
	return PublicKey{b: s.r.Current.RemoteIdentity}, true
}

// MessageType is libsignal's CiphertextMessageType.
type MessageType uint8

const (
	// SignalMessageType (libsignal "Whisper") is a Double Ratchet message.
	SignalMessageType MessageType = 2
	// PreKeyMessageType carries the PQXDH parameters and a first message.
	PreKeyMessageType MessageType = 3
)

// CiphertextMessage is an encrypted message and its type, which travels
// beside it (e.g. in the envelope), as in libsignal.
type CiphertextMessage struct {
	Type MessageType
	Body []byte
}

// Cipher runs sessions over a set of stores. Randomness and time are
// injected; a Cipher holds no state of its own and is safe for concurrent
// use if its stores are (operations on the same address must be
// serialized by the caller, as with libsignal).
type Cipher struct {
	stores Stores
	rand   io.Reader
	now    func() time.Time
}

// NewCipher returns a Cipher. rand must be a cryptographically secure
// source (crypto/rand.Reader in production); now may be nil for time.Now.
func NewCipher(stores Stores, rand io.Reader, now func() time.Time) *Cipher {
	if now == nil {
		now = time.Now
	}
	return &Cipher{stores: stores, rand: rand, now: now}
}

func (c *Cipher) loadSession(ctx context.Context, addr Address) (*SessionRecord, error) {
	rec, err := c.stores.Sessions.LoadSession(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("protocol: loading session: %w", err)
	}
	return rec, nil
}

func (c *Cipher) checkTrusted(ctx context.Context, addr Address, key PublicKey, dir Direction) error {
	ok, err := c.stores.Identity.IsTrustedIdentity(ctx, addr, key, dir)
	if err != nil {
		return fmt.Errorf("protocol: checking identity: %w", err)
	}
	if !ok {
		return &UntrustedIdentityError{Address: addr, Key: key}
	}
	return nil
}

// ProcessPreKeyBundle starts a session with a device from its prekey
// bundle (PQXDH, as initiator). Until the peer answers, every message to
// it is a PreKey message.
func (c *Cipher) ProcessPreKeyBundle(ctx context.Context, addr Address, b *PreKeyBundle) error {
	if b.IdentityKey.IsZero() || b.SignedPreKey.IsZero() || b.KyberPreKey.IsZero() || (b.HasPreKey && b.PreKey.IsZero()) {
		return fmt.Errorf("%w: incomplete prekey bundle", ErrInvalidKey)
	}
	if err := c.checkTrusted(ctx, addr, b.IdentityKey, Sending); err != nil {
		return err
	}
	if !b.IdentityKey.VerifySignature(b.SignedPreKey.b[:], b.SignedPreKeySignature) {
		return fmt.Errorf("%w: signed prekey", ErrInvalidSignature)
	}
	if !b.IdentityKey.VerifySignature(b.KyberPreKey.b, b.KyberPreKeySignature) {
		return fmt.Errorf("%w: Kyber prekey", ErrInvalidSignature)
	}
	identity, err := c.stores.Identity.IdentityKeyPair(ctx)
	if err != nil {
		return fmt.Errorf("protocol: loading identity: %w", err)
	}
	localReg, err := c.stores.Identity.LocalRegistrationID(ctx)
	if err != nil {
		return fmt.Errorf("protocol: loading registration id: %w", err)
	}
	rec, err := c.loadSession(ctx, addr)
	if err != nil {
		return err
	}
	if rec == nil {
		rec = NewSessionRecord()
	}

	kyberCT, kyberSS, err := b.KyberPreKey.encapsulate(c.rand)
	if err != nil {
		return err
	}
	defer clear(kyberSS)
	base, err := GenerateKeyPair(c.rand)
	if err != nil {
		return err
	}
	ratchetKey, err := GenerateKeyPair(c.rand)
	if err != nil {
		return err
	}
	p := ratchet.AliceParams{
		OurIdentity:       identity.internal(),
		OurBase:           base.internal(),
		OurRatchet:        ratchetKey.internal(),
		TheirIdentity:     b.IdentityKey.b,
		TheirSignedPreKey: b.SignedPreKey.b,
		KyberShared:       kyberSS,
	}
	if b.HasPreKey {
		otk := b.PreKey.b
		p.TheirOneTimeKey = &otk
	}
	state, err := ratchet.InitAlice(&p)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	state.Pending = &ratchet.PendingPreKey{
		HasPreKeyID:     b.HasPreKey,
		PreKeyID:        b.PreKeyID,
		SignedPreKeyID:  b.SignedPreKeyID,
		KyberPreKeyID:   b.KyberPreKeyID,
		KyberCiphertext: kyberCT,
		BaseKey:         base.Public.b,
		TimestampMillis: uint64(c.now().UnixMilli()),
	}
	if !b.HasPreKey {
		state.Pending.PreKeyID = 0
	}
	state.LocalRegistrationID = localReg
	state.RemoteRegistrationID = b.RegistrationID

	if _, err := c.stores.Identity.SaveIdentity(ctx, addr, b.IdentityKey); err != nil {
		return fmt.Errorf("protocol: saving identity: %w", err)
	}
	rec.r.PromoteState(state)
	if err := c.stores.Sessions.StoreSession(ctx, addr, rec); err != nil {
		return fmt.Errorf("protocol: storing session: %w", err)
	}
	return nil
}

// Encrypt encrypts plaintext for addr. It returns ErrNoSession if there is
// no usable session (process a prekey bundle first) and an
// *UntrustedIdentityError if addr's identity is no longer trusted.
func (c *Cipher) Encrypt(ctx context.Context, addr Address, plaintext []byte) (CiphertextMessage, error) {
	rec, err := c.loadSession(ctx, addr)
	if err != nil {
		return CiphertextMessage{}, err
	}
	if rec == nil || rec.r.Current == nil {
		return CiphertextMessage{}, fmt.Errorf("%w with %s", ErrNoSession, addr)
	}
	st := rec.r.Current
	if !st.HasUsableSenderChain(uint64(c.now().UnixMilli())) {
		return CiphertextMessage{}, fmt.Errorf("%w with %s: unanswered session expired", ErrNoSession, addr)
	}
	remote := PublicKey{b: st.RemoteIdentity}
	if err := c.checkTrusted(ctx, addr, remote, Sending); err != nil {
		return CiphertextMessage{}, err
	}

	var out CiphertextMessage
	if p := st.Pending; p != nil {
		inner, err := st.Encrypt(nil, plaintext)
		if err != nil {
			return CiphertextMessage{}, err
		}
		m := wire.PreKeySignalMessage{
			PreKeyID:        p.PreKeyID,
			HasPreKeyID:     p.HasPreKeyID,
			BaseKey:         p.BaseKey[:],
			IdentityKey:     st.LocalIdentity[:],
			Message:         inner,
			RegistrationID:  st.LocalRegistrationID,
			SignedPreKeyID:  p.SignedPreKeyID,
			KyberPreKeyID:   p.KyberPreKeyID,
			KyberCiphertext: p.KyberCiphertext,
		}
		out = CiphertextMessage{Type: PreKeyMessageType, Body: wire.AppendPreKeySignalMessage(make([]byte, 0, len(inner)+1700), &m)}
	} else {
		body, err := st.Encrypt(nil, plaintext)
		if err != nil {
			return CiphertextMessage{}, err
		}
		out = CiphertextMessage{Type: SignalMessageType, Body: body}
	}
	if err := c.stores.Sessions.StoreSession(ctx, addr, rec); err != nil {
		return CiphertextMessage{}, fmt.Errorf("protocol: storing session: %w", err)
	}
	return out, nil
}

// Decrypt decrypts a message from addr. Failures are ErrDecryption (never
// more specific towards the peer), ErrDuplicateMessage, ErrInvalidMessage
// (undecodable), ErrLegacyMessage / ErrUnknownVersion, ErrNoSession, or an
// *UntrustedIdentityError. On any failure the stores are unchanged.
func (c *Cipher) Decrypt(ctx context.Context, addr Address, m CiphertextMessage) ([]byte, error) {
	switch m.Type {
	case SignalMessageType:
		return c.decryptSignal(ctx, addr, m.Body)
	case PreKeyMessageType:
		return c.decryptPreKey(ctx, addr, m.Body)
	default:
		return nil, fmt.Errorf("%w: unknown message type %d", ErrInvalidMessage, m.Type)
	}
}

func mapDecryptErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, wire.ErrLegacyVersion):
		return ErrLegacyMessage
	case errors.Is(err, wire.ErrUnknownVersion):
		return ErrUnknownVersion
	case errors.Is(err, wire.ErrMalformed):
		return ErrInvalidMessage
	case errors.Is(err, ratchet.ErrDuplicate):
		return ErrDuplicateMessage
	case errors.Is(err, ratchet.ErrNoSession):
		return ErrNoSession
	case errors.Is(err, ratchet.ErrDecrypt), errors.Is(err, ratchet.ErrTooFarAhead):
		return ErrDecryption
	}
	return err
}

func (c *Cipher) decryptSignal(ctx context.Context, addr Address, body []byte) ([]byte, error) {
	rec, err := c.loadSession(ctx, addr)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		// Parse anyway so garbage is reported as such.
		if _, _, err := wire.ParseSignalMessage(body); err != nil {
			return nil, mapDecryptErr(err)
		}
		return nil, fmt.Errorf("%w with %s", ErrNoSession, addr)
	}
	pt, err := rec.r.Decrypt(body, false, c.rand)
	if err != nil {
		return nil, mapDecryptErr(err)
	}
	remote := PublicKey{b: rec.r.Current.RemoteIdentity}
	if err := c.checkTrusted(ctx, addr, remote, Receiving); err != nil {
		return nil, err
	}
	if _, err := c.stores.Identity.SaveIdentity(ctx, addr, remote); err != nil {
		return nil, fmt.Errorf("protocol: saving identity: %w", err)
	}
	if err := c.stores.Sessions.StoreSession(ctx, addr, rec); err != nil {
		return nil, fmt.Errorf("protocol: storing session: %w", err)
	}
	return pt, nil
}

func (c *Cipher) decryptPreKey(ctx context.Context, addr Address, body []byte) ([]byte, error) {
	m, err := wire.ParsePreKeySignalMessage(body)
	if err != nil {
		return nil, mapDecryptErr(err)
	}
	theirIdentity, err := ParsePublicKey(m.IdentityKey)
	if err != nil {
		return nil, ErrInvalidMessage
	}
	baseKey, err := ParsePublicKey(m.BaseKey)
	if err != nil {
		return nil, ErrInvalidMessage
	}
	if err := c.checkTrusted(ctx, addr, theirIdentity, Receiving); err != nil {
		return nil, err
	}
	rec, err := c.loadSession(ctx, addr)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		rec = NewSessionRecord()
	}

	usedPreKey, usedKyber := false, false
	if !rec.r.PromoteMatching(wire.CurrentVersion, m.BaseKey) {
		// A new session: run PQXDH as responder.
		if !curve.IsCanonical((*[32]byte)(baseKey.b[1:])) {
			return nil, ErrInvalidMessage
		}
		identity, err := c.stores.Identity.IdentityKeyPair(ctx)
		if err != nil {
			return nil, fmt.Errorf("protocol: loading identity: %w", err)
		}
		localReg, err := c.stores.Identity.LocalRegistrationID(ctx)
		if err != nil {
			return nil, fmt.Errorf("protocol: loading registration id: %w", err)
		}
		spk, err := c.stores.SignedPreKeys.LoadSignedPreKey(ctx, m.SignedPreKeyID)
		if err != nil {
			return nil, keyLookupErr(err)
		}
		kpk, err := c.stores.KyberPreKeys.LoadKyberPreKey(ctx, m.KyberPreKeyID)
		if err != nil {
			return nil, keyLookupErr(err)
		}
		p := ratchet.BobParams{
			OurIdentity:     identity.internal(),
			OurSignedPreKey: spk.KeyPair.internal(),
			TheirIdentity:   theirIdentity.b,
			TheirBaseKey:    baseKey.b,
		}
		if m.HasPreKeyID {
			pk, err := c.stores.PreKeys.LoadPreKey(ctx, m.PreKeyID)
			if err != nil {
				return nil, keyLookupErr(err)
			}
			otk := pk.KeyPair.internal()
			p.OurOneTimeKey = &otk
			usedPreKey = true
		}
		ss, err := kpk.KeyPair.Private.decapsulate(m.KyberCiphertext)
		if err != nil {
			return nil, ErrInvalidMessage
		}
		defer clear(ss)
		p.KyberShared = ss
		state, err := ratchet.InitBob(&p)
		if err != nil {
			return nil, ErrDecryption
		}
		state.LocalRegistrationID = localReg
		state.RemoteRegistrationID = m.RegistrationID
		rec.r.PromoteState(state)
		usedKyber = true
	}

	pt, err := rec.r.Decrypt(m.Message, true, c.rand)
	if err != nil {
		return nil, mapDecryptErr(err)
	}
	if _, err := c.stores.Identity.SaveIdentity(ctx, addr, theirIdentity); err != nil {
		return nil, fmt.Errorf("protocol: saving identity: %w", err)
	}
	if usedKyber {
		if err := c.stores.KyberPreKeys.MarkKyberPreKeyUsed(ctx, m.KyberPreKeyID, m.SignedPreKeyID, baseKey); err != nil {
			if errors.Is(err, ErrPreKeyReplayed) {
				return nil, fmt.Errorf("%w: %w", ErrDuplicateMessage, err)
			}
			return nil, fmt.Errorf("protocol: marking Kyber prekey used: %w", err)
		}
	}
	if usedPreKey {
		if err := c.stores.PreKeys.RemovePreKey(ctx, m.PreKeyID); err != nil {
			return nil, fmt.Errorf("protocol: removing prekey: %w", err)
		}
	}
	if err := c.stores.Sessions.StoreSession(ctx, addr, rec); err != nil {
		return nil, fmt.Errorf("protocol: storing session: %w", err)
	}
	return pt, nil
}

// keyLookupErr turns a missing-prekey error into a decryption failure the
// caller can still recognise locally (the peer learns nothing either way).
func keyLookupErr(err error) error {
	if errors.Is(err, ErrNoPreKey) || errors.Is(err, ErrNoSignedPreKey) || errors.Is(err, ErrNoKyberPreKey) {
		return fmt.Errorf("%w: %w", ErrDecryption, err)
	}
	return fmt.Errorf("protocol: loading prekey: %w", err)
}
