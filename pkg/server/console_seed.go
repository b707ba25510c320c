package server

import (
	"context"
	"fmt"

	"github.com/decisiongraph/dg/pkg/auth"
	"github.com/decisiongraph/dg/pkg/seed"
)

// seedOnStart seeds the manifest's seed datasets and extra (dg up --seed)
// into their tenants, each only when its tenant has no events yet, so a
// restart never touches data (and never needs the reset path).
func (n *node) seedOnStart(ctx context.Context, extra []string) error {
	seen := map[string]bool{}
	for _, ds := range append(append([]string{}, n.m.Seed...), extra...) {
		if seen[ds] {
			continue
		}
		seen[ds] = true
		tenant := seed.DefaultTenant
		empty, err := seed.TenantEmpty(ctx, n.store, tenant)
		if err != nil {
			return err
		}
		if !empty {
			n.log.Info("seed: tenant already has events; not seeding", "dataset", ds, "tenant", tenant)
			continue
		}
		rep, err := seed.Run(ctx, n.store, seed.Options{Dataset: ds, Tenant: tenant, Logger: n.log})
		if err != nil {
			return fmt.Errorf("seed %s on start: %w", ds, err)
		}
		n.log.Info("seeded on start", "dataset", ds, "tenant", tenant, "events", rep.EventCount,
			"open_workflows", rep.Inbox["open_count"], "console", rep.ConsolePaths["default"])
	}
	return nil
}

// consoleConfig is the node's operator console: the same store and
// accounts as the API, the manifest's secret_key_base, tenants and backup
// directory.
func (n *node) consoleConfig(accounts *auth.Registry) *ConsoleConfig {
	return &ConsoleConfig{
		Store:         n.store,
		Accounts:      accounts,
		SecretKeyBase: n.m.Server.SecretKeyBase,
		Env:           n.m.Server.Env,
		Tenants:       n.m.Tenants,
		BackupDir:     n.m.Backup.Dir,
		Workflows:     n.workflows, // the node's service: its webhooks and audit log
	}
}
