-- Users' encrypted backups kept on the server (store.BackupStore): one per
-- account, opaque (age-encrypted by the client to a key the server never
-- has); fetched back only with the account's recovery credential.
CREATE TABLE account_backups (
    account_id  BLOB    NOT NULL PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    data        BLOB    NOT NULL,
    updated_day INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
