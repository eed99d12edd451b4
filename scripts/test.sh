#!/usr/bin/env bash
# The project's one test command: installs what the tests need (idempotent,
# quick when already there), then gofmt, go vet, staticcheck, govulncheck, go test -race,
# and a short fuzz pass over every Fuzz* target. Prints a one-line summary.
#
# Environment it reads (all optional):
#   SIGNETTEST_VERSITYGW   use this versitygw binary instead of the cached one
#   SIGNETTEST_STATICCHECK use this staticcheck binary instead of the cached one
#   SIGNETTEST_PEBBLE      use this Pebble (ACME server) binary instead of the cached one
#   SIGNETTEST_PEBBLE_TESTDIR  Pebble's test/ directory (its test CA and config);
#                          default: from the module cache, downloaded if missing
#   SIGNETTEST_FUZZTIME    per-target fuzz time (default 5s; see scripts/fuzz.sh)
#   SIGNETTEST_SOFTHSM2_MODULE  the SoftHSM2 PKCS#11 module for credentials/pkcs11
#                          (default /usr/lib/softhsm/libsofthsm2.so)
#   SIGNETTEST_VULNDB      a govulncheck database directory to use instead of
#                          the one built from golang.org/x/vulndb
#   CI=true                missing peers fail the e2e and pkcs11 tests instead of skipping
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Go 1.26.8, the machine's own Go, has standard-library vulnerabilities
# fixed only in later releases; signet is built and tested with the newer
# toolchain, which the go command takes from the module proxy like a module.
export GOTOOLCHAIN=go1.27.3

VERSITYGW_VERSION=v1.8.0
PEBBLE_VERSION=v2.10.3 # e2e/acme_test.go names the same version
STATICCHECK_VERSION=v0.8.2 # staticcheck 2026.2.2
GOVULNCHECK_VERSION=v1.9.0
# The vulnerability database, as a module: govulncheck reads it offline
# once indexdb has turned its OSV files into a database directory, so the
# check needs nothing but the module proxy.
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018
FUZZTIME=${SIGNETTEST_FUZZTIME:-5s}
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/signet-test-peers/bin"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go is not installed (Go 1.26 or newer is needed)"
GOVERSION=$(go env GOVERSION) || die "go cannot switch to GOTOOLCHAIN=$GOTOOLCHAIN (it comes from the module proxy)"

# ---------------------------------------------------------------- packages
# curl and python3 are e2e clients; ca-certificates for the module proxy;
# gcc and libc6-dev because -race needs cgo; softhsm2 (a real PKCS#11
# token) and opensc (its pkcs11-tool) for credentials/pkcs11.
missing_pkgs=()
command -v curl >/dev/null || missing_pkgs+=(curl)
command -v python3 >/dev/null || missing_pkgs+=(python3)
[ -e /etc/ssl/certs/ca-certificates.crt ] || missing_pkgs+=(ca-certificates)
command -v gcc >/dev/null || missing_pkgs+=(gcc libc6-dev)
{ command -v softhsm2-util >/dev/null && command -v pkcs11-tool >/dev/null; } || missing_pkgs+=(softhsm2 opensc)
# clang, lld, wasi-libc and clang's wasm32 runtime build the C example
# WebAssembly provider in extensions/.
{ command -v clang >/dev/null && command -v wasm-ld >/dev/null && [ -e /usr/include/wasm32-wasi/stdio.h ] &&
	compgen -G '/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a' >/dev/null; } ||
	missing_pkgs+=(clang lld wasi-libc libclang-rt-14-dev-wasm32)
# mosquitto is the real MQTT broker behind the MQTT-over-WebSocket test.
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing_pkgs+=(mosquitto)
if ((${#missing_pkgs[@]})); then
	log "installing Debian packages: ${missing_pkgs[*]}"
	SUDO=
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing_pkgs[*]}"
		SUDO=sudo
	fi
	$SUDO apt-get update
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
		curl python3 ca-certificates "${missing_pkgs[@]}"
fi

# ------------------------------------------------------------- Go tools
mkdir -p "$CACHE"
# go_tool NAME PKG VERSION: install PKG@VERSION into $CACHE unless the marker
# file says that version, built with this Go, is already there (a tool that
# loads packages must be as new as the Go it reads).
go_tool() {
	local name=$1 pkg=$2 version="$3 $GOVERSION" marker="$CACHE/$1.version"
	if [ -x "$CACHE/$name" ] && [ "$(cat "$marker" 2>/dev/null)" = "$version" ]; then
		return 0
	fi
	log "installing $name $version into $CACHE"
	rm -f "$marker"
	(cd / && GOFLAGS= GOBIN="$CACHE" go install "$pkg@$3")
	echo "$version" >"$marker"
}
if [ -z "${SIGNETTEST_VERSITYGW:-}" ]; then
	go_tool versitygw github.com/versity/versitygw/cmd/versitygw "$VERSITYGW_VERSION"
	SIGNETTEST_VERSITYGW="$CACHE/versitygw"
fi
[ -x "$SIGNETTEST_VERSITYGW" ] || die "SIGNETTEST_VERSITYGW=$SIGNETTEST_VERSITYGW is not executable"
export SIGNETTEST_VERSITYGW
if [ -z "${SIGNETTEST_PEBBLE:-}" ]; then
	go_tool pebble github.com/letsencrypt/pebble/v2/cmd/pebble "$PEBBLE_VERSION"
	SIGNETTEST_PEBBLE="$CACHE/pebble"
fi
[ -x "$SIGNETTEST_PEBBLE" ] || die "SIGNETTEST_PEBBLE=$SIGNETTEST_PEBBLE is not executable"
export SIGNETTEST_PEBBLE
if [ -z "${SIGNETTEST_PEBBLE_TESTDIR:-}" ]; then
	# The cached binary outlives a cleaned module cache: make sure the
	# module (its test CA and config) is there too. Quick when it is.
	pebble_dir=$(cd / && GOFLAGS= go mod download -json "github.com/letsencrypt/pebble/v2@$PEBBLE_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
	[ -n "$pebble_dir" ] || die "go mod download github.com/letsencrypt/pebble/v2@$PEBBLE_VERSION gave no directory"
	SIGNETTEST_PEBBLE_TESTDIR="$pebble_dir/test"
fi
[ -f "$SIGNETTEST_PEBBLE_TESTDIR/certs/pebble.minica.pem" ] ||
	die "SIGNETTEST_PEBBLE_TESTDIR=$SIGNETTEST_PEBBLE_TESTDIR has no certs/pebble.minica.pem"
export SIGNETTEST_PEBBLE_TESTDIR
if [ -z "${SIGNETTEST_STATICCHECK:-}" ]; then
	go_tool staticcheck honnef.co/go/tools/cmd/staticcheck "$STATICCHECK_VERSION"
	SIGNETTEST_STATICCHECK="$CACHE/staticcheck"
fi
go_tool govulncheck golang.org/x/vuln/cmd/govulncheck "$GOVULNCHECK_VERSION"
if [ -z "${SIGNETTEST_VULNDB:-}" ]; then
	SIGNETTEST_VULNDB="$CACHE/../vulndb-$VULNDB_VERSION"
	if [ ! -f "$SIGNETTEST_VULNDB/index/db.json" ]; then
		go_tool indexdb golang.org/x/vulndb/cmd/indexdb "$VULNDB_VERSION"
		vulndb_dir=$(cd / && GOFLAGS= go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" |
			sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
		[ -d "$vulndb_dir/data/osv" ] || die "go mod download golang.org/x/vulndb@$VULNDB_VERSION has no data/osv"
		log "building the vulnerability database from golang.org/x/vulndb@$VULNDB_VERSION"
		rm -rf "$SIGNETTEST_VULNDB.tmp"
		"$CACHE/indexdb" -vulns "$vulndb_dir/data/osv" -out "$SIGNETTEST_VULNDB.tmp" >/dev/null
		rm -rf "$SIGNETTEST_VULNDB"
		mv "$SIGNETTEST_VULNDB.tmp" "$SIGNETTEST_VULNDB"
	fi
fi

# ------------------------------------------------------------------ phases
declare -a summary=()
failed=()
t_all=$SECONDS

# phase NAME CMD...: runs CMD, records its time and result, goes on after a
# failure so one run reports every broken phase.
phase() {
	local name=$1 t0=$SECONDS rc=0
	shift
	log "$name"
	"$@" || rc=$?
	local dt=$((SECONDS - t0))
	if [ "$rc" = 0 ]; then
		summary+=("$name ok ${dt}s")
	else
		summary+=("$name FAIL ${dt}s")
		failed+=("$name")
		log "$name FAILED (exit $rc)"
	fi
}

check_gofmt() {
	local out
	out=$(gofmt -l .) || return 1
	if [ -n "$out" ]; then
		printf 'gofmt: these files need formatting (run gofmt -w):\n%s\n' "$out" >&2
		return 1
	fi
}

# The guest side of extensions/ (its wasip1 files) is only compiled for
# wasip1, so it is vetted and checked for that target too; e2e's soak
# (scripts/soak.sh) only with the soak tag, so it is vetted and checked
# with it, lest it rot between soaks.
vet_all() {
	go vet ./... && GOOS=wasip1 GOARCH=wasm go vet ./extensions/... && go vet -tags soak ./e2e/
}
staticcheck_all() {
	"$SIGNETTEST_STATICCHECK" ./... && GOOS=wasip1 GOARCH=wasm "$SIGNETTEST_STATICCHECK" ./extensions/... &&
		"$SIGNETTEST_STATICCHECK" -tags soak ./e2e/
}

phase gofmt check_gofmt
phase vet vet_all
phase staticcheck staticcheck_all
# Offline: the database is the vulndb module as of VULNDB_VERSION.
phase govulncheck "$CACHE/govulncheck" -db "file://$(cd "$SIGNETTEST_VULNDB" && pwd)" ./...
# Docker cannot run here: the Dockerfile is checked statically and its
# build command (the README's) is run outside Docker.
phase dockerfile scripts/check-dockerfile.sh --build
# -parallel 4: the refresh end-to-end runs (3 minutes each, mostly waiting)
# run side by side even on 2 cores.
phase test go test -race -count=1 -parallel 4 ./...
# Every Fuzz* target for $FUZZTIME in its package; for a long run, see
# scripts/fuzz.sh (-t 10m, or one target).
phase fuzz scripts/fuzz.sh -t "$FUZZTIME"

total=$((SECONDS - t_all))
IFS=';'
if ((${#failed[@]})); then
	echo "test.sh: FAIL (${failed[*]}) | ${summary[*]} | total ${total}s"
	exit 1
fi
echo "test.sh: PASS | ${summary[*]} | total ${total}s"
