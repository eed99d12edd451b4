//go:build !linux

package main

import "os"

// terminalSignals: outside Linux signet cannot ask the terminal which
// process group it signals, so every signal is forwarded, and a Ctrl-C
// reaches the command twice (from the terminal and from signet).
func terminalSignals() (fromTerminal func(os.Signal) bool, done func()) {
	return func(os.Signal) bool { return false }, func() {}
}
