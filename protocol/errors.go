package protocol

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Test for them with errors.Is.
//
// Decryption failures are deliberately coarse: a bad MAC, bad padding, a
// message for a session we no longer have and a corrupted ciphertext all
// return ErrDecryption, so nothing we do in response can tell a peer why
// its message failed.
var (
	// ErrInvalidKey: a serialized key has the wrong length or type byte,
	// or a peer's key is unusable (e.g. a low-order point).
	ErrInvalidKey = errors.New("protocol: invalid key")
	// ErrInvalidSignature: a prekey bundle's signature does not verify.
	ErrInvalidSignature = errors.New("protocol: invalid signature")
	// ErrInvalidMessage: a message does not decode (malformed encoding).
	ErrInvalidMessage = errors.New("protocol: invalid message")
	// ErrLegacyMessage: a message of an older protocol version (3, X3DH
	// without Kyber), which libsignal no longer accepts either.
	ErrLegacyMessage = errors.New("protocol: legacy message version")
	// ErrUnknownVersion: a message of a newer protocol version.
	ErrUnknownVersion = errors.New("protocol: unknown message version")
	// ErrDecryption: the message could not be decrypted.
	ErrDecryption = errors.New("protocol: message could not be decrypted")
	// ErrDuplicateMessage: the message was already decrypted once. Its
	// key is gone; nothing changed.
	ErrDuplicateMessage = errors.New("protocol: duplicate message")
	// ErrNoSession: there is no session with the address (or it may no
	// longer be used for sending); fetch a prekey bundle.
	ErrNoSession = errors.New("protocol: no session")
	// ErrUntrustedIdentity: the peer's identity key is not the one we
	// trust. The error is an *UntrustedIdentityError.
	ErrUntrustedIdentity = errors.New("protocol: untrusted identity")
	// ErrNoPreKey, ErrNoSignedPreKey, ErrNoKyberPreKey: the store has no
	// such key (stores return these, wrapped or not).
	ErrNoPreKey       = errors.New("protocol: no such one-time prekey")
	ErrNoSignedPreKey = errors.New("protocol: no such signed prekey")
	ErrNoKyberPreKey  = errors.New("protocol: no such Kyber prekey")
	// ErrPreKeyReplayed: a PreKey message used a last-resort Kyber prekey
	// with a base key it was already used with (a replay of a message
	// whose session is gone). KyberPreKeyStore.MarkKyberPreKeyUsed
	// implementations return it, possibly wrapped.
	ErrPreKeyReplayed = errors.New("protocol: last-resort prekey replayed")
	// ErrInvalidRecord: a stored record does not decode.
	ErrInvalidRecord = errors.New("protocol: invalid stored record")
	// ErrRecordVersion: a stored record was written by a newer Veil.
	ErrRecordVersion = errors.New("protocol: stored record from a newer version")
)

// UntrustedIdentityError reports that the identity key presented for
// Address differs from the one the identity store trusts. Sending or
// accepting messages must stop until the user has seen the change (and,
// usually, compared safety numbers); then the application calls
// IdentityStore.SaveIdentity with Key to trust it.
type UntrustedIdentityError struct {
	Address Address
	Key     PublicKey // the new, untrusted key
}

func (e *UntrustedIdentityError) Error() string {
	return fmt.Sprintf("protocol: identity key of %s changed (new key %s); it must be accepted before messages flow", e.Address, e.Key)
}

// Is lets errors.Is(err, ErrUntrustedIdentity) match.
func (e *UntrustedIdentityError) Is(target error) bool { return target == ErrUntrustedIdentity }
