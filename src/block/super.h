/*
 * super.h: opening a metadata/data device pair and verifying their super blocks.
 *
 * Used by the daemon at mount and by the offline tools.  Every check explains itself: a
 * mount of swapped, mismatched or unformatted devices fails with a message that says which
 * device is wrong and why, and nothing is ever written by the checks.
 */
#ifndef SCOUTFS_SUPER_H
#define SCOUTFS_SUPER_H

#include <stdbool.h>
#include <stddef.h>

#include "format/format.h"

struct dev;

struct super_pair {
	struct dev *meta;
	struct dev *data;
	struct scoutfs_super_block *meta_super; /* aligned 4 KiB buffer */
	struct scoutfs_super_block *data_super;
};

/*
 * Open both devices (read-write unless rdonly) and verify both supers: magic, checksum,
 * block number, format version, which device is the metadata one, matching volume ids and
 * versions, and recorded sizes that fit the devices.  On failure why holds a message.
 */
int super_open_pair(const char *meta_path, const char *data_path, bool rdonly,
		    struct super_pair *sp, char *why, size_t why_len);
void super_close_pair(struct super_pair *sp);

/* read and verify one super (fsid 0 skips the fsid check); why explains a failure */
int super_read(struct dev *dev, u64 fsid, struct scoutfs_super_block *super, char *why,
	       size_t why_len);

#endif
