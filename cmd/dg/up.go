package main

import (
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/manifest"
	"github.com/decisiongraph/dg/pkg/seed"
	"github.com/decisiongraph/dg/pkg/server"
)

func newUpCmds(a *app) []*cobra.Command {
	var seedFlag []string
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the dg server: PostgreSQL (managed or external), migrations, HTTP API",
		Long: `Run a dg node as the manifest describes.

In managed mode (the default) dg initialises and starts its own PostgreSQL
cluster in database.managed.data_dir and stops it again on exit; in external
mode it connects to database.url (DATABASE_URL). Migrations run on start.
The API listens on server.listen (default 127.0.0.1:4100); GET /api/healthz
answers while the process serves and GET /api/readyz once it is ready.
SIGINT or SIGTERM drains requests and shuts down cleanly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, ds := range seedFlag {
				if !slices.Contains(seed.Datasets(), ds) {
					return usageError(fmt.Errorf("--seed: unknown dataset %q (known: %v)", ds, seed.Datasets()))
				}
			}
			m, err := a.loadManifest()
			if err != nil {
				return err
			}
			opts := server.NodeOptions{Logger: a.logger, LookupEnv: a.env, Seed: seedFlag}
			if m.Database.Mode == manifest.ModeManaged {
				opts.Cluster = managedClusterConfig(a, m)
			}
			return accountsConfigError(clusterError(server.RunNode(cmd.Context(), m, opts)))
		},
	}
	cmd.Flags().StringSliceVar(&seedFlag, "seed", nil, "seed these datasets (release-demo) on start into their tenant when it is empty, besides the manifest's seed list")
	return []*cobra.Command{cmd}
}
