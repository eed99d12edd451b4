#!/usr/bin/env bash
# Runs signet's fuzz targets: every "func FuzzXxx(" in a _test.go file, each
# for TIME in its own package (go test -fuzz takes one target at a time).
# scripts/test.sh calls it for a short pass; alone it is the long run.
#
#   scripts/fuzz.sh [-t TIME] [-m TIME] [-l] [PATTERN]
#
#   -t TIME   per-target fuzz time, as go test -fuzztime takes it (10m, 1h,
#             or 50000x for a count); default $SIGNETTEST_FUZZTIME, else 5s
#   -m TIME   the most time spent minimizing one new input (-fuzzminimizetime);
#             default 10s, not Go's 60s, which can eat a short run whole
#   -l        list the matching targets (package and name) and exit
#   PATTERN   an extended regexp: only targets whose name or package
#             directory matches run (FuzzSTSAnswer, ^./signer$, IoT|MFA)
#
# A failing input is written to PKG/testdata/fuzz/NAME/ by go test; commit
# it with the fix, and it stays a regression test that go test runs.
# Exits non-zero if any target failed, after running all of them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The toolchain signet is built and tested with (see scripts/test.sh).
export GOTOOLCHAIN=go1.27.3

usage() { sed -n '6,15s/^# \{0,1\}//p' "$0" >&2; exit 2; }

fuzztime=${SIGNETTEST_FUZZTIME:-5s}
minimizetime=10s
list=false
while getopts 't:m:lh' opt; do
	case $opt in
	t) fuzztime=$OPTARG ;;
	m) minimizetime=$OPTARG ;;
	l) list=true ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
(($# <= 1)) || usage
pattern=${1:-}

log() { printf '==> %s\n' "$*" >&2; }

# fuzz_run NAME DIR: go test -fuzz of one target, no seed tests.
fuzz_run() {
	go test -run '^$' -fuzz "^${1}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimizetime" "$2" </dev/null
}

# fuzz_one NAME DIR: one target for $fuzztime. Go's fuzzer sometimes ends
# with a bare "context deadline exceeded" when the time runs out while a
# worker is busy (seen on a loaded 2-core machine); that is no finding (a
# finding writes a failing input), so such a run is tried once more.
fuzz_one() {
	local out rc=0
	out=$(fuzz_run "$@" 2>&1) || rc=$?
	printf '%s\n' "$out"
	if [ "$rc" != 0 ] && grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
		log "fuzz $1: deadline flake, no failing input: once more"
		fuzz_run "$@"
		return
	fi
	return "$rc"
}

# targets prints "DIR NAME" for every fuzz target, sorted.
targets() {
	local file name
	while IFS=: read -r file name; do
		[ -n "$file" ] || continue
		name=${name#func }
		name=${name%%(*}
		printf '%s %s\n' "./$(dirname "${file#./}")" "$name"
	done < <(grep -rEo --include='*_test.go' --exclude-dir=.git --exclude-dir=vendor --exclude-dir=testdata \
		'^func Fuzz[A-Za-z0-9_]*\(' . | sort)
}

rc=0 n=0
failed=()
while read -r dir name; do
	if [ -n "$pattern" ] && ! grep -Eq -- "$pattern" <<<"$name" && ! grep -Eq -- "$pattern" <<<"$dir"; then
		continue
	fi
	n=$((n + 1))
	if $list; then
		printf '%s %s\n' "$dir" "$name"
		continue
	fi
	log "fuzz $name in $dir for $fuzztime"
	if ! fuzz_one "$name" "$dir"; then
		rc=1
		failed+=("$dir $name")
	fi
done < <(targets)

$list && exit 0
((n > 0)) || { log "fuzz: no target matches ${pattern:-anything}"; exit 1; }
if ((${#failed[@]})); then
	log "fuzz: $n target(s), ${#failed[@]} failed:"
	printf '    %s\n' "${failed[@]}" >&2
else
	log "fuzz: $n target(s) passed"
fi
exit $rc
