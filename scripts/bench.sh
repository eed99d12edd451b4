#!/usr/bin/env bash
# The performance harness behind the README's Performance table: installs
# wrk if it is missing, then runs e2e's BenchmarkLoad once and prints the
# table. Not part of the test command: it is a measurement, not a check.
#
#   SIGNETTEST_LOAD_DURATION  how long each throughput scenario runs (default 10s)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GOTOOLCHAIN=go1.27.3 # as scripts/test.sh
if ! command -v wrk >/dev/null; then
	SUDO=
	[ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends wrk
fi
exec go test -run '^$' -bench '^BenchmarkLoad$' -benchtime 1x -timeout 30m ./e2e/
