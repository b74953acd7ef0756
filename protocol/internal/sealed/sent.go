package sealed

import (
	"google.golang.org/protobuf/encoding/protowire"
)

// Versions of sealed-sender messages (the first byte).
const (
	V1Version          = 0x11 // major 1, minor 1
	V2UUIDVersion      = 0x22 // v2, recipients as 16-byte ACI UUIDs; also every received v2 message
	V2ServiceIDVersion = 0x23 // v2, recipients as 17-byte ServiceIds (kind ‖ UUID)
)

// Sizes in sealed sender v2.
const (
	MessageKeySize = 32 // M, and each recipient's C_i
	AuthTagSize    = 16 // AT_i
	X25519Size     = 32 // E's public key, without libsignal's type byte
	serviceIDSize  = 17
	uuidSize       = 16
	// RegistrationIDMask keeps the 14 bits a registration id may use.
	RegistrationIDMask = 0x3FFF
	hasMoreDevices     = 0x8000
	maxDeviceID        = 127
)

// ServiceID kinds, as libsignal encodes them in the fixed-width form.
const (
	KindACI = 0
	KindPNI = 1
)

// SentDevice is one device of a recipient of a sent v2 message.
type SentDevice struct {
	DeviceID       uint8
	RegistrationID uint16 // masked to 14 bits
}

// SentRecipient is one recipient (one ServiceId) of a sent v2 message.
// Excluded recipients have no devices and no key material.
type SentRecipient struct {
	Kind    byte
	UUID    [16]byte
	Devices []SentDevice
	CAndAT  []byte // C_i ‖ AT_i (48 bytes, aliasing the input), or nil when excluded
}

// Sent is a parsed v2 message as a sender submits it to the server.
type Sent struct {
	Version    byte
	Recipients []SentRecipient // in order of first appearance, one per ServiceId
	Shared     []byte          // E.pub ‖ AES-GCM-SIV ciphertext, aliasing the input
}

// ParseSent parses a sent sealed-sender v2 message as libsignal's server
// side does: a version byte (0x22 or 0x23), a varint recipient count, then
// per recipient its ServiceId, its devices (device id byte; registration id
// big-endian u16 whose top bit says another device follows) and C_i ‖ AT_i —
// or a zero device byte for an excluded recipient — and finally the shared
// E.pub ‖ ciphertext. A ServiceId listed twice has its devices merged
// (libsignal does the same; the first key material is kept), unless either
// entry is excluded. Varints must be minimal.
func ParseSent(b []byte) (*Sent, error) {
	if len(b) == 0 {
		return nil, ErrMalformed
	}
	s := &Sent{Version: b[0]}
	if s.Version != V2UUIDVersion && s.Version != V2ServiceIDVersion {
		return nil, ErrVersion
	}
	rest := b[1:]
	count, n := protowire.ConsumeVarint(rest)
	if n < 0 || n != protowire.SizeVarint(count) || count > 0xFFFFFFFF {
		return nil, ErrMalformed
	}
	rest = rest[n:]
	// Every recipient takes at least 17 bytes, which bounds the count
	// before anything is allocated.
	if count > uint64(len(rest)/(uuidSize+1)) {
		return nil, ErrMalformed
	}
	s.Recipients = make([]SentRecipient, 0, int(count))
	index := make(map[[17]byte]int, int(count))
	for range count {
		var r SentRecipient
		switch s.Version {
		case V2UUIDVersion:
			if len(rest) < uuidSize {
				return nil, ErrMalformed
			}
			r.Kind = KindACI
			copy(r.UUID[:], rest)
			rest = rest[uuidSize:]
		default:
			if len(rest) < serviceIDSize {
				return nil, ErrMalformed
			}
			if rest[0] != KindACI && rest[0] != KindPNI {
				return nil, ErrMalformed
			}
			r.Kind = rest[0]
			copy(r.UUID[:], rest[1:serviceIDSize])
			rest = rest[serviceIDSize:]
		}
		for {
			if len(rest) < 1 {
				return nil, ErrMalformed
			}
			dev := rest[0]
			rest = rest[1:]
			if dev == 0 {
				if len(r.Devices) > 0 {
					return nil, ErrMalformed
				}
				break
			}
			if dev > maxDeviceID || len(rest) < 2 {
				return nil, ErrMalformed
			}
			reg := uint16(rest[0])<<8 | uint16(rest[1])
			rest = rest[2:]
			r.Devices = append(r.Devices, SentDevice{DeviceID: dev, RegistrationID: reg & RegistrationIDMask})
			if reg&hasMoreDevices == 0 {
				break
			}
		}
		if len(r.Devices) > 0 {
			if len(rest) < MessageKeySize+AuthTagSize {
				return nil, ErrMalformed
			}
			r.CAndAT = rest[: MessageKeySize+AuthTagSize : MessageKeySize+AuthTagSize]
			rest = rest[MessageKeySize+AuthTagSize:]
		}
		var key [17]byte
		key[0] = r.Kind
		copy(key[1:], r.UUID[:])
		if i, ok := index[key]; ok {
			prev := &s.Recipients[i]
			if len(prev.Devices) == 0 || len(r.Devices) == 0 {
				return nil, ErrMalformed
			}
			prev.Devices = append(prev.Devices, r.Devices...)
			continue
		}
		index[key] = len(s.Recipients)
		s.Recipients = append(s.Recipients, r)
	}
	if len(rest) < X25519Size {
		return nil, ErrMalformed
	}
	s.Shared = rest
	return s, nil
}

// AppendReceived appends what each device of r receives: 0x22 ‖ C_i ‖ AT_i
// ‖ E.pub ‖ ciphertext (the received form kept the first v2 version byte).
func (s *Sent) AppendReceived(dst []byte, r *SentRecipient) []byte {
	dst = append(dst, V2UUIDVersion)
	dst = append(dst, r.CAndAT...)
	return append(dst, s.Shared...)
}
