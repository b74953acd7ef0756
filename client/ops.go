package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/client/internal/content"
	"github.com/veil-e2ee/veil/client/internal/converge"
	"github.com/veil-e2ee/veil/protocol"
)

// Edits, deletes for everyone, reactions and read markers. Each is an
// operation with a hybrid-clock stamp, sent to the conversation's peer
// and to this account's other devices, and merged on every device by the
// rule in client/internal/converge, so all devices of all participants
// end in the same state whatever order operations arrive in.

const (
	setHLCTime    = "hlc_time"
	setHLCCounter = "hlc_counter"
)

func origin(account string, device uint32) string { return fmt.Sprintf("%s.%d", account, device) }

// clock loads this device's hybrid logical clock.
func (c *Client) clock(ctx context.Context, tx *devicestore.Tx) (*converge.Clock, error) {
	t, _, err := tx.Setting(ctx, setHLCTime)
	if err != nil {
		return nil, err
	}
	n, _, err := tx.Setting(ctx, setHLCCounter)
	if err != nil {
		return nil, err
	}
	return &converge.Clock{Last: converge.Stamp{Time: t, Counter: uint32(n)}, Origin: origin(c.self.AccountID, c.self.DeviceID)}, nil
}

func saveClock(ctx context.Context, tx *devicestore.Tx, clk *converge.Clock) error {
	if err := tx.SetSetting(ctx, setHLCTime, clk.Last.Time); err != nil {
		return err
	}
	return tx.SetSetting(ctx, setHLCCounter, int64(clk.Last.Counter))
}

// stamp issues a stamp for a local operation.
func (c *Client) stamp(ctx context.Context, tx *devicestore.Tx) (converge.Stamp, error) {
	clk, err := c.clock(ctx, tx)
	if err != nil {
		return converge.Stamp{}, err
	}
	s := clk.Now(c.now().UnixMilli())
	return s, saveClock(ctx, tx, clk)
}

// observe moves this device's clock past a received stamp. Stamps far in
// the future (a peer's broken clock) are not followed beyond a day, so
// one bad clock cannot drag ours along forever.
func (c *Client) observe(ctx context.Context, tx *devicestore.Tx, s converge.Stamp) error {
	if s.Time > c.now().Add(24*time.Hour).UnixMilli() {
		return nil
	}
	clk, err := c.clock(ctx, tx)
	if err != nil {
		return err
	}
	before := clk.Last
	clk.Observe(s)
	if clk.Last == before {
		return nil
	}
	return saveClock(ctx, tx, clk)
}

// mergePending applies the operations that arrived before a message,
// once it is stored.
func (c *Client) mergePending(ctx context.Context, tx *devicestore.Tx, sender string, messageID []byte) error {
	ops, err := tx.Ops(ctx, sender, messageID)
	if err != nil || len(ops) == 0 {
		return err
	}
	id, st, err := tx.MessageState(ctx, sender, messageID)
	if err != nil {
		return err
	}
	for _, op := range ops {
		st.Apply(op)
	}
	return tx.SaveMessageState(ctx, id, messageID, st)
}

// applyOp records a received or local operation and merges it into its
// message if that is stored. It returns the message's local id when the
// visible state changed (0 otherwise).
func (c *Client) applyOp(ctx context.Context, tx *devicestore.Tx, sender string, messageID []byte, op converge.Op) (int64, error) {
	fresh, err := tx.AddOp(ctx, sender, messageID, op)
	if err != nil || !fresh {
		return 0, err
	}
	id, st, err := tx.MessageState(ctx, sender, messageID)
	if errors.Is(err, devicestore.ErrNotFound) {
		return 0, nil // kept until the message arrives
	}
	if err != nil {
		return 0, err
	}
	if !st.Apply(op) {
		return 0, nil
	}
	if err := tx.SaveMessageState(ctx, id, messageID, st); err != nil {
		return 0, err
	}
	if op.Kind == converge.Delete && st.View().Deleted {
		// Deleted for everyone: no copy of its text stays behind.
		return id, tx.PurgeCopies(ctx, id)
	}
	return id, nil
}

// Edit replaces the text of one of this account's messages, for everyone.
func (c *Client) Edit(ctx context.Context, messageID int64, text string) (Message, error) {
	if len(text) == 0 || len(text) > MaxTextBytes || !utf8.ValidString(text) {
		return Message{}, fmt.Errorf("%w: a message is 1 to %d bytes of UTF-8 text", ErrInvalidArgument, MaxTextBytes)
	}
	return c.operate(ctx, messageID, content.OpEdit, text, "")
}

// Delete deletes one of this account's messages for everyone: every
// device of both sides removes its text. A delete cannot be undone.
func (c *Client) Delete(ctx context.Context, messageID int64) (Message, error) {
	return c.operate(ctx, messageID, content.OpDelete, "", "")
}

// React sets this account's reaction to a message ("" removes it).
func (c *Client) React(ctx context.Context, messageID int64, emoji string) (Message, error) {
	if len(emoji) > content.MaxEmoji || !utf8.ValidString(emoji) {
		return Message{}, fmt.Errorf("%w: a reaction is at most %d bytes of UTF-8", ErrInvalidArgument, content.MaxEmoji)
	}
	return c.operate(ctx, messageID, content.OpReact, "", emoji)
}

func (c *Client) operate(ctx context.Context, localID int64, kind uint32, body, emoji string) (Message, error) {
	m, err := c.store.Message(ctx, localID)
	if errors.Is(err, devicestore.ErrNotFound) {
		return Message{}, fmt.Errorf("%w: no message %d", ErrInvalidArgument, localID)
	}
	if err != nil {
		return Message{}, err
	}
	if kind != content.OpReact && !m.Outgoing {
		return Message{}, fmt.Errorf("%w: only your own messages can be edited or deleted", ErrInvalidArgument)
	}
	if m.Deleted {
		return Message{}, fmt.Errorf("%w: message %d was deleted", ErrInvalidArgument, localID)
	}
	peer, err := c.store.ConversationPeer(ctx, m.ConversationID)
	if err != nil {
		return Message{}, err
	}
	if !strings.HasPrefix(peer, groupPrefix) { // a group send checks each member
		if err := c.checkIdentity(ctx, peer); err != nil {
			return Message{}, err
		}
	}
	var ids [][]byte
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error {
		st, err := c.stamp(ctx, tx)
		if err != nil {
			return err
		}
		op := converge.Op{Kind: converge.Kind(kind), Author: c.self.AccountID, Stamp: st, Body: body, Emoji: emoji}
		if _, err := c.applyOp(ctx, tx, m.Sender, m.MessageID, op); err != nil {
			return err
		}
		payload, err := content.Marshal(content.Content{Op: &content.Op{Kind: kind, TargetSender: m.Sender, TargetID: m.MessageID,
			Body: body, Emoji: emoji, Time: st.Time, Counter: st.Counter, Conversation: peer}})
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidArgument, err)
		}
		about := int64(0)
		if kind == content.OpEdit {
			about = localID // the payload carries the message's new text
		}
		ids, err = c.enqueueAbout(ctx, tx, peer, payload, about)
		return err
	})
	if err != nil {
		return Message{}, err
	}
	if err := c.flush(ctx, ids); err != nil && !errors.Is(err, ErrUnreachable) {
		var ice *IdentityChangedError
		if errors.As(err, &ice) {
			return Message{}, err
		}
		c.log.Info("operation queued", "reason", errorCode(err))
	}
	return c.message(ctx, localID)
}

// enqueueBoth queues a payload for a peer account and for this
// account's other devices.
func (c *Client) enqueueBoth(ctx context.Context, tx *devicestore.Tx, peer string, payload []byte) ([][]byte, error) {
	return c.enqueueAbout(ctx, tx, peer, payload, 0)
}

// enqueueAbout is enqueueBoth for a payload that carries the text of
// local message about (0: none).
func (c *Client) enqueueAbout(ctx context.Context, tx *devicestore.Tx, peer string, payload []byte, about int64) ([][]byte, error) {
	var ids [][]byte
	for _, to := range []string{peer, c.self.AccountID} {
		id, err := c.newID()
		if err != nil {
			return nil, err
		}
		if _, err := tx.Enqueue(ctx, devicestore.OutboxItem{MessageID: id, Recipient: to, Payload: payload, About: about}); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// MarkRead marks the conversation with a contact read up to now, on this
// device and (synced) on this account's other devices.
func (c *Client) MarkRead(ctx context.Context, username string) error {
	ct, err := c.store.ContactByUsername(ctx, username)
	if err != nil || !ValidUsername(username) {
		return notContact(errors.Join(err, devicestore.ErrNotFound), username)
	}
	var id []byte
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error {
		st, err := c.stamp(ctx, tx)
		if err != nil {
			return err
		}
		if _, err := tx.AdvanceReadMarker(ctx, ct.AccountID, st); err != nil {
			return err
		}
		payload, err := content.Marshal(content.Content{Read: &content.Read{Conversation: ct.AccountID, Time: st.Time, Counter: st.Counter}})
		if err != nil {
			return err
		}
		if id, err = c.newID(); err != nil {
			return err
		}
		_, err = tx.Enqueue(ctx, devicestore.OutboxItem{MessageID: id, Recipient: c.self.AccountID, Payload: payload})
		return err
	})
	if err != nil {
		return err
	}
	if err := c.flush(ctx, [][]byte{id}); err != nil && !errors.Is(err, ErrUnreachable) {
		return err
	}
	return nil
}

// applyReceivedOp handles an Op content from a peer or from one of our
// devices.
func (c *Client) applyReceivedOp(ctx context.Context, tx *devicestore.Tx, from protocol.Address, o *content.Op) ([]Event, error) {
	st := converge.Stamp{Time: o.Time, Counter: o.Counter, Origin: origin(from.Name, from.DeviceID)}
	if err := c.observe(ctx, tx, st); err != nil {
		return nil, err
	}
	op := converge.Op{Kind: converge.Kind(o.Kind), Author: from.Name, Stamp: st, Body: o.Body, Emoji: o.Emoji}
	id, err := c.applyOp(ctx, tx, o.TargetSender, o.TargetID, op)
	if err != nil || id == 0 {
		return nil, err
	}
	m, err := tx.Message(ctx, id)
	if err != nil {
		return nil, err
	}
	peer := m.Sender
	if m.Outgoing {
		if peer, err = tx.ConversationPeer(ctx, m.ConversationID); err != nil {
			return nil, err
		}
	}
	return c.messageEvent(ctx, tx, EventMessageUpdated, m, peer)
}

// applyReceivedRead advances a read marker synced from another of our
// devices.
func (c *Client) applyReceivedRead(ctx context.Context, tx *devicestore.Tx, from protocol.Address, r *content.Read) error {
	st := converge.Stamp{Time: r.Time, Counter: r.Counter, Origin: origin(from.Name, from.DeviceID)}
	if err := c.observe(ctx, tx, st); err != nil {
		return err
	}
	_, err := tx.AdvanceReadMarker(ctx, r.Conversation, st)
	return err
}

// reactions maps a message's reactions to usernames (account ids for
// unknown reactors).
func (c *Client) reactions(ctx context.Context, load func(context.Context, string, []byte) (map[string]string, error), m devicestore.Message) (map[string]string, error) {
	rs, err := load(ctx, m.Sender, m.MessageID)
	if err != nil || len(rs) == 0 {
		return nil, err
	}
	names, err := c.usernames(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for who, e := range rs {
		switch {
		case who == c.self.AccountID:
			out[c.self.Username] = e
		case names[who] != "":
			out[names[who]] = e
		default:
			out[who] = e
		}
	}
	return out, nil
}
