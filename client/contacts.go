package client

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/protocol"
)

// Contact is a person this device has talked to or looked up.
type Contact struct {
	Username  string
	AccountID string
	// Trust is "trusted" (first key seen, or a change accepted),
	// "verified" (safety numbers compared), "changed" (a new key not yet
	// accepted: sending is stopped) or "unknown" (no key seen yet).
	Trust string
}

// Verified reports whether the user compared safety numbers with the
// contact's current key.
func (c Contact) Verified() bool { return c.Trust == devicestore.Verified.String() }

// resolve finds a contact by username, asking the server for an unknown
// one and remembering it.
func (c *Client) resolve(ctx context.Context, username string) (devicestore.Contact, error) {
	if !ValidUsername(username) {
		// Also keeps "" from matching a contact whose username is unknown.
		return devicestore.Contact{}, fmt.Errorf("%w: %q is not a valid username", ErrNoSuchUser, username)
	}
	if ct, err := c.store.ContactByUsername(ctx, username); err == nil {
		return ct, nil
	} else if !errors.Is(err, devicestore.ErrNotFound) {
		return devicestore.Contact{}, err
	}
	var lr lookupResponse
	if err := c.api.do(ctx, "GET", "/v1/usernames/"+username, nil, &lr); err != nil {
		if isCode(err, "account_not_found", "not_found") {
			return devicestore.Contact{}, fmt.Errorf("%w: %s", ErrNoSuchUser, username)
		}
		return devicestore.Contact{}, err
	}
	if lr.AccountID == c.self.AccountID {
		return devicestore.Contact{}, fmt.Errorf("%w: that is you (your other devices get copies of what you send)", ErrInvalidArgument)
	}
	ct := devicestore.Contact{AccountID: lr.AccountID, Username: username, DisplayName: username}
	err := c.store.Update(ctx, func(tx *devicestore.Tx) error { return tx.PutContact(ctx, ct) })
	return ct, err
}

// learnContact records the username a sender claims once the server
// confirms it belongs to their account; it runs inside the receive
// transaction, only for senders not yet known.
func (c *Client) learnContact(ctx context.Context, tx *devicestore.Tx, account, claimed string) error {
	if _, err := tx.Contact(ctx, account); err == nil || !errors.Is(err, devicestore.ErrNotFound) {
		return err
	}
	username := ""
	if ValidUsername(claimed) {
		var lr lookupResponse
		err := c.api.do(ctx, "GET", "/v1/usernames/"+claimed, nil, &lr)
		switch {
		case err == nil && lr.AccountID == account:
			username = claimed
		case err != nil && !isCode(err, "account_not_found", "not_found"):
			return err // try again later: the envelope is not acked
		}
	}
	return tx.PutContact(ctx, devicestore.Contact{AccountID: account, Username: username, DisplayName: username})
}

// Contacts lists the contacts with their trust state, by username.
func (c *Client) Contacts(ctx context.Context) ([]Contact, error) {
	cs, err := c.store.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Contact, 0, len(cs))
	for _, ct := range cs {
		x := Contact{Username: ct.Username, AccountID: ct.AccountID, Trust: "unknown"}
		rec, err := c.store.IdentityRecord(ctx, ct.AccountID)
		switch {
		case err == nil:
			x.Trust = rec.Trust.String()
		case !errors.Is(err, devicestore.ErrNotFound):
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

// Contact returns one contact by username (ErrNoSuchUser if this device
// does not know them).
func (c *Client) Contact(ctx context.Context, username string) (Contact, error) {
	if !ValidUsername(username) {
		return Contact{}, fmt.Errorf("%w: %q is not a valid username", ErrNoSuchUser, username)
	}
	cs, err := c.Contacts(ctx)
	if err != nil {
		return Contact{}, err
	}
	for _, ct := range cs {
		if ct.Username == username {
			return ct, nil
		}
	}
	return Contact{}, fmt.Errorf("%w: %s is not a contact", ErrNoSuchUser, username)
}

// checkIdentity stops sends to an account whose key changed and has not
// been accepted.
func (c *Client) checkIdentity(ctx context.Context, account string) error {
	rec, err := c.store.IdentityRecord(ctx, account)
	if errors.Is(err, devicestore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if rec.Trust == devicestore.Changed {
		return c.changedError(ctx, account, rec.Key)
	}
	return nil
}

// identityChanged stores a contact's new identity key as Changed (this
// clears a verified mark) and returns the error that tells the user.
func (c *Client) identityChanged(ctx context.Context, account string, key protocol.PublicKey) error {
	err := c.store.Update(ctx, func(tx *devicestore.Tx) error {
		_, err := tx.SaveIdentity(ctx, protocol.Address{Name: account, DeviceID: 1}, key)
		return err
	})
	if err != nil {
		return err
	}
	c.log.Warn("contact identity key changed; sending to them is held until the user accepts it")
	return c.changedError(ctx, account, key)
}

func (c *Client) changedError(ctx context.Context, account string, key protocol.PublicKey) error {
	e := &IdentityChangedError{AccountID: account}
	if ct, err := c.store.Contact(ctx, account); err == nil {
		e.Username = ct.Username
	}
	if sn, err := c.safetyNumber(account, key); err == nil {
		e.SafetyNumber = sn.String()
	}
	return e
}

// SafetyNumber is what two people compare to know no one is in the
// middle: 60 digits (shown in 12 groups of 5) and a QR payload.
type SafetyNumber struct {
	Digits    string // 60 digits
	Scannable []byte // the QR code's payload
}

// String groups the digits in fives.
func (s SafetyNumber) String() string {
	var b strings.Builder
	for i := 0; i < len(s.Digits); i += 5 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s.Digits[i:min(i+5, len(s.Digits))])
	}
	return b.String()
}

// SafetyNumber computes the safety number with a contact from this
// account's identity key and the contact's current one (fetched from the
// server and remembered if this device has not seen it yet).
func (c *Client) SafetyNumber(ctx context.Context, username string) (SafetyNumber, error) {
	ct, err := c.resolve(ctx, username)
	if err != nil {
		return SafetyNumber{}, err
	}
	key, err := c.contactKey(ctx, ct.AccountID)
	if err != nil {
		return SafetyNumber{}, err
	}
	return c.safetyNumber(ct.AccountID, key)
}

// contactKey returns the identity key this device holds for an account,
// learning it from the server on first use.
func (c *Client) contactKey(ctx context.Context, account string) (protocol.PublicKey, error) {
	rec, err := c.store.IdentityRecord(ctx, account)
	if err == nil {
		return rec.Key, nil
	}
	if !errors.Is(err, devicestore.ErrNotFound) {
		return protocol.PublicKey{}, err
	}
	ct, err := c.store.Contact(ctx, account)
	if err != nil {
		return protocol.PublicKey{}, err
	}
	var lr lookupResponse
	if err := c.api.do(ctx, "GET", "/v1/usernames/"+ct.Username, nil, &lr); err != nil {
		return protocol.PublicKey{}, err
	}
	if lr.AccountID != account {
		return protocol.PublicKey{}, fmt.Errorf("%w: %s now names another account", ErrNoSuchUser, ct.Username)
	}
	key, err := protocol.ParsePublicKey(lr.IdentityKey)
	if err != nil {
		return protocol.PublicKey{}, fmt.Errorf("%w: identity key: %v", ErrProtocol, err)
	}
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error {
		_, err := tx.SaveIdentity(ctx, protocol.Address{Name: account, DeviceID: 1}, key)
		return err
	})
	if err != nil {
		return protocol.PublicKey{}, err
	}
	rec, err = c.store.IdentityRecord(ctx, account)
	return rec.Key, err
}

func (c *Client) safetyNumber(account string, key protocol.PublicKey) (SafetyNumber, error) {
	mine, err := uuidBytes(c.self.AccountID)
	if err != nil {
		return SafetyNumber{}, err
	}
	theirs, err := uuidBytes(account)
	if err != nil {
		return SafetyNumber{}, err
	}
	sn, err := protocol.NewSafetyNumber(mine, c.id.Public, theirs, key)
	if err != nil {
		return SafetyNumber{}, err
	}
	return SafetyNumber{Digits: sn.Displayable, Scannable: sn.Scannable}, nil
}

// uuidBytes is the 16-byte form of an account id, the stable identifier
// in safety numbers (as Signal uses its service ids).
func uuidBytes(s string) ([]byte, error) {
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 {
		return nil, fmt.Errorf("%w: account id %q", ErrProtocol, s)
	}
	out := make([]byte, 16)
	for i := range out {
		var v byte
		for _, ch := range h[2*i : 2*i+2] {
			v <<= 4
			switch {
			case ch >= '0' && ch <= '9':
				v |= byte(ch - '0')
			case ch >= 'a' && ch <= 'f':
				v |= byte(ch-'a') + 10
			default:
				return nil, fmt.Errorf("%w: account id %q", ErrProtocol, s)
			}
		}
		out[i] = v
	}
	return out, nil
}

// Verify marks a contact verified after the user compared safety numbers:
// digits is the number the contact reads out (spaces ignored). If it is
// not the number this device computes, the result is
// ErrSafetyNumberMismatch and nothing changes. Verifying a changed key
// also accepts it, and held sends go out.
func (c *Client) Verify(ctx context.Context, username, digits string) error {
	ct, err := c.resolve(ctx, username)
	if err != nil {
		return err
	}
	key, err := c.contactKey(ctx, ct.AccountID)
	if err != nil {
		return err
	}
	sn, err := c.safetyNumber(ct.AccountID, key)
	if err != nil {
		return err
	}
	given := strings.Join(strings.Fields(digits), "")
	if subtle.ConstantTimeCompare([]byte(given), []byte(sn.Digits)) != 1 {
		return ErrSafetyNumberMismatch
	}
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error { return tx.SetVerified(ctx, ct.AccountID, key, true) })
	if err != nil {
		return err
	}
	if err := c.syncTrust(ctx, ct.AccountID, key, devicestore.Verified); err != nil {
		return err
	}
	return c.releaseHeld(ctx, ct.AccountID)
}

// Unverify removes a contact's verified mark.
func (c *Client) Unverify(ctx context.Context, username string) error {
	ct, err := c.resolve(ctx, username)
	if err != nil {
		return err
	}
	key, err := c.contactKey(ctx, ct.AccountID)
	if err != nil {
		return err
	}
	if err := c.store.Update(ctx, func(tx *devicestore.Tx) error { return tx.SetVerified(ctx, ct.AccountID, key, false) }); err != nil {
		return err
	}
	return c.syncTrust(ctx, ct.AccountID, key, devicestore.Trusted)
}

// AcceptIdentity accepts a contact's changed identity key (after the
// user compared the new safety number, ideally): sending resumes and the
// held messages go out. safetyNumber must be the one the user was shown
// (IdentityChangedError.SafetyNumber, spaces ignored), so a key that
// changed again meanwhile is not accepted unseen.
func (c *Client) AcceptIdentity(ctx context.Context, username, safetyNumber string) error {
	ct, err := c.resolve(ctx, username)
	if err != nil {
		return err
	}
	rec, err := c.store.IdentityRecord(ctx, ct.AccountID)
	if err != nil {
		return err
	}
	sn, err := c.safetyNumber(ct.AccountID, rec.Key)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(strings.Join(strings.Fields(safetyNumber), "")), []byte(sn.Digits)) != 1 {
		return ErrSafetyNumberMismatch
	}
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error { return tx.AcceptIdentity(ctx, ct.AccountID, rec.Key) })
	if err != nil {
		return err
	}
	if err := c.syncTrust(ctx, ct.AccountID, rec.Key, devicestore.Trusted); err != nil {
		return err
	}
	return c.releaseHeld(ctx, ct.AccountID)
}

// releaseHeld makes the sends held for an account due now and flushes.
func (c *Client) releaseHeld(ctx context.Context, account string) error {
	err := c.store.Update(ctx, func(tx *devicestore.Tx) error { return releaseHeldTx(ctx, tx, account, c.now()) })
	if err != nil {
		return err
	}
	if err := c.Flush(ctx); err != nil && !errors.Is(err, ErrUnreachable) {
		return err
	}
	return nil
}

// Device is one device of this account.
type Device struct {
	ID       uint32
	Created  string // YYYY-MM-DD
	LastSeen string // YYYY-MM-DD
	Current  bool   // this device
	Name     string // decrypted name ("" if none)
	// NameUnreadable: the device has a name that no device of this
	// account wrote (it does not decrypt): treat the device as suspect.
	NameUnreadable bool
	// Compliance: this is the compliance device of a legal hold on this
	// account (its certificate verified): it receives copies of what the
	// account sends and receives while the hold lasts.
	Compliance bool
}

// Devices lists this account's devices (from the server).
func (c *Client) Devices(ctx context.Context) ([]Device, error) {
	var resp struct {
		Devices []deviceJSON `json:"devices"`
	}
	if err := c.api.do(ctx, "GET", "/v1/devices", nil, &resp); err != nil {
		if isCode(err, "unauthorized") {
			return nil, ErrDeviceRemoved
		}
		return nil, err
	}
	out := make([]Device, 0, len(resp.Devices))
	for _, d := range resp.Devices {
		dv := Device{ID: d.DeviceID, Created: d.Created, LastSeen: d.LastSeen, Current: d.DeviceID == c.self.DeviceID}
		if len(d.Name) > 0 {
			dv.Name, _ = c.openName(d.DeviceID, d.Name)
			dv.NameUnreadable = dv.Name == ""
		}
		if d.Compliance != nil {
			h, err := c.verifyHold(ctx, c.store, c.self.AccountID, d.Compliance)
			dv.Compliance = err == nil && h.DeviceID == d.DeviceID
		}
		out = append(out, dv)
	}
	return out, nil
}

// RemoveDevice unlinks a device of this account (not this one: use
// another device for that).
func (c *Client) RemoveDevice(ctx context.Context, id uint32) error {
	if id == c.self.DeviceID {
		return fmt.Errorf("%w: this is the current device; remove it from another one", ErrInvalidArgument)
	}
	err := c.api.do(ctx, "DELETE", fmt.Sprintf("/v1/devices/%d", id), nil, nil)
	if isCode(err, "device_not_found") {
		return fmt.Errorf("%w: no device %d", ErrInvalidArgument, id)
	}
	if err != nil {
		return err
	}
	return c.store.Update(ctx, func(tx *devicestore.Tx) error {
		return tx.DeleteSession(ctx, protocol.Address{Name: c.self.AccountID, DeviceID: id})
	})
}
