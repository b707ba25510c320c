package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/spf13/cobra"
)

type eventsDigestOptions struct {
	tenant string
	strict bool
	db     bool
}

func newEventsDigestCmd(a *app) *cobra.Command {
	var o eventsDigestOptions
	cmd := &cobra.Command{
		Use:   "digest FILE...",
		Short: "Print the four projection digests of event files, without a database",
		Long: `digest appends the envelopes of one or more event files (the golden fixture
format: {"events": [...]} or a bare array), in order, to one fresh log,
projects it and prints the four digests exactly as expected_digest.txt does:
one key:sha256:... line per digest, keys sorted.

By default the log is held in memory and no database or manifest is needed;
the same validation and append rules as the Postgres store apply (idempotent
retries are not appended twice). With --db the same is done through a
throwaway database created on the PostgreSQL server named by --database-url
(else DG_TEST_DATABASE_URL, else DATABASE_URL; the user needs CREATEDB) and
dropped afterwards; both paths must print the same digests.

Exit status: 0 digests printed, 2 bad flags or an input file whose events
cannot be decoded or are refused by the append rules, 3 a file or the
database could not be used.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files := make([]projection.EventData, 0, len(args))
			for _, path := range args {
				data, err := os.ReadFile(path)
				if err != nil {
					return fmt.Errorf("read event file: %w", err)
				}
				files = append(files, projection.EventData{Name: path, Data: data})
			}
			opts := event.Options{Strict: o.strict}
			var res *projection.OfflineResult
			var err error
			if o.db {
				url := a.viper.GetString(databaseURLKey)
				for _, k := range []string{"DG_TEST_DATABASE_URL", "DATABASE_URL"} {
					if v, ok := a.env(k); ok && url == "" {
						url = v
					}
				}
				if url == "" {
					return usageError(errors.New("--db needs a PostgreSQL server: pass --database-url or set DG_TEST_DATABASE_URL or DATABASE_URL"))
				}
				var decoded []projection.EventFile
				for _, f := range files {
					envs, derr := event.DecodeEvents(f.Data)
					if derr != nil {
						return usageError(fmt.Errorf("%s: %w", f.Name, derr))
					}
					decoded = append(decoded, projection.EventFile{Name: f.Name, Events: envs})
				}
				res, err = projection.DigestThroughPostgres(cmd.Context(), url, o.tenant, decoded, opts)
			} else {
				res, err = projection.DigestOfflineData(o.tenant, files, opts)
			}
			var ie *projection.InputError
			var de *projection.DecodeError
			if errors.As(err, &ie) || errors.As(err, &de) {
				return usageError(err)
			}
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			_, err = fmt.Fprint(a.stdout, res.Digests.Lines())
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.tenant, "tenant", "default", "tenant the events are appended to")
	f.BoolVar(&o.strict, "strict", false, "reject enum-like payload values outside their documented domains")
	f.BoolVar(&o.db, "db", false, "go through a throwaway PostgreSQL database instead of memory")
	return cmd
}
