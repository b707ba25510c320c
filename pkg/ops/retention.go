package ops

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Retention is a keep-last/daily/weekly/monthly policy (backup.retention).
// A backup kept by any rule is kept.
type Retention struct {
	KeepLast    int `json:"keep_last"`
	KeepDaily   int `json:"keep_daily"`
	KeepWeekly  int `json:"keep_weekly"`
	KeepMonthly int `json:"keep_monthly"`
}

// PruneDecision is what prune does with one backup.
type PruneDecision struct {
	ID        string    `json:"id"`
	StartedAt time.Time `json:"started_at"`
	SizeBytes int64     `json:"size_bytes"`
	Keep      bool      `json:"keep"`
	// Reasons lists the rules that keep it (e.g. "last 1", "daily 2026-11-27").
	Reasons []string `json:"reasons"`
}

// PruneReport is the result of dg backup prune.
type PruneReport struct {
	Policy    Retention       `json:"policy"`
	DryRun    bool            `json:"dry_run"`
	Decisions []PruneDecision `json:"decisions"`
	// Deleted lists the files removed (empty in a dry run).
	Deleted    []string `json:"deleted"`
	FreedBytes int64    `json:"freed_bytes"`
}

// PlanRetention decides which backups (newest first, as ListBackups
// returns them) a policy keeps. Buckets are UTC days, ISO weeks and
// months; in each of the newest N buckets the newest backup is kept.
// Two safety rules come on top: the newest backup is always kept, and so
// is the newest backup whose last drill passed.
func PlanRetention(list []BackupEntry, p Retention) []PruneDecision {
	out := make([]PruneDecision, len(list))
	for i, e := range list {
		out[i] = PruneDecision{ID: e.Manifest.ID, StartedAt: e.Manifest.StartedAt, SizeBytes: e.Manifest.SizeBytes, Reasons: []string{}}
	}
	keep := func(i int, why string) {
		out[i].Keep = true
		out[i].Reasons = append(out[i].Reasons, why)
	}
	for i := 0; i < len(list) && i < p.KeepLast; i++ {
		keep(i, fmt.Sprintf("last %d", i+1))
	}
	bucketRule := func(n int, kind string, bucket func(time.Time) string) {
		seen := map[string]bool{}
		for i, e := range list {
			if len(seen) >= n {
				return
			}
			b := bucket(e.Manifest.StartedAt.UTC())
			if seen[b] {
				continue
			}
			seen[b] = true
			keep(i, kind+" "+b)
		}
	}
	bucketRule(p.KeepDaily, "daily", func(t time.Time) string { return t.Format("2006-01-02") })
	bucketRule(p.KeepWeekly, "weekly", func(t time.Time) string {
		y, w := t.ISOWeek()
		return fmt.Sprintf("%d-W%02d", y, w)
	})
	bucketRule(p.KeepMonthly, "monthly", func(t time.Time) string { return t.Format("2006-01") })
	if len(list) > 0 {
		keep(0, "newest backup")
	}
	for i, e := range list {
		if e.LastDrill != nil && e.LastDrill.Passed {
			keep(i, "newest backup with a passing drill")
			break
		}
	}
	return out
}

// Prune applies the policy to dir. Unless confirm is set it only reports
// (dry run) and deletes nothing. It holds the backup directory's lock.
func Prune(dir string, p Retention, confirm bool) (*PruneReport, error) {
	rep := &PruneReport{Policy: p, DryRun: !confirm, Decisions: []PruneDecision{}, Deleted: []string{}}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return rep, nil
	}
	unlock, err := lockBackupDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	list, err := ListBackups(dir)
	if err != nil {
		return nil, err
	}
	rep.Decisions = PlanRetention(list, p)
	if !confirm {
		return rep, nil
	}
	for i, d := range rep.Decisions {
		if d.Keep {
			continue
		}
		e := list[i]
		// The dump goes first: a manifest without its dump is visibly
		// broken in dg backup list, a dump without manifest is not.
		for _, path := range []string{
			e.DumpPath,
			filepath.Join(dir, e.Manifest.ID+".verify.json"),
			filepath.Join(dir, e.Manifest.ID+".drill.json"),
			filepath.Join(dir, e.Manifest.ID+".json"),
		} {
			fi, err := os.Stat(path)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err := os.Remove(path); err != nil {
				return rep, fmt.Errorf("delete %s: %w", path, err)
			}
			rep.Deleted = append(rep.Deleted, path)
			if fi != nil {
				rep.FreedBytes += fi.Size()
			}
		}
	}
	// Temp files of interrupted backups: we hold the lock, so no backup is
	// writing them.
	entries, _ := os.ReadDir(dir)
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), ".tmp-") {
			path := filepath.Join(dir, en.Name())
			if fi, err := os.Stat(path); err == nil && os.Remove(path) == nil {
				rep.Deleted = append(rep.Deleted, path)
				rep.FreedBytes += fi.Size()
			}
		}
	}
	return rep, syncDir(dir)
}
