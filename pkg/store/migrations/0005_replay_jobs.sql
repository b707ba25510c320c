-- Admin replay jobs (HTTP API §8.8, projections spec B.6): catch-up and
-- rebuild jobs started through POST /api/v1/admin/replays. They are kept
-- apart from dg_projection_runs, which records every rebuild and verify
-- (including the ones an admin job starts) and whose writers close any
-- open run of a tenant as orphaned when they take its rebuild lock.
CREATE TABLE dg_replay_jobs (
    job_id           TEXT        PRIMARY KEY,
    tenant_id        TEXT        NOT NULL,
    projection_name  TEXT        NOT NULL CHECK (projection_name IN ('all', 'context_graph', 'trace_summary', 'precedent_index')),
    mode             TEXT        NOT NULL CHECK (mode IN ('catch_up', 'rebuild')),
    status           TEXT        NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    requested_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    since_log_seq    BIGINT      NOT NULL DEFAULT 0 CHECK (since_log_seq >= 0),
    until_log_seq    BIGINT      CHECK (until_log_seq >= 0),
    processed_events BIGINT      NOT NULL DEFAULT 0,
    last_log_seq     BIGINT      NOT NULL DEFAULT 0,
    error_code       TEXT,
    error_message    TEXT,
    metadata_json    TEXT        NOT NULL DEFAULT '{}'
);

-- One active job per (tenant, projection); "all" is a scope of its own.
-- A second admission fails on this index, which the API answers with 409.
CREATE UNIQUE INDEX dg_replay_jobs_active ON dg_replay_jobs (tenant_id, projection_name)
    WHERE status IN ('queued', 'running');

CREATE INDEX dg_replay_jobs_tenant ON dg_replay_jobs (tenant_id, requested_at);
