package protocol

import (
	"errors"
	"fmt"

	"github.com/veil-e2ee/veil/protocol/internal/sealed"
)

// Message types that travel only inside sealed sender (libsignal's
// CiphertextMessageType values).
const (
	// SenderKeyMessageType is a group (sender-key) message.
	SenderKeyMessageType MessageType = 7
	// PlaintextContentType is unencrypted content (a decryption-error
	// report), authenticated only by the sealed layer around it.
	PlaintextContentType MessageType = 8
)

// ErrSelfSend: a sealed message claims to come from this very device.
var ErrSelfSend = errors.New("protocol: sealed sender message from ourselves")

// MultiRecipientMessage is a sealed sender v2 message as a sender submits
// it to the server (version 0x22 or 0x23): one shared ciphertext and, per
// recipient, a few bytes of key material. The server delivers
// [MultiRecipientMessage.MessageFor] to each of a recipient's devices; it
// learns who the recipients are, never the sender or the content.
type MultiRecipientMessage struct {
	// Recipients are in the order of their first appearance; a ServiceId
	// listed twice is one recipient with the devices of both entries, as
	// in libsignal.
	Recipients []MultiRecipient
	sent       *sealed.Sent
}

// ServiceIDKind says which kind of identifier a ServiceId is.
type ServiceIDKind uint8

const (
	// ACI is an account identifier (the account UUID).
	ACI ServiceIDKind = sealed.KindACI
	// PNI is a phone-number identifier (only in 0x23 messages).
	PNI ServiceIDKind = sealed.KindPNI
)

// MultiRecipient is one recipient of a v2 message.
type MultiRecipient struct {
	ServiceID [16]byte // the UUID bytes (an ACI unless Kind says otherwise)
	Kind      ServiceIDKind
	// Devices are the recipient's devices the message is for. An empty
	// list means the recipient was excluded by the sender (libsignal's
	// excluded recipients): nothing is to be delivered to it.
	Devices []MultiRecipientDevice
}

// MultiRecipientDevice is one device of a recipient, with the registration
// id the sender's session has for it (the server compares it with the
// device's current one to detect stale sessions).
type MultiRecipientDevice struct {
	DeviceID       uint32
	RegistrationID uint32
}

// ParseMultiRecipient parses a sent sealed sender v2 message, as the server
// does before fanning it out. Malformed input is ErrInvalidMessage and an
// unknown version byte ErrUnknownVersion. The message keeps a reference to
// body, which must not be modified afterwards.
func ParseMultiRecipient(body []byte) (*MultiRecipientMessage, error) {
	s, err := sealed.ParseSent(body)
	switch {
	case errors.Is(err, sealed.ErrVersion):
		return nil, fmt.Errorf("%w: sealed sender v2 version byte %#x", ErrUnknownVersion, body[0])
	case err != nil:
		return nil, fmt.Errorf("%w: sealed sender v2 message", ErrInvalidMessage)
	}
	m := &MultiRecipientMessage{Recipients: make([]MultiRecipient, len(s.Recipients)), sent: s}
	for i, r := range s.Recipients {
		out := MultiRecipient{ServiceID: r.UUID, Kind: ServiceIDKind(r.Kind)}
		if len(r.Devices) > 0 {
			out.Devices = make([]MultiRecipientDevice, len(r.Devices))
			for j, d := range r.Devices {
				out.Devices[j] = MultiRecipientDevice{DeviceID: uint32(d.DeviceID), RegistrationID: uint32(d.RegistrationID)}
			}
		}
		m.Recipients[i] = out
	}
	return m, nil
}

// MessageFor returns the bytes delivered to every device of recipient i
// (libsignal's per-recipient received message: 0x22 ‖ C_i ‖ AT_i ‖ E ‖
// ciphertext), a new slice. It returns nil for an excluded recipient (no
// devices) and for i out of range.
func (m *MultiRecipientMessage) MessageFor(i int) []byte {
	if i < 0 || i >= len(m.sent.Recipients) || len(m.sent.Recipients[i].Devices) == 0 {
		return nil
	}
	r := &m.sent.Recipients[i]
	return m.sent.AppendReceived(make([]byte, 0, 1+len(r.CAndAT)+len(m.sent.Shared)), r)
}

// ReceivedSize is the length of [MultiRecipientMessage.MessageFor]'s
// result for any recipient that is not excluded.
func (m *MultiRecipientMessage) ReceivedSize() int {
	return 1 + sealed.MessageKeySize + sealed.AuthTagSize + len(m.sent.Shared)
}

// parseUUID parses the canonical 36-character UUID form (either case), as
// libsignal accepts a ServiceId string for an ACI.
func parseUUID(s string) (u [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	j := 0
	for i := 0; i < 36; {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i++
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return u, false
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	return u, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// formatUUID is the lower-case canonical form.
func formatUUID(u [16]byte) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 0, 36)
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, digits[x>>4], digits[x&15])
	}
	return string(b)
}

// String returns the ServiceId string: the UUID for an ACI, "PNI:" and the
// UUID for a PNI (libsignal's service_id_string).
func (r MultiRecipient) String() string {
	if r.Kind == PNI {
		return "PNI:" + formatUUID(r.ServiceID)
	}
	return formatUUID(r.ServiceID)
}
