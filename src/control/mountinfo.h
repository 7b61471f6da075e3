/*
 * mountinfo.h: finding mounts in /proc/self/mountinfo.
 *
 * The CLI maps any path to its mount by the path's st_dev; the daemon finds its own mount's
 * device number by mount point without statting it (a stat of its own mount point from the
 * wrong thread would wait on itself).  Both ends use these few lookups, which only read the
 * file.  Mount points are returned unescaped (mountinfo writes space, tab, newline and
 * backslash as octal escapes).
 */
#ifndef SCOUTFS_CONTROL_MOUNTINFO_H
#define SCOUTFS_CONTROL_MOUNTINFO_H

#include <limits.h>

#define MOUNTINFO_DEFAULT_PATH "/proc/self/mountinfo"

struct mountinfo_ent {
	unsigned int maj;
	unsigned int min;
	char mountpoint[PATH_MAX];
	char fstype[64];
	char source[PATH_MAX];
};

/*
 * Find a mount with device maj:min in the mountinfo file at path (NULL for this process's).
 * Bind mounts share a device number; the first line whose type is fstype wins, otherwise the
 * first line with the device (so a caller can say what the path is instead).  Returns 0,
 * -ENOENT if no line has the device, or another -errno if the file cannot be read.
 */
int mountinfo_find_dev(const char *path, unsigned int maj, unsigned int min, const char *fstype,
                       struct mountinfo_ent *ent);

/*
 * Find the mount at mountpoint with type fstype (NULL for any).  When mounts are stacked on
 * one mount point the last (topmost) one wins.  Returns 0, -ENOENT, or another -errno.
 */
int mountinfo_find_mountpoint(const char *path, const char *mountpoint, const char *fstype,
                              struct mountinfo_ent *ent);

#endif
