package store

import (
	"context"
	"time"
)

// Data-subject rights: everything the server holds about an account, and
// its erasure. Both backends implement DataSubject.

// QueueStat is one device's undelivered envelopes: how many and their
// total size (the content itself is opaque ciphertext).
type QueueStat struct {
	Count int
	Bytes int64
}

// AccountData is everything the database holds about one account.
type AccountData struct {
	Account     Account
	Devices     []Device
	DeviceNames map[uint32][]byte // encrypted by the devices
	PreKeys     map[uint32]PreKeyCounts
	Queued      map[uint32]QueueStat
	// AccessKeySet and SealedFromAnyone describe sealed-sender access
	// (the key itself is only a hash); RecoverySet says a recovery
	// credential's hash is stored.
	AccessKeySet, SealedFromAnyone, RecoverySet bool
	Blobs                                       QueueStat // opaque archives waiting for a new device
	LinkTokens                                  int
	BackupBytes                                 int64 // the user's encrypted backup kept on the server (0: none)
}

// Erased counts what an erasure removed.
type Erased struct {
	Devices, PreKeys, Envelopes, Blobs, LinkTokens int
	EnvelopeBytes                                  int64
}

// DataSubject exports and erases an account.
type DataSubject interface {
	// ExportAccount returns everything held about the account
	// (ErrNotFound).
	ExportAccount(ctx context.Context, id AccountID) (AccountData, error)
	// EraseAccount deletes the account and everything that names it —
	// devices, keys, queued envelopes, blobs, link tokens — in one
	// transaction (ErrNotFound).
	EraseAccount(ctx context.Context, id AccountID) (Erased, error)
	// AccountTraces lists the tables that still hold a row naming the
	// account: empty after an erasure.
	AccountTraces(ctx context.Context, id AccountID) ([]string, error)
	// InactiveAccounts returns up to limit accounts created before cutoff
	// none of whose devices was seen since cutoff (day precision).
	InactiveAccounts(ctx context.Context, cutoff time.Time, limit int) ([]AccountID, error)
}
