-- The audit log (store.AuditLog; server/audit defines the chain). No
-- message content, usernames, addresses or keys: accounts appear only as
-- a 16-byte keyed pseudonym. audit_head is one row, the chain head, moved
-- in the same transaction as each append.
CREATE TABLE audit_log (
    seq       INTEGER NOT NULL PRIMARY KEY,
    minute    INTEGER NOT NULL,
    type      TEXT    NOT NULL,
    account   BLOB    CHECK (account IS NULL OR length(account) = 16),
    device    INTEGER NOT NULL DEFAULT 0,
    details   TEXT    NOT NULL,
    prev_hash BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash      BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;

CREATE INDEX audit_log_account ON audit_log (account, seq) WHERE account IS NOT NULL;

CREATE TABLE audit_head (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;

INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, zeroblob(32));

CREATE TABLE audit_checkpoints (
    seq       INTEGER NOT NULL PRIMARY KEY,
    hash      BLOB    NOT NULL CHECK (length(hash) = 32),
    signature BLOB    NOT NULL,
    minute    INTEGER NOT NULL
) STRICT;
