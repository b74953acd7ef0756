-- Three B-tree indexes every send had to maintain go (compare SQLite
-- migration 10):
--   * envelopes_message: a repeated message id is recognised by its
--     idempotency record alone. Sweep keeps a record until both its
--     cutoffs pass (rules.DedupCutoff), so it outlives the message's
--     envelopes.
--   * envelopes_received and idempotency_created become BRIN indexes:
--     both tables are appended in time order (idempotency records are
--     never updated and deleted only by the sweep, oldest first), so block
--     ranges summarise the minute well enough for the sweep, and an insert
--     costs at most a summary update instead of a B-tree insertion.
-- The server no longer calls veil_deliver and veil_deliver_many (a batch
-- of sends is a few statements from Go: deliverer.go). They stay for
-- nodes of earlier versions during a rolling upgrade; their extra check
-- of queued envelopes by message id still gives the right answer without
-- envelopes_message, only slower.
DROP INDEX envelopes_message;
DROP INDEX envelopes_received;
CREATE INDEX envelopes_received ON envelopes USING brin (received_minute);
DROP INDEX idempotency_created;
CREATE INDEX idempotency_created ON idempotency USING brin (created_minute);
