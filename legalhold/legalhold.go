// Package legalhold holds the formats a disclosed legal hold is made of,
// shared by the server that places it, the clients that must see it and
// the administrators who approve it (docs/COMPLIANCE.md, "Legal hold"):
//
//   - the hold certificate: the server's trust root (the key clients pin
//     for sealed sender) signs that a given device of a given account is
//     the compliance device of a given hold, with its own identity key.
//     Clients encrypt to a device whose keys the account's identity key
//     did not sign only when such a certificate vouches for it, and then
//     show the hold in every conversation with the account;
//   - the approval: administrators sign a hold request with their own
//     Ed25519 keys; the server activates a hold only with the signatures
//     of M distinct administrators it knows;
//   - the administrators' key files and the list of administrators.
//
// Everything here is pure: no I/O beyond the readers and writers given.
package legalhold

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/veil-e2ee/veil/protocol"
)

// IDSize is the length of a hold id and of an account id.
const IDSize = 16

var (
	// ErrBadCertificate: a hold certificate's signature does not verify,
	// or its fields are malformed.
	ErrBadCertificate = errors.New("legalhold: certificate does not verify")
	// ErrBadApproval: an approval's signature does not verify, or its
	// administrator is unknown.
	ErrBadApproval = errors.New("legalhold: approval does not verify")
)

const (
	certDomain       = "veil legal hold certificate v1\x00"
	accountDomain    = "veil legal hold account v1\x00"
	requestDomain    = "veil legal hold request v1\x00"
	activationDomain = "veil legal hold activation v1\x00"
	liftDomain       = "veil legal hold lift v1\x00"
)

// Certificate says that device DeviceID of Account is the compliance
// device of hold HoldID since Since, with identity key IdentityKey (its
// own; not the account's). The server's trust root signs it.
type Certificate struct {
	Account     [IDSize]byte
	DeviceID    uint32
	HoldID      [IDSize]byte
	Since       time.Time // second precision
	IdentityKey []byte    // serialized public key (33 bytes)
	Signature   []byte
}

// message is what the trust root signs: the domain, then every field in
// fixed-size form (the identity key last, its length fixed by the key
// format), so no two certificates share a message.
func (c *Certificate) message() ([]byte, error) {
	if len(c.IdentityKey) != protocol.PublicKeySize {
		return nil, fmt.Errorf("%w: identity key of %d bytes", ErrBadCertificate, len(c.IdentityKey))
	}
	b := make([]byte, 0, len(certDomain)+IDSize+4+IDSize+8+len(c.IdentityKey))
	b = append(b, certDomain...)
	b = append(b, c.Account[:]...)
	b = binary.BigEndian.AppendUint32(b, c.DeviceID)
	b = append(b, c.HoldID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Since.Unix()))
	return append(b, c.IdentityKey...), nil
}

// Sign signs the certificate with the server's trust root.
func (c *Certificate) Sign(root protocol.KeyPair, rand io.Reader) error {
	m, err := c.message()
	if err != nil {
		return err
	}
	c.Signature, err = root.Sign(rand, m)
	return err
}

// Verify checks the certificate against the pinned trust root.
func (c *Certificate) Verify(root protocol.PublicKey) error {
	m, err := c.message()
	if err != nil {
		return err
	}
	if c.DeviceID == 0 || !root.VerifySignature(m, c.Signature) {
		return ErrBadCertificate
	}
	return nil
}

// AccountHash is how the public list of holds names an account: a
// client that knows an account id can find it there, but the list does
// not give away the ids of the accounts under hold.
func AccountHash(account [IDSize]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(accountDomain))
	h.Write(account[:])
	return [32]byte(h.Sum(nil))
}

// Request is what administrators approve: this hold, on this account,
// for this reason, requested at this time. Every approval signs it.
type Request struct {
	HoldID      [IDSize]byte
	Account     [IDSize]byte
	Reason      string
	RequestedAt time.Time // second precision
}

// Message is the byte string an approval signs.
func (r *Request) Message() []byte {
	reason := sha256.Sum256([]byte(r.Reason))
	b := make([]byte, 0, len(requestDomain)+2*IDSize+len(reason)+8)
	b = append(b, requestDomain...)
	b = append(b, r.HoldID[:]...)
	b = append(b, r.Account[:]...)
	b = append(b, reason[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(r.RequestedAt.Unix()))
}

// ActivationMessage is what an administrator signs to register the
// compliance device of an approved hold: the hold, the hash of the
// credential the device chose (so a replayed activation gives nobody a
// way in), its registration id, the time (the server accepts it for a
// few minutes only), and its identity key.
func ActivationMessage(hold [IDSize]byte, credentialHash []byte, identityKey []byte, registrationID uint32, at time.Time) []byte {
	b := make([]byte, 0, len(activationDomain)+IDSize+1+len(credentialHash)+12+len(identityKey))
	b = append(b, activationDomain...)
	b = append(b, hold[:]...)
	b = append(b, byte(len(credentialHash)))
	b = append(b, credentialHash...)
	b = binary.BigEndian.AppendUint32(b, registrationID)
	b = binary.BigEndian.AppendUint64(b, uint64(at.Unix()))
	return append(b, identityKey...)
}

// LiftMessage is what an administrator signs to lift a hold.
func LiftMessage(hold [IDSize]byte, reason string, at time.Time) []byte {
	r := sha256.Sum256([]byte(reason))
	b := make([]byte, 0, len(liftDomain)+IDSize+len(r)+8)
	b = append(b, liftDomain...)
	b = append(b, hold[:]...)
	b = append(b, r[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(at.Unix()))
}
