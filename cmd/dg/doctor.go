package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/manifest"
	"github.com/decisiongraph/dg/pkg/ops"
)

type doctorOptions struct {
	diskWarnMiB uint64
	diskFailMiB uint64
}

func newDoctorCmds(a *app) []*cobra.Command {
	var opts doctorOptions
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check that this host can run the manifest's dg node",
		Long: `doctor checks the host against the manifest and prints one line per check,
PASS, WARN or FAIL, each problem with a fix:

  postgres.binaries     server binaries found (PATH, /usr/lib/postgresql/<ver>/bin
                        or database.managed.bin_dir) and version >= 14   [managed]
  postgres.pg_dump,     client tools present and not older than the server
  postgres.pg_restore
  postgres.reachable    the server at database.url answers              [external]
  user                  who runs dg; as root the cluster runs as run_as (postgres)
  data_dir              owner, mode and major version of the data directory [managed]
  port.postgres         the managed port is free (or held by this cluster)  [managed]
  postgres.managed      when the cluster runs: dg can log in with the stored
                        superuser password                                [managed]
  port.server           server.listen is free
  disk.data_dir,        free space where the data and backups live
  disk.backup_dir
  accounts.file         the token file is not readable by group or others

doctor changes nothing. It exits 1 when any check FAILs (warnings alone exit 0).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := a.loadManifest()
			if err != nil {
				return err
			}
			if opts.diskFailMiB > opts.diskWarnMiB {
				return usageError(fmt.Errorf("--disk-fail-mib (%d) must not exceed --disk-warn-mib (%d)", opts.diskFailMiB, opts.diskWarnMiB))
			}
			rep := ops.Doctor(cmd.Context(), doctorConfig(a, m, opts))
			if a.jsonOutput() {
				if err := writeJSON(a.stdout, rep); err != nil {
					return err
				}
			} else if err := writeDoctorText(a, rep); err != nil {
				return err
			}
			if !rep.OK {
				return checkFailed()
			}
			return nil
		},
	}
	cmd.Flags().Uint64Var(&opts.diskWarnMiB, "disk-warn-mib", ops.DefaultDiskWarn>>20, "warn when a data or backup file system has less free space than this (MiB)")
	cmd.Flags().Uint64Var(&opts.diskFailMiB, "disk-fail-mib", ops.DefaultDiskFail>>20, "fail when a data or backup file system has less free space than this (MiB)")
	return []*cobra.Command{cmd}
}

// doctorConfig maps the manifest onto the checks.
func doctorConfig(a *app, m *manifest.Manifest, opts doctorOptions) ops.DoctorConfig {
	cfg := ops.DoctorConfig{
		External:     m.Database.Mode == manifest.ModeExternal,
		ExternalURL:  m.Database.URL,
		ServerListen: m.Server.Listen,
		BackupDir:    m.Backup.Dir,
		AccountsFile: m.Accounts.File,
		DiskWarn:     opts.diskWarnMiB << 20,
		DiskFail:     opts.diskFailMiB << 20,
	}
	cfg.Cluster = managedClusterConfig(a, m)
	if cfg.DiskFail == 0 {
		// 0 would mean "default" to ops; the operator asked for no floor.
		cfg.DiskFail = 1
	}
	if cfg.DiskWarn == 0 {
		cfg.DiskWarn = 1
	}
	return cfg
}

func writeDoctorText(a *app, rep ops.DoctorReport) error {
	color := !a.noColor()
	paint := func(s ops.CheckStatus) string {
		if !color {
			return string(s)
		}
		code := map[ops.CheckStatus]string{ops.Pass: "32", ops.Warn: "33", ops.Fail: "31"}[s]
		return "\x1b[" + code + "m" + string(s) + "\x1b[0m"
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	for _, c := range rep.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", paint(c.Status), c.ID, c.Message)
		if c.Fix != "" && c.Status != ops.Pass {
			fmt.Fprintf(tw, "\t\tfix: %s\n", c.Fix)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "this host can run dg"
	if !rep.OK {
		verdict = "fix the FAIL lines above, then run dg doctor again"
	}
	_, err := fmt.Fprintf(a.stdout, "doctor (%s mode): %d PASS, %d WARN, %d FAIL: %s\n", rep.Mode, rep.Summary.Pass, rep.Summary.Warn, rep.Summary.Fail, verdict)
	return err
}
