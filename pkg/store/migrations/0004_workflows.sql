-- 0004_workflows: review workflow state derived from the event log
-- (ExceptionRequested, ApprovalRecorded, WorkflowReviewRequested) plus the
-- human-side records: actions, notifications, webhook deliveries and
-- idempotent action requests.
--
-- Every primary key is tenant-qualified (the reference keys items by
-- workflow_id alone, which lets two tenants overwrite each other).
-- Timestamps are timestamptz so they compare as times, never as strings.

-- One row per tenant: the import cursor (highest log_seq imported).
CREATE TABLE dg_workflow_runtime (
    tenant_id    TEXT        PRIMARY KEY,
    last_log_seq BIGINT      NOT NULL DEFAULT 0,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE dg_workflow_items (
    tenant_id               TEXT        NOT NULL,
    workflow_id             TEXT        NOT NULL,
    trace_id                TEXT        NOT NULL,
    workflow_kind           TEXT        NOT NULL,
    workflow_name           TEXT        NOT NULL,
    subject_type            TEXT        NOT NULL,
    subject_id              TEXT        NOT NULL,
    status                  TEXT        NOT NULL,
    priority                TEXT        NOT NULL DEFAULT 'high',
    title                   TEXT        NOT NULL,
    policy_id               TEXT,
    policy_version          TEXT,
    requested_by_actor_id   TEXT,
    requested_by_actor_type TEXT,
    assigned_account_id     TEXT,
    assigned_role           TEXT,
    requested_at            TIMESTAMPTZ NOT NULL,
    sla_due_at              TIMESTAMPTZ,
    updated_at              TIMESTAMPTZ NOT NULL,
    resolved_at             TIMESTAMPTZ,
    last_action_type        TEXT,
    last_action_at          TIMESTAMPTZ,
    current_decision        TEXT,
    current_reason          TEXT,
    approval_event_id       TEXT,
    created_from_event_id   TEXT        NOT NULL,
    last_source_log_seq     BIGINT,
    metadata                JSONB       NOT NULL DEFAULT '{}',
    -- queue order of the priority (urgent, high, normal, anything else)
    prio_rank               SMALLINT    GENERATED ALWAYS AS (CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1
                                            WHEN 'normal' THEN 2 ELSE 3 END) STORED,
    -- the due date a deadline-risk notification was produced for (the
    -- sweep's cheap pre-check; the notification's dedupe key is the guard)
    deadline_risk_for       TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, workflow_id)
) WITH (fillfactor = 80); -- room for HOT updates (comments, reassignments)
CREATE UNIQUE INDEX dg_workflow_items_subject ON dg_workflow_items (tenant_id, trace_id, subject_type, subject_id);
CREATE INDEX dg_workflow_items_account ON dg_workflow_items (tenant_id, assigned_account_id);
-- (tenant_id, trace_id) lookups use the subject index's prefix; status
-- counts come from dg_workflow_status_counts. Fewer
-- indexes keep imports and sweeps fast: every upsert touches each one.
-- The inbox: open items in queue order (overdue first is two index walks).
CREATE INDEX dg_workflow_items_inbox ON dg_workflow_items (tenant_id, prio_rank, requested_at, workflow_id COLLATE "C")
    WHERE status IN ('requested', 'in_review', 'changes_requested', 'escalated');
-- What the SLA sweep scans: open items with a due date (deadline risk) and
-- the items automatic escalation may still move (escalated ones are not).
CREATE INDEX dg_workflow_items_open_due ON dg_workflow_items (tenant_id, sla_due_at)
    WHERE status IN ('requested', 'in_review', 'changes_requested', 'escalated') AND sla_due_at IS NOT NULL;
CREATE INDEX dg_workflow_items_escalatable ON dg_workflow_items (tenant_id, sla_due_at)
    WHERE status IN ('requested', 'in_review', 'changes_requested') AND sla_due_at IS NOT NULL;

-- Per-tenant item counts by status, kept by statement-level triggers (one
-- upsert per statement, not per row), so the inbox summary does not count
-- every item of the tenant on each read.
CREATE TABLE dg_workflow_status_counts (
    tenant_id TEXT   NOT NULL,
    status    TEXT   NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, status)
);

CREATE FUNCTION dg_workflow_count_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dg_workflow_status_counts (tenant_id, status, n)
    SELECT tenant_id, status, count(*) FROM new_items GROUP BY tenant_id, status
    ON CONFLICT (tenant_id, status) DO UPDATE SET n = dg_workflow_status_counts.n + EXCLUDED.n;
    RETURN NULL;
END
$$;

CREATE FUNCTION dg_workflow_count_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dg_workflow_status_counts (tenant_id, status, n)
    SELECT tenant_id, status, sum(d) FROM (
        SELECT tenant_id, status, 1 AS d FROM new_items
        UNION ALL
        SELECT tenant_id, status, -1 AS d FROM old_items) x
    GROUP BY tenant_id, status HAVING sum(d) <> 0
    ON CONFLICT (tenant_id, status) DO UPDATE SET n = dg_workflow_status_counts.n + EXCLUDED.n;
    RETURN NULL;
END
$$;

CREATE FUNCTION dg_workflow_count_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO dg_workflow_status_counts (tenant_id, status, n)
    SELECT tenant_id, status, -count(*) FROM old_items GROUP BY tenant_id, status
    ON CONFLICT (tenant_id, status) DO UPDATE SET n = dg_workflow_status_counts.n + EXCLUDED.n;
    RETURN NULL;
END
$$;

CREATE TRIGGER dg_workflow_items_count_insert AFTER INSERT ON dg_workflow_items
    REFERENCING NEW TABLE AS new_items FOR EACH STATEMENT EXECUTE FUNCTION dg_workflow_count_insert();
CREATE TRIGGER dg_workflow_items_count_update AFTER UPDATE ON dg_workflow_items
    REFERENCING OLD TABLE AS old_items NEW TABLE AS new_items FOR EACH STATEMENT EXECUTE FUNCTION dg_workflow_count_update();
CREATE TRIGGER dg_workflow_items_count_delete AFTER DELETE ON dg_workflow_items
    REFERENCING OLD TABLE AS old_items FOR EACH STATEMENT EXECUTE FUNCTION dg_workflow_count_delete();

CREATE TABLE dg_workflow_actions (
    tenant_id          TEXT        NOT NULL,
    action_id          TEXT        NOT NULL,
    workflow_id        TEXT        NOT NULL,
    trace_id           TEXT        NOT NULL,
    action_type        TEXT        NOT NULL,
    actor_id           TEXT,
    actor_type         TEXT,
    actor_account_id   TEXT,
    note               TEXT,
    payload            JSONB       NOT NULL DEFAULT '{}',
    source_event_id    TEXT,
    resulting_status   TEXT        NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, action_id)
);
-- An imported event's row has action_id 'wfa:event:<event_id>', so the
-- primary key already allows at most one row per imported event.
CREATE INDEX dg_workflow_actions_item ON dg_workflow_actions (tenant_id, workflow_id, created_at);

CREATE TABLE dg_workflow_notifications (
    tenant_id            TEXT        NOT NULL,
    notification_id      TEXT        NOT NULL,
    workflow_id          TEXT        NOT NULL,
    trace_id             TEXT        NOT NULL,
    category             TEXT        NOT NULL,
    channel              TEXT        NOT NULL DEFAULT 'operator_console',
    status               TEXT        NOT NULL DEFAULT 'delivered',
    message              TEXT        NOT NULL,
    recipient_account_id TEXT,
    recipient_role       TEXT,
    payload              JSONB       NOT NULL DEFAULT '{}',
    dedupe_key           TEXT        NOT NULL,
    created_at           TIMESTAMPTZ NOT NULL,
    delivered_at         TIMESTAMPTZ,
    -- the dedupe key is the unique constraint: inserts use ON CONFLICT DO
    -- NOTHING, so no notification is ever created twice. notification_id is
    -- a name-based UUID of (tenant, dedupe_key), so it is unique as well.
    PRIMARY KEY (tenant_id, dedupe_key)
);
CREATE INDEX dg_workflow_notifications_item ON dg_workflow_notifications (tenant_id, workflow_id, created_at);

-- Webhook outbox: one row per (notification, receiver URL), written in the
-- same transaction as the notification, so nothing is lost across restarts.
CREATE TABLE dg_workflow_deliveries (
    tenant_id       TEXT        NOT NULL,
    notification_id TEXT        NOT NULL,
    dedupe_key      TEXT        NOT NULL,
    target_url      TEXT        NOT NULL,
    status          TEXT        NOT NULL DEFAULT 'pending', -- pending, delivered, failed
    attempts        INT         NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_until     TIMESTAMPTZ,
    last_status     INT,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, notification_id, target_url)
);
CREATE INDEX dg_workflow_deliveries_due ON dg_workflow_deliveries (next_attempt_at) WHERE status = 'pending';

-- Idempotency-Key of POST /api/v1/workflows/{id}/actions: the first answer
-- is kept and returned to every retry with the same key.
CREATE TABLE dg_workflow_action_requests (
    tenant_id       TEXT        NOT NULL,
    account_id      TEXT        NOT NULL,
    idempotency_key TEXT        NOT NULL,
    workflow_id     TEXT        NOT NULL,
    request_hash    TEXT        NOT NULL,
    response        JSONB       NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, account_id, idempotency_key)
);
