#!/bin/bash
#
# quickstart.sh: install, build, make a filesystem on file-backed devices and mount it.
#
# Everything lives in ./local of the source tree (or $SCOUTFS_DIR): sparse 64 GiB files
# meta and data, and the mount point local/mnt.  The quorum has one member, slot 0 on
# 127.0.0.1:$SCOUTFS_PORT (default 12345).  Run as root.  Unmount with: umount local/mnt
#
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir="${SCOUTFS_DIR:-$top/local}"
port="${SCOUTFS_PORT:-12345}"
mnt="$dir/mnt"

say() { printf '\n# %s\n' "$*"; }
show() {
	printf '$ %s\n' "$*"
	"$@"
}

"$top/scripts/deps.sh"
"$top/scripts/build.sh"
meson install -C "$top/build" --quiet >/dev/null

mkdir -p "$mnt"
if grep -q " $(realpath "$mnt") fuse.scoutfs " /proc/self/mountinfo; then
	say "unmounting the earlier quick-start mount"
	umount "$mnt"
fi

say "file-backed devices in $dir"
truncate -s 64G "$dir/meta" "$dir/data"
show scoutfs mkfs -f -Q "0,127.0.0.1,$port" "$dir/meta" "$dir/data"

say "mounting"
show mount -t scoutfs -o "quorum_slot_nr=0,metadev_path=$dir/meta" "$dir/data" "$mnt"

say "the quick start: new and changed inodes are found by walking the meta_seq index"
cd "$mnt"
show touch one
show sync
show scoutfs walk-inodes meta_seq 0 -1 "$mnt"
show touch one
show sync
show scoutfs walk-inodes meta_seq 0 -1 "$mnt"
show scoutfs stat one
show scoutfs statfs -p "$mnt"

say "mounted at $mnt; unmount with: umount $mnt"
