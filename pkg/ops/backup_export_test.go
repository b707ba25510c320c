package ops

import "testing"

// SetAfterExport makes every Backup of this test binary call f once its
// snapshot is exported and pg_dump runs (until the test ends).
func SetAfterExport(t *testing.T, f func()) {
	testAfterExport = f
	t.Cleanup(func() { testAfterExport = nil })
}
