package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/veil-e2ee/veil/client/devicestore"
	"github.com/veil-e2ee/veil/client/internal/content"
	"github.com/veil-e2ee/veil/client/internal/converge"
	"github.com/veil-e2ee/veil/protocol"
)

// EventKind says what an Event is.
type EventKind int

const (
	// EventMessage: a new message — from a contact, or sent by another
	// device of this account (Message.Outgoing).
	EventMessage EventKind = iota + 1
	// EventIdentityChanged: a contact's identity key changed (their
	// message arrived under a new key). Messages from them are received;
	// sending to them waits until the user accepts the new key.
	EventIdentityChanged
	// EventUndecryptable: a message could not be decrypted. The session
	// with that device was reset and the sender asked to send it again;
	// it normally arrives moments later as an EventMessage.
	EventUndecryptable
	// EventQueueEmpty: every message that was waiting on the server when
	// the connection opened has been processed.
	EventQueueEmpty
	// EventMessageUpdated: a stored message was edited, deleted for
	// everyone or reacted to (Message is its new state).
	EventMessageUpdated
	// EventGroupUpdated: a group was created, renamed or its members or
	// admins changed (Group, GroupName, GroupChanges).
	EventGroupUpdated
	// EventTimerChanged: someone set a conversation's disappearing-
	// messages timer (Timer; Contact or Group says which conversation).
	EventTimerChanged
	// EventLegalHold: an account this device talks to (or its own) is
	// now under a disclosed legal hold (Hold): show it in every
	// conversation with that account (ConversationHolds).
	EventLegalHold
	// EventLegalHoldLifted: a legal hold ended (Hold).
	EventLegalHoldLifted
)

func (k EventKind) String() string {
	switch k {
	case EventMessage:
		return "message"
	case EventIdentityChanged:
		return "identity_changed"
	case EventUndecryptable:
		return "undecryptable"
	case EventQueueEmpty:
		return "queue_empty"
	case EventMessageUpdated:
		return "message_updated"
	case EventGroupUpdated:
		return "group_updated"
	case EventTimerChanged:
		return "timer_changed"
	case EventLegalHold:
		return "legal_hold"
	case EventLegalHoldLifted:
		return "legal_hold_lifted"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one thing Receive reports.
type Event struct {
	Kind    EventKind
	Message Message // EventMessage
	// Contact is the username ("" if unknown) and account id of the peer
	// concerned (all kinds but EventQueueEmpty).
	Contact, ContactAccount string
	// SafetyNumber is the new safety number (EventIdentityChanged).
	SafetyNumber string
	// Err says why a message was undecryptable (EventUndecryptable).
	Err error
	// Timer is a conversation's new disappearing-messages timer
	// (EventTimerChanged; 0: off).
	Timer time.Duration
	// Group is the group's id for group messages and EventGroupUpdated;
	// GroupName and GroupChanges describe an EventGroupUpdated.
	Group        string
	GroupName    string
	GroupChanges []GroupChange
	// Hold is the legal hold of EventLegalHold and EventLegalHoldLifted.
	Hold *LegalHold
}

// ReceiveOptions tune Receive.
type ReceiveOptions struct {
	// Once: stop after the queue is drained (EventQueueEmpty is the last
	// event) instead of waiting for more.
	Once bool
}

const (
	maintainEvery   = time.Hour
	flushEvery      = 5 * time.Second
	resetMinGap     = time.Minute
	maxFrame        = 1 << 20
	prekeyMsgsCheck = 20  // PreKey messages received before prekey counts are checked again
	maxBatch        = 256 // envelopes committed in one transaction (the server's in-flight bound)
)

var errStopped = errors.New("client: receive stopped")

// Receive connects this device's message stream and yields events as
// envelopes arrive. Each envelope is decrypted and its message stored in
// one transaction with the new ratchet state, acknowledged to the server
// only after that commits, and then yielded: breaking out of the loop
// loses nothing. Redeliveries (after a crash before an ack) yield
// nothing new. While it runs, Receive also sends what the outbox holds
// and keeps prekeys stocked.
//
// Without Once, a lost connection is re-established with backoff and
// the sequence ends only when ctx ends (no error) or on ErrReplaced,
// ErrDeviceRemoved or ErrClosed (yielded last). With Once, it ends after
// EventQueueEmpty, and a connection failure is yielded.
func (c *Client) Receive(ctx context.Context, opts ReceiveOptions) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		failures := 0
		for {
			err := c.receiveOnce(ctx, opts, yield)
			switch {
			case err == nil, errors.Is(err, errStopped), ctx.Err() != nil:
				return
			case errors.Is(err, ErrReplaced), errors.Is(err, ErrDeviceRemoved), errors.Is(err, ErrClosed), opts.Once:
				yield(Event{}, err)
				return
			}
			failures++
			d := backoff(failures - 1)
			c.log.Info("message stream lost; reconnecting", "reason", errorCode(err), "in", d)
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
		}
	}
}

type frame struct {
	Type     string         `json:"type"`
	Envelope queuedEnvelope `json:"envelope"`
}

// receiveOnce runs one WebSocket connection. It returns nil when Once
// finished, errStopped when the caller stopped iterating.
func (c *Client) receiveOnce(ctx context.Context, opts ReceiveOptions, yield func(Event, error) bool) error {
	if c.isClosed() {
		return ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h := http.Header{}
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth(c.api.user, c.api.cred)
	h.Set("Authorization", req.Header.Get("Authorization"))
	wsURL := "ws" + strings.TrimPrefix(c.api.url("/v1/queue/websocket"), "http")
	conn, resp, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPHeader: h, HTTPClient: c.cfg.HTTPClient})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			return ErrDeviceRemoved
		}
		return fmt.Errorf("%w: %v", ErrUnreachable, redactURL(err))
	}
	defer conn.CloseNow()
	conn.SetReadLimit(maxFrame)

	frames := make(chan frame, maxBatch)
	readErr := make(chan error, 1)
	go func() {
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				readErr <- err
				return
			}
			var f frame
			if err := json.Unmarshal(data, &f); err != nil {
				readErr <- fmt.Errorf("%w: frame: %v", ErrProtocol, err)
				return
			}
			select {
			case frames <- f:
			case <-ctx.Done():
				return
			}
		}
	}()

	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	var lastMaintain time.Time
	prekeyMsgs := 0
	var holdEvents []Event
	removed := false // the server no longer knows this device's credential
	housekeeping := func(force bool) {
		if err := c.Flush(ctx); err != nil && ctx.Err() == nil {
			c.log.Info("outbox not drained", "reason", errorCode(err))
		}
		// A compliance device checks every tick: lifting its hold removes
		// it, and it must stop then.
		if force || c.holdsDue() || c.compliance {
			evs, err := c.RefreshHolds(ctx)
			if isCode(err, "unauthorized") {
				removed = true
			} else if err != nil && ctx.Err() == nil {
				c.log.Info("legal holds not checked", "reason", errorCode(err))
			}
			holdEvents = append(holdEvents, evs...)
		}
		c.reportFailures(ctx)
		if force || prekeyMsgs >= prekeyMsgsCheck || time.Since(lastMaintain) >= maintainEvery {
			if _, err := c.MaintainKeys(ctx); err != nil && ctx.Err() == nil {
				c.log.Warn("key maintenance failed", "reason", errorCode(err))
			} else {
				lastMaintain, prekeyMsgs = time.Now(), 0
			}
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			switch websocket.CloseStatus(err) {
			case 4000:
				return ErrReplaced
			case 4001:
				return ErrDeviceRemoved
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%w: %v", ErrUnreachable, err)
		case <-tick.C:
			if c.isClosed() {
				return ErrClosed
			}
			housekeeping(false)
			if removed {
				return ErrDeviceRemoved
			}
			if !yieldAll(&holdEvents, yield) {
				conn.Close(websocket.StatusNormalClosure, "")
				return errStopped
			}
		case f := <-frames:
			// Take every envelope already here: they are committed in one
			// transaction (one fsync), each in its own savepoint.
			var batch []queuedEnvelope
			var next *frame
			for f.Type == "envelope" {
				batch = append(batch, f.Envelope)
				if len(batch) == maxBatch {
					break
				}
				select {
				case g := <-frames:
					f = g
					continue
				default:
				}
				break
			}
			if f.Type != "envelope" {
				next = &f
			}
			if len(batch) > 0 {
				for _, e := range batch {
					if protocol.MessageType(e.Type) == protocol.PreKeyMessageType {
						prekeyMsgs++
					}
				}
				events, err := c.processBatch(ctx, batch)
				if err != nil {
					return err // not acked: they come again on the next connection
				}
				// Ack the whole batch before yielding, so a caller that
				// stops early leaves nothing committed but unacked.
				for _, e := range batch {
					testHook("committed")
					ack, _ := json.Marshal(map[string]any{"type": "ack", "seq": e.Seq})
					if err := conn.Write(ctx, websocket.MessageText, ack); err != nil {
						return fmt.Errorf("%w: %v", ErrUnreachable, err)
					}
					testHook("acked")
				}
				for _, evs := range events {
					for _, ev := range evs {
						if !yield(ev, nil) {
							conn.Close(websocket.StatusNormalClosure, "")
							return errStopped
						}
					}
				}
			}
			if next != nil && next.Type == "queue_empty" {
				housekeeping(lastMaintain.IsZero())
				if removed {
					return ErrDeviceRemoved
				}
				if !yieldAll(&holdEvents, yield) || !yield(Event{Kind: EventQueueEmpty}, nil) {
					conn.Close(websocket.StatusNormalClosure, "")
					return errStopped
				}
				if opts.Once {
					conn.Close(websocket.StatusNormalClosure, "")
					return nil
				}
			}
		}
	}
}

// yieldAll yields and empties pending; false when the caller stopped.
func yieldAll(pending *[]Event, yield func(Event, error) bool) bool {
	for len(*pending) > 0 {
		ev := (*pending)[0]
		*pending = (*pending)[1:]
		if !yield(ev, nil) {
			return false
		}
	}
	return true
}

// processBatch decrypts envelopes and stores what they say, in one
// transaction, each envelope in its own savepoint. It returns the events
// to report for each envelope; an error means none may be acknowledged
// (storage or network trouble): they are processed again later.
func (c *Client) processBatch(ctx context.Context, batch []queuedEnvelope) ([][]Event, error) {
	events := make([][]Event, len(batch))
	expired := 0
	err := c.update(ctx, func(tx *devicestore.Tx, cipher *protocol.Cipher) error {
		var err error
		if expired, err = tx.Expire(ctx, c.now()); err != nil {
			return err
		}
		for i, e := range batch {
			evs, err := c.process(ctx, tx, cipher, e)
			if err != nil {
				return err
			}
			events[i] = evs
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if expired > 0 {
		c.checkpoint(ctx)
	}
	for i := range events {
		events[i] = c.named(ctx, events[i])
	}
	return events, nil
}

// process handles one envelope inside the batch's transaction.
func (c *Client) process(ctx context.Context, tx *devicestore.Tx, cipher *protocol.Cipher, e queuedEnvelope) ([]Event, error) {
	if e.Type == envelopeSealed {
		u, from, err := c.unseal(ctx, tx, cipher, e.Content)
		if err != nil {
			// Nobody to ask again: the sender is inside what failed.
			c.noteFailure(sealedReason(err))
			c.log.Info("sealed message dropped", "reason", sealedReason(err))
			return []Event{{Kind: EventUndecryptable, Err: err}}, nil
		}
		switch u.Type {
		case protocol.SenderKeyMessageType:
			return c.processGroupMessage(ctx, tx, e, from, u)
		case protocol.PreKeyMessageType, protocol.SignalMessageType:
			e.Type, e.Content = uint8(u.Type), u.Contents
			e.Sender, e.SenderDevice = from.Name, from.DeviceID
		default:
			return []Event{{Kind: EventUndecryptable, ContactAccount: from.Name, Err: fmt.Errorf("%w: sealed content type %d", protocol.ErrInvalidMessage, u.Type)}}, nil
		}
	}
	if e.Sender == "" || e.SenderDevice == 0 {
		return []Event{{Kind: EventUndecryptable, Err: errors.New("an envelope without a sender that is not sealed")}}, nil
	}
	if e.Sender == c.self.AccountID {
		c.setAlone(0) // another device of ours exists
	}
	from := protocol.Address{Name: e.Sender, DeviceID: e.SenderDevice}
	var (
		events []Event
		decErr error
	)
	err := tx.Savepoint(ctx, func() error {
		// Only a PreKey message can bring a new identity key.
		preKey := protocol.MessageType(e.Type) == protocol.PreKeyMessageType
		var before devicestore.IdentityRecord
		if preKey {
			before, _ = tx.IdentityRecord(ctx, from.Name)
		}
		pt, err := cipher.Decrypt(ctx, from, protocol.CiphertextMessage{Type: protocol.MessageType(e.Type), Body: e.Content})
		if err != nil {
			decErr = err
			return err
		}
		testHook("decrypted")
		if err := tx.MarkReceived(ctx, from.Name, e.MessageID); err != nil {
			return err
		}
		if preKey && before.Name != "" && from.Name != c.self.AccountID {
			if after, err := tx.IdentityRecord(ctx, from.Name); err == nil && !after.Key.Equal(before.Key) {
				ev := Event{Kind: EventIdentityChanged, ContactAccount: from.Name}
				if sn, err := c.safetyNumber(from.Name, after.Key); err == nil {
					ev.SafetyNumber = sn.String()
				}
				events = append(events, ev)
			}
		}
		more, err := c.apply(ctx, tx, from, e, pt)
		events = append(events, more...)
		return err
	})
	switch {
	case err == nil:
		return events, nil
	case decErr == nil:
		return nil, err // storage or network trouble while applying
	case errors.Is(decErr, protocol.ErrDuplicateMessage):
		seen, err := tx.WasReceived(ctx, from.Name, e.MessageID)
		if err != nil {
			return nil, err
		}
		if seen {
			return nil, nil // processed before a crash, or a replay: ack, nothing new
		}
		// Keys already used, for an envelope never seen: the sender is
		// running on restored old state. Ask again under a fresh session.
	case !healable(decErr):
		return nil, decErr
	}
	if err := c.heal(ctx, tx, from, e.MessageID); err != nil {
		return nil, err
	}
	c.noteFailure(decryptReason(decErr))
	c.log.Info("undecryptable message; session reset and resend requested", "reason", decryptReason(decErr))
	return []Event{{Kind: EventUndecryptable, ContactAccount: from.Name, Err: decErr}}, nil
}

// healable reports whether a decryption error is about the message or
// the session (heal by starting over), not about local storage.
func healable(err error) bool {
	for _, e := range []error{protocol.ErrDecryption, protocol.ErrNoSession, protocol.ErrInvalidMessage, protocol.ErrInvalidKey,
		protocol.ErrInvalidSignature, protocol.ErrLegacyMessage, protocol.ErrUnknownVersion, protocol.ErrNoPreKey,
		protocol.ErrNoSignedPreKey, protocol.ErrNoKyberPreKey, protocol.ErrInvalidRecord, protocol.ErrUntrustedIdentity} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func decryptReason(err error) string {
	switch {
	case errors.Is(err, protocol.ErrNoSession):
		return "no_session"
	case errors.Is(err, protocol.ErrDecryption):
		return "bad_mac"
	case errors.Is(err, protocol.ErrDuplicateMessage):
		return "reused_keys"
	case errors.Is(err, protocol.ErrNoPreKey), errors.Is(err, protocol.ErrNoSignedPreKey), errors.Is(err, protocol.ErrNoKyberPreKey):
		return "unknown_prekey"
	}
	return "invalid_message"
}

// heal resets the session with a device whose message we could not
// decrypt (at most once a minute per device) and queues a request that
// it send the message again; the request goes out under a fresh session
// built from the device's bundle.
func (c *Client) heal(ctx context.Context, tx *devicestore.Tx, from protocol.Address, transportID []byte) error {
	req, err := content.Marshal(content.Content{Resend: &content.ResendRequest{Device: from.DeviceID, IDs: [][]byte{transportID}}})
	if err != nil {
		// A malformed transport id (not 16 bytes): nothing to ask for.
		return nil
	}
	tid, err := c.newID()
	if err != nil {
		return err
	}
	key := fmt.Sprintf("reset:%s.%d", from.Name, from.DeviceID)
	now := c.now()
	last, ok, err := tx.Setting(ctx, key)
	if err != nil {
		return err
	}
	if !ok || now.Sub(time.UnixMilli(last)) >= resetMinGap {
		if err := tx.DeleteSession(ctx, from); err != nil {
			return err
		}
		if err := tx.SetSetting(ctx, key, now.UnixMilli()); err != nil {
			return err
		}
	}
	_, err = tx.Enqueue(ctx, devicestore.OutboxItem{MessageID: tid, Recipient: from.Name, Payload: req})
	return err
}

// apply stores what a decrypted message says.
func (c *Client) apply(ctx context.Context, tx *devicestore.Tx, from protocol.Address, e queuedEnvelope, pt []byte) ([]Event, error) {
	ct, err := content.Unmarshal(pt)
	if err != nil {
		// The ratchet advanced; asking again would give the same bytes.
		return []Event{{Kind: EventUndecryptable, ContactAccount: from.Name, Err: err}}, nil
	}
	own := from.Name == c.self.AccountID
	if ct.ProfileKey != nil && !own {
		if err := tx.SetProfileKey(ctx, from.Name, ct.ProfileKey); err != nil {
			return nil, err
		}
	}
	switch {
	case ct.Text != nil && !own && ct.Text.Group == nil:
		if err := c.learnContact(ctx, tx, from.Name, ct.Text.SenderUsername); err != nil {
			return nil, err
		}
		return c.store1(ctx, tx, from.Name, devicestore.Message{Sender: from.Name, SenderDevice: from.DeviceID,
			MessageID: ct.Text.ID, Body: []byte(ct.Text.Body), SentAt: time.UnixMilli(ct.Text.SentAt), Status: devicestore.Incoming,
			Counter: ct.Text.Counter, Origin: origin(from.Name, from.DeviceID)})
	case ct.Sync != nil && own && strings.HasPrefix(ct.Sync.Destination, groupPrefix):
		t := ct.Sync.Text
		if _, err := parseGroupID(ct.Sync.Destination); err != nil || t.Group == nil {
			return []Event{{Kind: EventUndecryptable, ContactAccount: from.Name, Err: fmt.Errorf("%w: group transcript", ErrProtocol)}}, nil
		}
		return c.store1(ctx, tx, ct.Sync.Destination, devicestore.Message{Sender: c.self.AccountID, SenderDevice: from.DeviceID,
			Outgoing: true, MessageID: t.ID, Body: []byte(t.Body), SentAt: time.UnixMilli(t.SentAt), Status: devicestore.Sent,
			Counter: t.Counter, Origin: origin(from.Name, from.DeviceID)})
	case ct.GroupOps != nil:
		return c.applyGroupOps(ctx, tx, from, ct.GroupOps)
	case ct.Timer != nil && !strings.HasPrefix(ct.Timer.Conversation, groupPrefix):
		conv := from.Name // a peer sets the timer of its conversation with us
		if own {
			conv = ct.Timer.Conversation
		}
		return c.applyTimer(ctx, tx, from, conv, ct.Timer)
	case ct.Timer != nil && own:
		return c.applyTimer(ctx, tx, from, ct.Timer.Conversation, ct.Timer)
	case ct.SenderKey != nil && !own:
		return c.applySenderKey(ctx, tx, from, ct.SenderKey)
	case ct.Sync != nil && own && ct.Sync.Destination != c.self.AccountID:
		if err := c.learnContact(ctx, tx, ct.Sync.Destination, ct.Sync.DestinationUsername); err != nil {
			return nil, err
		}
		t := ct.Sync.Text
		return c.store1(ctx, tx, ct.Sync.Destination, devicestore.Message{Sender: c.self.AccountID, SenderDevice: from.DeviceID,
			Outgoing: true, MessageID: t.ID, Body: []byte(t.Body), SentAt: time.UnixMilli(t.SentAt), Status: devicestore.Sent,
			Counter: t.Counter, Origin: origin(from.Name, from.DeviceID)})
	case ct.Op != nil:
		return c.applyReceivedOp(ctx, tx, from, ct.Op)
	case ct.Read != nil && own:
		return nil, c.applyReceivedRead(ctx, tx, from, ct.Read)
	case ct.Trust != nil && own:
		return nil, c.applyReceivedTrust(ctx, tx, from, ct.Trust)
	case ct.Resend != nil && ct.Resend.Device == c.self.DeviceID:
		for _, id := range ct.Resend.IDs {
			payload, err := tx.SentPayload(ctx, id, from.Name)
			if errors.Is(err, devicestore.ErrNotFound) {
				continue // too old, or never ours
			}
			if err != nil {
				return nil, err
			}
			tid, err := c.newID()
			if err != nil {
				return nil, err
			}
			if _, err := tx.Enqueue(ctx, devicestore.OutboxItem{MessageID: tid, Recipient: from.Name, Payload: payload}); err != nil {
				return nil, err
			}
		}
	}
	return nil, nil // other combinations are ignored (e.g. a resend request meant for another device)
}

// store1 stores one message in the conversation with peer; a message
// already stored (same sender and id: a resend, or a redelivery) yields
// nothing.
func (c *Client) store1(ctx context.Context, tx *devicestore.Tx, peer string, m devicestore.Message) ([]Event, error) {
	conv, err := tx.Conversation(ctx, peer)
	if err != nil {
		return nil, err
	}
	m.ConversationID = conv
	m.ReceivedAt = c.now()
	if m.ExpiresAt, err = c.expiresAt(ctx, tx, peer, m.ReceivedAt); err != nil {
		return nil, err
	}
	if err := c.observe(ctx, tx, converge.Stamp{Time: m.SentAt.UnixMilli(), Counter: m.Counter, Origin: m.Origin}); err != nil {
		return nil, err
	}
	id, err := tx.InsertMessage(ctx, m)
	if errors.Is(err, devicestore.ErrDuplicate) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// Edits, deletes and reactions that came before the message.
	if err := c.mergePending(ctx, tx, m.Sender, m.MessageID); err != nil {
		return nil, err
	}
	if m, err = tx.Message(ctx, id); err != nil {
		return nil, err
	}
	return c.messageEvent(ctx, tx, EventMessage, m, peer)
}

// messageEvent reports a stored message as seen in the conversation with
// peer, with its contact's username and its reactions.
func (c *Client) messageEvent(ctx context.Context, tx *devicestore.Tx, kind EventKind, m devicestore.Message, peer string) ([]Event, error) {
	group := ""
	if strings.HasPrefix(peer, groupPrefix) {
		group, peer = strings.TrimPrefix(peer, groupPrefix), m.Sender
	}
	name := ""
	if ct, err := tx.Contact(ctx, peer); err == nil {
		name = ct.Username
	} else if peer == c.self.AccountID {
		name = c.self.Username
	}
	msg := c.toMessage(m, peer, name)
	msg.Group = group
	var err error
	if msg.Reactions, err = c.reactions(ctx, tx.Reactions, m); err != nil {
		return nil, err
	}
	return []Event{{Kind: kind, Message: msg, Contact: name, ContactAccount: peer, Group: group}}, nil
}

// named fills in contacts' usernames.
func (c *Client) named(ctx context.Context, events []Event) []Event {
	for i := range events {
		for j, ch := range events[i].GroupChanges {
			if ch.Member == c.self.AccountID {
				events[i].GroupChanges[j].Username = c.self.Username
			} else if ch.Member != "" {
				if ct, err := c.store.Contact(ctx, ch.Member); err == nil {
					events[i].GroupChanges[j].Username = ct.Username
				}
			}
		}
		if events[i].Contact == "" && events[i].ContactAccount != "" {
			if ct, err := c.store.Contact(ctx, events[i].ContactAccount); err == nil {
				events[i].Contact = ct.Username
			}
		}
	}
	return events
}
