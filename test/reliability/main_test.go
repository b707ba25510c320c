// Package reliability is dg's black-box reliability and security suite:
// crash safety under concurrent writers (kill -9 of the real binary),
// database faults, backup disk-full, projector and workflow crashes, a bad
// input corpus, auth and tenant isolation, and a soak run.
//
// Every test runs by default in a short variant (well under two minutes in
// all on a 2-core machine). DG_REL_FULL=1 selects the full sizes, and each
// size can be set on its own (see params). With DG_RELIABILITY_REPORT set
// to a path, the run writes its measurements there as Markdown
// (scripts/reliability.sh writes docs/reliability.md this way): every
// figure in that file comes from this code, never from a hand.
package reliability_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/pgtest"
)

// params are the sizes of one run.
type params struct {
	Full           bool
	Writers        int           // concurrent HTTP writers in the crash test
	KillRounds     int           // kill -9 rounds of the server
	DBFaultRounds  int           // pg_ctl stop -m immediate rounds
	BadRequests    int           // requests of the bad input corpus
	AuthRounds     int           // repetitions of the route x account x tenant matrix
	Soak           time.Duration // soak duration
	SoakWriters    int
	ProjKillRounds int // kill -9 of dg projections rebuild
	SweepKills     int // kill -9 of the server around SLA sweeps
	TwoNodeTraces  int // traces per tenant appended through two dg up processes before the kill
	TwoNodeWriters int // concurrent HTTP writers per tenant in the two-process test
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDur(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func loadParams() params {
	full := os.Getenv("DG_REL_FULL") == "1"
	p := params{Writers: 64, KillRounds: 2, DBFaultRounds: 1, BadRequests: 3000, AuthRounds: 1,
		Soak: 10 * time.Second, SoakWriters: 8, ProjKillRounds: 2, SweepKills: 2, TwoNodeTraces: 24, TwoNodeWriters: 3}
	if full {
		p = params{Full: true, Writers: 64, KillRounds: 20, DBFaultRounds: 3, BadRequests: 100000, AuthRounds: 3,
			Soak: 5 * time.Minute, SoakWriters: 16, ProjKillRounds: 5, SweepKills: 5, TwoNodeTraces: 300, TwoNodeWriters: 8}
	}
	p.Writers = envInt("DG_REL_WRITERS", p.Writers)
	p.KillRounds = envInt("DG_REL_KILL_ROUNDS", p.KillRounds)
	p.DBFaultRounds = envInt("DG_REL_DBFAULT_ROUNDS", p.DBFaultRounds)
	p.BadRequests = envInt("DG_REL_BAD_REQUESTS", p.BadRequests)
	p.AuthRounds = envInt("DG_REL_AUTH_ROUNDS", p.AuthRounds)
	p.Soak = envDur("DG_REL_SOAK", p.Soak)
	p.SoakWriters = envInt("DG_REL_SOAK_WRITERS", p.SoakWriters)
	p.ProjKillRounds = envInt("DG_REL_PROJ_KILLS", p.ProjKillRounds)
	p.SweepKills = envInt("DG_REL_SWEEP_KILLS", p.SweepKills)
	p.TwoNodeTraces = envInt("DG_REL_TWONODE_TRACES", p.TwoNodeTraces)
	p.TwoNodeWriters = envInt("DG_REL_TWONODE_WRITERS", p.TwoNodeWriters)
	return p
}

var P = loadParams()

// figure is one measured value of the run, with the command that
// reproduces it.
type figure struct {
	Section, Name, Value string
}

var report struct {
	mu      sync.Mutex
	figures []figure
	results map[string]string // test name -> PASS/FAIL
	order   []string
}

// record adds a figure to the report.
func record(section, name string, value any) {
	report.mu.Lock()
	defer report.mu.Unlock()
	report.figures = append(report.figures, figure{section, name, fmt.Sprint(value)})
}

// track records the outcome of a top-level test at its end. In the short
// variant the tests that drive subprocesses run in parallel with each
// other (after the in-process tests, which count this process's
// goroutines, have finished); the full variant runs them one by one so
// their figures do not disturb each other.
func track(t *testing.T) {
	trackOnly(t)
	if !P.Full {
		t.Parallel()
	}
}

// trackOnly records the outcome without running in parallel.
func trackOnly(t *testing.T) {
	t.Cleanup(func() {
		report.mu.Lock()
		defer report.mu.Unlock()
		if report.results == nil {
			report.results = map[string]string{}
		}
		res := "PASS"
		if t.Failed() {
			res = "FAIL"
		} else if t.Skipped() {
			res = "SKIP"
		}
		if _, seen := report.results[t.Name()]; !seen {
			report.order = append(report.order, t.Name())
		}
		report.results[t.Name()] = res
		if path := os.Getenv("DG_RELIABILITY_REPORT"); path != "" {
			// Rewritten after every test, so a run that dies half way
			// still leaves the figures it measured.
			if err := writeReportLocked(path); err != nil {
				t.Errorf("write report: %v", err)
			}
		}
	})
}

// sections names each section's heading and the command that reproduces
// its figures (the short variant; DG_REL_FULL=1 for the full sizes).
var sections = []struct{ key, title, run string }{
	{"crash", "Crash safety: kill -9 under concurrent writers", "TestCrashSafety"},
	{"dbfault", "Database faults: pg_ctl stop -m immediate under load", "TestDatabaseFault"},
	{"diskfull", "Backup on a full disk (1 MiB tmpfs)", "TestBackupDiskFull"},
	{"projkill", "Projector crash: kill -9 mid-rebuild", "TestRebuildKilled"},
	{"sweepkill", "Workflow crash: kill -9 around SLA sweeps", "TestSweepKilled"},
	{"twonode", "Two dg up processes on one database: exactly-once projection, kill -9 of the lock holder", "TestTwoNodes"},
	{"badinput", "Bad input corpus over HTTP", "TestBadInputCorpus"},
	{"auth", "Auth and tenant isolation", "TestAuthMatrix|TestConsoleRefuses|TestTokenCompare"},
	{"bench", "Token comparison timing by matching prefix (benchmark)", ""},
	{"soak", "Soak: mixed load with a backup and a drill in the middle", "TestSoak"},
	{"fuzz", "Fuzzing", ""},
}

func writeReportLocked(path string) error {
	var b strings.Builder
	rev, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	b.WriteString("# Reliability and security suite: last run\n\n")
	b.WriteString("Generated by `test/reliability` (scripts/reliability.sh); every figure below was measured by\n")
	b.WriteString("that run. Do not edit by hand: run `make reliability` (full sizes) or `make reliability-short`.\n\n")
	fmt.Fprintf(&b, "- finished: %s\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "- commit: %s\n", strings.TrimSpace(string(rev)))
	fmt.Fprintf(&b, "- go: %s, %s/%s, %d CPUs\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&b, "- host load average at the end: %s\n", strings.Join(strings.Fields(string(la))[:3], " "))
	}
	mode := "short (default `go test`)"
	if P.Full {
		mode = "full (DG_REL_FULL=1)"
	}
	fmt.Fprintf(&b, "- variant: %s\n", mode)
	fmt.Fprintf(&b, "- parameters: writers=%d kill_rounds=%d dbfault_rounds=%d bad_requests=%d auth_rounds=%d soak=%s soak_writers=%d rebuild_kills=%d sweep_kills=%d twonode_traces=%d twonode_writers=%d\n",
		P.Writers, P.KillRounds, P.DBFaultRounds, P.BadRequests, P.AuthRounds, P.Soak, P.SoakWriters, P.ProjKillRounds, P.SweepKills, P.TwoNodeTraces, P.TwoNodeWriters)
	res := "PASS"
	for _, r := range report.results {
		if r == "FAIL" {
			res = "FAIL"
		}
	}
	fmt.Fprintf(&b, "- result of the tests run so far: %s (%d tests)\n\n", res, len(report.order))
	b.WriteString("Reproduce the whole run with:\n\n```sh\n")
	env := fmt.Sprintf("DG_REL_WRITERS=%d DG_REL_KILL_ROUNDS=%d DG_REL_DBFAULT_ROUNDS=%d DG_REL_BAD_REQUESTS=%d DG_REL_AUTH_ROUNDS=%d DG_REL_SOAK=%s DG_REL_SOAK_WRITERS=%d DG_REL_PROJ_KILLS=%d DG_REL_SWEEP_KILLS=%d DG_REL_TWONODE_TRACES=%d DG_REL_TWONODE_WRITERS=%d",
		P.Writers, P.KillRounds, P.DBFaultRounds, P.BadRequests, P.AuthRounds, P.Soak, P.SoakWriters, P.ProjKillRounds, P.SweepKills, P.TwoNodeTraces, P.TwoNodeWriters)
	fmt.Fprintf(&b, "%s go test -count=1 -timeout 90m -v ./test/reliability/\n```\n\n", env)
	b.WriteString("Full sizes of the issue: `DG_REL_FULL=1 DG_REL_SOAK=30m scripts/reliability.sh` (the full variant defaults to a 5 minute soak).\n\n")

	b.WriteString("## Tests\n\n| test | result |\n|---|---|\n")
	for _, name := range report.order {
		fmt.Fprintf(&b, "| %s | %s |\n", name, report.results[name])
	}
	b.WriteString("\n")
	for _, s := range sections {
		var figs []figure
		for _, f := range report.figures {
			if f.Section == s.key {
				figs = append(figs, f)
			}
		}
		if len(figs) == 0 && s.key != "fuzz" && s.key != "bench" {
			continue
		}
		fmt.Fprintf(&b, "## %s\n\n", s.title)
		if s.run != "" {
			fmt.Fprintf(&b, "Reproduce: `%s go test -count=1 -v -run '%s' ./test/reliability/`\n\n", env, s.run)
		}
		if s.key == "fuzz" {
			writeFuzz(&b)
		}
		if s.key == "bench" {
			writeBench(&b)
		}
		if len(figs) > 0 {
			b.WriteString("| figure | value |\n|---|---|\n")
			for _, f := range figs {
				fmt.Fprintf(&b, "| %s | %s |\n", f.Name, strings.ReplaceAll(f.Value, "|", "\\|"))
			}
			b.WriteString("\n")
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// writeFuzz copies the fuzz log scripts/reliability.sh wrote (one line
// per target: "<package> <target> <fuzztime> <ok|FAIL> <detail>").
func writeFuzz(b *strings.Builder) {
	path := os.Getenv("DG_RELIABILITY_FUZZLOG")
	data, err := os.ReadFile(path)
	if path == "" || err != nil {
		b.WriteString("No fuzz log in this run (scripts/reliability.sh runs every Fuzz target for FUZZTIME first).\n\n")
		return
	}
	b.WriteString("Reproduce one target: `go test -run '^$' -fuzz '^<Target>$' -fuzztime <time> <package>`; crashers are kept in the package's testdata/fuzz as regression inputs.\n\n")
	b.WriteString("| package | target | fuzz time | result | detail |\n|---|---|---|---|---|\n")
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(line, " ", 5)
		for len(f) < 5 {
			f = append(f, "")
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", f[0], f[1], f[2], f[3], f[4])
	}
	b.WriteString("\n")
}

// writeBench copies the token-timing benchmark's result line.
func writeBench(b *strings.Builder) {
	data, err := os.ReadFile(os.Getenv("DG_RELIABILITY_BENCHLOG"))
	if err != nil {
		b.WriteString("Not run in this run (scripts/reliability.sh runs it).\n\n")
		return
	}
	fmt.Fprintf(b, "Reproduce: `go test -run '^$' -bench TokenLookupByPrefix -benchtime %s ./test/reliability/`.\n", os.Getenv("DG_RELIABILITY_BENCHTIME"))
	b.WriteString("Wrong tokens sharing 0 bytes, half, or all but the last byte with a valid token, timed in\n")
	b.WriteString("interleaved batches; welch_t compares the 0-byte and the longest-prefix class (|t| under ~4: no\n")
	b.WriteString("measurable dependence on the matching prefix; a measurement on a shared machine, not an assertion).\n\n```\n")
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "Benchmark") || strings.HasPrefix(line, "cpu:") {
			b.WriteString(line + "\n")
		}
	}
	b.WriteString("```\n\n")
}

func TestMain(m *testing.M) {
	// pgtest.Main exits the process: the dg binary built for this run is
	// removed by the next run (reapBinaries), like pgtest's clusters.
	pgtest.Main(m)
}
