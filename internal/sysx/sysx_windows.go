//go:build windows

package sysx

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/sys/windows"
)

func lockFD(f *os.File) error {
	ol := new(windows.Overlapped)
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return ErrLocked
	}
	return err
}

func unlockFD(f *os.File) error {
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, new(windows.Overlapped))
}

// Writable reports whether the current user may create entries in dir, by
// creating and removing a probe file.
func Writable(dir string) error {
	f, err := os.CreateTemp(dir, ".dg-probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(filepath.Clean(name))
}

// DiskSpace returns the bytes available to the caller and the volume size.
func DiskSpace(path string) (avail, total uint64, err error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return 0, 0, err
	}
	var free, tot, totalFree uint64
	if err := windows.GetDiskFreeSpaceEx(p, &free, &tot, &totalFree); err != nil {
		return 0, 0, err
	}
	return free, tot, nil
}

// Owner is not available as numeric ids on Windows.
func Owner(os.FileInfo) (uid, gid uint32, ok bool) { return 0, 0, false }

// ProcessAlive reports whether a process with this pid exists.
func ProcessAlive(pid int) bool {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return false
	}
	windows.CloseHandle(h)
	return true
}

// RunAs is Unix-only.
func RunAs(*exec.Cmd, uint32, uint32, []uint32) error {
	return fmt.Errorf("running a child as another user: %w (windows)", ErrUnsupported)
}
