// Package devicestore is a device's encrypted local database: our
// identity and prekeys, sessions, peers' identities, the account
// credential, contacts, conversations, messages and the outbox, in one
// SQLite database per device (github.com/ncruces/go-sqlite3, pure Go).
//
// # Encryption at rest
//
// The database and its write-ahead log are encrypted page by page with
// Adiantum by the go-sqlite3 "adiantum" VFS. The 32-byte page key is
// derived with HKDF-SHA256 from a master key, which is the Argon2id
// stretch of a passphrase ([Passphrase], costs in [DefaultKDFParams]) or
// the contents of a key file ([KeyFile], [GenerateKeyFile]). A small
// plaintext header file ([HeaderFile]) beside the database holds the
// format version, the random per-device salt, the Argon2id costs and a
// key-check value (an HMAC under another HKDF-derived key), so a wrong
// passphrase is [ErrWrongPassphrase] before SQLite sees any key. The
// header holds no key and nothing derived from the passphrase that could
// be checked without running Argon2id. Adiantum is deterministic and
// unauthenticated: it hides content, not which pages changed, and does
// not detect tampering (see docs/CLIENT.md).
//
// # Transactions
//
// [Store.Update] runs a function in one write transaction. Its [*Tx]
// implements every store interface of the protocol package, so a Cipher
// built over the Tx (protocol.NewCipher(protocol.StoresOf(tx), …)) writes
// the new ratchet state into the same transaction as the message the
// caller stores with [Tx.InsertMessage]: both commit, or neither does.
// The SDK acknowledges an envelope to the server only after Update
// returns nil. Reads outside a transaction go through the [Store]'s own
// methods, each on a reader connection that sees the last commit.
//
// # Errors
//
// Errors are this package's sentinels ([ErrNotFound], [ErrDuplicate],
// [ErrWrongPassphrase], [ErrStorage]…) wrapped with %w; driver errors
// never escape, and no error string holds a key, a passphrase, a
// credential or message content.
//
// See docs/CLIENT.md for the files on disk, the header format and the
// tables.
package devicestore
