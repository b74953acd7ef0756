package client

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/client/internal/content"
	"github.com/veil-e2ee/veil/protocol"
)

// Sealed sender: messages to contacts go without the server learning who
// sent them. Each account has a profile key, shared only inside end-to-end
// encrypted messages; the access key derived from it is what the server
// asks for before it queues a senderless envelope. The sender proves who
// it is to the recipient with a short-lived sender certificate from the
// server, checked against the trust root this device pinned when it
// registered. docs/CLIENT.md ("Sealed sender").

const (
	settingProfileKey = "profile_key"
	settingTrustRoot  = "trust_root"
	settingSenderCert = "sender_certificate"
	// settingAnyone+account is 1 when that account takes sealed messages
	// without an access key (as its last bundles said).
	settingAnyone = "sealed_from_anyone:"
	// certRefresh: a cached sender certificate is replaced when it has
	// less than this left.
	certRefresh = time.Hour
	// envelopeSealed is the envelope type of sealed-sender messages.
	envelopeSealed = 6
)

// accessKey derives the 16-byte unidentified-access key from a profile
// key as Signal does: AES-256-GCM of 16 zero bytes under the profile key
// with a zero nonce, first 16 bytes.
func accessKey(profileKey []byte) ([]byte, error) {
	blk, err := aes.NewCipher(profileKey)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	out := g.Seal(nil, make([]byte, g.NonceSize()), make([]byte, 16), nil)
	return out[:16], nil
}

type accessRequest struct {
	AccessKey    []byte `json:"access_key"`
	Unrestricted bool   `json:"unrestricted"`
}

// setUpSealed makes sure this account has a profile key whose access key
// the server knows, and that this device pinned the server's trust root.
// Register and Link call it; Open does when a profile predates it. The
// profile key comes from the linking device when there is one (pk).
func (c *Client) setUpSealed(ctx context.Context, pk []byte) error {
	have, _, err := c.store.BlobSetting(ctx, settingProfileKey)
	if err != nil {
		return err
	}
	root, _, err := c.store.BlobSetting(ctx, settingTrustRoot)
	if err != nil {
		return err
	}
	if root == nil {
		if root, err = c.fetchTrustRoot(ctx); err != nil {
			return err
		}
	}
	upload := false
	if have == nil {
		upload = true
		have = pk
		if have == nil {
			have = make([]byte, content.ProfileKeySize)
			if _, err := io.ReadFull(c.rand, have); err != nil {
				return err
			}
		}
	}
	// Keys are stored before the server hears of them: a crash in between
	// repeats the upload of the same key.
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error {
		if err := tx.SetBlobSetting(ctx, settingTrustRoot, root); err != nil {
			return err
		}
		return tx.SetBlobSetting(ctx, settingProfileKey, have)
	})
	if err != nil || !upload {
		return err
	}
	return c.publishAccess(ctx, have)
}

// fetchTrustRoot asks the server for its sealed-sender trust root and
// checks it against Config.TrustRoot when that is set.
func (c *Client) fetchTrustRoot(ctx context.Context) ([]byte, error) {
	var tr struct {
		TrustRoot []byte `json:"trust_root"`
	}
	if err := c.api.do(ctx, "GET", "/v1/certificate/trust-root", nil, &tr); err != nil {
		return nil, err
	}
	if _, err := protocol.ParsePublicKey(tr.TrustRoot); err != nil {
		return nil, fmt.Errorf("%w: the server's trust root is not a public key", ErrProtocol)
	}
	if c.cfg.TrustRoot != nil && subtle.ConstantTimeCompare(c.cfg.TrustRoot, tr.TrustRoot) != 1 {
		return nil, fmt.Errorf("%w: the server's sealed-sender trust root is not the one configured", ErrProtocol)
	}
	return tr.TrustRoot, nil
}

// publishAccess tells the server this account's access key and whether
// it takes sealed messages from anyone.
func (c *Client) publishAccess(ctx context.Context, pk []byte) error {
	ak, err := accessKey(pk)
	if err != nil {
		return err
	}
	return c.api.do(ctx, "PUT", "/v1/accounts/me/access", accessRequest{AccessKey: ak, Unrestricted: c.cfg.SealedFromAnyone}, nil)
}

// SetSealedFromAnyone chooses whether anyone (not only contacts who know
// this account's profile key) may send it sealed messages.
func (c *Client) SetSealedFromAnyone(ctx context.Context, anyone bool) error {
	pk, err := c.profileKey(ctx)
	if err != nil {
		return err
	}
	c.cfg.SealedFromAnyone = anyone
	return c.publishAccess(ctx, pk)
}

func (c *Client) profileKey(ctx context.Context) ([]byte, error) {
	pk, _, err := c.store.BlobSetting(ctx, settingProfileKey)
	if err == nil && pk == nil {
		if err = c.setUpSealed(ctx, nil); err == nil {
			return c.profileKey(ctx)
		}
	}
	return pk, err
}

// blobReader is the device store or a transaction.
type blobReader interface {
	BlobSetting(ctx context.Context, name string) ([]byte, bool, error)
}

func (c *Client) trustRoot(ctx context.Context, r blobReader) (protocol.PublicKey, error) {
	b, ok, err := r.BlobSetting(ctx, settingTrustRoot)
	if err != nil {
		return protocol.PublicKey{}, err
	}
	if !ok {
		return protocol.PublicKey{}, fmt.Errorf("%w: no sealed-sender trust root pinned yet", ErrProtocol)
	}
	return protocol.ParsePublicKey(b)
}

// senderCertificate returns a sender certificate valid for at least
// another certRefresh, asking the server for a new one when needed.
func (c *Client) senderCertificate(ctx context.Context) ([]byte, error) {
	cached, _, err := c.store.BlobSetting(ctx, settingSenderCert)
	if err != nil {
		return nil, err
	}
	exp, _, err := c.store.Setting(ctx, settingSenderCert)
	if err != nil {
		return nil, err
	}
	if cached != nil && time.Unix(exp, 0).Sub(c.now()) > certRefresh {
		return cached, nil
	}
	var resp struct {
		Certificate []byte `json:"certificate"`
		Expires     int64  `json:"expires"`
	}
	if err := c.api.do(ctx, "GET", "/v1/certificate/sender", nil, &resp); err != nil {
		return nil, err
	}
	cert, err := protocol.ParseSenderCertificate(resp.Certificate)
	if err != nil || cert.SenderUUID != c.self.AccountID || cert.DeviceID != c.self.DeviceID || !cert.IdentityKey.Equal(c.id.Public) {
		return nil, fmt.Errorf("%w: the server's sender certificate does not name this device", ErrProtocol)
	}
	root, err := c.trustRoot(ctx, c.store)
	if err == nil {
		err = cert.Validate(root, c.now(), c.cfg.RevokedCertKeys...)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: the server's sender certificate does not validate: %v", ErrProtocol, err)
	}
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error {
		if err := tx.SetBlobSetting(ctx, settingSenderCert, resp.Certificate); err != nil {
			return err
		}
		return tx.SetSetting(ctx, settingSenderCert, cert.Expiration.Unix())
	})
	return resp.Certificate, err
}

// sealedAccess returns the access key for sending sealed to account; an
// empty (non-nil) key when we lack its profile key but it takes sealed
// messages from anyone; nil when we can only send identified.
func (c *Client) sealedAccess(ctx context.Context, account string) ([]byte, error) {
	pk, err := c.store.ProfileKey(ctx, account)
	if errors.Is(err, devicestore.ErrNotFound) {
		anyone, _, err := c.store.Setting(ctx, settingAnyone+account)
		if err != nil || anyone != 1 {
			return nil, err
		}
		return []byte{}, nil
	}
	if err != nil {
		return nil, err
	}
	return accessKey(pk)
}

// sendSealed PUTs a sealed send with the recipient's access key (none
// for a recipient that takes sealed messages from anyone).
func (c *Client) sendSealed(ctx context.Context, account string, key []byte, req sendRequest) error {
	h := anonymous
	if len(key) > 0 {
		h = map[string]string{"Unidentified-Access-Key": base64.StdEncoding.EncodeToString(key)}
	}
	return c.api.doWith(ctx, "PUT", "/v1/sealed/"+account, h, req, nil)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// unseal opens a sealed envelope's outer layer and checks its sender
// certificate: signed through the pinned trust root, not expired, not
// from a revoked server key, and not this very device.
func (c *Client) unseal(ctx context.Context, tx *devicestore.Tx, cipher *protocol.Cipher, body []byte) (*protocol.UnidentifiedContent, protocol.Address, error) {
	u, err := cipher.Unseal(ctx, body)
	if err != nil {
		return nil, protocol.Address{}, err
	}
	root, err := c.trustRoot(ctx, tx)
	if err != nil {
		return nil, protocol.Address{}, err
	}
	if err := u.Sender.Validate(root, c.now(), c.cfg.RevokedCertKeys...); err != nil {
		return nil, protocol.Address{}, err
	}
	from := protocol.Address{Name: u.Sender.SenderUUID, DeviceID: u.Sender.DeviceID}
	if from.Name == c.self.AccountID && from.DeviceID == c.self.DeviceID {
		return nil, protocol.Address{}, fmt.Errorf("%w: a sealed message from this very device", protocol.ErrInvalidMessage)
	}
	return u, from, nil
}

// sealedReason names why a sealed envelope could not be opened, for logs.
func sealedReason(err error) string {
	switch {
	case errors.Is(err, protocol.ErrCertificateExpired):
		return "certificate_expired"
	case errors.Is(err, protocol.ErrRevokedCertificate):
		return "certificate_revoked"
	case errors.Is(err, protocol.ErrInvalidCertificate):
		return "certificate_invalid"
	}
	return "sealed_unreadable"
}
