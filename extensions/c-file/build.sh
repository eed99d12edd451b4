#!/bin/sh
# Builds the C provider as a WebAssembly module (default) or, with
# --native, as a credential_process binary from the same source.
#
#   ./build.sh [OUT]            -> c-file.wasm   (clang, lld, wasi-libc)
#   ./build.sh --native [OUT]   -> c-file        (any C compiler)
#
# On Debian 12: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32.
# Debian's wasi-libc puts headers in /usr/include/wasm32-wasi and libraries
# in /usr/lib/wasm32-wasi, which clang finds with --sysroot=/usr; with the
# wasi-sdk instead, set WASI_SYSROOT=/opt/wasi-sdk/share/wasi-sysroot.
set -eu
cd "$(dirname "$0")"
if [ "${1:-}" = --native ]; then
	exec "${CC:-cc}" -O2 -Wall -Wextra -o "${2:-c-file}" c_file.c
fi
exec "${CLANG:-clang}" --target=wasm32-wasi --sysroot="${WASI_SYSROOT:-/usr}" -O2 -Wall -Wextra \
	-Wl,--strip-all -o "${1:-c-file.wasm}" c_file.c
