package ops

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decisiongraph/dg/pkg/projection"
	"github.com/decisiongraph/dg/pkg/store"
)

// DrillReportFormat names the drill report format (docs/backup.md).
const DrillReportFormat = "dg-drill-report/1"

// Check statuses of a drill.
const (
	CheckPass = "PASS"
	CheckFail = "FAIL"
	// CheckSkip: not applicable (no workflow tables) or not run because an
	// earlier check made it meaningless (nothing restored).
	CheckSkip = "SKIP"
)

// Drill check names, in the order they run.
const (
	CheckChecksum      = "checksum"
	CheckArchive       = "archive"
	CheckRestore       = "restore"
	CheckSchema        = "schema"
	CheckTenantHeads   = "tenant_heads"
	CheckChain         = "chain"
	CheckSequences     = "sequences"
	CheckDigests       = "projection_digests"
	CheckRebuild       = "projection_rebuild"
	CheckCheckpoints   = "projection_checkpoints"
	CheckWorkflow      = "workflow_counts"
	CheckTableRows     = "table_rows"
	defaultDrillPrefix = "dg_drill_"
)

// DrillCheckNames lists every check a drill reports, in order.
func DrillCheckNames() []string {
	return []string{CheckChecksum, CheckArchive, CheckRestore, CheckSchema, CheckTenantHeads, CheckChain, CheckSequences,
		CheckDigests, CheckRebuild, CheckCheckpoints, CheckWorkflow, CheckTableRows}
}

// DrillConfig says which backup a drill restores and where.
type DrillConfig struct {
	// Dir is backup.dir; Backup an id or "latest".
	Dir    string
	Backup string
	// Scratch is "cluster" (a throwaway cluster in a temp dir) or
	// "database" (a scratch database on ServerURL's server).
	Scratch string
	// ServerURL is the node's database, used in database scratch mode to
	// create the scratch database (nothing in it is read or changed).
	ServerURL string
	// Cluster configures the throwaway cluster (BinDir, RunAs, LookupEnv);
	// DataDir, Port and Database are chosen by the drill.
	Cluster ClusterConfig
	// Keep leaves the scratch target in place and reports where it is.
	Keep bool
	// ReportDir receives the JSON and Markdown reports ("" writes none).
	ReportDir string
	// Inject names a fault (see Faults) to make the drill prove it fails.
	Inject string
	// Jobs is pg_restore's parallelism (0: number of CPUs, at most 4).
	Jobs  int
	Tools ToolSearch
	// Progress receives progress lines (nil: none).
	Progress io.Writer
	Now      func() time.Time
	Logger   *slog.Logger
}

// DrillCheck is one verdict of a drill.
type DrillCheck struct {
	Name       string `json:"name"`
	Status     string `json:"status"`
	Details    string `json:"details"`
	DurationMS int64  `json:"duration_ms"`
}

// DrillTimings are the drill's measured phases (milliseconds).
type DrillTimings struct {
	ChecksumMS int64 `json:"checksum_ms"`
	ScratchMS  int64 `json:"scratch_ms"`
	RestoreMS  int64 `json:"restore_ms"`
	// VerifyMS covers every check after the restore; ChainMS and
	// RebuildMS are its two largest parts, which run concurrently.
	VerifyMS  int64 `json:"verify_ms"`
	ChainMS   int64 `json:"chain_ms"`
	RebuildMS int64 `json:"rebuild_ms"`
	// TotalMS is checksum to last check: the recovery time objective a
	// real restore of this backup would need (RTO), without teardown.
	TotalMS    int64 `json:"total_ms"`
	TeardownMS int64 `json:"teardown_ms"`
}

// DrillRPO says how much data losing the primary now would cost.
type DrillRPO struct {
	BackupFinishedAt time.Time `json:"backup_finished_at"`
	BackupAgeSeconds float64   `json:"backup_age_seconds"`
	// NewestEventAt is the recorded_at of the backup's newest event; its
	// age is the data a restore of this backup would lose today.
	NewestEventAt         *time.Time `json:"newest_event_at"`
	NewestEventAgeSeconds float64    `json:"newest_event_age_seconds"`
}

// DrillScratch says where the drill restored.
type DrillScratch struct {
	Kind string `json:"kind"`
	// URL is the scratch database (password hidden).
	URL string `json:"url"`
	// Dir is the throwaway cluster's directory (cluster mode).
	Dir  string `json:"dir,omitempty"`
	Kept bool   `json:"kept"`
}

// DrillReport is the drill's result, written as JSON (this struct) and
// Markdown into the report directory. docs/backup.md documents it.
type DrillReport struct {
	Format     string       `json:"format"`
	BackupID   string       `json:"backup_id"`
	BackupFile string       `json:"backup_file"`
	SizeBytes  int64        `json:"size_bytes"`
	Events     int64        `json:"events"`
	Tenants    int          `json:"tenants"`
	Inject     string       `json:"inject,omitempty"`
	StartedAt  time.Time    `json:"started_at"`
	FinishedAt time.Time    `json:"finished_at"`
	Passed     bool         `json:"passed"`
	Failed     []string     `json:"failed_checks"`
	Checks     []DrillCheck `json:"checks"`
	Timings    DrillTimings `json:"timings"`
	RPO        DrillRPO     `json:"rpo"`
	Scratch    DrillScratch `json:"scratch"`
	// ReportFiles are the JSON and Markdown files written.
	ReportFiles []string `json:"report_files"`
}

// Check returns the named check (nil if absent).
func (r *DrillReport) Check(name string) *DrillCheck {
	for i := range r.Checks {
		if r.Checks[i].Name == name {
			return &r.Checks[i]
		}
	}
	return nil
}

type drill struct {
	cfg   DrillConfig
	rep   *DrillReport
	m     *BackupManifest
	start time.Time
}

func (d *drill) progress(format string, args ...any) {
	progress(d.cfg.Progress, "drill: "+format, args...)
}

func (d *drill) add(name, status, details string, took time.Duration) {
	d.rep.Checks = append(d.rep.Checks, DrillCheck{Name: name, Status: status, Details: details, DurationMS: took.Milliseconds()})
}

func (d *drill) verdict(name string, problems []string, okDetail string, took time.Duration) {
	if len(problems) == 0 {
		d.add(name, CheckPass, okDetail, took)
		return
	}
	const maxShown = 5
	shown := problems
	more := ""
	if len(shown) > maxShown {
		more = fmt.Sprintf("; and %d more", len(shown)-maxShown)
		shown = shown[:maxShown]
	}
	d.add(name, CheckFail, strings.Join(shown, "; ")+more, took)
}

// skipRest marks every check not yet reported as skipped.
func (d *drill) skipRest(why string) {
	have := map[string]bool{}
	for _, c := range d.rep.Checks {
		have[c.Name] = true
	}
	for _, n := range DrillCheckNames() {
		if !have[n] {
			d.add(n, CheckSkip, why, 0)
		}
	}
}

// Drill restores a backup into a scratch target and checks that what
// comes back is what the backup's manifest says it holds. A report with
// Passed false means a check failed; an error means the drill could not
// run (the scratch target could not be made, for example).
func Drill(ctx context.Context, cfg DrillConfig) (*DrillReport, error) {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	cfg.Now = now
	if cfg.Jobs <= 0 {
		cfg.Jobs = min(runtime.NumCPU(), 4)
	}
	if cfg.Scratch == "" {
		cfg.Scratch = "cluster"
	}
	if cfg.Inject != "" && !validFault(cfg.Inject) {
		return nil, fmt.Errorf("unknown fault %q: use one of %s", cfg.Inject, strings.Join(Faults(), ", "))
	}
	e, err := FindBackup(cfg.Dir, cfg.Backup)
	if err != nil {
		return nil, err
	}
	d := &drill{cfg: cfg, m: &e.Manifest, start: now()}
	d.rep = &DrillReport{Format: DrillReportFormat, BackupID: e.Manifest.ID, BackupFile: e.DumpPath,
		SizeBytes: e.Manifest.SizeBytes, Events: e.Manifest.State.Events, Tenants: len(e.Manifest.State.Tenants),
		Inject: cfg.Inject, StartedAt: d.start.UTC(), Checks: []DrillCheck{}, Failed: []string{}, ReportFiles: []string{}}
	d.rep.RPO = DrillRPO{BackupFinishedAt: e.Manifest.FinishedAt, BackupAgeSeconds: d.start.Sub(e.Manifest.FinishedAt).Seconds(),
		NewestEventAt: e.Manifest.State.NewestEventAt}
	if at := e.Manifest.State.NewestEventAt; at != nil {
		d.rep.RPO.NewestEventAgeSeconds = d.start.Sub(*at).Seconds()
	}

	if err := d.run(ctx, e); err != nil {
		return nil, err
	}
	d.rep.FinishedAt = now().UTC()
	if d.rep.Timings.TotalMS == 0 {
		d.rep.Timings.TotalMS = d.rep.FinishedAt.Sub(d.start).Milliseconds()
	}
	for _, c := range d.rep.Checks {
		if c.Status == CheckFail {
			d.rep.Failed = append(d.rep.Failed, c.Name)
		}
	}
	d.rep.Passed = len(d.rep.Failed) == 0
	if cfg.ReportDir != "" {
		files, err := WriteDrillReport(cfg.ReportDir, d.rep)
		if err != nil {
			return d.rep, err
		}
		d.rep.ReportFiles = files
	}
	// A drill with an injected fault tests the drill, not the backup: it
	// is not recorded against the backup.
	if cfg.Inject == "" {
		rec := DrillRecord{At: d.rep.FinishedAt, Passed: d.rep.Passed, Failed: d.rep.Failed, RTOMS: d.rep.Timings.TotalMS}
		if len(d.rep.ReportFiles) > 0 {
			rec.Report = d.rep.ReportFiles[0]
		}
		if err := RecordDrill(cfg.Dir, e.Manifest.ID, rec); err != nil {
			return d.rep, fmt.Errorf("record the drill result next to the backup: %w", err)
		}
		// The drill's checksum and archive checks are a verification too.
		if c, a := d.rep.Check(CheckChecksum), d.rep.Check(CheckArchive); c != nil && a != nil {
			v := VerifyRecord{At: d.rep.FinishedAt, OK: c.Status == CheckPass && a.Status == CheckPass, Detail: "by drill: " + c.Details}
			if a.Status == CheckFail {
				v.Detail = "by drill: " + a.Details
			} else if a.Status == CheckPass {
				v.Detail += "; " + a.Details
			}
			if err := writeJSONFile(filepath.Join(cfg.Dir, e.Manifest.ID+".verify.json"), v); err != nil {
				return d.rep, fmt.Errorf("record the verify result next to the backup: %w", err)
			}
		}
	}
	return d.rep, nil
}

func (d *drill) run(ctx context.Context, e *BackupEntry) (err error) {
	cfg := d.cfg
	dumpPath := e.DumpPath
	// File faults work on a copy: the backup itself is never modified.
	if isFileFault(cfg.Inject) {
		tmpDir, err := os.MkdirTemp("", "dg-drill-fault-")
		if err != nil {
			return fmt.Errorf("create a directory for the faulty copy: %w", err)
		}
		defer os.RemoveAll(tmpDir)
		if dumpPath, err = injectFileFault(cfg.Inject, e.DumpPath, tmpDir); err != nil {
			return err
		}
		d.progress("injected %s into a copy of the dump (%s)", cfg.Inject, dumpPath)
	}

	t0 := time.Now()
	d.progress("checking the checksum of %s", dumpPath)
	if err := VerifyChecksum(dumpPath, d.m); err != nil {
		d.add(CheckChecksum, CheckFail, err.Error(), time.Since(t0))
		d.rep.Timings.ChecksumMS = time.Since(t0).Milliseconds()
		d.skipRest("not run: the dump failed its checksum, so nothing was restored")
		return nil
	}
	d.add(CheckChecksum, CheckPass, fmt.Sprintf("%d bytes, sha256 %s", d.m.SizeBytes, d.m.SHA256), time.Since(t0))
	restoreTool, err := FindTool(ctx, cfg.Tools, "pg_restore", dumpVersion(d.m))
	if err != nil {
		return err
	}
	t1 := time.Now()
	toc, err := ReadTOC(ctx, restoreTool.Path, dumpPath)
	if err != nil {
		d.add(CheckArchive, CheckFail, err.Error(), time.Since(t1))
		d.rep.Timings.ChecksumMS = time.Since(t0).Milliseconds()
		d.skipRest("not run: the archive is unreadable")
		return nil
	}
	d.add(CheckArchive, CheckPass, fmt.Sprintf("%d table-of-contents entries, data for %d tables", toc.Entries, len(toc.Tables)), time.Since(t1))
	d.rep.Timings.ChecksumMS = time.Since(t0).Milliseconds()

	t2 := time.Now()
	sc, err := d.makeScratch(ctx, dumpVersion(d.m))
	if err != nil {
		return err
	}
	d.rep.Scratch = DrillScratch{Kind: sc.kind, URL: RedactURL(sc.url), Dir: sc.dir, Kept: cfg.Keep}
	defer func() {
		if cfg.Keep {
			d.progress("kept the scratch %s: %s", sc.kind, RedactURL(sc.url))
			return
		}
		td := time.Now()
		terr := sc.teardown(context.Background())
		d.rep.Timings.TeardownMS = time.Since(td).Milliseconds()
		if terr != nil && err == nil {
			err = fmt.Errorf("tear down the scratch %s: %w", sc.kind, terr)
		}
	}()
	if err := tuneScratch(ctx, sc); err != nil {
		return err
	}
	d.rep.Timings.ScratchMS = time.Since(t2).Milliseconds()

	t3 := time.Now()
	d.progress("restoring %s into the scratch %s (pg_restore --jobs=%d)", filepath.Base(dumpPath), sc.kind, cfg.Jobs)
	if err := runPgRestore(ctx, restoreTool.Path, sc.url, dumpPath, false, cfg.Jobs); err != nil {
		d.add(CheckRestore, CheckFail, err.Error(), time.Since(t3))
		d.skipRest("not run: the restore failed")
		return nil
	}
	d.rep.Timings.RestoreMS = time.Since(t3).Milliseconds()
	d.add(CheckRestore, CheckPass, fmt.Sprintf("restored in %s", time.Since(t3).Round(time.Millisecond)), time.Since(t3))

	pool, err := connectPool(ctx, sc.url)
	if err != nil {
		return fmt.Errorf("connect to the scratch database: %w", err)
	}
	defer pool.Close()
	if isDataFault(cfg.Inject) {
		what, err := injectDataFault(ctx, pool, cfg.Inject)
		if err != nil {
			return err
		}
		d.progress("injected %s into the restored copy: %s", cfg.Inject, what)
	}

	t4 := time.Now()
	if err := d.verify(ctx, pool); err != nil {
		return err
	}
	d.rep.Timings.VerifyMS = time.Since(t4).Milliseconds()
	d.rep.Timings.TotalMS = time.Since(t0).Milliseconds()
	return nil
}

// verify runs every check on the restored database.
func (d *drill) verify(ctx context.Context, pool *pgxpool.Pool) error {
	want := &d.m.State
	t := time.Now()
	mig, err := store.MigrationStatus(ctx, pool)
	if err != nil {
		return err
	}
	var probs []string
	if mig.Current != want.SchemaVersion {
		probs = append(probs, fmt.Sprintf("restored schema is at migration %04d, the manifest says %04d", mig.Current, want.SchemaVersion))
	}
	detail := fmt.Sprintf("migration %04d, as recorded", mig.Current)
	if mig.Pending > 0 && !mig.Newer {
		detail += fmt.Sprintf("; %d newer migration(s) would be applied by dg migrate", mig.Pending)
	}
	if mig.Newer {
		detail += "; newer than this dg knows: restore it with the dg release that took it"
	}
	// A migration file that differs from this binary's says which dg build
	// made the schema, not that the backup is damaged: noted, not failed.
	for _, ms := range mig.Migrations {
		if ms.ChecksumMismatch {
			detail += fmt.Sprintf("; note: migration %04d_%s was applied from a file that differs from this dg's", ms.Version, ms.Name)
		}
	}
	d.verdict(CheckSchema, probs, detail, time.Since(t))

	// Reading the restored state (counts, heads, digests), recomputing the
	// chain and rebuilding the projections only read what was restored
	// (the rebuild writes shadow tables, which the state's snapshot, taken
	// before the rebuild starts, does not see): they run at the same time.
	d.progress("reading the restored state, recomputing the hash chain of %d events and rebuilding projections into shadow tables", want.Events)
	stx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin a snapshot of the restored database: %w", err)
	}
	defer func() { _ = stx.Rollback(context.Background()) }()
	if _, err := stx.Exec(ctx, `SELECT 1`); err != nil { // takes the snapshot
		return fmt.Errorf("begin a snapshot of the restored database: %w", err)
	}
	type stateResult struct {
		st   *DatabaseState
		err  error
		took time.Duration
	}
	stateDone := make(chan stateResult, 1)
	go func() {
		t := time.Now()
		st, err := ReadState(ctx, stx)
		stateDone <- stateResult{st, err, time.Since(t)}
	}()
	type chainResult struct {
		vr   *store.VerifyReport
		err  error
		took time.Duration
	}
	chainDone := make(chan chainResult, 1)
	go func() {
		t := time.Now()
		vr, err := verifyLog(ctx, pool)
		chainDone <- chainResult{vr, err, time.Since(t)}
	}()
	t = time.Now()
	rebuildProbs, rebuildErr := d.rebuild(ctx, pool, want)
	rebuildTook := time.Since(t)
	sr := <-stateDone
	cr := <-chainDone
	if sr.err != nil {
		return fmt.Errorf("read the restored database: %w", sr.err)
	}
	if cr.err != nil {
		return cr.err
	}
	if rebuildErr != nil {
		return rebuildErr
	}
	got := sr.st
	d.verdict(CheckTenantHeads, compareTenants(want, got),
		fmt.Sprintf("%s, %s, head log_seq %d, chain heads equal", nouns(len(want.Tenants), "tenant"), nouns(int(want.Events), "event"), want.HeadLogSeq), sr.took)
	vr := cr.vr
	d.rep.Timings.ChainMS = cr.took.Milliseconds()
	d.rep.Timings.RebuildMS = rebuildTook.Milliseconds()
	var chainProbs, seqProbs []string
	for _, p := range vr.Problems {
		msg := fmt.Sprintf("log_seq %d: %s", p.LogSeq, p.Message)
		switch p.Kind {
		case store.ProblemLogSeqGap, store.ProblemTraceSeq, store.ProblemAfterFinished:
			seqProbs = append(seqProbs, msg)
		default:
			chainProbs = append(chainProbs, msg)
		}
	}
	if vr.Truncated {
		chainProbs = append(chainProbs, "(more problems were not listed)")
	}
	d.verdict(CheckChain, chainProbs, fmt.Sprintf("payload and event hashes of %s and %s recomputed", nouns(int(vr.Events), "event"), nouns(len(vr.Tenants), "tenant chain")), cr.took)
	d.verdict(CheckSequences, seqProbs, fmt.Sprintf("log_seq 1..%d without gaps; trace_seq contiguous in %d traces", vr.HeadLogSeq, vr.Traces), cr.took)
	d.verdict(CheckDigests, compareDigests(want, got, func(t *TenantState) projection.Digests { return t.Digests }, "restored tables"),
		fmt.Sprintf("projection table digests of %s equal the manifest", nouns(len(want.Tenants), "tenant")), 0)
	d.verdict(CheckRebuild, rebuildProbs, "a shadow rebuild from the restored log gives the manifest's digests", rebuildTook)

	d.verdict(CheckCheckpoints, compareCheckpoints(want, got), "every projection checkpoint is at or below its tenant's head and equals the manifest", 0)

	if len(want.WorkflowCounts) == 0 && len(got.WorkflowCounts) == 0 {
		d.add(CheckWorkflow, CheckSkip, "the backup has no workflow tables", 0)
	} else {
		d.verdict(CheckWorkflow, compareCounts(want.WorkflowCounts, got.WorkflowCounts), fmt.Sprintf("%s, counts equal", nouns(len(want.WorkflowCounts), "workflow table")), 0)
	}
	d.verdict(CheckTableRows, compareCounts(want.TableRows, got.TableRows), fmt.Sprintf("row counts of %s equal", nouns(len(want.TableRows), "table")), 0)
	return nil
}

// rebuild runs a dry-run shadow rebuild of every tenant's projections (up
// to each projection's restored checkpoint) and compares the rebuilt
// digests with the manifest's.
func (d *drill) rebuild(ctx context.Context, pool *pgxpool.Pool, want *DatabaseState) ([]string, error) {
	st, err := store.New(ctx, pool, store.Options{SkipSchemaCheck: true})
	if err != nil {
		return nil, fmt.Errorf("open the restored event log: %w", err)
	}
	defer st.Close()
	pg := projection.NewPG(st, 0)
	var probs []string
	for _, t := range want.Tenants {
		rr, err := pg.Verify(ctx, t.TenantID, projection.SetAll)
		if err != nil {
			probs = append(probs, fmt.Sprintf("tenant %s: the rebuild failed: %v", t.TenantID, err))
			continue
		}
		for _, name := range projection.Names() {
			if got, ok := rr.Rebuilt[name]; ok && got != t.Digests.Of(name) {
				probs = append(probs, fmt.Sprintf("tenant %s %s: rebuilt %s, manifest %s", t.TenantID, name, got, t.Digests.Of(name)))
			}
		}
		if got, ok := rr.Rebuilt[projection.FullProjection]; ok && got != t.Digests.FullProjection {
			probs = append(probs, fmt.Sprintf("tenant %s %s: rebuilt %s, manifest %s", t.TenantID, projection.FullProjection, got, t.Digests.FullProjection))
		}
	}
	return probs, nil
}

func compareTenants(want, got *DatabaseState) []string {
	var probs []string
	for _, w := range want.Tenants {
		g := got.Tenant(w.TenantID)
		if g == nil {
			probs = append(probs, fmt.Sprintf("tenant %s is missing from the restored log", w.TenantID))
			continue
		}
		if g.Events != w.Events {
			probs = append(probs, fmt.Sprintf("tenant %s: %d events restored, manifest %d", w.TenantID, g.Events, w.Events))
		}
		if g.HeadLogSeq != w.HeadLogSeq {
			probs = append(probs, fmt.Sprintf("tenant %s: head log_seq %d restored, manifest %d", w.TenantID, g.HeadLogSeq, w.HeadLogSeq))
		}
		if g.ChainHead != w.ChainHead {
			probs = append(probs, fmt.Sprintf("tenant %s: chain head %s restored, manifest %s", w.TenantID, g.ChainHead, w.ChainHead))
		}
	}
	for _, g := range got.Tenants {
		if want.Tenant(g.TenantID) == nil {
			probs = append(probs, fmt.Sprintf("tenant %s is in the restored log but not in the manifest", g.TenantID))
		}
	}
	return probs
}

func compareDigests(want, got *DatabaseState, of func(*TenantState) projection.Digests, what string) []string {
	var probs []string
	for i := range want.Tenants {
		w := &want.Tenants[i]
		g := got.Tenant(w.TenantID)
		if g == nil {
			probs = append(probs, fmt.Sprintf("tenant %s has no projection state in the %s", w.TenantID, what))
			continue
		}
		wd, gd := of(w), of(g)
		for _, name := range append(projection.Names(), projection.FullProjection) {
			if wd.Of(name) != gd.Of(name) {
				probs = append(probs, fmt.Sprintf("tenant %s %s: %s %s, manifest %s", w.TenantID, name, what, gd.Of(name), wd.Of(name)))
			}
		}
	}
	return probs
}

func compareCheckpoints(want, got *DatabaseState) []string {
	var probs []string
	for _, g := range got.Tenants {
		names := make([]string, 0, len(g.Checkpoints))
		for n := range g.Checkpoints {
			names = append(names, n)
		}
		sort.Strings(names)
		w := want.Tenant(g.TenantID)
		for _, n := range names {
			c := g.Checkpoints[n]
			if c > g.HeadLogSeq {
				probs = append(probs, fmt.Sprintf("tenant %s %s: checkpoint %d is beyond the tenant's head %d", g.TenantID, n, c, g.HeadLogSeq))
			}
			if w != nil && w.Checkpoints[n] != c {
				probs = append(probs, fmt.Sprintf("tenant %s %s: checkpoint %d restored, manifest %d", g.TenantID, n, c, w.Checkpoints[n]))
			}
		}
		if w != nil {
			for n, c := range w.Checkpoints {
				if _, ok := g.Checkpoints[n]; !ok {
					probs = append(probs, fmt.Sprintf("tenant %s %s: checkpoint %d missing from the restored database", g.TenantID, n, c))
				}
			}
		}
	}
	return probs
}

func compareCounts(want, got map[string]int64) []string {
	names := map[string]bool{}
	for n := range want {
		names[n] = true
	}
	for n := range got {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var probs []string
	for _, n := range sorted {
		w, wok := want[n]
		g, gok := got[n]
		switch {
		case !gok:
			probs = append(probs, fmt.Sprintf("%s (%d rows in the manifest) is missing", n, w))
		case !wok:
			probs = append(probs, fmt.Sprintf("%s (%d rows) is not in the manifest", n, g))
		case w != g:
			probs = append(probs, fmt.Sprintf("%s: %d rows restored, manifest %d", n, g, w))
		}
	}
	return probs
}

// scratchTarget is where a drill restores.
type scratchTarget struct {
	kind     string
	url      string
	dir      string
	teardown func(context.Context) error
}

func (d *drill) makeScratch(ctx context.Context, need Version) (*scratchTarget, error) {
	switch d.cfg.Scratch {
	case "database":
		return d.scratchDatabase(ctx)
	case "cluster":
		return d.scratchCluster(ctx, need)
	}
	return nil, fmt.Errorf("drill.scratch is %q: use cluster or database", d.cfg.Scratch)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (d *drill) scratchDatabase(ctx context.Context) (*scratchTarget, error) {
	if d.cfg.ServerURL == "" {
		return nil, errors.New("drill.scratch is database but no server is configured")
	}
	name := defaultDrillPrefix + time.Now().UTC().Format("20060102t150405") + "_" + randomHex(3)
	target, err := withDatabase(d.cfg.ServerURL, name)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, d.cfg.ServerURL)
	if err != nil {
		return nil, fmt.Errorf("connect to the server to create a scratch database: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0 ENCODING 'UTF8'"); err != nil {
		return nil, fmt.Errorf("create scratch database %s (the role needs CREATEDB, or set drill.scratch: cluster): %w", name, err)
	}
	d.progress("created scratch database %s", name)
	server := d.cfg.ServerURL
	return &scratchTarget{kind: "database", url: target, teardown: func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, server)
		if err != nil {
			return err
		}
		defer c.Close(context.Background())
		_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		return err
	}}, nil
}

func (d *drill) scratchCluster(ctx context.Context, need Version) (*scratchTarget, error) {
	dir, err := os.MkdirTemp("", "dg-drill-")
	if err != nil {
		return nil, fmt.Errorf("create a directory for the scratch cluster: %w", err)
	}
	// The cluster may run as postgres: it must be able to enter dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cc := d.cfg.Cluster
	cc.DataDir = filepath.Join(dir, "data")
	cc.SocketDir = ""
	cc.PasswordFile = ""
	cc.Port = port
	cc.Database = "dg_drill"
	cc.DisableFsync = true
	cc.DieWithParent = !d.cfg.Keep
	c, err := NewCluster(ctx, cc)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("prepare the scratch cluster: %w", err)
	}
	if c.Binaries().Version.Major < need.Major {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("the backup comes from PostgreSQL %d but the server binaries found are %s (%s): install PostgreSQL %d, or set drill.scratch: database",
			need.Major, c.Binaries().Version, c.Binaries().Dir, need.Major)
	}
	d.progress("starting a scratch cluster in %s on port %d", dir, port)
	if _, err := c.Start(ctx); err != nil {
		_ = c.Stop(context.Background())
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start the scratch cluster: %w", err)
	}
	return &scratchTarget{kind: "cluster", url: c.URL(), dir: dir, teardown: func(ctx context.Context) error {
		err := c.Stop(ctx)
		return errors.Join(err, os.RemoveAll(dir))
	}}, nil
}

// scratchMaintenanceMem is the maintenance_work_mem of the scratch
// database: the restore's index builds are most of its time.
const scratchMaintenanceMem = "256MB"

// tuneScratch sets restore-friendly defaults on the scratch database only
// (ALTER DATABASE, so a shared server's settings are untouched); in a
// throwaway cluster it also spaces checkpoints out.
func tuneScratch(ctx context.Context, sc *scratchTarget) error {
	conn, err := pgx.Connect(ctx, sc.url)
	if err != nil {
		return fmt.Errorf("connect to the scratch database: %w", err)
	}
	defer conn.Close(context.Background())
	var name string
	if err := conn.QueryRow(ctx, `SELECT current_database()`).Scan(&name); err != nil {
		return fmt.Errorf("tune the scratch database: %w", err)
	}
	stmts := []string{"ALTER DATABASE " + pgx.Identifier{name}.Sanitize() + " SET maintenance_work_mem = '" + scratchMaintenanceMem + "'"}
	if sc.kind == "cluster" {
		stmts = append(stmts, "ALTER SYSTEM SET max_wal_size = '8GB'", "ALTER SYSTEM SET checkpoint_timeout = '1h'", "SELECT pg_reload_conf()")
	}
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("tune the scratch database (%s): %w", q, err)
		}
	}
	return nil
}

// nouns says "1 tenant" or "4 tenants".
func nouns(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port for the scratch cluster: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
