package workflow

import (
	"bytes"
	"encoding/json"

	"github.com/decisiongraph/dg/pkg/event"
)

// decodeObject decodes a JSON object keeping numbers as json.Number; bad
// input gives an empty map. Event payloads and stored documents go
// through event.DecodePayload (the event package's single-pass decoder,
// which builds the same values as encoding/json with UseNumber); what it
// refuses (it is stricter: invalid UTF-8, lone surrogates, deep nesting,
// trailing data) is decoded by encoding/json, so the result is always
// encoding/json's.
func decodeObject(b []byte) map[string]any {
	if m, err := event.DecodePayload(b); err == nil {
		return m
	}
	return decodeObjectStd(b)
}

// decodeObjectStd is decodeObject by encoding/json.
func decodeObjectStd(b []byte) map[string]any {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return map[string]any{}
	}
	return m
}
