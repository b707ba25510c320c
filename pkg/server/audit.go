package server

import (
	"net/http"

	"github.com/decisiongraph/dg/pkg/audit"
)

// audit records an API decision with the request's caller, tenant and
// request id filled in. An audit failure is logged and never fails the
// request. For the replay and workflow handlers.
func (a *api) audit(r *http.Request, p *Principal, e audit.Entry) {
	if p != nil {
		if e.Tenant == "" {
			e.Tenant = p.Tenant
		}
		if e.ActorID == "" && p.Account != nil {
			e.ActorID = p.Account.AccountID
		}
	}
	if e.RequestID == "" {
		e.RequestID = requestID(r.Context())
	}
	log := a.cfg.Audit
	if log == nil {
		log = audit.New(nil, a.s.log)
	}
	if err := log.Record(r.Context(), e); err != nil {
		a.s.log.ErrorContext(r.Context(), "audit write failed; the action itself stands", append(logAttrs(r), "action", e.Action, "err", err)...)
	}
}
