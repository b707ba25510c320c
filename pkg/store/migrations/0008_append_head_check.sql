-- 0008_append_head_check: the lighter check of the appender's one-round-trip
-- fast path (pkg/store speculate.go).
--
-- The appender keeps its memory of the log (traces' next trace_seq and
-- finished flag, tenants' chain heads) as a snapshot of the log at one head
-- log_seq. If the head and the chain heads of the batch's tenants are still
-- what the appender remembers, nothing was appended since (log_seq is always
-- max+1 under the append lock) and no tenant of the batch was reset (a reset
-- removes the tenant's chain head), so every remembered fact still holds.
-- What the appender does not remember (idempotency keys, event ids, traces it
-- has not seen) it assumes absent, and the unique indexes on
-- (tenant_id, producer_id, idempotency_key), (tenant_id, event_id) and
-- (tenant_id, trace_id, trace_seq) refuse the insert when that is wrong
-- (trace_seq is contiguous from 0, so a trace that exists has every
-- trace_seq the appender could assume free).
--
-- It raises dg_append_stale (SQLSTATE 40001) before the insert when the
-- head or a chain head differs; the appender then reads the log and retries.
-- Both statements are one index probe each and have no plan that depends
-- on the parameters' values, so generic plans are fine.
CREATE FUNCTION dg_append_check_head(p_head bigint, ch_tenant text[], ch_hash text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_head bigint;
BEGIN
    SELECT COALESCE(max(log_seq), 0) INTO v_head FROM dg_event_log;
    IF v_head <> p_head THEN
        RAISE EXCEPTION 'dg_append_stale: head' USING ERRCODE = 'serialization_failure';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(ch_tenant, ch_hash) AS k(t, h)
               WHERE k.h IS DISTINCT FROM (SELECT c.chain_hash FROM dg_chain_heads c WHERE c.tenant_id = k.t)) THEN
        RAISE EXCEPTION 'dg_append_stale: chain head' USING ERRCODE = 'serialization_failure';
    END IF;
END
$$;
