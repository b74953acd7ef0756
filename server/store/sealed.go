package store

import "context"

// Access is an account's sealed-sender delivery setting: who may deliver
// to it without saying who they are.
type Access struct {
	// KeyHash is SHA-256 of the account's 16-byte unidentified-access key
	// (derived by its devices from the profile key they share only with
	// contacts, inside end-to-end encrypted messages). Nil until set.
	KeyHash []byte
	// Unrestricted accepts sealed messages from anyone, without a key.
	Unrestricted bool
}

// SealedAccess stores accounts' sealed-sender settings. Both backends
// implement it.
type SealedAccess interface {
	// SetAccess replaces an account's setting (ErrNotFound if there is no
	// such account).
	SetAccess(ctx context.Context, account AccountID, a Access) error
	// AccessOf returns the settings of the given accounts that exist;
	// unknown accounts are absent from the map.
	AccessOf(ctx context.Context, accounts []AccountID) (map[AccountID]Access, error)
}
