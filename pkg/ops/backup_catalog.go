package ops

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// VerifyRecord is the last `dg backup verify` (or drill checksum) result
// of a backup, kept in <id>.verify.json.
type VerifyRecord struct {
	At     time.Time `json:"at"`
	OK     bool      `json:"ok"`
	Detail string    `json:"detail"`
}

// DrillRecord is the last drill result of a backup, kept in
// <id>.drill.json.
type DrillRecord struct {
	At     time.Time `json:"at"`
	Passed bool      `json:"passed"`
	// Failed names the checks that failed.
	Failed []string `json:"failed_checks"`
	// RTOMS is the drill's total time.
	RTOMS  int64  `json:"rto_ms"`
	Report string `json:"report,omitempty"`
}

// BackupEntry is one backup in a directory, with what is known about it.
type BackupEntry struct {
	Manifest   BackupManifest `json:"manifest"`
	DumpPath   string         `json:"dump_path"`
	DumpExists bool           `json:"dump_exists"`
	LastVerify *VerifyRecord  `json:"last_verify,omitempty"`
	LastDrill  *DrillRecord   `json:"last_drill,omitempty"`
}

// ListBackups reads every backup manifest in dir, newest first. A missing
// directory has no backups. Files that are not dg backup manifests are
// ignored; a manifest that does not parse is an error naming the file.
func ListBackups(dir string) ([]BackupEntry, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return []BackupEntry{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read backup directory %s: %w", dir, err)
	}
	out := []BackupEntry{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") ||
			strings.HasSuffix(name, ".verify.json") || strings.HasSuffix(name, ".drill.json") {
			continue
		}
		m, err := readManifest(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		if m == nil {
			continue
		}
		out = append(out, entryFor(dir, m))
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Manifest, out[j].Manifest
		if !a.StartedAt.Equal(b.StartedAt) {
			return a.StartedAt.After(b.StartedAt)
		}
		return a.ID > b.ID
	})
	return out, nil
}

func entryFor(dir string, m *BackupManifest) BackupEntry {
	e := BackupEntry{Manifest: *m, DumpPath: filepath.Join(dir, m.DumpFile)}
	_, err := os.Stat(e.DumpPath)
	e.DumpExists = err == nil
	var v VerifyRecord
	if readJSON(filepath.Join(dir, m.ID+".verify.json"), &v) == nil {
		e.LastVerify = &v
	}
	var d DrillRecord
	if readJSON(filepath.Join(dir, m.ID+".drill.json"), &d) == nil {
		e.LastDrill = &d
	}
	return e
}

// readManifest reads a backup manifest; nil, nil for a JSON file of
// another kind.
func readManifest(path string) (*BackupManifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var probe struct {
		Format string `json:"format"`
	}
	if json.Unmarshal(b, &probe) != nil || !strings.HasPrefix(probe.Format, "dg-backup/") {
		return nil, nil
	}
	if probe.Format != BackupFormat {
		return nil, fmt.Errorf("%s is a %s manifest; this dg reads %s: use the dg release that wrote it", path, probe.Format, BackupFormat)
	}
	var m BackupManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("backup manifest %s is damaged: %w", path, err)
	}
	if m.ID == "" || m.DumpFile == "" || filepath.Base(m.DumpFile) != m.DumpFile {
		return nil, fmt.Errorf("backup manifest %s lacks an id or names a dump outside its directory", path)
	}
	return &m, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// FindBackup resolves an id, or "latest" (also ""), to a backup in dir.
func FindBackup(dir, id string) (*BackupEntry, error) {
	list, err := ListBackups(dir)
	if err != nil {
		return nil, err
	}
	if id == "" || id == "latest" {
		if len(list) == 0 {
			return nil, fmt.Errorf("%w: %s holds no backups; take one with dg backup", ErrBackupNotFound, dir)
		}
		return &list[0], nil
	}
	for i := range list {
		if list[i].Manifest.ID == id {
			return &list[i], nil
		}
	}
	return nil, fmt.Errorf("%w: no backup %q in %s; dg backup list shows the ids", ErrBackupNotFound, id, dir)
}

// VerifyChecksum compares a dump file with its manifest's size and SHA-256.
func VerifyChecksum(path string, m *BackupManifest) error {
	n, sum, err := fileSHA256(path)
	if err != nil {
		return fmt.Errorf("%w: read %s: %v", ErrChecksum, path, err)
	}
	if n != m.SizeBytes || sum != m.SHA256 {
		return fmt.Errorf("%w: %s is %d bytes with sha256 %s, the manifest records %d bytes with sha256 %s; the file was damaged or replaced: use another backup",
			ErrChecksum, path, n, sum, m.SizeBytes, m.SHA256)
	}
	return nil
}

// TOC summarises pg_restore --list of a dump.
type TOC struct {
	Entries int `json:"entries"`
	// Tables lists the tables whose data the dump holds.
	Tables []string `json:"tables_with_data"`
}

// ReadTOC runs pg_restore --list on a dump and checks it holds the event
// log's data.
func ReadTOC(ctx context.Context, pgRestore, path string) (*TOC, error) {
	cmd := toolCmd(ctx, pgRestore, "", "--list", path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pg_restore --list %s failed: %v: %s", path, err, lastLines(stderr.String(), 5))
	}
	toc := &TOC{Tables: []string{}}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, ";") {
			continue
		}
		toc.Entries++
		// "<id>; <oid> <oid> TABLE DATA public <name> <owner>"
		if i := strings.Index(line, " TABLE DATA "); i >= 0 {
			f := strings.Fields(line[i+len(" TABLE DATA "):])
			if len(f) >= 2 {
				toc.Tables = append(toc.Tables, f[1])
			}
		}
	}
	sort.Strings(toc.Tables)
	has := false
	for _, t := range toc.Tables {
		has = has || t == "dg_event_log"
	}
	if !has {
		return toc, fmt.Errorf("%w: the dump's table of contents (%d entries) has no data for dg_event_log", ErrChecksum, toc.Entries)
	}
	return toc, nil
}

// VerifyResult is what dg backup verify reports.
type VerifyResult struct {
	ID       string `json:"id"`
	DumpPath string `json:"dump_path"`
	OK       bool   `json:"ok"`
	Checksum string `json:"checksum"`
	TOC      *TOC   `json:"toc,omitempty"`
	Problem  string `json:"problem,omitempty"`
}

// VerifyBackup checks a backup's checksum, then its table of contents,
// and records the result next to it (<id>.verify.json). A damaged backup
// is a result with OK false; an error means verification could not run.
func VerifyBackup(ctx context.Context, dir, id string, tools ToolSearch, now time.Time) (*VerifyResult, error) {
	e, err := FindBackup(dir, id)
	if err != nil {
		return nil, err
	}
	m := &e.Manifest
	res := &VerifyResult{ID: m.ID, DumpPath: e.DumpPath, Checksum: "sha256:" + m.SHA256}
	if err := VerifyChecksum(e.DumpPath, m); err != nil {
		res.Problem = err.Error()
	} else {
		v, perr := ParseVersion("(PostgreSQL) " + m.PgDumpVersion)
		if perr != nil {
			v = Version{Major: MinServerMajor}
		}
		tool, err := FindTool(ctx, tools, "pg_restore", v)
		if err != nil {
			return nil, err
		}
		toc, err := ReadTOC(ctx, tool.Path, e.DumpPath)
		res.TOC = toc
		if err != nil {
			res.Problem = err.Error()
		}
	}
	res.OK = res.Problem == ""
	detail := fmt.Sprintf("sha256 ok, %d table-of-contents entries", 0)
	if res.TOC != nil {
		detail = fmt.Sprintf("sha256 ok, %d table-of-contents entries", res.TOC.Entries)
	}
	if !res.OK {
		detail = res.Problem
	}
	if err := writeJSONFile(filepath.Join(dir, m.ID+".verify.json"), VerifyRecord{At: now.UTC(), OK: res.OK, Detail: detail}); err != nil {
		return res, fmt.Errorf("record the verify result: %w", err)
	}
	return res, nil
}

// RecordDrill stores a drill result against a backup (<id>.drill.json).
func RecordDrill(dir, id string, r DrillRecord) error {
	return writeJSONFile(filepath.Join(dir, id+".drill.json"), r)
}
