/*
 * options.h: the scoutfs mount options -- names, defaults, ranges, and the text shown for
 * them.  mount.scoutfs validates them before starting the daemon so a bad option fails the
 * mount at once with a clear message, and the daemon parses the same string again.
 */
#ifndef SCOUTFS_OPTIONS_H
#define SCOUTFS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct mount_options {
	char metadev_path[4096];
	int quorum_slot_nr; /* -1: not a quorum member */
	uint64_t quorum_heartbeat_timeout_ms;
	uint64_t tcp_keepalive_timeout_ms;
	uint64_t orphan_scan_delay_ms;
	uint64_t log_merge_wait_timeout_ms;
	uint32_t lock_idle_count;
	uint32_t ino_alloc_per_lock;
	uint64_t data_prealloc_blocks;
	bool data_prealloc_contig_only;
	bool acl;
	/* generic VFS flags passed through to the FUSE mount */
	bool nosuid;
	bool nodev;
	bool noexec;
	bool rdonly;
};

void mount_options_defaults(struct mount_options *mo);
/*
 * Parse a comma separated option string on top of mo.  Returns 0, or -EINVAL with why
 * describing the first bad option.
 */
int mount_options_parse(struct mount_options *mo, const char *str, char *why, size_t why_len);
/* every option is within range and the required ones are given */
int mount_options_check(const struct mount_options *mo, char *why, size_t why_len);
/* every option with its range, default and meaning, for --help */
void mount_options_help(FILE *f);
/*
 * Change, on top of mo, the options that may change while mounted (every numeric option but
 * tcp_keepalive_timeout_ms) from a "name=value,..." string.  Anything else -- metadev_path,
 * quorum_slot_nr, the keepalive, acl, the VFS flags -- or a value out of range is refused
 * with -EINVAL and why, and then mo is unchanged.
 */
int mount_options_change(struct mount_options *mo, const char *str, char *why, size_t why_len);
/*
 * The options in canonical "name=value" form, in the order the original showed them in
 * /proc/mounts, separated by sep (',' for a mount option string, '\n' for one a line).
 * Returns the length snprintf wanted.
 */
int mount_options_format(const struct mount_options *mo, char sep, char *buf, size_t len);

#endif
