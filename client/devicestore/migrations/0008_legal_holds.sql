-- Disclosed legal holds (issue 9).

-- The compliance devices we know of: a device of an account whose keys
-- its own identity key signed (not the account's), vouched for by a hold
-- certificate from the server's trust root. While a row is here the
-- device is explained: we encrypt to it under identity_key, and every
-- conversation with the account shows the hold. since: when the hold
-- began (Unix seconds, from the certificate); seen_at: when this device
-- learned of it (Unix ms).
CREATE TABLE legal_holds (
	name         TEXT    NOT NULL,
	device_id    INTEGER NOT NULL,
	hold_id      BLOB    NOT NULL,
	identity_key BLOB    NOT NULL,
	since        INTEGER NOT NULL,
	seen_at      INTEGER NOT NULL,
	PRIMARY KEY (name, device_id)
) WITHOUT ROWID;
