// Package e2e holds end-to-end tests: they build the signet binary, run it as
// a separate process, and drive it from outside with real clients (curl,
// python3 urllib, Go net/http) against real peers (versitygw, which verifies
// SigV4 for real). Everything listens on loopback only.
//
// Run with `go test ./e2e/` (the peers are found through SIGNETTEST_VERSITYGW
// or PATH; scripts/test.sh installs them). Benchmarks:
// `go test -run '^$' -bench . ./e2e/`.
package e2e
