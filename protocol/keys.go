package protocol

import (
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/cloudflare/circl/kem/kyber/kyber1024"

	"github.com/veil-e2ee/veil/protocol/internal/ratchet"
	"github.com/veil-e2ee/veil/protocol/internal/xeddsa"
)

// Serialized key type bytes, as libsignal writes them.
const (
	keyTypeDJB       = 0x05 // Curve25519
	keyTypeKyber1024 = 0x08 // pre-standard (round 3) Kyber1024
)

// Sizes of serialized keys and messages.
const (
	PublicKeySize       = 33                           // 0x05 ‖ u
	PrivateKeySize      = 32                           // a clamped X25519 scalar
	SignatureSize       = 64                           // XEdDSA
	KEMPublicKeySize    = 1 + kyber1024.PublicKeySize  // 0x08 ‖ 1568
	KEMPrivateKeySize   = 1 + kyber1024.PrivateKeySize // 0x08 ‖ 3168
	KEMCiphertextSize   = 1 + kyber1024.CiphertextSize // 0x08 ‖ 1568
	kemSharedSecretSize = kyber1024.SharedKeySize
)

// noCompare makes a struct incomparable with ==, so keys are compared
// only through their constant-time Equal methods.
type noCompare [0]func()

// PublicKey is a Curve25519 public key, used for identities, prekeys,
// base keys and ratchet keys. The zero value is not a valid key.
type PublicKey struct {
	_ noCompare
	b [PublicKeySize]byte
}

// ParsePublicKey decodes libsignal's 33-byte form (0x05 ‖ u). Unlike
// libsignal, trailing bytes are an error.
func ParsePublicKey(b []byte) (PublicKey, error) {
	var k PublicKey
	if len(b) != PublicKeySize || b[0] != keyTypeDJB {
		return k, fmt.Errorf("%w: EC public key must be 33 bytes starting 0x05", ErrInvalidKey)
	}
	copy(k.b[:], b)
	return k, nil
}

// Bytes returns the 33-byte serialized form (a copy).
func (k PublicKey) Bytes() []byte { return append([]byte(nil), k.b[:]...) }

// Equal reports whether k and o are the same key, in constant time.
func (k PublicKey) Equal(o PublicKey) bool {
	return subtle.ConstantTimeCompare(k.b[:], o.b[:]) == 1
}

// IsZero reports whether k is the zero value (no key).
func (k PublicKey) IsZero() bool { return k.b[0] == 0 }

// String returns a short fingerprint-like hex prefix, for logs and
// debugging; public keys are not secret.
func (k PublicKey) String() string { return "ec:" + hex.EncodeToString(k.b[1:9]) }

// VerifySignature checks an XEdDSA signature made by the private half of k.
func (k PublicKey) VerifySignature(message, signature []byte) bool {
	if len(signature) != SignatureSize || k.IsZero() {
		return false
	}
	return xeddsa.Verify((*[32]byte)(k.b[1:]), message, (*[64]byte)(signature))
}

// PrivateKey is a Curve25519 private key. It must be kept secret; its
// String method never prints it.
type PrivateKey struct {
	_ noCompare
	b [PrivateKeySize]byte
}

// ParsePrivateKey decodes a 32-byte private scalar (clamping it, as
// libsignal does).
func ParsePrivateKey(b []byte) (PrivateKey, error) {
	var k PrivateKey
	if len(b) != PrivateKeySize {
		return k, fmt.Errorf("%w: EC private key must be 32 bytes", ErrInvalidKey)
	}
	copy(k.b[:], b)
	k.b[0] &= 248
	k.b[31] &= 127
	k.b[31] |= 64
	return k, nil
}

// Bytes returns the 32-byte private scalar (a copy). It must be kept secret.
func (k PrivateKey) Bytes() []byte { return append([]byte(nil), k.b[:]...) }

// PublicKey derives the public key.
func (k PrivateKey) PublicKey() PublicKey {
	kp := ratchet.NewKeyPair(&k.b)
	return PublicKey{b: kp.Public}
}

// String does not reveal the key.
func (PrivateKey) String() string { return "ec:private(redacted)" }

// KeyPair is a Curve25519 key pair.
type KeyPair struct {
	Public  PublicKey
	Private PrivateKey
}

// GenerateKeyPair makes a new key pair from 32 bytes of rand.
func GenerateKeyPair(rand io.Reader) (KeyPair, error) {
	var seed [32]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return KeyPair{}, fmt.Errorf("protocol: reading randomness: %w", err)
	}
	kp := ratchet.NewKeyPair(&seed)
	clear(seed[:])
	return fromInternal(kp), nil
}

// NewKeyPair rebuilds a key pair from its private key.
func NewKeyPair(priv PrivateKey) KeyPair {
	return fromInternal(ratchet.NewKeyPair(&priv.b))
}

func fromInternal(kp ratchet.KeyPair) KeyPair {
	return KeyPair{Public: PublicKey{b: kp.Public}, Private: PrivateKey{b: kp.Private}}
}

func (kp KeyPair) internal() ratchet.KeyPair {
	return ratchet.KeyPair{Public: kp.Public.b, Private: kp.Private.b}
}

// Sign makes an XEdDSA signature with the private key (randomized with 64
// bytes from rand, as libsignal's signatures are).
func (kp KeyPair) Sign(rand io.Reader, message []byte) ([]byte, error) {
	var nonce [64]byte
	if _, err := io.ReadFull(rand, nonce[:]); err != nil {
		return nil, fmt.Errorf("protocol: reading randomness: %w", err)
	}
	sig := xeddsa.Sign(&kp.Private.b, message, &nonce)
	return sig[:], nil
}

// IdentityKeyPair is a device's long-term identity. The public half is
// what safety numbers are computed over.
type IdentityKeyPair = KeyPair

// GenerateIdentityKeyPair makes a new identity key pair.
func GenerateIdentityKeyPair(rand io.Reader) (IdentityKeyPair, error) {
	return GenerateKeyPair(rand)
}

// GenerateRegistrationID returns a random registration id in libsignal's
// range, 1..16380.
func GenerateRegistrationID(rand io.Reader) (uint32, error) {
	var b [2]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return 0, fmt.Errorf("protocol: reading randomness: %w", err)
	}
	return (uint32(b[0])<<8|uint32(b[1]))%16380 + 1, nil
}

// KEMPublicKey is a Kyber1024 (round 3) public key, as libsignal's
// PQXDH uses.
type KEMPublicKey struct {
	_ noCompare
	b []byte // 0x08 ‖ 1568 bytes
	k *kyber1024.PublicKey
}

// ParseKEMPublicKey decodes libsignal's serialized form (0x08 ‖ 1568 B).
func ParseKEMPublicKey(b []byte) (KEMPublicKey, error) {
	if len(b) != KEMPublicKeySize || b[0] != keyTypeKyber1024 {
		return KEMPublicKey{}, fmt.Errorf("%w: KEM public key must be %d bytes starting 0x08", ErrInvalidKey, KEMPublicKeySize)
	}
	k := new(kyber1024.PublicKey)
	k.Unpack(b[1:])
	return KEMPublicKey{b: append([]byte(nil), b...), k: k}, nil
}

// Bytes returns the serialized form (a copy).
func (k KEMPublicKey) Bytes() []byte { return append([]byte(nil), k.b...) }

// Equal reports whether k and o are the same key, in constant time.
func (k KEMPublicKey) Equal(o KEMPublicKey) bool {
	return subtle.ConstantTimeCompare(k.b, o.b) == 1
}

// IsZero reports whether k is the zero value.
func (k KEMPublicKey) IsZero() bool { return k.k == nil }

// encapsulate returns the serialized ciphertext and the shared secret.
func (k KEMPublicKey) encapsulate(rand io.Reader) (ct, ss []byte, err error) {
	if k.k == nil {
		return nil, nil, fmt.Errorf("%w: missing KEM key", ErrInvalidKey)
	}
	var seed [kyber1024.EncapsulationSeedSize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, nil, fmt.Errorf("protocol: reading randomness: %w", err)
	}
	ct = make([]byte, KEMCiphertextSize)
	ct[0] = keyTypeKyber1024
	ss = make([]byte, kemSharedSecretSize)
	k.k.EncapsulateTo(ct[1:], ss, seed[:])
	clear(seed[:])
	return ct, ss, nil
}

// KEMPrivateKey is a Kyber1024 private key. It must be kept secret.
type KEMPrivateKey struct {
	_ noCompare
	k *kyber1024.PrivateKey
}

// ParseKEMPrivateKey decodes libsignal's serialized form (0x08 ‖ 3168 B).
func ParseKEMPrivateKey(b []byte) (KEMPrivateKey, error) {
	if len(b) != KEMPrivateKeySize || b[0] != keyTypeKyber1024 {
		return KEMPrivateKey{}, fmt.Errorf("%w: KEM private key must be %d bytes starting 0x08", ErrInvalidKey, KEMPrivateKeySize)
	}
	k := new(kyber1024.PrivateKey)
	k.Unpack(b[1:])
	return KEMPrivateKey{k: k}, nil
}

// Bytes returns the serialized private key. It must be kept secret.
func (k KEMPrivateKey) Bytes() []byte {
	if k.k == nil {
		return nil
	}
	b := make([]byte, KEMPrivateKeySize)
	b[0] = keyTypeKyber1024
	k.k.Pack(b[1:])
	return b
}

// String does not reveal the key.
func (KEMPrivateKey) String() string { return "kem:private(redacted)" }

// decapsulate recovers the shared secret from a serialized ciphertext.
func (k KEMPrivateKey) decapsulate(ct []byte) ([]byte, error) {
	if k.k == nil || len(ct) != KEMCiphertextSize || ct[0] != keyTypeKyber1024 {
		return nil, fmt.Errorf("%w: bad KEM ciphertext", ErrInvalidMessage)
	}
	ss := make([]byte, kemSharedSecretSize)
	k.k.DecapsulateTo(ss, ct[1:])
	return ss, nil
}

// KEMKeyPair is a Kyber1024 key pair.
type KEMKeyPair struct {
	Public  KEMPublicKey
	Private KEMPrivateKey
}

// GenerateKEMKeyPair makes a new Kyber1024 key pair from 64 bytes of rand.
func GenerateKEMKeyPair(rand io.Reader) (KEMKeyPair, error) {
	var seed [kyber1024.KeySeedSize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return KEMKeyPair{}, fmt.Errorf("protocol: reading randomness: %w", err)
	}
	pk, sk := kyber1024.NewKeyFromSeed(seed[:])
	clear(seed[:])
	b := make([]byte, KEMPublicKeySize)
	b[0] = keyTypeKyber1024
	pk.Pack(b[1:])
	return KEMKeyPair{Public: KEMPublicKey{b: b, k: pk}, Private: KEMPrivateKey{k: sk}}, nil
}
