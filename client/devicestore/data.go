package devicestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Account is our account on the server. Credential must be kept secret;
// String and GoString leave it out.
type Account struct {
	AccountID  string // UUID the server drew at registration
	DeviceID   uint32
	Username   string
	ServerURL  string
	Credential []byte // 32 bytes, the device's HTTP Basic secret
	CreatedAt  time.Time
}

func (a Account) String() string {
	return fmt.Sprintf("{AccountID:%s DeviceID:%d Username:%s ServerURL:%s Credential:redacted}", a.AccountID, a.DeviceID, a.Username, a.ServerURL)
}

// GoString keeps the credential out of %#v too.
func (a Account) GoString() string { return "devicestore.Account" + a.String() }

// SetAccount stores our account, once (ErrExists if already set).
func (t *Tx) SetAccount(ctx context.Context, a Account) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO account (id, account_id, device_id, username, server_url, credential, created_at) VALUES (1, ?, ?, ?, ?, ?, ?)`,
		a.AccountID, a.DeviceID, a.Username, a.ServerURL, a.Credential, ms(t.now()))
	if err = dbErr("storing account", err); errors.Is(err, ErrDuplicate) {
		return fmt.Errorf("%w: the account is already set", ErrExists)
	}
	return err
}

// Account returns our account (ErrNotFound before SetAccount).
func (r reader) Account(ctx context.Context) (Account, error) {
	var (
		a       Account
		created int64
	)
	err := r.q.QueryRowContext(ctx, `SELECT account_id, device_id, username, server_url, credential, created_at FROM account WHERE id = 1`).
		Scan(&a.AccountID, &a.DeviceID, &a.Username, &a.ServerURL, &a.Credential, &created)
	if err != nil {
		return Account{}, dbErr("loading account", err)
	}
	a.CreatedAt = fromMS(created)
	return a, nil
}

// Contact is a person we talk to.
type Contact struct {
	AccountID   string
	Username    string
	DisplayName string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// PutContact stores or updates a contact (by AccountID).
func (t *Tx) PutContact(ctx context.Context, c Contact) error {
	now := ms(t.now())
	_, err := t.tx.ExecContext(ctx, `INSERT INTO contacts (account_id, username, display_name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (account_id) DO UPDATE SET username = excluded.username, display_name = excluded.display_name, updated_at = excluded.updated_at`,
		c.AccountID, c.Username, c.DisplayName, now, now)
	return dbErr("storing contact", err)
}

const contactCols = `account_id, username, display_name, created_at, updated_at`

func scanContact(s interface{ Scan(...any) error }) (Contact, error) {
	var (
		c    Contact
		a, b int64
	)
	err := s.Scan(&c.AccountID, &c.Username, &c.DisplayName, &a, &b)
	c.CreatedAt, c.UpdatedAt = fromMS(a), fromMS(b)
	return c, err
}

// Contact returns the contact with an account id (ErrNotFound if none).
func (r reader) Contact(ctx context.Context, accountID string) (Contact, error) {
	c, err := scanContact(r.q.QueryRowContext(ctx, `SELECT `+contactCols+` FROM contacts WHERE account_id = ?`, accountID))
	return c, dbErr("loading contact", err)
}

// ContactByUsername returns the contact with a username (ErrNotFound if none).
func (r reader) ContactByUsername(ctx context.Context, username string) (Contact, error) {
	c, err := scanContact(r.q.QueryRowContext(ctx, `SELECT `+contactCols+` FROM contacts WHERE username = ? ORDER BY updated_at DESC LIMIT 1`, username))
	return c, dbErr("loading contact", err)
}

// Contacts returns every contact, by username.
func (r reader) Contacts(ctx context.Context) ([]Contact, error) {
	return queryAll(ctx, r.q, "listing contacts", scanContact, `SELECT `+contactCols+` FROM contacts ORDER BY username, account_id`)
}

// Conversation is a one-to-one conversation with a peer account.
type Conversation struct {
	ID             int64
	Peer           string // the peer's account id
	CreatedAt      time.Time
	LastActivityAt time.Time
}

// Conversation returns the id of the conversation with peer, creating it
// if needed.
func (t *Tx) Conversation(ctx context.Context, peer string) (int64, error) {
	now := ms(t.now())
	var id int64
	err := t.tx.QueryRowContext(ctx, `INSERT INTO conversations (peer, created_at, last_activity_at) VALUES (?, ?, ?)
		ON CONFLICT (peer) DO UPDATE SET peer = excluded.peer RETURNING id`, peer, now, now).Scan(&id)
	return id, dbErr("opening conversation", err)
}

func scanConversation(s interface{ Scan(...any) error }) (Conversation, error) {
	var (
		c    Conversation
		a, b int64
	)
	err := s.Scan(&c.ID, &c.Peer, &a, &b)
	c.CreatedAt, c.LastActivityAt = fromMS(a), fromMS(b)
	return c, err
}

// ConversationPeer returns the peer account of a conversation
// (ErrNotFound if there is no such conversation).
func (r reader) ConversationPeer(ctx context.Context, id int64) (string, error) {
	var peer string
	err := r.q.QueryRowContext(ctx, `SELECT peer FROM conversations WHERE id = ?`, id).Scan(&peer)
	return peer, dbErr("loading conversation", err)
}

// Conversations returns every conversation, most recent activity first.
func (r reader) Conversations(ctx context.Context) ([]Conversation, error) {
	return queryAll(ctx, r.q, "listing conversations", scanConversation,
		`SELECT id, peer, created_at, last_activity_at FROM conversations ORDER BY last_activity_at DESC, id DESC`)
}

// Message is one message of a conversation, sent or received.
type Message struct {
	ID             int64 // local id, assigned by InsertMessage
	ConversationID int64
	Sender         string // account id; ours for outgoing messages
	SenderDevice   uint32
	Outgoing       bool
	MessageID      []byte // the sender-chosen id the server carries (16 bytes)
	Body           []byte
	SentAt         time.Time
	ReceivedAt     time.Time // when this device stored it
	Status         Status    // delivery state of an outgoing message
	// Counter and Origin complete SentAt into the post's hybrid clock
	// stamp (client/internal/converge), for InsertMessage; Edited and
	// Deleted are the merged state of its edits and deletes (read only:
	// SaveMessageState writes them).
	Counter         uint32
	Origin          string
	Edited, Deleted bool
	// ExpiresAt, when set, is when the message disappears (its
	// conversation's timer); Expire removes it then.
	ExpiresAt time.Time
}

// Status is the delivery state of an outgoing message.
type Status int

const (
	Incoming Status = 0 // a received message
	Queued   Status = 1 // in the outbox, not yet committed by the server
	Sent     Status = 2 // the server committed it
	Failed   Status = 3 // the SDK gave up (e.g. the recipient no longer exists)
)

func (s Status) String() string {
	switch s {
	case Incoming:
		return "incoming"
	case Queued:
		return "queued"
	case Sent:
		return "sent"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// InsertMessage stores m and returns its local id. A message with the
// same Sender and MessageID already stored is ErrDuplicate (a
// redelivery): the caller acknowledges it and shows nothing new.
func (t *Tx) InsertMessage(ctx context.Context, m Message) (int64, error) {
	if len(m.MessageID) == 0 {
		return 0, fmt.Errorf("devicestore: inserting message: empty message id")
	}
	recv := m.ReceivedAt
	if recv.IsZero() {
		recv = t.now()
	}
	var id int64
	var expires any
	if !m.ExpiresAt.IsZero() {
		expires = ms(m.ExpiresAt)
	}
	err := t.tx.QueryRowContext(ctx, `INSERT INTO messages (conversation_id, sender, sender_device, outgoing, message_id, body, sent_at, received_at, status,
		body_time, body_counter, body_origin, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		m.ConversationID, m.Sender, m.SenderDevice, m.Outgoing, m.MessageID, m.Body, ms(m.SentAt), ms(recv), int(m.Status),
		ms(m.SentAt), m.Counter, m.Origin, expires).Scan(&id)
	if err != nil {
		return 0, dbErr("inserting message", err)
	}
	_, err = t.tx.ExecContext(ctx, `UPDATE conversations SET last_activity_at = max(last_activity_at, ?) WHERE id = ?`, ms(recv), m.ConversationID)
	return id, dbErr("inserting message", err)
}

// HasMessage reports whether a message from sender with messageID is
// stored (check it before decrypting a redelivered envelope).
func (r reader) HasMessage(ctx context.Context, sender string, messageID []byte) (bool, error) {
	var n int
	err := r.q.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE sender = ? AND message_id = ?`, sender, messageID).Scan(&n)
	return n > 0, dbErr("looking up message", err)
}

const messageCols = `id, conversation_id, sender, sender_device, outgoing, message_id, body, sent_at, received_at, status, edited, deleted`

func scanMessage(s interface{ Scan(...any) error }) (Message, error) {
	var (
		m    Message
		a, b int64
	)
	err := s.Scan(&m.ID, &m.ConversationID, &m.Sender, &m.SenderDevice, &m.Outgoing, &m.MessageID, &m.Body, &a, &b, &m.Status,
		&m.Edited, &m.Deleted)
	m.SentAt, m.ReceivedAt = fromMS(a), fromMS(b)
	return m, err
}

// SetMessageStatus sets the delivery state of a message (ErrNotFound if
// there is no such message).
func (t *Tx) SetMessageStatus(ctx context.Context, id int64, st Status) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE messages SET status = ? WHERE id = ?`, int(st), id)
	return rowsAffected("setting message status", res, err)
}

// MessageByID returns the message from sender with a sender-chosen
// message id (ErrNotFound if none).
func (r reader) MessageByID(ctx context.Context, sender string, messageID []byte) (Message, error) {
	m, err := scanMessage(r.q.QueryRowContext(ctx, `SELECT `+messageCols+` FROM messages WHERE sender = ? AND message_id = ?`, sender, messageID))
	return m, dbErr("loading message", err)
}

// Message returns a message by local id (ErrNotFound if none).
func (r reader) Message(ctx context.Context, id int64) (Message, error) {
	m, err := scanMessage(r.q.QueryRowContext(ctx, `SELECT `+messageCols+` FROM messages WHERE id = ?`, id))
	return m, dbErr("loading message", err)
}

// Messages returns up to limit messages of a conversation with local id
// greater than after, in the order they were stored.
func (r reader) Messages(ctx context.Context, conversationID, after int64, limit int) ([]Message, error) {
	return queryAll(ctx, r.q, "listing messages", scanMessage,
		`SELECT `+messageCols+` FROM messages WHERE conversation_id = ? AND id > ? ORDER BY id LIMIT ?`, conversationID, after, limit)
}

// OutboxItem is a send not yet committed by the server.
type OutboxItem struct {
	ID             int64 // assigned by Enqueue
	MessageID      []byte
	Recipient      string // account id
	LocalMessageID int64  // the messages row shown to the user, 0 if none
	Payload        []byte // plaintext, encrypted per device at send time
	CreatedAt      time.Time
	Attempts       int
	NextAttemptAt  time.Time
	LastError      string // why the last attempt failed (never plaintext)
	// About is the local message whose text (or edit) the payload
	// carries, 0 if none: removing that message removes the payload too.
	About int64
}

// Enqueue adds a send to the outbox (ErrDuplicate if its MessageID is
// already queued). Store it in the same Update as its messages row.
func (t *Tx) Enqueue(ctx context.Context, it OutboxItem) (int64, error) {
	if len(it.MessageID) == 0 {
		return 0, fmt.Errorf("devicestore: enqueueing: empty message id")
	}
	now := t.now()
	next := it.NextAttemptAt
	if next.IsZero() {
		next = now
	}
	var local, about any
	if it.LocalMessageID != 0 {
		local = it.LocalMessageID
	}
	if it.About != 0 {
		about = it.About
	}
	var id int64
	err := t.tx.QueryRowContext(ctx, `INSERT INTO outbox (message_id, recipient, local_message_id, payload, created_at, next_attempt_at, about)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, it.MessageID, it.Recipient, local, it.Payload, ms(now), ms(next), about).Scan(&id)
	return id, dbErr("enqueueing", err)
}

// RecordAttempt counts a failed send attempt, with why it failed, and
// sets when to retry.
func (t *Tx) RecordAttempt(ctx context.Context, messageID []byte, next time.Time, lastError string) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE message_id = ?`,
		ms(next), lastError, messageID)
	return rowsAffected("recording send attempt", res, err)
}

// Dequeue removes a send the server has committed (ErrNotFound if it is
// not queued).
func (t *Tx) Dequeue(ctx context.Context, messageID []byte) error {
	res, err := t.tx.ExecContext(ctx, `DELETE FROM outbox WHERE message_id = ?`, messageID)
	return rowsAffected("dequeueing", res, err)
}

// Outbox returns the queued sends due at or before due, oldest first, up
// to limit.
func (r reader) Outbox(ctx context.Context, due time.Time, limit int) ([]OutboxItem, error) {
	return queryAll(ctx, r.q, "listing outbox", func(s interface{ Scan(...any) error }) (OutboxItem, error) {
		var (
			it           OutboxItem
			local, about sql.NullInt64
			a, b         int64
		)
		err := s.Scan(&it.ID, &it.MessageID, &it.Recipient, &local, &it.Payload, &a, &it.Attempts, &b, &it.LastError, &about)
		it.LocalMessageID, it.CreatedAt, it.NextAttemptAt, it.About = local.Int64, fromMS(a), fromMS(b), about.Int64
		return it, err
	}, `SELECT id, message_id, recipient, local_message_id, payload, created_at, attempts, next_attempt_at, last_error, about
		FROM outbox WHERE next_attempt_at <= ? ORDER BY id LIMIT ?`, ms(due), limit)
}

func rowsAffected(op string, res sql.Result, err error) error {
	if err != nil {
		return dbErr(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return dbErr(op, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, op)
	}
	return nil
}

func queryAll[T any](ctx context.Context, q querier, op string, scan func(interface{ Scan(...any) error }) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, dbErr(op, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, dbErr(op, err)
		}
		out = append(out, v)
	}
	return out, dbErr(op, rows.Err())
}
