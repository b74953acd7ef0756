package client

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/legalhold"
	"github.com/veil-e2ee/veil/protocol"
)

// ComplianceDevice: the organisation's side of a disclosed legal hold.
// `veil admin legal-hold run` registers one for an approved hold and
// archives what it receives (see docs/COMPLIANCE.md).

type activateRequest struct {
	Admin          string `json:"admin"`
	SignedAt       int64  `json:"signed_at"`
	Signature      []byte `json:"signature"`
	IdentityKey    []byte `json:"identity_key"`
	CredentialHash []byte `json:"credential_hash"`
	RegistrationID uint32 `json:"registration_id"`
	prekeyUpload
}

type activateResponse struct {
	registerResponse               // without a credential: the device drew its own
	Username         string        `json:"username"`
	Certificate      *holdCertJSON `json:"certificate"`
}

// RegisterCompliance creates the compliance device of an approved legal
// hold in cfg.Dir: a device of the held account with its own identity
// key (the account's stays with its owner), activated with admin's
// signature. The server checks that enough administrators approved the
// hold; every device that talks to the account will show the hold. The
// device only receives: messages sent to or by the account from now on
// until the hold is lifted, when the server removes it
// (ErrDeviceRemoved from Receive).
func RegisterCompliance(ctx context.Context, cfg Config, hold string, admin *legalhold.AdminKey) (*Client, error) {
	cfg.defaults()
	holdID, err := hex.DecodeString(hold)
	if err != nil || len(holdID) != legalhold.IDSize {
		return nil, fmt.Errorf("%w: %q is not a hold id (32 hex digits)", ErrInvalidArgument, hold)
	}
	c, err := newDevice(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.registerCompliance(ctx, [16]byte(holdID), admin); err != nil {
		c.abandon()
		return nil, err
	}
	return c, nil
}

func (c *Client) registerCompliance(ctx context.Context, hold [16]byte, admin *legalhold.AdminKey) error {
	id, err := protocol.GenerateIdentityKeyPair(c.rand)
	if err != nil {
		return err
	}
	// The trust root first: the certificate the server returns must
	// verify against it.
	root, err := c.fetchTrustRoot(ctx)
	if err != nil {
		return err
	}
	reg, up, err := c.newDeviceKeys(ctx, id)
	if err != nil {
		return err
	}
	// This device draws its own credential and shows the server only its
	// hash, which the administrator's signature covers: a replayed
	// activation lets nobody else in.
	cred := make([]byte, 32)
	if _, err := io.ReadFull(c.rand, cred); err != nil {
		return err
	}
	ch := sha256.Sum256(cred)
	at := c.now().Truncate(time.Second)
	req := activateRequest{Admin: admin.Name, SignedAt: at.Unix(), IdentityKey: id.Public.Bytes(), CredentialHash: ch[:], RegistrationID: reg, prekeyUpload: up}
	req.Signature = admin.Sign(legalhold.ActivationMessage(hold, req.CredentialHash, req.IdentityKey, reg, at))
	var resp activateResponse
	if err := c.api.doWith(ctx, "POST", "/v1/holds/"+hex.EncodeToString(hold[:])+"/device", anonymous, req, &resp); err != nil {
		return err
	}
	resp.Credential = base64.StdEncoding.EncodeToString(cred)
	if resp.Certificate == nil {
		return fmt.Errorf("%w: the server's answer has no hold certificate", ErrProtocol)
	}
	// No profile key and no access key: those are the account owner's,
	// and this device never sends. Only the trust root, to check sender
	// certificates and its own hold.
	err = c.keepAccount(ctx, resp.registerResponse, resp.AccountID, resp.Username, func(tx *devicestore.Tx) error {
		if err := tx.SetBlobSetting(ctx, settingTrustRoot, root); err != nil {
			return err
		}
		h, err := c.verifyHold(ctx, tx, resp.AccountID, resp.Certificate)
		if err != nil {
			return fmt.Errorf("%w: the hold certificate: %v", ErrProtocol, err)
		}
		if h.DeviceID != resp.DeviceID || !h.IdentityKey.Equal(id.Public) {
			return fmt.Errorf("%w: the hold certificate names another device", ErrProtocol)
		}
		if err := tx.PutHold(ctx, h); err != nil {
			return err
		}
		return tx.SetSetting(ctx, settingCompliance, 1)
	})
	if err != nil {
		return err
	}
	c.compliance = true
	return nil
}

// Compliance reports whether this is the compliance device of a legal
// hold.
func (c *Client) Compliance() bool { return c.compliance }

// MessagesAfter returns up to limit stored messages of every
// conversation with local ids above after, in id order: what a
// compliance device archives. For a group message PeerAccount is the
// sender and Group the group.
func (c *Client) MessagesAfter(ctx context.Context, after int64, limit int) ([]Message, error) {
	ms, err := c.store.MessagesAfter(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	names, err := c.usernames(ctx)
	if err != nil {
		return nil, err
	}
	peers := map[int64]string{}
	out := make([]Message, 0, len(ms))
	for _, m := range ms {
		peer, ok := peers[m.ConversationID]
		if !ok {
			if peer, err = c.store.ConversationPeer(ctx, m.ConversationID); err != nil {
				return nil, err
			}
			peers[m.ConversationID] = peer
		}
		group := ""
		if strings.HasPrefix(peer, groupPrefix) {
			group, peer = strings.TrimPrefix(peer, groupPrefix), m.Sender
		}
		msg := c.toMessage(m, peer, names[peer])
		msg.Group = group
		out = append(out, msg)
	}
	return out, nil
}
