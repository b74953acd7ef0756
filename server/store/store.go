// Package store is the blind server's storage contract: accounts, devices,
// public prekeys, per-device mailboxes of opaque envelopes, idempotency
// records and rate-limit buckets.
//
// Every byte slice named Content, PublicKey or Signature is opaque to the
// server: it is stored and returned unchanged and never interpreted. The
// remaining fields are the routing metadata the server needs to deliver;
// docs/SCHEMA.md says why each one is kept.
//
// # Implementations
//
// Two implementations live beside this package, server/store/sqlite (the
// embedded default) and server/store/postgres. Both are checked by the one
// conformance suite in server/store/storetest. The rules they must agree
// on (the device-list check of a send, argument validation, idempotency
// keys, coarse timestamps, rate-limit arithmetic) live once in
// server/store/internal/rules; the backends add schema, SQL, migrations
// and their own concurrency control. They translate every driver error
// into the errors below, so callers never see a driver type.
//
// # Atomicity
//
// Every method is one transaction: it either applies completely or leaves
// stored state exactly as it was.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors returned by every Store implementation. Callers test them with
// errors.Is; implementations may wrap them with detail.
var (
	// ErrNotFound: the account, device or envelope does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrUsernameTaken: another account already has this username.
	ErrUsernameTaken = errors.New("store: username taken")
	// ErrQueueFull: the recipient device's queue is at its bound; nothing
	// was stored and the sender should retry later.
	ErrQueueFull = errors.New("store: queue full")
	// ErrDeviceLimit: the account already has the maximum number of devices.
	ErrDeviceLimit = errors.New("store: device limit reached")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store: closed")
	// ErrInvalid: the arguments break this contract (for example a
	// registration without a signed prekey, or a non-positive burst);
	// nothing was stored. The server layer validates requests first, so
	// this signals a programming error rather than a client mistake.
	ErrInvalid = errors.New("store: invalid argument")
)

// AccountID is the server-assigned UUID of an account (16 bytes, RFC 9562
// version 4). It is what clients use as the Signal address name.
type AccountID [16]byte

// String formats the id in the canonical 8-4-4-4-12 hex form.
func (a AccountID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", a[0:4], a[4:6], a[6:8], a[8:10], a[10:16])
}

// Account is a registered account. The identity key is shared by all of
// its devices, as in Signal.
type Account struct {
	ID          AccountID
	Username    string
	IdentityKey []byte // opaque to the server: a serialized public key
	// CreatedAt is coarse (truncated to the day, UTC).
	CreatedAt time.Time
}

// Device is one device of an account. DeviceID 1 is the first device.
type Device struct {
	Account        AccountID
	DeviceID       uint32
	RegistrationID uint32
	// CredentialHash is a hash of the device's random credential; the
	// credential itself is never stored. Compare in constant time.
	CredentialHash []byte
	// CreatedAt is coarse (truncated to the day, UTC).
	CreatedAt time.Time
	// LastSeen is coarse (truncated to the day) so it does not record
	// when a device is used, only that it still is.
	LastSeen time.Time
	// Compliance marks a legal hold's compliance device (a device row
	// with a hold, [LegalHolds]): it may only receive.
	Compliance bool
}

// PreKey is a one-time EC prekey (public half, opaque).
type PreKey struct {
	KeyID     uint32
	PublicKey []byte
}

// SignedPreKey is a signed EC prekey or a (one-time or last-resort) KEM
// prekey: a public key and the identity key's signature over it.
type SignedPreKey struct {
	KeyID     uint32
	PublicKey []byte
	Signature []byte
}

// PreKeyUpload is what a device uploads. Nil or empty fields leave the
// stored value unchanged; a non-nil signed key replaces the current one.
// One-time keys are appended in slice order, which is hand-out order. A
// one-time key whose KeyID the device already has on the server is
// ignored, so a retried upload adds nothing twice.
type PreKeyUpload struct {
	SignedPreKey  *SignedPreKey
	LastResortKEM *SignedPreKey
	OneTimeEC     []PreKey
	OneTimeKEM    []SignedPreKey
}

// PreKeyCounts are the one-time prekeys a device still has on the server.
type PreKeyCounts struct {
	EC  int
	KEM int
}

// Bundle is what a sender needs to start a session with one device.
// Exactly one of OneTimeKEM or LastResortKEM-as-KEM is set: KEM is the
// one-time KEM key if one was left, else the last-resort key
// (KEMIsLastResort reports which).
type Bundle struct {
	DeviceID        uint32
	RegistrationID  uint32
	SignedPreKey    SignedPreKey
	PreKey          *PreKey // nil when the device has no one-time EC prekey left
	KEM             SignedPreKey
	KEMIsLastResort bool
}

// NewDevice is the registration of a device linked to an existing
// account.
type NewDevice struct {
	RegistrationID uint32
	CredentialHash []byte
	PreKeys        PreKeyUpload // must carry SignedPreKey and LastResortKEM
	Now            time.Time
}

// NewAccount is the first device's registration.
type NewAccount struct {
	ID             AccountID // chosen by the server layer (random UUID)
	Username       string
	IdentityKey    []byte
	RegistrationID uint32
	CredentialHash []byte
	PreKeys        PreKeyUpload // must carry SignedPreKey and LastResortKEM
	Now            time.Time
}

// Envelope is one queued message for one device. Content is opaque.
type Envelope struct {
	// Seq is assigned by the store, strictly increasing per device:
	// delivery order is Seq order.
	Seq int64
	// MessageID is the sender's client-chosen id (16 bytes); the pair
	// (recipient account, MessageID) is accepted once, ever, within the
	// dedup window.
	MessageID [16]byte
	Recipient AccountID
	DeviceID  uint32
	// Type is the client's envelope type (e.g. Signal message, PreKey
	// message); routing metadata the recipient needs before decrypting.
	Type uint8
	// Sender is set for non-sealed messages; zero for sealed sender.
	Sender       AccountID
	SenderDevice uint32
	Content      []byte
	// ReceivedAt is coarse (truncated to the minute).
	ReceivedAt time.Time
}

// OutgoingEnvelope is one element of a send: the envelope for one device
// of the recipient, addressed with the registration id the sender has for
// it.
type OutgoingEnvelope struct {
	DeviceID       uint32
	RegistrationID uint32
	Type           uint8
	Content        []byte
}

// Send is one message to every device of one recipient account.
type Send struct {
	MessageID    [16]byte
	Recipient    AccountID
	Sender       AccountID // zero when sealed
	SenderDevice uint32
	// ExcludeDevice, when the sender is the recipient (sync to one's own
	// other devices), is the sending device, which must not be addressed.
	ExcludeDevice uint32
	Envelopes     []OutgoingEnvelope
	Now           time.Time
	// MaxQueue bounds each recipient device's queue (0 = unbounded).
	MaxQueue int
}

// SendResult tells whether the envelopes were stored now or had been
// stored before under the same MessageID (an idempotent repeat), and the
// sequence numbers assigned, one per envelope in the order given (nil for
// a Duplicate: nothing was assigned).
type SendResult struct {
	Duplicate bool
	Seqs      []int64
}

// DeviceMismatchError is returned by Deliver when the envelopes do not
// address exactly the recipient's current devices (Missing, Extra) or name
// a registration id that is no longer current (Stale). Nothing is stored.
type DeviceMismatchError struct {
	Missing []uint32
	Extra   []uint32
	Stale   []uint32
}

func (e *DeviceMismatchError) Error() string {
	return fmt.Sprintf("store: device mismatch (missing %v, extra %v, stale %v)", e.Missing, e.Extra, e.Stale)
}

// BatchAcker is implemented by stores that can delete several delivered
// envelopes of one device in one operation (both backends do). A server
// that receives acknowledgements in bursts can coalesce them: on
// PostgreSQL one statement replaces a round trip and a commit per
// envelope. Semantics are those of Ack for each seq: scoped to the
// device, and seqs already gone are not an error. It is a separate
// interface so test doubles of Store need not implement it.
type BatchAcker interface {
	AckBatch(ctx context.Context, account AccountID, deviceID uint32, seqs []int64) error
}

// Store is the server's whole persistent state. Implementations are safe
// for concurrent use by many goroutines and by many server processes
// sharing one database (PostgreSQL).
type Store interface {
	// CreateAccount registers an account with its first device (id 1).
	// ErrUsernameTaken if the username exists.
	CreateAccount(ctx context.Context, a NewAccount) (Account, error)
	// Account and AccountByUsername look an account up; ErrNotFound.
	Account(ctx context.Context, id AccountID) (Account, error)
	AccountByUsername(ctx context.Context, username string) (Account, error)

	// Device returns one device (used to authenticate); ErrNotFound.
	Device(ctx context.Context, account AccountID, deviceID uint32) (Device, error)
	// Devices lists an account's devices ordered by DeviceID.
	Devices(ctx context.Context, account AccountID) ([]Device, error)
	// TouchDevice records that the device was seen at now (coarse).
	TouchDevice(ctx context.Context, account AccountID, deviceID uint32, now time.Time) error
	// AddDevice links a new device to the account and returns it. Device
	// ids are never reused within an account, so a sender's old session
	// can never reach a different device under the same id. Errors:
	// ErrNotFound (no such account), ErrDeviceLimit (the account already
	// has maxDevices devices; 0 = unbounded), ErrInvalid.
	AddDevice(ctx context.Context, account AccountID, d NewDevice, maxDevices int) (Device, error)
	// RemoveDevice unlinks a device and deletes its prekeys and queued
	// envelopes; ErrNotFound.
	RemoveDevice(ctx context.Context, account AccountID, deviceID uint32) error

	// StorePreKeys applies an upload for one device.
	StorePreKeys(ctx context.Context, account AccountID, deviceID uint32, up PreKeyUpload) error
	// PreKeyCounts reports the one-time keys left for one device.
	PreKeyCounts(ctx context.Context, account AccountID, deviceID uint32) (PreKeyCounts, error)
	// TakeBundles claims and returns a bundle for each device of the
	// account (or only deviceID when it is non-zero). Each one-time key
	// is removed as it is handed out: none is ever returned twice, even
	// to concurrent callers, and they go out in upload order.
	TakeBundles(ctx context.Context, account AccountID, deviceID uint32) ([]Bundle, error)

	// Deliver checks the envelopes against the recipient's devices and
	// stores them atomically. A repeated MessageID for the same recipient
	// stores nothing and reports Duplicate: the store remembers a
	// MessageID until both of Sweep's cutoffs have passed the time it was
	// first accepted, so also while any of its envelopes is queued. Each
	// accepted message costs one small row for that time. Errors:
	// *DeviceMismatchError, ErrNotFound (no such recipient), ErrQueueFull,
	// ErrInvalid (an envelope with nil Content, or the same device twice).
	Deliver(ctx context.Context, s Send) (SendResult, error)
	// Pending returns up to limit envelopes for one device with Seq >
	// after, in Seq order.
	Pending(ctx context.Context, account AccountID, deviceID uint32, after int64, limit int) ([]Envelope, error)
	// Ack deletes one delivered envelope. Acking an envelope that is
	// already gone is not an error (acks may be repeated).
	Ack(ctx context.Context, account AccountID, deviceID uint32, seq int64) error
	// QueueDepth is the number of envelopes waiting for one device.
	QueueDepth(ctx context.Context, account AccountID, deviceID uint32) (int, error)

	// Sweep deletes envelopes received before envelopeCutoff and
	// idempotency records older than both cutoffs; it returns how many
	// envelopes it deleted. (A store may keep an envelope that was stored
	// after a newer one — the clock stepped back — until that one expires
	// too.) It also drops rate-limit buckets that were already full
	// again before dedupCutoff (a full bucket and a missing one behave
	// the same).
	Sweep(ctx context.Context, envelopeCutoff, dedupCutoff time.Time) (int, error)

	// TakeToken spends one token from the bucket named key (an opaque,
	// already-pseudonymised byte string): the bucket holds at most burst
	// tokens and regains one every interval. It reports whether a token
	// was available and, if not, how long until one is. ErrInvalid when
	// burst < 1 or interval <= 0.
	TakeToken(ctx context.Context, key []byte, burst int, interval time.Duration, now time.Time) (ok bool, retryAfter time.Duration, err error)

	// Ping checks the database is reachable (readiness).
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}
