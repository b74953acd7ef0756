-- Full-text search over messages (issue 7).
--
-- An external-content FTS5 table: the index holds terms and positions
-- only, the text stays in messages.body (snippets and rebuilds read it
-- from there), so nothing is stored twice. Contentless-delete would also
-- avoid the copy but cannot produce snippets; external content can, and
-- the triggers below always have the old body at hand to un-index a row
-- exactly. Triggers, not Go code, keep it in step: every INSERT, change
-- of body and DELETE on messages (an edit, a delete for everyone that
-- empties the body, expiry deleting rows, a conversation's cascade)
-- updates the index in the same transaction.
--
-- tokenize 'veil': the Go tokenizer of client/devicestore/internal/tokenize
-- (case folding, diacritics removed, unigrams for scripts without spaces),
-- registered on every connection by the store. detail=full: phrase
-- queries, which scripts without spaces need, require positions.
-- Columns: body, and conv, the message's conversation as one term
-- ("c" and its id), so a search in one conversation is an intersection
-- inside the index (MATCH 'body : (…) AND conv : "c12"') instead of a
-- look-up of every match's row. The content is a view over messages that
-- supplies conv; queries always restrict user terms to body.
CREATE VIEW messages_search AS
	SELECT id, body, 'c' || conversation_id AS conv FROM messages;

CREATE VIRTUAL TABLE messages_fts USING fts5(
	body,
	conv,
	content = 'messages_search',
	content_rowid = 'id',
	tokenize = 'veil',
	detail = full
);

-- Rank by BM25 over body only.
INSERT INTO messages_fts (messages_fts, rank) VALUES ('rank', 'bm25(1.0, 0.0)');

-- secure-delete: a deleted row's terms are removed from the index b-tree
-- itself instead of being masked by a delete marker until a merge, so a
-- deleted message's words do not linger in the index; with the writer's
-- PRAGMA secure_delete the freed bytes are zeroed.
INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);

-- New messages are indexed at the end of their transaction, not row by
-- row: FTS5 writes its pending terms out as a new index segment whenever
-- a statement that opens a savepoint touches it, and every INSERT INTO
-- messages does (its triggers and UNIQUE constraint need a statement
-- journal), so indexing in the insert trigger would write one segment
-- per message and then merge them (measured: 2.5 times the cost of the
-- insert itself). The trigger only queues the id; Store.Update drains
-- the queue with one INSERT … SELECT just before it commits, so a
-- batch of messages becomes one segment in the same transaction. The
-- queue holds ids only and is empty between transactions.
CREATE TABLE search_pending (
	id INTEGER PRIMARY KEY
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
	INSERT OR IGNORE INTO search_pending (id) VALUES (new.id);
END;

-- A queued row is not in the index yet: deleting it only unqueues it,
-- and an edit needs nothing (the drain reads the current body).
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
	INSERT INTO messages_fts (messages_fts, rowid, body, conv)
		SELECT 'delete', old.id, old.body, 'c' || old.conversation_id
		WHERE NOT EXISTS (SELECT 1 FROM search_pending WHERE id = old.id);
	DELETE FROM search_pending WHERE id = old.id;
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF body, conversation_id ON messages
WHEN (old.body IS NOT new.body OR old.conversation_id IS NOT new.conversation_id)
	AND NOT EXISTS (SELECT 1 FROM search_pending WHERE id = old.id) BEGIN
	INSERT INTO messages_fts (messages_fts, rowid, body, conv) VALUES ('delete', old.id, old.body, 'c' || old.conversation_id);
	INSERT INTO messages_fts (rowid, body, conv) VALUES (new.id, new.body, 'c' || new.conversation_id);
END;

-- Index the messages already stored.
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
