package reliability_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/decisiongraph/dg/internal/pgtest"
	"github.com/decisiongraph/dg/pkg/event"
)

// The real dg binary, built once per test binary.
var built struct {
	once sync.Once
	path string
	err  error
}

func binDir() string { return filepath.Join(os.TempDir(), "dg-reliability") }

// reapBinaries removes binaries of earlier runs whose process is gone.
func reapBinaries() {
	ents, _ := os.ReadDir(binDir())
	for _, e := range ents {
		pid, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "dg-"))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) != nil {
			os.Remove(filepath.Join(binDir(), e.Name()))
		}
	}
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// dgBinary builds ./cmd/dg (go build -o <tmp>/dg ./cmd/dg) once.
func dgBinary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		reapBinaries()
		root, err := moduleRoot()
		if err != nil {
			built.err = err
			return
		}
		if err := os.MkdirAll(binDir(), 0o755); err != nil {
			built.err = err
			return
		}
		path := filepath.Join(binDir(), fmt.Sprintf("dg-%d", os.Getpid()))
		cmd := exec.Command("go", "build", "-o", path, "./cmd/dg")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build ./cmd/dg: %w\n%s", err, out)
			return
		}
		built.path = path
	})
	if built.err != nil {
		t.Fatalf("%v", built.err)
	}
	return built.path
}

func freePort(t testing.TB) int { return pgtest.FreePort(t) }

// nodeConfig is what a test's manifest says.
type nodeConfig struct {
	DatabaseURL   string
	Port          int
	AccountsFile  string // empty: dev tokens only
	DevTokens     bool
	Tenants       []string
	BackupDir     string
	DrillDir      string
	PollInterval  string
	SweepInterval string
	Extra         string // appended YAML
}

func writeManifest(t testing.TB, dir string, c nodeConfig) string {
	t.Helper()
	if c.PollInterval == "" {
		c.PollInterval = "100ms"
	}
	if c.SweepInterval == "" {
		c.SweepInterval = "1s"
	}
	if len(c.Tenants) == 0 {
		c.Tenants = []string{"default", "release-demo"}
	}
	if c.BackupDir == "" {
		c.BackupDir = filepath.Join(dir, "backups")
	}
	if c.DrillDir == "" {
		c.DrillDir = filepath.Join(dir, "drills")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "server:\n  listen: 127.0.0.1:%d\n  env: dev\n  request_timeout: 5s\n  dev_tokens: %v\n", c.Port, c.DevTokens)
	fmt.Fprintf(&b, "database:\n  mode: external\n  url: %q\n  pool_size: 20\n", c.DatabaseURL)
	if c.AccountsFile != "" {
		fmt.Fprintf(&b, "accounts:\n  file: %q\n", c.AccountsFile)
	}
	fmt.Fprintf(&b, "tenants: [%s]\n", strings.Join(c.Tenants, ", "))
	fmt.Fprintf(&b, "backup:\n  dir: %q\ndrill:\n  report_dir: %q\n  scratch: database\n", c.BackupDir, c.DrillDir)
	fmt.Fprintf(&b, "projections:\n  batch_size: 500\n  poll_interval: %s\n", c.PollInterval)
	fmt.Fprintf(&b, "workflows:\n  default_sla_hours: 24\n  sla_sweep_interval: %s\n", c.SweepInterval)
	b.WriteString(c.Extra)
	path := filepath.Join(dir, "dg.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatalf("write manifest: %v", err)
	}
	return path
}

// proc is one `dg up` process.
type proc struct {
	t        testing.TB
	cmd      *exec.Cmd
	done     chan struct{}
	base     string
	logPath  string
	manifest string
}

// startDG runs `dg up -f manifest` and waits until /api/readyz answers 200.
func startDG(t testing.TB, manifest string, port int) *proc {
	t.Helper()
	bin := dgBinary(t)
	logPath := filepath.Join(filepath.Dir(manifest), fmt.Sprintf("dg-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("create log: %v", err)
	}
	cmd := exec.Command(bin, "up", "-f", manifest, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "DATABASE_URL=", "PORT=", "DECISION_GRAPH_SERVICE_ACCOUNTS_JSON=", "DECISION_GRAPH_SERVICE_ACCOUNTS_FILE=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start dg: %v", err)
	}
	p := &proc{t: t, cmd: cmd, done: make(chan struct{}), base: fmt.Sprintf("http://127.0.0.1:%d", port), logPath: logPath, manifest: manifest}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	if err := p.waitReady(60 * time.Second); err != nil {
		p.kill()
		t.Fatalf("dg did not become ready: %v\n%s", err, p.logTail())
	}
	return p
}

func (p *proc) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	hc := &http.Client{Timeout: 2 * time.Second}
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("dg exited: %v", p.cmd.ProcessState)
		default:
		}
		resp, err := hc.Get(p.base + "/api/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = fmt.Errorf("readyz %d", resp.StatusCode)
		} else {
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("timeout: %v", last)
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop sends SIGTERM and waits (SIGKILL after 30s).
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
	}
}

func (p *proc) logTail() string {
	data, _ := os.ReadFile(p.logPath)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(data)
}

// pid returns the process id.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// rssKiB reads VmRSS of a process from /proc.
func rssKiB(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v
			}
		}
	}
	return -1
}

// threads reads the thread count of a process from /proc.
func threads(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "Threads:") {
			v, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "Threads:")))
			return v
		}
	}
	return -1
}

// runDG runs a dg command to completion and returns its exit code and output.
func runDG(t testing.TB, timeout time.Duration, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, dgBinary(t), args...)
	cmd.Env = append(os.Environ(), "DATABASE_URL=", "PORT=", "DECISION_GRAPH_SERVICE_ACCOUNTS_JSON=", "DECISION_GRAPH_SERVICE_ACCOUNTS_FILE=")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("dg %s: timed out after %s\n%s", strings.Join(args, " "), timeout, out)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("dg %s: %v", strings.Join(args, " "), err)
	}
	return 0, string(out)
}

// ---- HTTP ----

var httpc = &http.Client{
	Timeout:   15 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 0, IdleConnTimeout: 30 * time.Second},
}

// apiResp is an answer: status, body, decoded envelope.
type apiResp struct {
	Status int
	Body   []byte
	Header http.Header
}

func (r apiResp) errCode() string {
	var env struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &env)
	return env.Error.Code
}

func do(ctx context.Context, method, url, token, tenant string, body []byte, hdr map[string]string) (apiResp, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return apiResp{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if tenant != "" {
		req.Header.Set("x-tenant-id", tenant)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return apiResp{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return apiResp{}, err
	}
	return apiResp{Status: resp.StatusCode, Body: data, Header: resp.Header}, nil
}

// ---- events ----

// traceEvents returns the events of one trace: started, an entity, a policy
// evaluation, an action and the finish.
func traceEvents(trace string) []*event.Envelope {
	mk := func(seq int64, typ string, payload map[string]any) *event.Envelope {
		return &event.Envelope{
			EventID: fmt.Sprintf("%s-e%d", trace, seq), TraceID: trace, TraceSeq: seq, EventType: typ,
			OccurredAt:     "2026-01-01T00:00:00Z",
			Source:         event.Source{ProducerID: "reliability", System: "reliability"},
			Actor:          event.Actor{ActorType: "agent", ActorID: "reliability-agent"},
			IdempotencyKey: fmt.Sprintf("%s:%d", trace, seq), SchemaVersion: 1, Tags: []string{"reliability"},
			Payload: payload,
		}
	}
	ent := map[string]any{"entity_type": "ticket", "entity_id": trace, "system": "rel"}
	return []*event.Envelope{
		mk(0, event.TypeTraceStarted, map[string]any{"workflow": "reliability", "title": "trace " + trace, "primary_entity": ent}),
		mk(1, event.TypeEntityObserved, map[string]any{"entity": map[string]any{"entity_type": "account", "entity_id": "acct-" + trace[len(trace)-1:], "system": "crm"}, "role": "related", "facts": []any{}}),
		mk(2, event.TypePolicyEvaluated, map[string]any{"policy": map[string]any{"policy_id": "p1", "policy_version": "1"}, "inputs": []any{}, "decision": "allow"}),
		mk(3, event.TypeActionCommitted, map[string]any{"action_id": "a-" + trace, "status": "success"}),
		mk(4, event.TypeTraceFinished, map[string]any{"outcome": "success"}),
	}
}

// exceptionTrace returns a trace that opens a review workflow item
// (ExceptionRequested) and stays open.
func exceptionTrace(trace string) []*event.Envelope {
	evs := traceEvents(trace)[:3]
	evs[2].Payload["decision"] = "require_exception"
	ex := *evs[0]
	ex.EventID, ex.TraceSeq, ex.EventType = trace+"-e3", 3, event.TypeExceptionRequested
	ex.IdempotencyKey = trace + ":3"
	ex.Payload = map[string]any{"exception_id": "ex-" + trace, "policy": map[string]any{"policy_id": "p1", "policy_version": "1"}, "reason": "reliability"}
	return append(evs, &ex)
}

func encode(t testing.TB, env *event.Envelope) []byte {
	data, err := json.Marshal(env)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return data
}

// ---- database checks ----

func openPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// checkLog asserts that every acknowledged event id is in the tenant's log
// exactly once and that the log holds nothing else from these writers.
func checkLog(t testing.TB, pool *pgxpool.Pool, tenant string, acked map[string]bool) (rows int) {
	t.Helper()
	ctx := context.Background()
	counts := map[string]int{}
	r, err := pool.Query(ctx, `SELECT event_id, count(*) FROM dg_event_log WHERE tenant_id = $1 AND producer_id = 'reliability' GROUP BY event_id`, tenant)
	if err != nil {
		t.Fatalf("query log: %v", err)
	}
	for r.Next() {
		var id string
		var n int
		if err := r.Scan(&id, &n); err != nil {
			t.Fatalf("scan: %v", err)
		}
		counts[id] = n
		rows += n
	}
	if err := r.Err(); err != nil {
		t.Fatalf("rows: %v", err)
	}
	var lost, dup []string
	for id := range acked {
		switch counts[id] {
		case 1:
		case 0:
			lost = append(lost, id)
		default:
			dup = append(dup, id)
		}
	}
	sort.Strings(lost)
	if len(lost) > 0 || len(dup) > 0 {
		t.Fatalf("acknowledged events lost: %d %v, duplicated: %d %v", len(lost), head(lost), len(dup), head(dup))
	}
	if rows != len(acked) {
		var extra []string
		for id := range counts {
			if !acked[id] {
				extra = append(extra, id)
			}
		}
		t.Fatalf("log holds %d events of the writers, %d acknowledged; unacknowledged in the log: %v", rows, len(acked), head(extra))
	}
	return rows
}

func head(s []string) []string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// waitCaughtUp waits until every projection cursor of tenant reaches the
// tenant's last log_seq.
func waitCaughtUp(t testing.TB, pool *pgxpool.Pool, tenant string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var lastMsg string
	for time.Since(start) < limit {
		var headSeq int64
		var behind, cursors int
		err := pool.QueryRow(context.Background(), `
			SELECT coalesce((SELECT max(log_seq) FROM dg_event_log WHERE tenant_id = $1), 0),
			       (SELECT count(*) FROM dg_projection_cursors WHERE tenant_id = $1),
			       (SELECT count(*) FROM dg_projection_cursors WHERE tenant_id = $1 AND last_log_seq < (SELECT coalesce(max(log_seq),0) FROM dg_event_log WHERE tenant_id = $1))`,
			tenant).Scan(&headSeq, &cursors, &behind)
		if err == nil && cursors > 0 && behind == 0 {
			return time.Since(start)
		}
		lastMsg = fmt.Sprintf("head %d, %d cursors, %d behind, err %v", headSeq, cursors, behind, err)
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("projections of %s did not catch up within %s: %s", tenant, limit, lastMsg)
	return 0
}

// goroutineCount is runtime.NumGoroutine for in-process nodes.
func goroutineCount() int { return runtime.NumGoroutine() }

// pct returns the p-th percentile of ds (sorted in place).
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(float64(len(ds)-1) * p)
	return ds[i]
}

// ---- accounts ----

// Tokens of the suite's accounts file. Each writer of a load test has its
// own account, so the per-account write limit (300/min) does not throttle
// the load; the fixed accounts cover every account kind of the auth tests.
func writerToken(w int) string { return fmt.Sprintf("rel-writer-%02d-token-5b0c1e7d9a", w) }

const (
	tokReader      = "rel-reader-token-8f14e45fceea167a"
	tokWriter      = "rel-writer-token-c9f0f895fb98ab91"
	tokAdmin       = "rel-admin-token-45c48cce2e2d7fbd"
	tokOtherReader = "rel-other-reader-token-d3d9446802a4"
	tokOtherWriter = "rel-other-writer-token-6512bd43d9ca"
	tokOtherAdmin  = "rel-other-admin-token-c20ad4d76fe97"
	tokNoRole      = "rel-norole-token-aab3238922bcc25a"
	tokRotatedOld  = "rel-rotated-old-token-9bf31c7ff062"
	tokRotatedNew  = "rel-rotated-new-token-c74d97b01eae"
	tokRevoked     = "rel-revoked-token-70efdf2ec9b08607"
)

// writeAccounts writes the suite's bootstrap file; rotated=true drops the
// old token of rel-rotated and revoked=true drops the rel-revoked account.
func writeAccounts(t testing.TB, path string, writers int, rotated, revoked bool) {
	t.Helper()
	all := []string{"projection_replay", "projection_rebuild", "workflow_review", "workflow_escalate", "workflow_assign", "workflow_override", "workflow_export"}
	wf := []string{"workflow_review", "workflow_assign"}
	type acct struct {
		ID          string   `json:"account_id"`
		Roles       []string `json:"roles"`
		Permissions []string `json:"permissions"`
		Tenants     []string `json:"tenant_ids"`
		Tokens      []string `json:"tokens"`
	}
	accts := []acct{
		{"rel-reader", []string{"reader"}, []string{}, []string{"default"}, []string{tokReader}},
		{"rel-writer", []string{"writer"}, wf, []string{"default"}, []string{tokWriter}},
		{"rel-admin", []string{"admin"}, all, []string{"default"}, []string{tokAdmin}},
		{"rel-other-reader", []string{"reader"}, []string{}, []string{"other"}, []string{tokOtherReader}},
		{"rel-other-writer", []string{"writer"}, wf, []string{"other"}, []string{tokOtherWriter}},
		{"rel-other-admin", []string{"admin"}, all, []string{"other"}, []string{tokOtherAdmin}},
		{"rel-norole", []string{}, []string{}, []string{"default"}, []string{tokNoRole}},
	}
	rot := acct{"rel-rotated", []string{"writer"}, wf, []string{"default"}, []string{tokRotatedOld, tokRotatedNew}}
	if rotated {
		rot.Tokens = []string{tokRotatedNew}
	}
	accts = append(accts, rot)
	if !revoked {
		accts = append(accts, acct{"rel-revoked", []string{"admin"}, all, []string{"default"}, []string{tokRevoked}})
	}
	for w := 0; w < writers; w++ {
		accts = append(accts, acct{fmt.Sprintf("rel-writer-%02d", w), []string{"writer"}, wf, []string{"default"}, []string{writerToken(w)}})
	}
	doc := map[string]any{"operator_console_account_id": "rel-admin", "service_accounts": accts}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
