//go:build unix

package credentials

import (
	"os/exec"
	"syscall"
)

// setProcessGroup runs cmd in a process group of its own and makes a
// cancel kill the whole group, so that a script's children die with it.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
