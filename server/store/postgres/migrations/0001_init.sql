-- Veil server schema, version 1 (PostgreSQL). docs/SCHEMA.md explains
-- every column: what is opaque ciphertext, what is routing metadata, and
-- why. Times are Unix seconds, coarse: days for accounts and devices,
-- minutes for envelopes and idempotency records.

CREATE TABLE accounts (
    id             uuid   NOT NULL PRIMARY KEY,
    username       text   NOT NULL,
    identity_key   bytea  NOT NULL,
    created_day    bigint NOT NULL,
    next_device_id bigint NOT NULL,
    CONSTRAINT accounts_username_key UNIQUE (username)
);

-- last_seq is the per-device envelope counter: Deliver increments it
-- while holding the device row lock, so sequence numbers are assigned in
-- commit order and a reader never skips a smaller seq committed later.
CREATE TABLE devices (
    account_id      uuid   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    device_id       bigint NOT NULL,
    registration_id bigint NOT NULL,
    credential_hash bytea  NOT NULL,
    created_day     bigint NOT NULL,
    last_seen_day   bigint NOT NULL,
    last_seq        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, device_id)
);

-- kind 1: the signed EC prekey; kind 2: the last-resort KEM prekey.
CREATE TABLE signed_prekeys (
    account_id uuid     NOT NULL,
    device_id  bigint   NOT NULL,
    kind       smallint NOT NULL CHECK (kind IN (1, 2)),
    key_id     bigint   NOT NULL,
    public_key bytea    NOT NULL,
    signature  bytea    NOT NULL,
    PRIMARY KEY (account_id, device_id, kind),
    FOREIGN KEY (account_id, device_id) REFERENCES devices ON DELETE CASCADE
);

-- kind 1: one-time EC prekey (no signature); kind 2: one-time KEM prekey.
-- seq is upload order, which is hand-out order.
CREATE TABLE one_time_prekeys (
    seq        bigint   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id uuid     NOT NULL,
    device_id  bigint   NOT NULL,
    kind       smallint NOT NULL CHECK (kind IN (1, 2)),
    key_id     bigint   NOT NULL,
    public_key bytea    NOT NULL,
    signature  bytea,
    UNIQUE (account_id, device_id, kind, key_id),
    FOREIGN KEY (account_id, device_id) REFERENCES devices ON DELETE CASCADE
);
CREATE INDEX one_time_prekeys_queue ON one_time_prekeys (account_id, device_id, kind, seq);

-- One row per queued envelope; deleted on acknowledgement or expiry.
-- sender_id and sender_device are NULL for sealed-sender envelopes.
CREATE TABLE envelopes (
    account_id      uuid     NOT NULL,
    device_id       bigint   NOT NULL,
    seq             bigint   NOT NULL,
    message_id      bytea    NOT NULL,
    type            smallint NOT NULL,
    sender_id       uuid,
    sender_device   bigint,
    received_minute bigint   NOT NULL,
    content         bytea    NOT NULL,
    PRIMARY KEY (account_id, device_id, seq),
    FOREIGN KEY (account_id, device_id) REFERENCES devices ON DELETE CASCADE
);
-- Ciphertext does not compress: store it out of line without trying.
ALTER TABLE envelopes ALTER COLUMN content SET STORAGE EXTERNAL;
CREATE INDEX envelopes_message ON envelopes (account_id, message_id);
CREATE INDEX envelopes_received ON envelopes (received_minute);

-- key = SHA-256(label || recipient || message id); see rules.DedupKey.
CREATE TABLE idempotency (
    key            bytea  NOT NULL PRIMARY KEY,
    created_minute bigint NOT NULL
);
CREATE INDEX idempotency_created ON idempotency (created_minute);

-- key is opaque (pseudonymised by the server layer); tat is Unix
-- nanoseconds at which the bucket is full again.
CREATE TABLE rate_limits (
    key bytea  NOT NULL PRIMARY KEY,
    tat bigint NOT NULL
);
CREATE INDEX rate_limits_tat ON rate_limits (tat);
