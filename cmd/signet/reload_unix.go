//go:build !windows

package main

import (
	"os"
	"syscall"
)

// reloadSignals make serve load its config again.
func reloadSignals() []os.Signal { return []os.Signal{syscall.SIGHUP} }
