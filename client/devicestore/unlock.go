package devicestore

import (
	"fmt"
	"io"
)

// Unlock is what opens a store: a passphrase, stretched with Argon2id, or
// the contents of a key file, a 32-byte random secret used as the master
// key directly. Its String method does not reveal it.
type Unlock struct {
	_      [0]func() // not comparable
	kind   byte
	secret []byte
}

// Passphrase returns an Unlock for a passphrase. The bytes are used as
// given (no Unicode normalization: a front end that accepts typed text
// should normalize before calling). The passphrase is copied.
func Passphrase(p string) Unlock {
	return Unlock{kind: kindPassphrase, secret: []byte(p)}
}

// KeyFile returns an Unlock for the contents of a key file, which must be
// exactly 32 bytes (see GenerateKeyFile). The contents are copied.
func KeyFile(contents []byte) Unlock {
	return Unlock{kind: kindKeyFile, secret: append([]byte(nil), contents...)}
}

// GenerateKeyFile returns the contents of a new key file: 32 bytes from
// rand (crypto/rand.Reader in production). They must be kept secret.
func GenerateKeyFile(rand io.Reader) ([]byte, error) {
	b := make([]byte, keySize)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, fmt.Errorf("devicestore: reading randomness: %w", err)
	}
	return b, nil
}

func (u Unlock) validate() error {
	switch u.kind {
	case kindPassphrase:
		if len(u.secret) == 0 {
			return fmt.Errorf("%w: empty passphrase", ErrInvalidUnlock)
		}
	case kindKeyFile:
		if len(u.secret) != keySize {
			return fmt.Errorf("%w: a key file must hold exactly %d bytes, not %d", ErrInvalidUnlock, keySize, len(u.secret))
		}
	default:
		return fmt.Errorf("%w: zero Unlock", ErrInvalidUnlock)
	}
	return nil
}

// String does not reveal the secret.
func (u Unlock) String() string {
	switch u.kind {
	case kindPassphrase:
		return "devicestore.Passphrase(redacted)"
	case kindKeyFile:
		return "devicestore.KeyFile(redacted)"
	}
	return "devicestore.Unlock(none)"
}

// GoString does not reveal the secret either (%#v).
func (u Unlock) GoString() string { return u.String() }
