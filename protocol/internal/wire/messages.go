package wire

import (
	"errors"
)

// Message versions. The version byte is (version<<4 | CurrentVersion).
const (
	CurrentVersion = 4
	// VersionByte is the first byte of every version-4 message.
	VersionByte = CurrentVersion<<4 | CurrentVersion
	// MACSize is the truncated HMAC-SHA256 length that ends a SignalMessage.
	MACSize = 8
	// ECKeySize is a serialized Curve25519 public key (0x05 ‖ u).
	ECKeySize = 33
	// KyberCiphertextSize is a serialized Kyber1024 ciphertext (0x08 ‖ 1568).
	KyberCiphertextSize = 1 + 1568

	// MaxCiphertext bounds the encrypted body we are willing to parse
	// (libsignal has no explicit limit; servers cap envelopes far below).
	MaxCiphertext = 1 << 24
)

// Version errors are distinct from ErrMalformed so callers can tell an old
// or future peer from garbage.
var (
	ErrLegacyVersion  = errors.New("wire: legacy message version")
	ErrUnknownVersion = errors.New("wire: unknown message version")
)

// SignalMessage is a Double Ratchet message (libsignal's SignalMessage).
type SignalMessage struct {
	RatchetKey      []byte // 33-byte serialized EC public key
	Counter         uint32
	PreviousCounter uint32
	Ciphertext      []byte
	PQRatchet       []byte // SPQR payload; nil when absent (we never send one)
	Addresses       []byte // libsignal ≥ 0.91 sender/recipient addresses; nil when absent
	MAC             [MACSize]byte
}

func checkVersion(b byte) error {
	switch v := b >> 4; {
	case v < 3:
		return ErrMalformed
	case v == 3:
		return ErrLegacyVersion
	case v > CurrentVersion:
		return ErrUnknownVersion
	}
	if b != VersionByte {
		return ErrMalformed
	}
	return nil
}

// ParseSignalMessage decodes a serialized SignalMessage. The returned
// slices alias b. Authenticated is b without the trailing MAC: the bytes
// the MAC covers (after the two identity keys).
func ParseSignalMessage(b []byte) (m SignalMessage, authenticated []byte, err error) {
	if len(b) < 1+MACSize {
		return m, nil, ErrMalformed
	}
	if err := checkVersion(b[0]); err != nil {
		return m, nil, err
	}
	body := b[1 : len(b)-MACSize]
	copy(m.MAC[:], b[len(b)-MACSize:])
	r := NewReader(body)
	var seen uint8
	for !r.Done() {
		f, err := r.Next()
		if err != nil {
			return m, nil, err
		}
		switch f.Num {
		case 1:
			m.RatchetKey, err = f.Data(ECKeySize, ECKeySize)
		case 2:
			m.Counter, err = f.Uint32()
		case 3:
			m.PreviousCounter, err = f.Uint32()
		case 4:
			m.Ciphertext, err = f.Data(1, MaxCiphertext)
		case 5:
			m.PQRatchet, err = f.Data(1, MaxCiphertext)
		case 6:
			m.Addresses, err = f.Data(1, 1024)
		default:
			err = ErrMalformed
		}
		if err != nil {
			return m, nil, ErrMalformed
		}
		seen |= 1 << f.Num
	}
	// libsignal always writes fields 1–4.
	if seen&0b11110 != 0b11110 {
		return m, nil, ErrMalformed
	}
	return m, b[:len(b)-MACSize], nil
}

// AppendSignalMessage appends the version byte and protobuf body of m
// (everything the MAC covers) to dst. The caller appends the MAC.
func AppendSignalMessage(dst []byte, m *SignalMessage) []byte {
	dst = append(dst, VersionByte)
	dst = AppendBytes(dst, 1, m.RatchetKey)
	dst = AppendUint(dst, 2, uint64(m.Counter))
	dst = AppendUint(dst, 3, uint64(m.PreviousCounter))
	dst = AppendBytes(dst, 4, m.Ciphertext)
	if len(m.PQRatchet) > 0 {
		dst = AppendBytes(dst, 5, m.PQRatchet)
	}
	if len(m.Addresses) > 0 {
		dst = AppendBytes(dst, 6, m.Addresses)
	}
	return dst
}

// SignalMessageSize is the full serialized size of m including the MAC,
// for a ciphertext of ctLen bytes.
func SignalMessageSize(ratchetKeyLen int, counter, prev uint32, ctLen int) int {
	return 1 + SizeBytes(1, ratchetKeyLen) + SizeUint(2, uint64(counter)) +
		SizeUint(3, uint64(prev)) + SizeBytes(4, ctLen) + MACSize
}

// PreKeySignalMessage starts a session (libsignal's PreKeySignalMessage,
// version 4: PQXDH, so the Kyber fields are required).
type PreKeySignalMessage struct {
	PreKeyID        uint32
	HasPreKeyID     bool
	BaseKey         []byte // 33 bytes
	IdentityKey     []byte // 33 bytes
	Message         []byte // a serialized SignalMessage
	RegistrationID  uint32
	SignedPreKeyID  uint32
	KyberPreKeyID   uint32
	KyberCiphertext []byte // 0x08 ‖ 1568 bytes
}

// ParsePreKeySignalMessage decodes a serialized PreKeySignalMessage. The
// returned slices alias b. The embedded SignalMessage is not parsed.
func ParsePreKeySignalMessage(b []byte) (m PreKeySignalMessage, err error) {
	if len(b) < 1 {
		return m, ErrMalformed
	}
	if err := checkVersion(b[0]); err != nil {
		return m, err
	}
	r := NewReader(b[1:])
	var seen uint16
	for !r.Done() {
		f, err := r.Next()
		if err != nil {
			return m, err
		}
		switch f.Num {
		case 1:
			m.PreKeyID, err = f.Uint32()
			m.HasPreKeyID = true
		case 2:
			m.BaseKey, err = f.Data(ECKeySize, ECKeySize)
		case 3:
			m.IdentityKey, err = f.Data(ECKeySize, ECKeySize)
		case 4:
			m.Message, err = f.Data(1+MACSize, MaxCiphertext+4096)
		case 5:
			m.RegistrationID, err = f.Uint32()
		case 6:
			m.SignedPreKeyID, err = f.Uint32()
		case 7:
			m.KyberPreKeyID, err = f.Uint32()
		case 8:
			m.KyberCiphertext, err = f.Data(KyberCiphertextSize, KyberCiphertextSize)
		default:
			err = ErrMalformed
		}
		if err != nil {
			return m, ErrMalformed
		}
		seen |= 1 << f.Num
	}
	// Fields 2–8 are required in version 4 (1, the one-time prekey, is optional).
	if seen&0b111111100 != 0b111111100 {
		return m, ErrMalformed
	}
	return m, nil
}

// AppendPreKeySignalMessage appends the serialized message to dst, fields
// in number order as prost writes them.
func AppendPreKeySignalMessage(dst []byte, m *PreKeySignalMessage) []byte {
	dst = append(dst, VersionByte)
	if m.HasPreKeyID {
		dst = AppendUint(dst, 1, uint64(m.PreKeyID))
	}
	dst = AppendBytes(dst, 2, m.BaseKey)
	dst = AppendBytes(dst, 3, m.IdentityKey)
	dst = AppendBytes(dst, 4, m.Message)
	dst = AppendUint(dst, 5, uint64(m.RegistrationID))
	dst = AppendUint(dst, 6, uint64(m.SignedPreKeyID))
	dst = AppendUint(dst, 7, uint64(m.KyberPreKeyID))
	dst = AppendBytes(dst, 8, m.KyberCiphertext)
	return dst
}
