-- Disappearing messages (issue 7).

-- Each conversation's timer (by peer account, or "g:" and a group id):
-- seconds a message lives after it is stored (0: off), and the hybrid
-- clock stamp of the setting; the greatest stamp wins on every device.
CREATE TABLE conversation_timers (
	peer    TEXT    PRIMARY KEY,
	seconds INTEGER NOT NULL,
	time    INTEGER NOT NULL,
	counter INTEGER NOT NULL,
	origin  TEXT    NOT NULL
) WITHOUT ROWID;

-- When a message is removed (Unix ms; NULL: never).
ALTER TABLE messages ADD COLUMN expires_at INTEGER;
CREATE INDEX messages_expiry ON messages (expires_at) WHERE expires_at IS NOT NULL;

-- The local message an outbox item or a logged send carries (its text or
-- an edit of it), so removing the message removes those copies too.
ALTER TABLE outbox ADD COLUMN about INTEGER;
ALTER TABLE send_log ADD COLUMN about INTEGER;
CREATE INDEX send_log_about ON send_log (about) WHERE about IS NOT NULL;
CREATE INDEX outbox_about ON outbox (about) WHERE about IS NOT NULL;
