package devicestore

import (
	"context"
	"fmt"
	"time"

	"github.com/ncruces/go-sqlite3"

	"github.com/veil-e2ee/veil/client/internal/converge"
	"github.com/veil-e2ee/veil/protocol"
)

// History export and import: everything a newly linked device needs to
// show the same conversations — contacts with their identity keys and
// trust, messages with their merged state, reactions and read markers —
// and nothing of the device's own secrets (no session records, no
// prekeys).

// HistoryMessage is one message with the conversation it belongs to and
// its merged state.
type HistoryMessage struct {
	Message
	Peer      string         // the conversation's peer account
	BodyStamp converge.Stamp // the winning body's stamp
}

// EachHistoryMessage calls fn for every message, oldest first, in one
// read snapshot. It reads through the driver's own statement API rather
// than database/sql: a history is every row of the biggest table, and
// this halves the time per row (backups and history transfer are
// row-bound).
func (s *Store) EachHistoryMessage(ctx context.Context, fn func(HistoryMessage) error) error {
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return dbErr("reading history", err)
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		rc, ok := dc.(interface{ Raw() *sqlite3.Conn })
		if !ok {
			return fmt.Errorf("devicestore: reading history: unexpected driver connection %T", dc)
		}
		db := rc.Raw()
		if err := db.Exec(`BEGIN`); err != nil {
			return dbErr("reading history", err)
		}
		defer db.Exec(`ROLLBACK`)
		st, _, err := db.Prepare(`SELECT m.sender, m.sender_device, m.outgoing, m.message_id, m.body, m.sent_at, m.received_at, m.status,
			m.edited, m.deleted, m.body_time, m.body_counter, m.body_origin, c.peer, m.expires_at
			FROM messages m JOIN conversations c ON c.id = m.conversation_id
			WHERE m.expires_at IS NULL OR m.expires_at > ? ORDER BY m.id`)
		if err != nil {
			return dbErr("reading history", err)
		}
		defer st.Close()
		if err := st.BindInt64(1, ms(s.now())); err != nil {
			return dbErr("reading history", err)
		}
		for st.Step() {
			if err := ctx.Err(); err != nil {
				return err
			}
			h := HistoryMessage{Peer: st.ColumnText(13)}
			h.Sender = st.ColumnText(0)
			h.SenderDevice = uint32(st.ColumnInt64(1))
			h.Outgoing = st.ColumnInt64(2) != 0
			h.MessageID = st.ColumnBlob(3, nil)
			h.Body = st.ColumnBlob(4, nil)
			h.SentAt, h.ReceivedAt = fromMS(st.ColumnInt64(5)), fromMS(st.ColumnInt64(6))
			h.Status = Status(st.ColumnInt64(7))
			h.Edited, h.Deleted = st.ColumnInt64(8) != 0, st.ColumnInt64(9) != 0
			h.BodyStamp.Time, h.BodyStamp.Counter, h.BodyStamp.Origin = st.ColumnInt64(10), uint32(st.ColumnInt64(11)), st.ColumnText(12)
			if st.ColumnType(14) != sqlite3.NULL {
				h.ExpiresAt = fromMS(st.ColumnInt64(14))
			}
			if err := fn(h); err != nil {
				return err
			}
		}
		return dbErr("reading history", st.Err())
	})
}

// CountMessages counts the stored messages.
func (r reader) CountMessages(ctx context.Context) (int, error) {
	var n int
	err := r.q.QueryRowContext(ctx, `SELECT count(*) FROM messages`).Scan(&n)
	return n, dbErr("counting messages", err)
}

// ImportMessage stores a message from another device's history with its
// merged state; one already stored (same sender and id) is skipped and
// reported false.
func (t *Tx) ImportMessage(ctx context.Context, h HistoryMessage) (bool, error) {
	conv, ok := t.convIDs[h.Peer]
	if !ok {
		var err error
		if conv, err = t.Conversation(ctx, h.Peer); err != nil {
			return false, err
		}
		if t.convIDs == nil {
			t.convIDs = map[string]int64{}
		}
		t.convIDs[h.Peer] = conv
	}
	var exp any
	if !h.ExpiresAt.IsZero() {
		exp = ms(h.ExpiresAt)
	}
	res, err := t.tx.ExecContext(ctx, `INSERT INTO messages (conversation_id, sender, sender_device, outgoing, message_id, body, sent_at, received_at, status,
		edited, deleted, body_time, body_counter, body_origin, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		conv, h.Sender, h.SenderDevice, h.Outgoing, h.MessageID, h.Body, ms(h.SentAt), ms(h.ReceivedAt), int(h.Status),
		h.Edited, h.Deleted, h.BodyStamp.Time, h.BodyStamp.Counter, h.BodyStamp.Origin, exp)
	if err != nil {
		return false, dbErr("importing message", err)
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return false, dbErr("importing message", err)
	}
	if t.convLast == nil {
		t.convLast = map[int64]int64{}
	}
	t.convLast[conv] = max(t.convLast[conv], ms(h.ReceivedAt))
	return true, nil
}

// FinishImport brings the conversations' last activity up to the
// messages ImportMessage stored; call it once at the end of an import.
func (t *Tx) FinishImport(ctx context.Context) error {
	for conv, last := range t.convLast {
		if _, err := t.tx.ExecContext(ctx, `UPDATE conversations SET last_activity_at = max(last_activity_at, ?) WHERE id = ?`, last, conv); err != nil {
			return dbErr("importing", err)
		}
	}
	clear(t.convLast)
	return nil
}

// HistoryReaction is one reaction (or tombstone) on a message.
type HistoryReaction struct {
	Sender    string
	MessageID []byte
	Reactor   string
	Reaction  converge.Reaction
}

// HistoryReactions returns every reaction row.
func (r reader) HistoryReactions(ctx context.Context) ([]HistoryReaction, error) {
	return queryAll(ctx, r.q, "reading reactions", func(s interface{ Scan(...any) error }) (HistoryReaction, error) {
		var h HistoryReaction
		err := s.Scan(&h.Sender, &h.MessageID, &h.Reactor, &h.Reaction.Emoji, &h.Reaction.Stamp.Time, &h.Reaction.Stamp.Counter, &h.Reaction.Stamp.Origin)
		return h, err
	}, `SELECT sender, message_id, reactor, emoji, time, counter, origin FROM reactions`)
}

// ImportReaction merges a reaction from another device's history (last
// writer wins, as for a received one).
func (t *Tx) ImportReaction(ctx context.Context, h HistoryReaction) error {
	st := converge.State{Sender: h.Sender}
	cur, err := t.reactionState(ctx, h.Sender, h.MessageID)
	if err != nil {
		return err
	}
	st.Reactions = cur
	if !st.Apply(converge.Op{Kind: converge.React, Author: h.Reactor, Stamp: h.Reaction.Stamp, Emoji: h.Reaction.Emoji}) {
		return nil
	}
	rc := st.Reactions[h.Reactor]
	_, err = t.tx.ExecContext(ctx, `INSERT INTO reactions (sender, message_id, reactor, emoji, time, counter, origin) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (sender, message_id, reactor) DO UPDATE SET emoji = excluded.emoji, time = excluded.time, counter = excluded.counter, origin = excluded.origin`,
		h.Sender, h.MessageID, h.Reactor, rc.Emoji, rc.Stamp.Time, rc.Stamp.Counter, rc.Stamp.Origin)
	return dbErr("importing reaction", err)
}

// HistoryReadMarkers returns every read marker by peer.
func (r reader) HistoryReadMarkers(ctx context.Context) (map[string]converge.Stamp, error) {
	type rm struct {
		peer string
		s    converge.Stamp
	}
	list, err := queryAll(ctx, r.q, "reading read markers", func(s interface{ Scan(...any) error }) (rm, error) {
		var x rm
		err := s.Scan(&x.peer, &x.s.Time, &x.s.Counter, &x.s.Origin)
		return x, err
	}, `SELECT peer, time, counter, origin FROM read_markers`)
	if err != nil {
		return nil, err
	}
	out := map[string]converge.Stamp{}
	for _, x := range list {
		out[x.peer] = x.s
	}
	return out, nil
}

// HistoryIdentities returns every peer identity with its trust.
func (r reader) HistoryIdentities(ctx context.Context) ([]IdentityRecord, error) {
	names, err := queryAll(ctx, r.q, "reading identities", func(s interface{ Scan(...any) error }) (string, error) {
		var n string
		return n, s.Scan(&n)
	}, `SELECT name FROM identities ORDER BY name`)
	if err != nil {
		return nil, err
	}
	out := make([]IdentityRecord, 0, len(names))
	for _, n := range names {
		rec, err := r.IdentityRecord(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// ImportIdentity stores a peer identity with its trust from another
// device of the account, unless this device already has one for that
// account (what it learned itself wins).
func (t *Tx) ImportIdentity(ctx context.Context, name string, key protocol.PublicKey, trust Trust, firstSeen time.Time) error {
	if trust != Trusted && trust != Verified && trust != Changed {
		trust = Trusted
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO identities (name, public_key, trust, first_seen) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, key.Bytes(), int(trust), ms(firstSeen))
	return dbErr("importing identity", err)
}

// HistoryTimers returns every conversation's disappearing-messages timer.
func (r reader) HistoryTimers(ctx context.Context) (map[string]Timer, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT peer, seconds, time, counter, origin FROM conversation_timers`)
	if err != nil {
		return nil, dbErr("reading timers", err)
	}
	defer rows.Close()
	out := map[string]Timer{}
	for rows.Next() {
		var (
			peer string
			tm   Timer
		)
		if err := rows.Scan(&peer, &tm.Seconds, &tm.Time, &tm.Counter, &tm.Origin); err != nil {
			return nil, dbErr("reading timers", err)
		}
		out[peer] = tm
	}
	return out, dbErr("reading timers", rows.Err())
}

// ProfileKeys returns the contacts' profile keys.
func (r reader) ProfileKeys(ctx context.Context) (map[string][]byte, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT account_id, key FROM profile_keys`)
	if err != nil {
		return nil, dbErr("reading profile keys", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var (
			a string
			k []byte
		)
		if err := rows.Scan(&a, &k); err != nil {
			return nil, dbErr("reading profile keys", err)
		}
		out[a] = k
	}
	return out, dbErr("reading profile keys", rows.Err())
}
