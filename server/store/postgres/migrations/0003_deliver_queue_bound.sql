-- veil_deliver, version 2: the queue bound is checked with two index
-- lookups instead of counting the queue (a device offline for long can
-- hold thousands of envelopes, and every send to it paid for counting
-- them). Everything else is as in 0002, whose header describes the
-- result rows.
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
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n_env   integer := coalesce(cardinality(p_devices), 0);
    n       integer;
    s       bigint;
    matched boolean;
    v_last  bigint;
    v_first bigint;
BEGIN
    -- Lock the recipient's device rows in device order (no deadlock
    -- between two senders). Every later statement takes a new snapshot,
    -- so it sees what an earlier send to this recipient committed.
    PERFORM 1 FROM devices d WHERE d.account_id = p_recipient ORDER BY d.device_id FOR NO KEY UPDATE;

    IF EXISTS (SELECT 1 FROM idempotency i WHERE i.key = p_key)
       OR EXISTS (SELECT 1 FROM envelopes e WHERE e.account_id = p_recipient AND e.message_id = p_message_id) THEN
        RETURN QUERY SELECT 'duplicate'::text, NULL::bigint, NULL::bigint, NULL::bigint;
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = p_recipient) THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::bigint, NULL::bigint, NULL::bigint;
        RETURN;
    END IF;

    -- Exact match (the caller has rejected a device addressed twice):
    -- as many envelopes as current devices other than the excluded one,
    -- and each addresses such a device with its current registration id.
    matched := (SELECT count(*) FROM devices d WHERE d.account_id = p_recipient AND d.device_id <> p_exclude) = n_env
        AND NOT EXISTS (
            SELECT 1 FROM unnest(p_devices, p_regs) AS a(dev, reg)
            WHERE a.dev = p_exclude OR NOT EXISTS (
                SELECT 1 FROM devices d
                WHERE d.account_id = p_recipient AND d.device_id = a.dev AND d.registration_id = a.reg));
    IF NOT matched THEN
        RETURN QUERY SELECT 'mismatch'::text, NULL::bigint, NULL::bigint, NULL::bigint;
        RETURN QUERY SELECT 'device'::text, d.device_id, d.registration_id, NULL::bigint
            FROM devices d WHERE d.account_id = p_recipient ORDER BY d.device_id;
        RETURN;
    END IF;

    IF p_max_queue > 0 THEN
        FOR i IN 1 .. n_env LOOP
            -- At most last_seq - first + 1 envelopes are queued (seqs are
            -- dense until acks punch holes): two index lookups settle the
            -- common case; only a queue whose span reaches the bound is
            -- counted, and then at most p_max_queue entries.
            SELECT d.last_seq INTO v_last FROM devices d WHERE d.account_id = p_recipient AND d.device_id = p_devices[i];
            SELECT e.seq INTO v_first FROM envelopes e
                WHERE e.account_id = p_recipient AND e.device_id = p_devices[i] ORDER BY e.seq LIMIT 1;
            IF v_first IS NULL OR v_last - v_first + 1 < p_max_queue THEN
                CONTINUE;
            END IF;
            SELECT count(*) INTO n FROM (
                SELECT 1 FROM envelopes e WHERE e.account_id = p_recipient AND e.device_id = p_devices[i] LIMIT p_max_queue) q;
            IF n >= p_max_queue THEN
                RETURN QUERY SELECT 'queue_full'::text, p_devices[i], NULL::bigint, NULL::bigint;
                RETURN;
            END IF;
        END LOOP;
    END IF;

    INSERT INTO idempotency (key, created_minute) VALUES (p_key, p_minute) ON CONFLICT (key) DO NOTHING;
    RETURN QUERY SELECT 'stored'::text, NULL::bigint, NULL::bigint, NULL::bigint;
    FOR i IN 1 .. n_env LOOP
        -- The seq comes from the device row, under its lock: sends to one
        -- device commit in seq order.
        UPDATE devices d SET last_seq = d.last_seq + 1
            WHERE d.account_id = p_recipient AND d.device_id = p_devices[i]
            RETURNING d.last_seq INTO s;
        INSERT INTO envelopes (account_id, device_id, seq, message_id, type, sender_id, sender_device, received_minute, content)
            VALUES (p_recipient, p_devices[i], s, p_message_id, p_types[i], p_sender, p_sender_device, p_minute, p_contents[i]);
        RETURN QUERY SELECT 'seq'::text, p_devices[i], NULL::bigint, s;
    END LOOP;
END
$$;
