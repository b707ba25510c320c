-- 0007_workflow_account_index: index only the items assigned to an account.
--
-- dg_workflow_items_account serves one lookup, "items assigned to account
-- X" (assigned_account_id = $n, which implies IS NOT NULL, so the partial
-- index still answers it). Most items are assigned to a role with no
-- account, and every import, sweep and action that writes such an item
-- paid for an index entry nobody reads; imports write thousands per batch.
DROP INDEX dg_workflow_items_account;
CREATE INDEX dg_workflow_items_account ON dg_workflow_items (tenant_id, assigned_account_id)
    WHERE assigned_account_id IS NOT NULL;
