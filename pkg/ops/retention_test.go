package ops_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/ops"
)

// fakeBackup writes a manifest and a dump file as dg backup would, for
// catalogue tests that need no database.
func fakeBackup(t *testing.T, dir string, at time.Time, drill *ops.DrillRecord) ops.BackupManifest {
	t.Helper()
	id := at.UTC().Format("20060102T150405Z")
	m := ops.BackupManifest{Format: ops.BackupFormat, ID: id, DumpFile: id + ".dump", StartedAt: at, FinishedAt: at.Add(time.Minute),
		SizeBytes: 4, SHA256: "x", State: ops.DatabaseState{Tenants: []ops.TenantState{}, TableRows: map[string]int64{}}}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, m.DumpFile), []byte("dump"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, id+".json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if drill != nil {
		if err := ops.RecordDrill(dir, id, *drill); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if e.Name() == ".dg-backup.lock" {
			continue // the empty file prune and backup flock
		}
		out = append(out, e.Name())
	}
	return out
}

func kept(ds []ops.PruneDecision) []string {
	var out []string
	for _, d := range ds {
		if d.Keep {
			out = append(out, d.ID)
		}
	}
	return out
}

func TestPlanRetention(t *testing.T) {
	dir := t.TempDir()
	// Every 6 hours for 100 days, newest 2026-11-27 00:00 UTC.
	end := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	for i := range 400 {
		fakeBackup(t, dir, end.Add(-time.Duration(i)*6*time.Hour), nil)
	}
	list, err := ops.ListBackups(dir)
	if err != nil || len(list) != 400 {
		t.Fatalf("list: %d %v", len(list), err)
	}
	if !list[0].Manifest.StartedAt.Equal(end) {
		t.Fatalf("not newest first: %v", list[0].Manifest.StartedAt)
	}
	got := kept(ops.PlanRetention(list, ops.Retention{KeepLast: 3, KeepDaily: 5, KeepWeekly: 3, KeepMonthly: 3}))
	want := []string{
		"20261127T000000Z", "20261126T180000Z", "20261126T120000Z", // last 3 (and daily 11-27, 11-26)
		"20261125T180000Z", "20261124T180000Z", "20261123T180000Z", // daily 11-25..11-23
		"20261122T180000Z", "20261115T180000Z", // weekly: ISO weeks 47 and 46 end on Sundays 11-22 and 11-15 (week 48 is 11-27's)
		"20261031T180000Z", "20260930T180000Z", // monthly: October and September (November is 11-27's)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("kept %v\nwant %v", got, want)
	}

	// All rules at zero still keep the newest backup.
	if got := kept(ops.PlanRetention(list, ops.Retention{})); !slices.Equal(got, []string{"20261127T000000Z"}) {
		t.Fatalf("zero policy kept %v", got)
	}
}

func TestPlanRetentionKeepsNewestPassingDrill(t *testing.T) {
	dir := t.TempDir()
	end := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	fakeBackup(t, dir, end, &ops.DrillRecord{At: end, Passed: false})
	fakeBackup(t, dir, end.Add(-time.Hour), nil)
	fakeBackup(t, dir, end.Add(-2*time.Hour), &ops.DrillRecord{At: end, Passed: true})
	fakeBackup(t, dir, end.Add(-3*time.Hour), &ops.DrillRecord{At: end, Passed: true})
	list, _ := ops.ListBackups(dir)
	got := kept(ops.PlanRetention(list, ops.Retention{KeepLast: 1}))
	if !slices.Equal(got, []string{"20261127T000000Z", "20261126T220000Z"}) {
		t.Fatalf("kept %v", got)
	}
}

// TestPruneDryRunDeletesNothing: without confirm nothing is removed; with
// confirm exactly the backups the plan drops are removed, sidecars too.
func TestPruneDryRunDeletesNothing(t *testing.T) {
	dir := t.TempDir()
	end := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		fakeBackup(t, dir, end.Add(-time.Duration(i)*time.Hour), &ops.DrillRecord{At: end, Passed: false})
	}
	if err := os.WriteFile(filepath.Join(dir, ".tmp-20261101T000000Z.dump"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := files(t, dir)
	rep, err := ops.Prune(dir, ops.Retention{KeepLast: 2}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.DryRun || len(rep.Deleted) != 0 || len(kept(rep.Decisions)) != 2 || len(rep.Decisions) != 5 {
		t.Fatalf("dry run: %+v", rep)
	}
	if after := files(t, dir); !slices.Equal(before, after) {
		t.Fatalf("a dry run changed the directory:\n%v\n%v", before, after)
	}

	rep, err = ops.Prune(dir, ops.Retention{KeepLast: 2}, true)
	if err != nil {
		t.Fatal(err)
	}
	// 3 backups x (dump, drill record, manifest) + the stale temp file.
	if rep.DryRun || len(rep.Deleted) != 10 {
		t.Fatalf("prune: %+v", rep)
	}
	list, _ := ops.ListBackups(dir)
	if len(list) != 2 || list[0].Manifest.ID != "20261127T000000Z" || list[1].Manifest.ID != "20261126T230000Z" {
		t.Fatalf("left %+v", list)
	}
	for _, f := range files(t, dir) {
		if !slices.Contains([]string{"20261127T000000Z", "20261126T230000Z"}, f[:16]) {
			t.Errorf("left behind %s", f)
		}
	}
}
