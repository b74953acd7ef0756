-- Two B-tree indexes every send and every acknowledgement had to maintain
-- go (as in SQLite migration 10):
--   * envelopes_message: a repeated message id is recognised by its
--     idempotency record alone. Sweep keeps a record until both its
--     cutoffs pass (rules.DedupCutoff), so it outlives the message's
--     envelopes; veil_deliver, version 4 (below), checks only the record.
--   * envelopes_received and idempotency_created become BRIN indexes:
--     both tables are appended in time order (idempotency records are
--     never updated and deleted only by the sweep, oldest first), so block
--     ranges summarise the minute well enough for the sweep, and an insert
--     costs at most a summary update instead of a B-tree insertion.
-- veil_deliver is otherwise version 3 (0004), with the generic plans of
-- 0005 (CREATE OR REPLACE resets the function's settings, so the SET is
-- part of the definition here).
DROP INDEX envelopes_message;
DROP INDEX envelopes_received;
CREATE INDEX envelopes_received ON envelopes USING brin (received_minute);
DROP INDEX idempotency_created;
CREATE INDEX idempotency_created ON idempotency USING brin (created_minute);

CREATE OR REPLACE FUNCTION veil_deliver(
    p_recipient     uuid,
    p_message_id    bytea,
    p_key           bytea,
    p_minute        bigint,
    p_sender        uuid,
    p_sender_device bigint,
    p_exclude       bigint,
    p_max_queue     integer,
    p_devices       bigint[],
    p_regs          bigint[],
    p_types         smallint[],
    p_contents      bytea[])
RETURNS TABLE (o_status text, o_device bigint, o_reg bigint, o_seq bigint)
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    n_env   integer := coalesce(cardinality(p_devices), 0);
    v_devs  bigint[];
    v_regs  bigint[];
    v_last  bigint[];
    v_seqs  bigint[];
    n_cur   integer := 0;
    k       integer;
    n       integer;
    v_first bigint;
    matched boolean;
BEGIN
    SELECT array_agg(d.device_id ORDER BY d.device_id), array_agg(d.registration_id ORDER BY d.device_id),
           array_agg(d.last_seq ORDER BY d.device_id)
        INTO v_devs, v_regs, v_last
        FROM (SELECT l.device_id, l.registration_id, l.last_seq FROM devices l
              WHERE l.account_id = p_recipient ORDER BY l.device_id FOR NO KEY UPDATE) d;

    IF EXISTS (SELECT 1 FROM idempotency i WHERE i.key = p_key) THEN
        o_status := 'duplicate';
        RETURN NEXT;
        RETURN;
    END IF;
    IF v_devs IS NULL AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = p_recipient) THEN
        o_status := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;

    -- Exact match (the caller has rejected a device addressed twice): as
    -- many envelopes as current devices other than the excluded one, and
    -- each addresses such a device with its current registration id.
    FOR j IN 1 .. coalesce(cardinality(v_devs), 0) LOOP
        IF v_devs[j] <> p_exclude THEN
            n_cur := n_cur + 1;
        END IF;
    END LOOP;
    matched := n_cur = n_env;
    v_seqs := array_fill(0::bigint, ARRAY[n_env]);
    FOR i IN 1 .. n_env LOOP
        EXIT WHEN NOT matched;
        k := array_position(v_devs, p_devices[i]);
        IF p_devices[i] = p_exclude OR k IS NULL OR v_regs[k] <> p_regs[i] THEN
            matched := false;
        ELSE
            v_seqs[i] := v_last[k] + 1;
        END IF;
    END LOOP;
    IF NOT matched THEN
        o_status := 'mismatch';
        RETURN NEXT;
        o_status := 'device';
        FOR j IN 1 .. coalesce(cardinality(v_devs), 0) LOOP
            o_device := v_devs[j];
            o_reg := v_regs[j];
            RETURN NEXT;
        END LOOP;
        RETURN;
    END IF;

    IF p_max_queue > 0 THEN
        FOR i IN 1 .. n_env LOOP
            -- At most last_seq envelopes were ever queued for the device.
            CONTINUE WHEN v_seqs[i] - 1 < p_max_queue;
            -- At most last_seq - first + 1 are queued (seqs are dense
            -- until acks punch holes); only a queue whose span reaches the
            -- bound is counted, and then at most p_max_queue entries.
            SELECT e.seq INTO v_first FROM envelopes e
                WHERE e.account_id = p_recipient AND e.device_id = p_devices[i] ORDER BY e.seq LIMIT 1;
            CONTINUE WHEN v_first IS NULL OR v_seqs[i] - v_first < p_max_queue;
            SELECT count(*) INTO n FROM (
                SELECT 1 FROM envelopes e WHERE e.account_id = p_recipient AND e.device_id = p_devices[i] LIMIT p_max_queue) q;
            IF n >= p_max_queue THEN
                o_status := 'queue_full';
                o_device := p_devices[i];
                RETURN NEXT;
                RETURN;
            END IF;
        END LOOP;
    END IF;

    -- The seqs come from the device rows, under their locks: sends to one
    -- device commit in seq order.
    WITH idem AS (
        INSERT INTO idempotency (key, created_minute) VALUES (p_key, p_minute) ON CONFLICT (key) DO NOTHING
    ), seqs AS (
        UPDATE devices d SET last_seq = d.last_seq + 1
            WHERE d.account_id = p_recipient AND d.device_id = ANY (p_devices)
    )
    INSERT INTO envelopes (account_id, device_id, seq, message_id, type, sender_id, sender_device, received_minute, content)
        SELECT p_recipient, a.dev, a.seq, p_message_id, a.typ, p_sender, p_sender_device, p_minute, a.content
        FROM unnest(p_devices, v_seqs, p_types, p_contents) AS a(dev, seq, typ, content);

    o_status := 'stored';
    RETURN NEXT;
    o_status := 'seq';
    FOR i IN 1 .. n_env LOOP
        o_device := p_devices[i];
        o_seq := v_seqs[i];
        RETURN NEXT;
    END LOOP;
END
$$;
