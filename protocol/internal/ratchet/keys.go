package ratchet

import (
	"github.com/veil-e2ee/veil/protocol/internal/curve"
	"github.com/veil-e2ee/veil/protocol/internal/primitives"
)

// libsignal's limits (rust/protocol/src/consts.rs).
const (
	MaxForwardJumps   = 25_000
	MaxMessageKeys    = 2_000
	MaxReceiverChains = 5
	MaxArchivedStates = 40
	// MaxUnacknowledgedSessionAgeMillis: a session whose PreKey message was
	// never answered stops being used for sending after 30 days.
	MaxUnacknowledgedSessionAgeMillis = 30 * 24 * 60 * 60 * 1000
)

// KDF labels, as libsignal spells them.
var (
	labelText        = []byte("WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024")
	labelRatchet     = []byte("WhisperRatchet")
	labelMessageKeys = []byte("WhisperMessageKeys")
	messageKeySeed   = []byte{0x01}
	chainKeySeed     = []byte{0x02}
	discontinuity    = [32]byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}
)

// ChainKey is a symmetric-ratchet chain key and the index of the next
// message key it yields.
type ChainKey struct {
	Key   [32]byte
	Index uint32
}

// Next returns the following chain key: HMAC(key, 0x02).
func (c *ChainKey) Next() ChainKey {
	var n ChainKey
	primitives.HMACSHA256(n.Key[:0], c.Key[:], chainKeySeed)
	n.Index = c.Index + 1
	return n
}

// MessageSeed returns the message-key seed for c.Index: HMAC(key, 0x01).
func (c *ChainKey) MessageSeed() (seed [32]byte) {
	primitives.HMACSHA256(seed[:0], c.Key[:], messageKeySeed)
	return seed
}

// MessageKeys are the per-message AES-256-CBC key, HMAC key and IV.
type MessageKeys struct {
	Cipher [32]byte
	MAC    [32]byte
	IV     [16]byte
}

// DeriveMessageKeys expands a message-key seed: HKDF(no salt, seed,
// "WhisperMessageKeys") → 32 ‖ 32 ‖ 16. (With SPQR the salt would be the
// post-quantum key; Veil does not negotiate SPQR, so there is none.)
func DeriveMessageKeys(seed *[32]byte) (k MessageKeys) {
	var out [80]byte
	primitives.HKDF(out[:], seed[:], nil, labelMessageKeys)
	copy(k.Cipher[:], out[:32])
	copy(k.MAC[:], out[32:64])
	copy(k.IV[:], out[64:])
	clear(out[:])
	return k
}

// createChain is one DH ratchet step: HKDF(salt = rootKey, DH(ourPriv,
// theirPub), "WhisperRatchet") → new root key ‖ chain key.
func createChain(rootKey *[32]byte, theirPub *[33]byte, ourPriv *[32]byte) (root [32]byte, chain ChainKey, err error) {
	var shared [32]byte
	if err := dh(&shared, ourPriv, theirPub); err != nil {
		return root, chain, err
	}
	var out [64]byte
	primitives.HKDF(out[:], shared[:], rootKey[:], labelRatchet)
	copy(root[:], out[:32])
	copy(chain.Key[:], out[32:])
	clear(out[:])
	clear(shared[:])
	return root, chain, nil
}

// dh computes X25519 between a private scalar and a serialized (0x05 ‖ u)
// public key.
func dh(dst *[32]byte, priv *[32]byte, pub *[33]byte) error {
	return curve.X25519(dst, priv, (*[32]byte)(pub[1:]))
}

// KeyPair is a Curve25519 key pair in libsignal's forms: a clamped
// 32-byte private scalar and a 33-byte serialized public key.
type KeyPair struct {
	Public  [33]byte
	Private [32]byte
}

// NewKeyPair derives the key pair for a (to be clamped) private scalar.
func NewKeyPair(priv *[32]byte) KeyPair {
	var kp KeyPair
	kp.Private = *priv
	curve.Clamp(&kp.Private)
	kp.Public[0] = 0x05
	curve.PublicKey((*[32]byte)(kp.Public[1:]), &kp.Private)
	return kp
}
