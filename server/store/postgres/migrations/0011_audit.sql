-- The audit log (store.AuditLog; server/audit defines the chain). No
-- message content, usernames, addresses or keys: accounts appear only as
-- a 16-byte keyed pseudonym. audit_head is one row, the chain head: every
-- append locks it (SELECT … FOR UPDATE), so appends from every node form
-- one chain.
CREATE TABLE audit_log (
    seq       bigint  NOT NULL PRIMARY KEY,
    minute    bigint  NOT NULL,
    type      text    NOT NULL,
    account   bytea   CHECK (account IS NULL OR length(account) = 16),
    device    bigint  NOT NULL DEFAULT 0,
    details   text    NOT NULL,
    prev_hash bytea   NOT NULL CHECK (length(prev_hash) = 32),
    hash      bytea   NOT NULL CHECK (length(hash) = 32)
);

CREATE INDEX audit_log_account ON audit_log (account, seq) WHERE account IS NOT NULL;

CREATE TABLE audit_head (
    id   integer NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  bigint  NOT NULL,
    hash bytea   NOT NULL CHECK (length(hash) = 32)
);

INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

CREATE TABLE audit_checkpoints (
    seq       bigint NOT NULL PRIMARY KEY,
    hash      bytea  NOT NULL CHECK (length(hash) = 32),
    signature bytea  NOT NULL,
    minute    bigint NOT NULL
);
