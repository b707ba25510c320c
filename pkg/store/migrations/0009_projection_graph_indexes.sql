-- 0009_projection_graph_indexes: drop the context-graph indexes no query reads.
--
-- dg_cg_nodes is read by node_id (its unique key) and dg_cg_edges by
-- edge_id (unique key), from_node_id and to_node_id (subgraph walks and
-- node edge lists; an edge_type filter is applied along those walks). The
-- indexes on (tenant_id, trace_id) and (tenant_id, node_type) of nodes and
-- on (tenant_id, trace_id) and (tenant_id, edge_type) of edges, carried
-- over from the reference schema, serve no statement of dg, yet every
-- live catch-up batch paid for their entries (the graph writes are the
-- slowest part of catching up a burst) and every rebuild built them.
-- Dropping an index of a partitioned table drops it on every partition.
DROP INDEX IF EXISTS dg_cg_nodes_trace;
DROP INDEX IF EXISTS dg_cg_nodes_type;
DROP INDEX IF EXISTS dg_cg_edges_trace;
DROP INDEX IF EXISTS dg_cg_edges_type;
