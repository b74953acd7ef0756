package devicestore

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Timer is a conversation's disappearing-messages setting and the hybrid
// clock stamp it was set at (the greatest stamp wins on every device).
type Timer struct {
	Seconds uint32 // 0: messages stay
	Time    int64
	Counter uint32
	Origin  string
}

// ConversationTimer returns the timer of the conversation with peer (the
// zero Timer if none was ever set).
func (r reader) ConversationTimer(ctx context.Context, peer string) (Timer, error) {
	var tm Timer
	err := r.q.QueryRowContext(ctx, `SELECT seconds, time, counter, origin FROM conversation_timers WHERE peer = ?`, peer).
		Scan(&tm.Seconds, &tm.Time, &tm.Counter, &tm.Origin)
	if errors.Is(err, sql.ErrNoRows) {
		return Timer{}, nil
	}
	return tm, dbErr("loading timer", err)
}

// SetConversationTimer stores a conversation's timer (the caller decided
// it wins).
func (t *Tx) SetConversationTimer(ctx context.Context, peer string, tm Timer) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO conversation_timers (peer, seconds, time, counter, origin) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (peer) DO UPDATE SET seconds = excluded.seconds, time = excluded.time, counter = excluded.counter, origin = excluded.origin`,
		peer, tm.Seconds, tm.Time, tm.Counter, tm.Origin)
	return dbErr("storing timer", err)
}

// Expire removes the messages whose time is up (expires_at ≤ now) with
// every copy of their text this database holds: edits, reactions, queued
// and logged sends. The search index follows by its triggers. It returns
// how many messages went.
func (t *Tx) Expire(ctx context.Context, now time.Time) (int, error) {
	rows, err := t.tx.QueryContext(ctx, `SELECT id FROM messages WHERE expires_at IS NOT NULL AND expires_at <= ?`, ms(now))
	if err != nil {
		return 0, dbErr("expiring messages", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, dbErr("expiring messages", err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, dbErr("expiring messages", err)
	}
	for _, id := range ids {
		if err := t.RemoveMessage(ctx, id); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// RemoveMessage deletes a message and every copy of its text: its edits
// and reactions, and the sends about it still queued or logged.
func (t *Tx) RemoveMessage(ctx context.Context, id int64) error {
	if err := t.PurgeCopies(ctx, id); err != nil {
		return err
	}
	for _, q := range []string{
		`DELETE FROM ops WHERE (sender, message_id) IN (SELECT sender, message_id FROM messages WHERE id = ?)`,
		`DELETE FROM reactions WHERE (sender, message_id) IN (SELECT sender, message_id FROM messages WHERE id = ?)`,
		`DELETE FROM messages WHERE id = ?`,
	} {
		if _, err := t.tx.ExecContext(ctx, q, id); err != nil {
			return dbErr("removing message", err)
		}
	}
	return nil
}

// PurgeCopies deletes the queued and logged sends that carry message id's
// text (a message deleted for everyone keeps its row, emptied, but not
// its text elsewhere).
func (t *Tx) PurgeCopies(ctx context.Context, id int64) error {
	for _, q := range []string{`DELETE FROM send_log WHERE about = ?`, `DELETE FROM outbox WHERE about = ?`} {
		if _, err := t.tx.ExecContext(ctx, q, id); err != nil {
			return dbErr("removing copies of a message", err)
		}
	}
	return nil
}

// NextExpiry is when the next message expires (zero if none will).
func (r reader) NextExpiry(ctx context.Context) (time.Time, error) {
	var v sql.NullInt64
	err := r.q.QueryRowContext(ctx, `SELECT min(expires_at) FROM messages WHERE expires_at IS NOT NULL`).Scan(&v)
	if err != nil || !v.Valid {
		return time.Time{}, dbErr("loading next expiry", err)
	}
	return fromMS(v.Int64), nil
}
