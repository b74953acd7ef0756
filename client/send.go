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

const (
	// MaxTextBytes is the longest text Send takes.
	MaxTextBytes = content.MaxBody
	// sendLogLifetime: how long sent payloads are kept to answer resend
	// requests (the server's queue lifetime).
	sendLogLifetime = 30 * 24 * time.Hour
	// receivedLifetime: how long processed transport ids are remembered
	// (the server's dedup window, 31 days).
	receivedLifetime = 31 * 24 * time.Hour
	// maxBackoff caps the wait between attempts of a queued send.
	maxBackoff = 5 * time.Minute
	// heldRetry is when a send held by an identity change is looked at
	// again if nobody accepts the key (AcceptIdentity retries at once).
	heldRetry = time.Hour
)

// Send sends text to the user with that username: it stores the message
// and queues it in the outbox in one transaction, then tries to deliver
// it (to every device of the recipient and, as a sync transcript, to
// this account's other devices). The returned Message is Sent when the
// server committed it, Queued when it could not be delivered yet (the
// outbox retries: on the next Send, Flush or Receive). Errors:
// ErrNoSuchUser, ErrInvalidArgument, and *IdentityChangedError when the
// recipient's key changed (the message stays queued until the key is
// accepted).
func (c *Client) Send(ctx context.Context, to, text string) (Message, error) {
	if c.compliance {
		return Message{}, ErrComplianceDevice
	}
	if len(text) == 0 || len(text) > MaxTextBytes || !utf8.ValidString(text) {
		return Message{}, fmt.Errorf("%w: a message is 1 to %d bytes of UTF-8 text", ErrInvalidArgument, MaxTextBytes)
	}
	peer, err := c.resolve(ctx, to)
	if err != nil {
		return Message{}, err
	}
	if err := c.checkIdentity(ctx, peer.AccountID); err != nil {
		return Message{}, err
	}
	id, err := c.newID()
	if err != nil {
		return Message{}, err
	}
	tids := make([][]byte, 2)
	for i := range tids {
		if tids[i], err = c.newID(); err != nil {
			return Message{}, err
		}
	}
	// Our profile key rides along, so the peer can send to us sealed.
	pk, err := c.profileKey(ctx)
	if err != nil {
		c.log.Warn("sending without a profile key", "reason", errorCode(err))
		pk = nil
	}
	var local int64
	err = c.store.Update(ctx, func(tx *devicestore.Tx) error {
		st, err := c.stamp(ctx, tx)
		if err != nil {
			return err
		}
		text1 := content.Text{ID: id, Body: text, SentAt: st.Time, Counter: st.Counter, SenderUsername: c.self.Username}
		toPeer, err := content.Marshal(content.Content{Text: &text1, ProfileKey: pk})
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidArgument, err)
		}
		toSelf, err := content.Marshal(content.Content{Sync: &content.Sync{Destination: peer.AccountID, DestinationUsername: peer.Username, Text: text1}})
		if err != nil {
			return err
		}
		local, err = c.queueOutgoing(ctx, tx, peer.AccountID, text1, st, tids, toPeer, toSelf)
		return err
	})
	if err != nil {
		return Message{}, err
	}
	testHook("queued")
	ferr := c.flush(ctx, tids)
	m, err := c.message(ctx, local)
	if err != nil {
		return Message{}, err
	}
	var ice *IdentityChangedError
	var ude *UnverifiedDeviceError
	if errors.As(ferr, &ice) || errors.As(ferr, &ude) || errors.Is(ferr, ErrNoSuchUser) || errors.Is(ferr, ErrHoldsRefused) {
		return m, ferr
	}
	if ferr != nil {
		c.log.Info("send queued", "reason", errorCode(ferr))
	}
	return m, nil
}

// queueOutgoing stores a text this device sends in the conversation
// with peer (an account, or "g:" and a group) — timed by the
// conversation's disappearing timer — and queues it: toPeer for peer
// (which also marks the message sent), toSelf for this account's other
// devices, under the transport ids tids. It returns the message's local
// id.
func (c *Client) queueOutgoing(ctx context.Context, tx *devicestore.Tx, peer string, t content.Text, st converge.Stamp, tids [][]byte, toPeer, toSelf []byte) (int64, error) {
	conv, err := tx.Conversation(ctx, peer)
	if err != nil {
		return 0, err
	}
	expires, err := c.expiresAt(ctx, tx, peer, c.now())
	if err != nil {
		return 0, err
	}
	local, err := tx.InsertMessage(ctx, devicestore.Message{ConversationID: conv, Sender: c.self.AccountID, SenderDevice: c.self.DeviceID,
		Outgoing: true, MessageID: t.ID, Body: []byte(t.Body), SentAt: time.UnixMilli(st.Time), ReceivedAt: c.now(), Status: devicestore.Queued,
		Counter: st.Counter, Origin: st.Origin, ExpiresAt: expires})
	if err != nil {
		return 0, err
	}
	if _, err := tx.Enqueue(ctx, devicestore.OutboxItem{MessageID: tids[0], Recipient: peer, LocalMessageID: local, Payload: toPeer, About: local}); err != nil {
		return 0, err
	}
	_, err = tx.Enqueue(ctx, devicestore.OutboxItem{MessageID: tids[1], Recipient: c.self.AccountID, Payload: toSelf, About: local})
	return local, err
}

// Flush delivers every due send in the outbox (messages queued while the
// server was unreachable, resends, resend requests). It returns the
// first error that is not a reason to simply try later.
func (c *Client) Flush(ctx context.Context) error { return c.flush(ctx, nil) }

// flush delivers due outbox items; with first, those items are tried
// first whether due or not.
func (c *Client) flush(ctx context.Context, first [][]byte) error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	if c.isClosed() {
		return ErrClosed
	}
	items, err := c.store.Outbox(ctx, c.now(), 1000)
	if err != nil {
		return err
	}
	if len(first) > 0 {
		all, err := c.store.Outbox(ctx, time.UnixMilli(1<<62), 1000)
		if err != nil {
			return err
		}
		items = prioritize(all, items, first)
	}
	var firstErr error
	unreachable := false
	for _, it := range items {
		if unreachable {
			break // no point trying the rest now
		}
		err := c.deliver(ctx, it)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		unreachable = errors.Is(err, ErrUnreachable)
		if firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// prioritize returns the items whose ids are in first (in that order),
// then the due ones.
func prioritize(all, due []devicestore.OutboxItem, first [][]byte) []devicestore.OutboxItem {
	var out []devicestore.OutboxItem
	picked := map[string]bool{}
	for _, id := range first {
		for _, it := range all {
			if string(it.MessageID) == string(id) {
				out = append(out, it)
				picked[string(id)] = true
			}
		}
	}
	for _, it := range due {
		if !picked[string(it.MessageID)] {
			out = append(out, it)
		}
	}
	return out
}

// deliver sends one outbox item, fixing the device list on 409/410, and
// records the outcome.
func (c *Client) deliver(ctx context.Context, it devicestore.OutboxItem) error {
	var err error
	if c.compliance {
		// A compliance device never sends (it would speak for the account
		// under a key that is not the account's): drop what was queued.
		err = ErrComplianceDevice
		it.Attempts = 0
	} else {
		err = c.tryDeliver(ctx, it)
	}
	if err == nil {
		return c.store.Update(ctx, func(tx *devicestore.Tx) error {
			if err := tx.Dequeue(ctx, it.MessageID); err != nil && !errors.Is(err, devicestore.ErrNotFound) {
				return err
			}
			if resendable(it.Payload) {
				if err := tx.LogSendAbout(ctx, it.MessageID, it.Recipient, it.Payload, it.About); err != nil {
					return err
				}
			}
			if it.LocalMessageID != 0 {
				return ignoreNotFound(tx.SetMessageStatus(ctx, it.LocalMessageID, devicestore.Sent))
			}
			return nil
		})
	}
	if ctx.Err() != nil {
		return err
	}
	var ice *IdentityChangedError
	permanent := errors.Is(err, ErrNoSuchUser) || errors.Is(err, ErrNotGroupMember) || errors.Is(err, ErrComplianceDevice) || isCode(err, "envelope_too_large", "body_too_large")
	next := c.now().Add(backoff(it.Attempts))
	var se *ServerError
	switch {
	case errors.As(err, &ice):
		next = c.now().Add(heldRetry)
	case errors.As(err, &se) && se.RetryAfter > 0:
		next = c.now().Add(se.RetryAfter)
	}
	uerr := c.store.Update(ctx, func(tx *devicestore.Tx) error {
		if permanent {
			if err := ignoreNotFound(tx.Dequeue(ctx, it.MessageID)); err != nil {
				return err
			}
			if it.LocalMessageID != 0 {
				return ignoreNotFound(tx.SetMessageStatus(ctx, it.LocalMessageID, devicestore.Failed))
			}
			return nil
		}
		return ignoreNotFound(tx.RecordAttempt(ctx, it.MessageID, next, errorCode(err)))
	})
	return errors.Join(err, uerr)
}

func ignoreNotFound(err error) error {
	if errors.Is(err, devicestore.ErrNotFound) {
		return nil
	}
	return err
}

// backoff is the wait after the n-th failed attempt: 1 s, 2 s, 4 s… up
// to maxBackoff.
func backoff(n int) time.Duration {
	d := time.Second << min(n, 16)
	return min(d, maxBackoff)
}

// errorCode is a short, content-free description of a send failure for
// the outbox's last_error and for logs.
func errorCode(err error) string {
	var se *ServerError
	var ice *IdentityChangedError
	switch {
	case errors.As(err, &se):
		return se.Code
	case errors.As(err, &ice):
		return "identity_changed"
	case errors.As(err, new(*UnverifiedDeviceError)):
		return "unverified_device"
	case errors.Is(err, ErrUnreachable):
		return "unreachable"
	case errors.Is(err, ErrNoSuchUser):
		return "no_such_user"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "error"
}

// tryDeliver encrypts the item for every current device of its recipient
// and sends it, fixing the device list and retrying a few times when
// the server says it changed.
func (c *Client) tryDeliver(ctx context.Context, it devicestore.OutboxItem) error {
	if strings.HasPrefix(it.Recipient, groupPrefix) {
		return c.deliverGroup(ctx, it)
	}
	toSelf := it.Recipient == c.self.AccountID
	if !toSelf {
		if err := c.checkIdentity(ctx, it.Recipient); err != nil {
			return err
		}
	}
	noSealed := false
	for attempt := 0; ; attempt++ {
		devices, err := c.sessionDevices(ctx, it.Recipient)
		if err != nil {
			return err
		}
		if len(devices) == 0 {
			if toSelf {
				// Only when the server has no other device of ours is there
				// nothing to send; otherwise fetch their bundles. Having
				// asked, a lone device does not ask again for a minute.
				if c.alone() {
					return nil
				}
				others, err := c.otherOwnDevices(ctx)
				if err != nil {
					return err
				}
				if len(others) == 0 {
					c.setAlone(aloneFor)
					return nil
				}
			}
			if err := c.fetchSessions(ctx, it.Recipient, 0); err != nil {
				return err
			}
			if devices, err = c.sessionDevices(ctx, it.Recipient); err != nil {
				return err
			}
		}
		// Sealed when we know the recipient's access key: the server
		// then does not learn who sends.
		var key, cert []byte
		if !toSelf && !noSealed {
			if key, err = c.sealedAccess(ctx, it.Recipient); err != nil {
				return err
			}
			if key != nil {
				if cert, err = c.senderCertificate(ctx); err != nil {
					c.log.Warn("sending identified: no sender certificate", "reason", errorCode(err))
					key = nil
				}
			}
		}
		req := sendRequest{MessageID: it.MessageID}
		err = c.update(ctx, func(tx *devicestore.Tx, cipher *protocol.Cipher) error {
			req.Envelopes = req.Envelopes[:0]
			for _, d := range devices {
				addr := protocol.Address{Name: it.Recipient, DeviceID: d}
				var env envelopeJSON
				if key != nil {
					body, err := cipher.SealedEncrypt(ctx, addr, cert, it.Payload)
					if err != nil {
						return err
					}
					env = envelopeJSON{Type: envelopeSealed, Content: body}
				} else {
					ct, err := cipher.Encrypt(ctx, addr, it.Payload)
					if err != nil {
						return err
					}
					env = envelopeJSON{Type: uint8(ct.Type), Content: ct.Body}
				}
				rec, err := tx.LoadSession(ctx, addr)
				if err != nil {
					return err
				}
				env.DeviceID = d
				env.RegistrationID, _ = rec.RemoteRegistrationID()
				req.Envelopes = append(req.Envelopes, env)
			}
			return nil
		})
		var ute *protocol.UntrustedIdentityError
		if errors.As(err, &ute) {
			return c.identityChanged(ctx, it.Recipient, ute.Key)
		}
		if err != nil {
			return err
		}
		testHook("encrypted")
		if key != nil {
			err = c.sendSealed(ctx, it.Recipient, key, req)
		} else {
			err = c.api.do(ctx, "PUT", "/v1/messages/"+it.Recipient, req, nil)
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
		case "access_denied":
			// The recipient changed its profile key (or closed sealed
			// delivery): forget it and send identified.
			noSealed = true
			err := c.store.Update(ctx, func(tx *devicestore.Tx) error {
				if err := tx.SetSetting(ctx, settingAnyone+it.Recipient, 0); err != nil {
					return err
				}
				return tx.ForgetProfileKey(ctx, it.Recipient)
			})
			if err != nil {
				return err
			}
		case "device_mismatch":
			if err := c.fixDevices(ctx, it.Recipient, se.Missing, se.Extra); err != nil {
				return err
			}
		case "stale_devices":
			if err := c.fixDevices(ctx, it.Recipient, se.Stale, se.Stale); err != nil {
				return err
			}
		case "account_not_found":
			return fmt.Errorf("%w (the account no longer exists)", ErrNoSuchUser)
		default:
			return err
		}
	}
}

// sessionDevices lists the recipient's devices we have sessions with
// (for our own account, without this device).
func (c *Client) sessionDevices(ctx context.Context, account string) ([]uint32, error) {
	ds, err := c.store.SessionDevices(ctx, account)
	if err != nil || account != c.self.AccountID {
		return ds, err
	}
	out := ds[:0]
	for _, d := range ds {
		if d != c.self.DeviceID {
			out = append(out, d)
		}
	}
	return out, nil
}

// fixDevices drops the sessions of devices that are gone (or stale) and
// starts sessions with devices that are new (or stale).
func (c *Client) fixDevices(ctx context.Context, account string, add, drop []uint32) error {
	err := c.store.Update(ctx, func(tx *devicestore.Tx) error {
		for _, d := range drop {
			if err := tx.DeleteSession(ctx, protocol.Address{Name: account, DeviceID: d}); err != nil {
				return err
			}
			// A compliance device that is gone keeps its hold until the
			// list of holds says it ended (RefreshHolds reports that).
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range add {
		if account == c.self.AccountID && d == c.self.DeviceID {
			continue
		}
		if err := c.fetchSessions(ctx, account, d); err != nil {
			return err
		}
	}
	return nil
}

// fetchSessions claims bundles for every device of account (device 0)
// or one device, and starts a session with each (PQXDH). A bundle whose
// identity key differs from the one we know is an identity change.
func (c *Client) fetchSessions(ctx context.Context, account string, device uint32) error {
	path := "/v1/bundles/" + account
	if device != 0 {
		path += fmt.Sprintf("/%d", device)
	}
	var resp bundlesResponse
	if err := c.api.do(ctx, "GET", path, nil, &resp); err != nil {
		if isCode(err, "account_not_found") {
			return fmt.Errorf("%w (the account no longer exists)", ErrNoSuchUser)
		}
		if isCode(err, "device_not_found") {
			return nil // gone meanwhile; the next send learns the new list
		}
		return err
	}
	ik, err := protocol.ParsePublicKey(resp.IdentityKey)
	if err != nil {
		return fmt.Errorf("%w: identity key in bundle: %v", ErrProtocol, err)
	}
	var (
		bundles    []*protocol.PreKeyBundle
		holds      []devicestore.Hold
		unverified []uint32
		refused    error
	)
	for _, d := range resp.Devices {
		if account == c.self.AccountID && d.DeviceID == c.self.DeviceID {
			continue
		}
		key := ik
		if d.Compliance != nil {
			// A compliance device: its own identity key signed its keys,
			// and a certificate from the trust root must say whose it is.
			h, err := c.verifyHold(ctx, c.store, account, d.Compliance)
			if err != nil || h.DeviceID != d.DeviceID {
				if errors.Is(err, ErrHoldsRefused) {
					refused = err
				}
				c.log.Warn("a device claims to be a legal hold's compliance device without a valid certificate", "reason", errorCode(err))
				unverified = append(unverified, d.DeviceID)
				continue
			}
			holds = append(holds, h)
			key = h.IdentityKey
		}
		b, err := d.bundle(key)
		if err != nil {
			return err
		}
		bundles = append(bundles, b)
	}
	err = c.update(ctx, func(tx *devicestore.Tx, cipher *protocol.Cipher) error {
		if account != c.self.AccountID {
			if err := tx.SetSetting(ctx, settingAnyone+account, boolInt(resp.SealedFromAnyone)); err != nil {
				return err
			}
		}
		for _, h := range holds {
			if err := tx.PutHold(ctx, h); err != nil {
				return err
			}
		}
		for _, b := range bundles {
			err := cipher.ProcessPreKeyBundle(ctx, protocol.Address{Name: account, DeviceID: b.DeviceID}, b)
			switch {
			case errors.Is(err, protocol.ErrInvalidSignature), errors.Is(err, protocol.ErrInvalidKey):
				// Keys not signed by the account's identity key: not a
				// device its owner linked.
				unverified = append(unverified, b.DeviceID)
			case err != nil:
				return err
			}
		}
		return nil
	})
	var ute *protocol.UntrustedIdentityError
	if errors.As(err, &ute) {
		return c.identityChanged(ctx, account, ute.Key)
	}
	if err == nil && refused != nil {
		return refused
	}
	if err == nil && len(unverified) > 0 {
		e := &UnverifiedDeviceError{AccountID: account, Devices: unverified}
		if account == c.self.AccountID {
			e.Username = c.self.Username
		} else if ct, err := c.store.Contact(ctx, account); err == nil {
			e.Username = ct.Username
		}
		c.log.Warn("an account lists a device whose keys its identity key did not sign; sending to it is held")
		return e
	}
	return err
}

func (d *bundleDevice) bundle(ik protocol.PublicKey) (*protocol.PreKeyBundle, error) {
	spk, err := protocol.ParsePublicKey(d.SignedPreKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: signed prekey in bundle: %v", ErrProtocol, err)
	}
	kem, err := protocol.ParseKEMPublicKey(d.KEMPreKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: KEM prekey in bundle: %v", ErrProtocol, err)
	}
	b := &protocol.PreKeyBundle{
		RegistrationID: d.RegistrationID, DeviceID: d.DeviceID, IdentityKey: ik,
		SignedPreKeyID: d.SignedPreKey.KeyID, SignedPreKey: spk, SignedPreKeySignature: d.SignedPreKey.Signature,
		KyberPreKeyID: d.KEMPreKey.KeyID, KyberPreKey: kem, KyberPreKeySignature: d.KEMPreKey.Signature,
	}
	if d.PreKey != nil {
		pk, err := protocol.ParsePublicKey(d.PreKey.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("%w: one-time prekey in bundle: %v", ErrProtocol, err)
		}
		b.HasPreKey, b.PreKeyID, b.PreKey = true, d.PreKey.KeyID, pk
	}
	return b, nil
}

// otherOwnDevices lists this account's devices other than this one.
func (c *Client) otherOwnDevices(ctx context.Context) ([]uint32, error) {
	ds, err := c.Devices(ctx)
	if err != nil {
		return nil, err
	}
	var out []uint32
	for _, d := range ds {
		if d.ID != c.self.DeviceID {
			out = append(out, d.ID)
		}
	}
	return out, nil
}

// aloneFor is how long a device that found no other device of its
// account skips asking again before a sync transcript. Linking a device
// here, or a message from another device of ours, ends it at once.
const aloneFor = time.Minute

func (c *Client) alone() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now().Before(c.aloneUntil)
}

// setAlone marks this device as its account's only one for d (0: ask
// again next time).
func (c *Client) setAlone(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d == 0 {
		c.aloneUntil = time.Time{}
		return
	}
	c.aloneUntil = c.now().Add(d)
}

// resendable reports whether a payload may be sent again on request:
// texts and sync transcripts, not resend requests (so two broken
// sessions cannot ask each other forever).
func resendable(payload []byte) bool {
	ct, err := content.Unmarshal(payload)
	return err == nil && ct.Resend == nil
}

// testHook, when set by the crash tests, is called between the steps of
// sending and receiving; it may kill the process.
var testHook = func(step string) {}
