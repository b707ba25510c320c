package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/decisiongraph/dg/pkg/event"
	"github.com/decisiongraph/dg/pkg/store"
	"github.com/jackc/pgx/v5/pgxpool"
)

// tamperedLog builds a verified log of two tenants (three traces, 24
// events) and returns it with the guard still on.
func tamperedLog(t *testing.T) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	s, pool := newTestStore(t, store.Options{})
	ctx := context.Background()
	for i, tenant := range []string{"a", "b", "a"} {
		for seq, typ := range traceMix {
			if _, err := s.Append(ctx, tenant, env(fmt.Sprintf("tr%d", i), int64(seq), typ)); err != nil {
				t.Fatal(err)
			}
		}
	}
	rep, err := s.Verify(ctx, store.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, rep)
	return s, pool
}

// rawSQL runs statements with the append-only guard disabled, as an
// attacker or a botched repair with superuser rights would.
func rawSQL(t *testing.T, pool *pgxpool.Pool, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	all := append([]string{`ALTER TABLE dg_event_log DISABLE TRIGGER dg_event_log_append_only`}, stmts...)
	all = append(all, `ALTER TABLE dg_event_log ENABLE TRIGGER dg_event_log_append_only`)
	for _, q := range all {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		stmts  []string
		tenant string
		first  int64
		kind   string
	}{
		{name: "payload edited", first: 11, kind: store.ProblemPayloadHash, stmts: []string{
			`UPDATE dg_event_log SET payload = '{"outcome":"failure"}' WHERE log_seq = 11`}},
		{name: "payload edited, tenant filter", tenant: "b", first: 11, kind: store.ProblemPayloadHash, stmts: []string{
			`UPDATE dg_event_log SET payload = '{"outcome":"failure"}' WHERE log_seq = 11`}},
		{name: "payload and its hash edited", first: 10, kind: store.ProblemEventHash, stmts: []string{
			`UPDATE dg_event_log SET payload = '{"input_id":"forged","source":{"system":"crm","object_type":"o","object_id":"1"},"facts":[]}',
			   payload_hash = 'sha256:' || encode(sha256('{"facts":[],"input_id":"forged","source":{"object_id":"1","object_type":"o","system":"crm"}}'::bytea), 'hex')
			 WHERE log_seq = 10`}},
		{name: "row deleted", first: 6, kind: store.ProblemLogSeqGap, stmts: []string{
			`DELETE FROM dg_event_log WHERE log_seq = 6`}},
		{name: "last row deleted", first: 24, kind: store.ProblemChainHead, stmts: []string{
			`DELETE FROM dg_event_log WHERE log_seq = 24`}},
		{name: "two rows swapped", first: 3, kind: store.ProblemEventHash, stmts: []string{
			`UPDATE dg_event_log SET log_seq = -log_seq WHERE log_seq IN (3, 4)`,
			`UPDATE dg_event_log SET log_seq = 4 WHERE log_seq = -3`,
			`UPDATE dg_event_log SET log_seq = 3 WHERE log_seq = -4`}},
		{name: "trace_seq edited", first: 20, kind: store.ProblemEventHash, stmts: []string{
			`UPDATE dg_event_log SET trace_seq = 9 WHERE log_seq = 20`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, pool := tamperedLog(t)
			if c.name == "two rows swapped" {
				// log_seq >= 1 is a check constraint; drop it for the swap.
				rawSQL(t, pool, `ALTER TABLE dg_event_log DROP CONSTRAINT dg_event_log_log_seq_check`)
			}
			rawSQL(t, pool, c.stmts...)
			rep, err := s.Verify(context.Background(), store.VerifyOptions{Tenant: c.tenant})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK || rep.FirstBad == nil {
				t.Fatalf("verify passed a tampered log: %+v", rep)
			}
			if rep.FirstBad.LogSeq != c.first || rep.FirstBad.Kind != c.kind {
				t.Fatalf("first bad: log_seq %d %s (%s); want log_seq %d %s", rep.FirstBad.LogSeq, rep.FirstBad.Kind, rep.FirstBad.Message, c.first, c.kind)
			}
		})
	}
}

func TestVerifyReportsTrace(t *testing.T) {
	t.Parallel()
	s, _ := newTestStore(t, store.Options{})
	ctx := context.Background()
	if _, err := s.Append(ctx, "acme", env("x", 0, event.TypeTraceStarted)); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(ctx, store.VerifyOptions{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	mustOK(t, rep)
	if rep.Events != 1 || rep.Traces != 1 || len(rep.Tenants) != 1 || !rep.Tenants[0].HeadMatches {
		t.Fatalf("report %+v", rep)
	}
}
