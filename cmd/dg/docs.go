package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// The docs group generates the man pages and shell completion scripts that
// the release archives and packages carry (see .goreleaser.yaml and
// scripts/release-docs.sh). It is hidden: users get completions from
// `dg completion <shell>` and man pages from the packages.

// completionShells lists the shells `dg completion` supports and the file
// name each script is installed under in the release artefacts.
var completionShells = []struct {
	shell string
	file  string
	gen   func(root *cobra.Command, w io.Writer) error
}{
	{"bash", "dg.bash", func(r *cobra.Command, w io.Writer) error { return r.GenBashCompletionV2(w, true) }},
	{"zsh", "_dg", func(r *cobra.Command, w io.Writer) error { return r.GenZshCompletion(w) }},
	{"fish", "dg.fish", func(r *cobra.Command, w io.Writer) error { return r.GenFishCompletion(w, true) }},
	{"powershell", "dg.ps1", func(r *cobra.Command, w io.Writer) error { return r.GenPowerShellCompletionWithDesc(w) }},
}

func newDocsCmds(a *app) []*cobra.Command {
	docs := &cobra.Command{
		Use:    "docs",
		Short:  "Generate man pages and shell completion scripts (release tooling)",
		Hidden: true,
		Args:   cobra.NoArgs,
	}

	var manDir string
	man := &cobra.Command{
		Use:   "man",
		Short: "Write one man page per command into --dir",
		Long: `Write one section-1 man page per command into --dir (dg.1, dg-version.1, ...).

The page date comes from SOURCE_DATE_EPOCH when it is set (release builds set it
to the commit time so the pages are reproducible), else from today.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if manDir == "" {
				return usageError(fmt.Errorf("--dir is required"))
			}
			n, err := writeManPages(cmd.Root(), manDir, a.env)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "wrote %d man pages to %s\n", n, manDir)
			return nil
		},
	}
	man.Flags().StringVar(&manDir, "dir", "", "directory to write the pages to (created if missing)")

	var complDir string
	compl := &cobra.Command{
		Use:   "completions",
		Short: "Write completion scripts for bash, zsh, fish and powershell into --dir",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if complDir == "" {
				return usageError(fmt.Errorf("--dir is required"))
			}
			if err := writeCompletions(cmd.Root(), complDir); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "wrote %d completion scripts to %s\n", len(completionShells), complDir)
			return nil
		},
	}
	compl.Flags().StringVar(&complDir, "dir", "", "directory to write the scripts to (created if missing)")

	docs.AddCommand(man, compl)
	return []*cobra.Command{docs}
}

// writeManPages renders the visible command tree under root into dir and
// returns how many pages it wrote.
func writeManPages(root *cobra.Command, dir string, env func(string) (string, bool)) (int, error) {
	when := time.Now().UTC()
	if s, ok := env("SOURCE_DATE_EPOCH"); ok && s != "" {
		secs, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, usageError(fmt.Errorf("SOURCE_DATE_EPOCH must be seconds since 1970, not %q", s))
		}
		when = time.Unix(secs, 0).UTC()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("create man page directory: %w", err)
	}
	// The auto-generated footer carries today's date, which would make the
	// pages differ between two builds of the same commit.
	n := 0
	visitCommands(root, func(c *cobra.Command) {
		c.DisableAutoGenTag = true
		n++
	})
	header := &doc.GenManHeader{
		Section: "1",
		Date:    &when,
		Source:  "dg " + version,
		Manual:  "dg manual",
	}
	if err := doc.GenManTreeFromOpts(root, doc.GenManTreeOptions{Header: header, Path: dir, CommandSeparator: "-"}); err != nil {
		return 0, fmt.Errorf("write man pages: %w", err)
	}
	return n, nil
}

// visitCommands calls fn for root and every descendant that gets a man
// page: the same filter cobra's man generator applies.
func visitCommands(root *cobra.Command, fn func(*cobra.Command)) {
	fn(root)
	for _, c := range root.Commands() {
		if !c.IsAvailableCommand() || c.IsAdditionalHelpTopicCommand() {
			continue
		}
		visitCommands(c, fn)
	}
}

// writeCompletions writes one completion script per supported shell into dir.
func writeCompletions(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create completion directory: %w", err)
	}
	for _, s := range completionShells {
		var buf bytes.Buffer
		if err := s.gen(root, &buf); err != nil {
			return fmt.Errorf("generate %s completion: %w", s.shell, err)
		}
		if err := os.WriteFile(filepath.Join(dir, s.file), buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write %s completion: %w", s.shell, err)
		}
	}
	return nil
}
