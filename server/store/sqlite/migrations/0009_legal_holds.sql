-- Legal holds (store.LegalHolds): a disclosed hold on an account and the
-- compliance device it adds. The columns are what the store acts on
-- (account, state, the compliance device); record is the server layer's
-- JSON document (reason, approvals, certificate), stored unchanged.
-- seq is creation order (Holds lists oldest first); the single writer
-- assigns it. updated_at is Unix seconds.
CREATE TABLE legal_holds (
    id           BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    seq          INTEGER NOT NULL UNIQUE,
    account_id   BLOB    NOT NULL REFERENCES accounts (id),
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'active', 'lifted')),
    device_id    INTEGER,
    identity_key BLOB,
    record       BLOB    NOT NULL,
    version      INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    CHECK (state <> 'active' OR (device_id IS NOT NULL AND identity_key IS NOT NULL))
) STRICT, WITHOUT ROWID;
CREATE INDEX legal_holds_account ON legal_holds (account_id, seq);

-- A compliance device is an ordinary device row whose hold_id names its
-- hold; NULL for every other device.
ALTER TABLE devices ADD COLUMN hold_id BLOB CHECK (hold_id IS NULL OR length(hold_id) = 16);

-- Server-wide settings that must outlive any one node's configuration.
CREATE TABLE server_settings (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
