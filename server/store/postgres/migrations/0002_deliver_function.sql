-- veil_deliver: the whole of store.Store.Deliver in one call, so a send
-- costs one round trip instead of six. Called as a single statement, it
-- runs in its own transaction: every check happens before the first
-- write, and any error rolls everything back.
--
-- Result rows: a first row with o_status, then details:
--   'duplicate'                       (nothing more)
--   'not_found'                       (nothing more)
--   'mismatch'   then one row per current device (o_device, o_reg);
--                Go computes the missing/extra/stale lists from them
--   'queue_full' with o_device        (the first full device)
--   'stored'     then one row per envelope, in argument order (o_device, o_seq)
CREATE FUNCTION veil_deliver(
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
