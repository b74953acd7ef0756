-- Each session's remote registration id and identity key beside the
-- record (kept by StoreSession), so sealing one group message for many
-- devices reads two small columns instead of every session record. NULL
-- for sessions stored before this migration or without a current state.
ALTER TABLE sessions ADD COLUMN registration_id INTEGER;
ALTER TABLE sessions ADD COLUMN identity_key BLOB;
-- A covering index: the rows of big session records are not read.
CREATE INDEX sessions_peers ON sessions (name, device_id, registration_id, identity_key);
