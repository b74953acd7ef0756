-- Veil device store, schema version 3: edits, deletes for everyone,
-- reactions and read markers, merged by the rule of
-- client/internal/converge (hybrid logical clock stamps: time, counter,
-- origin "account.device").

-- The winning body's stamp (the post's own, or an edit's), and the flags.
-- A deleted message keeps its row (so late edits stay dead) with an
-- empty body.
ALTER TABLE messages ADD COLUMN body_counter INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN body_origin  TEXT    NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN body_time    INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN edited       INTEGER NOT NULL DEFAULT 0 CHECK (edited IN (0, 1));
ALTER TABLE messages ADD COLUMN deleted      INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1));

-- Every edit, delete and reaction received or made, by the message it
-- targets (sender account, message id), also before that message
-- arrives: the message's state is the merge of its post and these.
-- kind: 2 edit, 3 delete, 4 react. body: an edit's text (cleared when
-- the message is deleted); emoji: a reaction ("" removes).
CREATE TABLE ops (
	sender     TEXT    NOT NULL,
	message_id BLOB    NOT NULL,
	kind       INTEGER NOT NULL CHECK (kind IN (2, 3, 4)),
	author     TEXT    NOT NULL,
	time       INTEGER NOT NULL,
	counter    INTEGER NOT NULL,
	origin     TEXT    NOT NULL,
	body       TEXT    NOT NULL DEFAULT '',
	emoji      TEXT    NOT NULL DEFAULT '',
	PRIMARY KEY (sender, message_id, kind, author, time, counter, origin)
) WITHOUT ROWID;

-- The reactions in force (the merge of the ops), one per reacting
-- account; emoji "" is a removed reaction kept as a tombstone.
CREATE TABLE reactions (
	sender     TEXT    NOT NULL,
	message_id BLOB    NOT NULL,
	reactor    TEXT    NOT NULL,
	emoji      TEXT    NOT NULL,
	time       INTEGER NOT NULL,
	counter    INTEGER NOT NULL,
	origin     TEXT    NOT NULL,
	PRIMARY KEY (sender, message_id, reactor)
) WITHOUT ROWID;

-- How far this account has read each conversation (by peer account):
-- the greatest stamp wins.
CREATE TABLE read_markers (
	peer    TEXT    PRIMARY KEY,
	time    INTEGER NOT NULL,
	counter INTEGER NOT NULL,
	origin  TEXT    NOT NULL
) WITHOUT ROWID;
