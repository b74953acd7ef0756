package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/legalhold"
	"github.com/veil-e2ee/veil/protocol"
)

// Disclosed legal hold, as a device sees it (docs/COMPLIANCE.md). An
// organisation can add a "compliance device" to an account under hold.
// Its keys are signed by its own identity key, not the account's, so
// this device encrypts to it only when a hold certificate from the
// server's trust root (pinned at registration) vouches for it — and then
// every conversation with that account shows the hold (Conversation.Holds,
// Group.Holds, ConversationHolds, EventLegalHold). A device that is
// neither signed by the account's key nor vouched for is refused
// (UnverifiedDeviceError). When the server says it disabled legal holds
// for good, this device refuses compliance devices from then on.

// LegalHold is a legal hold on an account this device talks to (or on
// its own account: Self).
type LegalHold struct {
	AccountID string
	Username  string // "" if unknown
	Self      bool   // the hold is on this device's own account
	HoldID    string
	DeviceID  uint32 // the compliance device
	Since     time.Time
}

// Notice is the sentence to show in a conversation that includes the
// held account.
func (h LegalHold) Notice() string {
	who := h.Username
	if h.Self {
		who = "your account"
	} else if who == "" {
		who = h.AccountID
	}
	return fmt.Sprintf("Legal hold: since %s, messages to and from %s are also delivered to a compliance device (device %d) run by the server's organisation.",
		h.Since.UTC().Format("2006-01-02 15:04 MST"), who, h.DeviceID)
}

// ErrHoldsRefused: the server disabled legal holds for good, and yet an
// account lists a compliance device; nothing is sent to that account.
var ErrHoldsRefused = errors.New("client: the server disabled legal holds permanently, yet an account lists a compliance device: nothing is sent to it")

const (
	settingHoldsNever = "legal_holds_never"
	settingCompliance = "compliance_device"
	// holdRefreshEvery is how often Receive checks the server's list of
	// holds while it runs.
	holdRefreshEvery = time.Minute
)

type holdCertJSON struct {
	HoldID      string `json:"hold_id"`
	DeviceID    uint32 `json:"device_id"`
	IdentityKey []byte `json:"identity_key"`
	Since       int64  `json:"since"`
	Signature   []byte `json:"signature"`
	AccountHash []byte `json:"account_hash"`
}

type holdsResponse struct {
	Policy string          `json:"policy"`
	Holds  []*holdCertJSON `json:"holds"`
}

// verifyHold checks a hold certificate for a device of account against
// the pinned trust root.
func (c *Client) verifyHold(ctx context.Context, r reader, account string, hc *holdCertJSON) (devicestore.Hold, error) {
	never, _, err := r.Setting(ctx, settingHoldsNever)
	if err != nil {
		return devicestore.Hold{}, err
	}
	if never == 1 {
		return devicestore.Hold{}, ErrHoldsRefused
	}
	root, _, err := r.BlobSetting(ctx, settingTrustRoot)
	if err != nil {
		return devicestore.Hold{}, err
	}
	rk, err := protocol.ParsePublicKey(root)
	if err != nil {
		return devicestore.Hold{}, fmt.Errorf("%w: no pinned trust root to check a legal hold against", ErrProtocol)
	}
	acct, err := parseAccountBytes(account)
	if err != nil {
		return devicestore.Hold{}, err
	}
	hold, err := hex.DecodeString(hc.HoldID)
	if err != nil || len(hold) != legalhold.IDSize {
		return devicestore.Hold{}, fmt.Errorf("%w: hold id", legalhold.ErrBadCertificate)
	}
	cert := &legalhold.Certificate{Account: acct, DeviceID: hc.DeviceID, HoldID: [16]byte(hold), Since: time.Unix(hc.Since, 0),
		IdentityKey: hc.IdentityKey, Signature: hc.Signature}
	if err := cert.Verify(rk); err != nil {
		return devicestore.Hold{}, err
	}
	ik, err := protocol.ParsePublicKey(hc.IdentityKey)
	if err != nil {
		return devicestore.Hold{}, fmt.Errorf("%w: %v", legalhold.ErrBadCertificate, err)
	}
	return devicestore.Hold{Name: account, DeviceID: hc.DeviceID, HoldID: hold, IdentityKey: ik, Since: cert.Since}, nil
}

// reader is what verifyHold reads (the store, or a transaction).
type reader interface {
	Setting(ctx context.Context, name string) (int64, bool, error)
	BlobSetting(ctx context.Context, name string) ([]byte, bool, error)
}

func parseAccountBytes(s string) ([16]byte, error) {
	var id [16]byte
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%w: %q is not an account id", ErrProtocol, s)
	}
	return [16]byte(b), nil
}

// RefreshHolds fetches the server's list of active legal holds and
// checks the accounts this device talks to (and its own) against it:
// holds that began are stored and reported as EventLegalHold, holds that
// ended as EventLegalHoldLifted. Receive calls it on connecting and every
// minute; an app may call it too (e.g. when opening a conversation).
// The list names accounts by hash, so the server does not learn whom
// this device asks about.
func (c *Client) RefreshHolds(ctx context.Context) ([]Event, error) {
	var resp holdsResponse
	if err := c.api.do(ctx, "GET", "/v1/holds", nil, &resp); err != nil {
		return nil, err
	}
	c.lastHoldCheck.Store(time.Now().UnixNano())
	accounts, err := c.knownAccounts(ctx)
	if err != nil {
		return nil, err
	}
	byHash := make(map[[32]byte]string, len(accounts))
	for _, a := range accounts {
		if id, err := parseAccountBytes(a); err == nil {
			byHash[legalhold.AccountHash(id)] = a
		}
	}
	var events []Event
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error {
		events = events[:0]
		if resp.Policy == "never" {
			// Pinned for good: a server that later lists a compliance
			// device is not believed.
			if err := tx.SetSetting(ctx, settingHoldsNever, 1); err != nil {
				return err
			}
		}
		type key struct {
			name string
			dev  uint32
		}
		known, err := tx.Holds(ctx)
		if err != nil {
			return err
		}
		had := map[key]bool{}
		for _, h := range known {
			had[key{h.Name, h.DeviceID}] = true
		}
		live := map[key]bool{}
		for _, hc := range resp.Holds {
			if len(hc.AccountHash) != 32 {
				continue
			}
			account, ok := byHash[[32]byte(hc.AccountHash)]
			if !ok {
				continue // an account we do not talk to
			}
			h, err := c.verifyHold(ctx, tx, account, hc)
			if errors.Is(err, ErrHoldsRefused) {
				c.log.Warn("the server lists a legal hold although it disabled legal holds for good; ignored")
				continue
			}
			if err != nil {
				c.log.Warn("a legal hold whose certificate does not verify; ignored", "reason", errorCode(err))
				continue
			}
			live[key{h.Name, h.DeviceID}] = true
			if !had[key{h.Name, h.DeviceID}] {
				events = append(events, Event{Kind: EventLegalHold, ContactAccount: h.Name, Hold: c.legalHold(h)})
			}
			if err := tx.PutHold(ctx, h); err != nil {
				return err
			}
		}
		for _, h := range known {
			if live[key{h.Name, h.DeviceID}] {
				continue
			}
			if _, err := tx.DeleteHold(ctx, h.Name, h.DeviceID); err != nil {
				return err
			}
			events = append(events, Event{Kind: EventLegalHoldLifted, ContactAccount: h.Name, Hold: c.legalHold(h)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c.named(ctx, events), nil
}

func (c *Client) legalHold(h devicestore.Hold) *LegalHold {
	return &LegalHold{AccountID: h.Name, Self: h.Name == c.self.AccountID, HoldID: hex.EncodeToString(h.HoldID), DeviceID: h.DeviceID, Since: h.Since}
}

// knownAccounts are the accounts this device talks to: its own, its
// contacts, and the members of its groups.
func (c *Client) knownAccounts(ctx context.Context) ([]string, error) {
	seen := map[string]bool{c.self.AccountID: true}
	out := []string{c.self.AccountID}
	add := func(a string) {
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	cs, err := c.store.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	for _, ct := range cs {
		add(ct.AccountID)
	}
	gs, err := c.Groups(ctx)
	if err != nil {
		return nil, err
	}
	for _, g := range gs {
		for _, m := range g.Members {
			add(m.Account)
		}
	}
	return out, nil
}

// LegalHolds lists the legal holds this device knows of, on its own
// account and on the accounts it talks to.
func (c *Client) LegalHolds(ctx context.Context) ([]LegalHold, error) {
	hs, err := c.store.Holds(ctx)
	if err != nil || len(hs) == 0 {
		return nil, err
	}
	names, err := c.usernames(ctx)
	if err != nil {
		return nil, err
	}
	return c.namedHolds(hs, names), nil
}

// namedHolds turns stored holds into LegalHolds with usernames.
func (c *Client) namedHolds(hs []devicestore.Hold, names map[string]string) []LegalHold {
	out := make([]LegalHold, 0, len(hs))
	for _, h := range hs {
		lh := c.legalHold(h)
		lh.Username = names[h.Name]
		if lh.Self {
			lh.Username = c.self.Username
		}
		out = append(out, *lh)
	}
	return out
}

// onlyWith keeps the holds on this account and on peer.
func onlyWith(all []LegalHold, peer string) []LegalHold {
	var out []LegalHold
	for _, h := range all {
		if h.Self || h.AccountID == peer {
			out = append(out, h)
		}
	}
	return out
}

// ConversationHolds returns the legal holds that concern a conversation
// (a username, or a group's id): holds on the peer, on a group member,
// or on this device's own account. A non-empty answer must be shown in
// the conversation, persistently (LegalHold.Notice).
func (c *Client) ConversationHolds(ctx context.Context, conversation string) ([]LegalHold, error) {
	key, err := c.conversationKey(ctx, conversation)
	var nc *noContactError
	if errors.As(err, &nc) {
		// Nobody we know yet: only a hold on our own account concerns it.
		return c.holdsFor(ctx, c.self.AccountID)
	}
	if err != nil {
		return nil, err
	}
	return c.holdsFor(ctx, key)
}

// holdsFor returns the holds on the participants of the conversation
// with key (a peer account, or "g:" and a group id).
func (c *Client) holdsFor(ctx context.Context, key string) ([]LegalHold, error) {
	if strings.HasPrefix(key, groupPrefix) {
		g, err := c.Group(ctx, key)
		return g.Holds, err
	}
	all, err := c.LegalHolds(ctx)
	return onlyWith(all, key), err
}

// holdsDue reports whether Receive should refresh the holds now.
func (c *Client) holdsDue() bool {
	last := c.lastHoldCheck.Load()
	return last == 0 || time.Since(time.Unix(0, last)) >= holdRefreshEvery
}
