package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/ops"
)

func newRestoreCmds(a *app) []*cobra.Command {
	var (
		backup, target string
		force          bool
		jobs           int
	)
	cmd := &cobra.Command{
		Use:   "restore --backup ID|latest --target-url URL [--force]",
		Short: "Restore a backup into a database, then check its schema and verify its event log",
		Long: `restore checks the backup's SHA-256 first, then restores it with pg_restore
(--no-owner --no-privileges) into the database at --target-url, and runs the
migration check and the event-log verifier (hashes, chains, sequences) on the
result.

The target must be empty (no tables, views or sequences): otherwise restore
refuses and changes nothing (exit 1), unless --force, which drops and
recreates the objects the backup contains (pg_restore --clean --if-exists).
Without --jobs the restore is one transaction, so a failed restore leaves the
target as it was. Nothing but the target is touched: the node's own database
only when it is explicitly the --target-url.

Stop the node (or block writes) before restoring over its database, and
start it again afterwards: dg up runs any migrations the restored schema
lacks. Exit 1 when the target is not empty or the restored data fails a check.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if target == "" {
				return usageError(errors.New("--target-url is required: the database to restore into (create an empty one with createdb)"))
			}
			m, err := a.loadManifest()
			if err != nil {
				return err
			}
			rep, err := ops.Restore(cmd.Context(), ops.RestoreConfig{Dir: m.Backup.Dir, Backup: backup, TargetURL: target, Force: force,
				Jobs: jobs, Tools: a.toolSearch(m, nil), Progress: a.stderr})
			if errors.Is(err, ops.ErrTargetNotEmpty) {
				fmt.Fprintf(a.stderr, "dg: %v\n", err)
				return checkFailed()
			}
			if err != nil {
				return backupError(err)
			}
			if a.jsonOutput() {
				if err := writeJSON(a.stdout, rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.stdout, "restored backup %s into %s in %s (schema migration %04d, %d pending)\n", rep.BackupID, rep.Target, durMS(rep.RestoreMS), rep.SchemaVersion, rep.Pending)
				if rep.Verify != nil {
					fmt.Fprintf(a.stdout, "event log: %d events in %d tenants verified in %s\n", rep.Verify.Events, len(rep.Verify.Tenants), durMS(rep.VerifyMS))
				}
				for _, n := range rep.Notes {
					fmt.Fprintf(a.stdout, "note: %s\n", n)
				}
				for _, p := range rep.Problems {
					fmt.Fprintf(a.stdout, "PROBLEM: %s\n", p)
				}
				if rep.OK {
					fmt.Fprintln(a.stdout, "restore OK; start the node on it (dg up) and run the smoke tests")
				}
			}
			if !rep.OK {
				return checkFailed()
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&backup, "backup", "latest", "backup id (dg backup list), or latest")
	f.StringVar(&target, "target-url", "", "postgres:// URL of the database to restore into (required)")
	f.BoolVar(&force, "force", false, "restore into a database that is not empty, replacing the backup's objects")
	f.IntVar(&jobs, "jobs", 0, "parallel pg_restore jobs (default: one transaction)")
	return []*cobra.Command{cmd}
}
