package event

import (
	"encoding/json"
	"strings"
	"testing"
)

// validPayloads holds one acceptable payload per event type, as JSON.
var validPayloads = map[string]string{
	TypeTraceStarted:            `{"workflow":"renewal_discount","title":"Renewal","primary_entity":{"entity_type":"account","entity_id":"sf:acct:001","system":"salesforce"}}`,
	TypeInputObserved:           `{"input_id":"deal_size","source":{"system":"salesforce","object_type":"opportunity","object_id":"sf:opp:1","locator":null},"facts":[{"key":"amount","value":{"type":"decimal","value":"250000"},"as_of":null}]}`,
	TypeEntityObserved:          `{"entity":{"entity_type":"account","entity_id":"a1","system":null},"role":"primary","facts":[]}`,
	TypePolicyEvaluated:         `{"policy":{"policy_id":"discount","policy_version":"1.0"},"inputs":["deal_size"],"decision":"require_exception","violations":[{"code":"over"}]}`,
	TypeExceptionRequested:      `{"exception_id":"ex1","policy":{"policy_id":"discount","policy_version":"1.0"},"reason":"strategic"}`,
	TypeApprovalRecorded:        `{"approval_id":"ap1","subject":{"subject_type":"exception","subject_id":"ex1"},"approver":{"actor_type":"person","actor_id":"cfo"},"decision":"approved"}`,
	TypePrecedentCited:          `{"cited_trace_id":"t0","reason":"same customer","similarity_score":"0.93"}`,
	TypeActionProposed:          `{"action_id":"ac1","action_type":"update","target_entity":{"entity_type":"opportunity","entity_id":"o1"},"target_system":"salesforce","changes":[]}`,
	TypeActionCommitted:         `{"action_id":"ac1","status":"success"}`,
	TypeTraceFinished:           `{"outcome":"success"}`,
	TypeWorkflowReviewRequested: `{"template_id":"incident_review","reason":"check"}`,
}

// validEnvelope returns a valid envelope of the given type.
func validEnvelope(t testing.TB, eventType string) *Envelope {
	t.Helper()
	sub := "core"
	env := &Envelope{
		EventID:        "11111111-1111-1111-1111-111111111111",
		TraceID:        "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa",
		TraceSeq:       1,
		EventType:      eventType,
		OccurredAt:     "2025-12-31T10:00:00Z",
		Source:         Source{ProducerID: "renewal_service", System: "orchestrator", Subsystem: &sub},
		Actor:          Actor{ActorType: "agent", ActorID: "renewal_agent_v1"},
		IdempotencyKey: "start:sf:opp:123",
		SchemaVersion:  1,
		Tags:           []string{"renewal"},
	}
	if eventType == TypeTraceStarted {
		env.TraceSeq = 0
	}
	p, ok := validPayloads[eventType]
	if !ok {
		p = `{}`
	}
	env.Payload = mustDecode(t, p).(map[string]any)
	return env
}

func TestValidPayloadsPass(t *testing.T) {
	if len(validPayloads) != 11 {
		t.Fatalf("want a payload for each of the 11 types, have %d", len(validPayloads))
	}
	for _, typ := range Types() {
		for _, strict := range []bool{false, true} {
			if err := Validate(validEnvelope(t, typ), Options{Strict: strict}); err != nil {
				t.Errorf("%s (strict=%v): %v", typ, strict, err)
			}
		}
	}
}

func TestValidateEnvelopeFields(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Envelope)
		code   Code
		path   string
	}{
		{"blank event_id", func(e *Envelope) { e.EventID = " " }, CodeInvalidArgument, "$.event_id"},
		{"empty trace_id", func(e *Envelope) { e.TraceID = "" }, CodeInvalidArgument, "$.trace_id"},
		{"negative trace_seq", func(e *Envelope) { e.TraceSeq = -1 }, CodeInvalidArgument, "$.trace_seq"},
		{"occurred_at not a time", func(e *Envelope) { e.OccurredAt = "yesterday" }, CodeInvalidArgument, "$.occurred_at"},
		{"occurred_at without zone", func(e *Envelope) { e.OccurredAt = "2025-12-31T10:00:00" }, CodeInvalidArgument, "$.occurred_at"},
		{"occurred_at date only", func(e *Envelope) { e.OccurredAt = "2025-12-31" }, CodeInvalidArgument, "$.occurred_at"},
		{"occurred_at month 13", func(e *Envelope) { e.OccurredAt = "2025-13-01T00:00:00Z" }, CodeInvalidArgument, "$.occurred_at"},
		{"occurred_at empty", func(e *Envelope) { e.OccurredAt = "" }, CodeInvalidArgument, "$.occurred_at"},
		{"unknown actor_type", func(e *Envelope) { e.Actor.ActorType = "robot" }, CodeSchemaViolation, "$.actor.actor_type"},
		{"actor_type wrong case", func(e *Envelope) { e.Actor.ActorType = "Agent" }, CodeSchemaViolation, "$.actor.actor_type"},
		{"empty actor_type", func(e *Envelope) { e.Actor.ActorType = "" }, CodeSchemaViolation, "$.actor.actor_type"},
		{"empty actor_id", func(e *Envelope) { e.Actor.ActorID = "" }, CodeSchemaViolation, "$.actor.actor_id"},
		{"empty producer_id", func(e *Envelope) { e.Source.ProducerID = "" }, CodeSchemaViolation, "$.source.producer_id"},
		{"empty system", func(e *Envelope) { e.Source.System = "" }, CodeSchemaViolation, "$.source.system"},
		{"schema_version 0", func(e *Envelope) { e.SchemaVersion = 0 }, CodeSchemaViolation, "$.schema_version"},
		{"blank tag", func(e *Envelope) { e.Tags = []string{"ok", " "} }, CodeSchemaViolation, "$.tags[1]"},
		{"empty idempotency key", func(e *Envelope) { e.IdempotencyKey = "" }, CodeInvalidArgument, "$.idempotency_key"},
		{"idempotency key with NUL", func(e *Envelope) { e.IdempotencyKey = "a\x00b" }, CodeInvalidArgument, "$.idempotency_key"},
		{"idempotency key of 201 bytes", func(e *Envelope) { e.IdempotencyKey = strings.Repeat("k", 201) }, CodeInvalidArgument, "$.idempotency_key"},
		{"idempotency key of 101 two-byte runes", func(e *Envelope) { e.IdempotencyKey = strings.Repeat("é", 101) }, CodeInvalidArgument, "$.idempotency_key"},
		{"idempotency key of 199 bytes + 2-byte rune", func(e *Envelope) { e.IdempotencyKey = strings.Repeat("k", 199) + "é" }, CodeInvalidArgument, "$.idempotency_key"},
		{"unknown event_type", func(e *Envelope) { e.EventType = "TraceExploded" }, CodeSchemaViolation, "$.event_type"},
		{"event_type is case-sensitive", func(e *Envelope) { e.EventType = "tracestarted" }, CodeSchemaViolation, "$.event_type"},
		{"empty event_type", func(e *Envelope) { e.EventType = "" }, CodeSchemaViolation, "$.event_type"},
		{"nil payload", func(e *Envelope) { e.Payload = nil }, CodeSchemaViolation, "$.payload"},
		{"payload not JSON", func(e *Envelope) { e.Payload["x"] = "\xff" }, CodeInvalidArgument, "$.payload.x"},
		{"float in payload", func(e *Envelope) { e.Payload["amount"] = json.Number("1.0") }, CodeSchemaViolation, "$.payload.amount"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := validEnvelope(t, TypeTraceStarted)
			c.mutate(env)
			assertValidate(t, env, Options{}, c.code, c.path)
		})
	}
}

func TestIdempotencyKeyLimits(t *testing.T) {
	ok := []string{
		strings.Repeat("k", 200),
		strings.Repeat("é", 100), // 200 bytes, 100 runes
		" ",                      // whitespace-only is allowed
		"\t\n",
	}
	for _, k := range ok {
		env := validEnvelope(t, TypeTraceStarted)
		env.IdempotencyKey = k
		if err := Validate(env, Options{}); err != nil {
			t.Errorf("key of %d bytes %q rejected: %v", len(k), k, err)
		}
	}
	if MaxIdempotencyKeyBytes != 200 {
		t.Errorf("MaxIdempotencyKeyBytes = %d", MaxIdempotencyKeyBytes)
	}
}

func TestOccurredAtAccepted(t *testing.T) {
	for _, ts := range []string{"2025-12-31T10:00:00Z", "2025-12-31T10:00:00.123456Z", "2025-12-31T12:00:00+02:00", "2025-12-31T10:00:00.5-07:30"} {
		env := validEnvelope(t, TypeTraceStarted)
		env.OccurredAt = ts
		if err := Validate(env, Options{}); err != nil {
			t.Errorf("%s: %v", ts, err)
		}
	}
}

func TestActorTypesAccepted(t *testing.T) {
	for _, at := range []string{"agent", "person", "role", "system"} {
		env := validEnvelope(t, TypeTraceStarted)
		env.Actor.ActorType = at
		if err := Validate(env, Options{}); err != nil {
			t.Errorf("%s: %v", at, err)
		}
	}
}

// requiredPaths lists, per type, every runtime-required payload member
// (events spec §3.2) with its kind: s = non-empty string, o = object,
// l = array.
var requiredPaths = map[string][]struct{ path, kind string }{
	TypeTraceStarted:       {{"workflow", "s"}, {"title", "s"}, {"primary_entity", "o"}, {"primary_entity.entity_type", "s"}, {"primary_entity.entity_id", "s"}},
	TypeInputObserved:      {{"input_id", "s"}, {"source", "o"}, {"source.system", "s"}, {"source.object_type", "s"}, {"source.object_id", "s"}, {"facts", "l"}},
	TypeEntityObserved:     {{"entity", "o"}, {"entity.entity_type", "s"}, {"entity.entity_id", "s"}, {"role", "s"}, {"facts", "l"}},
	TypePolicyEvaluated:    {{"policy", "o"}, {"policy.policy_id", "s"}, {"policy.policy_version", "s"}, {"inputs", "l"}, {"decision", "s"}},
	TypeExceptionRequested: {{"exception_id", "s"}, {"policy", "o"}, {"policy.policy_id", "s"}, {"policy.policy_version", "s"}, {"reason", "s"}},
	TypeApprovalRecorded: {{"approval_id", "s"}, {"subject", "o"}, {"subject.subject_type", "s"}, {"subject.subject_id", "s"},
		{"approver", "o"}, {"approver.actor_type", "s"}, {"approver.actor_id", "s"}, {"decision", "s"}},
	TypePrecedentCited:          {{"cited_trace_id", "s"}, {"reason", "s"}},
	TypeActionProposed:          {{"action_id", "s"}, {"action_type", "s"}, {"target_entity", "o"}, {"target_entity.entity_type", "s"}, {"target_entity.entity_id", "s"}, {"target_system", "s"}, {"changes", "l"}},
	TypeActionCommitted:         {{"action_id", "s"}, {"status", "s"}},
	TypeTraceFinished:           {{"outcome", "s"}},
	TypeWorkflowReviewRequested: {{"template_id", "s"}},
}

// parentAndKey walks a dotted path inside a payload.
func parentAndKey(p map[string]any, path string) (map[string]any, string) {
	parts := strings.Split(path, ".")
	for _, k := range parts[:len(parts)-1] {
		p = p[k].(map[string]any)
	}
	return p, parts[len(parts)-1]
}

func TestValidatePayloadRequiredMembers(t *testing.T) {
	wrong := map[string][]any{
		"s": {"", json.Number("1"), true, nil, []any{"x"}, map[string]any{}},
		"o": {"x", json.Number("1"), nil, []any{}, false},
		"l": {"x", json.Number("1"), nil, map[string]any{}, true},
	}
	for typ, paths := range requiredPaths {
		for _, rp := range paths {
			want := "$.payload." + rp.path
			t.Run(typ+"/"+rp.path, func(t *testing.T) {
				env := validEnvelope(t, typ)
				parent, key := parentAndKey(env.Payload, rp.path)
				delete(parent, key)
				assertValidate(t, env, Options{}, CodeSchemaViolation, want)
				for _, bad := range wrong[rp.kind] {
					env := validEnvelope(t, typ)
					parent, key := parentAndKey(env.Payload, rp.path)
					parent[key] = bad
					assertValidate(t, env, Options{}, CodeSchemaViolation, want)
				}
			})
		}
	}
}

func TestValidatePayloadAcceptsWhatTheReferenceDoes(t *testing.T) {
	cases := map[string]func(p map[string]any){
		"extra keys are kept":           func(p map[string]any) { p["extra"] = map[string]any{"deep": []any{json.Number("1")}} },
		"whitespace-only string is set": func(p map[string]any) { p["workflow"] = " " },
		"primary_entity without system": func(p map[string]any) { delete(p["primary_entity"].(map[string]any), "system") },
		"big integer":                   func(p map[string]any) { p["n"] = json.Number("1234567890123456789012345678901234567890") },
		"negative zero":                 func(p map[string]any) { p["n"] = json.Number("-0") },
	}
	for name, mutate := range cases {
		env := validEnvelope(t, TypeTraceStarted)
		mutate(env.Payload)
		if err := Validate(env, Options{}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Nested items are not checked (facts of any shape are fine).
	env := validEnvelope(t, TypeInputObserved)
	env.Payload["facts"] = []any{"not a fact", json.Number("3"), nil}
	if err := Validate(env, Options{}); err != nil {
		t.Errorf("facts items: %v", err)
	}
}

func TestValidateStrictDomains(t *testing.T) {
	cases := []struct {
		typ, path string
		good      []string
		bad       string
	}{
		{TypeEntityObserved, "role", []string{"primary", "related"}, "secondary"},
		{TypePolicyEvaluated, "decision", []string{"allow", "deny", "require_exception"}, "maybe"},
		{TypeApprovalRecorded, "decision", []string{"approved", "rejected"}, "approve"},
		{TypeApprovalRecorded, "subject.subject_type", []string{"exception", "action", "override"}, "trace"},
		{TypeApprovalRecorded, "approver.actor_type", []string{"agent", "person", "role", "system"}, "robot"},
		{TypeActionCommitted, "status", []string{"success", "failure", "partial"}, "done"},
		{TypeTraceFinished, "outcome", []string{"success", "failure", "abandoned"}, "cancelled"},
	}
	for _, c := range cases {
		for _, g := range append(c.good, c.bad) {
			env := validEnvelope(t, c.typ)
			parent, key := parentAndKey(env.Payload, c.path)
			parent[key] = g
			if err := Validate(env, Options{}); err != nil {
				t.Errorf("%s %s=%q rejected by default: %v", c.typ, c.path, g, err)
			}
			err := Validate(env, Options{Strict: true})
			if g == c.bad {
				assertValidate(t, env, Options{Strict: true}, CodeSchemaViolation, "$.payload."+c.path)
			} else if err != nil {
				t.Errorf("%s %s=%q rejected in strict mode: %v", c.typ, c.path, g, err)
			}
		}
	}
	// PolicyEvaluated inputs must be strings, similarity_score a string or null.
	env := validEnvelope(t, TypePolicyEvaluated)
	env.Payload["inputs"] = []any{"a", json.Number("2")}
	if err := Validate(env, Options{}); err != nil {
		t.Errorf("non-string input rejected by default: %v", err)
	}
	assertValidate(t, env, Options{Strict: true}, CodeSchemaViolation, "$.payload.inputs[1]")

	env = validEnvelope(t, TypePrecedentCited)
	env.Payload["similarity_score"] = json.Number("93")
	if err := Validate(env, Options{}); err != nil {
		t.Errorf("integer similarity_score rejected by default: %v", err)
	}
	assertValidate(t, env, Options{Strict: true}, CodeSchemaViolation, "$.payload.similarity_score")
	env.Payload["similarity_score"] = nil
	if err := Validate(env, Options{Strict: true}); err != nil {
		t.Errorf("null similarity_score rejected: %v", err)
	}
}

func TestPIIPatterns(t *testing.T) {
	patterns := []string{
		"Bearer ", "xoxb-", "xoxp-", "xoxa-", "xoxr-", "sk-", "ghp_", "gho_",
		"ghu_", "ghs_", "ghr_", "-----BEGIN", "-----BEGIN PRIVATE KEY",
		"-----BEGIN RSA PRIVATE KEY", "-----BEGIN EC PRIVATE KEY",
		"-----BEGIN OPENSSH PRIVATE KEY", "AKIA", "ASIA", "api_key=", "apikey=",
		"api-key:", "password=", "passwd=", "secret=", "token=",
	}
	if len(patterns) != 25 || len(piiPatterns) != 25 {
		t.Fatalf("want 25 patterns, test has %d, package has %d", len(patterns), len(piiPatterns))
	}
	for _, p := range patterns {
		for _, variant := range []string{p, strings.ToLower(p), strings.ToUpper(p), swapCase(p)} {
			env := validEnvelope(t, TypeTraceStarted)
			env.Payload["note"] = "before " + variant + "after"
			assertValidate(t, env, Options{}, CodePIIPolicyViolation, "$.payload.note")
		}
	}
}

func swapCase(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 32
		case r >= 'A' && r <= 'Z':
			return r + 32
		}
		return r
	}, s)
}

func TestPIIOrdinaryWordsTheSpecRejects(t *testing.T) {
	for _, s := range []string{"dealdesk-agent", "task-1", "Asia Pacific", "bearer x", "risk-free", "Eurasia"} {
		env := validEnvelope(t, TypeTraceStarted)
		env.Payload["title"] = s
		assertValidate(t, env, Options{}, CodePIIPolicyViolation, "$.payload.title")
	}
	// Near misses pass: no trailing space after bearer, sk without dash.
	// The spec's list of consequences (events §5.3) also names "Malaysia",
	// but no pattern is a substring of "malaysia" ("asia" is not: m-a-l-a-
	// y-s-i-a), so the reference's own rule accepts it and so does dg
	// (docs/decisions.md, "Events").
	for _, s := range []string{"Malaysia", "MALAYSIA", "bearer", "desk_agent", "dealdesk_agent_service", "skills", "token", "api key"} {
		env := validEnvelope(t, TypeTraceStarted)
		env.Payload["title"] = s
		if err := Validate(env, Options{}); err != nil {
			t.Errorf("%q rejected: %v", s, err)
		}
	}
}

func TestPIIPythonLowerCasing(t *testing.T) {
	// U+212A KELVIN SIGN lower-cases to "k" in Python too: "AS\u212AIA"
	// is not a pattern but "\u212AIA" after "A" gives "akia".
	env := validEnvelope(t, TypeTraceStarted)
	env.Payload["title"] = "A\u212AIA"
	assertValidate(t, env, Options{}, CodePIIPolicyViolation, "$.payload.title")
	// U+0130 lower-cases to "i" + U+0307 in Python, so "AK\u0130A" is not
	// "akia" there; Go's ToLower alone would say it is.
	env = validEnvelope(t, TypeTraceStarted)
	env.Payload["title"] = "AK\u0130A"
	if err := Validate(env, Options{}); err != nil {
		t.Errorf("AKİA rejected: %v", err)
	}
}

func TestPIIScope(t *testing.T) {
	secret := "token=abc"
	scanned := []struct {
		path   string
		mutate func(*Envelope)
	}{
		{"$.payload.facts[0].value.value", func(e *Envelope) {
			e.EventType = TypeInputObserved
			e.Payload = mustDecode(t, validPayloads[TypeInputObserved]).(map[string]any)
			e.Payload["facts"].([]any)[0].(map[string]any)["value"].(map[string]any)["value"] = secret
		}},
		{"$.payload.primary_entity.entity_id", func(e *Envelope) { e.Payload["primary_entity"].(map[string]any)["entity_id"] = secret }},
		{"$.payload.list[1][0]", func(e *Envelope) { e.Payload["list"] = []any{"x", []any{secret}} }},
		{"$.tags[1]", func(e *Envelope) { e.Tags = []string{"ok", secret} }},
		{"$.actor.actor_id", func(e *Envelope) { e.Actor.ActorID = secret }},
		{"$.source.producer_id", func(e *Envelope) { e.Source.ProducerID = secret }},
		{"$.source.system", func(e *Envelope) { e.Source.System = secret }},
		{"$.source.subsystem", func(e *Envelope) { e.Source.Subsystem = &secret }},
		{"$.correlation_id", func(e *Envelope) { e.CorrelationID = &secret }},
		{"$.causation_event_id", func(e *Envelope) { e.CausationEventID = &secret }},
		{"$.idempotency_key", func(e *Envelope) { e.IdempotencyKey = secret }},
	}
	for _, c := range scanned {
		env := validEnvelope(t, TypeTraceStarted)
		c.mutate(env)
		assertValidate(t, env, Options{}, CodePIIPolicyViolation, c.path)
	}
	notScanned := []func(*Envelope){
		func(e *Envelope) { e.EventID = "sk-1" },
		func(e *Envelope) { e.TraceID = "task-7" },
		func(e *Envelope) { e.Payload["token=key"] = "object keys are not scanned" },
		func(e *Envelope) { e.Payload["n"] = json.Number("1") },
	}
	for i, mutate := range notScanned {
		env := validEnvelope(t, TypeTraceStarted)
		mutate(env)
		if err := Validate(env, Options{}); err != nil {
			t.Errorf("case %d: %v", i, err)
		}
	}
}

func TestValidateOrder(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Envelope)
		code   Code
		path   string
	}{
		{"envelope before idempotency key", func(e *Envelope) {
			e.Actor.ActorType = "robot"
			e.IdempotencyKey = ""
		}, CodeSchemaViolation, "$.actor.actor_type"},
		{"idempotency key before event type", func(e *Envelope) {
			e.IdempotencyKey = ""
			e.EventType = "Nope"
		}, CodeInvalidArgument, "$.idempotency_key"},
		{"payload not JSON before schema", func(e *Envelope) {
			e.EventType = "Nope"
			e.Payload["bad"] = make(chan int)
		}, CodeInvalidArgument, "$.payload.bad"},
		{"schema before PII", func(e *Envelope) {
			delete(e.Payload, "workflow")
			e.Payload["title"] = "sk-live"
		}, CodeSchemaViolation, "$.payload.workflow"},
		{"PII before float", func(e *Envelope) {
			e.Payload["amount"] = json.Number("1.5")
			e.Payload["title"] = "password=x"
		}, CodePIIPolicyViolation, "$.payload.title"},
		{"schema before float", func(e *Envelope) {
			e.Payload["amount"] = json.Number("1e3")
			e.Payload["workflow"] = ""
		}, CodeSchemaViolation, "$.payload.workflow"},
		{"float at depth", func(e *Envelope) {
			e.Payload["a"] = map[string]any{"b": []any{json.Number("1"), json.Number("-0.0")}}
		}, CodeSchemaViolation, "$.payload.a.b[1]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := validEnvelope(t, TypeTraceStarted)
			c.mutate(env)
			assertValidate(t, env, Options{}, c.code, c.path)
		})
	}
}

func TestValidateAndHash(t *testing.T) {
	env := validEnvelope(t, TypeTraceStarted)
	h, err := ValidateAndHash(env, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := PayloadHash(env.Payload)
	if h != want {
		t.Errorf("hash %s, want %s", h, want)
	}
	if err := Validate(nil, Options{}); err == nil || err.Code != CodeInvalidArgument {
		t.Errorf("nil envelope: %v", err)
	}
}

func assertValidate(t *testing.T, env *Envelope, opts Options, code Code, path string) {
	t.Helper()
	err := Validate(env, opts)
	if err == nil {
		t.Errorf("accepted, want %s at %s", code, path)
		return
	}
	if err.Code != code || err.Path != path {
		t.Errorf("got %s at %q (%s), want %s at %q", err.Code, err.Path, err.Message, code, path)
	}
	if !strings.Contains(err.Error(), string(code)) || !strings.Contains(err.Error(), path) {
		t.Errorf("Error() = %q lacks code or path", err.Error())
	}
}

func TestPIINamesTheFirstPatternInSortedOrder(t *testing.T) {
	// Sorted as the reference spells the patterns: upper case first, so
	// "ASIA" comes before "api_key=".
	cases := map[string]string{
		"-----BEGIN RSA PRIVATE KEY-----": "-----BEGIN",
		"api_key=sk-123":                  "api_key=",
		"token=1 password=2":              "password=",
		"x ASIA and AKIA":                 "AKIA",
		"asia api_key=":                   "ASIA",
		"Bearer sk-":                      "Bearer ",
		"plain text":                      "",
		"":                                "",
		"sk":                              "",
		"é sk-":                           "sk-",
	}
	for in, want := range cases {
		if got := piiMatch(in); got != want {
			t.Errorf("piiMatch(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidateCanonical(t *testing.T) {
	env := validEnvelope(t, TypeTraceStarted)
	env.Payload["n"] = json.Number("-0")
	canon, err := ValidateCanonical(env, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := CanonicalJSON(env.Payload)
	if string(canon) != string(want) || !strings.Contains(string(canon), `"n":0`) {
		t.Errorf("canonical %s, want %s", canon, want)
	}
	env.Payload["f"] = json.Number("2.5")
	if _, err := ValidateCanonical(env, Options{}); err == nil || err.Path != "$.payload.f" {
		t.Errorf("float: %v", err)
	}
}

func TestValidateGoShapedPayloads(t *testing.T) {
	env := validEnvelope(t, TypePolicyEvaluated)
	env.Payload["inputs"] = []string{"deal_size"}
	env.Payload["policy"] = map[string]string{"policy_id": "p", "policy_version": "1"}
	if err := Validate(env, Options{Strict: true}); err != nil {
		t.Errorf("Go-shaped payload: %v", err)
	}
	env.Payload["policy"] = map[string]string{"policy_id": "p"}
	assertValidate(t, env, Options{}, CodeSchemaViolation, "$.payload.policy.policy_version")
	env.Payload["policy"] = map[string]string{"policy_id": "p", "policy_version": "1"}
	env.Payload["inputs"] = []string(nil)
	assertValidate(t, env, Options{}, CodeSchemaViolation, "$.payload.inputs")
	env.Payload["inputs"] = []string{"token=x"}
	assertValidate(t, env, Options{}, CodePIIPolicyViolation, "$.payload.inputs[0]")
}

func TestApplyDefaults(t *testing.T) {
	env := validEnvelope(t, TypeTraceStarted)
	env.SchemaVersion, env.Tags = 0, nil
	assertValidate(t, env, Options{}, CodeSchemaViolation, "$.schema_version")
	env.ApplyDefaults()
	if env.SchemaVersion != 1 || env.Tags == nil || len(env.Tags) != 0 {
		t.Errorf("defaults: %d %#v", env.SchemaVersion, env.Tags)
	}
	if err := Validate(env, Options{}); err != nil {
		t.Error(err)
	}
	env.SchemaVersion = 4
	env.ApplyDefaults()
	if env.SchemaVersion != 4 {
		t.Error("ApplyDefaults overwrote a set schema_version")
	}
}

func TestValidateRejectsInvalidUTF8InEnvelope(t *testing.T) {
	bad := "ok\xff"
	cases := map[string]func(*Envelope){
		"$.event_id":           func(e *Envelope) { e.EventID = bad },
		"$.trace_id":           func(e *Envelope) { e.TraceID = bad },
		"$.event_type":         func(e *Envelope) { e.EventType = bad },
		"$.source.subsystem":   func(e *Envelope) { e.Source.Subsystem = &bad },
		"$.actor.actor_id":     func(e *Envelope) { e.Actor.ActorID = bad },
		"$.causation_event_id": func(e *Envelope) { e.CausationEventID = &bad },
		"$.idempotency_key":    func(e *Envelope) { e.IdempotencyKey = bad },
		"$.tags[0]":            func(e *Envelope) { e.Tags = []string{bad} },
	}
	for path, mutate := range cases {
		env := validEnvelope(t, TypeTraceStarted)
		mutate(env)
		assertValidate(t, env, Options{}, CodeInvalidArgument, path)
	}
}
