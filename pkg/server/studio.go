package server

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/decisiongraph/dg/pkg/workflow"
)

// The workflow studio routes (HTTP spec §8.10).
func (a *api) registerStudio() {
	a.route(http.MethodGet, "/api/v1/workflow-studio/templates", familyReader, a.handleStudioTemplates)
	a.route(http.MethodGet, "/api/v1/workflow-studio/traces/{trace_id}", familyReader, a.handleStudioTrace)
	a.route(http.MethodPost, "/api/v1/workflow-studio/traces/{trace_id}/reviews", familyWriter, a.handleStudioStartReview)
}

func (a *api) handleStudioTemplates(w http.ResponseWriter, r *http.Request, _ *Principal) {
	a.s.writeData(w, r, http.StatusOK, map[string]any{"templates": workflow.Templates()})
}

func (a *api) handleStudioTrace(w http.ResponseWriter, r *http.Request, p *Principal) {
	ov, err := a.cfg.Workflows.TraceOverview(r.Context(), p.Tenant, pathParam(r, "trace_id"), r.URL.Query().Get("template_id"))
	if err != nil {
		a.writeWorkflowError(w, r, err)
		return
	}
	a.s.writeData(w, r, http.StatusOK, ov.Data)
}

func (a *api) handleStudioStartReview(w http.ResponseWriter, r *http.Request, p *Principal) {
	body, ok := a.readJSONBody(w, r)
	if !ok {
		return
	}
	var in struct {
		TemplateID string `json:"template_id"`
		Reason     string `json:"reason"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&in); err != nil {
		a.s.writeError(w, r, http.StatusBadRequest, "invalid_argument", "the body must be a JSON object with string reason and template_id", nil)
		return
	}
	res, err := a.cfg.Workflows.StartReview(r.Context(), p.Tenant, pathParam(r, "trace_id"), workflowCaller(p), in.TemplateID, in.Reason, requestID(r.Context()))
	if err != nil {
		a.writeWorkflowError(w, r, err)
		return
	}
	a.s.writeData(w, r, http.StatusCreated, res.JSON())
}
