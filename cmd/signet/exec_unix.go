//go:build !windows

package main

import (
	"os"
	"syscall"
)

// forwardedSignals are passed on to the command that `signet exec` runs,
// so that it, not signet, decides what an interrupt or a reload means.
func forwardedSignals() []os.Signal {
	return []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}
}
