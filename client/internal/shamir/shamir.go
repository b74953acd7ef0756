// Package shamir splits a secret into n shares of which any k recover it
// and any k−1 reveal nothing about it (Shamir's secret sharing), for the
// client's backups.
//
// # Scheme
//
// Each byte of the secret is the constant term of its own random
// polynomial of degree k−1 over GF(2^8) (the AES field, reduction
// polynomial 0x11B); share i holds every polynomial's value at x = i,
// for i = 1…n. Any k shares fix the polynomials (Lagrange interpolation
// at 0); with k−1 shares every secret byte is equally likely, whatever
// the attacker's computing power. 2 ≤ k ≤ n ≤ 255.
//
// Field arithmetic uses masks instead of branches or tables on secret
// data, so its timing does not depend on the secret or the shares.
//
// # Shares
//
// A [Share] carries its index, the threshold k and a random [SetID]
// drawn once per [Split], so [Combine] refuses shares of different splits
// instead of returning garbage. [Share.Encode] gives a text form to copy
// or print:
//
//	veil-share-1-<index>-<k>-<set>-<data>-<check>
//
// where index and k are decimal, set (4 bytes), data and check are
// lowercase Crockford base32 (0-9, a-z without i, l, o, u), and check is
// the first 4 bytes of SHA-256 over everything before "-<check>". A typo
// is caught by the checksum (all but 2^-32 of them). [ParseShare] ignores
// case and white space, so the text may be broken across lines.
//
// A share is secret: k of them give the secret away. [Share.String]
// does not print the data.
package shamir

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
)

var (
	// ErrParams reports an invalid k or n, or an empty secret.
	ErrParams = errors.New("shamir: invalid parameters")
	// ErrTooFew reports fewer shares than the threshold.
	ErrTooFew = errors.New("shamir: not enough shares")
	// ErrMismatch reports shares that do not belong together: different
	// sets, thresholds or lengths.
	ErrMismatch = errors.New("shamir: shares of different splits")
	// ErrDuplicate reports two shares with the same index.
	ErrDuplicate = errors.New("shamir: duplicate share index")
	// ErrInvalidShare reports a share with index 0, a threshold below 2
	// or no data.
	ErrInvalidShare = errors.New("shamir: invalid share")
	// ErrInconsistent reports more than k shares that do not lie on one
	// set of polynomials: at least one of them is damaged.
	ErrInconsistent = errors.New("shamir: inconsistent shares")
	// ErrFormat reports text that is not an encoded share.
	ErrFormat = errors.New("shamir: malformed share")
	// ErrChecksum reports an encoded share whose checksum does not match:
	// most likely a typo.
	ErrChecksum = errors.New("shamir: share checksum mismatch")
)

// MaxShares is the largest n: share indices are the non-zero elements of
// GF(2^8).
const MaxShares = 255

// SetIDSize is the size of a [SetID].
const SetIDSize = 4

// SetID identifies the shares of one [Split]. It is random, not secret.
type SetID [SetIDSize]byte

// Share is one share of a secret. Data must be kept secret.
type Share struct {
	Index     byte   // x coordinate, 1…255
	Threshold int    // k: shares needed to recover the secret
	Set       SetID  // same in every share of one split
	Data      []byte // one byte per secret byte
}

// String describes the share without its data, so that logging a share
// does not leak it.
func (s Share) String() string {
	return fmt.Sprintf("shamir.Share{Index: %d, Threshold: %d, Set: %x, Data: [%d bytes]}",
		s.Index, s.Threshold, s.Set[:], len(s.Data))
}

// GoString is [Share.String], for %#v.
func (s Share) GoString() string { return s.String() }

// Split splits secret into n shares, any k of which recover it, with
// indices 1…n. It reads the set id and then the polynomial coefficients
// from random; a nil random means crypto/rand.
func Split(secret []byte, k, n int, random io.Reader) ([]Share, error) {
	switch {
	case k < 2:
		return nil, fmt.Errorf("%w: k = %d, want at least 2", ErrParams, k)
	case n < k:
		return nil, fmt.Errorf("%w: n = %d below k = %d", ErrParams, n, k)
	case n > MaxShares:
		return nil, fmt.Errorf("%w: n = %d, at most %d", ErrParams, n, MaxShares)
	case len(secret) == 0:
		return nil, fmt.Errorf("%w: empty secret", ErrParams)
	}
	if random == nil {
		random = rand.Reader
	}
	var set SetID
	if _, err := io.ReadFull(random, set[:]); err != nil {
		return nil, fmt.Errorf("shamir: reading randomness: %w", err)
	}
	// coeffs holds, for each secret byte, its polynomial c[0..k-1] with
	// c[0] the secret byte.
	coeffs := make([]byte, len(secret)*k)
	defer clear(coeffs)
	random1 := make([]byte, len(secret)*(k-1))
	defer clear(random1)
	if _, err := io.ReadFull(random, random1); err != nil {
		return nil, fmt.Errorf("shamir: reading randomness: %w", err)
	}
	for i, b := range secret {
		c := coeffs[i*k : (i+1)*k]
		c[0] = b
		copy(c[1:], random1[i*(k-1):(i+1)*(k-1)])
	}
	shares := make([]Share, n)
	for j := range shares {
		x := byte(j + 1)
		data := make([]byte, len(secret))
		for i := range data {
			data[i] = eval(coeffs[i*k:(i+1)*k], x)
		}
		shares[j] = Share{Index: x, Threshold: k, Set: set, Data: data}
	}
	return shares, nil
}

// Combine recovers the secret from at least k shares of one split. With
// more than k shares, it checks that the extra ones agree with the first
// k and returns [ErrInconsistent] if not. It never returns a secret from
// shares that do not belong together: mismatched sets, thresholds or
// lengths, duplicate or zero indices and too few shares are errors.
func Combine(shares []Share) ([]byte, error) {
	if len(shares) == 0 {
		return nil, fmt.Errorf("%w: none given", ErrTooFew)
	}
	first := shares[0]
	k := first.Threshold
	if k < 2 || k > MaxShares {
		return nil, fmt.Errorf("%w: threshold %d", ErrInvalidShare, k)
	}
	if len(first.Data) == 0 {
		return nil, fmt.Errorf("%w: no data", ErrInvalidShare)
	}
	var seen [256]bool
	for _, s := range shares {
		switch {
		case s.Index == 0:
			return nil, fmt.Errorf("%w: index 0", ErrInvalidShare)
		case s.Set != first.Set:
			return nil, fmt.Errorf("%w: set %x and %x", ErrMismatch, first.Set[:], s.Set[:])
		case s.Threshold != k:
			return nil, fmt.Errorf("%w: thresholds %d and %d", ErrMismatch, k, s.Threshold)
		case len(s.Data) != len(first.Data):
			return nil, fmt.Errorf("%w: lengths %d and %d", ErrMismatch, len(first.Data), len(s.Data))
		case seen[s.Index]:
			return nil, fmt.Errorf("%w: %d", ErrDuplicate, s.Index)
		}
		seen[s.Index] = true
	}
	if len(shares) < k {
		return nil, fmt.Errorf("%w: %d of %d", ErrTooFew, len(shares), k)
	}

	base := shares[:k]
	xs := make([]byte, k)
	for j, s := range base {
		xs[j] = s.Index
	}
	secret := interpolate(base, lagrange(xs, 0))

	// Every extra share must lie on the polynomials fixed by the first k.
	ok := 1
	for _, s := range shares[k:] {
		got := interpolate(base, lagrange(xs, s.Index))
		ok &= subtle.ConstantTimeCompare(got, s.Data)
		clear(got)
	}
	if ok != 1 {
		clear(secret)
		return nil, ErrInconsistent
	}
	return secret, nil
}

// interpolate returns Σ w[j]·shares[j].Data, byte-wise.
func interpolate(shares []Share, w []byte) []byte {
	out := make([]byte, len(shares[0].Data))
	for j, s := range shares {
		for i, y := range s.Data {
			out[i] ^= mul(w[j], y)
		}
	}
	return out
}
