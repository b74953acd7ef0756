package devicestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/veil-e2ee/veil/protocol"
)

// ---- Byte-string settings -------------------------------------------------

// BlobSetting returns a named byte string, and whether it is set.
func (r reader) BlobSetting(ctx context.Context, name string) ([]byte, bool, error) {
	var v []byte
	err := r.q.QueryRowContext(ctx, `SELECT value FROM blob_settings WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	return v, err == nil, dbErr("loading setting", err)
}

// SetBlobSetting stores a named byte string.
func (t *Tx) SetBlobSetting(ctx context.Context, name string, value []byte) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO blob_settings (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
	return dbErr("storing setting", err)
}

// ---- Profile keys -----------------------------------------------------------

// ProfileKey returns a contact's profile key (ErrNotFound if unknown).
func (r reader) ProfileKey(ctx context.Context, account string) ([]byte, error) {
	var k []byte
	err := r.q.QueryRowContext(ctx, `SELECT key FROM profile_keys WHERE account_id = ?`, account).Scan(&k)
	return k, dbErr("loading profile key", err)
}

// SetProfileKey stores a contact's profile key.
func (t *Tx) SetProfileKey(ctx context.Context, account string, key []byte) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO profile_keys (account_id, key) VALUES (?, ?)
		ON CONFLICT (account_id) DO UPDATE SET key = excluded.key`, account, key)
	return dbErr("storing profile key", err)
}

// ForgetProfileKey drops a contact's profile key (the server refused it:
// it changed).
func (t *Tx) ForgetProfileKey(ctx context.Context, account string) error {
	_, err := t.tx.ExecContext(ctx, `DELETE FROM profile_keys WHERE account_id = ?`, account)
	return dbErr("forgetting profile key", err)
}

// ---- Sender keys (protocol.SenderKeyStore) --------------------------------

var _ protocol.SenderKeyStore = (*Tx)(nil)

// LoadSenderKey implements [protocol.SenderKeyStore].
func (t *Tx) LoadSenderKey(ctx context.Context, sender protocol.Address, id protocol.DistributionID) (*protocol.SenderKeyRecord, error) {
	var b []byte
	err := t.tx.QueryRowContext(ctx, `SELECT record FROM sender_keys WHERE sender = ? AND device = ? AND distribution = ?`,
		sender.Name, sender.DeviceID, id[:]).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, dbErr("loading sender key", err)
	}
	r, err := protocol.ParseSenderKeyRecord(b)
	if err != nil {
		return nil, fmt.Errorf("%w: sender key record: %v", ErrCorrupt, err)
	}
	return r, nil
}

// StoreSenderKey implements [protocol.SenderKeyStore].
func (t *Tx) StoreSenderKey(ctx context.Context, sender protocol.Address, id protocol.DistributionID, r *protocol.SenderKeyRecord) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO sender_keys (sender, device, distribution, record) VALUES (?, ?, ?, ?)
		ON CONFLICT (sender, device, distribution) DO UPDATE SET record = excluded.record`, sender.Name, sender.DeviceID, id[:], r.Marshal())
	return dbErr("storing sender key", err)
}

// DeleteSenderKey forgets a sender-key record (ours, to rotate).
func (t *Tx) DeleteSenderKey(ctx context.Context, sender protocol.Address, id protocol.DistributionID) error {
	_, err := t.tx.ExecContext(ctx, `DELETE FROM sender_keys WHERE sender = ? AND device = ? AND distribution = ?`, sender.Name, sender.DeviceID, id[:])
	return dbErr("deleting sender key", err)
}

// ---- Groups -----------------------------------------------------------------

// Group is our side of a group: our sender key's distribution id and the
// membership epoch it was made for.
type Group struct {
	ID           []byte
	Distribution [16]byte
	Epoch        int
}

// AddGroupOp adds an encoded operation to a group's log; it reports
// whether it was new.
func (t *Tx) AddGroupOp(ctx context.Context, group, op []byte) (bool, error) {
	res, err := t.tx.ExecContext(ctx, `INSERT INTO group_ops (group_id, op) VALUES (?, ?) ON CONFLICT DO NOTHING`, group, op)
	if err != nil {
		return false, dbErr("storing group operation", err)
	}
	n, err := res.RowsAffected()
	return n > 0, dbErr("storing group operation", err)
}

// GroupOps returns a group's encoded operations.
func (r reader) GroupOps(ctx context.Context, group []byte) ([][]byte, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT op FROM group_ops WHERE group_id = ?`, group)
	if err != nil {
		return nil, dbErr("loading group operations", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, dbErr("loading group operations", err)
		}
		out = append(out, b)
	}
	return out, dbErr("loading group operations", rows.Err())
}

// GroupIDs lists the groups with a log.
func (r reader) GroupIDs(ctx context.Context) ([][]byte, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT DISTINCT group_id FROM group_ops ORDER BY group_id`)
	if err != nil {
		return nil, dbErr("listing groups", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, dbErr("listing groups", err)
		}
		out = append(out, b)
	}
	return out, dbErr("listing groups", rows.Err())
}

// OurGroup returns our side of a group (ErrNotFound before we first
// sent to it).
func (r reader) OurGroup(ctx context.Context, id []byte) (Group, error) {
	g := Group{ID: id}
	var d []byte
	err := r.q.QueryRowContext(ctx, `SELECT distribution, epoch FROM groups WHERE id = ?`, id).Scan(&d, &g.Epoch)
	if err != nil {
		return g, dbErr("loading group", err)
	}
	copy(g.Distribution[:], d)
	return g, nil
}

// SetOurGroup stores our side of a group; a new distribution id or epoch
// forgets who held the old key.
func (t *Tx) SetOurGroup(ctx context.Context, g Group) error {
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM sender_key_shared WHERE group_id = ?`, g.ID); err != nil {
		return dbErr("storing group", err)
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO groups (id, distribution, epoch) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET distribution = excluded.distribution, epoch = excluded.epoch`, g.ID, g.Distribution[:], g.Epoch)
	return dbErr("storing group", err)
}

// SharedSenderKey reports the member devices holding our current sender
// key for a group, as "account.device" strings.
func (r reader) SharedSenderKey(ctx context.Context, group []byte) (map[protocol.Address]bool, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT account, device FROM sender_key_shared WHERE group_id = ?`, group)
	if err != nil {
		return nil, dbErr("loading sender-key recipients", err)
	}
	defer rows.Close()
	out := map[protocol.Address]bool{}
	for rows.Next() {
		var a protocol.Address
		if err := rows.Scan(&a.Name, &a.DeviceID); err != nil {
			return nil, dbErr("loading sender-key recipients", err)
		}
		out[a] = true
	}
	return out, dbErr("loading sender-key recipients", rows.Err())
}

// MarkSenderKeyShared records that a device holds our current sender key.
func (t *Tx) MarkSenderKeyShared(ctx context.Context, group []byte, to protocol.Address) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO sender_key_shared (group_id, account, device) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, group, to.Name, to.DeviceID)
	return dbErr("recording sender-key recipient", err)
}

// ConversationByPeer returns the id of the conversation with a peer
// (ErrNotFound if there is none).
func (r reader) ConversationByPeer(ctx context.Context, peer string) (int64, error) {
	var id int64
	err := r.q.QueryRowContext(ctx, `SELECT id FROM conversations WHERE peer = ?`, peer).Scan(&id)
	return id, dbErr("loading conversation", err)
}
