package client

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/client/internal/provision"
	"github.com/veil-e2ee/veil/protocol"
)

// Linking a new device to an account (docs/CLIENT.md, "Linking"):
//
//	new device:      c, err := client.Link(ctx, cfg, func(code string) { show(code) })
//	existing device: err := c.ApproveLink(ctx, code)
//
// The code carries a relay id and a key of the new device; the existing
// device seals the account's identity key and a one-time link token to
// it; the server relays the sealed message without being able to read
// it, and only a device holding the identity key can make prekeys that
// senders accept.

// ErrDeviceLimit: the account has the most devices the server allows.
var ErrDeviceLimit = errors.New("client: the account already has the maximum number of devices; remove one first")

// linkPoll is how often a new device asks whether its code was approved
// (a variable for tests).
var linkPoll = time.Second

// Link makes cfg.Dir a new device of an existing account. It shows a link
// code through show (display it as text or a QR code for the user to give
// to a device of the account, which calls ApproveLink), waits until that
// device approves it or ctx ends, then registers this device with its own
// keys. cfg.Server must be set.
func Link(ctx context.Context, cfg Config, show func(code string)) (*Client, error) {
	cfg.defaults()
	code, priv, err := provision.NewCode(cfg.Rand)
	if err != nil {
		return nil, err
	}
	c, err := newDevice(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a := c.api
	fail := func(err error) (*Client, error) {
		c.abandon()
		return nil, err
	}
	show(code.String())
	var sealed struct {
		Message []byte `json:"message"`
	}
	for {
		err := a.do(ctx, "GET", "/v1/provisioning/"+code.RelayID(), nil, &sealed)
		if err == nil {
			break
		}
		if !isCode(err, "provisioning_not_found") && !errors.Is(err, ErrUnreachable) && !isCode(err, "rate_limited") {
			return fail(err)
		}
		select {
		case <-ctx.Done():
			return fail(fmt.Errorf("the link code was not approved in time: %w", ctx.Err()))
		case <-time.After(linkPoll):
		}
	}
	msg, err := provision.Open(priv, code, sealed.Message)
	if err != nil {
		return fail(fmt.Errorf("%w: the approval does not open with this device's key: %v", ErrProtocol, err))
	}
	if err := c.linkWith(ctx, msg); err != nil {
		return fail(err)
	}
	c.nameSelf(ctx)
	if len(msg.HistoryID) > 0 {
		// The device is linked; history is a bonus: if it cannot be had,
		// the device works without it.
		if _, err := c.receiveHistory(ctx, msg.HistoryID, msg.HistoryKey); err != nil {
			c.log.Warn("history transfer failed", "reason", errorCode(err))
			return c, fmt.Errorf("%w: linked, but the history did not arrive: %v", ErrHistoryMissing, err)
		}
	}
	return c, nil
}

// ErrHistoryMissing: Link succeeded (the returned Client works) but the
// history archive could not be fetched or read.
var ErrHistoryMissing = errors.New("client: history not transferred")

func (c *Client) linkWith(ctx context.Context, msg provision.Message) error {
	priv, err := protocol.ParsePrivateKey(msg.IdentityPrivate)
	if err != nil {
		return fmt.Errorf("%w: identity key in the approval", ErrProtocol)
	}
	reg, up, err := c.newDeviceKeys(ctx, protocol.NewKeyPair(priv))
	if err != nil {
		return err
	}
	body := struct {
		LinkToken      []byte `json:"link_token"`
		RegistrationID uint32 `json:"registration_id"`
		prekeyUpload
	}{msg.LinkToken, reg, up}
	var resp registerResponse
	if err := c.api.do(ctx, "POST", "/v1/linked-devices", body, &resp); err != nil {
		if isCode(err, "device_limit") {
			return ErrDeviceLimit
		}
		return err
	}
	if err := c.keepAccount(ctx, resp, msg.AccountID, msg.Username, nil); err != nil {
		return err
	}
	return c.sealedReady(ctx, msg.ProfileKey)
}

// newDeviceKeys makes this device's store hold the account's identity
// key, a new registration id and fresh prekeys (a device joining an
// existing account: linked or restored), and returns what to upload.
func (c *Client) newDeviceKeys(ctx context.Context, id protocol.IdentityKeyPair) (uint32, prekeyUpload, error) {
	c.id = id
	reg, err := protocol.GenerateRegistrationID(c.rand)
	if err != nil {
		return 0, prekeyUpload{}, err
	}
	var up prekeyUpload
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error {
		if err := tx.SetLocalIdentity(ctx, c.id, reg); err != nil {
			return err
		}
		up, err = c.newKeys(ctx, tx, keyPlan{signed: true, lastResort: true, oneTime: true, oneTimeKEM: true})
		return err
	})
	return reg, up, err
}

// keepAccount checks the server's answer that made this a device of
// account, stores the account (and, in the same transaction, whatever
// also does), and uses its credential from now on.
func (c *Client) keepAccount(ctx context.Context, resp registerResponse, account, username string, also func(tx *devicestore.Tx) error) error {
	cred, err := base64.StdEncoding.DecodeString(resp.Credential)
	if err != nil || len(cred) != 32 || resp.AccountID == "" || resp.AccountID != account || resp.DeviceID == 0 {
		return fmt.Errorf("%w: the server's answer does not name this account and a new device", ErrProtocol)
	}
	acct := devicestore.Account{AccountID: resp.AccountID, DeviceID: resp.DeviceID, Username: username,
		ServerURL: c.api.base.String(), Credential: cred, CreatedAt: c.now()}
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error {
		if err := tx.SetAccount(ctx, acct); err != nil {
			return err
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.setAccount(acct)
	return nil
}

// ApproveLink lets the device showing code join this account: it gets a
// one-time link token from the server, uploads this device's history as
// an encrypted archive, and seals the token, the account's identity key
// and the archive's id and key to the code's key. Give it only codes you made yourself
// on your own new device: whoever holds an approved code holds your
// account's identity.
func (c *Client) ApproveLink(ctx context.Context, code string) error {
	defer c.setAlone(0) // a device joins (or may have): sync transcripts go to it
	pc, err := provision.ParseCode(code)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}
	var tok struct {
		Token []byte `json:"token"`
	}
	if err := c.api.do(ctx, "POST", "/v1/link-tokens", nil, &tok); err != nil {
		return err
	}
	hid, hkey, err := c.sendHistory(ctx)
	if err != nil {
		return fmt.Errorf("sending the history: %w", err)
	}
	pk, err := c.profileKey(ctx)
	if err != nil {
		return err
	}
	sealed, err := provision.Seal(c.rand, pc, provision.Message{AccountID: c.self.AccountID, Username: c.self.Username,
		Server: c.self.Server, IdentityPrivate: c.id.Private.Bytes(), LinkToken: tok.Token, HistoryID: hid, HistoryKey: hkey,
		ProfileKey: pk})
	if err != nil {
		return err
	}
	err = c.api.do(ctx, "PUT", "/v1/provisioning/"+pc.RelayID(), map[string]any{"message": sealed}, nil)
	if isCode(err, "provisioning_exists") {
		return fmt.Errorf("%w: this code was already approved; make a new one on the new device", ErrInvalidArgument)
	}
	return err
}
