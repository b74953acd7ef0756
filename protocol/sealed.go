package protocol

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

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

// parseUUID parses the 36-character UUID text (hex digits of either
// case), as libsignal parses an ACI's ServiceId string.
func parseUUID(s string) (u [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	_, err := hex.Decode(u[:], []byte(s[0:8]+s[9:13]+s[14:18]+s[19:23]+s[24:36]))
	return u, err == nil
}

// String returns the ServiceId string: the UUID for an ACI, "PNI:" and the
// UUID for a PNI (libsignal's service_id_string).
func (r MultiRecipient) String() string {
	if r.Kind == PNI {
		return "PNI:" + sealed.FormatUUID(r.ServiceID)
	}
	return sealed.FormatUUID(r.ServiceID)
}

// ErrInvalidAddress: an address cannot be used as asked (sealed sender v2
// needs recipients named by their ACI, a UUID string).
var ErrInvalidAddress = errors.New("protocol: invalid address")

// ContentHint tells a recipient what to do when a sealed message does not
// decrypt (libsignal's ContentHint; other values pass through unchanged).
type ContentHint uint32

const (
	// ContentHintDefault: the sender will not resend; show an error now.
	ContentHintDefault ContentHint = 0
	// ContentHintResendable: the sender will resend; delay any error.
	ContentHintResendable ContentHint = 1
	// ContentHintImplicit: show no error (typing indicators, receipts).
	ContentHintImplicit ContentHint = 2
)

// UnidentifiedContent is what the sealed layer protects (libsignal's
// UnidentifiedSenderMessageContent): an inner message, the certificate
// naming its sender, and hints for the recipient.
type UnidentifiedContent struct {
	// Type is the inner message's type: PreKeyMessageType or
	// SignalMessageType (a 1:1 message), SenderKeyMessageType or
	// PlaintextContentType.
	Type        MessageType
	Contents    []byte
	Sender      *SenderCertificate
	ContentHint ContentHint
	GroupID     []byte // nil or empty when absent
}

func (u *UnidentifiedContent) internal() (*sealed.USMC, error) {
	switch u.Type {
	case SignalMessageType, PreKeyMessageType, SenderKeyMessageType, PlaintextContentType:
	default:
		return nil, fmt.Errorf("%w: message type %d cannot be sealed", ErrInvalidMessage, u.Type)
	}
	if u.Sender == nil || u.Sender.c == nil {
		return nil, fmt.Errorf("%w: sealed content needs a sender certificate", ErrInvalidCertificate)
	}
	return &sealed.USMC{
		Type: uint8(u.Type), SenderCert: u.Sender.c.Raw, Content: u.Contents,
		ContentHint: uint32(u.ContentHint), GroupID: u.GroupID,
	}, nil
}

// Serialize encodes the content as libsignal does.
func (u *UnidentifiedContent) Serialize() ([]byte, error) {
	in, err := u.internal()
	if err != nil {
		return nil, err
	}
	return sealed.AppendUSMC(make([]byte, 0, sealed.USMCSize(in)), in), nil
}

// ParseUnidentifiedContent decodes serialized content and its sender
// certificate (not validated).
func ParseUnidentifiedContent(b []byte) (*UnidentifiedContent, error) {
	return parseUSMC(slices.Clone(b))
}

// parseUSMC parses b in place: the result aliases it.
func parseUSMC(b []byte) (*UnidentifiedContent, error) {
	in, err := sealed.ParseUSMC(b)
	if err != nil {
		return nil, fmt.Errorf("%w: sealed content does not decode", ErrInvalidMessage)
	}
	cert, err := parseSenderCert(in.SenderCert)
	if err != nil {
		return nil, err
	}
	return &UnidentifiedContent{
		Type: MessageType(in.Type), Contents: in.Content, Sender: cert,
		ContentHint: ContentHint(in.ContentHint), GroupID: in.GroupID,
	}, nil
}

func (c *Cipher) sealedIdentity(ctx context.Context) (*sealed.Identity, error) {
	id, err := c.stores.Identity.IdentityKeyPair(ctx)
	if err != nil {
		return nil, fmt.Errorf("protocol: loading identity: %w", err)
	}
	return &sealed.Identity{Private: id.Private.b, Public: id.Public.b}, nil
}

// remoteIdentity is dest's identity key from its current session, else
// from the identity store.
func (c *Cipher) remoteIdentity(ctx context.Context, dest Address) (PublicKey, error) {
	rec, err := c.loadSession(ctx, dest)
	if err != nil {
		return PublicKey{}, err
	}
	if rec != nil {
		if k, ok := rec.RemoteIdentity(); ok {
			return k, nil
		}
	}
	k, ok, err := c.stores.Identity.Identity(ctx, dest)
	if err != nil {
		return PublicKey{}, fmt.Errorf("protocol: loading identity of %s: %w", dest, err)
	}
	if !ok {
		return PublicKey{}, fmt.Errorf("%w with %s", ErrNoSession, dest)
	}
	return k, nil
}

// SealedEncrypt encrypts plaintext over the session with dest and seals
// the result with sealed sender v1 under senderCert (libsignal's
// sealed_sender_encrypt). The session advances even if sealing then fails.
func (c *Cipher) SealedEncrypt(ctx context.Context, dest Address, senderCert []byte, plaintext []byte) ([]byte, error) {
	cert, err := ParseSenderCertificate(senderCert)
	if err != nil {
		return nil, err
	}
	ct, err := c.Encrypt(ctx, dest, plaintext)
	if err != nil {
		return nil, err
	}
	return c.SealV1(ctx, dest, &UnidentifiedContent{Type: ct.Type, Contents: ct.Body, Sender: cert})
}

// SealV1 seals already-built content (e.g. a sender-key message) to dest
// with sealed sender v1 (0x11), to dest's identity key from its session
// (or, without one, from the identity store).
func (c *Cipher) SealV1(ctx context.Context, dest Address, u *UnidentifiedContent) ([]byte, error) {
	in, err := u.internal()
	if err != nil {
		return nil, err
	}
	their, err := c.remoteIdentity(ctx, dest)
	if err != nil {
		return nil, err
	}
	ours, err := c.sealedIdentity(ctx)
	if err != nil {
		return nil, err
	}
	var eph [32]byte
	if _, err := io.ReadFull(c.rand, eph[:]); err != nil {
		return nil, fmt.Errorf("protocol: reading randomness: %w", err)
	}
	usmc := sealed.AppendUSMC(make([]byte, 0, sealed.USMCSize(in)), in)
	out, err := sealed.SealV1(ours, &their.b, &eph, usmc)
	clear(eph[:])
	clear(ours.Private[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %s's identity key", ErrInvalidKey, dest)
	}
	return out, nil
}

// Unseal removes the sealed layer of a received message, v1 or v2, and
// returns the content. Like libsignal's sealed_sender_decrypt_to_usmc, it
// checks that the identity key in the sender certificate is the one that
// sealed the message, but it does NOT validate the certificate (see
// [SenderCertificate.Validate], or use [Cipher.SealedDecrypt]). A message
// that does not open is ErrDecryption; one that does not decode,
// ErrInvalidMessage or ErrInvalidCertificate; an unknown version,
// ErrUnknownVersion.
func (c *Cipher) Unseal(ctx context.Context, body []byte) (*UnidentifiedContent, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty sealed message", ErrInvalidMessage)
	}
	ours, err := c.sealedIdentity(ctx)
	if err != nil {
		return nil, err
	}
	defer clear(ours.Private[:])
	// libsignal accepts any minor version (and major 0 as v1); only
	// 0x11 and 0x22 are ever sent, so a message has one version byte.
	switch body[0] {
	case sealed.V1Version:
		sender, usmc, err := sealed.OpenV1(ours, body)
		if err != nil {
			return nil, sealedErr(err)
		}
		u, err := parseUSMC(usmc)
		if err != nil {
			return nil, err
		}
		if !u.Sender.IdentityKey.Equal(PublicKey{b: sender}) {
			return nil, fmt.Errorf("%w: the certificate's identity key did not seal the message", ErrDecryption)
		}
		return u, nil
	case sealed.V2UUIDVersion:
		o, err := sealed.OpenV2(ours, body)
		if err != nil {
			return nil, sealedErr(err)
		}
		u, err := parseUSMC(o.USMC)
		if err != nil {
			return nil, err
		}
		if err := o.CheckSender(ours, &u.Sender.IdentityKey.b); err != nil {
			return nil, fmt.Errorf("%w: the certificate's identity key did not seal the message", ErrDecryption)
		}
		return u, nil
	default:
		return nil, fmt.Errorf("%w: sealed sender version %#x", ErrUnknownVersion, body[0])
	}
}

func sealedErr(err error) error {
	if errors.Is(err, sealed.ErrMalformed) {
		return fmt.Errorf("%w: sealed message does not decode", ErrInvalidMessage)
	}
	return fmt.Errorf("%w: sealed layer", ErrDecryption)
}

// SealedResult is an opened 1:1 sealed message.
type SealedResult struct {
	Plaintext  []byte
	Sender     Address // the certificate's sender UUID and device
	SenderE164 string  // empty when the certificate has none
	Content    *UnidentifiedContent
}

// SealedDecrypt opens a sealed 1:1 message as libsignal's
// sealed_sender_decrypt does: it removes the sealed layer ([Cipher.Unseal],
// which checks the certificate's identity key sealed it), validates the
// sender certificate against trustRoot at now ([SenderCertificate.Validate],
// with revokedKeyIDs), refuses a message from local itself (ErrSelfSend),
// and decrypts the inner PreKey or Signal message with the session of the
// certificate's sender. Other inner types (sender-key messages) are
// ErrInvalidMessage: Unseal and decrypt those with the group cipher.
func (c *Cipher) SealedDecrypt(ctx context.Context, body []byte, trustRoot PublicKey, now time.Time, local Address, revokedKeyIDs ...uint32) (SealedResult, error) {
	u, err := c.Unseal(ctx, body)
	if err != nil {
		return SealedResult{}, err
	}
	if err := u.Sender.Validate(trustRoot, now, revokedKeyIDs...); err != nil {
		return SealedResult{}, err
	}
	sender := Address{Name: u.Sender.SenderUUID, DeviceID: u.Sender.DeviceID}
	if sender == local {
		return SealedResult{}, ErrSelfSend
	}
	if u.Type != SignalMessageType && u.Type != PreKeyMessageType {
		return SealedResult{}, fmt.Errorf("%w: sealed message of type %d is not a 1:1 message", ErrInvalidMessage, u.Type)
	}
	pt, err := c.Decrypt(ctx, sender, CiphertextMessage{Type: u.Type, Body: u.Contents})
	if err != nil {
		return SealedResult{}, err
	}
	return SealedResult{Plaintext: pt, Sender: sender, SenderE164: u.Sender.SenderE164, Content: u}, nil
}

// SealV2 seals content once for many recipient devices with sealed sender
// v2 (libsignal's sealed_sender_multi_recipient_encrypt): the result (a
// 0x23 message) goes to the server, which gives each recipient its share
// ([ParseMultiRecipient]). Every recipient needs a current session, whose
// identity key and registration id are used; a recipient's Name must be
// its ACI (a UUID string). Devices of one recipient should be adjacent in
// recipients (they then share one entry); the devices of a recipient must
// all have the same identity key. As in libsignal, identities are not
// checked against the identity store's trust here (the sender key inside
// was distributed over trusted 1:1 sessions). The costly part, two X25519
// per recipient (one when the identity agreement is cached), is spread
// over the available CPUs.
func (c *Cipher) SealV2(ctx context.Context, recipients []Address, u *UnidentifiedContent) ([]byte, error) {
	to := make([]SealRecipient, 0, len(recipients))
	for _, a := range recipients {
		rec, err := c.loadSession(ctx, a)
		if err != nil {
			return nil, err
		}
		if rec == nil || rec.r.Current == nil {
			return nil, fmt.Errorf("%w with %s", ErrNoSession, a)
		}
		st := rec.r.Current
		to = append(to, SealRecipient{Address: a, IdentityKey: PublicKey{b: st.RemoteIdentity}, RegistrationID: st.RemoteRegistrationID})
	}
	return c.SealV2To(ctx, to, u)
}

// SealRecipient is one recipient device of [Cipher.SealV2To]: its address,
// its account's identity key and its registration id, as its session has
// them.
type SealRecipient struct {
	Address        Address
	IdentityKey    PublicKey
	RegistrationID uint32
}

// SealV2To is [Cipher.SealV2] for a caller that already knows each
// recipient device's identity key and registration id (a store can keep
// them beside the sessions and spare loading every session record). They
// must be those of the current sessions, or the recipients cannot open
// their shares.
func (c *Cipher) SealV2To(ctx context.Context, recipients []SealRecipient, u *UnidentifiedContent) ([]byte, error) {
	in, err := u.internal()
	if err != nil {
		return nil, err
	}
	if len(recipients) == 0 {
		return nil, fmt.Errorf("%w: no recipients", ErrInvalidAddress)
	}
	var groups []sealed.V2Recipient
	for i, r := range recipients {
		a := r.Address
		if a.DeviceID == 0 || a.DeviceID > 127 {
			return nil, fmt.Errorf("%w: device id of %s not in 1–127", ErrInvalidAddress, a)
		}
		if r.RegistrationID > sealed.RegistrationIDMask {
			return nil, fmt.Errorf("%w: registration id %d of %s does not fit 14 bits", ErrInvalidAddress, r.RegistrationID, a)
		}
		if r.IdentityKey.IsZero() {
			return nil, fmt.Errorf("%w: no identity key for %s", ErrInvalidKey, a)
		}
		dev := sealed.V2Device{DeviceID: uint8(a.DeviceID), RegistrationID: uint16(r.RegistrationID)}
		if i > 0 && recipients[i-1].Address.Name == a.Name {
			g := &groups[len(groups)-1]
			if subtle.ConstantTimeCompare(g.Identity[:], r.IdentityKey.b[:]) != 1 {
				return nil, fmt.Errorf("%w: devices of %s have different identity keys", ErrInvalidAddress, a.Name)
			}
			g.Devices = append(g.Devices, dev)
			continue
		}
		id, ok := parseUUID(a.Name)
		if !ok {
			return nil, fmt.Errorf("%w: sealed sender v2 needs the recipient's ACI, not %q", ErrInvalidAddress, a.Name)
		}
		groups = append(groups, sealed.V2Recipient{Kind: sealed.KindACI, UUID: id, Identity: r.IdentityKey.b, Devices: []sealed.V2Device{dev}})
	}
	ours, err := c.sealedIdentity(ctx)
	if err != nil {
		return nil, err
	}
	defer clear(ours.Private[:])
	var m [32]byte
	if _, err := io.ReadFull(c.rand, m[:]); err != nil {
		return nil, fmt.Errorf("protocol: reading randomness: %w", err)
	}
	usmc := sealed.AppendUSMC(make([]byte, 0, sealed.USMCSize(in)), in)
	s := sealed.NewV2Sealer(ours, &m, usmc)
	clear(m[:])
	defer s.Clear()

	size := 1 + protowire.SizeVarint(uint64(len(groups))) + sealed.X25519Size + len(s.Ciphertext)
	for i := range groups {
		size += sealed.V2RecipientSize(len(groups[i].Devices))
	}
	out := make([]byte, 0, size)
	out = append(out, sealed.V2ServiceIDVersion)
	out = protowire.AppendVarint(out, uint64(len(groups)))

	// Fan the recipients out over the CPUs in contiguous chunks; the
	// first chunk is done here and written straight into out.
	workers := min(runtime.GOMAXPROCS(0), (len(groups)+15)/16)
	if workers <= 1 {
		for i := range groups {
			if out, err = s.AppendRecipient(out, &groups[i]); err != nil {
				return nil, fmt.Errorf("%w: identity key of recipient %s", ErrInvalidKey, sealed.FormatUUID(groups[i].UUID))
			}
		}
	} else {
		chunk := (len(groups) + workers - 1) / workers
		parts := make([][]byte, workers)
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w := 1; w < workers; w++ {
			lo, hi := w*chunk, min((w+1)*chunk, len(groups))
			wg.Go(func() {
				var b []byte
				for i := lo; i < hi; i++ {
					if b, errs[w] = s.AppendRecipient(b, &groups[i]); errs[w] != nil {
						return
					}
				}
				parts[w] = b
			})
		}
		for i := 0; i < chunk && err == nil; i++ {
			out, err = s.AppendRecipient(out, &groups[i])
		}
		wg.Wait()
		errs[0] = err
		for w := range workers {
			if errs[w] != nil {
				return nil, fmt.Errorf("%w: identity key of a recipient", ErrInvalidKey)
			}
			out = append(out, parts[w]...)
		}
	}
	out = append(out, s.EPublic()...)
	return append(out, s.Ciphertext...), nil
}
