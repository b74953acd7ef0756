// Package audit is the server's tamper-evident audit log: security events
// (account created, device linked or removed, recovery, rate limits,
// prekeys exhausted, admin actions) recorded without message content and
// with accounts named only by a keyed pseudonym.
//
// # Chain
//
// Entry n's hash is SHA-256(hash of entry n-1 ‖ canonical encoding of
// entry n), with 32 zero bytes before entry 1. The canonical encoding is
//
//	"veil audit entry v1\x00" ‖ seq (u64) ‖ minute (unix seconds, i64) ‖
//	len(type) (u16) ‖ type ‖ len(account) (u8) ‖ account ‖ device (u32) ‖
//	len(details) (u32) ‖ details
//
// (integers big-endian). Editing, removing, inserting or reordering an
// entry breaks the chain from there on; an attacker with write access to
// the database could recompute every later hash, which is what the
// checkpoints are for.
//
// # Checkpoints
//
// Every [DefaultCheckpointEvery] entries, and at every sweep, the server
// signs (seq, hash) of the head with an Ed25519 key derived from the
// server secret ("veil server v1 audit checkpoint key"); the signed
// message is "veil audit checkpoint v1\x00" ‖ seq (u64) ‖ hash. A
// rewritten chain no longer matches the signed hashes, and a chain cut
// short of a checkpoint is detected. Entries after the last checkpoint are
// not protected by a signature: they can be rewritten or truncated
// undetectably by someone who can write to the database — [Verify] says
// how many there are.
//
// # Pseudonyms
//
// An account is named by HMAC-SHA256(audit pseudonym key, account id)
// truncated to 16 bytes, the key derived from the server secret with its
// own label, so the audit log cannot be joined with rate-limit buckets or
// log lines, and an account id cannot be checked against it without the
// secret.
package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/veil-e2ee/veil/server/store"
)

// Event types. They are stable: exports and users' tools match on them.
const (
	AccountCreated    = "account_created"
	DeviceLinked      = "device_linked"
	DeviceRemoved     = "device_removed"
	AccountRecovered  = "account_recovered"
	RecoveryRefused   = "recovery_refused"
	RateLimited       = "rate_limited"
	PreKeysExhausted  = "prekeys_exhausted"
	AdminAuditVerify  = "admin_audit_verify"
	AdminAuditExport  = "admin_audit_export"
	CheckpointLine    = "checkpoint" // the type of checkpoint lines in an export; never an event
	PseudonymLen      = 16
	HashLen           = sha256.Size
	maxTypeLen        = 64
	maxDetailsLen     = 1024
	entryDomain       = "veil audit entry v1\x00"
	checkpointDomain  = "veil audit checkpoint v1\x00"
	pseudonymLabel    = "veil server v1 audit pseudonym"
	checkpointKeyLbl  = "veil server v1 audit checkpoint key"
	minSecretLen      = 32
	maxDetailValueLen = 64
)

// DefaultCheckpointEvery is how many entries separate two checkpoints.
const DefaultCheckpointEvery = 100

var (
	// ErrInvalid is an event the log refuses (a bad type or details).
	ErrInvalid = errors.New("audit: invalid event")
	// ErrTampered is returned by Verify when the log fails verification.
	ErrTampered = errors.New("audit: log failed verification")
	// ErrSecret is a server secret too short to derive keys from.
	ErrSecret = errors.New("audit: server secret must be at least 32 bytes")
)

var typeRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Genesis is the previous hash of the first entry.
var Genesis = make([]byte, HashLen)

// Keys are the audit log's keys, derived from the server secret.
type Keys struct {
	pseudo []byte
	sign   ed25519.PrivateKey
	// Public verifies checkpoints; it may be published.
	Public ed25519.PublicKey
}

// DeriveKeys derives the pseudonym key and the checkpoint signing key
// from the server secret (labels distinct from every other use of it).
func DeriveKeys(secret []byte) (*Keys, error) {
	if len(secret) < minSecretLen {
		return nil, ErrSecret
	}
	sub := func(label string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	k := &Keys{pseudo: sub(pseudonymLabel), sign: ed25519.NewKeyFromSeed(sub(checkpointKeyLbl))}
	k.Public = k.sign.Public().(ed25519.PublicKey)
	return k, nil
}

// Pseudonym is the account's name in the audit log.
func (k *Keys) Pseudonym(a store.AccountID) []byte {
	m := hmac.New(sha256.New, k.pseudo)
	m.Write(a[:])
	return m.Sum(nil)[:PseudonymLen]
}

// Sign signs a checkpoint over (seq, hash).
func (k *Keys) Sign(seq uint64, hash []byte) []byte {
	return ed25519.Sign(k.sign, checkpointMessage(seq, hash))
}

func checkpointMessage(seq uint64, hash []byte) []byte {
	b := make([]byte, 0, len(checkpointDomain)+8+len(hash))
	b = append(b, checkpointDomain...)
	b = binary.BigEndian.AppendUint64(b, seq)
	return append(b, hash...)
}

// VerifyCheckpoint reports whether c is signed by pub.
func VerifyCheckpoint(pub ed25519.PublicKey, c store.AuditCheckpoint) bool {
	if len(pub) != ed25519.PublicKeySize || len(c.Hash) != HashLen {
		return false
	}
	return ed25519.Verify(pub, checkpointMessage(c.Seq, c.Hash), c.Signature)
}

// Encode is the canonical encoding of e (its hashes excluded).
func Encode(e *store.AuditEntry) []byte {
	b := make([]byte, 0, len(entryDomain)+8+8+2+len(e.Type)+1+len(e.Account)+4+4+len(e.Details))
	b = append(b, entryDomain...)
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.Unix()))
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Type)))
	b = append(b, e.Type...)
	b = append(b, byte(len(e.Account)))
	b = append(b, e.Account...)
	b = binary.BigEndian.AppendUint32(b, e.Device)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Details)))
	return append(b, e.Details...)
}

// Hash is the chain hash of e after prev.
func Hash(prev []byte, e *store.AuditEntry) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(Encode(e))
	return h.Sum(nil)
}

// Seal sets e.Hash from e.PrevHash and e's content; it is the seal
// function given to [store.AuditLog.AppendAudit].
func Seal(e *store.AuditEntry) error {
	if len(e.PrevHash) != HashLen {
		return fmt.Errorf("%w: previous hash of %d bytes", ErrInvalid, len(e.PrevHash))
	}
	if err := checkEntry(e); err != nil {
		return err
	}
	e.Hash = Hash(e.PrevHash, e)
	return nil
}

// checkEntry bounds the fields so the encoding is unambiguous.
func checkEntry(e *store.AuditEntry) error {
	switch {
	case len(e.Type) == 0 || len(e.Type) > maxTypeLen || !typeRE.MatchString(e.Type) || e.Type == CheckpointLine:
		return fmt.Errorf("%w: event type %q", ErrInvalid, e.Type)
	case e.Account != nil && len(e.Account) != PseudonymLen:
		return fmt.Errorf("%w: account pseudonym of %d bytes", ErrInvalid, len(e.Account))
	case len(e.Details) > maxDetailsLen:
		return fmt.Errorf("%w: details of %d bytes", ErrInvalid, len(e.Details))
	}
	return nil
}

// Event is what a caller records.
type Event struct {
	Type string
	// Account, when set, is pseudonymised before it is stored.
	Account *store.AccountID
	Device  uint32
	// Details are short, non-identifying values (a limit's name, a
	// count, a reason). Never usernames, addresses, keys or content.
	Details map[string]string
}

// Recorder appends events to a store's audit log and signs checkpoints.
type Recorder struct {
	Log  store.AuditLog
	Keys *Keys
	// Every is the checkpoint interval in entries (0: the default).
	Every uint64
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Entry builds the entry for ev (without seq and hashes).
func (r *Recorder) Entry(ev Event) (store.AuditEntry, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	e := store.AuditEntry{Time: now().UTC().Truncate(time.Minute), Type: ev.Type, Device: ev.Device, Details: []byte("{}")}
	if ev.Account != nil {
		e.Account = r.Keys.Pseudonym(*ev.Account)
	}
	if len(ev.Details) > 0 {
		for k, v := range ev.Details {
			if !typeRE.MatchString(k) || len(k) > maxTypeLen || len(v) > maxDetailValueLen {
				return e, fmt.Errorf("%w: detail %q", ErrInvalid, k)
			}
		}
		b, err := json.Marshal(ev.Details)
		if err != nil {
			return e, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		e.Details = b
	}
	return e, checkEntry(&e)
}

// Record appends ev to the chain and, when its seq is a multiple of the
// checkpoint interval, signs a checkpoint over it.
func (r *Recorder) Record(ctx context.Context, ev Event) (store.AuditEntry, error) {
	e, err := r.Entry(ev)
	if err != nil {
		return e, err
	}
	e, err = r.Log.AppendAudit(ctx, e, Seal)
	if err != nil {
		return e, fmt.Errorf("audit: append %s: %w", ev.Type, err)
	}
	every := r.Every
	if every == 0 {
		every = DefaultCheckpointEvery
	}
	if e.Seq%every == 0 {
		if err := r.put(ctx, e.Seq, e.Hash); err != nil {
			return e, err
		}
	}
	return e, nil
}

// Checkpoint signs the current head unless it is empty; it returns the
// head's seq.
func (r *Recorder) Checkpoint(ctx context.Context) (uint64, error) {
	seq, hash, err := r.Log.AuditHead(ctx)
	if err != nil || seq == 0 {
		return seq, err
	}
	return seq, r.put(ctx, seq, hash)
}

func (r *Recorder) put(ctx context.Context, seq uint64, hash []byte) error {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	c := store.AuditCheckpoint{Seq: seq, Hash: hash, Signature: r.Keys.Sign(seq, hash), Time: now().UTC().Truncate(time.Minute)}
	if err := r.Log.PutAuditCheckpoint(ctx, c); err != nil {
		return fmt.Errorf("audit: checkpoint %d: %w", seq, err)
	}
	return nil
}
