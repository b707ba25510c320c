package ops_test

import (
	"testing"
	"time"

	"github.com/decisiongraph/dg/pkg/ops"
)

func statusOf(t *testing.T, dir string, now time.Time) *ops.StatusReport {
	t.Helper()
	rep, err := ops.Status(ops.StatusConfig{BackupDir: dir, BackupMaxAge: 26 * time.Hour, DrillMaxAge: 8 * 24 * time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func statusCheck(rep *ops.StatusReport, id string) ops.StatusCheck {
	for _, c := range rep.Checks {
		if c.ID == id {
			return c
		}
	}
	return ops.StatusCheck{}
}

func TestStatusBackupAndDrillFreshness(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

	empty := statusOf(t, t.TempDir()+"/missing", now)
	if empty.OK || statusCheck(empty, "backup.fresh").Status != ops.Fail || statusCheck(empty, "drill.fresh").Status != ops.Fail {
		t.Fatalf("no backups: %+v", empty)
	}
	if statusCheck(empty, "backup.fresh").Fix == "" {
		t.Error("no fix for a missing backup")
	}

	dir := t.TempDir()
	fakeBackup(t, dir, now.Add(-3*24*time.Hour), &ops.DrillRecord{At: now.Add(-2 * 24 * time.Hour), Passed: true, RTOMS: 1500})
	fakeBackup(t, dir, now.Add(-2*time.Hour), nil)
	ok := statusOf(t, dir, now)
	if !ok.OK || ok.NewestBackup == nil || ok.LastPassedDrill == nil || ok.LastPassedDrill.RTOMS != 1500 {
		t.Fatalf("fresh backup and drill: %+v", ok)
	}

	// Two days later the newest backup is too old; ten days later the drill too.
	stale := statusOf(t, dir, now.Add(2*24*time.Hour))
	if stale.OK || statusCheck(stale, "backup.fresh").Status != ops.Fail || statusCheck(stale, "drill.fresh").Status != ops.Pass {
		t.Fatalf("old backup: %+v", stale.Checks)
	}
	older := statusOf(t, dir, now.Add(10*24*time.Hour))
	if statusCheck(older, "drill.fresh").Status != ops.Fail {
		t.Fatalf("old drill: %+v", older.Checks)
	}

	// A failed drill never counts as evidence.
	dir2 := t.TempDir()
	fakeBackup(t, dir2, now.Add(-time.Hour), &ops.DrillRecord{At: now, Passed: false, Failed: []string{"chain"}})
	failed := statusOf(t, dir2, now)
	if failed.OK || statusCheck(failed, "drill.fresh").Status != ops.Fail || statusCheck(failed, "drill.latest").Status != ops.Warn {
		t.Fatalf("failed drill: %+v", failed.Checks)
	}
}
