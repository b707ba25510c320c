-- 0002_projections: derived read models (projection tables), their shadow
-- copies for rebuilds, and the projection runtime's bookkeeping. Nothing
-- here is a source of truth: every row can be dropped and rebuilt from
-- dg_event_log. Every table is tenant-scoped (tenant_id leads every key).
--
-- Text columns are compared with COLLATE "C" by queries that order them;
-- digests sort rows in Go, never in SQL.

CREATE TABLE dg_cg_nodes (
    tenant_id     TEXT   NOT NULL,
    node_id       TEXT   NOT NULL,
    node_type     TEXT   NOT NULL,
    trace_id      TEXT   NOT NULL,
    log_seq       BIGINT NOT NULL,
    created_at    TEXT   NOT NULL,
    metadata_json TEXT   NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, node_id)
);
CREATE INDEX dg_cg_nodes_trace ON dg_cg_nodes (tenant_id, trace_id);
CREATE INDEX dg_cg_nodes_type ON dg_cg_nodes (tenant_id, node_type);

-- Every edge's endpoints exist as nodes: the projector writes a placeholder
-- node before every edge whose endpoint does not exist yet. The reference
-- enforces this with foreign keys; dg does not declare them because their
-- per-row checks (and row locks on nodes) doubled the cost of rebuild swaps,
-- and the rule is checked by verify (a rebuild must give the same digests).
CREATE TABLE dg_cg_edges (
    tenant_id     TEXT   NOT NULL,
    edge_id       TEXT   NOT NULL,
    edge_type     TEXT   NOT NULL,
    from_node_id  TEXT   NOT NULL,
    to_node_id    TEXT   NOT NULL,
    trace_id      TEXT   NOT NULL,
    log_seq       BIGINT NOT NULL,
    created_at    TEXT   NOT NULL,
    metadata_json TEXT   NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, edge_id)
);
CREATE INDEX dg_cg_edges_from ON dg_cg_edges (tenant_id, from_node_id, edge_id COLLATE "C");
CREATE INDEX dg_cg_edges_to ON dg_cg_edges (tenant_id, to_node_id, edge_id COLLATE "C");
CREATE INDEX dg_cg_edges_trace ON dg_cg_edges (tenant_id, trace_id);
CREATE INDEX dg_cg_edges_type ON dg_cg_edges (tenant_id, edge_type);

CREATE TABLE dg_trace_summary (
    tenant_id           TEXT   NOT NULL,
    trace_id            TEXT   NOT NULL,
    workflow            TEXT   NOT NULL,
    title               TEXT   NOT NULL,
    primary_entity_type TEXT,
    primary_entity_id   TEXT,
    outcome             TEXT,
    started_at          TEXT   NOT NULL,
    finished_at         TEXT,
    event_count         BIGINT NOT NULL DEFAULT 0,
    last_log_seq        BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, trace_id)
);
CREATE INDEX dg_trace_summary_workflow ON dg_trace_summary (tenant_id, workflow);
CREATE INDEX dg_trace_summary_outcome ON dg_trace_summary (tenant_id, outcome);
CREATE INDEX dg_trace_summary_recent ON dg_trace_summary (tenant_id, last_log_seq DESC, trace_id COLLATE "C")
    WHERE outcome IS NOT NULL;
CREATE INDEX dg_trace_summary_entity ON dg_trace_summary (tenant_id, primary_entity_type, primary_entity_id);

-- The policy-eval and precedent indexes belong to the precedent_index
-- projection, whose cursor is independent of trace_summary's, so they do
-- not reference dg_trace_summary by foreign key.
CREATE TABLE dg_policy_eval_index (
    tenant_id      TEXT   NOT NULL,
    index_id       TEXT   NOT NULL,
    trace_id       TEXT   NOT NULL,
    policy_id      TEXT   NOT NULL,
    policy_version TEXT   NOT NULL,
    log_seq        BIGINT NOT NULL,
    created_at     TEXT   NOT NULL,
    PRIMARY KEY (tenant_id, index_id)
);
CREATE INDEX dg_policy_eval_policy ON dg_policy_eval_index (tenant_id, policy_id, policy_version);
CREATE INDEX dg_policy_eval_trace ON dg_policy_eval_index (tenant_id, trace_id);

CREATE TABLE dg_precedent_index (
    tenant_id             TEXT   NOT NULL,
    source_event_id       TEXT   NOT NULL,
    log_seq               BIGINT NOT NULL,
    trace_id              TEXT   NOT NULL,
    policy_id             TEXT   NOT NULL,
    policy_version        TEXT   NOT NULL,
    exception_id          TEXT,
    primary_entity_type   TEXT,
    primary_entity_system TEXT,
    primary_entity_id     TEXT,
    PRIMARY KEY (tenant_id, source_event_id)
);
CREATE INDEX dg_precedent_policy ON dg_precedent_index (tenant_id, policy_id, policy_version);
CREATE INDEX dg_precedent_trace ON dg_precedent_index (tenant_id, trace_id);
CREATE INDEX dg_precedent_exception ON dg_precedent_index (tenant_id, exception_id);
CREATE INDEX dg_precedent_entity ON dg_precedent_index (tenant_id, primary_entity_type, primary_entity_system, primary_entity_id);
CREATE INDEX dg_precedent_log_seq ON dg_precedent_index (tenant_id, log_seq);

-- Shadow tables: a rebuild writes here (bulk COPY, no indexes, not logged:
-- they hold nothing that cannot be rebuilt), compares digests with the live
-- tables, and swaps the rows in under the projector lock.
CREATE UNLOGGED TABLE dg_cg_nodes_shadow (LIKE dg_cg_nodes INCLUDING DEFAULTS);
CREATE UNLOGGED TABLE dg_cg_edges_shadow (LIKE dg_cg_edges INCLUDING DEFAULTS);
CREATE UNLOGGED TABLE dg_trace_summary_shadow (LIKE dg_trace_summary INCLUDING DEFAULTS);
CREATE UNLOGGED TABLE dg_policy_eval_index_shadow (LIKE dg_policy_eval_index INCLUDING DEFAULTS);
CREATE UNLOGGED TABLE dg_precedent_index_shadow (LIKE dg_precedent_index INCLUDING DEFAULTS);

-- One durable checkpoint per (tenant, projection): the highest log_seq whose
-- effects are committed, written in the same transaction as the rows.
CREATE TABLE dg_projection_cursors (
    tenant_id       TEXT        NOT NULL,
    projection_name TEXT        NOT NULL,
    last_log_seq    BIGINT      NOT NULL DEFAULT 0,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, projection_name)
);

-- Last computed digest per (tenant, projection), full_projection included.
CREATE TABLE dg_projection_digests (
    tenant_id       TEXT        NOT NULL,
    projection_name TEXT        NOT NULL,
    digest_value    TEXT        NOT NULL,
    last_log_seq    BIGINT      NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, projection_name)
);

-- Events a live worker could not project. The checkpoint never passes an
-- open failure; a later successful batch past it resolves the row.
CREATE TABLE dg_projection_failures (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       TEXT        NOT NULL,
    projection_name TEXT        NOT NULL,
    log_seq         BIGINT      NOT NULL,
    trace_id        TEXT,
    event_id        TEXT,
    error_code      TEXT        NOT NULL,
    error_message   TEXT        NOT NULL,
    recoverable     BOOLEAN     NOT NULL DEFAULT false,
    retry_count     INTEGER     NOT NULL DEFAULT 0,
    status          TEXT        NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    metadata_json   TEXT        NOT NULL DEFAULT '{}',
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at     TIMESTAMPTZ
);
CREATE UNIQUE INDEX dg_projection_failures_open ON dg_projection_failures (tenant_id, projection_name, log_seq)
    WHERE status = 'open';

-- Rebuild and catch-up runs started by operators.
CREATE TABLE dg_projection_runs (
    job_id           TEXT        PRIMARY KEY,
    tenant_id        TEXT        NOT NULL,
    projection_name  TEXT        NOT NULL,
    mode             TEXT        NOT NULL CHECK (mode IN ('catch_up', 'rebuild', 'verify')),
    status           TEXT        NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    requested_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    since_log_seq    BIGINT      NOT NULL DEFAULT 0,
    until_log_seq    BIGINT,
    processed_events BIGINT      NOT NULL DEFAULT 0,
    last_log_seq     BIGINT      NOT NULL DEFAULT 0,
    error_code       TEXT,
    error_message    TEXT,
    metadata_json    TEXT        NOT NULL DEFAULT '{}'
);
CREATE INDEX dg_projection_runs_tenant ON dg_projection_runs (tenant_id, requested_at);
