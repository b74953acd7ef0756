-- Veil device store, schema version 1. The whole file is encrypted at rest
-- by the Adiantum VFS; columns marked "secret" hold key material anyway,
-- so the store never copies them anywhere else. Times are Unix
-- milliseconds. Records use the protocol package's own serializations.

-- Our identity: one row. private_key: 32 bytes (secret).
CREATE TABLE local_identity (
	id              INTEGER PRIMARY KEY CHECK (id = 1),
	private_key     BLOB    NOT NULL,
	registration_id INTEGER NOT NULL,
	created_at      INTEGER NOT NULL
);

-- Our account on the server: one row. credential: the 32-byte device
-- credential (secret).
CREATE TABLE account (
	id          INTEGER PRIMARY KEY CHECK (id = 1),
	account_id  TEXT    NOT NULL,
	device_id   INTEGER NOT NULL,
	username    TEXT    NOT NULL,
	server_url  TEXT    NOT NULL,
	credential  BLOB    NOT NULL,
	created_at  INTEGER NOT NULL
);

-- One-time EC prekeys (protocol.PreKeyRecord.Marshal; secret).
CREATE TABLE prekeys (
	id     INTEGER PRIMARY KEY,
	record BLOB    NOT NULL
);

-- Signed EC prekeys (protocol.SignedPreKeyRecord.Marshal; secret).
CREATE TABLE signed_prekeys (
	id         INTEGER PRIMARY KEY,
	record     BLOB    NOT NULL,
	created_at INTEGER NOT NULL
);

-- Kyber prekeys (protocol.KyberPreKeyRecord.Marshal; secret).
CREATE TABLE kyber_prekeys (
	id          INTEGER PRIMARY KEY,
	record      BLOB    NOT NULL,
	last_resort INTEGER NOT NULL CHECK (last_resort IN (0, 1)),
	created_at  INTEGER NOT NULL
);

-- Uses of last-resort Kyber prekeys, to refuse a replayed PreKey message.
CREATE TABLE kyber_prekey_uses (
	kyber_id         INTEGER NOT NULL REFERENCES kyber_prekeys (id) ON DELETE CASCADE,
	signed_prekey_id INTEGER NOT NULL,
	base_key         BLOB    NOT NULL,
	PRIMARY KEY (kyber_id, signed_prekey_id, base_key)
) WITHOUT ROWID;

-- Sessions by peer address (protocol.SessionRecord.Marshal; secret).
CREATE TABLE sessions (
	name       TEXT    NOT NULL,
	device_id  INTEGER NOT NULL,
	record     BLOB    NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (name, device_id)
) WITHOUT ROWID;

-- Peers' identity keys by account (an address's name): a Veil account's
-- devices share one identity key, as in Signal, so trust and the verified
-- mark are per account. trust: 1 trusted (first use, or accepted after a
-- change), 2 verified (safety number compared).
CREATE TABLE identities (
	name       TEXT    PRIMARY KEY,
	public_key BLOB    NOT NULL,
	trust      INTEGER NOT NULL CHECK (trust IN (1, 2)),
	first_seen INTEGER NOT NULL
) WITHOUT ROWID;

-- People we talk to, by account id.
CREATE TABLE contacts (
	account_id   TEXT    PRIMARY KEY,
	username     TEXT    NOT NULL,
	display_name TEXT    NOT NULL,
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- Conversations; for now one per peer account (groups come later).
CREATE TABLE conversations (
	id               INTEGER PRIMARY KEY,
	peer             TEXT    NOT NULL UNIQUE,
	created_at       INTEGER NOT NULL,
	last_activity_at INTEGER NOT NULL
);

-- Messages, sent and received. message_id is the sender-chosen id the
-- server carries (16 bytes); (sender, message_id) is unique, so a message
-- redelivered after a crash before its ack is stored once.
CREATE TABLE messages (
	id              INTEGER PRIMARY KEY,
	conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
	sender          TEXT    NOT NULL,
	sender_device   INTEGER NOT NULL,
	outgoing        INTEGER NOT NULL CHECK (outgoing IN (0, 1)),
	message_id      BLOB    NOT NULL,
	body            BLOB    NOT NULL,
	sent_at         INTEGER NOT NULL,
	received_at     INTEGER NOT NULL,
	UNIQUE (sender, message_id)
);
CREATE INDEX messages_by_conversation ON messages (conversation_id, id);

-- Sends not yet committed by the server. The payload is the plaintext to
-- encrypt per device at send time (device lists change), and message_id
-- is reused on every retry so the server stores a resend once.
CREATE TABLE outbox (
	id                 INTEGER PRIMARY KEY,
	message_id         BLOB    NOT NULL UNIQUE,
	recipient          TEXT    NOT NULL,
	local_message_id   INTEGER REFERENCES messages (id) ON DELETE SET NULL,
	payload            BLOB    NOT NULL,
	created_at         INTEGER NOT NULL,
	attempts           INTEGER NOT NULL DEFAULT 0,
	next_attempt_at    INTEGER NOT NULL
);
