package server

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"
)

// router matches requests on the escaped path, split on "/" before each
// segment is percent-decoded, so an encoded %2F stays inside one path
// parameter (workflow ids routinely contain ':' and may contain '/').
// Unknown paths and wrong methods get the standard error envelope.
type router struct {
	routes []route
	s      *Server
}

type route struct {
	method   string
	segments []string // literal segments, or "{name}" for a parameter
	handler  http.HandlerFunc
}

type paramsKey struct{}

// pathParam returns the decoded value of a {name} segment.
func pathParam(r *http.Request, name string) string {
	if st := stateOf(r.Context()); st != nil {
		return st.params[name]
	}
	p, _ := r.Context().Value(paramsKey{}).(map[string]string)
	return p[name]
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func (rt *router) handle(method, pattern string, h http.HandlerFunc) {
	rt.routes = append(rt.routes, route{method: method, segments: splitPath(pattern), handler: h})
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs := splitPath(r.URL.EscapedPath())
	var allowed []string
	for _, rte := range rt.routes {
		params, ok := rte.match(segs)
		if !ok {
			continue
		}
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet // HEAD is served as GET, as the reference does
		}
		if rte.method != method {
			allowed = append(allowed, rte.method)
			continue
		}
		if params == nil && len(rte.segments) > 0 && hasParams(rte.segments) {
			rt.s.writeError(w, r, http.StatusBadRequest, "invalid_argument", "malformed path parameter", nil)
			return
		}
		if params != nil {
			for _, v := range params {
				if !cleanText(v) {
					rt.s.writeError(w, r, http.StatusBadRequest, "invalid_argument", "path parameters must be valid UTF-8 without NUL bytes", nil)
					return
				}
			}
			if st := stateOf(r.Context()); st != nil {
				st.params = params
			} else {
				r = r.WithContext(context.WithValue(r.Context(), paramsKey{}, params))
			}
		}
		if !cleanQuery(r) {
			rt.s.writeError(w, r, http.StatusBadRequest, "invalid_argument", "query parameters must be valid UTF-8 without NUL bytes", nil)
			return
		}
		rte.handler(w, r)
		return
	}
	if len(allowed) > 0 {
		sort.Strings(allowed)
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		rt.s.writeError(w, r, http.StatusMethodNotAllowed, "method_not_allowed",
			"method "+r.Method+" is not allowed here; use "+strings.Join(allowed, " or "), nil)
		return
	}
	rt.s.writeError(w, r, http.StatusNotFound, "not_found", "no route for "+r.URL.EscapedPath(), nil)
}

// cleanText reports whether s can reach PostgreSQL as text: valid UTF-8
// without NUL bytes. Anything else would fail in the database and come
// back as a 503 storage error instead of the caller's 400.
func cleanText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// cleanQuery checks every query parameter name and value with cleanText.
func cleanQuery(r *http.Request) bool {
	if r.URL.RawQuery == "" {
		return true
	}
	for k, vs := range r.URL.Query() {
		if !cleanText(k) {
			return false
		}
		for _, v := range vs {
			if !cleanText(v) {
				return false
			}
		}
	}
	return true
}

func hasParams(segs []string) bool {
	for _, s := range segs {
		if strings.HasPrefix(s, "{") {
			return true
		}
	}
	return false
}

// match returns the decoded parameters when segs fit the route. A segment
// that is not valid percent-encoding does not match.
func (rte route) match(segs []string) (map[string]string, bool) {
	if len(segs) != len(rte.segments) {
		return nil, false
	}
	var params map[string]string
	for i, want := range rte.segments {
		if strings.HasPrefix(want, "{") && strings.HasSuffix(want, "}") {
			v, err := url.PathUnescape(segs[i])
			if err != nil || v == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[want[1:len(want)-1]] = v
			continue
		}
		if segs[i] != want {
			return nil, false
		}
	}
	return params, true
}
