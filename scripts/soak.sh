#!/usr/bin/env bash
# The soak behind the README's Soak paragraph: e2e's TestSoak (build tag
# soak, so the test command never compiles it) runs mixed load through one
# signet whose STS credentials refresh about every minute while the fake
# STS fails a third of its calls, and samples signet's RSS, goroutines and
# open files. Not part of the test command: it takes the whole duration.
#
#   SIGNETTEST_SOAK_DURATION  how long the load runs (default 10m)
#   SIGNETTEST_SOAK_OUT       where the JSON summary goes
#                             (default: beside the log, see below)
#   SIGNETTEST_VERSITYGW      the versitygw binary (default: the one
#                             scripts/test.sh caches, installed if missing)
#
# The whole output goes to a log file too (signet's logs are printed only
# when the soak fails, and then they are long); its last lines say where.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GOTOOLCHAIN=go1.27.3 # as scripts/test.sh

VERSITYGW_VERSION=v1.8.0 # as scripts/test.sh
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/signet-test-peers/bin"
if [ -z "${SIGNETTEST_VERSITYGW:-}" ]; then
	marker="$CACHE/versitygw.version"
	want="$VERSITYGW_VERSION $(go env GOVERSION)"
	if [ ! -x "$CACHE/versitygw" ] || [ "$(cat "$marker" 2>/dev/null)" != "$want" ]; then
		printf '==> installing versitygw %s into %s\n' "$VERSITYGW_VERSION" "$CACHE" >&2
		mkdir -p "$CACHE"
		rm -f "$marker"
		(cd / && GOFLAGS= GOBIN="$CACHE" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION")
		echo "$want" >"$marker"
	fi
	SIGNETTEST_VERSITYGW="$CACHE/versitygw"
fi
export SIGNETTEST_VERSITYGW

export SIGNETTEST_SOAK_DURATION=${SIGNETTEST_SOAK_DURATION:-10m}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
log="${TMPDIR:-/tmp}/signet-soak-$stamp.log"
export SIGNETTEST_SOAK_OUT=${SIGNETTEST_SOAK_OUT:-${TMPDIR:-/tmp}/signet-soak-$stamp.json}
# CI=true: a missing peer or an unbuildable signet fails the soak instead
# of skipping it, which would look like a result.
rc=0
CI=true go test -tags soak -run '^TestSoak$' -count=1 -v -timeout 40m ./e2e/ 2>&1 | tee "$log" || rc=$?
printf 'soak.sh: exit %s; log %s; summary %s\n' "$rc" "$log" "$SIGNETTEST_SOAK_OUT" >&2
exit "$rc"
