package sysx

import (
	"fmt"
	"os"
)

// LockFile takes an exclusive advisory lock on path (created with mode
// 0600 when missing) without waiting. The lock lasts until unlock is called
// or the process dies. A lock held elsewhere gives an error wrapping
// ErrLocked.
func LockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}
	if err := lockFD(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = unlockFD(f)
		f.Close()
	}, nil
}
