package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/manifest"
	"github.com/decisiongraph/dg/pkg/ops"
)

func newDrillCmds(a *app) []*cobra.Command {
	cmd := &cobra.Command{
		Use:   "drill",
		Short: "Prove recovery works: restore drills",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newDrillRestoreCmd(a))
	return []*cobra.Command{cmd}
}

func newDrillRestoreCmd(a *app) *cobra.Command {
	var (
		backup, reportDir, inject, scratch string
		keep                               bool
		jobs                               int
	)
	cmd := &cobra.Command{
		Use:   "restore [--backup ID|latest] [--keep] [--report-dir D]",
		Short: "Restore a backup into a scratch target and check it matches its manifest",
		Long: `drill restore proves a backup can be recovered. It checks the dump's SHA-256
and table of contents, restores it into a scratch target (drill.scratch:
cluster, a throwaway managed cluster in a temp dir on a free port; or
database, a scratch database on the node's server), and checks, each PASS or
FAIL with details:

  checksum, archive        the dump is intact (before anything is restored)
  restore                  pg_restore succeeded
  schema                   the restored migration is the manifest's
  tenant_heads             per-tenant event count, head log_seq, chain head
  chain                    every payload hash, event hash and chain recomputes
  sequences                log_seq has no gaps, every trace's trace_seq is contiguous
  projection_digests       projection tables' digests equal the manifest's
  projection_rebuild       a shadow rebuild from the restored log gives them too
  projection_checkpoints   no checkpoint beyond its tenant's head
  workflow_counts          workflow item/action/notification counts (when present)
  table_rows               every table's row count

It measures restore, verification and total time (RTO) and the age of the
backup and of its newest event (RPO), writes the report as JSON and Markdown
into the report directory, records the result against the backup (dg backup
list, dg status) and tears the scratch target down unless --keep.

--inject flip-byte|truncate|tamper-event|drop-event|stale-projection damages a
copy of the dump or the restored data to prove the drill catches it (the
backup is never modified and the result is not recorded against it).

Exit 0 when every check passed, 1 when one failed, 3 when the drill could
not run.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := a.loadManifest()
			if err != nil {
				return err
			}
			if scratch == "" {
				scratch = m.Drill.Scratch
			}
			if scratch != manifest.ScratchCluster && scratch != manifest.ScratchDatabase {
				return usageError(fmt.Errorf("--scratch must be cluster or database, not %q", scratch))
			}
			if inject != "" && ops.FaultCheck(inject) == "" {
				return usageError(fmt.Errorf("--inject must be one of %s, not %q", strings.Join(ops.Faults(), ", "), inject))
			}
			if reportDir == "" {
				reportDir = m.Drill.ReportDir
			}
			cfg := ops.DrillConfig{Dir: m.Backup.Dir, Backup: backup, Scratch: scratch, Keep: keep, ReportDir: reportDir,
				Inject: inject, Jobs: jobs, Progress: a.stderr, Logger: a.logger}
			cc := managedClusterConfig(a, m)
			cfg.Cluster = ops.ClusterConfig{BinDir: cc.BinDir, RunAs: cc.RunAs, LookupEnv: cc.LookupEnv, Logger: cc.Logger}
			cfg.Tools = a.toolSearch(m, nil)
			if scratch == manifest.ScratchDatabase {
				db, err := a.nodeDatabase(cmd.Context(), m)
				if err != nil {
					return err
				}
				cfg.ServerURL, cfg.Tools = db.url, db.tools
			}
			rep, err := ops.Drill(cmd.Context(), cfg)
			if err != nil {
				return backupError(err)
			}
			if a.jsonOutput() {
				if err := writeJSON(a.stdout, rep); err != nil {
					return err
				}
			} else {
				printDrill(a, rep)
			}
			if !rep.Passed {
				return checkFailed()
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&backup, "backup", "latest", "backup id (dg backup list), or latest")
	f.BoolVar(&keep, "keep", false, "leave the scratch target running and print where it is")
	f.StringVar(&reportDir, "report-dir", "", "where the JSON and Markdown reports go (default drill.report_dir)")
	f.StringVar(&scratch, "scratch", "", "cluster or database (default drill.scratch)")
	f.StringVar(&inject, "inject", "", "self-test: inject a fault ("+strings.Join(ops.Faults(), ", ")+")")
	f.IntVar(&jobs, "jobs", 0, "parallel pg_restore jobs (default: CPUs, at most 4)")
	return cmd
}

func printDrill(a *app, r *ops.DrillReport) {
	verdict := "PASSED"
	if !r.Passed {
		verdict = "FAILED: " + strings.Join(r.Failed, ", ")
	}
	fmt.Fprintf(a.stdout, "drill of backup %s (%d events, %s): %s\n", r.BackupID, r.Events, humanSize(r.SizeBytes), verdict)
	if r.Inject != "" {
		fmt.Fprintf(a.stdout, "injected fault: %s (self-test; not recorded against the backup)\n", r.Inject)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Status, c.Name, c.Details)
	}
	_ = tw.Flush()
	t := r.Timings
	fmt.Fprintf(a.stdout, "RTO %s: checksum %s, scratch %s, restore %s, verification %s (chain %s, rebuild %s)\n",
		durMS(t.TotalMS), durMS(t.ChecksumMS), durMS(t.ScratchMS), durMS(t.RestoreMS), durMS(t.VerifyMS), durMS(t.ChainMS), durMS(t.RebuildMS))
	rpo := "the backup holds no events"
	if r.RPO.NewestEventAt != nil {
		rpo = fmt.Sprintf("newest event %s old", (time.Duration(r.RPO.NewestEventAgeSeconds) * time.Second).String())
	}
	fmt.Fprintf(a.stdout, "RPO: backup %s old, %s\n", (time.Duration(r.RPO.BackupAgeSeconds) * time.Second).String(), rpo)
	if r.Scratch.Kept {
		fmt.Fprintf(a.stdout, "scratch %s kept: %s %s\n", r.Scratch.Kind, r.Scratch.URL, r.Scratch.Dir)
	}
	for _, f := range r.ReportFiles {
		fmt.Fprintf(a.stdout, "report: %s\n", f)
	}
}
