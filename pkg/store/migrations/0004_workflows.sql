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
    -- the due date a deadline-risk notification was produced for (the
    -- sweep's cheap pre-check; the notification's dedupe key is the guard)
    deadline_risk_for       TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, workflow_id)
);
CREATE UNIQUE INDEX dg_workflow_items_subject ON dg_workflow_items (tenant_id, trace_id, subject_type, subject_id);
CREATE INDEX dg_workflow_items_status ON dg_workflow_items (tenant_id, status);
CREATE INDEX dg_workflow_items_trace ON dg_workflow_items (tenant_id, trace_id);
CREATE INDEX dg_workflow_items_account ON dg_workflow_items (tenant_id, assigned_account_id);
CREATE INDEX dg_workflow_items_role ON dg_workflow_items (tenant_id, assigned_role);
CREATE INDEX dg_workflow_items_due ON dg_workflow_items (tenant_id, sla_due_at);
CREATE INDEX dg_workflow_items_log_seq ON dg_workflow_items (tenant_id, last_source_log_seq);
-- what the SLA sweep scans: open items with a due date (deadline risk) and
-- the items automatic escalation may still move (escalated ones are not)
CREATE INDEX dg_workflow_items_open_due ON dg_workflow_items (tenant_id, sla_due_at)
    WHERE status IN ('requested', 'in_review', 'changes_requested', 'escalated') AND sla_due_at IS NOT NULL;
CREATE INDEX dg_workflow_items_escalatable ON dg_workflow_items (tenant_id, sla_due_at)
    WHERE status IN ('requested', 'in_review', 'changes_requested') AND sla_due_at IS NOT NULL;

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
CREATE UNIQUE INDEX dg_workflow_actions_source ON dg_workflow_actions (tenant_id, source_event_id);
CREATE INDEX dg_workflow_actions_item ON dg_workflow_actions (tenant_id, workflow_id, created_at);
CREATE INDEX dg_workflow_actions_type ON dg_workflow_actions (tenant_id, action_type);

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
    PRIMARY KEY (tenant_id, notification_id)
);
CREATE UNIQUE INDEX dg_workflow_notifications_dedupe ON dg_workflow_notifications (tenant_id, dedupe_key);
CREATE INDEX dg_workflow_notifications_item ON dg_workflow_notifications (tenant_id, workflow_id, created_at);
CREATE INDEX dg_workflow_notifications_category ON dg_workflow_notifications (tenant_id, category, created_at);

-- Webhook outbox: one row per (notification, receiver URL), written in the
-- same transaction as the notification, so nothing is lost across restarts.
CREATE TABLE dg_workflow_deliveries (
    tenant_id       TEXT        NOT NULL,
    notification_id TEXT        NOT NULL,
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
