package projection

// The projections dg maintains, in the fixed order the runtime processes them.
const (
	ContextGraph   = "context_graph"
	TraceSummary   = "trace_summary"
	PrecedentIndex = "precedent_index"
	// FullProjection is the pseudo-projection whose digest combines the three.
	FullProjection = "full_projection"
)

// Names returns the three projection names in their fixed order.
func Names() []string { return []string{ContextGraph, TraceSummary, PrecedentIndex} }

// Set selects projections for a Projector.
type Set uint8

// Members of Set.
const (
	SetContextGraph Set = 1 << iota
	SetTraceSummary
	SetPrecedentIndex
	SetAll = SetContextGraph | SetTraceSummary | SetPrecedentIndex
)

// SetOf returns the Set holding the named projection, or false for an
// unknown name. "all" selects every projection.
func SetOf(name string) (Set, bool) {
	switch name {
	case ContextGraph:
		return SetContextGraph, true
	case TraceSummary:
		return SetTraceSummary, true
	case PrecedentIndex:
		return SetPrecedentIndex, true
	case "all":
		return SetAll, true
	}
	return 0, false
}

// Node is a row of dg_cg_nodes. Its metadata is always {} in v1 and is not
// carried here.
type Node struct {
	NodeID    string
	NodeType  string
	TraceID   string
	LogSeq    int64
	CreatedAt string
}

// Edge is a row of dg_cg_edges (metadata always {}).
type Edge struct {
	EdgeID     string
	EdgeType   string
	FromNodeID string
	ToNodeID   string
	TraceID    string
	LogSeq     int64
	CreatedAt  string
}

// Summary is a row of dg_trace_summary. EventCount is 1 for an open trace
// and 2 for a finished one: only TraceStarted and TraceFinished count.
type Summary struct {
	TraceID           string
	Workflow          string
	Title             string
	PrimaryEntityType *string
	PrimaryEntityID   *string
	Outcome           *string
	StartedAt         string
	FinishedAt        *string
	EventCount        int64
	LastLogSeq        int64
}

// Finish is the change TraceFinished makes to a summary row.
type Finish struct {
	TraceID    string
	Outcome    string
	FinishedAt string
	LogSeq     int64
}

// PolicyEval is a row of dg_policy_eval_index (never digested).
type PolicyEval struct {
	IndexID       string
	TraceID       string
	PolicyID      string
	PolicyVersion string
	LogSeq        int64
	CreatedAt     string
}

// Precedent is a row of dg_precedent_index (v2).
type Precedent struct {
	SourceEventID       string
	LogSeq              int64
	TraceID             string
	PolicyID            string
	PolicyVersion       string
	ExceptionID         *string
	PrimaryEntityType   *string
	PrimaryEntitySystem *string
	PrimaryEntityID     *string
}

// PrecedentSet replaces every precedent row of one trace.
type PrecedentSet struct {
	TraceID string
	Rows    []Precedent
}

// Changes is what one event does to the projection tables. Row stores apply
// it in this order: nodes (insert if absent, in order), edges (insert if
// absent, in order), summary start (insert; on conflict count and move
// last_log_seq), summary finish (update), policy-eval row (insert if
// absent), precedent replacement.
type Changes struct {
	Nodes         []Node
	Edges         []Edge
	StartSummary  *Summary
	FinishSummary *Finish
	PolicyEval    *PolicyEval
	Precedents    *PrecedentSet
}

// Empty reports whether the event changes no row.
func (c *Changes) Empty() bool {
	return len(c.Nodes) == 0 && len(c.Edges) == 0 && c.StartSummary == nil &&
		c.FinishSummary == nil && c.PolicyEval == nil && c.Precedents == nil
}
