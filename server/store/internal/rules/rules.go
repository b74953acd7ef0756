// Package rules holds the storage logic both backends share, so that
// SQLite and PostgreSQL cannot disagree on it: the device-list check of a
// send, argument validation, the pseudonymous idempotency key, coarse
// timestamps and rate-limit bucket arithmetic.
//
// # Rate-limit buckets
//
// A bucket is stored as one instant, its theoretical arrival time (TAT):
// the moment at which it will be full again. A missing bucket and one
// whose TAT has passed are full. Spending a token moves the TAT one
// interval later; a token is available while TAT+interval-now stays
// within burst intervals (the generic cell rate algorithm). One number per
// key keeps the table small and the update a single statement.
package rules

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/veil-e2ee/veil/server/internal/gcra"
	"github.com/veil-e2ee/veil/server/store"
)

// Day truncates t to the UTC day and returns Unix seconds: the precision
// kept for account and device creation and for LastSeen.
func Day(t time.Time) int64 { return t.UTC().Truncate(24 * time.Hour).Unix() }

// Minute truncates t to the minute and returns Unix seconds: the
// precision kept for envelope and idempotency timestamps.
func Minute(t time.Time) int64 { return t.UTC().Truncate(time.Minute).Unix() }

// FromUnix turns stored Unix seconds back into a UTC time.
func FromUnix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

// dedupLabel separates idempotency keys from any other SHA-256 use.
const dedupLabel = "veil store dedup v1\x00"

// DedupKey is what the idempotency table stores for (recipient,
// messageID): a SHA-256 digest, so the table lists neither who received
// a message nor its id, and nothing about the sender. It is only used for
// equality.
func DedupKey(recipient store.AccountID, messageID [16]byte) []byte {
	h := sha256.New()
	h.Write([]byte(dedupLabel))
	h.Write(recipient[:])
	h.Write(messageID[:])
	return h.Sum(nil)
}

// DeviceReg is one current device of a recipient, as Deliver sees it.
type DeviceReg struct {
	DeviceID       uint32
	RegistrationID uint32
}

// DedupCutoff is the cutoff for idempotency records in a sweep: the
// earlier of the two, so a record outlives every envelope of its message
// (which Deliver relies on to recognise a repeat while it is queued).
func DedupCutoff(envelopeCutoff, dedupCutoff time.Time) time.Time {
	if envelopeCutoff.Before(dedupCutoff) {
		return envelopeCutoff
	}
	return dedupCutoff
}

// ValidateSend rejects a send that breaks the contract independently of
// stored state: an envelope without content, or one device addressed
// twice.
func ValidateSend(s *store.Send) error {
	seen := make(map[uint32]struct{}, len(s.Envelopes))
	for _, e := range s.Envelopes {
		if e.Content == nil {
			return fmt.Errorf("%w: envelope for device %d has no content", store.ErrInvalid, e.DeviceID)
		}
		if _, dup := seen[e.DeviceID]; dup {
			return fmt.Errorf("%w: device %d addressed twice", store.ErrInvalid, e.DeviceID)
		}
		seen[e.DeviceID] = struct{}{}
	}
	if s.MaxQueue < 0 {
		return fmt.Errorf("%w: negative queue bound", store.ErrInvalid)
	}
	return nil
}

// CheckDevices compares the envelopes of s with the recipient's current
// devices (sorted or not). It returns nil when they match exactly, else a
// *store.DeviceMismatchError with every list filled and sorted: Missing
// (current devices not addressed, except s.ExcludeDevice), Extra
// (addressed devices that do not exist, or the excluded sender device)
// and Stale (addressed devices whose registration id changed).
func CheckDevices(current []DeviceReg, s *store.Send) error {
	reg := make(map[uint32]uint32, len(current))
	for _, d := range current {
		if d.DeviceID != s.ExcludeDevice || s.ExcludeDevice == 0 {
			reg[d.DeviceID] = d.RegistrationID
		}
	}
	var m store.DeviceMismatchError
	addressed := make(map[uint32]struct{}, len(s.Envelopes))
	for _, e := range s.Envelopes {
		addressed[e.DeviceID] = struct{}{}
		r, ok := reg[e.DeviceID]
		switch {
		case !ok:
			m.Extra = append(m.Extra, e.DeviceID)
		case r != e.RegistrationID:
			m.Stale = append(m.Stale, e.DeviceID)
		}
	}
	for id := range reg {
		if _, ok := addressed[id]; !ok {
			m.Missing = append(m.Missing, id)
		}
	}
	if len(m.Missing)+len(m.Extra)+len(m.Stale) == 0 {
		return nil
	}
	slices.Sort(m.Missing)
	slices.Sort(m.Extra)
	slices.Sort(m.Stale)
	return &m
}

// ValidateUpload checks a prekey upload; registration (requireSigned)
// must carry both signed keys. Every key must have a public key, and
// signed keys a signature.
func ValidateUpload(up *store.PreKeyUpload, requireSigned bool) error {
	if requireSigned && (up.SignedPreKey == nil || up.LastResortKEM == nil) {
		return fmt.Errorf("%w: a registration needs a signed prekey and a last-resort KEM prekey", store.ErrInvalid)
	}
	for _, k := range []*store.SignedPreKey{up.SignedPreKey, up.LastResortKEM} {
		if k != nil && (len(k.PublicKey) == 0 || len(k.Signature) == 0) {
			return fmt.Errorf("%w: signed prekey %d lacks a key or signature", store.ErrInvalid, k.KeyID)
		}
	}
	for _, k := range up.OneTimeEC {
		if len(k.PublicKey) == 0 {
			return fmt.Errorf("%w: one-time prekey %d has no key", store.ErrInvalid, k.KeyID)
		}
	}
	for _, k := range up.OneTimeKEM {
		if len(k.PublicKey) == 0 || len(k.Signature) == 0 {
			return fmt.Errorf("%w: one-time KEM prekey %d lacks a key or signature", store.ErrInvalid, k.KeyID)
		}
	}
	return nil
}

// ValidateBucket rejects bucket parameters that cannot describe a bucket.
func ValidateBucket(burst int, interval time.Duration) error {
	if burst < 1 || interval <= 0 {
		return fmt.Errorf("%w: bucket burst %d interval %v", store.ErrInvalid, burst, interval)
	}
	return nil
}

// Spend and RetryAfter are the bucket arithmetic (package gcra).
var (
	Spend      = gcra.Spend
	RetryAfter = gcra.RetryAfter
)

// Migration is one embedded schema migration file, "NNNN_name.sql".
type Migration struct {
	Version int
	Name    string // the file name
	SQL     string
}

// Migrations lists the *.sql files under dir in fsys in version order
// (the number before the first underscore). Both backends apply them the
// same way; only the SQL differs.
func Migrations(fsys fs.FS, dir string) ([]Migration, error) {
	files, err := fs.Glob(fsys, dir+"/*.sql")
	if err != nil {
		return nil, err
	}
	var list []Migration
	for _, f := range files {
		name := path.Base(f)
		v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s has no version prefix", name)
		}
		body, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		list = append(list, Migration{Version: v, Name: name, SQL: string(body)})
	}
	slices.SortFunc(list, func(a, b Migration) int { return a.Version - b.Version })
	for i := 1; i < len(list); i++ {
		if list[i].Version == list[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", list[i-1].Name, list[i].Name, list[i].Version)
		}
	}
	return list, nil
}

// Second is the precision kept for a legal hold's UpdatedAt: Unix
// seconds, UTC. A zero time means "now" (a caller that did not say).
func Second(t time.Time) int64 {
	if t.IsZero() {
		t = time.Now()
	}
	return t.Unix()
}

// ValidateNewHold checks a hold about to be created: it must start
// pending. Version, DeviceID and IdentityKey are not taken from the
// caller (a new hold is at version 1 with no compliance device).
// CheckHold is the compare-and-swap rule of the hold changes: the hold
// must still be at version and in one of states, else ErrConflict.
func CheckHold(h *store.Hold, version int64, states ...store.HoldState) error {
	if h.Version != version {
		return fmt.Errorf("%w: hold is at version %d, not %d", store.ErrConflict, h.Version, version)
	}
	if !slices.Contains(states, h.State) {
		return fmt.Errorf("%w: hold is %s", store.ErrConflict, h.State)
	}
	return nil
}

func ValidateNewHold(h *store.Hold) error {
	if h.State != store.HoldPending {
		return fmt.Errorf("%w: a new hold must be pending, not %q", store.ErrInvalid, h.State)
	}
	return nil
}

// ValidateActivation checks the compliance device of a hold's
// activation as AddDevice checks a device: both signed prekeys, a
// credential hash, and the device's own identity key.
func ValidateActivation(identityKey []byte, d *store.NewDevice) error {
	if err := ValidateUpload(&d.PreKeys, true); err != nil {
		return err
	}
	if d.CredentialHash == nil {
		return fmt.Errorf("%w: credential hash is required", store.ErrInvalid)
	}
	if len(identityKey) == 0 {
		return fmt.Errorf("%w: a compliance device needs its identity key", store.ErrInvalid)
	}
	return nil
}

// NonNil returns b, or an empty slice for nil: a hold's record column is
// NOT NULL.
func NonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
