package devicestore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/veil-e2ee/veil/protocol"
)

// Hold is a compliance device we know of: device DeviceID of account
// Name belongs to legal hold HoldID, since Since, and has its own
// identity key. The SDK stores one only after checking the hold's
// certificate against the pinned trust root.
type Hold struct {
	Name        string
	DeviceID    uint32
	HoldID      []byte
	IdentityKey protocol.PublicKey
	Since       time.Time
	SeenAt      time.Time
}

// PutHold stores (or replaces) a compliance device. From then on the
// identity store answers for that one device with its own key.
func (t *Tx) PutHold(ctx context.Context, h Hold) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO legal_holds (name, device_id, hold_id, identity_key, since, seen_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (name, device_id) DO UPDATE SET hold_id = excluded.hold_id, identity_key = excluded.identity_key, since = excluded.since`,
		h.Name, h.DeviceID, h.HoldID, h.IdentityKey.Bytes(), h.Since.Unix(), ms(t.now()))
	return dbErr("storing a legal hold", err)
}

// DeleteHold forgets a compliance device (the hold was lifted) and our
// session with it. It reports whether there was one.
func (t *Tx) DeleteHold(ctx context.Context, name string, device uint32) (bool, error) {
	res, err := t.tx.ExecContext(ctx, `DELETE FROM legal_holds WHERE name = ? AND device_id = ?`, name, device)
	if err != nil {
		return false, dbErr("removing a legal hold", err)
	}
	n, _ := res.RowsAffected()
	if n == 0 {
		return false, nil
	}
	return true, t.DeleteSession(ctx, protocol.Address{Name: name, DeviceID: device})
}

// Holds lists the compliance devices we know of, by account then device.
func (r reader) Holds(ctx context.Context) ([]Hold, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT name, device_id, hold_id, identity_key, since, seen_at FROM legal_holds ORDER BY name, device_id`)
	if err != nil {
		return nil, dbErr("listing legal holds", err)
	}
	defer rows.Close()
	var out []Hold
	for rows.Next() {
		var (
			h         Hold
			ik        []byte
			since, at int64
		)
		if err := rows.Scan(&h.Name, &h.DeviceID, &h.HoldID, &ik, &since, &at); err != nil {
			return nil, dbErr("listing legal holds", err)
		}
		if h.IdentityKey, err = protocol.ParsePublicKey(ik); err != nil {
			return nil, fmt.Errorf("%w: stored compliance identity key", ErrCorrupt)
		}
		h.Since, h.SeenAt = time.Unix(since, 0), fromMS(at)
		out = append(out, h)
	}
	return out, dbErr("listing legal holds", rows.Err())
}

// holdKey returns the identity key of a compliance device (ok false if
// addr is not one).
func (r reader) holdKey(ctx context.Context, addr protocol.Address) (protocol.PublicKey, bool, error) {
	var ik []byte
	err := r.q.QueryRowContext(ctx, `SELECT identity_key FROM legal_holds WHERE name = ? AND device_id = ?`, addr.Name, addr.DeviceID).Scan(&ik)
	if err = dbErr("loading a legal hold", err); err != nil {
		if errors.Is(err, ErrNotFound) {
			return protocol.PublicKey{}, false, nil
		}
		return protocol.PublicKey{}, false, err
	}
	k, err := protocol.ParsePublicKey(ik)
	if err != nil {
		return protocol.PublicKey{}, false, fmt.Errorf("%w: stored compliance identity key", ErrCorrupt)
	}
	return k, true, nil
}

// MessagesAfter returns up to limit messages of every conversation with
// local ids above after, in id order (a compliance device's archive
// pages through everything it stored with it).
func (r reader) MessagesAfter(ctx context.Context, after int64, limit int) ([]Message, error) {
	return queryAll(ctx, r.q, "listing messages", scanMessage,
		`SELECT `+messageCols+` FROM messages WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
}
