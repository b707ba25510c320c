-- 0003_audit: the durable audit log of sensitive actions (replay and
-- rebuild admissions and cancellations, workflow actions, account use by
-- the console). One row per decision, accepted or rejected. Rows are only
-- ever inserted: the same guard as the event log refuses UPDATE, DELETE
-- and TRUNCATE.

CREATE TABLE dg_audit_log (
    audit_id     BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- NULL for actions outside any tenant (e.g. node-wide operations).
    tenant_id    TEXT,
    -- The service account that acted; NULL for automatic actions such as
    -- SLA escalations by the scheduler.
    actor_id     TEXT,
    actor_type   TEXT        NOT NULL DEFAULT 'service_account',
    action       TEXT        NOT NULL CHECK (action <> ''),
    outcome      TEXT        NOT NULL CHECK (outcome IN ('accepted', 'rejected')),
    target_type  TEXT,
    target_id    TEXT,
    reason       TEXT,
    request_id   TEXT,
    details      JSONB       NOT NULL DEFAULT '{}'
);

CREATE INDEX dg_audit_log_tenant_time ON dg_audit_log (tenant_id, recorded_at, audit_id);
CREATE INDEX dg_audit_log_target ON dg_audit_log (tenant_id, target_type, target_id);
CREATE INDEX dg_audit_log_actor ON dg_audit_log (actor_id, recorded_at);

CREATE FUNCTION dg_audit_log_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'dg_audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER dg_audit_log_append_only
    BEFORE UPDATE OR DELETE ON dg_audit_log
    FOR EACH ROW EXECUTE FUNCTION dg_audit_log_reject_change();

CREATE TRIGGER dg_audit_log_no_truncate
    BEFORE TRUNCATE ON dg_audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION dg_audit_log_reject_change();
