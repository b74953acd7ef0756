package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/client/internal/content"
	"github.com/veil-e2ee/veil/client/internal/converge"
	"github.com/veil-e2ee/veil/protocol"
)

// Disappearing messages: each conversation has a timer, set by any
// participant and synced to every device of every participant; a message
// stored while it is on disappears that long after it was stored (sent,
// or received on that device), from the database, the search index and
// every other copy on the device. docs/CLIENT.md ("Disappearing
// messages").

// MaxDisappearing is the longest timer.
const MaxDisappearing = content.MaxTimer * time.Second

// conversationKey is the conversation a username or group id names: a
// group this device knows, else a contact (no server lookup: searching
// or setting a timer never reveals whom to the server).
func (c *Client) conversationKey(ctx context.Context, conversation string) (string, error) {
	if id, err := parseGroupID(conversation); err == nil {
		if _, err := c.Group(ctx, conversation); err == nil {
			return groupPeer(id), nil
		} else if !errors.Is(err, ErrNoSuchGroup) {
			return "", err
		}
	}
	if !ValidUsername(conversation) {
		return "", &noContactError{conversation}
	}
	ct, err := c.store.ContactByUsername(ctx, conversation)
	if err != nil {
		return "", notContact(err, conversation)
	}
	return ct.AccountID, nil
}

// SetDisappearing sets the disappearing-messages timer of the
// conversation with a user (username) or of a group (its id): messages
// stored from now on vanish d after they are stored, on every device of
// every participant. 0 turns it off (messages already timed still go).
// d is rounded to whole seconds.
func (c *Client) SetDisappearing(ctx context.Context, conversation string, d time.Duration) error {
	if d < 0 || d > MaxDisappearing || (d > 0 && d < time.Second) {
		return fmt.Errorf("%w: a timer is 0 (off) or 1 s to %v", ErrInvalidArgument, MaxDisappearing)
	}
	key, err := c.conversationKey(ctx, conversation)
	if err != nil {
		return err
	}
	if strings.HasPrefix(key, groupPrefix) {
		g, err := c.Group(ctx, conversation)
		if err != nil {
			return err
		}
		if !g.Member {
			return ErrNotGroupMember
		}
	} else if err := c.checkIdentity(ctx, key); err != nil {
		return err
	}
	var ids [][]byte
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error {
		st, err := c.stamp(ctx, tx)
		if err != nil {
			return err
		}
		t := content.Timer{Conversation: key, Seconds: uint32(d / time.Second), Time: st.Time, Counter: st.Counter}
		if _, err := c.setTimer(ctx, tx, key, t, st.Origin); err != nil {
			return err
		}
		payload, err := content.Marshal(content.Content{Timer: &t})
		if err != nil {
			return err
		}
		ids, err = c.enqueueBoth(ctx, tx, key, payload)
		return err
	})
	if err != nil {
		return err
	}
	if err := c.flush(ctx, ids); err != nil {
		c.log.Info("timer change queued", "reason", errorCode(err))
	}
	return nil
}

// Disappearing returns the timer of a conversation (0: off).
func (c *Client) Disappearing(ctx context.Context, conversation string) (time.Duration, error) {
	key, err := c.conversationKey(ctx, conversation)
	if err != nil {
		return 0, err
	}
	t, err := c.store.ConversationTimer(ctx, key)
	return time.Duration(t.Seconds) * time.Second, err
}

// setTimer stores a timer if its stamp is greater than the stored one's
// (last writer wins, the same on every device); it reports whether it
// did.
func (c *Client) setTimer(ctx context.Context, tx *devicestore.Tx, key string, t content.Timer, origin string) (bool, error) {
	cur, err := tx.ConversationTimer(ctx, key)
	if err != nil {
		return false, err
	}
	in := converge.Stamp{Time: t.Time, Counter: t.Counter, Origin: origin}
	if cur.Origin != "" && in.Compare(converge.Stamp{Time: cur.Time, Counter: cur.Counter, Origin: cur.Origin}) <= 0 {
		return false, nil
	}
	return true, tx.SetConversationTimer(ctx, key, devicestore.Timer{Seconds: t.Seconds, Time: t.Time, Counter: t.Counter, Origin: origin})
}

// applyTimer takes a timer from a participant (or our own device) for
// the conversation key.
func (c *Client) applyTimer(ctx context.Context, tx *devicestore.Tx, from protocol.Address, key string, t *content.Timer) ([]Event, error) {
	st := converge.Stamp{Time: t.Time, Counter: t.Counter, Origin: origin(from.Name, from.DeviceID)}
	if err := c.observe(ctx, tx, st); err != nil {
		return nil, err
	}
	changed, err := c.setTimer(ctx, tx, key, *t, st.Origin)
	if err != nil || !changed {
		return nil, err
	}
	if _, err := tx.Conversation(ctx, key); err != nil {
		return nil, err
	}
	ev := Event{Kind: EventTimerChanged, Timer: time.Duration(t.Seconds) * time.Second, ContactAccount: from.Name}
	if strings.HasPrefix(key, groupPrefix) {
		ev.Group = strings.TrimPrefix(key, groupPrefix)
	} else if from.Name == c.self.AccountID {
		ev.ContactAccount = key
	}
	return []Event{ev}, nil
}

// expiresAt is when a message stored now at base in the conversation key
// disappears (zero: never).
func (c *Client) expiresAt(ctx context.Context, tx *devicestore.Tx, key string, base time.Time) (time.Time, error) {
	t, err := tx.ConversationTimer(ctx, key)
	if err != nil || t.Seconds == 0 {
		return time.Time{}, err
	}
	return base.Add(time.Duration(t.Seconds) * time.Second), nil
}

// ExpireMessages removes the messages whose time is up, with every copy
// of their text on this device, now. Receive does it as messages arrive,
// and reading a conversation does it first.
func (c *Client) ExpireMessages(ctx context.Context) (int, error) {
	next, err := c.store.NextExpiry(ctx)
	if err != nil || next.IsZero() || next.After(c.now()) {
		return 0, err
	}
	var n int
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error {
		var err error
		n, err = tx.Expire(ctx, c.now())
		return err
	})
	if err == nil && n > 0 {
		c.checkpoint(ctx)
	}
	return n, err
}

// checkpoint moves the WAL into the database file after removals, so
// removed text does not linger in the WAL (secure_delete has overwritten
// it in the pages).
func (c *Client) checkpoint(ctx context.Context) {
	if err := c.store.Checkpoint(ctx); err != nil {
		c.log.Warn("checkpoint after removing messages failed", "reason", errorCode(err))
	}
}
