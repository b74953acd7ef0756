package store

import (
	"context"
	"errors"
	"time"
)

// ErrExists: the provisioning slot is already filled.
var ErrExists = errors.New("store: already exists")

// Provisioner is the storage for linking a new device to an account,
// implemented by both backends beside [Store]:
//
//   - one-time link tokens, minted for an account by one of its devices
//     and spent by the new device to add itself;
//   - the provisioning relay: one sealed message per relay id, left by
//     the existing device and taken (deleted) by the new one.
//
// Only hashes of relay ids and tokens are stored; messages are opaque
// ciphertext; everything expires within minutes.
type Provisioner interface {
	// CreateLinkToken stores a token hash for account until expires.
	CreateLinkToken(ctx context.Context, tokenHash []byte, account AccountID, expires time.Time) error
	// UseLinkToken deletes an unexpired token and returns its account
	// (ErrNotFound if there is none): a token is spent once.
	UseLinkToken(ctx context.Context, tokenHash []byte, now time.Time) (AccountID, error)
	// PutProvisioning stores a sealed message under a relay id hash
	// (ErrExists if one is there).
	PutProvisioning(ctx context.Context, idHash, message []byte, expires time.Time) error
	// TakeProvisioning returns and deletes the unexpired message under a
	// relay id hash (ErrNotFound if none).
	TakeProvisioning(ctx context.Context, idHash []byte, now time.Time) ([]byte, error)
	// SweepProvisioning deletes expired tokens and messages.
	SweepProvisioning(ctx context.Context, now time.Time) error
}
