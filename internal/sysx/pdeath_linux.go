package sysx

import (
	"os/exec"
	"syscall"
)

// DieWithParent asks the kernel to send sig to cmd's process when this
// process dies, so a crashed parent leaks no child server.
func DieWithParent(cmd *exec.Cmd, sig syscall.Signal) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = sig
	return nil
}
