package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/decisiongraph/dg/pkg/manifest"
	"github.com/spf13/cobra"
)

func newValidateCmds(a *app) []*cobra.Command {
	return []*cobra.Command{newValidateCmd(a), newSchemaCmd(a), newConfigCmd(a)}
}

func newValidateCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "validate [manifest]",
		Short: "Check a topology manifest and report every problem in it",
		Long: `validate loads a topology manifest the way every dg command does (defaults,
${VAR} interpolation, environment overrides) and reports every problem at once,
one per line as file:line:col: field.path: message, each with a hint.

The manifest is the argument, else -f, else DG_MANIFEST, else ./dg.yaml, else
manifests/local.yaml, else the built-in default.

Exit status: 0 when the manifest is valid (warnings allowed), 1 when it has
errors, 2 when validate cannot run (missing file, bad flags).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := a.manifestLocation()
			if len(args) == 1 {
				path = args[0]
			}
			_, diags, name, err := a.readManifest(path)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				if err := manifest.NewReport(name, diags).WriteJSON(a.stdout); err != nil {
					return err
				}
			} else {
				if err := diags.WriteText(a.stdout); err != nil {
					return err
				}
				verdict := "valid"
				if diags.HasErrors() {
					verdict = "invalid"
				}
				fmt.Fprintf(a.stdout, "%s: %s (%s)\n", name, verdict, diags.Summary())
			}
			if diags.HasErrors() {
				return checkFailed()
			}
			return nil
		},
	}
}

func newSchemaCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the topology manifest's JSON Schema",
		Long: `schema prints the JSON Schema (draft 2020-12) of the topology manifest, generated
from dg's own types, so editors can validate and complete manifests. For
example, with the YAML language server put this first line in the manifest:

  # yaml-language-server: $schema=./dg-manifest.schema.json

after running: dg schema > dg-manifest.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := manifest.Schema()
			if err != nil {
				return fmt.Errorf("generate the manifest schema: %w", err)
			}
			_, err = fmt.Fprintf(a.stdout, "%s\n", b)
			return err
		},
	}
}

func newConfigCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "config",
		Short: "Inspect dg's effective configuration",
		Args:  cobra.NoArgs,
	}
	c.AddCommand(&cobra.Command{
		Use:   "explain",
		Short: "Print every effective setting and where it came from (default, file, env)",
		Long: `explain prints each setting of the effective configuration (the manifest after
defaults, ${VAR} interpolation and environment overrides) with its source:
default, file (with file:line:col) or env (with the variable's name). Secrets
are masked: server.secret_key_base, the password in database.url and webhook
secrets.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := a.loadManifest()
			if err != nil {
				return err
			}
			name := m.Path
			if name == "" {
				name = manifest.BuiltinName
			}
			settings := m.Explain()
			if a.jsonOutput() {
				enc := json.NewEncoder(a.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					Manifest string             `json:"manifest"`
					Settings []manifest.Setting `json:"settings"`
				}{name, settings})
			}
			fmt.Fprintf(a.stdout, "manifest: %s\n\n", name)
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "PATH\tVALUE\tSOURCE\tORIGIN")
			for _, s := range settings {
				origin := s.Origin
				if len(s.Vars) > 0 {
					origin += " via ${" + strings.Join(s.Vars, "}, ${") + "}"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Path, s.Value, s.Source, origin)
			}
			return tw.Flush()
		},
	})
	return c
}
