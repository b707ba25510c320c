package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
)

func newEventsCmds(a *app) []*cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Append, verify and follow the event log",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newEventsAppendCmd(a), newEventsVerifyCmd(a), newEventsTailCmd(a))
	cmd.AddCommand(newEventsDigestCmd(a))
	addDatabaseFlags(a, cmd)
	return []*cobra.Command{cmd}
}

// appendOutcome is one event's result in dg events append -o json.
type appendOutcome struct {
	File     string          `json:"file"`
	Index    int             `json:"index"`
	EventID  string          `json:"event_id"`
	TraceID  string          `json:"trace_id"`
	TraceSeq int64           `json:"trace_seq"`
	LogSeq   int64           `json:"log_seq,omitempty"`
	Replayed bool            `json:"replayed,omitempty"`
	Error    *eventErrorJSON `json:"error,omitempty"`
}

// eventErrorJSON is an *event.Error as dg prints it in JSON reports.
type eventErrorJSON struct {
	Code    event.Code     `json:"code"`
	Path    string         `json:"path,omitempty"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

type appendReport struct {
	Tenant   string          `json:"tenant"`
	Appended int             `json:"appended"`
	Replayed int             `json:"replayed"`
	Failed   int             `json:"failed"`
	Events   []appendOutcome `json:"events"`
}

func newEventsAppendCmd(a *app) *cobra.Command {
	var tenant string
	var strict bool
	cmd := &cobra.Command{
		Use:   "append --tenant T FILE...",
		Short: "Append the events of files to the log through the full append path",
		Long: `append reads event files (the golden fixture format: an object with an
"events" array, or a bare array of envelopes) and appends every envelope, in
file order, through the same validation, idempotency, finished-trace and
sequencing rules as the API. It prints one line per event: its log_seq, or
"replayed" for an idempotent retry, or the exact error code and message.

Exit status: 0 all events appended or replayed, 1 some events were refused
(each is reported and the others are still appended), 2 a file cannot be
decoded, 3 the database could not be used.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			type fileEvents struct {
				name string
				envs []event.Envelope
			}
			var files []fileEvents
			for _, path := range args {
				data, err := os.ReadFile(path)
				if err != nil {
					return usageError(fmt.Errorf("read event file: %w", err))
				}
				envs, err := event.DecodeEvents(data)
				if err != nil {
					return usageError(fmt.Errorf("%s: %w", path, err))
				}
				files = append(files, fileEvents{path, envs})
			}
			s, err := a.openStoreWith(cmd.Context(), store.Options{Strict: strict})
			if err != nil {
				return err
			}
			defer s.Close()
			rep := appendReport{Tenant: tenant, Events: []appendOutcome{}}
			for _, f := range files {
				// One AppendMany per file: every event is still ruled on by
				// itself, in file order, but they share group commits.
				envs := make([]*event.Envelope, len(f.envs))
				for i := range f.envs {
					envs[i] = &f.envs[i]
				}
				results, errs := s.AppendMany(cmd.Context(), tenant, envs)
				var dbErr error
				for i, e := range envs {
					out := appendOutcome{File: f.name, Index: i, EventID: e.EventID, TraceID: e.TraceID, TraceSeq: e.TraceSeq}
					res, err := results[i], errs[i]
					var ee *event.Error
					switch {
					case err == nil:
						out.LogSeq, out.Replayed = res.Event.LogSeq, res.Replayed
						if res.Replayed {
							rep.Replayed++
						} else {
							rep.Appended++
						}
					case errors.As(err, &ee) && ee.Code != event.CodeStorage:
						out.Error = &eventErrorJSON{Code: ee.Code, Path: ee.Path, Message: ee.Message, Details: ee.Details}
						rep.Failed++
					default:
						// The database failed this event; the file's other
						// events were still tried and are reported.
						if dbErr == nil {
							dbErr = fmt.Errorf("%s event %d (%s): %w", f.name, i, e.EventID, err)
						}
						out.Error = &eventErrorJSON{Code: event.CodeStorage, Message: err.Error()}
					}
					rep.Events = append(rep.Events, out)
					if !a.jsonOutput() {
						printAppendOutcome(a, out)
					}
				}
				if dbErr != nil {
					return dbErr
				}
			}
			if a.jsonOutput() {
				if err := writeJSON(a.stdout, rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(a.stdout, "%d appended, %d replayed, %d refused\n", rep.Appended, rep.Replayed, rep.Failed)
			}
			if rep.Failed > 0 {
				return checkFailed()
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant the events belong to (required)")
	cmd.Flags().BoolVar(&strict, "strict", false, "reject enum-like payload values outside their documented domains")
	_ = cmd.MarkFlagRequired("tenant")
	return cmd
}

func printAppendOutcome(a *app, o appendOutcome) {
	where := fmt.Sprintf("%s[%d] %s %s:%d", o.File, o.Index, o.EventID, o.TraceID, o.TraceSeq)
	switch {
	case o.Error != nil:
		e := event.Error{Code: o.Error.Code, Path: o.Error.Path, Message: o.Error.Message}
		fmt.Fprintf(a.stdout, "%s  refused  %s\n", where, e.Error())
	case o.Replayed:
		fmt.Fprintf(a.stdout, "%s  replayed  log_seq %d\n", where, o.LogSeq)
	default:
		fmt.Fprintf(a.stdout, "%s  appended  log_seq %d\n", where, o.LogSeq)
	}
}

func newEventsVerifyCmd(a *app) *cobra.Command {
	var tenant string
	cmd := &cobra.Command{
		Use:   "verify [--tenant T]",
		Short: "Recompute hashes and the hash chain and check log_seq and trace_seq",
		Long: `verify reads the whole log in log_seq order inside one snapshot and
recomputes every payload hash, event hash and per-tenant chain hash, checks
that log_seq has no gaps (globally: log_seq is one sequence for all tenants),
that every trace's trace_seq runs 0, 1, 2, ... with nothing after its
TraceFinished, and that the stored chain heads match. It reports the first bad
log_seq exactly. It never changes the log.

Exit status: 0 the log is intact, 1 a problem was found, 3 the database could
not be read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			rep, err := s.Verify(cmd.Context(), store.VerifyOptions{Tenant: tenant})
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				if err := writeJSON(a.stdout, rep); err != nil {
					return err
				}
			} else {
				printVerifyReport(a, rep)
			}
			if !rep.OK {
				return checkFailed()
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "check only this tenant's chain and traces (log_seq gaps are always checked globally)")
	return cmd
}

func printVerifyReport(a *app, rep *store.VerifyReport) {
	scope := "all tenants"
	if rep.Tenant != "" {
		scope = "tenant " + rep.Tenant
	}
	for _, t := range rep.Tenants {
		head := "head matches"
		if !t.HeadMatches {
			head = "HEAD DIFFERS"
		}
		fmt.Fprintf(a.stdout, "tenant %s: %d events, last log_seq %d, chain %s (%s)\n", t.TenantID, t.Events, t.LastLogSeq, t.ChainHash, head)
	}
	if rep.OK {
		fmt.Fprintf(a.stdout, "ok: %d events in %d traces (%s) verified; head log_seq %d, no gaps\n", rep.Events, rep.Traces, scope, rep.HeadLogSeq)
		return
	}
	fmt.Fprintf(a.stdout, "FAILED: first bad log_seq %d (%s): %s\n", rep.FirstBad.LogSeq, rep.FirstBad.Kind, rep.FirstBad.Message)
	for _, p := range rep.Problems {
		fmt.Fprintf(a.stdout, "  log_seq %d  %s  %s\n", p.LogSeq, p.Kind, p.Message)
	}
	if rep.Truncated {
		fmt.Fprintln(a.stdout, "  (more problems not listed)")
	}
}

func newEventsTailCmd(a *app) *cobra.Command {
	var (
		tenant string
		follow bool
		lines  int
		since  int64
	)
	cmd := &cobra.Command{
		Use:   "tail [--tenant T] [--follow]",
		Short: "Print the last events of the log, and with --follow new ones as they commit",
		Long: `tail prints the last -n events (of one tenant, or of all), oldest first, one
per line: log_seq, tenant, trace_id:trace_seq, event_type, event_id. With
--since it prints the events after that log_seq instead. With --follow it
keeps printing events as they are committed (woken by PostgreSQL NOTIFY)
until interrupted. With -o json each event is one JSON object per line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if lines <= 0 || lines > store.MaxQueryLimit {
				return usageError(fmt.Errorf("-n must be between 1 and %d", store.MaxQueryLimit))
			}
			ctx := cmd.Context()
			s, err := a.openStore(ctx)
			if err != nil {
				return err
			}
			defer s.Close()
			print := func(ev *event.StoredEvent) error { return printTailEvent(a, ev) }
			after := since
			if !cmd.Flags().Changed("since") {
				evs, err := s.LastEvents(ctx, tenant, lines)
				if err != nil {
					return err
				}
				for _, ev := range evs {
					if err := print(ev); err != nil {
						return err
					}
				}
				if len(evs) > 0 {
					after = evs[len(evs)-1].LogSeq
				} else if after, err = s.Head(ctx); err != nil {
					return err
				}
				if !follow {
					return nil
				}
			}
			if !follow {
				_, err := s.Stream(ctx, tenant, after, 1000, func(evs []*event.StoredEvent) error {
					for _, ev := range evs {
						if err := print(ev); err != nil {
							return err
						}
					}
					return nil
				})
				return err
			}
			return s.Follow(ctx, tenant, after, time.Second, print)
		},
	}
	f := cmd.Flags()
	f.StringVar(&tenant, "tenant", "", "only this tenant's events (default all tenants)")
	f.BoolVarP(&follow, "follow", "F", false, "keep printing new events until interrupted")
	f.IntVarP(&lines, "lines", "n", 10, "how many of the last events to print first")
	f.Int64Var(&since, "since", 0, "print the events after this log_seq instead of the last -n")
	return cmd
}

func printTailEvent(a *app, ev *event.StoredEvent) error {
	if a.jsonOutput() {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.stdout, "%s\n", b)
		return err
	}
	tags := ""
	if len(ev.Tags) > 0 {
		tags = "  [" + strings.Join(ev.Tags, ",") + "]"
	}
	_, err := fmt.Fprintf(a.stdout, "%d  %s  %s:%d  %s  %s  %s%s\n", ev.LogSeq, ev.TenantID, ev.TraceID, ev.TraceSeq,
		ev.EventType, ev.EventID, ev.RecordedAt.UTC().Format("2006-01-02T15:04:05.000000Z"), tags)
	return err
}
