package main

import "os"

// forwardedSignals: Windows delivers only an interrupt, and os.Process can
// pass on nothing but a kill, so exec forwards what it can.
func forwardedSignals() []os.Signal { return []os.Signal{os.Interrupt} }
