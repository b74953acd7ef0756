-- Sends in batches, and generic plans.
--
-- veil_deliver_many stores several sends in one call and one transaction:
-- for each send, in the order given, exactly what veil_deliver does (it
-- calls it), its result rows tagged with the send's position (o_send,
-- from 1). The caller orders the sends by recipient, so every batch locks
-- device rows in one global order (recipient, then device) and two
-- batches cannot deadlock. A send that raises an error aborts the whole
-- batch; the caller then retries each send with veil_deliver. The
-- envelopes of all sends are in the p_devices … p_contents arrays, send
-- after send, p_env_counts[i] of them for send i.
--
-- Both functions run their statements with generic plans. Left to the
-- default (plan_cache_mode = auto), PostgreSQL kept planning them afresh
-- for every call (about a sixth of the database's CPU per send); their
-- plans do not depend on the argument values (key lookups, inserts from
-- the argument arrays).
ALTER FUNCTION veil_deliver(uuid, bytea, bytea, bigint, uuid, bigint, bigint, integer, bigint[], bigint[], smallint[], bytea[])
    SET plan_cache_mode = force_generic_plan;

CREATE FUNCTION veil_deliver_many(
    p_recipients     uuid[],
    p_message_ids    bytea[],
    p_keys           bytea[],
    p_minutes        bigint[],
    p_senders        uuid[],
    p_sender_devices bigint[],
    p_excludes       bigint[],
    p_max_queues     integer[],
    p_env_counts     integer[],
    p_devices        bigint[],
    p_regs           bigint[],
    p_types          smallint[],
    p_contents       bytea[])
RETURNS TABLE (o_send integer, o_status text, o_device bigint, o_reg bigint, o_seq bigint)
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_from integer := 1;
    v_to   integer;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_recipients), 0) LOOP
        v_to := v_from + p_env_counts[i] - 1;
        RETURN QUERY SELECT i, d.o_status, d.o_device, d.o_reg, d.o_seq FROM veil_deliver(
            p_recipients[i], p_message_ids[i], p_keys[i], p_minutes[i], p_senders[i], p_sender_devices[i],
            p_excludes[i], p_max_queues[i], p_devices[v_from:v_to], p_regs[v_from:v_to], p_types[v_from:v_to],
            p_contents[v_from:v_to]) AS d;
        v_from := v_to + 1;
    END LOOP;
END
$$;
