//go:build !unix

package credentials

import "os/exec"

// setProcessGroup does nothing here: on cancel, exec kills the process.
func setProcessGroup(*exec.Cmd) {}
