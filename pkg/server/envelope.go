package server

import (
	"encoding/json"
	"net/http"
)

// errorBody is the standard error envelope: every error response dg sends,
// including unknown routes, wrong methods and panics, has this shape.
type errorBody struct {
	Error     errorDetail `json:"error"`
	RequestID string      `json:"request_id"`
}

type errorDetail struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

type successBody struct {
	Data      any    `json:"data"`
	RequestID string `json:"request_id"`
}

// writeJSON writes v with the given status. Encoding errors cannot be
// reported to the client once the header is out, so they are logged.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.log.WarnContext(r.Context(), "write response", "err", err)
	}
}

// writeError writes the error envelope.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, status int, code, message string, details map[string]any) {
	if details == nil {
		details = map[string]any{}
	}
	s.writeJSON(w, r, status, errorBody{
		Error:     errorDetail{Code: code, Message: message, Details: details},
		RequestID: requestID(r.Context()),
	})
}

// writeData writes the success envelope.
func (s *Server) writeData(w http.ResponseWriter, r *http.Request, status int, data any) {
	s.writeJSON(w, r, status, successBody{Data: data, RequestID: requestID(r.Context())})
}
