-- Opaque blobs an account's devices hand each other (history transfer
-- to a new device; see store.Blobs). Deleted on download or expiry.
CREATE TABLE blobs (
    id_hash    BLOB    NOT NULL PRIMARY KEY CHECK (length(id_hash) = 32),
    account_id BLOB    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    data       BLOB    NOT NULL,
    expires    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
