-- Sealed-sender delivery (store.SealedAccess): the SHA-256 of the account's
-- unidentified-access key, and whether anyone may deliver sealed messages.
ALTER TABLE accounts ADD COLUMN access_key_hash BLOB;
ALTER TABLE accounts ADD COLUMN unrestricted_access INTEGER NOT NULL DEFAULT 0;
