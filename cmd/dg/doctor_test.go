package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

type doctorJSON struct {
	OK      bool   `json:"ok"`
	Mode    string `json:"mode"`
	Summary struct {
		Pass int `json:"pass"`
		Warn int `json:"warn"`
		Fail int `json:"fail"`
	} `json:"summary"`
	Checks []struct {
		ID      string `json:"id"`
		Status  string `json:"status"`
		Message string `json:"message"`
		Fix     string `json:"fix"`
	} `json:"checks"`
}

func (d doctorJSON) status(id string) string {
	for _, c := range d.Checks {
		if c.ID == id {
			return c.Status
		}
	}
	return "(missing)"
}

// doctorManifest writes a managed manifest whose server port is free and
// whose accounts file has the given mode.
func doctorManifest(t *testing.T, extraManaged string, accountsMode os.FileMode) (path, accounts string) {
	t.Helper()
	dir := reachableTempDir(t)
	accounts = filepath.Join(dir, "accounts.json")
	if err := os.WriteFile(accounts, []byte(`{}`), accountsMode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(accounts, accountsMode); err != nil {
		t.Fatal(err)
	}
	path = writeManagedManifest(t, dir, testFreePort(t), extraManaged)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("server:\n  listen: 127.0.0.1:" + strconv.Itoa(testFreePort(t)) + "\naccounts:\n  file: " + accounts + "\n"); err != nil {
		t.Fatal(err)
	}
	return path, accounts
}

func parseDoctor(t *testing.T, out string) doctorJSON {
	t.Helper()
	var d doctorJSON
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("doctor -o json is not JSON: %v\n%s", err, out)
	}
	if len(d.Checks) == 0 || d.Summary.Pass+d.Summary.Warn+d.Summary.Fail != len(d.Checks) {
		t.Fatalf("summary %+v does not count %d checks", d.Summary, len(d.Checks))
	}
	for _, c := range d.Checks {
		switch c.Status {
		case "PASS":
		case "WARN", "FAIL":
			if c.Fix == "" {
				t.Errorf("%s %s has no fix hint", c.Status, c.ID)
			}
		default:
			t.Errorf("check %s has status %q", c.ID, c.Status)
		}
	}
	return d
}

func TestDoctorJSONFail(t *testing.T) {
	dir := reachableTempDir(t)
	empty := filepath.Join(dir, "nobin")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	mf, accounts := doctorManifest(t, "    bin_dir: "+empty, 0o640)
	noPath := func(k string) (string, bool) { return "", k == "PATH" }
	code, out, errOut := runDG(t, noPath, "doctor", "-f", mf, "-o", "json")
	if code != exitCheckFailed {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	d := parseDoctor(t, out)
	if d.OK || d.Mode != "managed" || d.Summary.Fail < 2 {
		t.Fatalf("report = %+v", d)
	}
	if got := d.status("postgres.binaries"); got != "FAIL" {
		t.Errorf("postgres.binaries = %s, want FAIL", got)
	}
	if got := d.status("accounts.file"); got != "FAIL" {
		t.Errorf("accounts.file (mode 0640) = %s, want FAIL", got)
	}
	for _, c := range d.Checks {
		if c.ID == "accounts.file" && (!strings.Contains(c.Message, "its group") || c.Fix != "chmod 600 "+accounts) {
			t.Errorf("accounts.file check = %+v", c)
		}
	}
}

func TestDoctorJSONWarnOnly(t *testing.T) {
	mf, _ := doctorManifest(t, "", 0o600)
	// No file system has 2^40 MiB free: both disk checks warn.
	code, out, errOut := runDG(t, pathOnlyEnv, "doctor", "-f", mf, "-o", "json", "--disk-warn-mib", "1099511627776", "--disk-fail-mib", "1")
	if code != exitOK {
		t.Fatalf("warnings alone must exit 0, got %d\n%s%s", code, out, errOut)
	}
	d := parseDoctor(t, out)
	if !d.OK || d.Summary.Fail != 0 || d.Summary.Warn != 2 {
		t.Fatalf("report = %+v", d)
	}
	for _, id := range []string{"disk.data_dir", "disk.backup_dir"} {
		if got := d.status(id); got != "WARN" {
			t.Errorf("%s = %s, want WARN", id, got)
		}
	}
	for _, id := range []string{"postgres.binaries", "postgres.pg_dump", "postgres.pg_restore", "user", "data_dir", "port.postgres", "port.server", "accounts.file"} {
		if got := d.status(id); got != "PASS" {
			t.Errorf("%s = %s, want PASS", id, got)
		}
	}
}

func TestDoctorTextAndBadFlags(t *testing.T) {
	mf, _ := doctorManifest(t, "", 0o600)
	code, out, errOut := runDG(t, pathOnlyEnv, "doctor", "-f", mf, "--disk-fail-mib", "1", "--disk-warn-mib", "1")
	if code != exitOK || !strings.Contains(out, "PASS") || !strings.Contains(out, "0 FAIL") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(out, "\x1b[") {
		t.Fatalf("colour codes in non-terminal output:\n%q", out)
	}
	code, _, errOut = runDG(t, pathOnlyEnv, "doctor", "-f", mf, "--disk-fail-mib", "10", "--disk-warn-mib", "1")
	if code != exitUsage {
		t.Fatalf("fail threshold above warn: exit %d, want 2\n%s", code, errOut)
	}
}
