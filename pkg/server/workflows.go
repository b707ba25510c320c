package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/decisiongraph/dg/pkg/workflow"
)

// The workflow routes (HTTP spec §8.9) and the admin export (route 17).
// Every handler runs the service's refresh first, so results are never
// stale even when the node's runtime is not the tenant's leader.

// registerWorkflows adds the workflow and studio routes when the API has
// a workflow service.
func (a *api) registerWorkflows() {
	if a.cfg.Workflows == nil {
		return
	}
	a.route(http.MethodGet, "/api/v1/workflows", familyReader, a.handleWorkflowInbox)
	a.route(http.MethodGet, "/api/v1/workflows/{workflow_id}", familyReader, a.handleWorkflowDetail)
	a.route(http.MethodPost, "/api/v1/workflows/{workflow_id}/actions", familyWriter, a.handleWorkflowAction)
	a.route(http.MethodGet, "/api/v1/admin/workflows/{workflow_id}/export", familyAdmin, a.handleWorkflowExport)
	a.registerStudio()
}

// caller is the authenticated account as the workflow service's actor.
func workflowCaller(p *Principal) *workflow.Caller {
	if p == nil || p.Account == nil {
		return nil
	}
	return &workflow.Caller{AccountID: p.Account.AccountID, Permissions: p.Account.Permissions}
}

// writeWorkflowError answers a workflow error with its code's status;
// anything else goes through writeFailure (event codes, storage).
func (a *api) writeWorkflowError(w http.ResponseWriter, r *http.Request, err error) {
	var we *workflow.Error
	if !errors.As(err, &we) {
		a.writeFailure(w, r, err)
		return
	}
	status := http.StatusBadRequest
	switch we.Code {
	case workflow.CodeNotFound:
		status = http.StatusNotFound
	case workflow.CodeForbidden:
		status = http.StatusForbidden
	case workflow.CodeConflict, workflow.CodeIdempotencyConflict:
		status = http.StatusConflict
	}
	a.s.writeError(w, r, status, we.Code, we.Message, we.Details)
}

func (a *api) handleWorkflowInbox(w http.ResponseWriter, r *http.Request, p *Principal) {
	f, err := workflow.ParseFilter(r.URL.Query().Get)
	if err != nil {
		a.writeWorkflowError(w, r, err)
		return
	}
	in, err := a.cfg.Workflows.List(r.Context(), p.Tenant, f)
	if err != nil {
		a.writeWorkflowError(w, r, err)
		return
	}
	a.s.writeData(w, r, http.StatusOK, in.JSON())
}

func (a *api) handleWorkflowDetail(w http.ResponseWriter, r *http.Request, p *Principal) {
	d, err := a.cfg.Workflows.Get(r.Context(), p.Tenant, pathParam(r, "workflow_id"))
	if err != nil {
		a.writeWorkflowError(w, r, err)
		return
	}
	a.s.writeData(w, r, http.StatusOK, d.JSON())
}

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 200

func (a *api) handleWorkflowAction(w http.ResponseWriter, r *http.Request, p *Principal) {
	body, ok := a.readJSONBody(w, r)
	if !ok {
		return
	}
	var raw map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || raw == nil {
		a.s.writeError(w, r, http.StatusBadRequest, "invalid_argument", "the body must be a JSON object", nil)
		return
	}
	text := func(k string) string {
		switch v := raw[k].(type) {
		case string:
			return v
		case json.Number:
			return v.String()
		}
		return ""
	}
	key := strings.TrimSpace(r.Header.Get("Idempotency-Key"))
	if len(key) > maxIdempotencyKey {
		a.s.writeError(w, r, http.StatusBadRequest, "invalid_argument", "Idempotency-Key must be at most "+strconv.Itoa(maxIdempotencyKey)+" bytes", nil)
		return
	}
	req := workflow.ActionRequest{
		Action: text("action"), Reason: text("reason"), Note: text("note"), Evidence: raw["evidence"],
		AssignedAccountID: text("assigned_account_id"), AssignedRole: text("assigned_role"), ConfirmText: text("confirm_text"),
		IdempotencyKey: key, RequestID: requestID(r.Context()),
	}
	res, err := a.cfg.Workflows.Act(r.Context(), p.Tenant, pathParam(r, "workflow_id"), workflowCaller(p), req)
	if err != nil {
		a.writeWorkflowError(w, r, err)
		return
	}
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	a.s.writeData(w, r, http.StatusOK, res.JSON())
}

// handleWorkflowExport checks workflow_export before looking the item up
// (so a caller without it learns nothing about which ids exist). The
// export carries every notification, ExportPage at a time (?page=N).
func (a *api) handleWorkflowExport(w http.ResponseWriter, r *http.Request, p *Principal) {
	if !a.requirePermission(w, r, p, workflow.PermExport) {
		return
	}
	page := 1
	if s := r.URL.Query().Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			a.s.writeError(w, r, http.StatusBadRequest, "invalid_argument", "page must be a positive integer", nil)
			return
		}
		page = n
	}
	out, err := a.cfg.Workflows.Export(r.Context(), p.Tenant, pathParam(r, "workflow_id"), page)
	if err != nil {
		a.writeWorkflowError(w, r, err)
		return
	}
	a.s.writeData(w, r, http.StatusOK, out)
}
