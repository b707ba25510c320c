package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// Exit codes shared by every dg command. They are documented in each
// command's help (see exitCodesHelp) and in the README.
const (
	exitOK          = 0 // success
	exitCheckFailed = 1 // the command ran and a check failed
	exitUsage       = 2 // usage error or invalid configuration
	exitOperational = 3 // operational error: the command could not do its work
	exitLocked      = 4 // another run holds the lock
)

const exitCodesHelp = `
Exit codes:
  0  ok
  1  a check failed
  2  usage error or invalid configuration
  3  operational error
  4  locked by another run`

// exitError carries an exit code chosen by a command. Commands return it
// through the helpers below; run maps every other error to exitOperational.
type exitError struct {
	code int
	err  error
	// quiet means the command already printed its own report and the
	// error text must not be printed again.
	quiet bool
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// checkFailed reports that a command ran and found a problem (exit 1).
// The report has been printed already.
func checkFailed() error { return &exitError{code: exitCheckFailed, quiet: true} }

// usageError is a bad flag, argument or configuration (exit 2).
func usageError(err error) error { return &exitError{code: exitUsage, err: err} }

// lockedError means another run holds the lock (exit 4).
func lockedError(err error) error { return &exitError{code: exitLocked, err: err} }

// configInvalid means diagnostics were printed for an invalid manifest (exit 2).
func configInvalid() error { return &exitError{code: exitUsage, quiet: true} }

// globalOptions are the flags every command shares.
type globalOptions struct {
	manifestPath string
	output       string
	logLevel     string
	logFormat    string
}

// app is the state of one CLI invocation: the cobra tree is the only global
// state dg has, and it is built afresh by newRootCmd for every run (tests
// included).
type app struct {
	opts   globalOptions
	stdout io.Writer
	stderr io.Writer
	env    func(string) (string, bool)
	viper  *viper.Viper
	logger *slog.Logger
}

// jsonOutput reports whether -o json was requested.
func (a *app) jsonOutput() bool { return a.opts.output == "json" }

// noColor reports whether colour must be avoided (NO_COLOR or JSON output).
func (a *app) noColor() bool {
	if _, ok := a.env("NO_COLOR"); ok {
		return true
	}
	if a.jsonOutput() {
		return true
	}
	return !isTerminal(a.stdout)
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "dg",
		Short: "DecisionGraph: an event-sourced decision audit trail for AI agents",
		Long: `dg runs and operates a DecisionGraph node: one binary, one manifest, one PostgreSQL.

Agents append immutable decision events to an append-only log in PostgreSQL;
projections, digests and review workflows are derived from it.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			switch a.opts.output {
			case "text", "json":
			default:
				return usageError(fmt.Errorf("--output must be text or json, not %q", a.opts.output))
			}
			level, err := parseLogLevel(a.opts.logLevel)
			if err != nil {
				return usageError(err)
			}
			a.logger, err = newLogger(a.stderr, a.opts.logFormat, level)
			if err != nil {
				return usageError(err)
			}
			return nil
		},
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	pf := root.PersistentFlags()
	pf.StringVarP(&a.opts.manifestPath, "manifest", "f", "", "topology manifest (default ./dg.yaml, else manifests/local.yaml)")
	pf.StringVarP(&a.opts.output, "output", "o", "text", "output format: text or json")
	pf.StringVar(&a.opts.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	pf.StringVar(&a.opts.logFormat, "log-format", "auto", "log format: text, json, or auto (text on a terminal, JSON otherwise)")
	a.viper.SetEnvPrefix("DG")
	_ = a.viper.BindPFlag("manifest", pf.Lookup("manifest"))
	_ = a.viper.BindPFlag("log_level", pf.Lookup("log-level"))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })

	root.AddCommand(
		newVersionCmd(a),
	)
	for _, add := range commandGroups {
		root.AddCommand(add(a)...)
	}
	// Every command's help ends with the exit-code table.
	root.SetUsageTemplate(root.UsageTemplate() + exitCodesHelp + "\n")
	return root
}

// commandGroups lists the constructors of each command group (one file per
// group in cmd/dg). Keeping the list here, rather than registering from
// init functions, keeps the cobra tree the only mutable state.
// Helpers: add your group's constructor to this list (one line each).
var commandGroups = []func(*app) []*cobra.Command{
	newDocsCmds,
	newValidateCmds,
	newDBCmds,
	newDoctorCmds,
	newUpCmds,
	newProjectionsCmds,
	newAccountsCmds,
	newBackupCmds, newRestoreCmds, newDrillCmds, newStatusCmds,
	newEventsCmds, newMigrateCmds, newBenchCmds,
	newSeedCmds,
	newWorkflowsCmds,
}

// newLogger builds the structured logger on stderr. "auto" writes JSON
// lines when stderr is not a terminal (systemd, containers, log shippers)
// and text for a person at a terminal.
func newLogger(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "auto":
		if isTerminal(w) {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be auto, text or json, not %q", format)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level must be debug, info, warn or error, not %q", s)
	}
	return l, nil
}

// run executes the CLI and returns the process exit code. It never calls
// os.Exit so tests can drive it.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, stdout, stderr, os.LookupEnv)
}

func runContext(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	a := &app{stdout: stdout, stderr: stderr, env: env, viper: viper.New()}
	root := newRootCmd(a)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return exitCode(err, stderr)
}

// exitCode is the one place where errors become exit codes.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if !ee.quiet && ee.err != nil {
			fmt.Fprintf(stderr, "dg: %v\n", ee.err)
		}
		return ee.code
	}
	if isCobraUsageError(err) {
		fmt.Fprintf(stderr, "dg: %v\nRun 'dg --help' for usage.\n", err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "dg: %v\n", err)
	return exitOperational
}

// isCobraUsageError recognises the errors cobra returns for unknown commands
// and bad arguments, which it does not type.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires at least", "requires at most", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
