package store_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
)

type outcome struct {
	code   string
	replay bool
	ev     event.StoredEvent
}

// appendOneByOne is the reference: Append for each envelope in turn.
func appendOneByOne(l *store.MemLog, tenant string, envs []event.Envelope) []outcome {
	out := make([]outcome, len(envs))
	for i := range envs {
		ev, replay, err := l.Append(tenant, &envs[i])
		out[i] = outcome{code: codeOf(err), replay: replay}
		if ev != nil {
			out[i].ev = *ev
		}
	}
	return out
}

// appendAllResuming uses AppendAll and, after each refused envelope, goes
// on with the rest, so every envelope gets an outcome.
func appendAllResuming(t *testing.T, l *store.MemLog, tenant string, envs []event.Envelope) []outcome {
	out := make([]outcome, len(envs))
	for start := 0; start < len(envs); {
		n, failed, err := l.AppendAll(tenant, envs[start:], func(i int, ev *event.StoredEvent, replay bool) {
			out[start+i] = outcome{code: "ok", replay: replay, ev: *ev}
		})
		news := 0
		for _, o := range out[start : start+failed] {
			if !o.replay {
				news++
			}
		}
		if n != news {
			t.Fatalf("AppendAll reported %d new events, onEach saw %d", n, news)
		}
		if failed == len(envs)-start {
			if err != nil {
				t.Fatalf("AppendAll: error %v without a failed index", err)
			}
			break
		}
		out[start+failed] = outcome{code: codeOf(err)}
		start += failed + 1
	}
	return out
}

func sameOutcomes(t *testing.T, got, want []outcome) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d outcomes, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		g.ev.RecordedAt = w.ev.RecordedAt // the append clock is not compared
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("envelope %d: AppendAll %+v\nAppend one by one %+v", i, got[i], want[i])
		}
	}
}

// TestMemLogAppendAllMatchesAppend: AppendAll gives every envelope the
// outcome Append one by one gives (rule steps with every kind of refusal,
// a synthetic log with retries, Go-typed and -0 payloads), and the two logs
// end up identical.
func TestMemLogAppendAllMatchesAppend(t *testing.T) {
	var steps []event.Envelope
	for _, st := range ruleSteps() {
		if st.tenant == "" {
			steps = append(steps, *st.env)
		}
	}
	synth := projection.Synthetic(projection.SynthOptions{Seed: 5, Traces: 300, Retries: 0.05})
	// Payloads built in Go and a -0 are stored as their canonical JSON reads
	// back: json.Number, []any, map[string]any, 0.
	synth[0].Payload["extra"] = map[string]any{"ints": []string{"a"}, "n": 7, "z": json.Number("-0"), "m": map[string]string{"k": "v"}}
	synth[1].Payload["z"] = json.Number("-0")
	// A refused envelope in the middle of a long run.
	bad := synth[700]
	bad.TraceSeq += 3
	withBad := append(append(append([]event.Envelope{}, synth[:1000]...), bad), synth[1000:]...)
	cases := map[string][]event.Envelope{"rule steps": steps, "synthetic": synth, "refusal mid-way": withBad}
	for name, envs := range cases {
		t.Run(name, func(t *testing.T) {
			a, b := store.NewMemLog(event.Options{}), store.NewMemLog(event.Options{})
			want := appendOneByOne(a, "acme", cloneEnvs(envs))
			got := appendAllResuming(t, b, "acme", cloneEnvs(envs))
			sameOutcomes(t, got, want)
			ea, eb := a.Events("", 0, 0), b.Events("", 0, 0)
			if len(ea) != len(eb) {
				t.Fatalf("%d vs %d events", len(eb), len(ea))
			}
			for i := range ea {
				x, y := *ea[i], *eb[i]
				x.RecordedAt = y.RecordedAt
				if !reflect.DeepEqual(x, y) {
					t.Fatalf("stored event %d differs:\n%+v\n%+v", i, y, x)
				}
			}
			if a.ChainHead("acme") != b.ChainHead("acme") {
				t.Fatalf("chain heads differ")
			}
		})
	}
}

// cloneEnvs copies envelopes deeply enough that two logs never share a
// payload map.
func cloneEnvs(envs []event.Envelope) []event.Envelope {
	out := make([]event.Envelope, len(envs))
	for i, e := range envs {
		out[i] = e
		out[i].Payload = deepCopy(e.Payload).(map[string]any)
	}
	return out
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}
