// Package seed loads demonstration datasets into a tenant through the
// normal append path: `dg seed release-demo` and `dg up --seed`.
//
// Seeding appends the dataset's events with store.Append (validation,
// idempotency, hash chain), rebuilds the tenant's projections, runs the
// workflow refresh (import and SLA sweep) and reports what the tenant
// holds. It is idempotent: a tenant that already has the dataset keeps it
// untouched (the seeding time is read back from the stored events, so the
// re-appended envelopes are byte-identical retries). Reset removes only
// the tenant's rows (see Reset) before seeding again.
package seed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
	"github.com/decisiongraph/dg/pkg/workflow"
)

// Options configure one seeding.
type Options struct {
	// Dataset is the dataset name (default release-demo).
	Dataset string
	// Tenant receives the events (default release-demo).
	Tenant string
	// At is the seeding time the dataset's times are placed around
	// (zero: now). The same At gives the same events and, on an empty
	// database, the same digests.
	At time.Time
	// Reset removes the tenant's rows first; ResetConfirmed must be set too
	// (the CLI sets it for --yes or a dev manifest).
	Reset          bool
	ResetConfirmed bool
	// Workflow configures the workflow refresh (its Now is replaced by a
	// clock starting at At when At is set).
	Workflow workflow.Config
	Logger   *slog.Logger
}

// ErrResetNotConfirmed is returned for Reset without ResetConfirmed.
var ErrResetNotConfirmed = errors.New("reset deletes every row of the tenant, events included; confirm it (dg seed --reset --yes, or a dev manifest)")

// ErrUnknownDataset is returned for a dataset name dg does not have.
var ErrUnknownDataset = errors.New("unknown dataset")

// Highlight names one trace the report points at.
type Highlight struct {
	Title      string `json:"title"`
	TraceID    string `json:"trace_id"`
	WorkflowID string `json:"workflow_id"`
}

// WorkflowState is one workflow item as the report lists it.
type WorkflowState struct {
	WorkflowID string `json:"workflow_id"`
	TraceID    string `json:"trace_id"`
	Kind       string `json:"kind"`
	Status     string `json:"status"`
	Overdue    bool   `json:"overdue"`
	SLADueAt   string `json:"sla_due_at"`
}

// ProjectionResult is one projection's state after the rebuild.
type ProjectionResult struct {
	Projection    string `json:"projection_name"`
	Tenant        string `json:"tenant_id"`
	LastLogSeq    int64  `json:"last_log_seq"`
	Pending       int64  `json:"pending_events"`
	Processed     int    `json:"processed_events"`
	OpenFailures  int    `json:"open_failures"`
	CurrentDigest string `json:"digest"`
}

// Report is what a seeding did and what the tenant now holds.
type Report struct {
	Dataset        string             `json:"dataset"`
	SeedProfile    string             `json:"seed_profile"`
	Tenant         string             `json:"tenant_id"`
	SeededAt       string             `json:"seeded_at"`
	Reset          bool               `json:"reset"`
	Deleted        map[string]int64   `json:"deleted_rows,omitempty"`
	Appended       int                `json:"appended"`
	AlreadyPresent int                `json:"already_present"`
	EventCount     int64              `json:"event_count"`
	Highlighted    []Highlight        `json:"highlighted_traces"`
	LiveTrace      map[string]any     `json:"live_trace"`
	ReviewWorkflow map[string]any     `json:"review_workflow"`
	PrecedentTrace string             `json:"precedent_trace_id"`
	RecentTraceIDs []string           `json:"recent_trace_ids"`
	Workflows      []WorkflowState    `json:"workflows"`
	Inbox          map[string]any     `json:"workflow_inbox"`
	Notifications  int64              `json:"notification_count"`
	Projections    []ProjectionResult `json:"projection_results"`
	Digests        projection.Digests `json:"projection_digests"`
	ConsolePaths   map[string]string  `json:"console_paths"`
	APIExamples    map[string]string  `json:"api_examples"`
}

// Run seeds a dataset into a tenant of st's database.
func Run(ctx context.Context, st *store.Store, o Options) (*Report, error) {
	if o.Dataset == "" {
		o.Dataset = ReleaseDemo
	}
	if o.Dataset != ReleaseDemo {
		return nil, fmt.Errorf("%w %q (known: %v)", ErrUnknownDataset, o.Dataset, Datasets())
	}
	if o.Tenant == "" {
		o.Tenant = DefaultTenant
	}
	if o.Reset && !o.ResetConfirmed {
		return nil, ErrResetNotConfirmed
	}
	lg := o.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	rep := &Report{Dataset: o.Dataset, SeedProfile: Profile, Tenant: o.Tenant, Reset: o.Reset}
	if o.Reset {
		del, err := Reset(ctx, st, o.Tenant)
		if err != nil {
			return nil, err
		}
		rep.Deleted = del
		lg.Info("seed: removed the tenant's rows", "tenant", o.Tenant, "event_rows", del["dg_event_log"])
	}

	// An existing seed fixes the seeding time: re-appending then replays.
	at := o.At
	if prev, ok, err := storedSeedTime(ctx, st, o.Tenant); err != nil {
		return nil, err
	} else if ok {
		if !o.At.IsZero() && !prev.Equal(o.At.UTC().Truncate(time.Second)) {
			lg.Info("seed: the tenant was seeded at another time; keeping it (use --reset to seed again)",
				"tenant", o.Tenant, "seeded_at", prev, "requested", o.At)
		}
		at = prev
	}
	if at.IsZero() {
		at = time.Now()
	}
	at = at.UTC().Truncate(time.Second)
	rep.SeededAt = formatTime(at)

	for _, env := range Envelopes(at) {
		res, err := st.Append(ctx, o.Tenant, env)
		if err != nil {
			return nil, fmt.Errorf("append %s to tenant %s: %w", env.EventID, o.Tenant, err)
		}
		if res.Replayed {
			rep.AlreadyPresent++
		} else {
			rep.Appended++
		}
	}

	pg := projection.NewPG(st, 250)
	behind := false
	if ss, err := pg.Status(ctx, o.Tenant); err == nil {
		for _, s := range ss {
			behind = behind || s.Lag > 0
		}
	}
	// Rebuild when events were appended, and also when an earlier seed
	// stopped between its appends and its rebuild.
	if rep.Appended > 0 || o.Reset || behind {
		rb, err := pg.Rebuild(ctx, projection.RebuildOptions{Tenant: o.Tenant})
		if err != nil {
			return nil, fmt.Errorf("rebuild the projections of tenant %s: %w", o.Tenant, err)
		}
		for _, name := range projection.Names() {
			rep.Projections = append(rep.Projections, ProjectionResult{Projection: name, Tenant: o.Tenant, Processed: rb.Events})
		}
	} else {
		for _, name := range projection.Names() {
			rep.Projections = append(rep.Projections, ProjectionResult{Projection: name, Tenant: o.Tenant})
		}
	}

	wcfg := o.Workflow
	if !o.At.IsZero() {
		start := time.Now()
		wcfg.Now = func() time.Time { return at.Add(time.Since(start)) }
	}
	wf := workflow.New(st.Pool(), st, wcfg, workflow.Options{Logger: lg})
	if _, err := wf.Refresh(ctx, o.Tenant); err != nil {
		return nil, fmt.Errorf("refresh the workflows of tenant %s: %w", o.Tenant, err)
	}
	if err := fillReport(ctx, st, pg, wf, rep); err != nil {
		return nil, err
	}
	lg.Info("seed: done", "tenant", o.Tenant, "appended", rep.Appended, "already_present", rep.AlreadyPresent)
	return rep, nil
}

// storedSeedTime reads the seeding time of an earlier seed of the tenant
// from its first event, if the tenant has it.
func storedSeedTime(ctx context.Context, st *store.Store, tenant string) (time.Time, bool, error) {
	var occurred string
	err := st.Pool().QueryRow(ctx, `SELECT occurred_at FROM dg_event_log WHERE tenant_id = $1 AND event_id = $2`,
		tenant, PrecedentTrace+"-trace_started-0").Scan(&occurred)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("look for an earlier seed of tenant %s: %w", tenant, err)
	}
	t, err := seedTimeOf(occurred)
	if err != nil {
		return time.Time{}, false, err
	}
	return t, true, nil
}

// TenantEmpty reports whether the tenant has no events (dg up seeds only
// empty tenants).
func TenantEmpty(ctx context.Context, st *store.Store, tenant string) (bool, error) {
	var any bool
	if err := st.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM dg_event_log WHERE tenant_id = $1)`, tenant).Scan(&any); err != nil {
		return false, fmt.Errorf("check whether tenant %s has events: %w", tenant, err)
	}
	return !any, nil
}

func fillReport(ctx context.Context, st *store.Store, pg *projection.PG, wf *workflow.Service, rep *Report) error {
	t := rep.Tenant
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM dg_event_log WHERE tenant_id = $1`, t).Scan(&rep.EventCount); err != nil {
		return fmt.Errorf("count the events of tenant %s: %w", t, err)
	}
	status, err := pg.Status(ctx, t)
	if err != nil {
		return fmt.Errorf("projection status of tenant %s: %w", t, err)
	}
	for k := range rep.Projections {
		for _, s := range status {
			if s.Projection == rep.Projections[k].Projection {
				rep.Projections[k].LastLogSeq = s.Checkpoint
				rep.Projections[k].Pending = s.Lag
				rep.Projections[k].OpenFailures = s.OpenFailures
				rep.Projections[k].CurrentDigest = s.Digest
			}
		}
	}
	d, err := pg.LiveDigests(ctx, t)
	if err != nil {
		return fmt.Errorf("digests of tenant %s: %w", t, err)
	}
	rep.Digests = d

	rows, err := st.Pool().Query(ctx, `SELECT trace_id FROM dg_trace_summary WHERE tenant_id = $1
		ORDER BY last_log_seq DESC, trace_id COLLATE "C" LIMIT 12`, t)
	if err != nil {
		return fmt.Errorf("recent traces of tenant %s: %w", t, err)
	}
	rep.RecentTraceIDs, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("recent traces of tenant %s: %w", t, err)
	}

	inbox, err := wf.List(ctx, t, workflow.Filter{OnlyOpen: false, Limit: workflow.MaxLimit})
	if err != nil {
		return fmt.Errorf("workflow inbox of tenant %s: %w", t, err)
	}
	ids := []string{}
	status2 := map[string]string{}
	for _, it := range inbox.Items {
		ids = append(ids, it.WorkflowID)
		status2[it.WorkflowID] = it.Status
		rep.Workflows = append(rep.Workflows, WorkflowState{WorkflowID: it.WorkflowID, TraceID: it.TraceID, Kind: it.Kind,
			Status: it.Status, Overdue: it.Overdue(inbox.Now), SLADueAt: workflow.FormatTime(it.SLADueAt)})
	}
	rep.Inbox = map[string]any{"item_ids": ids, "open_count": inbox.Summary.OpenCount, "overdue_count": inbox.Summary.OverdueCount,
		"escalated_count": inbox.Summary.EscalatedCount}
	rep.Notifications = inbox.Summary.NotificationCount

	var liveEvents int64
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM dg_event_log WHERE tenant_id = $1 AND trace_id = $2`, t, LiveTrace).Scan(&liveEvents); err != nil {
		return fmt.Errorf("count the live trace's events: %w", err)
	}
	precedents := []string{}
	hits, err := pg.FindPrecedents(ctx, t, projection.PrecedentQuery{PolicyID: "discount-cap", PolicyVersion: "2026.03",
		EntityType: "account", EntityID: "acct-acme-platform", Limit: 6})
	if err == nil {
		for _, h := range hits {
			precedents = append(precedents, h.TraceID)
		}
	}
	rep.Highlighted = []Highlight{
		{"Approved precedent", PrecedentTrace, PrecedentWorkflow},
		{"Live exception review", LiveTrace, LiveWorkflow},
		{"Incident review", IncidentTrace, IncidentWorkflow},
		{"Exception close to its deadline", AtRiskTrace, AtRiskWorkflow},
	}
	rep.LiveTrace = map[string]any{"trace_id": LiveTrace, "workflow_id": LiveWorkflow, "event_count": liveEvents,
		"workflow_status": status2[LiveWorkflow], "precedent_trace_ids": precedents}
	rep.ReviewWorkflow = map[string]any{"trace_id": IncidentTrace, "workflow_id": IncidentWorkflow, "workflow_status": status2[IncidentWorkflow]}
	rep.PrecedentTrace = PrecedentTrace
	rep.ConsolePaths = map[string]string{
		"default":         "/console/traces/" + LiveTrace + "?tenant=" + t,
		"live_workflow":   "/console/workflows/" + LiveWorkflow + "?tenant=" + t,
		"incident_review": "/console/workflows/" + IncidentWorkflow + "?tenant=" + t,
	}
	rep.APIExamples = map[string]string{
		"selected_trace_path":    "/api/v1/traces/" + LiveTrace,
		"recent_workflows_path":  "/api/v1/workflows",
		"projection_health_path": "/api/v1/projections/health",
		"export_workflow_path":   "/api/v1/admin/workflows/" + IncidentWorkflow + "/export",
	}
	return nil
}
