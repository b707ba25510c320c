//go:build !linux

package sysx

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
)

// DieWithParent is Linux-only (prctl PR_SET_PDEATHSIG).
func DieWithParent(*exec.Cmd, syscall.Signal) error {
	return fmt.Errorf("tying a child's life to its parent: %w (%s)", ErrUnsupported, runtime.GOOS)
}
