-- 0001_event_log: the append-only event log, its hash-chain heads and the
-- guards that keep it append-only.
--
-- log_seq is assigned by dg's single appender inside the committing
-- transaction (under an advisory lock), never by a sequence, so a reader
-- that has seen log_seq N has seen every event below N.
--
-- payload and tags are stored as json (not jsonb): the stored text is the
-- canonical JSON that payload_hash covers, so it round-trips exactly
-- (40-digit integers, unicode, and "\u0000" escapes that jsonb rejects).

CREATE TABLE dg_event_log (
    log_seq            BIGINT      PRIMARY KEY CHECK (log_seq >= 1),
    tenant_id          TEXT        NOT NULL,
    event_id           TEXT        NOT NULL,
    trace_id           TEXT        NOT NULL,
    trace_seq          BIGINT      NOT NULL CHECK (trace_seq >= 0),
    event_type         TEXT        NOT NULL,
    occurred_at        TEXT        NOT NULL,
    recorded_at        TIMESTAMPTZ NOT NULL,
    producer_id        TEXT        NOT NULL,
    source_system      TEXT        NOT NULL,
    source_subsystem   TEXT,
    actor_type         TEXT        NOT NULL,
    actor_id           TEXT        NOT NULL,
    correlation_id     TEXT,
    causation_event_id TEXT,
    idempotency_key    TEXT        NOT NULL,
    schema_version     BIGINT      NOT NULL,
    tags               JSON        NOT NULL DEFAULT '[]',
    payload            JSON        NOT NULL,
    payload_hash       TEXT        NOT NULL,
    event_hash         TEXT        NOT NULL,
    chain_hash         TEXT        NOT NULL
);

CREATE UNIQUE INDEX dg_event_log_event_id ON dg_event_log (tenant_id, event_id);
CREATE UNIQUE INDEX dg_event_log_trace_seq ON dg_event_log (tenant_id, trace_id, trace_seq);
CREATE UNIQUE INDEX dg_event_log_idempotency ON dg_event_log (tenant_id, producer_id, idempotency_key);
CREATE INDEX dg_event_log_tenant_log_seq ON dg_event_log (tenant_id, log_seq);
CREATE INDEX dg_event_log_event_type ON dg_event_log (tenant_id, event_type, log_seq);
CREATE INDEX dg_event_log_correlation ON dg_event_log (tenant_id, correlation_id) WHERE correlation_id IS NOT NULL;
CREATE UNIQUE INDEX dg_event_log_finished ON dg_event_log (tenant_id, trace_id) WHERE event_type = 'TraceFinished';

-- One row per tenant: the last event of the tenant's hash chain. Updated by
-- the appender in the same transaction as the events.
CREATE TABLE dg_chain_heads (
    tenant_id  TEXT   PRIMARY KEY,
    log_seq    BIGINT NOT NULL,
    chain_hash TEXT   NOT NULL,
    event_count BIGINT NOT NULL
);

-- Append-only guard: no UPDATE, DELETE or TRUNCATE on the log, whoever the
-- session is. Repairs need an explicit ALTER TABLE ... DISABLE TRIGGER,
-- which `dg events verify` would then expose through the hash chain.
CREATE FUNCTION dg_event_log_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'dg_event_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER dg_event_log_append_only
    BEFORE UPDATE OR DELETE ON dg_event_log
    FOR EACH ROW EXECUTE FUNCTION dg_event_log_reject_change();

CREATE TRIGGER dg_event_log_no_truncate
    BEFORE TRUNCATE ON dg_event_log
    FOR EACH STATEMENT EXECUTE FUNCTION dg_event_log_reject_change();

-- Finished lock at the storage level (events spec §10.3): nothing but a
-- TraceFinished may follow a TraceFinished (a second one is stopped by the
-- unique index dg_event_log_finished). The appender enforces this itself;
-- the trigger guards against other writers. It is a statement trigger over
-- the inserted rows, one indexed join per INSERT, because a row trigger
-- doubled the cost of a batch insert.
CREATE FUNCTION dg_block_events_after_finish() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- LATERAL ... LIMIT 1 keeps this one index probe per inserted row (a
    -- join would let the planner scan the whole log for every INSERT).
    IF EXISTS (
        SELECT 1 FROM dg_new_events n
        CROSS JOIN LATERAL (
            SELECT 1 FROM dg_event_log f
            WHERE f.tenant_id = n.tenant_id AND f.trace_id = n.trace_id
              AND f.event_type = 'TraceFinished' AND f.log_seq < n.log_seq
            LIMIT 1) f
        WHERE n.event_type <> 'TraceFinished') THEN
        RAISE EXCEPTION 'trace_finished' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER dg_block_events_after_finish
    AFTER INSERT ON dg_event_log
    REFERENCING NEW TABLE AS dg_new_events
    FOR EACH STATEMENT EXECUTE FUNCTION dg_block_events_after_finish();

-- dg_append_check verifies, inside the append transaction and under the
-- append lock, the facts an appender assumed from its cache when it applied
-- the rules without reading the log first: the head log_seq, that no
-- idempotency key or event id of the batch exists, each trace's next
-- trace_seq and finished flag, and each tenant's chain head (NULL: none).
-- It raises dg_append_stale (SQLSTATE 40001) when any differs, which aborts
-- the batch before its INSERT; the appender then reads the log and retries.
CREATE FUNCTION dg_append_check(
    p_head bigint,
    idem_tenant text[], idem_producer text[], idem_key text[],
    id_tenant text[], id_event text[],
    tr_tenant text[], tr_trace text[], tr_next bigint[], tr_finished boolean[],
    ch_tenant text[], ch_hash text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT COALESCE(max(log_seq), 0) FROM dg_event_log) <> p_head THEN
        RAISE EXCEPTION 'dg_append_stale: head' USING ERRCODE = 'serialization_failure';
    END IF;
    -- LATERAL ... LIMIT 1: one unique-index probe per key, never a scan.
    IF EXISTS (SELECT 1 FROM unnest(idem_tenant, idem_producer, idem_key) AS k(t, p, i)
               CROSS JOIN LATERAL (SELECT 1 FROM dg_event_log x
                   WHERE x.tenant_id = k.t AND x.producer_id = k.p AND x.idempotency_key = k.i LIMIT 1) x) THEN
        RAISE EXCEPTION 'dg_append_stale: idempotency key' USING ERRCODE = 'serialization_failure';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(id_tenant, id_event) AS k(t, e)
               CROSS JOIN LATERAL (SELECT 1 FROM dg_event_log x
                   WHERE x.tenant_id = k.t AND x.event_id = k.e LIMIT 1) x) THEN
        RAISE EXCEPTION 'dg_append_stale: event id' USING ERRCODE = 'serialization_failure';
    END IF;
    -- Aggregates in LATERAL: one index probe per trace (an EXISTS in an
    -- expression may become a hashed subplan over every finished trace).
    IF EXISTS (SELECT 1 FROM unnest(tr_tenant, tr_trace, tr_next, tr_finished) AS k(t, tr, nx, fin)
               CROSS JOIN LATERAL (SELECT COALESCE(max(x.trace_seq) + 1, 0) AS nx FROM dg_event_log x
                   WHERE x.tenant_id = k.t AND x.trace_id = k.tr) m
               CROSS JOIN LATERAL (SELECT count(*) > 0 AS fin FROM dg_event_log x
                   WHERE x.tenant_id = k.t AND x.trace_id = k.tr AND x.event_type = 'TraceFinished') f
               WHERE m.nx <> k.nx OR f.fin <> k.fin) THEN
        RAISE EXCEPTION 'dg_append_stale: trace' USING ERRCODE = 'serialization_failure';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(ch_tenant, ch_hash) AS k(t, h)
               WHERE k.h IS DISTINCT FROM (SELECT c.chain_hash FROM dg_chain_heads c WHERE c.tenant_id = k.t)) THEN
        RAISE EXCEPTION 'dg_append_stale: chain head' USING ERRCODE = 'serialization_failure';
    END IF;
END
$$;
