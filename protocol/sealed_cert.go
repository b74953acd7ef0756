package protocol

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/veil-e2ee/veil/protocol/internal/sealed"
)

// Certificate errors. ErrCertificateExpired and ErrRevokedCertificate also
// match ErrInvalidCertificate under errors.Is.
var (
	// ErrInvalidCertificate: a sender or server certificate does not
	// decode, or a signature on it does not verify.
	ErrInvalidCertificate = errors.New("protocol: invalid sealed sender certificate")
	// ErrCertificateExpired: the sender certificate expired before the
	// time it was validated at.
	ErrCertificateExpired = fmt.Errorf("%w: sender certificate expired", ErrInvalidCertificate)
	// ErrRevokedCertificate: the server certificate's key id is revoked.
	ErrRevokedCertificate = fmt.Errorf("%w: server certificate revoked", ErrInvalidCertificate)
)

// revokedServerKeyIDs are the server key ids libsignal refuses whatever
// the signatures say (0xDEADC357 is its test id for revocation). Validate
// refuses these and any ids its caller adds.
var revokedServerKeyIDs = []uint32{0xDEADC357}

// ServerCertificate binds a server's signing key to a key id, signed by a
// trust root that clients have built in.
type ServerCertificate struct {
	KeyID uint32
	Key   PublicKey
	c     *sealed.ServerCert
}

// NewServerCertificate signs a server certificate for serverKey under
// keyID with the trust root's private key (XEdDSA, as libsignal's
// ServerCertificate::new) and returns its serialized form.
func NewServerCertificate(trustRoot KeyPair, keyID uint32, serverKey PublicKey, rand io.Reader) ([]byte, error) {
	if serverKey.IsZero() {
		return nil, fmt.Errorf("%w: no server key", ErrInvalidKey)
	}
	body := sealed.AppendServerCertBody(nil, keyID, serverKey.b[:])
	sig, err := trustRoot.Sign(rand, body)
	if err != nil {
		return nil, err
	}
	return sealed.AppendSigned(make([]byte, 0, len(body)+SignatureSize+6), body, sig), nil
}

// ParseServerCertificate decodes a serialized server certificate. It does
// not check the signature (see [SenderCertificate.Validate]).
func ParseServerCertificate(b []byte) (*ServerCertificate, error) {
	c, err := sealed.ParseServerCert(slices.Clone(b))
	if err != nil {
		return nil, fmt.Errorf("%w: server certificate does not decode", ErrInvalidCertificate)
	}
	return &ServerCertificate{KeyID: c.KeyID, Key: PublicKey{b: c.Key}, c: c}, nil
}

// Serialize returns the certificate as it was parsed or made (a copy).
func (c *ServerCertificate) Serialize() []byte { return slices.Clone(c.c.Raw) }

// Validate checks that the trust root signed the certificate and that its
// key id is not revoked (libsignal's list, plus revokedKeyIDs).
func (c *ServerCertificate) Validate(trustRoot PublicKey, revokedKeyIDs ...uint32) error {
	if slices.Contains(revokedServerKeyIDs, c.KeyID) || slices.Contains(revokedKeyIDs, c.KeyID) {
		return fmt.Errorf("%w: key id %#x", ErrRevokedCertificate, c.KeyID)
	}
	if !verifyCached(trustRoot, c.c.Certificate, c.c.Signature) {
		return fmt.Errorf("%w: server certificate not signed by the trust root", ErrInvalidCertificate)
	}
	return nil
}

// SenderCertificate is what a sealed message carries to name its sender:
// the sender's account, device and identity key, valid until Expiration,
// signed by a server key that a trust root certified.
type SenderCertificate struct {
	SenderUUID  string
	SenderE164  string // empty when absent
	DeviceID    uint32
	IdentityKey PublicKey
	Expiration  time.Time // millisecond precision
	// Signer is the server certificate embedded in the sender certificate
	// or, for a certificate that refers to a well-known one by id, that
	// certificate.
	Signer *ServerCertificate
	c      *sealed.SenderCert
}

// IssueSenderCertificate is the server's side: it signs a sender
// certificate with serverKey, embedding serverCert (which must certify
// serverKey's public half), as libsignal's SenderCertificate::new.
func IssueSenderCertificate(serverKey KeyPair, serverCert []byte, senderUUID string, deviceID uint32,
	identityKey PublicKey, expiration time.Time, rand io.Reader) ([]byte, error) {
	sc, err := ParseServerCertificate(serverCert)
	if err != nil {
		return nil, err
	}
	if !sc.Key.Equal(serverKey.Public) {
		return nil, fmt.Errorf("%w: the server certificate is for another key", ErrInvalidKey)
	}
	if senderUUID == "" || deviceID == 0 || deviceID > 127 || identityKey.IsZero() {
		return nil, fmt.Errorf("%w: sender certificate needs a sender, a device id in 1–127 and an identity key", ErrInvalidCertificate)
	}
	ms := expiration.UnixMilli()
	if ms < 0 {
		return nil, fmt.Errorf("%w: expiration before 1970", ErrInvalidCertificate)
	}
	body := sealed.AppendSenderCertBody(nil, &sealed.SenderCertBody{
		UUID: senderUUID, DeviceID: deviceID, Expires: uint64(ms),
		IdentityKey: identityKey.b[:], Signer: sc.c.Raw,
	})
	sig, err := serverKey.Sign(rand, body)
	if err != nil {
		return nil, err
	}
	return sealed.AppendSigned(make([]byte, 0, len(body)+SignatureSize+6), body, sig), nil
}

// ParseSenderCertificate decodes a serialized sender certificate, as
// libsignal does (the sender's UUID as a string or as 16 bytes, the signer
// embedded or one of libsignal's well-known server certificates by id). It
// does not validate it.
func ParseSenderCertificate(b []byte) (*SenderCertificate, error) {
	return parseSenderCert(slices.Clone(b))
}

// parseSenderCert parses b in place (the result aliases it).
func parseSenderCert(b []byte) (*SenderCertificate, error) {
	c, err := sealed.ParseSenderCert(b)
	if err != nil {
		return nil, fmt.Errorf("%w: sender certificate does not decode", ErrInvalidCertificate)
	}
	signer := c.Signer
	if signer == nil {
		if signer = sealed.KnownServerCert(c.SignerID); signer == nil {
			return nil, fmt.Errorf("%w: unknown server certificate id %#x", ErrInvalidCertificate, c.SignerID)
		}
	}
	exp := int64(math.MaxInt64)
	if c.Expires < math.MaxInt64 {
		exp = int64(c.Expires)
	}
	return &SenderCertificate{
		SenderUUID: c.UUID, SenderE164: c.E164, DeviceID: c.DeviceID,
		IdentityKey: PublicKey{b: c.IdentityKey}, Expiration: time.UnixMilli(exp),
		Signer: &ServerCertificate{KeyID: signer.KeyID, Key: PublicKey{b: signer.Key}, c: signer},
		c:      c,
	}, nil
}

// Serialize returns the certificate as it was parsed (a copy).
func (c *SenderCertificate) Serialize() []byte { return slices.Clone(c.c.Raw) }

// Validate checks the certificate as libsignal does before trusting a
// sealed message: the server certificate is signed by trustRoot and its
// key id is not revoked (libsignal's list, e.g. 0xDEADC357, plus
// revokedKeyIDs), the sender certificate is signed by the server key, and
// it has not expired at now (a certificate is still valid at exactly its
// expiration).
func (c *SenderCertificate) Validate(trustRoot PublicKey, now time.Time, revokedKeyIDs ...uint32) error {
	if err := c.Signer.Validate(trustRoot, revokedKeyIDs...); err != nil {
		return err
	}
	if !verifyCached(c.Signer.Key, c.c.Certificate, c.c.Signature) {
		return fmt.Errorf("%w: sender certificate not signed by the server key", ErrInvalidCertificate)
	}
	if now.UnixMilli() > c.Expiration.UnixMilli() {
		return fmt.Errorf("%w at %s", ErrCertificateExpired, c.Expiration.UTC().Format(time.RFC3339))
	}
	return nil
}

// verifyCached is key.VerifySignature, remembering successes: every
// sealed message from a sender repeats the same two certificate
// signatures.
func verifyCached(key PublicKey, msg, sig []byte) bool {
	return sealed.VerifyCached(&key.b, msg, sig, func() bool { return key.VerifySignature(msg, sig) })
}
