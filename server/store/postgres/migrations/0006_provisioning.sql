-- Linking devices: one-time link tokens and the provisioning relay (see
-- store.Provisioner). Hashes only; messages are opaque; minutes of life.
CREATE TABLE link_tokens (
    token_hash bytea       NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    account_id uuid        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    expires    bigint NOT NULL
);

CREATE TABLE provisioning (
    id_hash bytea       NOT NULL PRIMARY KEY CHECK (length(id_hash) = 32),
    message bytea       NOT NULL,
    expires bigint NOT NULL
);
