package devicestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/ncruces/go-sqlite3"
)

// Errors returned by this package, wrapped with %w; test for them with
// errors.Is. No error string ever contains a key, a passphrase, a
// credential or message content, and no SQLite driver error escapes:
// storage failures are reported as ErrStorage with the SQLite result code
// name only.
var (
	// ErrWrongPassphrase: the passphrase or key file does not unlock this
	// store (the header's key-check value does not match).
	ErrWrongPassphrase = errors.New("devicestore: wrong passphrase or key file")
	// ErrInvalidUnlock: an empty passphrase, or a key file that is not
	// exactly 32 bytes.
	ErrInvalidUnlock = errors.New("devicestore: invalid passphrase or key file")
	// ErrNotFound: no such row (identity, prekey, account, message…), or
	// Open found no store in the directory.
	ErrNotFound = errors.New("devicestore: not found")
	// ErrExists: Create found a store already in the directory, or a
	// one-of-a-kind row (our identity, our account) is already set.
	ErrExists = errors.New("devicestore: already exists")
	// ErrDuplicate: a message with the same sender and server message id,
	// or an outbox entry with the same message id, is already stored.
	ErrDuplicate = errors.New("devicestore: duplicate")
	// ErrInvalidHeader: the plaintext header file is malformed or from an
	// unknown format version.
	ErrInvalidHeader = errors.New("devicestore: invalid header file")
	// ErrCorrupt: the header unlocked but the database does not decode
	// (damaged file, or a database from another store), or a stored
	// record does not parse.
	ErrCorrupt = errors.New("devicestore: database is corrupt")
	// ErrSchemaTooNew: the database was migrated by a newer Veil.
	ErrSchemaTooNew = errors.New("devicestore: database schema is newer than this program")
	// ErrIdentityMismatch: SetVerified was asked to verify a key that is
	// not the one stored for the address.
	ErrIdentityMismatch = errors.New("devicestore: identity key does not match the stored one")
	// ErrKyberPreKeyReused: a PreKey message reused a last-resort Kyber
	// prekey with a base key already seen (a replay).
	ErrKyberPreKeyReused = errors.New("devicestore: last-resort Kyber prekey replayed")
	// ErrTxDone: a Tx was used after its Update returned.
	ErrTxDone = errors.New("devicestore: transaction already finished")
	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("devicestore: store is closed")
	// ErrStorage: the database failed (I/O, disk full, busy…). The
	// message names the operation and the SQLite result code.
	ErrStorage = errors.New("devicestore: storage failure")
)

// dbErr translates a database/sql or SQLite error into this package's
// errors, in one place. It never includes the driver's message (which may
// quote SQL or values), only the operation and the result code.
func dbErr(op string, err error) error {
	var code sqlite3.ErrorCode
	var serr *sqlite3.Error
	if errors.As(err, &serr) {
		code = serr.Code()
	} else {
		errors.As(err, &code)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: %s", ErrNotFound, op)
	case errors.Is(err, sql.ErrTxDone):
		return fmt.Errorf("%w: %s", ErrTxDone, op)
	case errors.Is(err, sql.ErrConnDone) || err.Error() == "sql: database is closed": // database/sql exports no value for the latter
		return fmt.Errorf("%w: %s", ErrClosed, op)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("devicestore: %s: %w", op, context.Canceled)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("devicestore: %s: %w", op, context.DeadlineExceeded)
	case errors.Is(err, sqlite3.CONSTRAINT_UNIQUE) || errors.Is(err, sqlite3.CONSTRAINT_PRIMARYKEY):
		return fmt.Errorf("%w: %s", ErrDuplicate, op)
	case code == sqlite3.NOTADB || code == sqlite3.CORRUPT || errors.Is(err, sqlite3.NOTADB) || errors.Is(err, sqlite3.CORRUPT):
		return fmt.Errorf("%w: %s", ErrCorrupt, op)
	case code != 0:
		return fmt.Errorf("%w: %s: %s", ErrStorage, op, code.Error())
	}
	return fmt.Errorf("%w: %s", ErrStorage, op)
}
