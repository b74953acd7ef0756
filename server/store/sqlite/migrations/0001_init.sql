-- Veil server schema, version 1 (SQLite). docs/SCHEMA.md explains every
-- column: what is opaque ciphertext, what is routing metadata, and why.
-- Times are Unix seconds, coarse: days for accounts and devices, minutes
-- for envelopes and idempotency records.

CREATE TABLE accounts (
    id             BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    username       TEXT    NOT NULL UNIQUE,
    identity_key   BLOB    NOT NULL,
    created_day    INTEGER NOT NULL,
    next_device_id INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE devices (
    account_id      BLOB    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    device_id       INTEGER NOT NULL,
    registration_id INTEGER NOT NULL,
    credential_hash BLOB    NOT NULL,
    created_day     INTEGER NOT NULL,
    last_seen_day   INTEGER NOT NULL,
    last_seq        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, device_id)
) STRICT, WITHOUT ROWID;

-- kind 1: the signed EC prekey; kind 2: the last-resort KEM prekey.
CREATE TABLE signed_prekeys (
    account_id BLOB    NOT NULL,
    device_id  INTEGER NOT NULL,
    kind       INTEGER NOT NULL CHECK (kind IN (1, 2)),
    key_id     INTEGER NOT NULL,
    public_key BLOB    NOT NULL,
    signature  BLOB    NOT NULL,
    PRIMARY KEY (account_id, device_id, kind),
    FOREIGN KEY (account_id, device_id) REFERENCES devices ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- kind 1: one-time EC prekey (no signature); kind 2: one-time KEM prekey.
-- seq (the rowid) is upload order, which is hand-out order.
CREATE TABLE one_time_prekeys (
    seq        INTEGER PRIMARY KEY,
    account_id BLOB    NOT NULL,
    device_id  INTEGER NOT NULL,
    kind       INTEGER NOT NULL CHECK (kind IN (1, 2)),
    key_id     INTEGER NOT NULL,
    public_key BLOB    NOT NULL,
    signature  BLOB,
    UNIQUE (account_id, device_id, kind, key_id),
    FOREIGN KEY (account_id, device_id) REFERENCES devices ON DELETE CASCADE
) STRICT;
CREATE INDEX one_time_prekeys_queue ON one_time_prekeys (account_id, device_id, kind, seq);

-- One row per queued envelope; deleted on acknowledgement or expiry.
-- sender_id and sender_device are NULL for sealed-sender envelopes.
CREATE TABLE envelopes (
    id              INTEGER PRIMARY KEY,
    account_id      BLOB    NOT NULL,
    device_id       INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    message_id      BLOB    NOT NULL,
    type            INTEGER NOT NULL,
    sender_id       BLOB,
    sender_device   INTEGER,
    received_minute INTEGER NOT NULL,
    content         BLOB    NOT NULL,
    UNIQUE (account_id, device_id, seq),
    FOREIGN KEY (account_id, device_id) REFERENCES devices ON DELETE CASCADE
) STRICT;
CREATE INDEX envelopes_message ON envelopes (account_id, message_id);
CREATE INDEX envelopes_received ON envelopes (received_minute);

-- key = SHA-256(label || recipient || message id); see rules.DedupKey.
CREATE TABLE idempotency (
    key            BLOB    NOT NULL PRIMARY KEY,
    created_minute INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX idempotency_created ON idempotency (created_minute);

-- key is opaque (pseudonymised by the server layer); tat is Unix
-- nanoseconds at which the bucket is full again.
CREATE TABLE rate_limits (
    key BLOB    NOT NULL PRIMARY KEY,
    tat INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX rate_limits_tat ON rate_limits (tat);
