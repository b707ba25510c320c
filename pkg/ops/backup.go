package ops

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/decisiongraph/dg/internal/sysx"
	"github.com/jackc/pgx/v5"
)

// BackupFormat names the sidecar manifest format; readers refuse others.
const BackupFormat = "dg-backup/1"

// ErrBackupLocked: another dg backup (or prune) holds the backup
// directory's lock.
var ErrBackupLocked = errors.New("another dg backup or prune is running in this backup directory")

// ErrBackupNotFound: no backup with that id (or none at all for latest).
var ErrBackupNotFound = errors.New("backup not found")

// ErrChecksum: a dump file does not match its manifest's SHA-256 or size.
var ErrChecksum = errors.New("backup file does not match its manifest checksum")

// BackupConfig says what dg backup dumps and where.
type BackupConfig struct {
	// DatabaseURL is the node's database.
	DatabaseURL string
	// Dir is backup.dir.
	Dir string
	// Label is an optional tag added to the backup id (e.g. pre-upgrade).
	Label string
	// Tools says where pg_dump comes from.
	Tools ToolSearch
	// DGVersion is recorded in the manifest.
	DGVersion string
	// Progress receives progress lines for long dumps (nil: none).
	Progress io.Writer
	// ProgressEvery is the interval between progress lines (default 2s).
	ProgressEvery time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// testAfterExport, when set by a test, runs once the snapshot is exported
// and pg_dump is running (tests use it to try a second backup).
var testAfterExport func()

// BackupManifest is the sidecar JSON written next to each dump
// (<id>.json). Its format is documented in docs/backup.md.
type BackupManifest struct {
	Format    string `json:"format"`
	ID        string `json:"id"`
	Label     string `json:"label,omitempty"`
	DGVersion string `json:"dg_version"`
	// PgDumpVersion and ServerVersion are major.minor.
	PgDumpVersion string `json:"pg_dump_version"`
	ServerVersion string `json:"server_version"`
	Database      string `json:"database"`
	// DumpFile is the dump's file name in the backup directory.
	DumpFile   string    `json:"dump_file"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	DurationMS int64     `json:"duration_ms"`
	SizeBytes  int64     `json:"size_bytes"`
	SHA256     string    `json:"sha256"`
	// Snapshot is the exported snapshot pg_dump dumped; State was read
	// from the same snapshot.
	Snapshot string        `json:"snapshot"`
	State    DatabaseState `json:"state"`
}

// Backup dumps the database with pg_dump -Fc into cfg.Dir and writes its
// manifest. The dump and the recorded state come from one exported
// snapshot. It holds the directory's lock (ErrBackupLocked when taken).
func Backup(ctx context.Context, cfg BackupConfig) (*BackupManifest, error) {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if cfg.Dir == "" {
		return nil, errors.New("no backup directory configured: set backup.dir in the manifest")
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create backup directory %s: %w (set backup.dir to a writable directory)", cfg.Dir, err)
	}
	unlock, err := lockBackupDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("connect to the node's database %s: %w", RedactURL(cfg.DatabaseURL), err)
	}
	defer conn.Close(context.Background())
	server, err := ServerVersion(ctx, conn)
	if err != nil {
		return nil, err
	}
	dump, err := FindTool(ctx, cfg.Tools, "pg_dump", server)
	if err != nil {
		return nil, err
	}

	started := now().UTC()
	m := &BackupManifest{Format: BackupFormat, Label: cfg.Label, DGVersion: cfg.DGVersion,
		PgDumpVersion: dump.Version.String(), ServerVersion: server.String(), StartedAt: started}
	if m.ID, err = newBackupID(cfg.Dir, started, cfg.Label); err != nil {
		return nil, err
	}
	m.DumpFile = m.ID + ".dump"

	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin snapshot transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot(), current_database()`).Scan(&m.Snapshot, &m.Database); err != nil {
		return nil, fmt.Errorf("export snapshot: %w", err)
	}

	tmp := filepath.Join(cfg.Dir, ".tmp-"+m.DumpFile)
	defer os.Remove(tmp) // a no-op after the rename
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := toolCmd(dctx, dump.Path, cfg.DatabaseURL, "--format=custom", "--snapshot="+m.Snapshot, "--no-password", "--file="+tmp)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", dump.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopProgress := reportFileGrowth(cfg.Progress, "backup: dumping", tmp, cfg.ProgressEvery)
	if f := testAfterExport; f != nil {
		testAfterExport = nil // once: the hook itself may run a backup
		f()
	}

	// Read the state through the exporting transaction while pg_dump runs.
	state, stateErr := ReadState(ctx, tx)
	if stateErr != nil {
		cancel()
	}
	dumpErr := <-done
	stopProgress()
	if stateErr != nil {
		return nil, fmt.Errorf("read the database state for the manifest: %w", stateErr)
	}
	if dumpErr != nil {
		return nil, fmt.Errorf("pg_dump failed: %w: %s", dumpErr, lastLines(stderr.String(), 10))
	}
	_ = tx.Rollback(ctx)
	m.State = *state

	if m.SizeBytes, m.SHA256, err = syncAndHash(tmp); err != nil {
		return nil, err
	}
	final := filepath.Join(cfg.Dir, m.DumpFile)
	if err := os.Rename(tmp, final); err != nil {
		return nil, fmt.Errorf("move the dump into place: %w", err)
	}
	m.FinishedAt = now().UTC()
	m.DurationMS = m.FinishedAt.Sub(started).Milliseconds()
	if err := writeJSONFile(filepath.Join(cfg.Dir, m.ID+".json"), m); err != nil {
		return nil, fmt.Errorf("write the backup manifest: %w", err)
	}
	if err := syncDir(cfg.Dir); err != nil {
		return nil, err
	}
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "backup: %s written (%s, %s)\n", m.DumpFile, humanBytes(uint64(m.SizeBytes)), time.Duration(m.DurationMS)*time.Millisecond)
	}
	return m, nil
}

// BackupLockFile is the file flock'ed by a backup or prune in dir.
func BackupLockFile(dir string) string { return filepath.Join(dir, ".dg-backup.lock") }

// lockBackupDir takes an exclusive flock on the directory's lock file
// without waiting. The kernel drops it when the process dies.
func lockBackupDir(dir string) (func(), error) {
	path := BackupLockFile(dir)
	unlock, err := sysx.LockFile(path)
	if errors.Is(err, sysx.ErrLocked) {
		return nil, fmt.Errorf("%w (%s is locked): wait for it to finish and run this again", ErrBackupLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return unlock, nil
}

var labelRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,39}$`)

// ValidLabel checks a backup label: lower-case letters, digits, - and _.
func ValidLabel(l string) error {
	if l == "" || labelRE.MatchString(l) {
		return nil
	}
	return fmt.Errorf("backup label %q: use 1-40 lower-case letters, digits, - or _, starting with a letter or digit", l)
}

// newBackupID names a backup after its start time (UTC, sortable) and
// label; a second backup within the same second gets a suffix.
func newBackupID(dir string, t time.Time, label string) (string, error) {
	if err := ValidLabel(label); err != nil {
		return "", err
	}
	base := t.UTC().Format("20060102T150405Z")
	if label != "" {
		base += "-" + label
	}
	id := base
	for i := 2; ; i++ {
		_, e1 := os.Stat(filepath.Join(dir, id+".json"))
		_, e2 := os.Stat(filepath.Join(dir, id+".dump"))
		if errors.Is(e1, os.ErrNotExist) && errors.Is(e2, os.ErrNotExist) {
			return id, nil
		}
		id = fmt.Sprintf("%s-%d", base, i)
	}
}

// syncAndHash fsyncs a file and returns its size and SHA-256.
func syncAndHash(path string) (int64, string, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, "", fmt.Errorf("open the dump: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return 0, "", fmt.Errorf("fsync the dump: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("hash the dump: %w", err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// fileSHA256 hashes a file.
func fileSHA256(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// writeJSONFile writes v as indented JSON through a fsynced temp file and
// a rename, so readers see the old or the new file, never half of one.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s to fsync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// reportFileGrowth prints the size of a growing file every interval until
// the returned stop function is called.
func reportFileGrowth(w io.Writer, what, path string, every time.Duration) (stop func()) {
	if w == nil {
		return func() {}
	}
	if every <= 0 {
		every = 2 * time.Second
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				if fi, err := os.Stat(path); err == nil {
					secs := time.Since(start).Seconds()
					fmt.Fprintf(w, "%s: %s so far (%s/s)\n", what, humanBytes(uint64(fi.Size())), humanBytes(uint64(float64(fi.Size())/secs)))
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit); wg.Wait() })
	}
}
