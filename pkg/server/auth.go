package server

import (
	"net/http"
	"strings"
)

// authenticate applies the checks of HTTP spec §3.2 in their order:
//
//  1. x-tenant-id missing or blank        -> 400 invalid_argument
//  2. Authorization missing               -> 401 unauthorized
//  3. not "Bearer <token>"                -> 401 unauthorized
//  4. token of no account                 -> 401 unauthorized
//  5. account not allowed in the tenant   -> 403 forbidden
//  6. account has none of the family's roles -> 403 forbidden
//
// Only the first occurrence of each header counts. The accounts are read
// from the registry on every request, so a reload applies at once.
func (a *api) authenticate(w http.ResponseWriter, r *http.Request, fam family) (*Principal, bool) {
	lf := logFieldsFrom(r.Context())
	tenant := strings.TrimSpace(r.Header.Get("x-tenant-id"))
	if tenant == "" {
		a.s.writeError(w, r, http.StatusBadRequest, "invalid_argument", "x-tenant-id header is required", nil)
		return nil, false
	}
	if lf != nil {
		lf.tenant = tenant
	}
	authz, present := firstHeader(r, "Authorization")
	if !present {
		a.s.writeError(w, r, http.StatusUnauthorized, "unauthorized", "Authentication required", nil)
		return nil, false
	}
	scheme, rest, _ := strings.Cut(authz, " ")
	token := strings.TrimSpace(rest)
	if scheme != "Bearer" || token == "" {
		a.s.writeError(w, r, http.StatusUnauthorized, "unauthorized", "Authorization header must use Bearer token format", nil)
		return nil, false
	}
	acct := a.cfg.Accounts.Current().Lookup(token)
	if acct == nil {
		a.s.writeError(w, r, http.StatusUnauthorized, "unauthorized", "Unknown service account token", nil)
		return nil, false
	}
	if lf != nil {
		lf.account = acct.AccountID
	}
	if !acct.AllowsTenant(tenant) {
		a.s.writeError(w, r, http.StatusForbidden, "forbidden", "Service account cannot access tenant "+tenant, nil)
		return nil, false
	}
	if !acct.HasAnyRole(fam.roles...) {
		a.s.writeError(w, r, http.StatusForbidden, "forbidden", "Service account lacks required role", nil)
		return nil, false
	}
	return &Principal{Account: acct, Tenant: tenant}, true
}

// firstHeader returns the first value of a header and whether it was sent
// at all (an empty value still counts as sent).
func firstHeader(r *http.Request, name string) (string, bool) {
	vs := r.Header.Values(name)
	if len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

// requirePermission answers 403 unless the caller holds permission (the
// second authorization layer, §3.5). For handlers of later routes.
func (a *api) requirePermission(w http.ResponseWriter, r *http.Request, p *Principal, permission string) bool {
	if p == nil || p.Account == nil {
		a.s.writeError(w, r, http.StatusForbidden, "forbidden", "Service account context is required for this action", nil)
		return false
	}
	if !p.Account.Can(permission) {
		a.s.writeError(w, r, http.StatusForbidden, "forbidden", "Service account lacks "+permission+" permission", nil)
		return false
	}
	return true
}
