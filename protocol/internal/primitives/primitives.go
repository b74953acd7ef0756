// Package primitives holds the symmetric building blocks the Signal protocol is made of,
// shaped for the protocol's hot path. (X25519 lives in protocol/internal/curve.)
//
// # What is here
//
// AES-CBC with PKCS#7 padding ([EncryptCBC], [DecryptCBC]) encrypts message bodies and sender-key
// messages; HKDF-SHA256 ([HKDF]) derives every key; HMAC-SHA256 ([HMACSHA256]) advances chain keys
// and authenticates messages.
//
// # Why not call the standard library directly
//
// The standard library does the cryptography. This package only removes allocations that matter
// when a message needs several HMAC and HKDF calls (it reuses pooled SHA-256 states instead of
// building a new HMAC for every call), fixes the exact semantics libsignal relies on (a nil HKDF
// salt means 32 zero bytes; PKCS#7 is checked in constant time) and turns every failure into a
// package sentinel error.
//
// # Secrets and memory
//
// The pooled HMAC states are cleared before they return to the pool, and [DecryptCBC] clears
// the plaintext it wrote when the padding is bad. Inputs reach SHA-256 through a scratch buffer,
// so callers may keep keys in stack arrays without them escaping to the heap. This is hygiene,
// not a promise of erasure: Go may have copied a value elsewhere.
//
// # Errors
//
// [DecryptCBC] reports every kind of bad ciphertext as [ErrDecrypt] and nothing more, so that a
// peer learns nothing from which check failed. Wrong key or IV sizes are caller bugs and are
// reported as [ErrKeySize].
package primitives

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding"
	"errors"
	"hash"
	"sync"
)

var (
	// ErrDecrypt is returned for any ciphertext that does not decrypt: a bad length or bad
	// padding. It is deliberately vague.
	ErrDecrypt = errors.New("primitives: decryption failed")
	// ErrKeySize is returned for an AES key that is not 16, 24 or 32 bytes long or an IV that
	// is not 16 bytes long.
	ErrKeySize = errors.New("primitives: invalid AES key or IV size")
)

const blockSize = aes.BlockSize

// newBlock checks sizes before touching the cipher so that the error is ours.
func newBlock(key, iv []byte) (cipher.Block, error) {
	if len(iv) != blockSize {
		return nil, ErrKeySize
	}
	switch len(key) {
	case 16, 24, 32:
	default:
		return nil, ErrKeySize
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, ErrKeySize
	}
	return b, nil
}

// grow returns dst extended by n bytes and the new tail, reusing dst's capacity when it can.
func grow(dst []byte, n int) (whole, tail []byte) {
	total := len(dst) + n
	if cap(dst) >= total {
		whole = dst[:total]
	} else {
		whole = make([]byte, total, total+total/4)
		copy(whole, dst)
	}
	return whole, whole[len(dst):]
}

// EncryptCBC appends AES-CBC(key, iv, PKCS#7-padded plaintext) to dst and returns the result.
// key is 16, 24 or 32 bytes and iv 16 bytes, otherwise the error is [ErrKeySize]. The output is
// always a whole number of blocks, one to sixteen bytes longer than plaintext.
//
// dst and plaintext may overlap only if dst[len(dst):] starts exactly at plaintext[0] (in-place
// encryption); any other overlap panics, as in [crypto/cipher].
func EncryptCBC(dst, key, iv, plaintext []byte) ([]byte, error) {
	b, err := newBlock(key, iv)
	if err != nil {
		return nil, err
	}
	pad := blockSize - len(plaintext)%blockSize
	whole, out := grow(dst, len(plaintext)+pad)
	copy(out, plaintext)
	for i := len(plaintext); i < len(out); i++ {
		out[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(out, out)
	return whole, nil
}

// DecryptCBC decrypts ciphertext with AES-CBC and appends the unpadded plaintext to dst.
// The padding is checked in constant time; an empty ciphertext, one that is not a whole number
// of blocks or one with bad padding all give [ErrDecrypt], and nothing is appended (bytes
// written into dst's spare capacity are cleared; when decrypting in place, that is the
// ciphertext's buffer). CBC is not authenticated: callers must check
// a MAC over the ciphertext first, as the Signal protocol does.
//
// dst and ciphertext may overlap only if dst[len(dst):] starts exactly at ciphertext[0].
func DecryptCBC(dst, key, iv, ciphertext []byte) ([]byte, error) {
	b, err := newBlock(key, iv)
	if err != nil {
		return nil, err
	}
	n := len(ciphertext)
	if n == 0 || n%blockSize != 0 {
		return nil, ErrDecrypt
	}
	whole, out := grow(dst, n)
	cipher.NewCBCDecrypter(b, iv).CryptBlocks(out, ciphertext)

	// Constant-time PKCS#7 check over the last block: padLen in 1..16 and each of the last
	// padLen bytes equal to padLen. Every byte of the last block is looked at regardless.
	padLen := int(out[n-1])
	good := subtle.ConstantTimeLessOrEq(1, padLen) & subtle.ConstantTimeLessOrEq(padLen, blockSize)
	for i := 0; i < blockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i+1, padLen)
		match := subtle.ConstantTimeByteEq(out[n-1-i], byte(padLen))
		good &= match | (inPad ^ 1)
	}
	if good != 1 {
		clear(out)
		return nil, ErrDecrypt
	}
	return whole[:len(whole)-padLen], nil
}

// hmacState is one reusable HMAC-SHA256 computation. Pooling it avoids the allocations
// crypto/hmac makes per key; the SHA-256 work is the standard library's. All scratch space lives
// here, and inputs reach the hash through [hmacState.write], so that no caller's buffer escapes
// to the heap through the hash.Hash interface.
type hmacState struct {
	inner, outer hash.Hash
	block        [sha256.BlockSize]byte
	sum          [sha256.Size]byte
	prk          [sha256.Size]byte
	t            [sha256.Size]byte
	scratch      [256]byte

	// Saved keyed states, so that HKDF-Expand pays for the PRK's pad blocks once, not once
	// per output block. Restoring a state costs less than half a SHA-256 block.
	savedInner, savedOuter []byte
}

type stateHash interface {
	hash.Hash
	encoding.BinaryAppender
	encoding.BinaryUnmarshaler
}

var hmacPool = sync.Pool{New: func() any {
	return &hmacState{
		inner:      sha256.New(),
		outer:      sha256.New(),
		savedInner: make([]byte, 0, 128),
		savedOuter: make([]byte, 0, 128),
	}
}}

func getHMAC(key []byte) *hmacState {
	h := hmacPool.Get().(*hmacState)
	h.setKey(key)
	return h
}

// put clears key-derived data and returns h to the pool.
func (h *hmacState) put() {
	clear(h.block[:])
	clear(h.sum[:])
	clear(h.prk[:])
	clear(h.t[:])
	clear(h.scratch[:])
	clear(h.savedInner[:cap(h.savedInner)])
	clear(h.savedOuter[:cap(h.savedOuter)])
	h.inner.Reset()
	h.outer.Reset()
	hmacPool.Put(h)
}

// write feeds p to the inner hash through the scratch buffer. The copy costs far less than the
// hashing and keeps p from escaping.
func (h *hmacState) write(p []byte) {
	for len(p) > 0 {
		n := copy(h.scratch[:], p)
		h.inner.Write(h.scratch[:n])
		p = p[n:]
	}
}

// setKey starts a new MAC under key (RFC 2104: keys longer than a block are hashed first).
func (h *hmacState) setKey(key []byte) {
	h.inner.Reset()
	if len(key) > sha256.BlockSize {
		h.write(key)
		h.inner.Sum(h.block[:0])
		clear(h.block[sha256.Size:])
		h.inner.Reset()
	} else {
		clear(h.block[copy(h.block[:], key):])
	}
	for i := range h.block {
		h.block[i] ^= 0x36
	}
	h.inner.Write(h.block[:])
	for i := range h.block {
		h.block[i] ^= 0x36 ^ 0x5c
	}
	h.outer.Reset()
	h.outer.Write(h.block[:])
}

// save records the freshly keyed state; restore goes back to it. The standard library's
// SHA-256 always implements both interfaces, so the errors cannot happen.
func (h *hmacState) save() {
	h.savedInner, _ = h.inner.(stateHash).AppendBinary(h.savedInner[:0])
	h.savedOuter, _ = h.outer.(stateHash).AppendBinary(h.savedOuter[:0])
}

func (h *hmacState) restore() {
	_ = h.inner.(stateHash).UnmarshalBinary(h.savedInner)
	_ = h.outer.(stateHash).UnmarshalBinary(h.savedOuter)
}

// finish leaves the tag in h.sum. The state must be keyed again before reuse.
func (h *hmacState) finish() {
	h.inner.Sum(h.sum[:0])
	h.outer.Write(h.sum[:])
	h.outer.Sum(h.sum[:0])
}

// HMACSHA256 appends HMAC-SHA256(key, parts[0] ‖ parts[1] ‖ …) to dst. Passing the message in
// parts lets callers MAC a concatenation (identity keys, version byte, body) without building it.
// Compare tags with [crypto/hmac.Equal], never bytes.Equal.
func HMACSHA256(dst, key []byte, parts ...[]byte) []byte {
	h := getHMAC(key)
	for _, p := range parts {
		h.write(p)
	}
	h.finish()
	dst = append(dst, h.sum[:]...)
	h.put()
	return dst
}

// maxHKDF is RFC 5869's limit on the output of HKDF-Expand: 255 hash lengths.
const maxHKDF = 255 * sha256.Size

var zeroSalt [sha256.Size]byte

// HKDF fills out with HKDF-SHA256 (RFC 5869) of secret under salt and info. A nil or empty salt
// means HashLen zero bytes, which is what libsignal's "no salt" is. len(out) must be at most
// 255×32 = 8160 bytes; a longer out is a programming error and panics, since every caller asks
// for a fixed small size.
func HKDF(out, secret, salt, info []byte) {
	if len(out) > maxHKDF {
		panic("primitives: HKDF output longer than 8160 bytes")
	}
	if len(salt) == 0 {
		salt = zeroSalt[:]
	}
	// Extract: PRK = HMAC(salt, secret).
	h := getHMAC(salt)
	h.write(secret)
	h.finish()
	h.prk = h.sum
	// Expand: T(i) = HMAC(PRK, T(i-1) ‖ info ‖ i).
	h.setKey(h.prk[:])
	if len(out) > sha256.Size {
		h.save()
	}
	for done, i := 0, 0; done < len(out); i++ {
		if i > 0 {
			h.restore()
			h.inner.Write(h.t[:])
		}
		h.write(info)
		h.scratch[0] = byte(i + 1)
		h.inner.Write(h.scratch[:1])
		h.finish()
		h.t = h.sum
		done += copy(out[done:], h.t[:])
	}
	h.put()
}
