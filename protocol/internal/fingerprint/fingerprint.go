// Package fingerprint computes Signal safety numbers: the 60-digit number two people read to
// each other and the QR payload one scans from the other's screen, byte-compatible with
// libsignal's Fingerprint.
//
// # Derivation
//
// Each side's fingerprint is an iterated SHA-512 over its stable identifier and its serialized
// identity key (33 bytes, 0x05 ‖ u):
//
//	H₀ = SHA-512(0x00 0x00 ‖ key ‖ id ‖ key);  Hᵢ = SHA-512(Hᵢ₋₁ ‖ key);  F = H_{iterations−1}
//
// Signal uses 5200 iterations ([DefaultIterations]) so that grinding for a key with a chosen
// safety number is expensive.
//
// # Displayable form
//
// The first 30 bytes of F are read as six 5-byte big-endian numbers, each reduced mod 100000 and
// written as five digits: 30 digits per side. Both sides show the same 60 digits because the two
// halves are ordered as strings, the smaller first.
//
// # Scannable form
//
// The QR code carries the protobuf CombinedFingerprints{version=1, local_fingerprint=2,
// remote_fingerprint=3}, each LogicalFingerprint holding content=1 with the first 32 bytes of F.
// libsignal uses version 2 ([ScannableVersion]) for ACI-based safety numbers. [CompareScannable]
// accepts exactly the encoding [New] produces: one canonical byte string per value, so a scanned
// code can carry nothing but the two fingerprints and the version.
package fingerprint

import (
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

const (
	// DefaultIterations is the iteration count every Signal client uses.
	DefaultIterations = 5200
	// ScannableVersion is the scannable-fingerprint version libsignal's clients use today.
	ScannableVersion = 2
	// MaxIterations is libsignal's upper bound on iterations.
	MaxIterations = 1_000_000

	keySize       = 33
	keyType       = 0x05
	contentSize   = 32
	displayDigits = 30
)

var (
	// ErrMalformed is returned for a scannable fingerprint that is not exactly the encoding
	// this package (and libsignal) produces.
	ErrMalformed = errors.New("fingerprint: malformed scannable fingerprint")
	// ErrVersionMismatch is returned, inside a *[VersionMismatchError], when the scanned
	// fingerprint has another version than ours.
	ErrVersionMismatch = errors.New("fingerprint: version mismatch")
	// ErrInvalidKey is returned for an identity key that is not 33 bytes starting with 0x05.
	ErrInvalidKey = errors.New("fingerprint: invalid identity key")
	// ErrIterations is returned for an iteration count outside 2…[MaxIterations].
	ErrIterations = errors.New("fingerprint: invalid iteration count")
)

// VersionMismatchError says which versions disagreed; errors.Is(err, ErrVersionMismatch) holds.
// A mismatch means one side runs older software, not an attack, so callers should say so.
type VersionMismatchError struct {
	Theirs, Ours uint32
}

func (e *VersionMismatchError) Error() string {
	return fmt.Sprintf("fingerprint: version mismatch: scanned version %d, ours %d", e.Theirs, e.Ours)
}

// Unwrap returns [ErrVersionMismatch].
func (e *VersionMismatchError) Unwrap() error { return ErrVersionMismatch }

// Fingerprint is the safety number between two identities, as seen from the local side.
type Fingerprint struct {
	// Displayable is the 60-digit safety number, the same string on both sides.
	Displayable string
	// Scannable is the QR payload: CombinedFingerprints with our fingerprint first.
	Scannable []byte
}

// New computes the fingerprint between local and remote. The ids are the stable identifiers
// exactly as libsignal is given them (an ACI's 16 UUID bytes, or an E.164 string's bytes); the
// keys are serialized identity public keys, 0x05 ‖ 32-byte u-coordinate. iterations must be in
// 2…[MaxIterations]; use [DefaultIterations].
func New(version uint32, iterations int, localID, localKey, remoteID, remoteKey []byte) (Fingerprint, error) {
	if iterations <= 1 || iterations > MaxIterations {
		return Fingerprint{}, fmt.Errorf("%w: %d", ErrIterations, iterations)
	}
	if !validKey(localKey) || !validKey(remoteKey) {
		return Fingerprint{}, ErrInvalidKey
	}
	// The two sides are independent 5200-round hash chains: run them on two cores.
	var remote [sha512.Size]byte
	done := make(chan struct{})
	go func() {
		remote = iterate(iterations, remoteID, remoteKey)
		close(done)
	}()
	local := iterate(iterations, localID, localKey)
	<-done

	l, r := displayHalf(&local), displayHalf(&remote)
	var display string
	if l < r {
		display = l + r
	} else {
		display = r + l
	}
	return Fingerprint{
		Displayable: display,
		Scannable:   encodeScannable(nil, version, local[:contentSize], remote[:contentSize]),
	}, nil
}

func validKey(k []byte) bool { return len(k) == keySize && k[0] == keyType }

// iterate computes F for one side. Every round hashes exactly 64+33 bytes, so one buffer and
// sha512.Sum512 do it without allocating.
func iterate(iterations int, id, key []byte) [sha512.Size]byte {
	h := sha512.New()
	h.Write([]byte{0, 0})
	h.Write(key)
	h.Write(id)
	h.Write(key)
	var buf [sha512.Size + keySize]byte
	h.Sum(buf[:0])
	copy(buf[sha512.Size:], key)
	for i := 1; i < iterations; i++ {
		sum := sha512.Sum512(buf[:])
		copy(buf[:sha512.Size], sum[:])
	}
	var out [sha512.Size]byte
	copy(out[:], buf[:sha512.Size])
	return out
}

// displayHalf renders one side's 30 digits.
func displayHalf(f *[sha512.Size]byte) string {
	out := make([]byte, 0, displayDigits)
	for chunk := 0; chunk < 6; chunk++ {
		var v uint64
		for _, b := range f[chunk*5 : chunk*5+5] {
			v = v<<8 | uint64(b)
		}
		v %= 100000
		s := strconv.AppendUint(nil, v, 10)
		for i := len(s); i < 5; i++ {
			out = append(out, '0')
		}
		out = append(out, s...)
	}
	return string(out)
}

// Protobuf field numbers of CombinedFingerprints and LogicalFingerprint.
const (
	fieldVersion = 1
	fieldLocal   = 2
	fieldRemote  = 3
	fieldContent = 1
)

func appendLogical(b, content []byte) []byte {
	b = protowire.AppendVarint(b, uint64(protowire.SizeTag(fieldContent)+protowire.SizeBytes(len(content))))
	b = protowire.AppendTag(b, fieldContent, protowire.BytesType)
	return protowire.AppendBytes(b, content)
}

// encodeScannable writes CombinedFingerprints the way prost does for libsignal: fields in
// order, version always present.
func encodeScannable(b []byte, version uint32, local, remote []byte) []byte {
	b = protowire.AppendTag(b, fieldVersion, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(version))
	b = protowire.AppendTag(b, fieldLocal, protowire.BytesType)
	b = appendLogical(b, local)
	b = protowire.AppendTag(b, fieldRemote, protowire.BytesType)
	b = appendLogical(b, remote)
	return b
}

type scannable struct {
	version       uint32
	local, remote [contentSize]byte
}

// consumeField reads one tag and checks it is the expected field and wire type.
func consumeField(b []byte, num protowire.Number, typ protowire.Type) ([]byte, bool) {
	n, t, l := protowire.ConsumeTag(b)
	if l < 0 || n != num || t != typ {
		return nil, false
	}
	return b[l:], true
}

// decodeScannable parses a scanned CombinedFingerprints. It reads the fields in the only order
// and shape [encodeScannable] writes, then re-encodes and demands the same bytes, which rejects
// non-minimal varints, unknown, duplicate or reordered fields, wrong lengths and trailing data.
func decodeScannable(in []byte) (*scannable, error) {
	var s scannable
	b, ok := consumeField(in, fieldVersion, protowire.VarintType)
	if !ok {
		return nil, ErrMalformed
	}
	v, n := protowire.ConsumeVarint(b)
	if n < 0 || v > 0xFFFFFFFF {
		return nil, ErrMalformed
	}
	s.version = uint32(v)
	b = b[n:]
	for _, f := range []struct {
		num protowire.Number
		dst *[contentSize]byte
	}{{fieldLocal, &s.local}, {fieldRemote, &s.remote}} {
		if b, ok = consumeField(b, f.num, protowire.BytesType); !ok {
			return nil, ErrMalformed
		}
		msg, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, ErrMalformed
		}
		b = b[n:]
		if msg, ok = consumeField(msg, fieldContent, protowire.BytesType); !ok {
			return nil, ErrMalformed
		}
		content, n := protowire.ConsumeBytes(msg)
		if n < 0 || n != len(msg) || len(content) != contentSize {
			return nil, ErrMalformed
		}
		copy(f.dst[:], content)
	}
	if len(b) != 0 {
		return nil, ErrMalformed
	}
	if re := encodeScannable(make([]byte, 0, len(in)), s.version, s.local[:], s.remote[:]); subtle.ConstantTimeCompare(re, in) != 1 {
		return nil, ErrMalformed
	}
	return &s, nil
}

// CompareScannable reports whether the fingerprint scanned from the peer's screen (theirs)
// matches ours: their local fingerprint must be our remote one and the other way round. The
// contents are compared in constant time. A malformed input gives [ErrMalformed]; a different
// version gives a *[VersionMismatchError] (errors.Is ErrVersionMismatch), which callers
// should present as "one of you needs to update", not as a mismatch.
func CompareScannable(ours, theirs []byte) (bool, error) {
	o, err := decodeScannable(ours)
	if err != nil {
		return false, fmt.Errorf("%w (ours)", err)
	}
	t, err := decodeScannable(theirs)
	if err != nil {
		return false, err
	}
	if t.version != o.version {
		return false, &VersionMismatchError{Theirs: t.version, Ours: o.version}
	}
	same := subtle.ConstantTimeCompare(t.local[:], o.remote[:]) & subtle.ConstantTimeCompare(t.remote[:], o.local[:])
	return same == 1, nil
}
