package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/decisiongraph/dg/pkg/client"
)

// apiFlags locate a running dg node and the account to call it as.
type apiFlags struct {
	server, token, tenant string
}

func (f *apiFlags) add(a *app, cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.server, "server", "", "base URL of a running dg node (default $DG_SERVER, else http://127.0.0.1:4100)")
	pf.StringVar(&f.token, "token", "", "service-account bearer token (default $DG_TOKEN)")
	pf.StringVar(&f.tenant, "tenant", "", "tenant id (default $DG_TENANT, else default)")
}

func (f *apiFlags) client(a *app) (*client.Client, error) {
	pick := func(flag, env, def string) string {
		if flag != "" {
			return flag
		}
		if v, ok := a.env(env); ok && v != "" {
			return v
		}
		return def
	}
	server := pick(f.server, "DG_SERVER", "http://127.0.0.1:4100")
	token := pick(f.token, "DG_TOKEN", "")
	if token == "" {
		return nil, usageError(errors.New("a service-account token is required: pass --token or set DG_TOKEN"))
	}
	return client.New(server, token, pick(f.tenant, "DG_TENANT", "default")), nil
}

// apiExit maps an API failure to an exit code: a refused transition or a
// conflict is a failed check (1); a bad request, a missing item or an
// authentication/authorization problem is a usage or configuration error
// (2); anything else (network, 5xx) is operational (3).
func apiExit(err error) error {
	var ce *client.Error
	if errors.As(err, &ce) {
		switch {
		case ce.Status == http.StatusConflict:
			return &exitError{code: exitCheckFailed, err: err}
		case ce.Status >= 400 && ce.Status < 500:
			return usageError(err)
		}
	}
	return err
}

func newWorkflowsCmds(a *app) []*cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "workflows",
		Short: "List, show and act on review workflow items of a running node",
		Long: `workflows talks to a running dg node (dg up) over its HTTP API as one
service account: list the inbox, show an item with its history, and act on
it (approve, reject, request_change, comment, reassign, escalate, override,
claim, release). Exit 1 when the server refuses with a conflict, 2 for bad
requests, unknown items and auth errors, 3 when the node cannot be reached.`,
		Args: cobra.NoArgs,
	}
	f.add(a, cmd)
	cmd.AddCommand(newWorkflowsListCmd(a, &f), newWorkflowsShowCmd(a, &f), newWorkflowsActCmd(a, &f), newWorkflowsExportCmd(a, &f))
	return []*cobra.Command{cmd}
}

func newWorkflowsListCmd(a *app, f *apiFlags) *cobra.Command {
	var wf client.WorkflowFilter
	var all, overdue bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "The inbox: overdue first, then by priority and age (open items unless --all)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(a)
			if err != nil {
				return err
			}
			if all {
				no := false
				wf.OnlyOpen = &no
			}
			if overdue {
				wf.OnlyOverdue = &overdue
			}
			in, err := c.ListWorkflows(cmd.Context(), wf)
			if err != nil {
				return apiExit(err)
			}
			if a.jsonOutput() {
				return writeJSON(a.stdout, in)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "WORKFLOW\tSTATUS\tPRIORITY\tDUE\tOVERDUE\tASSIGNED\tTITLE")
			for _, it := range in.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\n", wfText(it["workflow_id"]), wfText(it["status"]), wfText(it["priority"]),
					wfText(it["sla_due_at"]), it["overdue"], wfAssignee(it), wfText(it["title"]))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			s := in.Summary
			fmt.Fprintf(a.stdout, "\n%s open (%s overdue, %s escalated), %s total in tenant %s\n",
				wfText(s["open_count"]), wfText(s["overdue_count"]), wfText(s["escalated_count"]), wfText(s["total_count"]), wfText(s["tenant_id"]))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&wf.Status, "status", "", "only items in this status")
	fl.StringVar(&wf.AssignedAccountID, "assigned-account", "", "only items assigned to this account")
	fl.StringVar(&wf.AssignedRole, "assigned-role", "", "only items assigned to this role")
	fl.StringVar(&wf.Priority, "priority", "", "only items of this priority (urgent, high, normal, low)")
	fl.StringVar(&wf.TraceID, "trace", "", "only items of this trace")
	fl.BoolVar(&all, "all", false, "include closed items (approved, rejected, overridden)")
	fl.BoolVar(&overdue, "overdue", false, "only overdue items")
	fl.IntVar(&wf.Limit, "limit", 0, "at most this many items (server default 12, max 50)")
	return cmd
}

func newWorkflowsShowCmd(a *app, f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show WORKFLOW_ID",
		Short: "One item with its actions and newest notifications",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(a)
			if err != nil {
				return err
			}
			d, err := c.GetWorkflow(cmd.Context(), args[0])
			if err != nil {
				return apiExit(err)
			}
			if a.jsonOutput() {
				return writeJSON(a.stdout, d)
			}
			it, _ := d["workflow"].(map[string]any)
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			for _, k := range []string{"workflow_id", "title", "workflow_kind", "status", "priority", "trace_id", "requested_at", "sla_due_at", "overdue", "current_decision", "current_reason"} {
				fmt.Fprintf(tw, "%s:\t%s\n", k, wfText(it[k]))
			}
			fmt.Fprintf(tw, "assigned:\t%s\n", wfAssignee(it))
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "\nactions:")
			for _, x := range wfList(d["actions"]) {
				actor, _ := x["actor"].(map[string]any)
				fmt.Fprintf(a.stdout, "  %s  %-26s %-18s by %s  %s\n", wfText(x["created_at"]), wfText(x["action_type"]), wfText(x["resulting_status"]), wfText(actor["actor_id"]), wfText(x["note"]))
			}
			fmt.Fprintln(a.stdout, "\nnotifications (newest first):")
			for _, x := range wfList(d["notifications"]) {
				fmt.Fprintf(a.stdout, "  %s  %-13s %s\n", wfText(x["created_at"]), wfText(x["category"]), wfText(x["message"]))
			}
			return nil
		},
	}
}

func newWorkflowsActCmd(a *app, f *apiFlags) *cobra.Command {
	var act client.WorkflowAction
	var evidence []string
	var key string
	cmd := &cobra.Command{
		Use:   "act WORKFLOW_ID ACTION",
		Short: "Approve, reject, request_change, comment, reassign, escalate, override, claim or release an item",
		Long: `act runs one action. approve, reject, request_change, escalate and override
need --reason; comment needs --note (or --reason); reassign needs
--assign-account or --assign-role; override also needs --confirm with the
phrase "OVERRIDE <WORKFLOW_ID in upper case>". --idempotency-key makes a
retried command apply the action once.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(a)
			if err != nil {
				return err
			}
			act.Action = args[1]
			for _, e := range evidence {
				act.Evidence = append(act.Evidence, e)
			}
			res, err := c.ActOnWorkflow(cmd.Context(), args[0], act, key)
			if err != nil {
				return apiExit(err)
			}
			if a.jsonOutput() {
				return writeJSON(a.stdout, res)
			}
			out, _ := res["action"].(map[string]any)
			it, _ := res["workflow"].(map[string]any)
			fmt.Fprintf(a.stdout, "%s %s: status %s", wfText(out["outcome"]), wfText(it["workflow_id"]), wfText(it["status"]))
			if id := wfText(out["appended_event_id"]); id != "" {
				fmt.Fprintf(a.stdout, ", appended event %s", id)
			}
			if to := wfText(out["escalated_to"]); to != "" {
				fmt.Fprintf(a.stdout, ", escalated to %s", to)
			}
			fmt.Fprintln(a.stdout)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&act.Reason, "reason", "", "why (required for approve, reject, request_change, escalate, override)")
	fl.StringVar(&act.Note, "note", "", "a note (comment text)")
	fl.StringArrayVar(&evidence, "evidence", nil, "an evidence locator (repeatable), e.g. crm://opportunity/42")
	fl.StringVar(&act.AssignedAccountID, "assign-account", "", "reassign: the new account")
	fl.StringVar(&act.AssignedRole, "assign-role", "", "reassign: the new role")
	fl.StringVar(&act.ConfirmText, "confirm", "", `override: the phrase "OVERRIDE <WORKFLOW_ID in upper case>"`)
	fl.StringVar(&key, "idempotency-key", "", "apply the action at most once for this key")
	return cmd
}

func newWorkflowsExportCmd(a *app, f *apiFlags) *cobra.Command {
	var page int
	cmd := &cobra.Command{
		Use:   "export WORKFLOW_ID",
		Short: "The audit export of one item: the item, every action and every notification (admin, workflow_export)",
		Long: `export prints the admin audit export of an item as JSON (always JSON:
it is meant to be archived or shared). Notifications come 500 per page;
notifications_page.next_page says whether to ask for --page N+1.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(a)
			if err != nil {
				return err
			}
			out, err := c.ExportWorkflow(cmd.Context(), args[0], page)
			if err != nil {
				return apiExit(err)
			}
			return writeJSON(a.stdout, out)
		},
	}
	cmd.Flags().IntVar(&page, "page", 1, "page of notifications (500 per page)")
	return cmd
}

// wfText renders a JSON value for a table cell ("" for null).
func wfText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return fmt.Sprint(v)
}

func wfAssignee(it map[string]any) string {
	parts := []string{}
	if s := wfText(it["assigned_account_id"]); s != "" {
		parts = append(parts, s)
	}
	if s := wfText(it["assigned_role"]); s != "" {
		parts = append(parts, "role:"+s)
	}
	return strings.Join(parts, " ")
}

func wfList(v any) []map[string]any {
	var out []map[string]any
	s, _ := v.([]any)
	for _, x := range s {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}
