// Package senderkey is the core of Signal's sender keys (group messaging): the wire encodings
// of SenderKeyMessage and SenderKeyDistributionMessage, the symmetric chain, and the stored
// record with its chains and skipped message keys. It does no I/O and no signing; the protocol
// package drives it.
//
// # Formats
//
// Both messages start with the version byte 0x33 (version 3 in both nibbles) followed by a
// protobuf written as libsignal (prost) writes it: every field present, in field-number order,
// minimal varints. A SenderKeyMessage is followed by a 64-byte XEdDSA signature over everything
// before it:
//
//	SenderKeyMessage             = 0x33 ‖ {1: distribution uuid (16), 2: chain id, 3: iteration, 4: ciphertext} ‖ signature
//	SenderKeyDistributionMessage = 0x33 ‖ {1: distribution uuid (16), 2: chain id, 3: iteration, 4: chain key (32), 5: signing key (33)}
//
// Decoders accept exactly that encoding (see protocol/internal/wire), so a message has one
// valid encoding.
//
// # Chains
//
// A chain key at iteration i yields the message-key seed HMAC-SHA256(key, 0x01) and the next
// chain key HMAC-SHA256(key, 0x02). A seed expands to IV (16) ‖ AES-256 key (32) with
// HKDF-SHA256(no salt, seed, "WhisperGroup"); bodies are AES-256-CBC with PKCS#7.
//
// # Records and limits
//
// A [Record] holds up to [MaxStates] chains (newest first), each with up to [MaxMessageKeys]
// skipped message-key seeds; a message more than [MaxForwardJumps] iterations ahead of its chain
// is refused. These are libsignal's limits (rust/protocol/src/consts.rs). The stored form is
// Veil's own, versioned by [RecordFormat].
//
// Decryption is planned first ([State.Plan]) and applied only after the caller has verified
// the signature and decrypted the body ([State.Apply]), so a failure changes nothing.
package senderkey

import (
	"errors"
	"math"

	"github.com/veil-e2ee/veil/protocol/internal/primitives"
)

// Protocol constants.
const (
	// Version is the sender-key message version libsignal writes.
	Version = 3
	// VersionByte starts every sender-key message: the version in both nibbles.
	VersionByte = Version<<4 | Version
	// SignatureSize is the length of the XEdDSA signature ending a SenderKeyMessage.
	SignatureSize = 64
	// PublicKeySize is the serialized signing key: 0x05 ‖ u.
	PublicKeySize = 33
	// PrivateKeySize is the signing key's private scalar.
	PrivateKeySize = 32
	// ChainKeySize is the size of a chain key and of a message-key seed.
	ChainKeySize = 32

	// MaxForwardJumps is how far ahead of its chain a message may be.
	MaxForwardJumps = 25_000
	// MaxMessageKeys is how many skipped message keys a chain keeps; the oldest go first.
	MaxMessageKeys = 2_000
	// MaxStates is how many chains a record keeps; the oldest goes first.
	MaxStates = 5
)

// Errors. They say what went wrong locally; the protocol package decides what a peer may learn.
var (
	// ErrMalformed: a message is not the canonical encoding of a sender-key message.
	ErrMalformed = errors.New("senderkey: malformed message")
	// ErrLegacyVersion: the message's version is older than 3.
	ErrLegacyVersion = errors.New("senderkey: legacy message version")
	// ErrUnknownVersion: the message's version is newer than 3.
	ErrUnknownVersion = errors.New("senderkey: unknown message version")
	// ErrDuplicate: the message key for this iteration was already used (or dropped).
	ErrDuplicate = errors.New("senderkey: duplicate message")
	// ErrTooFarAhead: the message is more than MaxForwardJumps ahead of the chain.
	ErrTooFarAhead = errors.New("senderkey: message too far ahead of the chain")
	// ErrChainExhausted: the chain has reached iteration 2^32−1 and cannot advance.
	ErrChainExhausted = errors.New("senderkey: chain exhausted")
)

var (
	labelGroup   = []byte("WhisperGroup")
	seedMessage  = []byte{0x01}
	seedNextHash = []byte{0x02}
)

// ChainKey is a sender chain key and the iteration of the next message key it yields. It must
// be kept secret.
type ChainKey struct {
	Key       [ChainKeySize]byte
	Iteration uint32
}

// Seed returns the message-key seed for c.Iteration: HMAC-SHA256(key, 0x01).
func (c *ChainKey) Seed() (seed [ChainKeySize]byte) {
	primitives.HMACSHA256(seed[:0], c.Key[:], seedMessage)
	return seed
}

// Next returns the following chain key, HMAC-SHA256(key, 0x02). ok is false when c is at the
// last iteration 2^32−1, as libsignal refuses to advance past it.
func (c *ChainKey) Next() (next ChainKey, ok bool) {
	if c.Iteration == math.MaxUint32 {
		return ChainKey{}, false
	}
	primitives.HMACSHA256(next.Key[:0], c.Key[:], seedNextHash)
	next.Iteration = c.Iteration + 1
	return next, true
}

// MessageKey is the AES-256-CBC key and IV of one message. It must be kept secret.
type MessageKey struct {
	IV     [16]byte
	Cipher [32]byte
}

// DeriveMessageKey expands a seed: HKDF-SHA256(no salt, seed, "WhisperGroup") → IV ‖ key.
func DeriveMessageKey(seed *[ChainKeySize]byte) (k MessageKey) {
	var out [48]byte
	primitives.HKDF(out[:], seed[:], nil, labelGroup)
	copy(k.IV[:], out[:16])
	copy(k.Cipher[:], out[16:])
	clear(out[:])
	return k
}

// Encrypt appends the AES-256-CBC encryption of plaintext under the seed's message key to dst.
func Encrypt(dst []byte, seed *[ChainKeySize]byte, plaintext []byte) []byte {
	k := DeriveMessageKey(seed)
	out, err := primitives.EncryptCBC(dst, k.Cipher[:], k.IV[:], plaintext)
	clear(k.Cipher[:])
	if err != nil {
		panic("senderkey: fixed-size AES key rejected") // sizes are constants
	}
	return out
}

// Decrypt appends the plaintext of an AES-256-CBC ciphertext under the seed's message key to
// dst; a bad length or padding is primitives.ErrDecrypt.
func Decrypt(dst []byte, seed *[ChainKeySize]byte, ciphertext []byte) ([]byte, error) {
	k := DeriveMessageKey(seed)
	out, err := primitives.DecryptCBC(dst, k.Cipher[:], k.IV[:], ciphertext)
	clear(k.Cipher[:])
	return out, err
}
