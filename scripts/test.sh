#!/bin/bash
#
# test.sh: install, build and run the whole default test suite (run as root).
#
#   1. unit tests (cmocka) of the release build;
#   2. cluster tests (pytest) against the installed release build: real daemons and mounts;
#   3. the same unit and cluster tests with AddressSanitizer + UndefinedBehaviorSanitizer
#      (the cluster tests then run the sanitized daemon and CLI; skip with SCOUTFS_NO_ASAN=1).
#
# Extra arguments are passed to pytest (e.g. -k crash, -x).  Each phase has a time limit so
# a hang fails the run instead of stalling it.
#
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

phase() { printf '\n=== %s (%s)\n' "$*" "$(date +%T)"; }

if [ "$(id -u)" -ne 0 ]; then
	echo "test.sh: the cluster tests mount filesystems and must run as root" >&2
	exit 1
fi

phase "dependencies"
scripts/deps.sh

phase "build"
scripts/build.sh build
meson install -C build --quiet >/dev/null

phase "unit tests"
timeout 900 meson test -C build --print-errorlogs --num-processes 2

# Debian's pytest runs on /usr/bin/python3, which may not be the python3 first on PATH
pytest=(/usr/bin/python3 -m pytest -q -p no:cacheprovider --durations=10)

phase "cluster tests"
(cd tests/cluster && timeout 1800 "${pytest[@]}" "$@")

if [ "${SCOUTFS_NO_ASAN:-0}" != 1 ]; then
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

	phase "sanitizer build"
	scripts/build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false

	phase "sanitizer unit tests"
	timeout 1200 meson test -C build-asan --print-errorlogs --num-processes 2 \
		--timeout-multiplier 4

	phase "sanitizer cluster tests"
	(cd tests/cluster &&
		SCOUTFS_DAEMON="$top/build-asan/src/daemon/scoutfsd" \
		SCOUTFS_BIN_DIR="$top/build-asan" \
		SCOUTFS_SANITIZED=1 \
		timeout 2400 "${pytest[@]}" "$@")
fi

phase "all tests passed"
