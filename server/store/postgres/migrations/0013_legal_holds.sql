-- Legal holds (store.LegalHolds): a disclosed hold on an account and the
-- compliance device it adds. The columns are what the store acts on
-- (account, state, the compliance device); record is the server layer's
-- JSON document (reason, approvals, certificate), stored unchanged.
-- seq is creation order (Holds lists oldest first). updated_at is Unix
-- seconds.
CREATE TABLE legal_holds (
    id           bytea  NOT NULL PRIMARY KEY CHECK (octet_length(id) = 16),
    seq          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    account_id   uuid   NOT NULL REFERENCES accounts (id),
    state        text   NOT NULL CHECK (state IN ('pending', 'active', 'lifted')),
    device_id    bigint,
    identity_key bytea,
    record       bytea  NOT NULL,
    version      bigint NOT NULL,
    updated_at   bigint NOT NULL,
    CHECK (state <> 'active' OR (device_id IS NOT NULL AND identity_key IS NOT NULL))
);
CREATE INDEX legal_holds_account ON legal_holds (account_id, seq);

-- A compliance device is an ordinary device row whose hold_id names its
-- hold; NULL for every other device. veil_deliver and veil_deliver_many
-- read every device row of the recipient regardless: a compliance device
-- is addressed like any other.
ALTER TABLE devices ADD COLUMN hold_id bytea CHECK (hold_id IS NULL OR octet_length(hold_id) = 16);

-- Server-wide settings that must outlive any one node's configuration.
CREATE TABLE server_settings (
    name  text NOT NULL PRIMARY KEY,
    value text NOT NULL
);
