package client

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/veil-e2ee/veil/client/devicestore"
)

// Status is the delivery state of an outgoing message.
type Status = devicestore.Status

// Delivery states.
const (
	Incoming = devicestore.Incoming
	Queued   = devicestore.Queued
	Sent     = devicestore.Sent
	Failed   = devicestore.Failed
)

// Message is one message of a conversation.
type Message struct {
	ID             int64  // local id: increasing in the order this device stored messages
	ConversationID int64  // the conversation (one per contact)
	Peer           string // the contact's username ("" if unknown) …
	PeerAccount    string // … and account id
	Outgoing       bool   // sent by this account (from this or another of its devices)
	SenderDevice   uint32
	Body           string
	SentAt         time.Time // the sender's clock
	ReceivedAt     time.Time // when this device stored it
	Status         Status
	Edited         bool              // the text was edited by its sender
	Deleted        bool              // deleted for everyone: Body is empty
	Reactions      map[string]string // username (account id if unknown) → emoji
	// Group is the group's id for a group message ("" for 1:1); then
	// Peer and PeerAccount name the message's sender (this account for
	// Outgoing).
	Group string
}

// Conversation is the conversation with one contact.
type Conversation struct {
	ID           int64
	Peer         string // username ("" if unknown)
	PeerAccount  string // or "g:" and the group id for a group
	LastActivity time.Time
	// Holds are the legal holds on its participants (this account
	// included): while there are any, show each one's Notice in the
	// conversation, always.
	Holds []LegalHold
}

// Conversations lists the conversations, most recent first.
func (c *Client) Conversations(ctx context.Context) ([]Conversation, error) {
	cs, err := c.store.Conversations(ctx)
	if err != nil {
		return nil, err
	}
	names, err := c.usernames(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Conversation, 0, len(cs))
	hs, err := c.store.Holds(ctx)
	if err != nil {
		return nil, err
	}
	holds := c.namedHolds(hs, names)
	for _, cv := range cs {
		conv := Conversation{ID: cv.ID, Peer: names[cv.Peer], PeerAccount: cv.Peer, LastActivity: cv.LastActivityAt}
		switch {
		case len(holds) == 0:
		case strings.HasPrefix(cv.Peer, groupPrefix):
			g, err := c.Group(ctx, cv.Peer)
			if err != nil && !errors.Is(err, ErrNoSuchGroup) {
				return nil, err
			}
			conv.Holds = g.Holds
		default:
			conv.Holds = onlyWith(holds, cv.Peer)
		}
		out = append(out, conv)
	}
	return out, nil
}

// Messages returns up to limit messages of the conversation with a
// contact, oldest first, with local ids above after (0 for the start):
// pass the last id seen to page on.
func (c *Client) Messages(ctx context.Context, username string, after int64, limit int) ([]Message, error) {
	if !ValidUsername(username) {
		return nil, &noContactError{username}
	}
	ct, err := c.store.ContactByUsername(ctx, username)
	if err != nil {
		return nil, notContact(err, username)
	}
	if _, err := c.ExpireMessages(ctx); err != nil {
		return nil, err
	}
	var conv int64
	cs, err := c.store.Conversations(ctx)
	if err != nil {
		return nil, err
	}
	for _, cv := range cs {
		if cv.Peer == ct.AccountID {
			conv = cv.ID
		}
	}
	if conv == 0 {
		return nil, nil // no conversation yet
	}
	ms, err := c.store.Messages(ctx, conv, after, max(limit, 1))
	if err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(ms))
	for _, m := range ms {
		msg := c.toMessage(m, ct.AccountID, ct.Username)
		if msg.Reactions, err = c.reactions(ctx, c.store.Reactions, m); err != nil {
			return nil, err
		}
		out = append(out, msg)
	}
	return out, nil
}

func notContact(err error, username string) error {
	if err == nil {
		return nil
	}
	if errorsIsNotFound(err) {
		return &noContactError{username}
	}
	return err
}

type noContactError struct{ username string }

func (e *noContactError) Error() string {
	return "client: no such user: " + e.username + " is not a contact"
}
func (e *noContactError) Unwrap() error { return ErrNoSuchUser }

// message loads one stored message.
func (c *Client) message(ctx context.Context, local int64) (Message, error) {
	m, err := c.store.Message(ctx, local)
	if err != nil {
		return Message{}, err
	}
	return c.storedMessage(ctx, m)
}

func (c *Client) storedMessage(ctx context.Context, m devicestore.Message) (Message, error) {
	conv, err := c.store.ConversationPeer(ctx, m.ConversationID)
	if err != nil {
		return Message{}, err
	}
	peer := m.Sender
	if m.Outgoing && !strings.HasPrefix(conv, groupPrefix) {
		peer = conv
	}
	name := ""
	if ct, err := c.store.Contact(ctx, peer); err == nil {
		name = ct.Username
	} else if peer == c.self.AccountID {
		name = c.self.Username
	}
	msg := c.toMessage(m, peer, name)
	if strings.HasPrefix(conv, groupPrefix) {
		msg.Group = strings.TrimPrefix(conv, groupPrefix)
	}
	reactions, err := c.reactions(ctx, c.store.Reactions, m)
	msg.Reactions = reactions
	return msg, err
}

func (c *Client) toMessage(m devicestore.Message, peerAccount, peer string) Message {
	return Message{ID: m.ID, ConversationID: m.ConversationID, Peer: peer, PeerAccount: peerAccount, Outgoing: m.Outgoing,
		SenderDevice: m.SenderDevice, Body: string(m.Body), SentAt: m.SentAt, ReceivedAt: m.ReceivedAt, Status: m.Status,
		Edited: m.Edited, Deleted: m.Deleted}
}

// usernames maps account ids to usernames for every contact.
func (c *Client) usernames(ctx context.Context) (map[string]string, error) {
	cs, err := c.store.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(cs))
	for _, ct := range cs {
		m[ct.AccountID] = ct.Username
	}
	return m, nil
}
