#!/bin/bash
#
# build.sh [BUILD_DIR [meson options...]]: configure (once) and build scoutfs.
# The default build is build/ (debugoptimized); scripts/test.sh also builds
# build-asan/ with AddressSanitizer and UndefinedBehaviorSanitizer.
#
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir="${1:-$top/build}"
shift || true

if [ ! -f "$dir/build.ninja" ]; then
	meson setup "$dir" "$top" "$@" >"$dir.setup.log" 2>&1 || {
		cat "$dir.setup.log" >&2
		exit 1
	}
	rm -f "$dir.setup.log"
fi
ninja -C "$dir" >"$dir/ninja.log" 2>&1 || {
	cat "$dir/ninja.log" >&2
	exit 1
}
