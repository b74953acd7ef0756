package devicestore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/veil-e2ee/veil/client/internal/converge"
)

// AddOp records an edit, delete or reaction on the message (sender,
// messageID) and reports whether it is new (a duplicate is not an
// error). The message need not be stored yet.
func (t *Tx) AddOp(ctx context.Context, sender string, messageID []byte, op converge.Op) (bool, error) {
	res, err := t.tx.ExecContext(ctx, `INSERT INTO ops (sender, message_id, kind, author, time, counter, origin, body, emoji)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		sender, messageID, int(op.Kind), op.Author, op.Stamp.Time, op.Stamp.Counter, op.Stamp.Origin, op.Body, op.Emoji)
	if err != nil {
		return false, dbErr("recording op", err)
	}
	n, err := res.RowsAffected()
	return n > 0, dbErr("recording op", err)
}

// Ops returns the recorded operations on a message.
func (r reader) Ops(ctx context.Context, sender string, messageID []byte) ([]converge.Op, error) {
	return queryAll(ctx, r.q, "listing ops", func(s interface{ Scan(...any) error }) (converge.Op, error) {
		var (
			op   converge.Op
			kind int
		)
		err := s.Scan(&kind, &op.Author, &op.Stamp.Time, &op.Stamp.Counter, &op.Stamp.Origin, &op.Body, &op.Emoji)
		op.Kind = converge.Kind(kind)
		return op, err
	}, `SELECT kind, author, time, counter, origin, body, emoji FROM ops WHERE sender = ? AND message_id = ?`, sender, messageID)
}

// MessageState loads the merge state of a stored message (ErrNotFound
// if the message has not arrived).
func (r reader) MessageState(ctx context.Context, sender string, messageID []byte) (int64, converge.State, error) {
	var (
		id   int64
		st   = converge.State{Sender: sender, Posted: true}
		body []byte
	)
	err := r.q.QueryRowContext(ctx, `SELECT id, body, body_time, body_counter, body_origin, edited, deleted FROM messages WHERE sender = ? AND message_id = ?`,
		sender, messageID).Scan(&id, &body, &st.BodyStamp.Time, &st.BodyStamp.Counter, &st.BodyStamp.Origin, &st.Edited, &st.Deleted)
	if err != nil {
		return 0, converge.State{}, dbErr("loading message state", err)
	}
	st.Body = string(body)
	st.Reactions, err = r.reactionState(ctx, sender, messageID)
	return id, st, err
}

func (r reader) reactionState(ctx context.Context, sender string, messageID []byte) (map[string]converge.Reaction, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT reactor, emoji, time, counter, origin FROM reactions WHERE sender = ? AND message_id = ?`, sender, messageID)
	if err != nil {
		return nil, dbErr("loading reactions", err)
	}
	defer rows.Close()
	m := map[string]converge.Reaction{}
	for rows.Next() {
		var (
			who string
			rc  converge.Reaction
		)
		if err := rows.Scan(&who, &rc.Emoji, &rc.Stamp.Time, &rc.Stamp.Counter, &rc.Stamp.Origin); err != nil {
			return nil, dbErr("loading reactions", err)
		}
		m[who] = rc
	}
	return m, dbErr("loading reactions", rows.Err())
}

// SaveMessageState writes a message's merged state back: body, its
// stamp, the edited and deleted flags, and the reactions. Deleting also
// clears the text of every edit recorded for it.
func (t *Tx) SaveMessageState(ctx context.Context, id int64, messageID []byte, st converge.State) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE messages SET body = ?, body_time = ?, body_counter = ?, body_origin = ?, edited = ?, deleted = ? WHERE id = ?`,
		[]byte(st.Body), st.BodyStamp.Time, st.BodyStamp.Counter, st.BodyStamp.Origin, st.Edited, st.Deleted, id)
	if err != nil {
		return dbErr("saving message state", err)
	}
	if st.Deleted {
		if _, err := t.tx.ExecContext(ctx, `UPDATE ops SET body = '' WHERE sender = ? AND message_id = ? AND body != ''`, st.Sender, messageID); err != nil {
			return dbErr("clearing deleted text", err)
		}
	}
	for who, rc := range st.Reactions {
		_, err := t.tx.ExecContext(ctx, `INSERT INTO reactions (sender, message_id, reactor, emoji, time, counter, origin) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (sender, message_id, reactor) DO UPDATE SET emoji = excluded.emoji, time = excluded.time, counter = excluded.counter, origin = excluded.origin`,
			st.Sender, messageID, who, rc.Emoji, rc.Stamp.Time, rc.Stamp.Counter, rc.Stamp.Origin)
		if err != nil {
			return dbErr("saving reaction", err)
		}
	}
	return nil
}

// Reactions returns the reactions in force on a message, by reacting
// account (removed ones left out).
func (r reader) Reactions(ctx context.Context, sender string, messageID []byte) (map[string]string, error) {
	m, err := r.reactionState(ctx, sender, messageID)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for who, rc := range m {
		if rc.Emoji != "" {
			out[who] = rc.Emoji
		}
	}
	return out, nil
}

// ReadMarker returns how far this account has read the conversation with
// peer (the zero stamp if never).
func (r reader) ReadMarker(ctx context.Context, peer string) (converge.Stamp, error) {
	var s converge.Stamp
	err := r.q.QueryRowContext(ctx, `SELECT time, counter, origin FROM read_markers WHERE peer = ?`, peer).Scan(&s.Time, &s.Counter, &s.Origin)
	if errors.Is(err, sql.ErrNoRows) {
		return converge.Stamp{}, nil
	}
	return s, dbErr("loading read marker", err)
}

// AdvanceReadMarker moves the marker of the conversation with peer to s
// if s is further, and reports whether it moved.
func (t *Tx) AdvanceReadMarker(ctx context.Context, peer string, s converge.Stamp) (bool, error) {
	cur, err := t.ReadMarker(ctx, peer)
	if err != nil {
		return false, err
	}
	m := converge.ReadMarker{Stamp: cur}
	if !m.Advance(s) {
		return false, nil
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO read_markers (peer, time, counter, origin) VALUES (?, ?, ?, ?)
		ON CONFLICT (peer) DO UPDATE SET time = excluded.time, counter = excluded.counter, origin = excluded.origin`, peer, s.Time, s.Counter, s.Origin)
	return err == nil, dbErr("saving read marker", err)
}
