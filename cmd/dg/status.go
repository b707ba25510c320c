package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/ops"
)

func newStatusCmds(a *app) []*cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Is there a recent backup and a recently passed restore drill? (exit 1 when not)",
		Long: `status checks the evidence that this node can be recovered: the newest backup
in backup.dir must be younger than backup.max_age, and a restore drill
(dg drill restore) must have passed within drill.max_age. Each failing check
says what to do. Exit 1 when a check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := a.loadManifest()
			if err != nil {
				return err
			}
			rep, err := ops.Status(ops.StatusConfig{BackupDir: m.Backup.Dir, BackupMaxAge: m.Backup.MaxAge, DrillMaxAge: m.Drill.MaxAge, Now: time.Now()})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				if err := writeJSON(a.stdout, rep); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
				for _, c := range rep.Checks {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", c.Status, c.ID, c.Message)
					if c.Fix != "" {
						fmt.Fprintf(tw, "\t\tfix: %s\n", c.Fix)
					}
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if !rep.OK {
				return checkFailed()
			}
			return nil
		},
	}
	return []*cobra.Command{cmd}
}

func durMS(v int64) string { return (time.Duration(v) * time.Millisecond).String() }
