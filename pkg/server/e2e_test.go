package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/decisiongraph/dg/internal/fixtures"
)

// repoRoot is the directory holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := fixtures.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// dgNode is a `dg up` subprocess on its own managed cluster.
type dgNode struct {
	t    *testing.T
	base string
	cmd  *exec.Cmd
	out  *bytes.Buffer
}

// startDG writes a manifest for a fresh managed cluster in a temp dir
// (0755: the cluster runs as postgres when the test runs as root), starts
// `dg up` with it and waits for /api/readyz.
func startDG(t *testing.T, bin string) *dgNode {
	t.Helper()
	dir, err := os.MkdirTemp("", "dg-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	manifestText := fmt.Sprintf(`server:
  listen: %s
  env: dev
database:
  mode: managed
  pool_size: 10
  managed:
    data_dir: %s
    port: %d
tenants: [default]
seed: []
telemetry:
  prometheus: true
projections:
  batch_size: 500
  poll_interval: 200ms
  allow_rebuild: true
`, listen, filepath.Join(dir, "pgdata"), freePort(t))
	mf := filepath.Join(dir, "dg.yaml")
	if err := os.WriteFile(mf, []byte(manifestText), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &dgNode{t: t, base: "http://" + listen, out: &bytes.Buffer{}}
	n.cmd = exec.Command(bin, "up", "-f", mf)
	n.cmd.Dir = dir
	n.cmd.Env = append(os.Environ(), "DATABASE_URL=")
	pr, pw := io.Pipe()
	n.cmd.Stdout, n.cmd.Stderr = pw, pw
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			n.out.WriteString(sc.Text() + "\n")
		}
	}()
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- n.cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(90 * time.Second):
			_ = n.cmd.Process.Kill()
			<-exited
		}
		<-lines
		if t.Failed() {
			t.Logf("dg up output:\n%s", n.out.String())
		}
	})
	deadline := time.Now().Add(180 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("dg up exited before it was ready: %v", err)
		default:
		}
		resp, err := http.Get(n.base + "/api/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return n
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dg up not ready within 180s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// call sends one API request as a dev account of tenant "default" and
// decodes the envelope's data (or error code).
func (n *dgNode) call(method, path, token string, body []byte) (int, map[string]any, string) {
	n.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r, err := http.NewRequest(method, n.base+path, rd)
	if err != nil {
		n.t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("x-tenant-id", "default")
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Data  map[string]any        `json:"data"`
		Error struct{ Code string } `json:"error"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &env); err != nil {
		n.t.Fatalf("%s %s: %d %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, env.Data, env.Error.Code
}

// TestEndToEndGoldenScenarios builds dg, and for each golden scenario
// starts `dg up` on a fresh managed cluster (digests cover log_seq, so
// each scenario needs a log of its own), appends the scenario over HTTP,
// waits for the projections and reads everything back through every
// read route; the projection digests must equal expected_digest.txt.
func TestEndToEndGoldenScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("builds dg and starts PostgreSQL clusters; skipped with -short")
	}
	root := repoRoot(t)
	golden := fixtures.Path(t, "golden")
	scenarios, err := os.ReadDir(golden)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "dg")
	build := exec.Command("go", "build", "-o", bin, "./cmd/dg")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/dg: %v\n%s", err, out)
	}
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, sc := range scenarios {
		if !sc.IsDir() {
			continue
		}
		dir := filepath.Join(golden, sc.Name())
		t.Run(sc.Name(), func(t *testing.T) { runGoldenScenario(t, bin, dir) })
	}
}

func runGoldenScenario(t *testing.T, bin, dir string) {
	raw, err := os.ReadFile(filepath.Join(dir, "events.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		TraceID string            `json:"trace_id"`
		Events  []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	wantRaw, err := os.ReadFile(filepath.Join(dir, "expected_digest.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(wantRaw)), "\n") {
		name, digest, _ := strings.Cut(strings.TrimSpace(line), ":")
		want[name] = digest
	}
	n := startDG(t, bin)
	for i, ev := range fx.Events {
		if st, _, code := n.call("POST", "/api/v1/events", "dev-writer-token", ev); st != 201 {
			t.Fatalf("append event %d: %d %s", i, st, code)
		}
	}
	// Wait until the live workers are at the head and the digests are
	// refreshed (the runtime refreshes them every 10s).
	var health map[string]any
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, data, code := n.call("GET", "/api/v1/projections/health", "dev-reader-token", nil)
		if st != 200 {
			t.Fatalf("projection health: %d %s", st, code)
		}
		health = data
		if digestsOf(health)["full_projection"] == want["full_projection"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("digests never reached the expected ones: got %v want %v", digestsOf(health), want)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if got := digestsOf(health); !equalMaps(got, want) {
		t.Fatalf("digests %v, want %v", got, want)
	}
	for _, p := range health["projections"].([]any) {
		if pm := p.(map[string]any); pm["is_stale"] != false || pm["pending_events"].(float64) != 0 {
			t.Fatalf("projection not current: %v", pm)
		}
	}

	// The trace: every event, in order, and the projected summary.
	st, data, code := n.call("GET", "/api/v1/traces/"+url.PathEscape(fx.TraceID), "dev-reader-token", nil)
	if st != 200 || len(data["events"].([]any)) != len(fx.Events) || data["summary"] == nil {
		t.Fatalf("trace: %d %s %v", st, code, data)
	}
	summary := data["summary"].(map[string]any)
	if summary["trace_id"] != fx.TraceID {
		t.Fatalf("summary: %v", summary)
	}

	// Context graph around the trace, and its edges page by page.
	q := url.Values{"node_type": {"trace"}, "node_id": {fx.TraceID}, "max_depth": {"2"}}
	st, data, code = n.call("GET", "/api/v1/graph/context?"+q.Encode(), "dev-reader-token", nil)
	if st != 200 || len(data["nodes"].([]any)) < 2 || len(data["edges"].([]any)) == 0 {
		t.Fatalf("context: %d %s %v", st, code, data)
	}
	q = url.Values{"node_type": {"trace"}, "node_id": {fx.TraceID}, "limit": {"10000"}}
	st, data, _ = n.call("GET", "/api/v1/graph/edges?"+q.Encode(), "dev-reader-token", nil)
	if st != 200 {
		t.Fatalf("edges: %d", st)
	}
	all := edgeIDs(data)
	var paged []string
	q.Set("limit", "2")
	for i := 0; ; i++ {
		st, data, code := n.call("GET", "/api/v1/graph/edges?"+q.Encode(), "dev-reader-token", nil)
		if st != 200 || i > 1000 {
			t.Fatalf("edges page %d: %d %s", i, st, code)
		}
		paged = append(paged, edgeIDs(data)...)
		next, _ := data["next_cursor"].(map[string]any)
		if next == nil {
			break
		}
		q.Set("cursor_edge_key", next["edge_key"].(string))
		q.Set("cursor_log_seq", fmt.Sprint(int64(next["log_seq"].(float64))))
	}
	if len(all) == 0 || strings.Join(all, ",") != strings.Join(paged, ",") {
		t.Fatalf("paged edges %v, all edges %v", paged, all)
	}

	// Precedents: the finished trace is found (by outcome when it has one).
	pq := url.Values{"limit": {"10"}}
	if oc, ok := summary["outcome"].(string); ok {
		pq.Set("outcome", oc)
	}
	st, data, code = n.call("GET", "/api/v1/precedents?"+pq.Encode(), "dev-reader-token", nil)
	if st != 200 {
		t.Fatalf("precedents: %d %s", st, code)
	}
	if summary["outcome"] != nil && len(data["precedents"].([]any)) != 1 {
		t.Fatalf("precedents: %v", data)
	}

	// An admin catch-up job completes and leaves the digests alone.
	st, data, code = n.call("POST", "/api/v1/admin/replays", "dev-admin-token", []byte(`{"projection":"all","reason":"e2e"}`))
	if st != 202 {
		t.Fatalf("start replay: %d %s", st, code)
	}
	job := data["run"].(map[string]any)["job_id"].(string)
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, data, _ := n.call("GET", "/api/v1/admin/replays/"+job, "dev-admin-token", nil)
		if s := data["run"].(map[string]any)["status"]; s == "completed" {
			break
		} else if s == "failed" || time.Now().After(deadline) {
			t.Fatalf("replay job: %v", data)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// telemetry.prometheus is on in the manifest: /metrics has the request
	// histogram of the routes just used.
	mresp, err := http.Get(n.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mbody, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	if mresp.StatusCode != 200 || !bytes.Contains(mbody, []byte("decision_graph_web_request_duration_seconds_bucket")) ||
		!bytes.Contains(mbody, []byte(`http_route="/api/v1/graph/edges"`)) || !bytes.Contains(mbody, []byte("decision_graph_projector_pending_events")) {
		t.Fatalf("/metrics: %d\n%s", mresp.StatusCode, mbody)
	}

	// healthz carries the projector and tenant "default"'s projection health.
	resp, err := http.Get(n.base + "/api/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var hz map[string]any
	err = json.NewDecoder(resp.Body).Decode(&hz)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	proj, _ := hz["projector"].(map[string]any)
	if proj == nil || proj["partition_count"].(float64) <= 0 || len(proj["projections"].([]any)) != 3 {
		t.Fatalf("healthz projector: %v", hz["projector"])
	}
	if ph, _ := hz["projection_health"].(map[string]any); ph == nil || ph["full_digest"] != want["full_projection"] {
		t.Fatalf("healthz projection_health: %v", hz["projection_health"])
	}
}

func digestsOf(health map[string]any) map[string]string {
	out := map[string]string{}
	for _, p := range health["projections"].([]any) {
		pm := p.(map[string]any)
		if d, ok := pm["digest"].(string); ok {
			out[pm["projection_name"].(string)] = d
		}
	}
	if d, ok := health["full_digest"].(string); ok {
		out["full_projection"] = d
	}
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func edgeIDs(data map[string]any) []string {
	var out []string
	for _, e := range data["edges"].([]any) {
		out = append(out, e.(map[string]any)["edge_id"].(string))
	}
	_ = sort.Strings
	return out
}
