-- Account recovery (store.Recovery): the SHA-256 of the credential derived
-- from the user's recovery key; NULL until set.
ALTER TABLE accounts ADD COLUMN recovery_hash bytea;
