package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/decisiongraph/dg/internal/pgtest"
)

func goldenFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, sc := range []string{"dealdesk", "renewal", "support"} {
		out = append(out, filepath.Join(goldenDir(t), sc, "events.json"))
	}
	return out
}

func TestMigrateCommands(t *testing.T) {
	t.Parallel()
	u := pgtest.EmptyURL(t)
	env := map[string]string{"DATABASE_URL": u}
	code, out, errs := runManifestCmd(t, env, "migrate", "status")
	if code != exitCheckFailed || !strings.Contains(out, "pending") {
		t.Fatalf("status before migrate: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runManifestCmd(t, env, "migrate")
	if code != exitOK || !strings.Contains(out, "applied 0001_event_log") {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runManifestCmd(t, nil, "migrate", "--database-url", u, "-o", "json")
	var rep struct {
		Applied []migrationRef `json:"applied"`
		Current int            `json:"current_version"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Applied) != 0 || rep.Current < 1 {
		t.Fatalf("second migrate: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runManifestCmd(t, env, "migrate", "status", "-o", "json")
	if code != exitOK || !strings.Contains(out, `"pending": 0`) {
		t.Fatalf("status after migrate: exit %d\n%s%s", code, out, errs)
	}
	// A schema from a newer dg is refused with a clear message.
	conn, err := pgx.Connect(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, 'future', 'x')`); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runManifestCmd(t, env, "migrate")
	if code != exitOperational || !strings.Contains(errs, "newer than this dg") {
		t.Fatalf("migrate on a newer schema: exit %d\n%s", code, errs)
	}
	code, out, _ = runManifestCmd(t, env, "migrate", "status")
	if code != exitCheckFailed || !strings.Contains(out, "unknown to this dg") {
		t.Fatalf("status of a newer schema: exit %d\n%s", code, out)
	}
}

func TestEventsCommands(t *testing.T) {
	t.Parallel()
	u := pgtest.NewURL(t)
	env := map[string]string{"DATABASE_URL": u}
	files := goldenFiles(t)

	code, out, errs := runManifestCmd(t, env, append([]string{"events", "append", "--tenant", "acme"}, files...)...)
	if code != exitOK || !strings.Contains(out, "26 appended, 0 replayed, 0 refused") || !strings.Contains(out, "appended  log_seq 26") {
		t.Fatalf("append: exit %d\n%s%s", code, out, errs)
	}
	// Appending the same files again replays every event.
	code, out, errs = runManifestCmd(t, env, append([]string{"events", "append", "--tenant", "acme", "-o", "json"}, files[0])...)
	var rep appendReport
	if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil || rep.Replayed != 9 || rep.Appended != 0 || rep.Events[0].LogSeq != 1 {
		t.Fatalf("re-append: exit %d\n%s%s", code, out, errs)
	}
	// A refused event is reported with its exact code; the others still go in.
	bad := filepath.Join(t.TempDir(), "bad.json")
	data := `[` + strings.Join([]string{
		`{"event_id":"n1","trace_id":"new","trace_seq":0,"event_type":"TraceStarted","occurred_at":"2025-12-31T10:00:00Z","source":{"producer_id":"p","system":"s"},"actor":{"actor_type":"agent","actor_id":"a"},"idempotency_key":"k1","payload":{"workflow":"w","title":"t","primary_entity":{"entity_type":"x","entity_id":"1"}}}`,
		`{"event_id":"n2","trace_id":"new","trace_seq":5,"event_type":"InputObserved","occurred_at":"2025-12-31T10:00:00Z","source":{"producer_id":"p","system":"s"},"actor":{"actor_type":"agent","actor_id":"a"},"idempotency_key":"k2","payload":{"input_id":"i","source":{"system":"s","object_type":"o","object_id":"1"},"facts":[]}}`,
	}, ",") + `]`
	if err := os.WriteFile(bad, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runManifestCmd(t, env, "events", "append", "--tenant", "acme", bad)
	if code != exitCheckFailed || !strings.Contains(out, "refused  DG_ERR_EVENT_SEQUENCE_INVALID: $.trace_seq: expected trace_seq 1, got 5") || !strings.Contains(out, "1 appended, 0 replayed, 1 refused") {
		t.Fatalf("append with a bad event: exit %d\n%s%s", code, out, errs)
	}

	code, out, errs = runManifestCmd(t, env, "events", "verify")
	if code != exitOK || !strings.Contains(out, "ok: 27 events in 4 traces") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runManifestCmd(t, env, "events", "tail", "-n", "2", "--tenant", "acme")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitOK || len(lines) != 2 || !strings.HasPrefix(lines[0], "26  acme  cccccccc") || !strings.HasPrefix(lines[1], "27  acme  new:0  TraceStarted  n1") {
		t.Fatalf("tail: exit %d\n%s", code, out)
	}
	code, out, _ = runManifestCmd(t, env, "events", "tail", "--since", "25", "-o", "json")
	if code != exitOK || strings.Count(out, "\n") != 2 || !strings.Contains(out, `"log_seq":26`) {
		t.Fatalf("tail --since: exit %d\n%s", code, out)
	}

	// Tamper with a payload behind the guard's back: verify names log_seq 12.
	conn, err := pgx.Connect(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range []string{
		`ALTER TABLE dg_event_log DISABLE TRIGGER dg_event_log_append_only`,
		`UPDATE dg_event_log SET payload = '{"outcome":"failure"}' WHERE log_seq = 12`,
	} {
		if _, err := conn.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	code, out, _ = runManifestCmd(t, env, "events", "verify", "-o", "json")
	var vr struct {
		OK       bool `json:"ok"`
		FirstBad struct {
			LogSeq int64  `json:"log_seq"`
			Kind   string `json:"kind"`
		} `json:"first_bad"`
	}
	if code != exitCheckFailed || json.Unmarshal([]byte(out), &vr) != nil || vr.OK || vr.FirstBad.LogSeq != 12 || vr.FirstBad.Kind != "payload_hash" {
		t.Fatalf("verify of a tampered log: exit %d\n%s", code, out)
	}
	code, out, _ = runManifestCmd(t, env, "events", "verify")
	if code != exitCheckFailed || !strings.Contains(out, "FAILED: first bad log_seq 12 (payload_hash)") {
		t.Fatalf("verify text: exit %d\n%s", code, out)
	}
}

func TestEventsNeedADatabase(t *testing.T) {
	t.Parallel()
	// No --database-url, no DATABASE_URL: the manifest's managed cluster,
	// which is not running here (operational, exit 3, saying what to do).
	code, _, errs := runManifestCmd(t, nil, "events", "verify")
	if code != exitOperational || !strings.Contains(errs, "dg db start") || !strings.Contains(errs, "--database-url") {
		t.Fatalf("verify without a database: exit %d %s", code, errs)
	}
	code, _, errs = runManifestCmd(t, nil, "events", "append", "--tenant", "x", "/nonexistent.json")
	if code != exitUsage {
		t.Fatalf("append of a missing file: exit %d %s", code, errs)
	}
}

func TestBenchAppendSmoke(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": pgtest.ServerURL(t)}
	code, out, errs := runManifestCmd(t, env, "bench", "append", "--events", "64", "--clients", "1,4", "-o", "json")
	var rep struct {
		Settings map[string]string `json:"settings"`
		Rows     []struct {
			Clients int `json:"clients"`
			DG      struct {
				Events       int     `json:"events"`
				EventsPerSec float64 `json:"events_per_sec"`
			} `json:"dg"`
			Ratio float64 `json:"ratio_dg_to_raw"`
		} `json:"rows"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Rows) != 2 || rep.Rows[1].DG.Events != 64 || rep.Rows[1].Ratio <= 0 || rep.Settings["fsync"] == "" {
		t.Fatalf("bench append: exit %d\n%s%s", code, out, errs)
	}
	code, _, _ = runManifestCmd(t, env, "bench", "append", "--clients", "0")
	if code != exitUsage {
		t.Fatalf("bench with --clients 0: exit %d", code)
	}
}

func TestBenchAPISmoke(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": pgtest.ServerURL(t)}
	for _, client := range []string{"lean", "net/http"} {
		code, out, errs := runManifestCmd(t, env, "bench", "api", "--reads", "16", "--appends", "16", "--clients", "2",
			"--read-traces", "2", "--trace-events", "10", "--client", client, "--read-rate", "500", "--rate-clients", "2", "-o", "json")
		var rep struct {
			Report struct {
				Client string `json:"client"`
				Rows   []struct {
					Clients  int `json:"clients"`
					ReadWarm struct {
						Ops    int `json:"ops"`
						Errors int `json:"errors"`
					} `json:"read_http_warm"`
					Paced *struct {
						Ops int `json:"ops"`
					} `json:"read_http_warm_paced"`
				} `json:"rows"`
				ReadRate float64 `json:"read_rate"`
			} `json:"report"`
		}
		if code != exitOK || json.Unmarshal([]byte(out), &rep) != nil || rep.Report.Client != client || len(rep.Report.Rows) != 1 ||
			rep.Report.Rows[0].ReadWarm.Ops != 16 || rep.Report.Rows[0].ReadWarm.Errors != 0 ||
			rep.Report.ReadRate != 500 || rep.Report.Rows[0].Paced == nil || rep.Report.Rows[0].Paced.Ops != 16 {
			t.Fatalf("bench api --client %s: exit %d\n%s%s", client, code, out, errs)
		}
	}
	for _, bad := range [][]string{{"--client", "curl"}, {"--read-rate", "-1"}, {"--rate-clients", "0"}} {
		if code, _, _ := runManifestCmd(t, env, append([]string{"bench", "api"}, bad...)...); code != exitUsage {
			t.Fatalf("bench api %v: exit %d", bad, code)
		}
	}
}
