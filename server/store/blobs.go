package store

import (
	"context"
	"time"
)

// Blobs stores opaque encrypted blobs for an account's own devices — the
// history archive an existing device hands to a newly linked one —
// implemented by both backends beside [Store]. A blob is named by the
// hash of a random id, belongs to one account, is deleted when it is
// downloaded, and expires.
type Blobs interface {
	// PutBlob stores data (ErrExists if the id is taken).
	PutBlob(ctx context.Context, idHash []byte, account AccountID, data []byte, expires time.Time) error
	// TakeBlob returns and deletes an unexpired blob of account
	// (ErrNotFound if none).
	TakeBlob(ctx context.Context, idHash []byte, account AccountID, now time.Time) ([]byte, error)
	// SweepBlobs deletes expired blobs.
	SweepBlobs(ctx context.Context, now time.Time) error
}
