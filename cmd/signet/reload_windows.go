package main

import "os"

// reloadSignals: Windows has no SIGHUP; serve reloads when its config
// file changes.
func reloadSignals() []os.Signal { return nil }
