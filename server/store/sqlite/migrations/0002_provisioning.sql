-- Linking devices: one-time link tokens and the provisioning relay (see
-- store.Provisioner). Hashes only; messages are opaque; minutes of life.
CREATE TABLE link_tokens (
    token_hash BLOB    NOT NULL PRIMARY KEY CHECK (length(token_hash) = 32),
    account_id BLOB    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    expires    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE provisioning (
    id_hash BLOB    NOT NULL PRIMARY KEY CHECK (length(id_hash) = 32),
    message BLOB    NOT NULL,
    expires INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
