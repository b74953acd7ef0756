-- Veil device store, schema version 2: what the client SDK needs beside
-- the protocol's state.

-- identities: trust 3 ("changed") marks a key that replaced an earlier
-- one and that the user has not accepted yet; the SDK does not encrypt to
-- it until they do. SQLite cannot alter a CHECK constraint, so the table
-- is rebuilt.
CREATE TABLE identities_v2 (
	name       TEXT    PRIMARY KEY,
	public_key BLOB    NOT NULL,
	trust      INTEGER NOT NULL CHECK (trust IN (1, 2, 3)),
	first_seen INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO identities_v2 (name, public_key, trust, first_seen) SELECT name, public_key, trust, first_seen FROM identities;
DROP TABLE identities;
ALTER TABLE identities_v2 RENAME TO identities;

-- Delivery state of outgoing messages: 0 incoming, 1 queued (in the
-- outbox), 2 sent (the server committed it), 3 failed (gave up; see the
-- outbox's last error).
ALTER TABLE messages ADD COLUMN status INTEGER NOT NULL DEFAULT 0 CHECK (status IN (0, 1, 2, 3));

-- Why the last attempt of a queued send failed (no plaintext: an error
-- code and message from the server or the network).
ALTER TABLE outbox ADD COLUMN last_error TEXT NOT NULL DEFAULT '';

-- Recently sent payloads by the transport message id they were sent
-- under, so a peer that could not decrypt one can ask for it again
-- (a resend request names the transport id). Kept 30 days, the server's
-- queue lifetime; payload is plaintext content, protected by the
-- database's encryption like every other row.
CREATE TABLE send_log (
	message_id BLOB    PRIMARY KEY,
	recipient  TEXT    NOT NULL,
	payload    BLOB    NOT NULL,
	sent_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX send_log_by_time ON send_log (sent_at);

-- Small named integers of the SDK: the next prekey ids, rotation times,
-- the last session reset per peer device.
CREATE TABLE settings (
	name  TEXT    PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;

-- Transport ids of the envelopes this device has processed, by sender:
-- a message whose ratchet keys are already used is a redelivery if its
-- id is here, and otherwise a sign that the sender restored old state
-- (the SDK then asks for it again under a fresh session). Pruned after
-- the server's dedup window.
CREATE TABLE received (
	sender      TEXT    NOT NULL,
	message_id  BLOB    NOT NULL,
	received_at INTEGER NOT NULL,
	PRIMARY KEY (sender, message_id)
) WITHOUT ROWID;
CREATE INDEX received_by_time ON received (received_at);
