package protocol

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/veil-e2ee/veil/protocol/internal/senderkey"
	"github.com/veil-e2ee/veil/protocol/internal/xeddsa"
)

// ErrNoSenderKey: there is no sender-key chain for the (sender, distribution
// id, chain id) of a group message, or none of our own to encrypt with. The
// sender has to (re)send its distribution message; for our own chain, call
// GroupCipher.NewDistribution.
var ErrNoSenderKey = errors.New("protocol: no sender key")

// DistributionID names one sender's sender-key chain for one group (a UUID).
// Signal uses a random version-4 UUID per (group, sender) and replaces it
// when the group's membership shrinks.
type DistributionID [16]byte

// String returns the canonical lower-case UUID text (8-4-4-4-12).
func (d DistributionID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], d[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], d[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], d[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], d[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], d[10:16])
	return string(b[:])
}

// ParseDistributionID reads a UUID in its 36-character text form (hex digits
// of either case).
func ParseDistributionID(s string) (DistributionID, error) {
	var d DistributionID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return d, fmt.Errorf("%w: distribution id %q is not a UUID", ErrInvalidMessage, s)
	}
	src := []byte(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36])
	if _, err := hex.Decode(d[:], src); err != nil {
		return DistributionID{}, fmt.Errorf("%w: distribution id %q is not a UUID", ErrInvalidMessage, s)
	}
	return d, nil
}

// SenderKeyRecord is the stored sender-key state for one (sender,
// distribution id): up to 5 chains, newest first, with up to 2,000 skipped
// message keys each. It contains secret keys (for our own chain, the private
// signing key); store it encrypted at rest.
type SenderKeyRecord struct {
	r *senderkey.Record
}

// ParseSenderKeyRecord decodes a record written by Marshal (by this or an
// earlier version of Veil). Its format is Veil's own, not libsignal's.
func ParseSenderKeyRecord(b []byte) (*SenderKeyRecord, error) {
	r, err := senderkey.ParseRecord(b)
	switch {
	case errors.Is(err, senderkey.ErrRecordVersion):
		return nil, ErrRecordVersion
	case err != nil:
		return nil, ErrInvalidRecord
	}
	return &SenderKeyRecord{r: r}, nil
}

// Marshal returns the record's stored form (versioned). It must be kept
// secret.
func (r *SenderKeyRecord) Marshal() []byte { return r.r.Marshal(nil) }

// Clone returns a deep copy.
func (r *SenderKeyRecord) Clone() *SenderKeyRecord { return &SenderKeyRecord{r: r.r.Clone()} }

// SenderKeyStore keeps sender-key records by (sender, distribution id). A
// store must not let the caller's record and the stored one share state
// (copy in and out, or serialize).
type SenderKeyStore interface {
	// LoadSenderKey returns nil, nil when there is no record.
	LoadSenderKey(ctx context.Context, sender Address, id DistributionID) (*SenderKeyRecord, error)
	StoreSenderKey(ctx context.Context, sender Address, id DistributionID, r *SenderKeyRecord) error
}

// GroupCipher encrypts and decrypts sender-key (group) messages, as
// libsignal's group_encrypt and group_decrypt do. A sender makes one chain
// per group (NewDistribution), sends its distribution message to each member
// over their one-to-one sessions, and then encrypts each group message once
// for everyone. It is safe for concurrent use if its store is, but two
// concurrent calls for the same (address, distribution id) race on the
// record; serialize them (as the one-to-one Cipher's callers do).
type GroupCipher struct {
	store SenderKeyStore
	rand  io.Reader
}

// NewGroupCipher returns a GroupCipher over store, drawing keys, chain ids
// and signature nonces from rand (crypto/rand.Reader outside tests).
func NewGroupCipher(store SenderKeyStore, rand io.Reader) *GroupCipher {
	return &GroupCipher{store: store, rand: rand}
}

func (g *GroupCipher) load(ctx context.Context, addr Address, id DistributionID) (*SenderKeyRecord, error) {
	r, err := g.store.LoadSenderKey(ctx, addr, id)
	if err != nil {
		return nil, fmt.Errorf("protocol: loading sender key of %s for %s: %w", addr, id, err)
	}
	return r, nil
}

func (g *GroupCipher) save(ctx context.Context, addr Address, id DistributionID, r *SenderKeyRecord) error {
	if err := g.store.StoreSenderKey(ctx, addr, id, r); err != nil {
		return fmt.Errorf("protocol: storing sender key of %s for %s: %w", addr, id, err)
	}
	return nil
}

// NewDistribution returns the SenderKeyDistributionMessage for self's chain
// in group id, creating the chain (random 31-bit chain id, chain key and
// signing key, as libsignal does) if there is none. The message carries the
// chain's current iteration, so members given it later cannot read earlier
// messages. It must be sent only over encrypted one-to-one sessions.
func (g *GroupCipher) NewDistribution(ctx context.Context, self Address, id DistributionID) ([]byte, error) {
	rec, err := g.load(ctx, self, id)
	if err != nil {
		return nil, err
	}
	if rec == nil || rec.r.Current() == nil {
		var rnd [4 + senderkey.ChainKeySize]byte
		if _, err := io.ReadFull(g.rand, rnd[:]); err != nil {
			return nil, fmt.Errorf("protocol: reading randomness: %w", err)
		}
		kp, err := GenerateKeyPair(g.rand)
		if err != nil {
			return nil, err
		}
		st := &senderkey.State{
			ChainID:        binary.LittleEndian.Uint32(rnd[:4]) >> 1, // 31 bits, as libsignal-protocol-java
			SigningPublic:  kp.Public.b,
			SigningPrivate: &kp.Private.b,
		}
		copy(st.Chain.Key[:], rnd[4:])
		clear(rnd[:])
		rec = &SenderKeyRecord{r: &senderkey.Record{}}
		rec.r.Add(st)
		if err := g.save(ctx, self, id, rec); err != nil {
			return nil, err
		}
	}
	st := rec.r.Current()
	d := senderkey.Distribution{
		DistributionID: id,
		ChainID:        st.ChainID,
		Iteration:      st.Chain.Iteration,
		ChainKey:       st.Chain.Key,
		SigningKey:     st.SigningPublic,
	}
	out := senderkey.AppendDistribution(nil, &d)
	clear(d.ChainKey[:])
	return out, nil
}

// ProcessDistribution stores a distribution message received from sender
// (over an authenticated one-to-one session) and returns its distribution
// id. Its chain becomes the newest of the sender's chains for that id; a
// chain already held (same chain id and signing key) keeps its progress, so
// processing a message twice is harmless. A malformed message is
// ErrInvalidMessage (ErrLegacyMessage / ErrUnknownVersion for another
// version).
func (g *GroupCipher) ProcessDistribution(ctx context.Context, sender Address, skdm []byte) (DistributionID, error) {
	d, err := senderkey.ParseDistribution(skdm)
	if err != nil {
		return DistributionID{}, fmt.Errorf("%w: sender key distribution message", versionError(err))
	}
	id := DistributionID(d.DistributionID)
	rec, err := g.load(ctx, sender, id)
	if err != nil {
		return DistributionID{}, err
	}
	if rec == nil {
		rec = &SenderKeyRecord{r: &senderkey.Record{}}
	}
	rec.r.Add(&senderkey.State{
		ChainID:       d.ChainID,
		Chain:         senderkey.ChainKey{Key: d.ChainKey, Iteration: d.Iteration},
		SigningPublic: d.SigningKey,
	})
	clear(d.ChainKey[:])
	if err := g.save(ctx, sender, id, rec); err != nil {
		return DistributionID{}, err
	}
	return id, nil
}

// versionError maps a decoding error of the senderkey package to this
// package's sentinels.
func versionError(err error) error {
	switch {
	case errors.Is(err, senderkey.ErrLegacyVersion):
		return ErrLegacyMessage
	case errors.Is(err, senderkey.ErrUnknownVersion):
		return ErrUnknownVersion
	default:
		return ErrInvalidMessage
	}
}

// Encrypt encrypts plaintext for group id with self's newest chain and
// returns the signed SenderKeyMessage. Without a chain of our own (no
// NewDistribution yet, or after Rotate) it is ErrNoSenderKey.
func (g *GroupCipher) Encrypt(ctx context.Context, self Address, id DistributionID, plaintext []byte) ([]byte, error) {
	rec, err := g.load(ctx, self, id)
	if err != nil {
		return nil, err
	}
	var st *senderkey.State
	if rec != nil {
		st = rec.r.Current()
	}
	if st == nil || st.SigningPrivate == nil {
		return nil, fmt.Errorf("%w: no chain of our own for %s (create a distribution message first)", ErrNoSenderKey, id)
	}
	next, ok := st.Chain.Next()
	if !ok {
		return nil, fmt.Errorf("%w: sender-key chain for %s is exhausted; rotate it", ErrNoSenderKey, id)
	}
	var nonce [64]byte
	if _, err := io.ReadFull(g.rand, nonce[:]); err != nil {
		return nil, fmt.Errorf("protocol: reading randomness: %w", err)
	}

	seed := st.Chain.Seed()
	m := senderkey.Message{DistributionID: id, ChainID: st.ChainID, Iteration: st.Chain.Iteration}
	// Size the output once: header, protobuf, padded ciphertext and signature.
	ctLen := len(plaintext) + 16 - len(plaintext)%16
	m.Ciphertext = make([]byte, ctLen)
	out := make([]byte, 0, senderkey.MessageSize(&m))
	m.Ciphertext = senderkey.Encrypt(m.Ciphertext[:0], &seed, plaintext)
	clear(seed[:])
	out = senderkey.AppendMessage(out, &m)
	sig := xeddsa.Sign(st.SigningPrivate, out, &nonce)
	out = append(out, sig[:]...)

	st.Chain = next
	if err := g.save(ctx, self, id, rec); err != nil {
		return nil, err
	}
	return out, nil
}

// DistributionIDOf reads the distribution id of a SenderKeyMessage without
// decrypting it (to find the group, or the record to load). A malformed
// message is ErrInvalidMessage.
func DistributionIDOf(message []byte) (DistributionID, error) {
	m, _, _, err := senderkey.ParseMessage(message)
	if err != nil {
		return DistributionID{}, fmt.Errorf("%w: sender key message", versionError(err))
	}
	return DistributionID(m.DistributionID), nil
}

// Decrypt decrypts a SenderKeyMessage from sender. It returns
// ErrDuplicateMessage for a message already decrypted, ErrNoSenderKey when
// no chain is known for its (sender, distribution id, chain id), and
// otherwise an error matching ErrDecryption: a bad signature, bad padding, a
// message more than 25,000 iterations ahead, and also a malformed message
// (which additionally matches ErrInvalidMessage, or ErrLegacyMessage /
// ErrUnknownVersion). The signature is checked before anything else is
// done with the message, and a failure leaves the stored record unchanged.
func (g *GroupCipher) Decrypt(ctx context.Context, sender Address, message []byte) ([]byte, error) {
	m, signed, sig, err := senderkey.ParseMessage(message)
	if err != nil {
		return nil, fmt.Errorf("%w: %w: sender key message", ErrDecryption, versionError(err))
	}
	id := DistributionID(m.DistributionID)
	rec, err := g.load(ctx, sender, id)
	if err != nil {
		return nil, err
	}
	var st *senderkey.State
	if rec != nil {
		st = rec.r.ForChain(m.ChainID)
	}
	if st == nil {
		return nil, fmt.Errorf("%w: from %s for %s, chain %d", ErrNoSenderKey, sender, id, m.ChainID)
	}
	if !xeddsa.Verify((*[32]byte)(st.SigningPublic[1:]), signed, (*[64]byte)(sig)) {
		return nil, fmt.Errorf("%w: bad sender key message signature", ErrDecryption)
	}
	plan, err := st.Plan(m.Iteration)
	switch {
	case errors.Is(err, senderkey.ErrDuplicate):
		return nil, fmt.Errorf("%w: sender key iteration %d from %s", ErrDuplicateMessage, m.Iteration, sender)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrDecryption, err)
	}
	pt, err := senderkey.Decrypt(nil, &plan.Seed, m.Ciphertext)
	clear(plan.Seed[:])
	if err != nil {
		return nil, fmt.Errorf("%w: sender key message body", ErrDecryption)
	}
	st.Apply(&plan)
	if err := g.save(ctx, sender, id, rec); err != nil {
		clear(pt)
		return nil, err
	}
	return pt, nil
}

// Rotate forgets self's chains for group id, so that the next
// NewDistribution makes a fresh chain (new chain id, chain key and signing
// key). Members who get only the old distribution cannot read what is sent
// afterwards. Signal rotates when a member leaves; it also changes the
// distribution id then, which a caller may do instead.
func (g *GroupCipher) Rotate(ctx context.Context, self Address, id DistributionID) error {
	rec, err := g.load(ctx, self, id)
	if err != nil || rec == nil {
		return err
	}
	return g.save(ctx, self, id, &SenderKeyRecord{r: &senderkey.Record{}})
}
