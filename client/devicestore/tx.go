package devicestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/veil-e2ee/veil/protocol"
)

// querier is what reads need: a pool (*sql.DB) or a transaction (*sql.Tx).
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// reader holds the read methods shared by Store (each call its own
// snapshot, on a reader connection) and Tx (inside the transaction).
type reader struct{ q querier }

// Tx is one write transaction, valid only inside the function passed to
// Store.Update. It implements every protocol store interface, so
// protocol.NewCipher(protocol.StoresOf(tx), …) keeps its ratchet state in
// this transaction. A Tx is not safe for concurrent use.
type Tx struct {
	reader
	tx  cachedTx
	now func() time.Time

	convIDs  map[string]int64 // conversation ids by peer, for imports
	convLast map[int64]int64  // latest imported receive time by conversation
}

var _ protocol.AllStores = (*Tx)(nil)

// Trust is how much we trust a peer's identity key.
type Trust int

const (
	// Trusted: accepted on first use, or accepted by the user after a
	// change.
	Trusted Trust = 1
	// Verified: the user compared safety numbers. A key change clears it.
	Verified Trust = 2
	// Changed: this key replaced an earlier one and the user has not
	// accepted it yet (AcceptIdentity, or SetVerified after comparing
	// safety numbers). Messages from it are received; nothing is
	// encrypted to it.
	Changed Trust = 3
)

func (t Trust) String() string {
	switch t {
	case Trusted:
		return "trusted"
	case Verified:
		return "verified"
	case Changed:
		return "changed"
	}
	return fmt.Sprintf("Trust(%d)", int(t))
}

// IdentityRecord is what we know about a peer account's identity key.
type IdentityRecord struct {
	Name      string // the account (protocol.Address.Name)
	Key       protocol.PublicKey
	Trust     Trust
	FirstSeen time.Time // when this key was first stored for the address
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v) }

// ---- IdentityStore ---------------------------------------------------------

// IdentityKeyPair returns our identity key pair (ErrNotFound before
// SetLocalIdentity).
func (r reader) IdentityKeyPair(ctx context.Context) (protocol.IdentityKeyPair, error) {
	var priv []byte
	err := r.q.QueryRowContext(ctx, `SELECT private_key FROM local_identity WHERE id = 1`).Scan(&priv)
	defer clear(priv)
	if err != nil {
		return protocol.IdentityKeyPair{}, dbErr("loading our identity", err)
	}
	k, err := protocol.ParsePrivateKey(priv)
	if err != nil {
		return protocol.IdentityKeyPair{}, fmt.Errorf("%w: our identity key", ErrCorrupt)
	}
	return protocol.NewKeyPair(k), nil
}

// LocalRegistrationID returns our registration id (ErrNotFound before
// SetLocalIdentity).
func (r reader) LocalRegistrationID(ctx context.Context) (uint32, error) {
	var id uint32
	err := r.q.QueryRowContext(ctx, `SELECT registration_id FROM local_identity WHERE id = 1`).Scan(&id)
	if err != nil {
		return 0, dbErr("loading our registration id", err)
	}
	return id, nil
}

// Identity returns the identity key stored for addr's account. Identities
// are kept per account (addr.Name): every device of an account shares its
// identity key.
//
// The one exception is a compliance device of a legal hold (PutHold): it
// has its own identity key, and the account's is not touched by it.
func (r reader) Identity(ctx context.Context, addr protocol.Address) (protocol.PublicKey, bool, error) {
	if k, ok, err := r.holdKey(ctx, addr); ok || err != nil {
		return k, ok, err
	}
	rec, err := r.IdentityRecord(ctx, addr.Name)
	if errors.Is(err, ErrNotFound) {
		return protocol.PublicKey{}, false, nil
	}
	if err != nil {
		return protocol.PublicKey{}, false, err
	}
	return rec.Key, true, nil
}

// IdentityRecord returns an account's identity key with its trust state
// (ErrNotFound if none is stored).
func (r reader) IdentityRecord(ctx context.Context, name string) (IdentityRecord, error) {
	var (
		key   []byte
		trust int
		first int64
	)
	err := r.q.QueryRowContext(ctx, `SELECT public_key, trust, first_seen FROM identities WHERE name = ?`,
		name).Scan(&key, &trust, &first)
	if err != nil {
		return IdentityRecord{}, dbErr("loading identity", err)
	}
	pk, err := protocol.ParsePublicKey(key)
	if err != nil {
		return IdentityRecord{}, fmt.Errorf("%w: stored identity key", ErrCorrupt)
	}
	return IdentityRecord{Name: name, Key: pk, Trust: Trust(trust), FirstSeen: fromMS(first)}, nil
}

// IsTrustedIdentity is trust on first use with Signal's rule for changes.
// Receiving: always true; a new key is then stored by SaveIdentity as
// Changed, so a contact who reinstalled can still reach us. Sending: true
// if nothing is stored for addr's account, or the stored key equals key
// and is not Changed: a new key must be accepted before we encrypt to it.
func (r reader) IsTrustedIdentity(ctx context.Context, addr protocol.Address, key protocol.PublicKey, dir protocol.Direction) (bool, error) {
	if dir == protocol.Receiving {
		return true, nil
	}
	if k, ok, err := r.holdKey(ctx, addr); ok || err != nil {
		return ok && k.Equal(key), err
	}
	rec, err := r.IdentityRecord(ctx, addr.Name)
	if errors.Is(err, ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return rec.Key.Equal(key) && rec.Trust != Changed, nil
}

// SetLocalIdentity stores our identity key pair and registration id, once
// (ErrExists if already set).
func (t *Tx) SetLocalIdentity(ctx context.Context, id protocol.IdentityKeyPair, registrationID uint32) error {
	priv := id.Private.Bytes()
	defer clear(priv)
	_, err := t.tx.ExecContext(ctx, `INSERT INTO local_identity (id, private_key, registration_id, created_at) VALUES (1, ?, ?, ?)`,
		priv, registrationID, ms(t.now()))
	if err = dbErr("storing our identity", err); errors.Is(err, ErrDuplicate) {
		return fmt.Errorf("%w: our identity is already set", ErrExists)
	}
	return err
}

// SaveIdentity stores key as the identity of addr's account. It reports
// whether a different key was stored before. The first key is Trusted; a
// changed key is stored as Changed (the verified mark is cleared, and
// sending stops until AcceptIdentity) with FirstSeen now. Saving the same
// key changes nothing, a Verified or Changed mark included.
//
// For a compliance device (PutHold) nothing is saved: its key is the one
// its hold certificate names, and the account's identity stays.
func (t *Tx) SaveIdentity(ctx context.Context, addr protocol.Address, key protocol.PublicKey) (bool, error) {
	if k, ok, err := t.holdKey(ctx, addr); ok || err != nil {
		return ok && !k.Equal(key), err
	}
	old, ok, err := t.Identity(ctx, addr)
	if err != nil {
		return false, err
	}
	if ok && old.Equal(key) {
		return false, nil
	}
	trust := Trusted
	if ok {
		trust = Changed
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO identities (name, public_key, trust, first_seen) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET public_key = excluded.public_key, trust = excluded.trust, first_seen = excluded.first_seen`,
		addr.Name, key.Bytes(), int(trust), ms(t.now()))
	if err != nil {
		return false, dbErr("saving identity", err)
	}
	return ok, nil
}

// SetVerified marks an account's identity Verified (verified=true) or
// takes the mark away (verified=false: back to Trusted; a Changed key
// stays Changed). Verifying a Changed key accepts it. key is the key whose
// safety number the user compared: if it is not the stored one (it
// changed meanwhile) the result is ErrIdentityMismatch and nothing
// changes.
func (t *Tx) SetVerified(ctx context.Context, name string, key protocol.PublicKey, verified bool) error {
	rec, err := t.IdentityRecord(ctx, name)
	if err != nil {
		return err
	}
	if !rec.Key.Equal(key) {
		return fmt.Errorf("%w: %s", ErrIdentityMismatch, name)
	}
	trust := Trusted
	switch {
	case verified:
		trust = Verified
	case rec.Trust == Changed:
		return nil
	}
	_, err = t.tx.ExecContext(ctx, `UPDATE identities SET trust = ? WHERE name = ?`, int(trust), name)
	return dbErr("setting trust", err)
}

// AcceptIdentity accepts a Changed key: it becomes Trusted, and sending
// resumes. key is the key the user was shown; if another one is stored
// now, the result is ErrIdentityMismatch and nothing changes. Accepting a
// key that is not Changed changes nothing.
func (t *Tx) AcceptIdentity(ctx context.Context, name string, key protocol.PublicKey) error {
	rec, err := t.IdentityRecord(ctx, name)
	if err != nil {
		return err
	}
	if !rec.Key.Equal(key) {
		return fmt.Errorf("%w: %s", ErrIdentityMismatch, name)
	}
	if rec.Trust != Changed {
		return nil
	}
	_, err = t.tx.ExecContext(ctx, `UPDATE identities SET trust = ? WHERE name = ?`, int(Trusted), name)
	return dbErr("accepting identity", err)
}

// ---- PreKeyStore -------------------------------------------------------------

// LoadPreKey returns a one-time prekey; an unknown id is
// protocol.ErrNoPreKey (and ErrNotFound).
func (r reader) LoadPreKey(ctx context.Context, id uint32) (protocol.PreKeyRecord, error) {
	var b []byte
	err := r.q.QueryRowContext(ctx, `SELECT record FROM prekeys WHERE id = ?`, id).Scan(&b)
	defer clear(b)
	if errors.Is(err, sql.ErrNoRows) {
		return protocol.PreKeyRecord{}, fmt.Errorf("%w: %w: prekey %d", protocol.ErrNoPreKey, ErrNotFound, id)
	}
	if err != nil {
		return protocol.PreKeyRecord{}, dbErr("loading prekey", err)
	}
	rec, err := protocol.ParsePreKeyRecord(b)
	if err != nil {
		return protocol.PreKeyRecord{}, fmt.Errorf("%w: prekey %d", ErrCorrupt, id)
	}
	return rec, nil
}

// StorePreKey stores (or replaces) a one-time prekey.
func (t *Tx) StorePreKey(ctx context.Context, rec protocol.PreKeyRecord) error {
	b := rec.Marshal()
	defer clear(b)
	_, err := t.tx.ExecContext(ctx, `INSERT OR REPLACE INTO prekeys (id, record) VALUES (?, ?)`, rec.ID, b)
	return dbErr("storing prekey", err)
}

// RemovePreKey deletes a one-time prekey (no error if it is gone).
func (t *Tx) RemovePreKey(ctx context.Context, id uint32) error {
	_, err := t.tx.ExecContext(ctx, `DELETE FROM prekeys WHERE id = ?`, id)
	return dbErr("removing prekey", err)
}

// ---- SignedPreKeyStore -------------------------------------------------------

// LoadSignedPreKey returns a signed prekey; an unknown id is
// protocol.ErrNoSignedPreKey (and ErrNotFound).
func (r reader) LoadSignedPreKey(ctx context.Context, id uint32) (protocol.SignedPreKeyRecord, error) {
	var b []byte
	err := r.q.QueryRowContext(ctx, `SELECT record FROM signed_prekeys WHERE id = ?`, id).Scan(&b)
	defer clear(b)
	if errors.Is(err, sql.ErrNoRows) {
		return protocol.SignedPreKeyRecord{}, fmt.Errorf("%w: %w: signed prekey %d", protocol.ErrNoSignedPreKey, ErrNotFound, id)
	}
	if err != nil {
		return protocol.SignedPreKeyRecord{}, dbErr("loading signed prekey", err)
	}
	rec, err := protocol.ParseSignedPreKeyRecord(b)
	if err != nil {
		return protocol.SignedPreKeyRecord{}, fmt.Errorf("%w: signed prekey %d", ErrCorrupt, id)
	}
	return rec, nil
}

// StoreSignedPreKey stores (or replaces) a signed prekey.
func (t *Tx) StoreSignedPreKey(ctx context.Context, rec protocol.SignedPreKeyRecord) error {
	b := rec.Marshal()
	defer clear(b)
	_, err := t.tx.ExecContext(ctx, `INSERT OR REPLACE INTO signed_prekeys (id, record, created_at) VALUES (?, ?, ?)`,
		rec.ID, b, ms(rec.Timestamp))
	return dbErr("storing signed prekey", err)
}

// RemoveSignedPreKey deletes a signed prekey (after rotation and its
// grace period).
func (t *Tx) RemoveSignedPreKey(ctx context.Context, id uint32) error {
	_, err := t.tx.ExecContext(ctx, `DELETE FROM signed_prekeys WHERE id = ?`, id)
	return dbErr("removing signed prekey", err)
}

// ---- KyberPreKeyStore --------------------------------------------------------

// LoadKyberPreKey returns a Kyber prekey; an unknown id is
// protocol.ErrNoKyberPreKey (and ErrNotFound).
func (r reader) LoadKyberPreKey(ctx context.Context, id uint32) (protocol.KyberPreKeyRecord, error) {
	var b []byte
	err := r.q.QueryRowContext(ctx, `SELECT record FROM kyber_prekeys WHERE id = ?`, id).Scan(&b)
	defer clear(b)
	if errors.Is(err, sql.ErrNoRows) {
		return protocol.KyberPreKeyRecord{}, fmt.Errorf("%w: %w: Kyber prekey %d", protocol.ErrNoKyberPreKey, ErrNotFound, id)
	}
	if err != nil {
		return protocol.KyberPreKeyRecord{}, dbErr("loading Kyber prekey", err)
	}
	rec, err := protocol.ParseKyberPreKeyRecord(b)
	if err != nil {
		return protocol.KyberPreKeyRecord{}, fmt.Errorf("%w: Kyber prekey %d", ErrCorrupt, id)
	}
	return rec, nil
}

// StoreKyberPreKey stores (or replaces) a Kyber prekey.
func (t *Tx) StoreKyberPreKey(ctx context.Context, rec protocol.KyberPreKeyRecord) error {
	b := rec.Marshal()
	defer clear(b)
	_, err := t.tx.ExecContext(ctx, `INSERT OR REPLACE INTO kyber_prekeys (id, record, last_resort, created_at) VALUES (?, ?, ?, ?)`,
		rec.ID, b, rec.LastResort, ms(rec.Timestamp))
	return dbErr("storing Kyber prekey", err)
}

// MarkKyberPreKeyUsed deletes a one-time Kyber prekey. A last-resort key
// is kept, and the (signed prekey, base key) pair that used it is
// recorded: a second PreKey message with the same pair is a replay and
// fails with ErrKyberPreKeyReused (which also matches protocol.ErrPreKeyReplayed,
// so the Cipher reports the message as a duplicate). An unknown id is not an error.
func (t *Tx) MarkKyberPreKeyUsed(ctx context.Context, id uint32, signedPreKeyID uint32, baseKey protocol.PublicKey) error {
	var lastResort bool
	err := t.tx.QueryRowContext(ctx, `SELECT last_resort FROM kyber_prekeys WHERE id = ?`, id).Scan(&lastResort)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return dbErr("loading Kyber prekey", err)
	}
	if !lastResort {
		_, err := t.tx.ExecContext(ctx, `DELETE FROM kyber_prekeys WHERE id = ?`, id)
		return dbErr("removing Kyber prekey", err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO kyber_prekey_uses (kyber_id, signed_prekey_id, base_key) VALUES (?, ?, ?)`,
		id, signedPreKeyID, baseKey.Bytes())
	if err = dbErr("recording Kyber prekey use", err); errors.Is(err, ErrDuplicate) {
		return fmt.Errorf("%w (%w): Kyber prekey %d", ErrKyberPreKeyReused, protocol.ErrPreKeyReplayed, id)
	}
	return err
}

// RemoveKyberPreKey deletes a Kyber prekey (e.g. a rotated last-resort
// key after its grace period).
func (t *Tx) RemoveKyberPreKey(ctx context.Context, id uint32) error {
	_, err := t.tx.ExecContext(ctx, `DELETE FROM kyber_prekeys WHERE id = ?`, id)
	return dbErr("removing Kyber prekey", err)
}

// PreKeyCounts is how many of our prekeys the store holds, and the
// highest ids used, for refills that must not reuse an id.
type PreKeyCounts struct {
	OneTime, OneTimeKyber, LastResortKyber, Signed   int
	MaxPreKeyID, MaxKyberPreKeyID, MaxSignedPreKeyID uint32
}

// PreKeyCounts counts our prekeys.
func (r reader) PreKeyCounts(ctx context.Context) (PreKeyCounts, error) {
	var c PreKeyCounts
	err := r.q.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM prekeys), (SELECT coalesce(max(id), 0) FROM prekeys),
		(SELECT count(*) FROM kyber_prekeys WHERE last_resort = 0),
		(SELECT count(*) FROM kyber_prekeys WHERE last_resort = 1),
		(SELECT coalesce(max(id), 0) FROM kyber_prekeys),
		(SELECT count(*) FROM signed_prekeys), (SELECT coalesce(max(id), 0) FROM signed_prekeys)`).
		Scan(&c.OneTime, &c.MaxPreKeyID, &c.OneTimeKyber, &c.LastResortKyber, &c.MaxKyberPreKeyID, &c.Signed, &c.MaxSignedPreKeyID)
	return c, dbErr("counting prekeys", err)
}

// ---- SessionStore ------------------------------------------------------------

// LoadSession returns the session with addr, or (nil, nil) if none.
func (r reader) LoadSession(ctx context.Context, addr protocol.Address) (*protocol.SessionRecord, error) {
	var b []byte
	err := r.q.QueryRowContext(ctx, `SELECT record FROM sessions WHERE name = ? AND device_id = ?`, addr.Name, addr.DeviceID).Scan(&b)
	defer clear(b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, dbErr("loading session", err)
	}
	rec, err := protocol.ParseSessionRecord(b)
	if err != nil {
		return nil, fmt.Errorf("%w: session with %s: %w", ErrCorrupt, addr, err)
	}
	return rec, nil
}

// SessionDevices returns the device ids we have sessions with for an
// account name, in order (for fan-out to every device).
func (r reader) SessionDevices(ctx context.Context, name string) ([]uint32, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT device_id FROM sessions WHERE name = ? ORDER BY device_id`, name)
	if err != nil {
		return nil, dbErr("listing sessions", err)
	}
	defer rows.Close()
	var ids []uint32
	for rows.Next() {
		var id uint32
		if err := rows.Scan(&id); err != nil {
			return nil, dbErr("listing sessions", err)
		}
		ids = append(ids, id)
	}
	return ids, dbErr("listing sessions", rows.Err())
}

// StoreSession stores (or replaces) the session with addr.
func (t *Tx) StoreSession(ctx context.Context, addr protocol.Address, rec *protocol.SessionRecord) error {
	b := rec.Marshal()
	defer clear(b)
	var (
		reg any
		ik  []byte
	)
	if id, ok := rec.RemoteRegistrationID(); ok {
		reg = id
	}
	if key, ok := rec.RemoteIdentity(); ok {
		ik = key.Bytes()
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO sessions (name, device_id, record, updated_at, registration_id, identity_key) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (name, device_id) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at,
			registration_id = excluded.registration_id, identity_key = excluded.identity_key`,
		addr.Name, addr.DeviceID, b, ms(t.now()), reg, ik)
	return dbErr("storing session", err)
}

// SealRecipients returns, for every session with a device of the given
// accounts (but not skip), what sealing for it needs: its address, the
// session's identity key and registration id — from the columns kept
// beside the record, or from the record itself for sessions stored
// before them. Devices of an account are adjacent, in device order.
func (r reader) SealRecipients(ctx context.Context, accounts []string, skip protocol.Address) ([]protocol.SealRecipient, error) {
	list, err := json.Marshal(accounts)
	if err != nil {
		return nil, err
	}
	rows, err := r.q.QueryContext(ctx, `SELECT name, device_id, registration_id, identity_key FROM sessions
		WHERE name IN (SELECT value FROM json_each(?)) ORDER BY name, device_id`, string(list))
	if err != nil {
		return nil, dbErr("listing sessions", err)
	}
	var (
		out []protocol.SealRecipient
		old []protocol.Address
	)
	for rows.Next() {
		var (
			sr  protocol.SealRecipient
			reg sql.NullInt64
			ik  []byte
		)
		if err := rows.Scan(&sr.Address.Name, &sr.Address.DeviceID, &reg, &ik); err != nil {
			rows.Close()
			return nil, dbErr("listing sessions", err)
		}
		if sr.Address == skip {
			continue
		}
		key, kerr := protocol.ParsePublicKey(ik)
		if !reg.Valid || kerr != nil {
			old = append(old, sr.Address)
			out = append(out, sr) // filled in below
			continue
		}
		sr.IdentityKey, sr.RegistrationID = key, uint32(reg.Int64)
		out = append(out, sr)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, dbErr("listing sessions", err)
	}
	if len(old) == 0 {
		return out, nil
	}
	kept := out[:0]
	for _, sr := range out {
		if sr.IdentityKey.IsZero() {
			rec, err := r.LoadSession(ctx, sr.Address)
			if err != nil {
				return nil, err
			}
			reg, ok1 := rec.RemoteRegistrationID()
			key, ok2 := rec.RemoteIdentity()
			if !ok1 || !ok2 {
				continue // no current state: not a device we can seal for
			}
			sr.IdentityKey, sr.RegistrationID = key, reg
		}
		kept = append(kept, sr)
	}
	return kept, nil
}

// DeleteSession removes the session with addr (e.g. a removed device).
func (t *Tx) DeleteSession(ctx context.Context, addr protocol.Address) error {
	_, err := t.tx.ExecContext(ctx, `DELETE FROM sessions WHERE name = ? AND device_id = ?`, addr.Name, addr.DeviceID)
	return dbErr("deleting session", err)
}
