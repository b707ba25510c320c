package ops

import (
	"fmt"
	"time"
)

// StatusConfig is what dg status checks: backup and drill freshness.
type StatusConfig struct {
	BackupDir string
	// BackupMaxAge is backup.max_age; DrillMaxAge is drill.max_age.
	BackupMaxAge time.Duration
	DrillMaxAge  time.Duration
	Now          time.Time
}

// StatusCheck is one verdict of dg status.
type StatusCheck struct {
	ID      string      `json:"id"`
	Status  CheckStatus `json:"status"`
	Message string      `json:"message"`
	Fix     string      `json:"fix,omitempty"`
}

// StatusReport is what dg status prints.
type StatusReport struct {
	OK     bool          `json:"ok"`
	Checks []StatusCheck `json:"checks"`
	// NewestBackup and LastPassedDrill describe the evidence found.
	NewestBackup    *BackupSummary `json:"newest_backup"`
	LastPassedDrill *DrillSummary  `json:"last_passed_drill"`
}

// BackupSummary is a short description of a backup.
type BackupSummary struct {
	ID         string    `json:"id"`
	FinishedAt time.Time `json:"finished_at"`
	AgeSeconds float64   `json:"age_seconds"`
	SizeBytes  int64     `json:"size_bytes"`
}

// DrillSummary is a short description of a drill.
type DrillSummary struct {
	BackupID   string    `json:"backup_id"`
	At         time.Time `json:"at"`
	AgeSeconds float64   `json:"age_seconds"`
	RTOMS      int64     `json:"rto_ms"`
}

// Status checks that the newest backup is younger than BackupMaxAge and
// that a drill passed within DrillMaxAge.
func Status(cfg StatusConfig) (*StatusReport, error) {
	list, err := ListBackups(cfg.BackupDir)
	if err != nil {
		return nil, err
	}
	rep := &StatusReport{Checks: []StatusCheck{}}
	add := func(id string, st CheckStatus, msg, fix string) {
		rep.Checks = append(rep.Checks, StatusCheck{ID: id, Status: st, Message: msg, Fix: fix})
	}
	var newest *BackupEntry
	for i := range list {
		if list[i].DumpExists {
			newest = &list[i]
			break
		}
	}
	switch {
	case newest == nil:
		add("backup.fresh", Fail, fmt.Sprintf("no backup in %s", cfg.BackupDir), "take one now with dg backup, and schedule it nightly (docs/backup.md)")
	default:
		m := newest.Manifest
		age := cfg.Now.Sub(m.FinishedAt)
		rep.NewestBackup = &BackupSummary{ID: m.ID, FinishedAt: m.FinishedAt, AgeSeconds: age.Seconds(), SizeBytes: m.SizeBytes}
		if age > cfg.BackupMaxAge {
			add("backup.fresh", Fail, fmt.Sprintf("the newest backup %s is %s old, over backup.max_age %s", m.ID, age.Round(time.Minute), cfg.BackupMaxAge),
				"run dg backup now and check that the nightly timer or cron job runs (docs/backup.md)")
		} else {
			add("backup.fresh", Pass, fmt.Sprintf("the newest backup %s is %s old (backup.max_age %s)", m.ID, age.Round(time.Second), cfg.BackupMaxAge), "")
		}
	}
	var drilled *BackupEntry
	for i := range list {
		if d := list[i].LastDrill; d != nil && d.Passed && (drilled == nil || d.At.After(drilled.LastDrill.At)) {
			drilled = &list[i]
		}
	}
	switch {
	case drilled == nil:
		add("drill.fresh", Fail, "no restore drill has passed on any backup in "+cfg.BackupDir, "run dg drill restore (it restores the latest backup into a scratch cluster and checks it)")
	default:
		d := drilled.LastDrill
		age := cfg.Now.Sub(d.At)
		rep.LastPassedDrill = &DrillSummary{BackupID: drilled.Manifest.ID, At: d.At, AgeSeconds: age.Seconds(), RTOMS: d.RTOMS}
		if age > cfg.DrillMaxAge {
			add("drill.fresh", Fail, fmt.Sprintf("the last passing drill (backup %s) was %s ago, over drill.max_age %s", drilled.Manifest.ID, age.Round(time.Minute), cfg.DrillMaxAge),
				"run dg drill restore, and schedule it weekly")
		} else {
			add("drill.fresh", Pass, fmt.Sprintf("a drill of backup %s passed %s ago (drill.max_age %s, RTO %s)", drilled.Manifest.ID, age.Round(time.Second), cfg.DrillMaxAge, ms(d.RTOMS)), "")
		}
	}
	if newest != nil {
		if d := newest.LastDrill; d != nil && !d.Passed {
			add("drill.latest", Warn, fmt.Sprintf("the last drill of the newest backup %s failed (%v)", newest.Manifest.ID, d.Failed), "read its report and run dg drill restore again")
		}
	}
	rep.OK = true
	for _, c := range rep.Checks {
		if c.Status == Fail {
			rep.OK = false
		}
	}
	return rep, nil
}
