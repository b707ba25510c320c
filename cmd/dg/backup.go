package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/manifest"
	"github.com/decisiongraph/dg/pkg/ops"
)

func newBackupCmds(a *app) []*cobra.Command {
	var label string
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Dump the node's database (pg_dump -Fc) with a manifest of what it holds",
		Long: `backup dumps the node's database with pg_dump --format=custom into backup.dir
and writes a manifest next to it (<id>.json): dg, pg_dump and server versions,
schema migration, times, size and SHA-256 of the dump, and, read from the very
snapshot the dump was taken from, per-tenant event counts, head log_seq and
chain heads, projection checkpoints and digests, workflow counts and the row
count of every table. A drill (dg drill restore) later proves the dump
restores to exactly that.

The node's database is the running managed cluster (database.mode: managed;
start it with dg db start or dg up) or database.url (external mode, also
set by DATABASE_URL). pg_dump must not be older than the server: the
one of the server's major version is preferred (database.managed.bin_dir,
PATH, /usr/lib/postgresql/<major>/bin).

Only one backup or prune runs per backup directory at a time: the second
exits 4 (flock on backup.dir/.dg-backup.lock). Progress goes to stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := ops.ValidLabel(label); err != nil {
				return usageError(err)
			}
			m, err := a.loadManifest()
			if err != nil {
				return err
			}
			db, err := a.nodeDatabase(cmd.Context(), m)
			if err != nil {
				return err
			}
			bm, err := ops.Backup(cmd.Context(), ops.BackupConfig{
				DatabaseURL: db.url, Dir: m.Backup.Dir, Label: label, Tools: db.tools,
				DGVersion: currentVersion().Version, Progress: a.stderr,
			})
			if err != nil {
				return backupError(err)
			}
			if a.jsonOutput() {
				return writeJSON(a.stdout, bm)
			}
			fmt.Fprintf(a.stdout, "backup %s: %s in %s (%s, sha256 %s)\n", bm.ID, bm.DumpFile, m.Backup.Dir, humanSize(bm.SizeBytes), bm.SHA256)
			fmt.Fprintf(a.stdout, "  %d events in %d tenants, head log_seq %d, schema migration %04d, took %s\n",
				bm.State.Events, len(bm.State.Tenants), bm.State.HeadLogSeq, bm.State.SchemaVersion, time.Duration(bm.DurationMS)*time.Millisecond)
			fmt.Fprintf(a.stdout, "  prove it restores: dg drill restore --backup %s\n", bm.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&label, "label", "", "tag added to the backup id, e.g. pre-upgrade")
	cmd.AddCommand(newBackupListCmd(a), newBackupVerifyCmd(a), newBackupPruneCmd(a))
	return []*cobra.Command{cmd}
}

func newBackupListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the backups in backup.dir, newest first, with their verify and drill results",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := a.loadManifest()
			if err != nil {
				return err
			}
			list, err := ops.ListBackups(m.Backup.Dir)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return writeJSON(a.stdout, list)
			}
			if len(list) == 0 {
				fmt.Fprintf(a.stdout, "no backups in %s; take one with dg backup\n", m.Backup.Dir)
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tFINISHED\tSIZE\tEVENTS\tTENANTS\tVERIFIED\tLAST DRILL")
			for _, e := range list {
				bm := e.Manifest
				verified := "-"
				if v := e.LastVerify; v != nil {
					verified = "ok " + v.At.Format("2006-01-02")
					if !v.OK {
						verified = "FAILED " + v.At.Format("2006-01-02")
					}
				}
				if !e.DumpExists {
					verified = "DUMP MISSING"
				}
				drill := "-"
				if d := e.LastDrill; d != nil {
					drill = "PASS " + d.At.Format("2006-01-02 15:04")
					if !d.Passed {
						drill = "FAIL " + d.At.Format("2006-01-02 15:04") + " (" + strings.Join(d.Failed, ",") + ")"
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", bm.ID, bm.FinishedAt.Format("2006-01-02 15:04:05"), humanSize(bm.SizeBytes),
					bm.State.Events, len(bm.State.Tenants), verified, drill)
			}
			return tw.Flush()
		},
	}
}

func newBackupVerifyCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "verify [ID]",
		Short: "Check a backup's SHA-256 and read its table of contents (pg_restore --list); default: the latest",
		Long: `verify recomputes the dump's SHA-256 and size and compares them with its
manifest, then lists the archive's table of contents with pg_restore --list
and checks it holds the event log's data. The result is recorded next to the
backup (dg backup list shows it). Exit 1 when the backup is damaged. It does
not restore anything: dg drill restore does.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.loadManifest()
			if err != nil {
				return err
			}
			id := "latest"
			if len(args) == 1 {
				id = args[0]
			}
			res, err := ops.VerifyBackup(cmd.Context(), m.Backup.Dir, id, a.toolSearch(m, nil), time.Now())
			if err != nil {
				return backupError(err)
			}
			if a.jsonOutput() {
				if err := writeJSON(a.stdout, res); err != nil {
					return err
				}
			} else if res.OK {
				fmt.Fprintf(a.stdout, "backup %s is intact: %s matches its manifest; %d table-of-contents entries, data for %d tables\n",
					res.ID, res.Checksum, res.TOC.Entries, len(res.TOC.Tables))
			} else {
				fmt.Fprintf(a.stdout, "backup %s is DAMAGED: %s\n", res.ID, res.Problem)
			}
			if !res.OK {
				return checkFailed()
			}
			return nil
		},
	}
}

func newBackupPruneCmd(a *app) *cobra.Command {
	var confirm bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete backups backup.retention does not keep (dry run unless --confirm)",
		Long: `prune applies backup.retention: keep_last newest backups, and the newest
backup of each of the last keep_daily days, keep_weekly ISO weeks and
keep_monthly months (UTC). A backup kept by any rule is kept; the newest
backup, and the newest one whose last drill passed, are always kept. Without
--confirm it only prints the plan and deletes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := a.loadManifest()
			if err != nil {
				return err
			}
			r := m.Backup.Retention
			rep, err := ops.Prune(m.Backup.Dir, ops.Retention{KeepLast: r.KeepLast, KeepDaily: r.KeepDaily, KeepWeekly: r.KeepWeekly, KeepMonthly: r.KeepMonthly}, confirm)
			if err != nil {
				return backupError(err)
			}
			if a.jsonOutput() {
				return writeJSON(a.stdout, rep)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSIZE\tACTION\tWHY")
			drop, dropBytes := 0, int64(0)
			for _, d := range rep.Decisions {
				action, why := "keep", strings.Join(d.Reasons, ", ")
				if !d.Keep {
					action, why = "delete", "no rule keeps it"
					if rep.DryRun {
						action = "would delete"
					}
					drop++
					dropBytes += d.SizeBytes
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.ID, humanSize(d.SizeBytes), action, why)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if rep.DryRun {
				fmt.Fprintf(a.stdout, "dry run: %d backup(s), %s, would be deleted; nothing was. Run dg backup prune --confirm to delete them.\n", drop, humanSize(dropBytes))
			} else {
				fmt.Fprintf(a.stdout, "deleted %d file(s), %s freed\n", len(rep.Deleted), humanSize(rep.FreedBytes))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&confirm, "confirm", false, "really delete (default: dry run)")
	return cmd
}

// nodeDB is the node's database as backups and drills see it.
type nodeDB struct {
	url   string
	tools ops.ToolSearch
}

// nodeDatabase is the one place that says where the node's database is
// for backups and drills: in managed mode the running managed cluster
// (over its unix socket, with the cluster's own pg_dump/pg_restore
// preferred); in external mode database.url.
func (a *app) nodeDatabase(ctx context.Context, m *manifest.Manifest) (*nodeDB, error) {
	if m.Database.Mode == manifest.ModeExternal {
		if m.Database.URL == "" {
			return nil, usageError(errors.New("database.mode is external but database.url is empty: set it (or DATABASE_URL)"))
		}
		return &nodeDB{url: m.Database.URL, tools: a.toolSearch(m, nil)}, nil
	}
	c, err := ops.NewCluster(ctx, managedClusterConfig(a, m))
	if err != nil {
		return nil, clusterError(err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	if !st.Running {
		return nil, fmt.Errorf("the managed PostgreSQL in %s is not running: start it with dg db start (or dg up), then run this again", st.DataDir)
	}
	return &nodeDB{url: c.URL(), tools: a.toolSearch(m, c.Binaries())}, nil
}

// toolSearch says where pg_dump and pg_restore come from.
func (a *app) toolSearch(m *manifest.Manifest, bin *ops.Binaries) ops.ToolSearch {
	return ops.ToolSearch{BinDir: m.Database.Managed.BinDir, Binaries: bin, LookupEnv: a.env}
}

// backupError maps backup, restore and drill failures to exit codes: a
// held lock is 4, a bad label or unknown backup 2, the rest 3.
func backupError(err error) error {
	switch {
	case errors.Is(err, ops.ErrBackupLocked), errors.Is(err, ops.ErrLocked):
		return lockedError(err)
	case errors.Is(err, ops.ErrBackupNotFound):
		return usageError(err)
	}
	return err
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
