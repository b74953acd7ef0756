-- Two indexes every send and every acknowledgement had to maintain are
-- dropped. A repeated message id is recognised by its idempotency record
-- alone: Sweep keeps the record until both its cutoffs pass, so it
-- outlives the message's envelopes. The expiry sweep finds expired
-- envelopes in rowid (insertion) order instead of by received_minute.
DROP INDEX envelopes_message;
DROP INDEX envelopes_received;
