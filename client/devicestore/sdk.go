package devicestore

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// ---- Send log ------------------------------------------------------------

// LogSend records the payload sent under a transport message id, so a
// peer that could not decrypt it can ask for it again.
func (t *Tx) LogSend(ctx context.Context, messageID []byte, recipient string, payload []byte) error {
	return t.LogSendAbout(ctx, messageID, recipient, payload, 0)
}

// LogSendAbout is LogSend for a payload that carries the text of local
// message about (0: none), so removing the message removes the payload.
func (t *Tx) LogSendAbout(ctx context.Context, messageID []byte, recipient string, payload []byte, about int64) error {
	var a any
	if about != 0 {
		a = about
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO send_log (message_id, recipient, payload, sent_at, about) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (message_id) DO NOTHING`, messageID, recipient, payload, ms(t.now()), a)
	return dbErr("logging send", err)
}

// SentPayload returns the payload logged under a transport message id
// for recipient (ErrNotFound if none, or it was sent to someone else).
func (r reader) SentPayload(ctx context.Context, messageID []byte, recipient string) ([]byte, error) {
	var p []byte
	err := r.q.QueryRowContext(ctx, `SELECT payload FROM send_log WHERE message_id = ? AND recipient = ?`, messageID, recipient).Scan(&p)
	return p, dbErr("loading sent payload", err)
}

// PruneSendLog deletes send-log entries older than before and reports
// how many went.
func (t *Tx) PruneSendLog(ctx context.Context, before time.Time) (int64, error) {
	res, err := t.tx.ExecContext(ctx, `DELETE FROM send_log WHERE sent_at < ?`, ms(before))
	if err != nil {
		return 0, dbErr("pruning send log", err)
	}
	n, err := res.RowsAffected()
	return n, dbErr("pruning send log", err)
}

// ---- Settings --------------------------------------------------------------

// Setting returns a named integer, and whether it is set.
func (r reader) Setting(ctx context.Context, name string) (int64, bool, error) {
	var v int64
	err := r.q.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return v, err == nil, dbErr("loading setting", err)
}

// SetSetting stores a named integer.
func (t *Tx) SetSetting(ctx context.Context, name string, value int64) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO settings (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
	return dbErr("storing setting", err)
}

// ---- Our prekeys, for rotation -------------------------------------------

// KeyInfo is the id and creation time of one of our signed or
// last-resort prekeys (no key material).
type KeyInfo struct {
	ID        uint32
	CreatedAt time.Time
}

// SignedPreKeyInfos lists our signed prekeys, newest first.
func (r reader) SignedPreKeyInfos(ctx context.Context) ([]KeyInfo, error) {
	return queryAll(ctx, r.q, "listing signed prekeys", scanKeyInfo,
		`SELECT id, created_at FROM signed_prekeys ORDER BY created_at DESC, id DESC`)
}

// LastResortKyberInfos lists our last-resort Kyber prekeys, newest first.
func (r reader) LastResortKyberInfos(ctx context.Context) ([]KeyInfo, error) {
	return queryAll(ctx, r.q, "listing last-resort Kyber prekeys", scanKeyInfo,
		`SELECT id, created_at FROM kyber_prekeys WHERE last_resort = 1 ORDER BY created_at DESC, id DESC`)
}

func scanKeyInfo(s interface{ Scan(...any) error }) (KeyInfo, error) {
	var (
		k  KeyInfo
		at int64
	)
	err := s.Scan(&k.ID, &at)
	k.CreatedAt = fromMS(at)
	return k, err
}

// ---- Processed envelopes ------------------------------------------------

// MarkReceived records that the envelope with a transport id from sender
// was processed (recording it twice is not an error).
func (t *Tx) MarkReceived(ctx context.Context, sender string, messageID []byte) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO received (sender, message_id, received_at) VALUES (?, ?, ?)
		ON CONFLICT (sender, message_id) DO NOTHING`, sender, messageID, ms(t.now()))
	return dbErr("recording received envelope", err)
}

// WasReceived reports whether MarkReceived recorded the envelope.
func (r reader) WasReceived(ctx context.Context, sender string, messageID []byte) (bool, error) {
	var n int
	err := r.q.QueryRowContext(ctx, `SELECT count(*) FROM received WHERE sender = ? AND message_id = ?`, sender, messageID).Scan(&n)
	return n > 0, dbErr("looking up received envelope", err)
}

// PruneReceived forgets envelopes recorded before before.
func (t *Tx) PruneReceived(ctx context.Context, before time.Time) error {
	_, err := t.tx.ExecContext(ctx, `DELETE FROM received WHERE received_at < ?`, ms(before))
	return dbErr("pruning received envelopes", err)
}

// Savepoint runs fn inside a savepoint of the transaction: if fn fails,
// what it wrote is undone and the rest of the transaction stands. The
// SDK processes a batch of envelopes in one transaction (one commit, one
// fsync) with each envelope in its own savepoint.
func (t *Tx) Savepoint(ctx context.Context, fn func() error) error {
	if _, err := t.tx.ExecContext(ctx, `SAVEPOINT envelope`); err != nil {
		return dbErr("savepoint", err)
	}
	if err := fn(); err != nil {
		if _, rerr := t.tx.ExecContext(ctx, `ROLLBACK TO envelope`); rerr != nil {
			return errors.Join(err, dbErr("rolling back to savepoint", rerr))
		}
		if _, rerr := t.tx.ExecContext(ctx, `RELEASE envelope`); rerr != nil {
			return errors.Join(err, dbErr("releasing savepoint", rerr))
		}
		return err
	}
	_, err := t.tx.ExecContext(ctx, `RELEASE envelope`)
	return dbErr("releasing savepoint", err)
}
