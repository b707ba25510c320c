package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/manifest"
	"github.com/decisiongraph/dg/pkg/ops"
)

func newDBCmds(a *app) []*cobra.Command {
	db := &cobra.Command{
		Use:   "db",
		Short: "Start, stop and inspect the managed PostgreSQL cluster",
		Long: `db controls the PostgreSQL cluster dg manages in database.managed.data_dir
(database.mode: managed). It runs the same code as dg up: initdb on first use
(UTF8, C collation, scram-sha-256 authentication, a generated superuser
password stored 0600 next to the data directory), pg_ctl start on
database.managed.port with the unix socket inside the data directory, and
pg_ctl stop -m fast. When dg runs as root the cluster runs as
database.managed.run_as (default postgres).

dg db start leaves the cluster running after dg exits; dg up stops only a
cluster it started itself.`,
		Args: cobra.NoArgs,
	}
	db.AddCommand(newDBStartCmd(a), newDBStopCmd(a), newDBStatusCmd(a))
	return []*cobra.Command{db}
}

// dbReport is the -o json shape of dg db start and dg db stop.
type dbReport struct {
	// Action is started, already_running, stopped or not_running.
	Action string            `json:"action"`
	Status ops.ClusterStatus `json:"status"`
}

func newDBStartCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "start",
		Short: "Initialise (once) and start the managed cluster; a running cluster is left as it is",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.managedCluster(cmd.Context())
			if err != nil {
				return err
			}
			already, err := c.Start(cmd.Context())
			if err != nil {
				return clusterError(err)
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			rep := dbReport{Action: "started", Status: st}
			if already {
				rep.Action = "already_running"
			}
			if a.jsonOutput() {
				return writeJSON(a.stdout, rep)
			}
			if already {
				fmt.Fprintf(a.stdout, "managed PostgreSQL is already running (pid %d, port %d, data dir %s); nothing to do\n", st.PID, st.Port, st.DataDir)
			} else {
				fmt.Fprintf(a.stdout, "managed PostgreSQL started (pid %d, port %d, data dir %s)\n", st.PID, st.Port, st.DataDir)
			}
			fmt.Fprintf(a.stdout, "connect: PGPASSWORD=$(cat %s) psql 'host=%s port=%d user=%s dbname=%s'\n", st.PasswordFile, st.SocketDir, st.Port, st.SuperUser, ops.DefaultDatabase)
			return nil
		},
	}
}

func newDBStopCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "stop",
		Short: "Stop the managed cluster (pg_ctl stop -m fast); a stopped cluster is fine",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.managedCluster(cmd.Context())
			if err != nil {
				return err
			}
			before, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if before.Running {
				if err := c.Stop(cmd.Context()); err != nil {
					return clusterError(err)
				}
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			rep := dbReport{Action: "stopped", Status: st}
			if !before.Running {
				rep.Action = "not_running"
			}
			if a.jsonOutput() {
				return writeJSON(a.stdout, rep)
			}
			if before.Running {
				fmt.Fprintf(a.stdout, "managed PostgreSQL stopped (was pid %d, data dir %s)\n", before.PID, st.DataDir)
			} else {
				fmt.Fprintf(a.stdout, "managed PostgreSQL is not running (data dir %s); nothing to do\n", st.DataDir)
			}
			return nil
		},
	}
}

func newDBStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Report whether the managed cluster runs: pid, port, version, data dir",
		Long: `status reports the managed cluster's state: running or stopped, pid, port,
socket directory, the version of the binaries and of the data directory, the
account it runs as and its log file. It exits 0 whether the cluster runs or
not; read "running" (or the first line) to tell.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.managedCluster(cmd.Context())
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return writeJSON(a.stdout, st)
			}
			state := "stopped"
			if st.Running {
				state = "running"
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "state:\t%s\n", state)
			if st.Running {
				fmt.Fprintf(tw, "pid:\t%d\n", st.PID)
			}
			fmt.Fprintf(tw, "port:\t%d\n", st.Port)
			fmt.Fprintf(tw, "data dir:\t%s\n", st.DataDir)
			if st.Initialized {
				fmt.Fprintf(tw, "data version:\t%s\n", st.DataVersion)
			} else {
				fmt.Fprintf(tw, "data version:\t(not initialised; dg db start runs initdb)\n")
			}
			fmt.Fprintf(tw, "server version:\t%s (%s)\n", st.ServerVersion, st.BinDir)
			fmt.Fprintf(tw, "socket dir:\t%s\n", st.SocketDir)
			fmt.Fprintf(tw, "runs as:\t%s\n", st.RunAs)
			fmt.Fprintf(tw, "superuser:\t%s (password in %s)\n", st.SuperUser, st.PasswordFile)
			fmt.Fprintf(tw, "log:\t%s\n", st.LogFile)
			return tw.Flush()
		},
	}
}

// managedCluster loads the manifest and builds the cluster it describes.
// External mode is a configuration error for dg db: there is nothing to
// manage.
func (a *app) managedCluster(ctx context.Context) (*ops.Cluster, error) {
	m, err := a.loadManifest()
	if err != nil {
		return nil, err
	}
	if m.Database.Mode != manifest.ModeManaged {
		return nil, usageError(fmt.Errorf("database.mode is %s: dg manages no PostgreSQL in that mode (dg db works with database.mode: managed); manage that server with its own tools", m.Database.Mode))
	}
	return ops.NewCluster(ctx, managedClusterConfig(a, m))
}

// managedClusterConfig maps the manifest onto the cluster settings; dg up
// uses the same values.
func managedClusterConfig(a *app, m *manifest.Manifest) ops.ClusterConfig {
	mg := m.Database.Managed
	return ops.ClusterConfig{
		DataDir:   mg.DataDir,
		Port:      mg.Port,
		BinDir:    mg.BinDir,
		RunAs:     mg.RunAs,
		Database:  ops.DefaultDatabase,
		LookupEnv: a.env,
		Logger:    a.logger,
	}
}

// clusterError maps a cluster failure to its exit code: another run holding
// the cluster's lock is exit 4, everything else operational (exit 3); the
// messages already say what to do.
func clusterError(err error) error {
	if errors.Is(err, ops.ErrLocked) {
		return lockedError(err)
	}
	return err
}
