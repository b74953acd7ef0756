package store

import (
	"context"
	"time"
)

// Recovery is account recovery: a user who lost every device restores a
// backup and proves, with a credential derived from their recovery key,
// that the account is theirs. Both backends implement it.
type Recovery interface {
	// SetRecoveryHash stores the SHA-256 of the account's recovery
	// credential (ErrNotFound if there is no such account).
	SetRecoveryHash(ctx context.Context, account AccountID, hash []byte) error
	// RecoveryHash returns it: ErrNotFound if the account does not exist
	// or never set one.
	RecoveryHash(ctx context.Context, account AccountID) ([]byte, error)
	// ReplaceDevices removes every device of the account, with their
	// prekeys and queued envelopes, and adds d under a new device id, in
	// one transaction; it returns the new device and the ids removed.
	// The account, its identity key and username stay.
	ReplaceDevices(ctx context.Context, account AccountID, d NewDevice) (Device, []uint32, error)
}

// BackupStore keeps one opaque backup per account. Both backends
// implement it.
type BackupStore interface {
	// PutAccountBackup replaces the account's backup (ErrNotFound if
	// there is no such account).
	PutAccountBackup(ctx context.Context, account AccountID, data []byte, now time.Time) error
	// AccountBackup returns it (ErrNotFound if none).
	AccountBackup(ctx context.Context, account AccountID) ([]byte, error)
}
