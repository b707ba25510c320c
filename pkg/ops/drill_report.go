package ops

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// WriteDrillReport writes the report as <backup>-drill-<time>.json and
// .md into dir and returns both paths (JSON first).
func WriteDrillReport(dir string, r *DrillReport) ([]string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create report directory %s: %w (set drill.report_dir to a writable directory)", dir, err)
	}
	base := filepath.Join(dir, fmt.Sprintf("%s-drill-%s", r.BackupID, r.StartedAt.UTC().Format("20060102T150405Z")))
	if r.Inject != "" {
		base += "-" + r.Inject
	}
	files := []string{base + ".json", base + ".md"}
	r.ReportFiles = files
	if err := writeJSONFile(files[0], r); err != nil {
		return nil, fmt.Errorf("write drill report: %w", err)
	}
	if err := os.WriteFile(files[1], []byte(DrillMarkdown(r)), 0o640); err != nil {
		return nil, fmt.Errorf("write drill report: %w", err)
	}
	return files, nil
}

func ms(v int64) string { return (time.Duration(v) * time.Millisecond).String() }

// DrillMarkdown renders a drill report for people.
func DrillMarkdown(r *DrillReport) string {
	var b strings.Builder
	verdict := "PASSED"
	if !r.Passed {
		verdict = "FAILED (" + strings.Join(r.Failed, ", ") + ")"
	}
	fmt.Fprintf(&b, "# Restore drill of backup %s: %s\n\n", r.BackupID, verdict)
	fmt.Fprintf(&b, "- Started %s, finished %s\n", r.StartedAt.Format(time.RFC3339), r.FinishedAt.Format(time.RFC3339))
	fmt.Fprintf(&b, "- Backup file: `%s` (%s, %s, %s)\n", r.BackupFile, humanBytes(uint64(r.SizeBytes)), nouns(int(r.Events), "event"), nouns(r.Tenants, "tenant"))
	if r.Scratch.Kind != "" {
		kept := "torn down"
		if r.Scratch.Kept {
			kept = "kept"
		}
		fmt.Fprintf(&b, "- Scratch target: %s `%s` (%s)\n", r.Scratch.Kind, r.Scratch.URL, kept)
	}
	if r.Inject != "" {
		fmt.Fprintf(&b, "- Injected fault: `%s` (a self-test: this result is not recorded against the backup)\n", r.Inject)
	}
	b.WriteString("\n## Checks\n\n| check | result | details |\n| --- | --- | --- |\n")
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", c.Name, c.Status, strings.ReplaceAll(strings.ReplaceAll(c.Details, "|", "\\|"), "\n", " "))
	}
	t := r.Timings
	b.WriteString("\n## Timings (RTO)\n\n| phase | time |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| checksum and archive | %s |\n| scratch target | %s |\n| restore | %s |\n| verification | %s |\n| of which chain check | %s |\n| of which rebuild | %s |\n| **total (RTO)** | **%s** |\n",
		ms(t.ChecksumMS), ms(t.ScratchMS), ms(t.RestoreMS), ms(t.VerifyMS), ms(t.ChainMS), ms(t.RebuildMS), ms(t.TotalMS))
	b.WriteString("\n## Data at risk (RPO)\n\n")
	fmt.Fprintf(&b, "- Backup finished %s, %s ago\n", r.RPO.BackupFinishedAt.Format(time.RFC3339), time.Duration(r.RPO.BackupAgeSeconds*float64(time.Second)).Round(time.Second))
	if r.RPO.NewestEventAt != nil {
		fmt.Fprintf(&b, "- Newest event in the backup recorded %s, %s ago\n", r.RPO.NewestEventAt.Format(time.RFC3339), time.Duration(r.RPO.NewestEventAgeSeconds*float64(time.Second)).Round(time.Second))
	} else {
		b.WriteString("- The backup holds no events\n")
	}
	return b.String()
}
