package protocol

import (
	"errors"
	"fmt"

	"github.com/veil-e2ee/veil/protocol/internal/fingerprint"
)

// ErrFingerprintVersion: a scanned safety number has another version
// than ours (one side runs older software; not an attack).
var ErrFingerprintVersion = fingerprint.ErrVersionMismatch

// SafetyNumber is what two people compare to verify each other's identity
// keys: a 60-digit number to read aloud and a payload for a QR code,
// equal to what libsignal computes for the same keys and identifiers.
type SafetyNumber struct {
	// Displayable is 60 digits; present it in 12 groups of 5.
	Displayable string
	// Scannable is the QR-code payload (libsignal's CombinedFingerprints).
	Scannable []byte
}

// NewSafetyNumber computes the safety number between us (localID, localKey)
// and a peer. IDs are the stable identifiers both sides agree on (Veil
// uses the 16 UUID bytes of each account), as with libsignal's
// Fingerprint (version 2, 5200 iterations).
func NewSafetyNumber(localID []byte, localKey PublicKey, remoteID []byte, remoteKey PublicKey) (SafetyNumber, error) {
	f, err := fingerprint.New(fingerprint.ScannableVersion, fingerprint.DefaultIterations,
		localID, localKey.b[:], remoteID, remoteKey.b[:])
	if err != nil {
		return SafetyNumber{}, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return SafetyNumber{Displayable: f.Displayable, Scannable: f.Scannable}, nil
}

// MatchesScanned reports whether a QR payload scanned from the peer's
// screen matches this safety number. A malformed payload is
// ErrInvalidMessage; a version difference is ErrFingerprintVersion.
func (s SafetyNumber) MatchesScanned(scanned []byte) (bool, error) {
	ok, err := fingerprint.CompareScannable(s.Scannable, scanned)
	if err != nil && !errors.Is(err, fingerprint.ErrVersionMismatch) {
		return false, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	return ok, err
}
