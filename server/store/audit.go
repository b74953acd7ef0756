package store

import (
	"context"
	"time"
)

// AuditEntry is one record of the server's audit log. The package
// server/audit defines its canonical encoding, the hash chain and the
// checkpoints; a store only keeps entries and serialises appends.
// Entries never hold message content, usernames, addresses or keys.
type AuditEntry struct {
	// Seq numbers the entries 1, 2, 3, … with no gap: the chain order.
	Seq uint64
	// Time is coarse (to the minute).
	Time time.Time
	// Type is the event, a stable snake_case name.
	Type string
	// Account is the keyed pseudonym (16 bytes) of the account the event
	// concerns, nil when none.
	Account []byte
	// Device is the device the event concerns, 0 when none.
	Device uint32
	// Details is a small JSON object of non-identifying details.
	Details []byte
	// PrevHash is the previous entry's Hash (32 zero bytes for the
	// first); Hash chains this entry to it.
	PrevHash, Hash []byte
}

// AuditCheckpoint is a signature, by the server's audit key, over the
// chain head (Seq, Hash) at some point.
type AuditCheckpoint struct {
	Seq       uint64
	Hash      []byte
	Signature []byte
	Time      time.Time
}

// AuditQuery selects entries for [AuditLog.ListAudit]: seq greater than
// After, time at or after Since (when set), concerning Account (when
// set), in seq order, at most Limit (at most 1000; 0 means 1000).
type AuditQuery struct {
	After   uint64
	Since   time.Time
	Account []byte
	Limit   int
}

// MaxAuditPage bounds one [AuditLog.ListAudit] or
// [AuditLog.AuditCheckpoints] answer.
const MaxAuditPage = 1000

// AuditLog is the append-only, hash-chained audit log. Both backends
// implement it.
type AuditLog interface {
	// AppendAudit appends e as the chain's next entry: in one transaction
	// it takes the chain head under a lock that serialises appends from
	// every server node, sets e.Seq (head + 1) and e.PrevHash (the head's
	// hash), calls seal, which must set e.Hash, stores e and moves the
	// head. It returns the stored entry. An error from seal aborts the
	// append.
	AppendAudit(ctx context.Context, e AuditEntry, seal func(e *AuditEntry) error) (AuditEntry, error)
	// AuditHead returns the chain head as the store records it: the last
	// seq and its hash (0 and 32 zero bytes while the log is empty).
	AuditHead(ctx context.Context) (seq uint64, hash []byte, err error)
	// ListAudit returns the entries q selects.
	ListAudit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
	// PutAuditCheckpoint stores a checkpoint; one already stored for the
	// same seq is kept (not an error).
	PutAuditCheckpoint(ctx context.Context, c AuditCheckpoint) error
	// AuditCheckpoints returns checkpoints with seq greater than after, in
	// seq order, at most limit (≤ MaxAuditPage; 0 means MaxAuditPage).
	AuditCheckpoints(ctx context.Context, after uint64, limit int) ([]AuditCheckpoint, error)
}

// AuditPruner enforces the audit log's retention. Both backends implement
// it.
type AuditPruner interface {
	// PruneAudit deletes the entries up to the newest signed checkpoint
	// whose entry is older than before, and the checkpoints before that
	// one, which stays as the anchor the remaining chain starts from. It
	// returns the anchor's seq (0: nothing pruned) and how many entries
	// went.
	PruneAudit(ctx context.Context, before time.Time) (anchor uint64, pruned int64, err error)
}
