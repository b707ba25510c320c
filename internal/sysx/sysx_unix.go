//go:build unix

package sysx

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

func lockFD(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrLocked
	}
	return err
}

func unlockFD(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }

// Writable reports whether the current user may create entries in dir.
func Writable(dir string) error { return syscall.Access(dir, 0o2|0o1) } // W_OK|X_OK

// DiskSpace returns the bytes available to unprivileged users and the
// total size of the file system holding path.
func DiskSpace(path string) (avail, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
}

// Owner returns the numeric owner of a file.
func Owner(fi os.FileInfo) (uid, gid uint32, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return st.Uid, st.Gid, true
}

// ProcessAlive reports whether a process with this pid exists (it may
// belong to another user).
func ProcessAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// RunAs makes cmd run with the given user and groups (dg must be root).
func RunAs(cmd *exec.Cmd, uid, gid uint32, groups []uint32) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}
	return nil
}
