package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/projection"
)

func newProjectionsCmds(a *app) []*cobra.Command {
	cmd := &cobra.Command{
		Use:   "projections",
		Short: "Rebuild, verify and inspect the projections derived from the event log",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newProjectionsRebuildCmd(a), newProjectionsVerifyCmd(a), newProjectionsStatusCmd(a))
	addDatabaseFlags(a, cmd)
	return []*cobra.Command{cmd}
}

type projectionsScope struct {
	tenant     string
	projection string
}

func (s *projectionsScope) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.tenant, "tenant", "", "only this tenant (default: every tenant with events)")
	cmd.Flags().StringVar(&s.projection, "projection", "all", "context_graph, trace_summary, precedent_index or all")
}

func (s *projectionsScope) set() (projection.Set, error) {
	set, ok := projection.SetOf(s.projection)
	if !ok {
		return 0, usageError(fmt.Errorf("--projection must be context_graph, trace_summary, precedent_index or all, not %q", s.projection))
	}
	return set, nil
}

// tenants resolves --tenant, or lists every tenant with events.
func (s *projectionsScope) tenants(ctx context.Context, pg *projection.PG) ([]string, error) {
	if s.tenant != "" {
		return []string{s.tenant}, nil
	}
	return pg.Tenants(ctx)
}

func newProjectionsRebuildCmd(a *app) *cobra.Command {
	var scope projectionsScope
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "rebuild",
		Short: "Rebuild projections from the start of the log and swap them in",
		Long: `rebuild projects each tenant's log from log_seq 0 into shadow tables, computes
their digests, compares them with the live tables and then, in one
transaction under the projections' locks, replaces the live rows, moves the
checkpoints to the rebuilt position and clears recorded failures. Live
workers continue from there. The event log is never modified.

With --dry-run nothing is swapped: the comparison is only reported.

Exit status: 0 rebuilt (or compared, with --dry-run), 2 bad flags or no
database configured, 3 the rebuild failed (for example an event in the log
cannot be projected), 4 another rebuild or verify of a tenant is running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			set, err := scope.set()
			if err != nil {
				return err
			}
			return a.withProjections(cmd.Context(), func(pg *projection.PG) error {
				reports, err := a.rebuildEach(cmd.Context(), pg, scope, func(t string) (*projection.RebuildReport, error) {
					return pg.Rebuild(cmd.Context(), projection.RebuildOptions{Tenant: t, Set: set, DryRun: dryRun,
						Progress: func(n int, seq int64) {
							fmt.Fprintf(a.stderr, "dg: tenant %s: %d events projected (log_seq %d)\n", t, n, seq)
						}})
				})
				if err != nil {
					return err
				}
				return a.printRebuilds(reports, false)
			})
		},
	}
	scope.flags(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "build and compare only; change nothing")
	return cmd
}

func newProjectionsVerifyCmd(a *app) *cobra.Command {
	var scope projectionsScope
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check that derived state equals a rebuild of the log",
		Long: `verify rebuilds each tenant's projections in shadow tables, each up to its
live checkpoint, and compares digests with the live tables. It changes
nothing. On a difference it names the projection and the first differing
row in digest order.

Exit status: 0 every digest matches, 1 a projection differs from its
rebuild, 2 bad flags or no database configured, 3 verify could not run,
4 another rebuild or verify of a tenant is running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			set, err := scope.set()
			if err != nil {
				return err
			}
			return a.withProjections(cmd.Context(), func(pg *projection.PG) error {
				reports, err := a.rebuildEach(cmd.Context(), pg, scope, func(t string) (*projection.RebuildReport, error) {
					return pg.Verify(cmd.Context(), t, set)
				})
				if err != nil {
					return err
				}
				if err := a.printRebuilds(reports, true); err != nil {
					return err
				}
				for _, r := range reports {
					if len(r.Differences) > 0 {
						return checkFailed()
					}
				}
				return nil
			})
		},
	}
	scope.flags(cmd)
	return cmd
}

func newProjectionsStatusCmd(a *app) *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show checkpoint, head, lag, digest and open failures of every projection",
		Long: `status shows, per tenant and projection: the checkpoint (last projected
log_seq), the tenant's head, the lag (events after the checkpoint, and the
age in seconds of the oldest), the last stored digest with the log_seq it
covers, and open failures with the first failing event.

Exit status: 0 shown, 2 bad flags or no database configured, 3 the
database could not be read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withProjections(cmd.Context(), func(pg *projection.PG) error {
				st, err := pg.Status(cmd.Context(), tenant)
				if err != nil {
					return err
				}
				if a.jsonOutput() {
					if st == nil {
						st = []projection.ScopeStatus{}
					}
					return writeProjectionsJSON(a, map[string]any{"projections": st})
				}
				w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "TENANT\tPROJECTION\tCHECKPOINT\tHEAD\tLAG\tLAG_S\tDIGEST\tDIGEST_AT\tFAILURES")
				for _, s := range st {
					digest := s.Digest
					if digest == "" {
						digest = "-"
					}
					fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%.1f\t%s\t%d\t%d\n", s.Tenant, s.Projection, s.Checkpoint, s.Head, s.Lag, s.LagSeconds, digest, s.DigestLogSeq, s.OpenFailures)
				}
				if err := w.Flush(); err != nil {
					return err
				}
				for _, s := range st {
					if f := s.FirstFailure; f != nil {
						fmt.Fprintf(a.stdout, "failure: %s %s at log_seq %d (event %s, trace %s, %d attempts): %s %s\n",
							s.Tenant, s.Projection, f.LogSeq, f.EventID, f.TraceID, f.RetryCount, f.Code, f.Message)
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this tenant (default: every tenant)")
	return cmd
}

// withProjections opens the store and runs fn with its projection engine.
func (a *app) withProjections(ctx context.Context, fn func(*projection.PG) error) error {
	st, err := a.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(projection.NewPG(st, 0))
}

func (a *app) rebuildEach(ctx context.Context, pg *projection.PG, scope projectionsScope, run func(string) (*projection.RebuildReport, error)) ([]*projection.RebuildReport, error) {
	tenants, err := scope.tenants(ctx, pg)
	if err != nil {
		return nil, err
	}
	reports := []*projection.RebuildReport{}
	for _, t := range tenants {
		fmt.Fprintf(a.stderr, "dg: tenant %s: rebuilding from the start of the log...\n", t)
		rep, err := run(t)
		if errors.Is(err, projection.ErrRebuildLocked) {
			return nil, lockedError(err)
		}
		if err != nil {
			return nil, err
		}
		reports = append(reports, rep)
	}
	return reports, nil
}

func (a *app) printRebuilds(reports []*projection.RebuildReport, verify bool) error {
	if a.jsonOutput() {
		return writeProjectionsJSON(a, map[string]any{"tenants": reports})
	}
	for _, r := range reports {
		fmt.Fprintf(a.stdout, "tenant %s: %d events up to log_seq %d in %d ms (%.0f events/s)\n", r.Tenant, r.Events, r.Head, r.BuildMillis, r.EventsPerS)
		for _, name := range r.Projections {
			verdict := "same"
			for _, d := range r.Differences {
				if d.Projection == name {
					verdict = "DIFFERENT"
				}
			}
			fmt.Fprintf(a.stdout, "  %-16s checkpoint %-8d live %s  rebuilt %s  %s\n", name, r.LiveCursors[name], projOrDash(r.Live[name]), r.Rebuilt[name], verdict)
		}
		for _, d := range r.Differences {
			fmt.Fprintf(a.stdout, "  %s: first differing row: %s\n", d.Projection, d.FirstRow)
		}
		switch {
		case verify:
		case r.Swapped:
			fmt.Fprintf(a.stdout, "  swapped in (%d ms); checkpoints now at %d\n", r.SwapMillis, r.Head)
		default:
			fmt.Fprintln(a.stdout, "  dry run: nothing changed")
		}
	}
	return nil
}

func projOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeProjectionsJSON(a *app, v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
