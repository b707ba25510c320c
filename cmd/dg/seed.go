package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/manifest"
	"github.com/decisiongraph/dg/pkg/seed"
	"github.com/decisiongraph/dg/pkg/store"
)

func newSeedCmds(a *app) []*cobra.Command {
	var (
		tenant string
		reset  bool
		yes    bool
		atFlag string
	)
	cmd := &cobra.Command{
		Use:   "seed DATASET",
		Short: "Load a demonstration dataset (release-demo) into a tenant",
		Long: `Append a demonstration dataset through the normal append path, rebuild the
tenant's projections, run the workflow refresh and print the seed report.

release-demo holds the reference's three renewal traces (22 events: an
approved precedent, a rejected renewal under incident review, a live
exception with a cited precedent) plus one exception close to its deadline.
Its times are placed relative to the seeding time (--at pins it), so the two
open reviews are overdue and escalated on first load and the last one is
flagged as at risk.

Seeding is idempotent: a tenant that already holds the dataset is left as it
is. --reset removes every row of that tenant (events included, through the
one documented path past the log's append-only guard) and seeds again; it
needs --yes unless the manifest's server.env is dev. Other tenants are never
touched. The database is --database-url, else DATABASE_URL, else the
manifest's (the running managed cluster or database.url).`,
		Example: `  dg seed release-demo
  dg seed release-demo --tenant demo-2 --at 2026-03-07T16:00:00Z -o json
  dg seed release-demo --reset --yes`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			opts := seed.Options{Dataset: args[0], Tenant: tenant, Reset: reset, ResetConfirmed: yes, Logger: a.logger}
			if atFlag != "" {
				t, err := time.Parse(time.RFC3339, atFlag)
				if err != nil {
					return usageError(fmt.Errorf("--at must be an RFC 3339 time such as 2026-03-07T16:00:00Z: %w", err))
				}
				opts.At = t
			}
			known := false
			for _, d := range seed.Datasets() {
				known = known || d == args[0]
			}
			if !known {
				return usageError(fmt.Errorf("unknown dataset %q (known: %v)", args[0], seed.Datasets()))
			}
			url, m, err := a.seedDatabase(cmd)
			if err != nil {
				return err
			}
			if reset && !yes && m != nil && m.Server.Env == manifest.EnvDev {
				opts.ResetConfirmed = true
			}
			if reset && !opts.ResetConfirmed {
				return usageError(seed.ErrResetNotConfirmed)
			}
			st, err := store.Open(ctx, url, store.Options{})
			if err != nil {
				return err
			}
			defer st.Close()
			rep, err := seed.Run(ctx, st, opts)
			if err != nil {
				if errors.Is(err, seed.ErrResetNotConfirmed) || errors.Is(err, seed.ErrUnknownDataset) {
					return usageError(err)
				}
				return err
			}
			if a.jsonOutput() {
				return writeJSON(a.stdout, rep)
			}
			printSeedReport(a, rep)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&tenant, "tenant", seed.DefaultTenant, "tenant to seed")
	f.BoolVar(&reset, "reset", false, "remove the tenant's rows (events included) and seed again")
	f.BoolVar(&yes, "yes", false, "confirm --reset (not needed with a dev manifest)")
	f.StringVar(&atFlag, "at", "", "seeding time the dataset's times are placed around (RFC 3339; default now)")
	addDatabaseFlags(a, cmd)
	return []*cobra.Command{cmd}
}

// seedDatabase is --database-url/DATABASE_URL, else the manifest node's
// database. The manifest, when one was read, decides whether --reset
// needs --yes.
func (a *app) seedDatabase(cmd *cobra.Command) (string, *manifest.Manifest, error) {
	if u, err := a.databaseURL(); err == nil {
		m, _, _, _ := a.readManifest(a.manifestLocation())
		return u, m, nil
	}
	m, err := a.loadManifest()
	if err != nil {
		return "", nil, err
	}
	db, err := a.nodeDatabase(cmd.Context(), m)
	if err != nil {
		return "", nil, err
	}
	return db.url, m, nil
}

func printSeedReport(a *app, r *seed.Report) {
	w := a.stdout
	fmt.Fprintf(w, "tenant_id: %s\nseed_profile: %s\nseeded_at: %s\n", r.Tenant, r.SeedProfile, r.SeededAt)
	if r.Reset {
		fmt.Fprintf(w, "reset: removed %d events of the tenant\n", r.Deleted["dg_event_log"])
	}
	fmt.Fprintf(w, "event_count: %d (appended %d, already present %d)\n", r.EventCount, r.Appended, r.AlreadyPresent)
	fmt.Fprintf(w, "live_trace_id: %s\nlive_workflow_id: %s\nincident_review_workflow_id: %s\n",
		seed.LiveTrace, seed.LiveWorkflow, seed.IncidentWorkflow)
	fmt.Fprintf(w, "open_workflows: %v (overdue %v)\nnotifications: %d\n", r.Inbox["open_count"], r.Inbox["overdue_count"], r.Notifications)
	fmt.Fprintln(w, "workflows:")
	for _, wf := range r.Workflows {
		due := ""
		if wf.Overdue {
			due = " overdue"
		}
		fmt.Fprintf(w, "  %-70s %s%s\n", wf.WorkflowID, wf.Status, due)
	}
	fmt.Fprintln(w, "traces (most recent first):")
	for _, t := range r.RecentTraceIDs {
		fmt.Fprintf(w, "  %s\n", t)
	}
	fmt.Fprintln(w, "digests:")
	fmt.Fprintf(w, "  context_graph:   %s\n  trace_summary:   %s\n  precedent_index: %s\n  full_projection: %s\n",
		r.Digests.ContextGraph, r.Digests.TraceSummary, r.Digests.PrecedentIndex, r.Digests.FullProjection)
	fmt.Fprintf(w, "console: %s\n         %s\n", r.ConsolePaths["default"], r.ConsolePaths["incident_review"])
	for _, k := range []string{"selected_trace_path", "recent_workflows_path", "projection_health_path", "export_workflow_path"} {
		fmt.Fprintf(w, "api: %s\n", r.APIExamples[k])
	}
}
