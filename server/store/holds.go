package store

import (
	"context"
	"errors"
	"time"
)

// ErrConflict: a compare-and-swap update found the record changed since
// it was read (its Version moved on); nothing was stored. Re-read and
// decide again.
var ErrConflict = errors.New("store: changed concurrently")

// HoldState is where a legal hold is in its life.
type HoldState string

// The states of a legal hold. A hold goes pending → active → lifted, or
// pending → lifted (withdrawn before activation); nothing goes back.
const (
	// HoldPending: requested, waiting for approvals or for the
	// compliance device to register. Nothing is delivered to anyone.
	HoldPending HoldState = "pending"
	// HoldActive: the compliance device is one of the account's devices.
	HoldActive HoldState = "active"
	// HoldLifted: over; the compliance device (if any) is gone.
	HoldLifted HoldState = "lifted"
)

// Hold is one disclosed legal hold on an account. The store keeps the
// routing facts it must act on (account, state, the compliance device)
// in columns; everything else — reason, requester, approvals and their
// signatures, the certificate clients verify, times — is the server
// layer's JSON document in Record, stored and returned unchanged.
type Hold struct {
	ID      [16]byte
	Account AccountID
	State   HoldState
	// DeviceID is the compliance device while the hold is active (and,
	// after lifting, the id it had); 0 before activation.
	DeviceID uint32
	// IdentityKey is the compliance device's own public identity key
	// (opaque, serialized): it is not the account's key, which only the
	// account's owner holds. Nil before activation.
	IdentityKey []byte
	Record      []byte
	// Version starts at 1 and grows by one with every change; updates
	// name the version they read (compare-and-swap).
	Version int64
	// UpdatedAt is when the hold last changed (second precision).
	UpdatedAt time.Time
}

// LegalHolds keeps legal holds and the compliance devices they add.
// Both backends implement it beside [Store]. A compliance device is an
// ordinary row of the account's devices (it authenticates, has prekeys
// and a queue like any device) marked as belonging to its hold: it does
// not count toward the account's device limit, is never removed by
// device expiry ([DeviceExpirer]) or by account recovery
// ([Recovery.ReplaceDevices]), and [Store.RemoveDevice] refuses it with
// ErrInvalid — only [LegalHolds.LiftHold] removes it.
type LegalHolds interface {
	// CreateHold stores a new hold in state HoldPending with Version 1
	// (ErrNotFound if the account does not exist, ErrInvalid if the id
	// is taken or the state is not pending).
	CreateHold(ctx context.Context, h Hold) error
	// Hold returns one hold (ErrNotFound).
	Hold(ctx context.Context, id [16]byte) (Hold, error)
	// Holds lists holds, oldest first: of one account when account is
	// non-nil, else all; only active ones when activeOnly.
	Holds(ctx context.Context, account *AccountID, activeOnly bool) ([]Hold, error)
	// UpdateHoldRecord replaces the record of a pending hold whose
	// version is still version, and bumps the version (ErrConflict if it
	// moved on or the hold is no longer pending; ErrNotFound).
	UpdateHoldRecord(ctx context.Context, id [16]byte, version int64, record []byte, now time.Time) (Hold, error)
	// ActivateHold adds the compliance device d with identityKey to the
	// account, stores its prekeys, and makes the pending hold at version
	// active with record, all in one transaction (ErrConflict if the
	// version moved on or the hold is not pending; ErrNotFound). The
	// account's device limit does not apply.
	ActivateHold(ctx context.Context, id [16]byte, version int64, record, identityKey []byte, d NewDevice) (Hold, Device, error)
	// LiftHold makes a pending or active hold at version lifted with
	// record and, if it was active, deletes its compliance device with
	// that device's prekeys and queued envelopes, in one transaction
	// (ErrConflict if the version moved on or it is already lifted;
	// ErrNotFound).
	LiftHold(ctx context.Context, id [16]byte, version int64, record []byte, now time.Time) (Hold, error)
	// ComplianceDevices returns the account's compliance devices (ids)
	// with their hold's id: the devices that are explained by a hold.
	ComplianceDevices(ctx context.Context, account AccountID) (map[uint32][16]byte, error)

	// Setting returns a server-wide setting ("" if unset). SetSetting
	// stores one. Settings are for the few facts that must outlive any
	// one node's configuration, such as "legal hold disabled for good".
	Setting(ctx context.Context, name string) (string, error)
	SetSetting(ctx context.Context, name, value string) error
}
