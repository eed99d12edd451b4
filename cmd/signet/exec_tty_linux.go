package main

import (
	"os"
	"syscall"
	"unsafe"
)

// terminalSignals tells which signals the terminal already delivered to the
// command. A key like Ctrl-C sends SIGINT to the whole foreground process
// group, signet and the command alike; forwarding it as well would give
// the command two, and programs that read a second interrupt as "abort
// now" would skip their clean shutdown. sudo checks the sender in the
// signal's siginfo for this; Go does not expose siginfo, so the test is
// whether our process group (which the command shares) is the foreground
// group of our controlling terminal when the signal arrives.
func terminalSignals() (fromTerminal func(os.Signal) bool, done func()) {
	tty, err := os.Open("/dev/tty")
	if err != nil {
		// No controlling terminal: every signal came from someone's kill.
		return func(os.Signal) bool { return false }, func() {}
	}
	return func(s os.Signal) bool {
		if s != syscall.SIGINT && s != syscall.SIGQUIT && s != syscall.SIGHUP {
			return false
		}
		var pgrp int32
		_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, tty.Fd(), syscall.TIOCGPGRP, uintptr(unsafe.Pointer(&pgrp)))
		return errno == 0 && int(pgrp) == syscall.Getpgrp()
	}, func() { _ = tty.Close() }
}
