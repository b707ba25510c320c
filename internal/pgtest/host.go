package pgtest

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// FreePort returns a loopback TCP port that was free a moment ago, for
// tests that start a server (a cluster, dg up) on a port of their own.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// SharedTempDir is t.TempDir made enterable by other accounts: when tests
// run as root, a managed cluster runs as postgres and must reach its data
// directory (t.TempDir makes 0700 directories).
func SharedTempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for p := dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
