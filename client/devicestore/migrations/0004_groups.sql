-- Groups, sealed sender and profile keys (issue 6).

-- Small byte-string settings: our profile key, the pinned sealed-sender
-- trust root, the cached sender certificate.
CREATE TABLE blob_settings (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
) WITHOUT ROWID;

-- Contacts' profile keys (learned inside end-to-end encrypted messages);
-- their access keys open sealed delivery to them.
CREATE TABLE profile_keys (
	account_id TEXT PRIMARY KEY,
	key        BLOB NOT NULL
) WITHOUT ROWID;

-- Sender-key records (protocol.SenderKeyStore): ours and other members'.
CREATE TABLE sender_keys (
	sender       TEXT    NOT NULL,
	device       INTEGER NOT NULL,
	distribution BLOB    NOT NULL,
	record       BLOB    NOT NULL,
	PRIMARY KEY (sender, device, distribution)
) WITHOUT ROWID;

-- A group's operation log (client/internal/groups): the set of encoded
-- operations, from which every device folds the same state.
CREATE TABLE group_ops (
	group_id BLOB NOT NULL,
	op       BLOB NOT NULL,
	PRIMARY KEY (group_id, op)
) WITHOUT ROWID;

-- Our side of each group: the distribution id of our sender key and the
-- membership epoch it was made for (a removal bumps the epoch and we
-- rotate).
CREATE TABLE groups (
	id           BLOB    PRIMARY KEY,
	distribution BLOB    NOT NULL,
	epoch        INTEGER NOT NULL
) WITHOUT ROWID;

-- Which member devices hold our current sender key for a group.
CREATE TABLE sender_key_shared (
	group_id BLOB    NOT NULL,
	account  TEXT    NOT NULL,
	device   INTEGER NOT NULL,
	PRIMARY KEY (group_id, account, device)
) WITHOUT ROWID;
