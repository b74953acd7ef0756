package client

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/client/internal/content"
	"github.com/veil-e2ee/veil/client/internal/groups"
	"github.com/veil-e2ee/veil/protocol"
)

// Groups live on the devices. The server sees a group message as one
// sealed sender v2 upload and one opaque envelope per member device; it
// never learns the group, its name, its members or who sent what.
//
//   - Membership is a log of operations (client/internal/groups) that
//     members send each other inside 1:1 messages; every device folds the
//     same set of operations into the same state.
//   - A group message is encrypted once with the sender device's sender
//     key and sealed for every member device in one upload. A member
//     device first gets the sender key in a 1:1 message.
//   - When a member leaves or is removed the group's epoch moves on, and
//     every remaining member's next message goes under a fresh sender
//     key that the former member never receives.
//
// docs/CLIENT.md ("Groups") has the details and the limits.

// groupPrefix marks a group's conversation (and outbox items) where a
// peer account id would be.
const groupPrefix = "g:"

// MaxGroupName is the longest group name, in bytes.
const MaxGroupName = groups.MaxName

var (
	// ErrNotGroupMember: this account is not (or no longer) a member of
	// the group.
	ErrNotGroupMember = errors.New("client: not a member of this group")
	// ErrNotGroupAdmin: only the group's admins may do that.
	ErrNotGroupAdmin = errors.New("client: only a group admin may do that")
	// ErrNoSuchGroup: no group has this id on this device.
	ErrNoSuchGroup = errors.New("client: no such group")
)

// Group is a group as this device knows it.
type Group struct {
	ID      string // 32 hex digits
	Name    string
	Members []GroupMember // by account id
	// Member says whether this account is a member (false after leaving
	// or being removed).
	Member bool
	Admin  bool // this account is an admin
	// Holds are the legal holds on members (this account included):
	// show each one's Notice in the group's conversation, always.
	Holds []LegalHold
}

// GroupMember is one member of a group.
type GroupMember struct {
	Account  string
	Username string // "" if unknown
	Admin    bool
}

func groupPeer(id [groups.IDSize]byte) string { return groupPrefix + hex.EncodeToString(id[:]) }

// parseGroupID takes a group id as Group.ID shows it (or with the "g:"
// prefix of a conversation).
func parseGroupID(s string) ([groups.IDSize]byte, error) {
	var id [groups.IDSize]byte
	b, err := hex.DecodeString(strings.TrimPrefix(s, groupPrefix))
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("%w: %q is not a group id (32 hex digits)", ErrInvalidArgument, s)
	}
	copy(id[:], b)
	return id, nil
}

// opsReader is the device store or a transaction.
type opsReader interface {
	GroupOps(ctx context.Context, group []byte) ([][]byte, error)
}

// groupLog loads a group's operations.
func (c *Client) groupLog(ctx context.Context, r opsReader, id [groups.IDSize]byte) (*groups.Log, error) {
	raw, err := r.GroupOps(ctx, id[:])
	if err != nil {
		return nil, err
	}
	l := groups.NewLog(c.cfg.GroupLimit)
	for _, b := range raw {
		op, err := groups.UnmarshalOp(b)
		if err != nil {
			return nil, fmt.Errorf("%w: stored group operation: %v", devicestore.ErrCorrupt, err)
		}
		if _, err := l.Add(op); err != nil {
			return nil, fmt.Errorf("%w: stored group operation: %v", devicestore.ErrCorrupt, err)
		}
	}
	return l, nil
}

// CreateGroup creates a group with this account as its admin and the
// users with these usernames as members, and tells them.
func (c *Client) CreateGroup(ctx context.Context, name string, usernames ...string) (Group, error) {
	if err := validGroupName(name); err != nil {
		return Group{}, err
	}
	members, err := c.resolveAll(ctx, usernames)
	if err != nil {
		return Group{}, err
	}
	if len(members)+1 > c.cfg.GroupLimit {
		return Group{}, fmt.Errorf("%w: a group has at most %d members", ErrInvalidArgument, c.cfg.GroupLimit)
	}
	var id [groups.IDSize]byte
	if _, err := io.ReadFull(c.rand, id[:]); err != nil {
		return Group{}, err
	}
	err = c.groupOp(ctx, id, func(st groups.State) (groups.Op, error) {
		return groups.Op{Kind: groups.Create, Name: name, Members: members}, nil
	})
	if err != nil {
		return Group{}, err
	}
	return c.Group(ctx, hex.EncodeToString(id[:]))
}

// AddGroupMembers adds users to a group (admins only); each new member
// gets the group's whole history of membership operations.
func (c *Client) AddGroupMembers(ctx context.Context, group string, usernames ...string) error {
	id, err := parseGroupID(group)
	if err != nil {
		return err
	}
	members, err := c.resolveAll(ctx, usernames)
	if err != nil {
		return err
	}
	for _, m := range members {
		err := c.groupOp(ctx, id, func(st groups.State) (groups.Op, error) {
			if !st.IsAdmin(c.self.AccountID) {
				return groups.Op{}, ErrNotGroupAdmin
			}
			if len(st.Members) >= c.cfg.GroupLimit && !st.IsMember(m) {
				return groups.Op{}, fmt.Errorf("%w: the group has its maximum of %d members", ErrInvalidArgument, c.cfg.GroupLimit)
			}
			return groups.Op{Kind: groups.Add, Member: m}, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// RemoveGroupMember removes a user from a group (admins only). The
// remaining members' next messages go under new sender keys the removed
// member does not get.
func (c *Client) RemoveGroupMember(ctx context.Context, group, username string) error {
	id, err := parseGroupID(group)
	if err != nil {
		return err
	}
	m, err := c.memberAccount(ctx, username)
	if err != nil {
		return err
	}
	return c.groupOp(ctx, id, func(st groups.State) (groups.Op, error) {
		if !st.IsAdmin(c.self.AccountID) {
			return groups.Op{}, ErrNotGroupAdmin
		}
		if !st.IsMember(m) {
			return groups.Op{}, fmt.Errorf("%w: %s is not a member", ErrInvalidArgument, username)
		}
		return groups.Op{Kind: groups.Remove, Member: m}, nil
	})
}

// LeaveGroup leaves a group.
func (c *Client) LeaveGroup(ctx context.Context, group string) error {
	id, err := parseGroupID(group)
	if err != nil {
		return err
	}
	return c.groupOp(ctx, id, func(st groups.State) (groups.Op, error) {
		return groups.Op{Kind: groups.Leave}, nil
	})
}

// RenameGroup renames a group (admins only). The name travels only
// inside end-to-end encrypted messages.
func (c *Client) RenameGroup(ctx context.Context, group, name string) error {
	id, err := parseGroupID(group)
	if err != nil {
		return err
	}
	if err := validGroupName(name); err != nil {
		return err
	}
	return c.groupOp(ctx, id, func(st groups.State) (groups.Op, error) {
		if !st.IsAdmin(c.self.AccountID) {
			return groups.Op{}, ErrNotGroupAdmin
		}
		return groups.Op{Kind: groups.Rename, Name: name}, nil
	})
}

// SetGroupAdmin makes a member an admin, or not (admins only).
func (c *Client) SetGroupAdmin(ctx context.Context, group, username string, admin bool) error {
	id, err := parseGroupID(group)
	if err != nil {
		return err
	}
	m, err := c.memberAccount(ctx, username)
	if err != nil {
		return err
	}
	return c.groupOp(ctx, id, func(st groups.State) (groups.Op, error) {
		if !st.IsAdmin(c.self.AccountID) {
			return groups.Op{}, ErrNotGroupAdmin
		}
		if !st.IsMember(m) {
			return groups.Op{}, fmt.Errorf("%w: %s is not a member", ErrInvalidArgument, username)
		}
		return groups.Op{Kind: groups.SetAdmin, Member: m, Admin: admin}, nil
	})
}

func validGroupName(name string) error {
	if name == "" || len(name) > MaxGroupName || !utf8.ValidString(name) {
		return fmt.Errorf("%w: a group name is 1 to %d bytes of UTF-8", ErrInvalidArgument, MaxGroupName)
	}
	return nil
}

func (c *Client) resolveAll(ctx context.Context, usernames []string) ([]string, error) {
	var out []string
	for _, u := range usernames {
		ct, err := c.resolve(ctx, u)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(out, ct.AccountID) {
			out = append(out, ct.AccountID)
		}
	}
	slices.Sort(out)
	return out, nil
}

// memberAccount is the account of a username (a contact or, failing
// that, one the server knows); this account's own username is allowed.
func (c *Client) memberAccount(ctx context.Context, username string) (string, error) {
	if username == c.self.Username {
		return c.self.AccountID, nil
	}
	ct, err := c.resolve(ctx, username)
	return ct.AccountID, err
}

// groupOp authors one operation: it checks it against the current state,
// stores it and queues it, in one transaction, to every member before
// and after it and to this account's other devices (members who joined
// get the whole log), then tries to deliver.
func (c *Client) groupOp(ctx context.Context, id [groups.IDSize]byte, build func(st groups.State) (groups.Op, error)) error {
	pk, err := c.profileKey(ctx)
	if err != nil {
		return err
	}
	var tids [][]byte
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error {
		log, err := c.groupLog(ctx, tx, id)
		if err != nil {
			return err
		}
		before := log.State()
		op, err := build(before)
		if err != nil {
			return err
		}
		if op.Kind != groups.Create {
			if !before.Known {
				return ErrNoSuchGroup
			}
			if !before.IsMember(c.self.AccountID) {
				return ErrNotGroupMember
			}
		}
		op.Group, op.Author = id, c.self.AccountID
		if op.Stamp, err = c.stamp(ctx, tx); err != nil {
			return err
		}
		enc, err := op.Marshal()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidArgument, err)
		}
		if _, err := log.Add(op); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidArgument, err)
		}
		if _, err := tx.AddGroupOp(ctx, id[:], enc); err != nil {
			return err
		}
		after := log.State()
		if _, err := tx.Conversation(ctx, groupPeer(id)); err != nil {
			return err
		}
		names, err := c.memberNames(ctx, tx, after)
		if err != nil {
			return err
		}
		one, err := content.Marshal(content.Content{GroupOps: &content.GroupOps{Group: id[:], Ops: [][]byte{enc}, Members: names}, ProfileKey: pk})
		if err != nil {
			return err
		}
		var whole []byte
		var joined []string
		for _, ch := range groups.Diff(before, after) {
			if ch.Kind == groups.Joined {
				joined = append(joined, ch.Member)
			}
		}
		if len(joined) > 0 {
			if whole, err = c.encodeLog(id, log, names, pk); err != nil {
				return err
			}
		}
		to := groups.Recipients(before, after)
		if !slices.Contains(to, c.self.AccountID) {
			to = append(to, c.self.AccountID) // our other devices
		}
		for _, to := range to {
			payload := one
			if slices.Contains(joined, to) && to != c.self.AccountID {
				payload = whole
			}
			tid, err := c.newID()
			if err != nil {
				return err
			}
			if _, err := tx.Enqueue(ctx, devicestore.OutboxItem{MessageID: tid, Recipient: to, Payload: payload}); err != nil {
				return err
			}
			tids = append(tids, tid)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if ferr := c.flush(ctx, tids); ferr != nil {
		c.log.Info("group operation queued", "reason", errorCode(ferr))
	}
	return nil
}

// encodeLog is the content that hands a new member a group's whole log.
func (c *Client) encodeLog(id [groups.IDSize]byte, log *groups.Log, names []content.Member, pk []byte) ([]byte, error) {
	ops := log.Ops()
	enc := make([][]byte, 0, len(ops))
	for _, op := range ops {
		b, err := op.Marshal()
		if err != nil {
			return nil, err
		}
		enc = append(enc, b)
	}
	return content.Marshal(content.Content{GroupOps: &content.GroupOps{Group: id[:], Ops: enc, Members: names}, ProfileKey: pk})
}

// memberNames are the usernames this device knows for a group's members
// (ourselves included), for the receivers to check and learn.
func (c *Client) memberNames(ctx context.Context, tx *devicestore.Tx, st groups.State) ([]content.Member, error) {
	var out []content.Member
	for _, m := range st.Members {
		if m == c.self.AccountID {
			out = append(out, content.Member{Account: m, Username: c.self.Username})
			continue
		}
		ct, err := tx.Contact(ctx, m)
		if errors.Is(err, devicestore.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if ct.Username != "" {
			out = append(out, content.Member{Account: m, Username: ct.Username})
		}
	}
	return out, nil
}

// maxLearn bounds the member usernames one message makes us check with
// the server (each is a lookup); the others are learned as they write.
const maxLearn = 16

// Groups lists the groups this device knows, by name.
func (c *Client) Groups(ctx context.Context) ([]Group, error) {
	ids, err := c.store.GroupIDs(ctx)
	if err != nil {
		return nil, err
	}
	var out []Group
	for _, b := range ids {
		g, err := c.Group(ctx, hex.EncodeToString(b))
		if errors.Is(err, ErrNoSuchGroup) {
			continue // operations without their Create, so far
		}
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b Group) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Group returns one group.
func (c *Client) Group(ctx context.Context, group string) (Group, error) {
	id, err := parseGroupID(group)
	if err != nil {
		return Group{}, err
	}
	log, err := c.groupLog(ctx, c.store, id)
	if err != nil {
		return Group{}, err
	}
	st := log.State()
	if !st.Known {
		return Group{}, ErrNoSuchGroup
	}
	names, err := c.usernames(ctx)
	if err != nil {
		return Group{}, err
	}
	g := Group{ID: hex.EncodeToString(id[:]), Name: st.Name, Member: st.IsMember(c.self.AccountID), Admin: st.IsAdmin(c.self.AccountID)}
	for _, m := range st.Members {
		u := names[m]
		if m == c.self.AccountID {
			u = c.self.Username
		}
		g.Members = append(g.Members, GroupMember{Account: m, Username: u, Admin: st.IsAdmin(m)})
	}
	hs, err := c.store.Holds(ctx)
	if err != nil {
		return Group{}, err
	}
	for _, h := range c.namedHolds(hs, names) {
		if h.Self || st.IsMember(h.AccountID) {
			g.Holds = append(g.Holds, h)
		}
	}
	return g, nil
}

// GroupMessages returns up to limit messages of a group, oldest first,
// with local ids above after.
func (c *Client) GroupMessages(ctx context.Context, group string, after int64, limit int) ([]Message, error) {
	id, err := parseGroupID(group)
	if err != nil {
		return nil, err
	}
	if _, err := c.ExpireMessages(ctx); err != nil {
		return nil, err
	}
	conv, err := c.store.ConversationByPeer(ctx, groupPeer(id))
	if errors.Is(err, devicestore.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ms, err := c.store.Messages(ctx, conv, after, max(limit, 1))
	if err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(ms))
	for _, m := range ms {
		msg, err := c.storedMessage(ctx, m)
		if err != nil {
			return nil, err
		}
		out = append(out, msg)
	}
	return out, nil
}

// SendGroup sends text to every member of a group: encrypted once under
// this device's sender key and sealed for every member device in one
// upload (members whose profile key this device lacks get the same
// sender-key message sealed one by one). Like Send, the message is
// stored and queued first; Status says whether it went out.
func (c *Client) SendGroup(ctx context.Context, group, text string) (Message, error) {
	if c.compliance {
		return Message{}, ErrComplianceDevice
	}
	if len(text) == 0 || len(text) > MaxTextBytes || !utf8.ValidString(text) {
		return Message{}, fmt.Errorf("%w: a message is 1 to %d bytes of UTF-8 text", ErrInvalidArgument, MaxTextBytes)
	}
	id, err := parseGroupID(group)
	if err != nil {
		return Message{}, err
	}
	mid, err := c.newID()
	if err != nil {
		return Message{}, err
	}
	tids := make([][]byte, 2)
	for i := range tids {
		if tids[i], err = c.newID(); err != nil {
			return Message{}, err
		}
	}
	var local int64
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error {
		log, err := c.groupLog(ctx, tx, id)
		if err != nil {
			return err
		}
		st := log.State()
		if !st.Known {
			return ErrNoSuchGroup
		}
		if !st.IsMember(c.self.AccountID) {
			return ErrNotGroupMember
		}
		s, err := c.stamp(ctx, tx)
		if err != nil {
			return err
		}
		t := content.Text{ID: mid, Body: text, SentAt: s.Time, Counter: s.Counter, SenderUsername: c.self.Username, Group: id[:]}
		toGroup, err := content.Marshal(content.Content{Text: &t})
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidArgument, err)
		}
		toSelf, err := content.Marshal(content.Content{Sync: &content.Sync{Destination: groupPeer(id), Text: t}})
		if err != nil {
			return err
		}
		local, err = c.queueOutgoing(ctx, tx, groupPeer(id), t, s, tids, toGroup, toSelf)
		return err
	})
	if err != nil {
		return Message{}, err
	}
	ferr := c.flush(ctx, tids)
	m, err := c.message(ctx, local)
	if err != nil {
		return Message{}, err
	}
	var ice *IdentityChangedError
	var ude *UnverifiedDeviceError
	if errors.As(ferr, &ice) || errors.As(ferr, &ude) || errors.Is(ferr, ErrNotGroupMember) {
		return m, ferr
	}
	if ferr != nil {
		c.log.Info("group send queued", "reason", errorCode(ferr))
	}
	return m, nil
}

// multiRequest is a sealed sender v2 send.
type multiRequest struct {
	MessageID  []byte            `json:"message_id"`
	Message    []byte            `json:"message"`
	AccessKeys map[string][]byte `json:"access_keys"`
}

// deliverGroup delivers one queued group message: it makes sure every
// member device holds this device's current sender key (rotating it when
// the membership epoch moved on), encrypts once, and uploads once.
func (c *Client) deliverGroup(ctx context.Context, it devicestore.OutboxItem) error {
	id, err := parseGroupID(it.Recipient)
	if err != nil {
		return err
	}
	log, err := c.groupLog(ctx, c.store, id)
	if err != nil {
		return err
	}
	st := log.State()
	if !st.IsMember(c.self.AccountID) {
		return ErrNotGroupMember
	}
	dist, err := c.ourSenderKey(ctx, id, st.Epoch)
	if err != nil {
		return err
	}
	var others []string
	for _, m := range st.Members {
		if m != c.self.AccountID {
			others = append(others, m)
		}
	}
	if len(others) == 0 {
		return nil // alone in the group: the sync transcript is all there is
	}
	for _, m := range others {
		if err := c.checkIdentity(ctx, m); err != nil {
			return err
		}
	}
	cert, err := c.senderCertificate(ctx)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		// Sessions with every member device, and our sender key on each.
		// A member whose account no longer exists is left out (the group's
		// admins can remove it); everyone else still gets the message.
		devices := map[string][]uint32{}
		live := others[:0:0]
		for _, m := range others {
			ds, err := c.sessionDevices(ctx, m)
			if err != nil {
				return err
			}
			if len(ds) == 0 {
				err := c.fetchSessions(ctx, m, 0)
				if errors.Is(err, ErrNoSuchUser) {
					continue
				}
				if err != nil {
					return err
				}
				if ds, err = c.sessionDevices(ctx, m); err != nil {
					return err
				}
			}
			devices[m] = ds
			live = append(live, m)
		}
		others = live
		if len(others) == 0 {
			return nil
		}
		if err := c.shareSenderKey(ctx, id, dist, it.MessageID, devices); err != nil {
			return err
		}
		keys := map[string][]byte{}
		var withKey []string
		var oneByOne []protocol.Address
		for _, m := range others {
			if _, ok := devices[m]; !ok {
				continue // gone while we shared the sender key
			}
			k, err := c.sealedAccess(ctx, m)
			if err != nil {
				return err
			}
			if k != nil {
				if len(k) > 0 {
					keys[m] = k
				}
				withKey = append(withKey, m)
				continue
			}
			for _, d := range devices[m] {
				oneByOne = append(oneByOne, protocol.Address{Name: m, DeviceID: d})
			}
		}
		var sealedTo []protocol.SealRecipient
		if len(withKey) > 0 {
			if sealedTo, err = c.store.SealRecipients(ctx, withKey, protocol.Address{}); err != nil {
				return err
			}
		}
		multi, single, err := c.sealGroup(ctx, id, dist, cert, it.Payload, sealedTo, oneByOne)
		if err != nil {
			return err
		}
		testHook("encrypted")
		err = nil
		if multi != nil {
			err = c.api.doWith(ctx, "PUT", "/v1/sealed", anonymous, multiRequest{MessageID: it.MessageID, Message: multi, AccessKeys: keys}, nil)
		}
		for acct, envs := range single {
			if err != nil {
				break
			}
			err = c.api.do(ctx, "PUT", "/v1/messages/"+acct, sendRequest{MessageID: it.MessageID, Envelopes: envs}, nil)
			if isCode(err, "account_not_found") {
				err = nil // gone: nobody to deliver to
				continue
			}
			var se *ServerError
			if errors.As(err, &se) && (se.Code == "device_mismatch" || se.Code == "stale_devices") {
				se.Mismatches = []Mismatch{{Account: acct, Missing: se.Missing, Extra: se.Extra, Stale: se.Stale}}
			}
		}
		if err == nil {
			testHook("sent")
			return nil
		}
		var se *ServerError
		if !errors.As(err, &se) || attempt >= 3 {
			return err
		}
		switch se.Code {
		case "device_mismatch", "stale_devices":
			for _, mm := range se.Mismatches {
				if err := c.fixDevices(ctx, mm.Account, append(mm.Missing, mm.Stale...), append(mm.Extra, mm.Stale...)); err != nil {
					return err
				}
			}
		case "access_denied":
			// Profile keys that changed (or accounts no longer open to
			// anyone): those members get it one by one.
			err := c.store.Update(ctx, func(tx *devicestore.Tx) error {
				for _, a := range se.Accounts {
					if err := tx.ForgetProfileKey(ctx, a); err != nil {
						return err
					}
					if err := tx.SetSetting(ctx, settingAnyone+a, 0); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// sealGroup encrypts a group message once under our sender key and
// seals it: one sealed sender v2 message for sealedTo, one v1 envelope
// each for oneByOne (by account). The sender-key chain advances in the
// same transaction.
func (c *Client) sealGroup(ctx context.Context, id [groups.IDSize]byte, dist protocol.DistributionID, cert, payload []byte,
	sealedTo []protocol.SealRecipient, oneByOne []protocol.Address) (multi []byte, single map[string][]envelopeJSON, err error) {
	self := protocol.Address{Name: c.self.AccountID, DeviceID: c.self.DeviceID}
	sc, err := protocol.ParseSenderCertificate(cert)
	if err != nil {
		return nil, nil, err
	}
	single = map[string][]envelopeJSON{}
	err = c.update(ctx, func(tx *devicestore.Tx, cipher *protocol.Cipher) error {
		clear(single)
		skm, err := protocol.NewGroupCipher(tx, c.rand).Encrypt(ctx, self, dist, payload)
		if err != nil {
			return err
		}
		u := &protocol.UnidentifiedContent{Type: protocol.SenderKeyMessageType, Contents: skm, Sender: sc,
			ContentHint: protocol.ContentHintImplicit, GroupID: id[:]}
		if len(sealedTo) > 0 {
			if multi, err = cipher.SealV2To(ctx, sealedTo, u); err != nil {
				return err
			}
		}
		for _, a := range oneByOne {
			body, err := cipher.SealV1(ctx, a, u)
			if err != nil {
				return err
			}
			rec, err := tx.LoadSession(ctx, a)
			if err != nil {
				return err
			}
			reg, _ := rec.RemoteRegistrationID()
			single[a.Name] = append(single[a.Name], envelopeJSON{DeviceID: a.DeviceID, RegistrationID: reg, Type: envelopeSealed, Content: body})
		}
		return nil
	})
	return multi, single, err
}

// ourSenderKey returns this device's distribution id for the group at
// this membership epoch: a new one (so a new sender key) when the epoch
// moved on since the last, which forgets who held the old key.
func (c *Client) ourSenderKey(ctx context.Context, id [groups.IDSize]byte, epoch int) (protocol.DistributionID, error) {
	g, err := c.store.OurGroup(ctx, id[:])
	if err == nil && g.Epoch == epoch {
		return protocol.DistributionID(g.Distribution), nil
	}
	if err != nil && !errors.Is(err, devicestore.ErrNotFound) {
		return protocol.DistributionID{}, err
	}
	var d protocol.DistributionID
	if _, err := io.ReadFull(c.rand, d[:]); err != nil {
		return d, err
	}
	d[6] = 0x40 | d[6]&0x0f // a version-4 UUID, as libsignal's are
	d[8] = 0x80 | d[8]&0x3f
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error {
		if g.Distribution != ([16]byte{}) {
			if err := tx.DeleteSenderKey(ctx, protocol.Address{Name: c.self.AccountID, DeviceID: c.self.DeviceID}, protocol.DistributionID(g.Distribution)); err != nil {
				return err
			}
		}
		return tx.SetOurGroup(ctx, devicestore.Group{ID: id[:], Distribution: d, Epoch: epoch})
	})
	return d, err
}

// shareSenderKey sends this device's sender key for the group, in a 1:1
// message, to every member account with a device that does not hold it
// yet. The message id is derived from the group message's, so a retry
// after a crash is a duplicate on the server.
func (c *Client) shareSenderKey(ctx context.Context, id [groups.IDSize]byte, dist protocol.DistributionID, groupMsgID []byte, devices map[string][]uint32) error {
	shared, err := c.store.SharedSenderKey(ctx, id[:])
	if err != nil {
		return err
	}
	var skdm []byte
	for _, m := range sortedKeys(devices) {
		missing := false
		for _, d := range devices[m] {
			if !shared[protocol.Address{Name: m, DeviceID: d}] {
				missing = true
			}
		}
		if !missing {
			continue
		}
		if skdm == nil {
			err := c.update(ctx, func(tx *devicestore.Tx, _ *protocol.Cipher) error {
				var err error
				skdm, err = protocol.NewGroupCipher(tx, c.rand).NewDistribution(ctx, protocol.Address{Name: c.self.AccountID, DeviceID: c.self.DeviceID}, dist)
				return err
			})
			if err != nil {
				return err
			}
		}
		pk, err := c.profileKey(ctx)
		if err != nil {
			return err
		}
		payload, err := content.Marshal(content.Content{SenderKey: &content.SenderKey{Group: id[:], Distribution: skdm}, ProfileKey: pk})
		if err != nil {
			return err
		}
		mac := hmac.New(sha256.New, groupMsgID)
		mac.Write([]byte(m))
		item := devicestore.OutboxItem{MessageID: mac.Sum(nil)[:16], Recipient: m, Payload: payload}
		err = c.tryDeliver(ctx, item)
		if errors.Is(err, ErrNoSuchUser) {
			delete(devices, m) // the account is gone
			continue
		}
		if err != nil {
			return err
		}
		// tryDeliver sent to every device it has a session with now.
		ds, err := c.sessionDevices(ctx, m)
		if err != nil {
			return err
		}
		err = c.store.Update(ctx, func(tx *devicestore.Tx) error {
			for _, d := range ds {
				if err := tx.MarkSenderKeyShared(ctx, id[:], protocol.Address{Name: m, DeviceID: d}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		devices[m] = ds
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// applyGroupOps stores received membership operations. They are taken
// from a member (before or after them) or from our own account: ops are
// not signed, so a member forwarding ops is trusted as one (docs/CLIENT.md).
// The ops' stamps move our clock. Ops new to us that were authored by
// someone else are forwarded to the members this account added: their
// author may not have known those members yet (a change concurrent with
// the addition), and the fold only converges if every member gets every
// op.
func (c *Client) applyGroupOps(ctx context.Context, tx *devicestore.Tx, from protocol.Address, g *content.GroupOps) ([]Event, error) {
	var id [groups.IDSize]byte
	copy(id[:], g.Group)
	log, err := c.groupLog(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	before := log.State()
	ops := make([]groups.Op, 0, len(g.Ops))
	for i, b := range g.Ops {
		op, err := groups.UnmarshalOp(b)
		if err != nil || op.Group != id {
			return []Event{{Kind: EventUndecryptable, ContactAccount: from.Name, Err: fmt.Errorf("%w: group operation %d", ErrProtocol, i)}}, nil
		}
		ops = append(ops, op)
	}
	// Fold a copy first: only a member (before or after) may tell us.
	trial := groups.NewLog(c.cfg.GroupLimit)
	for _, op := range append(log.Ops(), ops...) {
		trial.Add(op)
	}
	if own := from.Name == c.self.AccountID; !own && !before.IsMember(from.Name) && !trial.State().IsMember(from.Name) {
		return []Event{{Kind: EventUndecryptable, ContactAccount: from.Name, Err: fmt.Errorf("%w: group operations from a non-member", ErrNotGroupMember)}}, nil
	}
	var fresh [][]byte
	for i, op := range ops {
		added, err := log.Add(op)
		if err != nil || !added {
			continue
		}
		if _, err := tx.AddGroupOp(ctx, id[:], g.Ops[i]); err != nil {
			return nil, err
		}
		if err := c.observe(ctx, tx, op.Stamp); err != nil {
			return nil, err
		}
		if op.Author != c.self.AccountID {
			fresh = append(fresh, g.Ops[i])
		}
	}
	after := log.State()
	learned := 0
	for _, m := range g.Members {
		if m.Account == c.self.AccountID || !after.IsMember(m.Account) || learned == maxLearn {
			continue
		}
		if _, err := tx.Contact(ctx, m.Account); err == nil {
			continue
		}
		learned++
		if err := c.learnContact(ctx, tx, m.Account, m.Username); err != nil {
			return nil, err
		}
	}
	if len(fresh) > 0 && from.Name != c.self.AccountID {
		if err := c.forwardOps(ctx, tx, id, log, after, from.Name, fresh); err != nil {
			return nil, err
		}
	}
	changes := groups.Diff(before, after)
	if len(changes) == 0 {
		return nil, nil
	}
	if _, err := tx.Conversation(ctx, groupPeer(id)); err != nil {
		return nil, err
	}
	ev := Event{Kind: EventGroupUpdated, Group: hex.EncodeToString(id[:]), GroupName: after.Name, ContactAccount: from.Name}
	for _, ch := range changes {
		ev.GroupChanges = append(ev.GroupChanges, GroupChange{Kind: changeName(ch.Kind), Member: ch.Member, Name: ch.Name})
	}
	return []Event{ev}, nil
}

// forwardOps queues ops to the current members this account added
// (other than the one who sent them). Only the primary device (the one
// whose stamp is on the Add) forwards, so an account's devices do not all
// send the same.
func (c *Client) forwardOps(ctx context.Context, tx *devicestore.Tx, id [groups.IDSize]byte, log *groups.Log, st groups.State, sender string, ops [][]byte) error {
	mine := origin(c.self.AccountID, c.self.DeviceID)
	var to []string
	for _, op := range log.Ops() {
		if op.Kind == groups.Add && op.Author == c.self.AccountID && op.Stamp.Origin == mine &&
			op.Member != sender && st.IsMember(op.Member) && !slices.Contains(to, op.Member) {
			to = append(to, op.Member)
		}
	}
	if len(to) == 0 {
		return nil
	}
	payload, err := content.Marshal(content.Content{GroupOps: &content.GroupOps{Group: id[:], Ops: ops}})
	if err != nil {
		return err
	}
	for _, m := range to {
		tid, err := c.newID()
		if err != nil {
			return err
		}
		if _, err := tx.Enqueue(ctx, devicestore.OutboxItem{MessageID: tid, Recipient: m, Payload: payload}); err != nil {
			return err
		}
	}
	return nil
}

// GroupChange is one change to a group, as EventGroupUpdated reports it.
type GroupChange struct {
	Kind     string // created, renamed, joined, left, admin_granted, admin_revoked
	Member   string // account id (joined, left, admin changes)
	Username string // the member's username, "" if unknown
	Name     string // created, renamed
}

func changeName(k groups.ChangeKind) string {
	switch k {
	case groups.Created:
		return "created"
	case groups.Renamed:
		return "renamed"
	case groups.Joined:
		return "joined"
	case groups.Left:
		return "left"
	case groups.AdminGranted:
		return "admin_granted"
	case groups.AdminRevoked:
		return "admin_revoked"
	}
	return "changed"
}

// applySenderKey stores a member's sender key. It is kept whatever the
// group's state on this device (its operations may still be on the way);
// only messages are checked against membership.
func (c *Client) applySenderKey(ctx context.Context, tx *devicestore.Tx, from protocol.Address, k *content.SenderKey) ([]Event, error) {
	if _, err := protocol.NewGroupCipher(tx, c.rand).ProcessDistribution(ctx, from, k.Distribution); err != nil {
		return []Event{{Kind: EventUndecryptable, ContactAccount: from.Name, Err: err}}, nil
	}
	return nil, nil
}

// processGroupMessage handles a sealed sender-key message: from a
// current member of a group this device knows, decrypted with the
// sender's sender key, stored in the group's conversation.
func (c *Client) processGroupMessage(ctx context.Context, tx *devicestore.Tx, e queuedEnvelope, from protocol.Address, u *protocol.UnidentifiedContent) ([]Event, error) {
	var id [groups.IDSize]byte
	if len(u.GroupID) != len(id) {
		return []Event{{Kind: EventUndecryptable, ContactAccount: from.Name, Err: fmt.Errorf("%w: a group message without a group", ErrProtocol)}}, nil
	}
	copy(id[:], u.GroupID)
	log, err := c.groupLog(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	// A compliance device archives what it can read; it does not know the
	// groups' histories from before the hold.
	if st := log.State(); !st.IsMember(from.Name) && !c.compliance {
		c.noteFailure("not_group_member")
		return []Event{{Kind: EventUndecryptable, ContactAccount: from.Name, Group: hex.EncodeToString(id[:]),
			Err: fmt.Errorf("%w: the sender is not a member of the group", ErrNotGroupMember)}}, nil
	}
	var events []Event
	var decErr error
	err = tx.Savepoint(ctx, func() error {
		pt, err := protocol.NewGroupCipher(tx, c.rand).Decrypt(ctx, from, u.Contents)
		if err != nil {
			decErr = err
			return err
		}
		if err := tx.MarkReceived(ctx, from.Name, e.MessageID); err != nil {
			return err
		}
		ct, err := content.Unmarshal(pt)
		if err == nil && ct.Op != nil && ct.Op.Conversation == groupPeer(id) {
			// An edit, delete or reaction in the group.
			events, err = c.applyReceivedOp(ctx, tx, from, ct.Op)
			return err
		}
		if err == nil && ct.Timer != nil && ct.Timer.Conversation == groupPeer(id) {
			events, err = c.applyTimer(ctx, tx, from, groupPeer(id), ct.Timer)
			return err
		}
		if err != nil || ct.Text == nil || !hmac.Equal(ct.Text.Group, id[:]) {
			events = []Event{{Kind: EventUndecryptable, ContactAccount: from.Name, Err: fmt.Errorf("%w: group content", ErrProtocol)}}
			return nil
		}
		if err := c.learnContact(ctx, tx, from.Name, ct.Text.SenderUsername); err != nil {
			return err
		}
		t := ct.Text
		events, err = c.store1(ctx, tx, groupPeer(id), devicestore.Message{Sender: from.Name, SenderDevice: from.DeviceID,
			MessageID: t.ID, Body: []byte(t.Body), SentAt: time.UnixMilli(t.SentAt), Status: devicestore.Incoming,
			Counter: t.Counter, Origin: origin(from.Name, from.DeviceID)})
		return err
	})
	switch {
	case err == nil:
		return events, nil
	case decErr == nil:
		return nil, err
	case errors.Is(decErr, protocol.ErrDuplicateMessage):
		return nil, nil
	}
	reason := decryptReason(decErr)
	if errors.Is(decErr, protocol.ErrNoSenderKey) {
		reason = "no_sender_key"
	}
	c.noteFailure(reason)
	c.log.Info("undecryptable group message", "reason", reason)
	return []Event{{Kind: EventUndecryptable, ContactAccount: from.Name, Group: hex.EncodeToString(id[:]), Err: decErr}}, nil
}
