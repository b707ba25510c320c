package server

import (
	"fmt"
	"net/http"

	"github.com/decisiongraph/dg/pkg/projection"
)

// handlePrecedents is GET /api/v1/precedents (§8.6): finished traces,
// newest first, optionally joined to the precedent index by policy. A
// parameter sent empty is a filter value that matches nothing (as in the
// reference), so such a search answers an empty list.
func (a *api) handlePrecedents(w http.ResponseWriter, r *http.Request, p *Principal) {
	var q projection.PrecedentQuery
	empty := false
	for _, f := range []struct {
		key string
		dst *string
	}{{"policy_id", &q.PolicyID}, {"policy_version", &q.PolicyVersion}, {"entity_type", &q.EntityType}, {"entity_id", &q.EntityID}, {"outcome", &q.Outcome}} {
		if v, has := queryString(r, f.key); has {
			*f.dst = v
			empty = empty || v == ""
		}
	}
	_, hasPolicy := queryString(r, "policy_id")
	_, hasVersion := queryString(r, "policy_version")
	_, hasEntityType := queryString(r, "entity_type")
	_, hasEntityID := queryString(r, "entity_id")
	if hasVersion && !hasPolicy {
		a.badArg(w, r, "policy_version", "policy_version requires policy_id")
		return
	}
	if hasEntityID && !hasEntityType {
		a.badArg(w, r, "entity_id", "entity_id requires entity_type")
		return
	}
	limit, has, ok := a.queryInt(w, r, "limit")
	if !ok {
		return
	}
	if !has {
		limit = apiDefaultLimit
	}
	if limit < 1 || limit > projection.MaxQueryLimit {
		a.badArg(w, r, "limit", fmt.Sprintf("limit must be between 1 and %d", projection.MaxQueryLimit))
		return
	}
	q.Limit = int(limit)
	if empty {
		a.s.writeData(w, r, http.StatusOK, map[string]any{"precedents": []projection.PrecedentHit{}})
		return
	}
	ctx, span := a.s.cfg.Telemetry.span(r.Context(), "projection.find_precedents")
	hits, err := a.cfg.Projections.PG.FindPrecedents(ctx, p.Tenant, q)
	span.End()
	if err != nil {
		a.writeFailure(w, r, err)
		return
	}
	a.s.writeData(w, r, http.StatusOK, map[string]any{"precedents": hits})
}
