package sysx

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLockFileExcludesSecondHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := LockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file description, so a second open
	// in the same process conflicts just like another process would.
	if _, err := LockFile(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	unlock()
	unlock2, err := LockFile(path)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("lock file mode: %v %v", st, err)
	}
}

func TestProbes(t *testing.T) {
	dir := t.TempDir()
	if err := Writable(dir); err != nil {
		t.Fatalf("temp dir not writable: %v", err)
	}
	avail, total, err := DiskSpace(dir)
	if err != nil || total == 0 || avail > total {
		t.Fatalf("DiskSpace = %d, %d, %v", avail, total, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if uid, _, ok := Owner(fi); !ok || int(uid) != os.Getuid() {
		t.Fatalf("Owner = %d, %v; want %d", uid, ok, os.Getuid())
	}
	if !ProcessAlive(os.Getpid()) {
		t.Fatal("this process is not alive?")
	}
}
