package devicestore

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/crypto/argon2"
)

// The header file is the only plaintext file of a store. Its layout
// (big-endian, 67 bytes, exactly one valid encoding per header):
//
//	offset size field
//	0      8    magic "VEILDSH\n"
//	8      1    format version (1)
//	9      1    unlock kind: 1 passphrase (Argon2id), 2 key file
//	10     4    Argon2id time cost (passes)       — 0 for a key file
//	14     4    Argon2id memory cost in KiB       — 0 for a key file
//	18     1    Argon2id parallelism (lanes)      — 0 for a key file
//	19     16   salt (random, per device)
//	35     32   key check: HMAC-SHA256(check key, bytes 0..34)
//
// The key check covers every other byte of the header, so a header
// edited to weaker parameters or another salt fails to unlock
// (ErrWrongPassphrase) instead of deriving a different key.
const (
	headerMagic   = "VEILDSH\n"
	headerVersion = 1
	headerSize    = 67
	checkOffset   = 35
	saltSize      = 16
	keySize       = 32

	kindPassphrase = 1
	kindKeyFile    = 2
)

// HKDF labels. The salt of the header is the HKDF salt; the master key
// (Argon2id output or key file) is the input key material.
const (
	labelPageKey  = "veil devicestore v1 page key"
	labelCheckKey = "veil devicestore v1 key check"
)

// KDFParams are the Argon2id costs used to stretch a passphrase. They are
// recorded in the header, so a store keeps the costs it was created with.
type KDFParams struct {
	Time    uint32 // passes over memory
	Memory  uint32 // KiB
	Threads uint8  // lanes
}

// DefaultKDFParams: Argon2id with 3 passes over 64 MiB in 2 lanes (RFC 9106's
// second recommended option has t=3, m=64 MiB; 2 lanes match a small
// device). An unlock takes about 0.3 s on the 2-core build machine; see
// docs/CLIENT.md.
var DefaultKDFParams = KDFParams{Time: 3, Memory: 64 * 1024, Threads: 2}

// Bounds a header must respect: a damaged or hostile header must not make
// Open allocate gigabytes or spin for minutes.
const (
	maxKDFTime    = 64
	maxKDFMemory  = 1 << 20 // 1 GiB in KiB
	minKDFMemory  = 8       // Argon2 needs 8 KiB per lane; checked below too
	maxKDFThreads = 64
)

func (p KDFParams) valid() bool {
	return p.Time >= 1 && p.Time <= maxKDFTime &&
		p.Threads >= 1 && p.Threads <= maxKDFThreads &&
		p.Memory >= minKDFMemory*uint32(p.Threads) && p.Memory <= maxKDFMemory
}

type header struct {
	kind  byte
	kdf   KDFParams
	salt  [saltSize]byte
	check [32]byte
}

// marshal returns the header's bytes (the check included as it is).
func (h *header) marshal() []byte {
	b := make([]byte, 0, headerSize)
	b = append(b, headerMagic...)
	b = append(b, headerVersion, h.kind)
	b = binary.BigEndian.AppendUint32(b, h.kdf.Time)
	b = binary.BigEndian.AppendUint32(b, h.kdf.Memory)
	b = append(b, h.kdf.Threads)
	b = append(b, h.salt[:]...)
	b = append(b, h.check[:]...)
	return b
}

// parseHeader decodes a header file. It checks structure only; whether
// the check value matches needs the key (see verify).
func parseHeader(b []byte) (*header, error) {
	if len(b) != headerSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidHeader, len(b), headerSize)
	}
	if string(b[:8]) != headerMagic {
		return nil, fmt.Errorf("%w: not a Veil device store header", ErrInvalidHeader)
	}
	if b[8] != headerVersion {
		return nil, fmt.Errorf("%w: unknown format version %d", ErrInvalidHeader, b[8])
	}
	h := &header{kind: b[9]}
	h.kdf = KDFParams{
		Time:    binary.BigEndian.Uint32(b[10:14]),
		Memory:  binary.BigEndian.Uint32(b[14:18]),
		Threads: b[18],
	}
	switch h.kind {
	case kindPassphrase:
		if !h.kdf.valid() {
			return nil, fmt.Errorf("%w: Argon2id parameters out of range", ErrInvalidHeader)
		}
	case kindKeyFile:
		if h.kdf != (KDFParams{}) {
			return nil, fmt.Errorf("%w: KDF parameters set for a key file", ErrInvalidHeader)
		}
	default:
		return nil, fmt.Errorf("%w: unknown unlock kind %d", ErrInvalidHeader, h.kind)
	}
	copy(h.salt[:], b[19:35])
	copy(h.check[:], b[35:67])
	return h, nil
}

// keys are what a master key yields for one store.
type keys struct {
	page  [keySize]byte // the Adiantum key of the database (and its WAL)
	check [keySize]byte // keys the header's check value
}

func (k *keys) clear() {
	clear(k.page[:])
	clear(k.check[:])
}

// deriveKeys stretches the unlock secret (Argon2id for a passphrase; a
// key file is used as it is) into the master key and derives the page
// and check keys from it with HKDF-SHA256, salted with the header's salt.
func deriveKeys(h *header, u Unlock) (*keys, error) {
	var master []byte
	switch {
	case h.kind == kindPassphrase && u.kind == kindPassphrase:
		master = argon2.IDKey(u.secret, h.salt[:], h.kdf.Time, h.kdf.Memory, h.kdf.Threads, keySize)
	case h.kind == kindKeyFile && u.kind == kindKeyFile:
		master = append([]byte(nil), u.secret...)
	default:
		// Passphrase for a key-file store or the reverse: to the user,
		// the same mistake as a wrong passphrase.
		return nil, ErrWrongPassphrase
	}
	defer clear(master)
	var k keys
	for _, d := range []struct {
		label string
		out   *[keySize]byte
	}{{labelPageKey, &k.page}, {labelCheckKey, &k.check}} {
		b, err := hkdf.Key(sha256.New, master, h.salt[:], d.label, keySize)
		if err != nil {
			k.clear()
			return nil, fmt.Errorf("devicestore: deriving keys: %w", err)
		}
		copy(d.out[:], b)
		clear(b)
	}
	return &k, nil
}

// checkValue is the HMAC over the header's bytes before the check.
func (h *header) checkValue(k *keys) [32]byte {
	m := hmac.New(sha256.New, k.check[:])
	m.Write(h.marshal()[:checkOffset])
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// verify reports whether k unlocks h, comparing in constant time.
func (h *header) verify(k *keys) bool {
	want := h.checkValue(k)
	return hmac.Equal(want[:], h.check[:])
}

// newHeader makes the header of a new store: a fresh salt and the costs
// for the unlock kind.
func newHeader(rand io.Reader, u Unlock, p KDFParams) (*header, error) {
	h := &header{kind: u.kind}
	if u.kind == kindPassphrase {
		if !p.valid() {
			return nil, fmt.Errorf("devicestore: Argon2id parameters out of range")
		}
		h.kdf = p
	}
	if _, err := io.ReadFull(rand, h.salt[:]); err != nil {
		return nil, fmt.Errorf("devicestore: reading randomness: %w", err)
	}
	return h, nil
}
