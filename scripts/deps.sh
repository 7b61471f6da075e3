#!/bin/bash
#
# deps.sh: install the Debian 12 packages scoutfs needs to build, run and test.
# Idempotent and quiet when everything is already there; run as root.
#
set -eu

pkgs=(
	meson ninja-build pkg-config gcc      # build
	libfuse3-dev fuse3                    # FUSE library and fusermount3
	libbsd-dev                            # <bsd/sys/tree.h> red-black trees
	libcmocka-dev                         # unit tests
	python3-pytest python3-pytest-timeout # cluster tests
	util-linux e2fsprogs                  # mount/umount, and mkfs.ext4 for bench baselines
	acl                                   # setfacl/getfacl for the ACL tests
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: installing ${missing[*]} needs root" >&2
	exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
