package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/ops"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
	"github.com/decisiongraph/dg/pkg/workflow"
)

// consoleData reads what the pages show. Every method answers for one
// tenant and returns an error the page turns into an "unavailable" state.
type consoleData struct {
	st        *store.Store
	pool      *pgxpool.Pool
	pg        *projection.PG
	wf        *workflow.Service
	backupDir string
	now       func() time.Time
}

func newConsoleData(cfg *ConsoleConfig) *consoleData {
	d := &consoleData{st: cfg.Store, pg: cfg.Projections, wf: cfg.Workflows, backupDir: cfg.BackupDir, now: cfg.Now}
	if cfg.Store != nil {
		d.pool = cfg.Store.Pool()
		if d.pg == nil {
			d.pg = projection.NewPG(cfg.Store, 500)
		}
		if d.wf == nil {
			d.wf = workflow.New(d.pool, cfg.Store, workflow.Config{Now: cfg.Now}, workflow.Options{})
		}
	}
	return d
}

var errNoStore = errors.New("the event store is not connected")

func (d *consoleData) ready() error {
	if d.st == nil {
		return errNoStore
	}
	return nil
}

// defaultTenant is the first of the tenants that has events (so the dev
// quick start lands on the seeded demo), else the first one.
func (d *consoleData) defaultTenant(ctx context.Context, tenants []string) string {
	if d.ready() == nil {
		rows, err := d.pool.Query(ctx, `SELECT tenant_id FROM dg_chain_heads WHERE tenant_id = ANY($1) AND event_count > 0`, tenants)
		if err == nil {
			have, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err == nil {
				for _, t := range tenants {
					if slices.Contains(have, t) {
						return t
					}
				}
			}
		}
	}
	return tenants[0]
}

// traceFinished reports whether a trace has its TraceFinished event.
func (d *consoleData) traceFinished(ctx context.Context, tenant, traceID string) (bool, error) {
	if err := d.ready(); err != nil {
		return false, err
	}
	var done bool
	err := d.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM dg_event_log WHERE tenant_id = $1 AND trace_id = $2
		AND event_type = 'TraceFinished')`, tenant, traceID).Scan(&done)
	return done, err
}

// tenantCounts are the tenant status numbers.
type tenantCounts struct {
	Events       int64
	Traces       int64
	ActiveTraces int64
	LastEventAt  time.Time
}

func (d *consoleData) tenantCounts(ctx context.Context, tenant string) (*tenantCounts, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	tc := &tenantCounts{}
	var last *time.Time
	err := d.pool.QueryRow(ctx, `SELECT
		coalesce((SELECT event_count FROM dg_chain_heads WHERE tenant_id = $1), 0),
		count(*), count(*) FILTER (WHERE finished_at IS NULL),
		(SELECT recorded_at FROM dg_event_log WHERE tenant_id = $1 ORDER BY log_seq DESC LIMIT 1)
		FROM dg_trace_summary WHERE tenant_id = $1`, tenant).
		Scan(&tc.Events, &tc.Traces, &tc.ActiveTraces, &last)
	if err != nil {
		return nil, fmt.Errorf("count the tenant's events and traces: %w", err)
	}
	if last != nil {
		tc.LastEventAt = *last
	}
	return tc, nil
}

// health is the projection health of a tenant.
type health struct {
	Rows         []healthRow
	Pending      int64
	Stale        int
	OpenFailures int
	State        string // healthy, catching up, operator attention
	Full         string // full_projection digest
}

// empty: no projection has seen an event of the tenant.
func (h *health) empty() bool {
	for _, r := range h.Rows {
		if r.Checkpoint > 0 || r.Head > 0 || r.OpenFailures > 0 {
			return false
		}
	}
	return true
}

type healthRow struct {
	projection.ScopeStatus
	State string
}

func (d *consoleData) health(ctx context.Context, tenant string) (*health, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	ss, err := d.pg.Status(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("projection status: %w", err)
	}
	h := &health{State: "healthy"}
	for _, s := range ss {
		row := healthRow{ScopeStatus: s, State: "ready"}
		switch {
		case s.OpenFailures > 0:
			row.State = "failing"
			h.OpenFailures += s.OpenFailures
		case s.Lag > 0:
			row.State = "catching up"
			h.Stale++
		}
		h.Pending += s.Lag
		if s.Projection == projection.FullProjection {
			h.Full = s.Digest
			continue
		}
		h.Rows = append(h.Rows, row)
	}
	if h.Full == "" {
		var full string
		err := d.pool.QueryRow(ctx, `SELECT digest_value FROM dg_projection_digests WHERE tenant_id = $1 AND projection_name = 'full_projection'`, tenant).Scan(&full)
		if err == nil {
			h.Full = full
		}
	}
	switch {
	case h.OpenFailures > 0:
		h.State = "operator attention"
	case h.Stale > 0:
		h.State = "catching up"
	}
	return h, nil
}

// traceRow is one trace of a list.
type traceRow struct {
	projection.Summary
	Status string
}

func summaryStatus(s *projection.Summary) string {
	switch {
	case s.Outcome != nil && *s.Outcome != "":
		return *s.Outcome
	case s.FinishedAt != nil:
		return "finished"
	}
	return "running"
}

// recentTraces lists traces newest first (by last_log_seq), before a
// last_log_seq when before > 0.
func (d *consoleData) recentTraces(ctx context.Context, tenant string, limit int, before int64) ([]traceRow, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	// Two statements rather than "$3 = 0 OR ...", so each is a plain walk
	// of dg_trace_summary_recent.
	const cols = `SELECT trace_id, workflow, title, primary_entity_type, primary_entity_id, outcome,
		started_at, finished_at, event_count, last_log_seq FROM dg_trace_summary WHERE tenant_id = $1`
	const order = ` ORDER BY last_log_seq DESC, trace_id COLLATE "C" LIMIT $2`
	q, args := cols+order, []any{tenant, limit}
	if before > 0 {
		q, args = cols+` AND last_log_seq < $3`+order, append(args, before)
	}
	rows, err := d.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("recent traces: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (traceRow, error) {
		var t traceRow
		err := r.Scan(&t.TraceID, &t.Workflow, &t.Title, &t.PrimaryEntityType, &t.PrimaryEntityID, &t.Outcome,
			&t.StartedAt, &t.FinishedAt, &t.EventCount, &t.LastLogSeq)
		t.Status = summaryStatus(&t.Summary)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("recent traces: %w", err)
	}
	return out, nil
}

// timelineEvent is one event of a trace timeline or the live stream.
type timelineEvent struct {
	LogSeq     int64
	TraceSeq   int64
	Type       string
	EventID    string
	TraceID    string
	OccurredAt string
	RecordedAt time.Time
	Actor      string
	Tone       string
	Summary    string
	Payload    string
}

func eventTone(e *event.StoredEvent) string {
	switch e.EventType {
	case "ExceptionRequested":
		return "alert"
	case "ApprovalRecorded":
		if d, _ := e.Payload["decision"].(string); d == "rejected" {
			return "alert"
		}
		return "good"
	case "TraceFinished":
		if o, _ := e.Payload["outcome"].(string); o != "success" {
			return "alert"
		}
		return "good"
	case "PolicyEvaluated", "ActionProposed", "WorkflowReviewRequested":
		return "warn"
	case "ActionCommitted":
		return "good"
	}
	return "neutral"
}

// eventSummary is a few words about an event: its decision, action,
// exception or outcome.
func eventSummary(e *event.StoredEvent) string {
	p := e.Payload
	for _, k := range []string{"decision", "outcome", "exception_id", "action_id", "cited_trace_id", "title", "input_id"} {
		if s, ok := p[k].(string); ok && s != "" {
			return k + " " + s
		}
	}
	if en, ok := p["entity"].(map[string]any); ok {
		return fmt.Sprintf("entity %v:%v", en["entity_type"], en["entity_id"])
	}
	return ""
}

func toTimeline(e *event.StoredEvent) timelineEvent {
	b, _ := json.MarshalIndent(e.Payload, "", "  ")
	return timelineEvent{LogSeq: e.LogSeq, TraceSeq: e.TraceSeq, Type: e.EventType, EventID: e.EventID, TraceID: e.TraceID,
		OccurredAt: e.OccurredAt, RecordedAt: e.RecordedAt, Actor: e.Actor.ActorType + ":" + e.Actor.ActorID,
		Tone: eventTone(e), Summary: eventSummary(e), Payload: string(b)}
}

func (d *consoleData) traceEvents(ctx context.Context, tenant, traceID string) ([]*event.StoredEvent, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	evs, err := d.st.TraceEvents(ctx, tenant, traceID, -1, 2000)
	if err != nil {
		if c, ok := event.CodeOf(err); ok && c == event.CodeNotFound {
			return []*event.StoredEvent{}, nil
		}
		return nil, fmt.Errorf("read the trace's events: %w", err)
	}
	return evs, nil
}

func (d *consoleData) lastEvents(ctx context.Context, tenant string, n int) ([]timelineEvent, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	evs, err := d.st.LastEvents(ctx, tenant, n)
	if err != nil {
		return nil, fmt.Errorf("read the newest events: %w", err)
	}
	out := make([]timelineEvent, 0, len(evs))
	for k := len(evs) - 1; k >= 0; k-- {
		out = append(out, toTimeline(evs[k]))
	}
	return out, nil
}

// run is one projection run row.
type run struct {
	JobID, Projection, Mode, Status string
	Processed, LastLogSeq           int64
	RequestedAt                     time.Time
	FinishedAt                      *time.Time
	Error                           *string
}

func (d *consoleData) runs(ctx context.Context, tenant string) ([]run, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	rows, err := d.pool.Query(ctx, `SELECT job_id, projection_name, mode, status, processed_events, last_log_seq, requested_at,
		finished_at, error_message FROM dg_projection_runs WHERE tenant_id = $1 ORDER BY requested_at DESC LIMIT 8`, tenant)
	if err != nil {
		return nil, fmt.Errorf("list projection runs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (run, error) {
		var x run
		return x, r.Scan(&x.JobID, &x.Projection, &x.Mode, &x.Status, &x.Processed, &x.LastLogSeq, &x.RequestedAt, &x.FinishedAt, &x.Error)
	})
	if err != nil {
		return nil, fmt.Errorf("list projection runs: %w", err)
	}
	return out, nil
}

// failure is one open projection failure.
type failure struct {
	Projection, Code, Message string
	LogSeq                    int64
	TraceID, EventID          *string
	RecordedAt                time.Time
}

func (d *consoleData) failures(ctx context.Context, tenant string) ([]failure, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	rows, err := d.pool.Query(ctx, `SELECT projection_name, error_code, error_message, log_seq, trace_id, event_id, recorded_at
		FROM dg_projection_failures WHERE tenant_id = $1 AND status = 'open' ORDER BY recorded_at DESC LIMIT 5`, tenant)
	if err != nil {
		return nil, fmt.Errorf("list projection failures: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (failure, error) {
		var f failure
		return f, r.Scan(&f.Projection, &f.Code, &f.Message, &f.LogSeq, &f.TraceID, &f.EventID, &f.RecordedAt)
	})
	if err != nil {
		return nil, fmt.Errorf("list projection failures: %w", err)
	}
	return out, nil
}

func (d *consoleData) backups() ([]ops.BackupEntry, error) {
	if d.backupDir == "" {
		return []ops.BackupEntry{}, nil
	}
	list, err := ops.ListBackups(d.backupDir)
	if err != nil {
		return nil, err
	}
	if len(list) > 10 {
		list = list[:10]
	}
	return list, nil
}

// reviewCards are the policy/exception/approval/action cards of a trace.
type reviewCards struct {
	Policy, PolicyDecision     string
	Exception, ExceptionStatus string
	Approval, Approver         string
	Action, ActionID           string
	Outcome                    string
	Entity                     string
	EntityType, EntityID       string
	PolicyID, PolicyVersion    string
	Workflow                   string
	Key                        []timelineEvent
	Handoff                    string
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// reviewOf walks a trace's events for the review cards and the
// investigator handoff.
func reviewOf(traceID string, evs []*event.StoredEvent) *reviewCards {
	rc := &reviewCards{Exception: "not required", ExceptionStatus: "not_required", Approval: "pending", Action: "pending",
		Outcome: "pending", Entity: "unknown", Policy: "unknown"}
	for _, e := range evs {
		p := e.Payload
		switch e.EventType {
		case "TraceStarted":
			rc.Workflow = str(p["workflow"])
			if pe, ok := p["primary_entity"].(map[string]any); ok {
				rc.EntityType, rc.EntityID = str(pe["entity_type"]), str(pe["entity_id"])
				rc.Entity = strings.Trim(str(pe["system"])+":"+rc.EntityType+":"+rc.EntityID, ":")
			}
		case "PolicyEvaluated":
			if pol, ok := p["policy"].(map[string]any); ok {
				rc.PolicyID, rc.PolicyVersion = str(pol["policy_id"]), str(pol["policy_version"])
				rc.Policy = rc.PolicyID + "@" + rc.PolicyVersion
			}
			rc.PolicyDecision = str(p["decision"])
		case "ExceptionRequested":
			rc.Exception, rc.ExceptionStatus = str(p["exception_id"]), "requested"
		case "ApprovalRecorded":
			rc.Approval = str(p["decision"])
			if ap, ok := p["approver"].(map[string]any); ok {
				rc.Approver = str(ap["actor_type"]) + ":" + str(ap["actor_id"])
			}
			if rc.ExceptionStatus == "requested" {
				rc.ExceptionStatus = "reviewed"
			}
		case "ActionProposed":
			rc.Action, rc.ActionID = "proposed", str(p["action_id"])
		case "ActionCommitted":
			rc.Action, rc.ActionID = "committed", str(p["action_id"])
		case "TraceFinished":
			rc.Outcome = str(p["outcome"])
		}
		switch e.EventType {
		case "PolicyEvaluated", "ExceptionRequested", "ApprovalRecorded", "ActionProposed", "ActionCommitted", "TraceFinished":
			rc.Key = append(rc.Key, toTimeline(e))
		}
	}
	exc := rc.Exception
	if rc.ExceptionStatus == "not_required" {
		exc = "none"
	}
	pol := rc.PolicyID
	if pol == "" {
		pol = "unknown"
	}
	wfName := rc.Workflow
	if wfName == "" {
		wfName = "unknown"
	}
	rc.Handoff = strings.Join([]string{"trace=" + traceID, "workflow=" + wfName, "entity=" + rc.Entity, "outcome=" + rc.Outcome,
		"exception_id=" + exc, "approval=" + rc.Approval, "policy=" + pol}, "\n")
	return rc
}

// precedentCard is one precedent with its outcome delta.
type precedentCard struct {
	projection.PrecedentHit
	Delta   string
	Lineage string
}

func (d *consoleData) precedents(ctx context.Context, tenant, traceID string, rc *reviewCards) ([]precedentCard, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	if rc.PolicyID == "" {
		return []precedentCard{}, nil
	}
	hits, err := d.pg.FindPrecedents(ctx, tenant, projection.PrecedentQuery{PolicyID: rc.PolicyID, PolicyVersion: rc.PolicyVersion,
		EntityType: rc.EntityType, EntityID: rc.EntityID, Limit: 7})
	if err != nil {
		return nil, fmt.Errorf("precedent search: %w", err)
	}
	out := []precedentCard{}
	for _, h := range hits {
		if h.TraceID == traceID || len(out) == 6 {
			continue
		}
		pc := precedentCard{PrecedentHit: h, Delta: "insufficient signal"}
		switch {
		case rc.Outcome == "pending" || h.Outcome == "":
		case rc.Outcome == h.Outcome:
			pc.Delta = "same outcome"
		default:
			pc.Delta = h.Outcome + " vs " + rc.Outcome
		}
		if rc.Outcome == "pending" && h.Outcome != "" {
			pc.Delta = h.Outcome + " vs pending"
		}
		if h.PolicyID != nil {
			pc.Lineage = *h.PolicyID
			if h.PolicyVersion != nil {
				pc.Lineage += "@" + *h.PolicyVersion
			}
		}
		out = append(out, pc)
	}
	return out, nil
}

// graphView is a context subgraph laid out for an SVG drawing.
type graphView struct {
	Center    string
	Nodes     []graphNode
	Edges     []graphEdge
	Truncated bool
	Width     int
	Height    int
}

type graphNode struct {
	ID, Type, Label string
	X, Y            int
	Center          bool
}

type graphEdge struct {
	Type, From, To string
	X1, Y1, X2, Y2 int
	LabelX, LabelY int
}

func (d *consoleData) graph(ctx context.Context, tenant, traceID string) (*graphView, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	sg, err := d.pg.ContextSubgraph(ctx, tenant, projection.SubgraphQuery{NodeType: "trace", NodeID: traceID, MaxDepth: 2, MaxNodes: 24, MaxEdges: 24})
	if err != nil {
		if c, ok := event.CodeOf(err); ok && c == event.CodeNotFound {
			return &graphView{Center: traceID}, nil
		}
		return nil, fmt.Errorf("context graph: %w", err)
	}
	return layoutGraph("trace:"+traceID, sg), nil
}

// layoutGraph places the center node in the middle and the others on
// rings by their distance from it (breadth-first over the edges), sorted
// by type and id so the drawing is stable.
func layoutGraph(center string, sg *projection.Subgraph) *graphView {
	gv := &graphView{Center: center, Truncated: sg.Truncated, Width: 760, Height: 520}
	if len(sg.Nodes) == 0 {
		return gv
	}
	adj := map[string][]string{}
	for _, e := range sg.Edges {
		adj[e.FromNodeID] = append(adj[e.FromNodeID], e.ToNodeID)
		adj[e.ToNodeID] = append(adj[e.ToNodeID], e.FromNodeID)
	}
	dist := map[string]int{}
	root := center
	found := false
	for _, n := range sg.Nodes {
		if n.NodeID == center {
			found = true
		}
	}
	if !found {
		root = sg.Nodes[0].NodeID
	}
	dist[root] = 0
	queue := []string{root}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, m := range adj[n] {
			if _, ok := dist[m]; !ok {
				dist[m] = dist[n] + 1
				queue = append(queue, m)
			}
		}
	}
	rings := map[int][]projection.Node{}
	maxRing := 0
	for _, n := range sg.Nodes {
		r, ok := dist[n.NodeID]
		if !ok {
			r = 3
		}
		maxRing = max(maxRing, r)
		rings[r] = append(rings[r], n)
	}
	cx, cy := gv.Width/2, gv.Height/2
	pos := map[string][2]int{}
	for r := 0; r <= maxRing; r++ {
		ns := rings[r]
		sort.Slice(ns, func(i, j int) bool {
			if ns[i].NodeType != ns[j].NodeType {
				return ns[i].NodeType < ns[j].NodeType
			}
			return ns[i].NodeID < ns[j].NodeID
		})
		radius := float64(r) * 210 / float64(max(maxRing, 1))
		for k, n := range ns {
			x, y := cx, cy
			if r > 0 {
				a := 2*math.Pi*float64(k)/float64(len(ns)) - math.Pi/2 + float64(r)*0.4
				x = cx + int(radius*1.55*math.Cos(a))
				y = cy + int(radius*math.Sin(a))
			}
			pos[n.NodeID] = [2]int{x, y}
			label := n.NodeID
			if _, rest, ok := strings.Cut(label, ":"); ok {
				label = rest
			}
			if len(label) > 26 {
				label = label[:25] + "…"
			}
			gv.Nodes = append(gv.Nodes, graphNode{ID: n.NodeID, Type: n.NodeType, Label: label, X: x, Y: y, Center: n.NodeID == root})
		}
	}
	for _, e := range sg.Edges {
		a, okA := pos[e.FromNodeID]
		b, okB := pos[e.ToNodeID]
		if !okA || !okB {
			continue
		}
		gv.Edges = append(gv.Edges, graphEdge{Type: e.EdgeType, From: e.FromNodeID, To: e.ToNodeID,
			X1: a[0], Y1: a[1], X2: b[0], Y2: b[1], LabelX: (a[0] + b[0]) / 2, LabelY: (a[1]+b[1])/2 - 4})
	}
	return gv
}

// detail is an item with its history and newest notifications. It reads
// the item's audit export rather than workflow.Service.Get: the same rows
// without Get's studio review context, which the page does not show and
// which costs a precedent search over the tenant's traces.
func (d *consoleData) detail(ctx context.Context, tenant, wid string) (*workflow.Detail, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	ex, err := d.wf.Export(ctx, tenant, wid, 1)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(ex)
	if err != nil {
		return nil, fmt.Errorf("read workflow %s: %w", wid, err)
	}
	var v struct {
		ExportedAt time.Time `json:"exported_at"`
		Workflow   struct {
			WorkflowID string `json:"workflow_id"`
			TraceID    string `json:"trace_id"`
			Status     string `json:"status"`
			Priority   string `json:"priority"`
			Title      string `json:"title"`
			Kind       string `json:"workflow_kind"`
			Name       string `json:"workflow_name"`
			Subject    struct {
				SubjectID   string `json:"subject_id"`
				SubjectType string `json:"subject_type"`
			}
			AssignedAccountID string         `json:"assigned_account_id"`
			AssignedRole      string         `json:"assigned_role"`
			RequestedAt       time.Time      `json:"requested_at"`
			SLADueAt          time.Time      `json:"sla_due_at"`
			ResolvedAt        time.Time      `json:"resolved_at"`
			CurrentDecision   string         `json:"current_decision"`
			CurrentReason     string         `json:"current_reason"`
			Metadata          map[string]any `json:"metadata"`
		} `json:"workflow"`
		Actions []struct {
			ActionID        string    `json:"action_id"`
			Type            string    `json:"action_type"`
			CreatedAt       time.Time `json:"created_at"`
			Note            string    `json:"note"`
			ResultingStatus string    `json:"resulting_status"`
			Actor           struct {
				AccountID string `json:"account_id"`
				ActorID   string `json:"actor_id"`
				ActorType string `json:"actor_type"`
			} `json:"actor"`
		} `json:"workflow_actions"`
		Notifications []struct {
			NotificationID     string    `json:"notification_id"`
			Category           string    `json:"category"`
			Status             string    `json:"status"`
			Message            string    `json:"message"`
			RecipientAccountID string    `json:"recipient_account_id"`
			RecipientRole      string    `json:"recipient_role"`
			CreatedAt          time.Time `json:"created_at"`
		} `json:"workflow_notifications"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("read workflow %s: %w", wid, err)
	}
	w := v.Workflow
	it := &workflow.Item{TenantID: tenant, WorkflowID: w.WorkflowID, TraceID: w.TraceID, Kind: w.Kind, Name: w.Name,
		SubjectType: w.Subject.SubjectType, SubjectID: w.Subject.SubjectID, Status: w.Status, Priority: w.Priority, Title: w.Title,
		AssignedAccountID: w.AssignedAccountID, AssignedRole: w.AssignedRole, RequestedAt: w.RequestedAt, SLADueAt: w.SLADueAt,
		ResolvedAt: w.ResolvedAt, CurrentDecision: w.CurrentDecision, CurrentReason: w.CurrentReason, Metadata: w.Metadata}
	det := &workflow.Detail{Item: it, Now: v.ExportedAt, Actions: []*workflow.Action{}, Notifications: []*workflow.Notification{}}
	if det.Now.IsZero() {
		det.Now = d.now()
	}
	for _, a := range v.Actions {
		det.Actions = append(det.Actions, &workflow.Action{ActionID: a.ActionID, WorkflowID: wid, TraceID: it.TraceID, Type: a.Type,
			CreatedAt: a.CreatedAt, Note: a.Note, ResultingStatus: a.ResultingStatus, ActorAccountID: a.Actor.AccountID,
			ActorID: a.Actor.ActorID, ActorType: a.Actor.ActorType})
	}
	for k, n := range v.Notifications {
		if k == workflow.DetailNotifications {
			break
		}
		det.Notifications = append(det.Notifications, &workflow.Notification{NotificationID: n.NotificationID, WorkflowID: wid,
			Category: n.Category, Status: n.Status, Message: n.Message, RecipientAccountID: n.RecipientAccountID,
			RecipientRole: n.RecipientRole, CreatedAt: n.CreatedAt})
	}
	return det, nil
}
