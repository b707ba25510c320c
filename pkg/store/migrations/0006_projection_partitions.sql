-- 0006_projection_partitions: the five live projection tables become
-- tables partitioned by LIST (tenant_id), one partition per tenant in the
-- schema dg_projection_parts, named <code>_<md5(tenant_id)>. A rebuild
-- builds a tenant's rows in fresh tables (COPY, then bulk index builds)
-- and swaps them in with DETACH/ATTACH PARTITION in one short transaction
-- instead of deleting and re-inserting every row into indexed tables.
--
-- Columns, keys and index definitions are unchanged, with one exception:
-- the keys are UNIQUE indexes rather than PRIMARY KEY constraints, because
-- pg_restore --clean (dg restore --force) cannot drop a partition's
-- inherited primary-key constraint. ON CONFLICT infers unique indexes the
-- same way. Each parent has a DEFAULT partition, so a writer that inserts
-- rows for a tenant without a partition still succeeds; the projection
-- engine moves such rows into the tenant's partition when it first writes
-- for that tenant. Partitions live outside the public schema, so catalogue
-- walks over public tables (backup manifests) see only the five parents.
--
-- Existing rows are copied into the new partitions (one pass per table);
-- the old tables and the old shared shadow tables are dropped (rebuilds
-- now use per-run tables in dg_projection_parts).

CREATE SCHEMA dg_projection_parts;

-- dg_cg_nodes
ALTER TABLE dg_cg_nodes RENAME TO dg_cg_nodes_0005;
ALTER TABLE dg_cg_nodes_0005 DROP CONSTRAINT dg_cg_nodes_pkey;
DROP INDEX dg_cg_nodes_trace;
DROP INDEX dg_cg_nodes_type;
CREATE TABLE dg_cg_nodes (LIKE dg_cg_nodes_0005 INCLUDING DEFAULTS) PARTITION BY LIST (tenant_id);
CREATE UNIQUE INDEX dg_cg_nodes_pkey ON dg_cg_nodes (tenant_id, node_id);
CREATE INDEX dg_cg_nodes_trace ON dg_cg_nodes (tenant_id, trace_id);
CREATE INDEX dg_cg_nodes_type ON dg_cg_nodes (tenant_id, node_type);
CREATE TABLE dg_projection_parts.cg_nodes_default PARTITION OF dg_cg_nodes DEFAULT;

-- dg_cg_edges
ALTER TABLE dg_cg_edges RENAME TO dg_cg_edges_0005;
ALTER TABLE dg_cg_edges_0005 DROP CONSTRAINT dg_cg_edges_pkey;
DROP INDEX dg_cg_edges_from;
DROP INDEX dg_cg_edges_to;
DROP INDEX dg_cg_edges_trace;
DROP INDEX dg_cg_edges_type;
CREATE TABLE dg_cg_edges (LIKE dg_cg_edges_0005 INCLUDING DEFAULTS) PARTITION BY LIST (tenant_id);
CREATE UNIQUE INDEX dg_cg_edges_pkey ON dg_cg_edges (tenant_id, edge_id);
CREATE INDEX dg_cg_edges_from ON dg_cg_edges (tenant_id, from_node_id, edge_id COLLATE "C");
CREATE INDEX dg_cg_edges_to ON dg_cg_edges (tenant_id, to_node_id, edge_id COLLATE "C");
CREATE INDEX dg_cg_edges_trace ON dg_cg_edges (tenant_id, trace_id);
CREATE INDEX dg_cg_edges_type ON dg_cg_edges (tenant_id, edge_type);
CREATE TABLE dg_projection_parts.cg_edges_default PARTITION OF dg_cg_edges DEFAULT;

-- dg_trace_summary
ALTER TABLE dg_trace_summary RENAME TO dg_trace_summary_0005;
ALTER TABLE dg_trace_summary_0005 DROP CONSTRAINT dg_trace_summary_pkey;
DROP INDEX dg_trace_summary_workflow;
DROP INDEX dg_trace_summary_outcome;
DROP INDEX dg_trace_summary_recent;
DROP INDEX dg_trace_summary_entity;
CREATE TABLE dg_trace_summary (LIKE dg_trace_summary_0005 INCLUDING DEFAULTS) PARTITION BY LIST (tenant_id);
CREATE UNIQUE INDEX dg_trace_summary_pkey ON dg_trace_summary (tenant_id, trace_id);
CREATE INDEX dg_trace_summary_workflow ON dg_trace_summary (tenant_id, workflow);
CREATE INDEX dg_trace_summary_outcome ON dg_trace_summary (tenant_id, outcome);
CREATE INDEX dg_trace_summary_recent ON dg_trace_summary (tenant_id, last_log_seq DESC, trace_id COLLATE "C") WHERE outcome IS NOT NULL;
CREATE INDEX dg_trace_summary_entity ON dg_trace_summary (tenant_id, primary_entity_type, primary_entity_id);
CREATE TABLE dg_projection_parts.trace_summary_default PARTITION OF dg_trace_summary DEFAULT;

-- dg_policy_eval_index
ALTER TABLE dg_policy_eval_index RENAME TO dg_policy_eval_index_0005;
ALTER TABLE dg_policy_eval_index_0005 DROP CONSTRAINT dg_policy_eval_index_pkey;
DROP INDEX dg_policy_eval_policy;
DROP INDEX dg_policy_eval_trace;
CREATE TABLE dg_policy_eval_index (LIKE dg_policy_eval_index_0005 INCLUDING DEFAULTS) PARTITION BY LIST (tenant_id);
CREATE UNIQUE INDEX dg_policy_eval_index_pkey ON dg_policy_eval_index (tenant_id, index_id);
CREATE INDEX dg_policy_eval_policy ON dg_policy_eval_index (tenant_id, policy_id, policy_version);
CREATE INDEX dg_policy_eval_trace ON dg_policy_eval_index (tenant_id, trace_id);
CREATE TABLE dg_projection_parts.policy_eval_default PARTITION OF dg_policy_eval_index DEFAULT;

-- dg_precedent_index
ALTER TABLE dg_precedent_index RENAME TO dg_precedent_index_0005;
ALTER TABLE dg_precedent_index_0005 DROP CONSTRAINT dg_precedent_index_pkey;
DROP INDEX dg_precedent_policy;
DROP INDEX dg_precedent_trace;
DROP INDEX dg_precedent_exception;
DROP INDEX dg_precedent_entity;
DROP INDEX dg_precedent_log_seq;
CREATE TABLE dg_precedent_index (LIKE dg_precedent_index_0005 INCLUDING DEFAULTS) PARTITION BY LIST (tenant_id);
CREATE UNIQUE INDEX dg_precedent_index_pkey ON dg_precedent_index (tenant_id, source_event_id);
CREATE INDEX dg_precedent_policy ON dg_precedent_index (tenant_id, policy_id, policy_version);
CREATE INDEX dg_precedent_trace ON dg_precedent_index (tenant_id, trace_id);
CREATE INDEX dg_precedent_exception ON dg_precedent_index (tenant_id, exception_id);
CREATE INDEX dg_precedent_entity ON dg_precedent_index (tenant_id, primary_entity_type, primary_entity_system, primary_entity_id);
CREATE INDEX dg_precedent_log_seq ON dg_precedent_index (tenant_id, log_seq);
CREATE TABLE dg_projection_parts.precedent_default PARTITION OF dg_precedent_index DEFAULT;

DO $$
DECLARE
    rel RECORD;
    tenant TEXT;
BEGIN
    FOR rel IN SELECT * FROM (VALUES ('dg_cg_nodes', 'cg_nodes'), ('dg_cg_edges', 'cg_edges'),
            ('dg_trace_summary', 'trace_summary'), ('dg_policy_eval_index', 'policy_eval'),
            ('dg_precedent_index', 'precedent')) AS v(tbl, code) LOOP
        FOR tenant IN EXECUTE format('SELECT DISTINCT tenant_id FROM %I', rel.tbl || '_0005') LOOP
            EXECUTE format('CREATE TABLE dg_projection_parts.%I PARTITION OF %I FOR VALUES IN (%L)',
                rel.code || '_' || md5(tenant), rel.tbl, tenant);
        END LOOP;
        EXECUTE format('INSERT INTO %I SELECT * FROM %I', rel.tbl, rel.tbl || '_0005');
        EXECUTE format('DROP TABLE %I', rel.tbl || '_0005');
    END LOOP;
END
$$;

DROP TABLE dg_cg_nodes_shadow, dg_cg_edges_shadow, dg_trace_summary_shadow, dg_policy_eval_index_shadow,
    dg_precedent_index_shadow;
