package main

import (
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/store"
)

func newMigrateCmds(a *app) []*cobra.Command {
	var noWait bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the embedded database migrations (forward only)",
		Long: `migrate applies every embedded migration the database does not have yet, in
version order, each in its own transaction, and records it in
schema_migrations. A session advisory lock keeps two dg processes from
migrating one database at once: migrate waits for it, or with --no-wait exits
with status 4. A database migrated by a newer dg is refused (exit 3): run that
dg release or a newer one.

Migrations are forward-only: there is no down migration. Restore a backup to
go back.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := a.openPool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			applied, err := store.MigrateWith(cmd.Context(), pool, store.MigrateOptions{NoWait: noWait})
			if errors.Is(err, store.ErrMigrationLocked) {
				return lockedError(err)
			}
			if err != nil {
				return err
			}
			rep, err := store.MigrationStatus(cmd.Context(), pool)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				out := struct {
					Applied []migrationRef `json:"applied"`
					Current int            `json:"current_version"`
				}{Applied: []migrationRef{}, Current: rep.Current}
				for _, m := range applied {
					out.Applied = append(out.Applied, migrationRef{m.Version, m.Name})
				}
				return writeJSON(a.stdout, out)
			}
			for _, m := range applied {
				fmt.Fprintf(a.stdout, "applied %04d_%s\n", m.Version, m.Name)
			}
			if len(applied) == 0 {
				fmt.Fprintf(a.stdout, "schema is up to date at version %04d\n", rep.Current)
			} else {
				fmt.Fprintf(a.stdout, "schema is at version %04d\n", rep.Current)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "exit with status 4 instead of waiting when another process is migrating")
	cmd.AddCommand(newMigrateStatusCmd(a))
	addDatabaseFlags(a, cmd)
	return []*cobra.Command{cmd}
}

type migrationRef struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
}

func newMigrateStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show which migrations the database has (exit 1 unless up to date)",
		Long: `status lists every embedded migration and whether the database has it, and
any migration the database has that this dg does not know. It changes
nothing. Exit status 0 when the schema is current, 1 when migrations are
pending or the database is newer than this dg.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pool, err := a.openPool(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			rep, err := store.MigrationStatus(cmd.Context(), pool)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				if err := writeJSON(a.stdout, rep); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VERSION\tNAME\tSTATE\tAPPLIED AT")
				for _, m := range rep.Migrations {
					state, at := "pending", ""
					switch {
					case m.Unknown:
						state = "unknown to this dg"
					case m.ChecksumMismatch:
						state = "applied (file changed since)"
					case m.Applied:
						state = "applied"
					}
					if m.AppliedAt != nil {
						at = m.AppliedAt.UTC().Format("2006-01-02T15:04:05Z")
					}
					fmt.Fprintf(tw, "%04d\t%s\t%s\t%s\n", m.Version, m.Name, state, at)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				switch {
				case rep.Newer:
					fmt.Fprintf(a.stdout, "the database schema (%04d) is newer than this dg (%04d): use a newer dg\n", rep.Current, rep.Latest)
				case rep.Pending > 0:
					fmt.Fprintf(a.stdout, "%d migration(s) pending: run dg migrate\n", rep.Pending)
				default:
					fmt.Fprintf(a.stdout, "up to date at version %04d\n", rep.Current)
				}
			}
			if !rep.UpToDate() {
				return checkFailed()
			}
			return nil
		},
	}
}
