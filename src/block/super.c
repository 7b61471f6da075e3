/*
 * super.c: reading and checking the super blocks of a device pair.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/block.h"
#include "block/super.h"
#include "dev/dev.h"

int super_read(struct dev *dev, u64 fsid, struct scoutfs_super_block *super, char *why,
	       size_t why_len)
{
	u64 blkno = SCOUTFS_SUPER_BLKNO;
	int err;

	if (dev_size(dev) < (blkno + 1) << SCOUTFS_BLOCK_SM_SHIFT) {
		snprintf(why, why_len, "%s is too small to hold a scoutfs super block",
			 dev_path(dev));
		return -EINVAL;
	}
	err = dev_read(dev, super, SCOUTFS_BLOCK_SM_SIZE, blkno << SCOUTFS_BLOCK_SM_SHIFT);
	if (err < 0) {
		snprintf(why, why_len, "reading the super block of %s failed: %s", dev_path(dev),
			 strerror(-err));
		return err;
	}
	if (le32_to_cpu(super->hdr.magic) != SCOUTFS_BLOCK_MAGIC_SUPER) {
		snprintf(why, why_len, "%s does not contain a scoutfs filesystem (no super block)",
			 dev_path(dev));
		return -EINVAL;
	}
	if (!block_crc_ok(super, SCOUTFS_BLOCK_SM_SIZE)) {
		snprintf(why, why_len, "the super block of %s has a bad checksum", dev_path(dev));
		return -EIO;
	}
	if (le64_to_cpu(super->hdr.blkno) != blkno) {
		snprintf(why, why_len, "the super block of %s records block %llu, not %llu",
			 dev_path(dev), (unsigned long long)le64_to_cpu(super->hdr.blkno),
			 (unsigned long long)blkno);
		return -EIO;
	}
	if (fsid && le64_to_cpu(super->hdr.fsid) != fsid) {
		snprintf(why, why_len, "%s belongs to filesystem %016llx, not %016llx",
			 dev_path(dev), (unsigned long long)le64_to_cpu(super->hdr.fsid),
			 (unsigned long long)fsid);
		return -EINVAL;
	}
	if (le64_to_cpu(super->fmt_vers) < SCOUTFS_FORMAT_VERSION_MIN ||
	    le64_to_cpu(super->fmt_vers) > SCOUTFS_FORMAT_VERSION_MAX) {
		snprintf(why, why_len,
			 "%s has format version %llu; this build supports versions %d to %d",
			 dev_path(dev), (unsigned long long)le64_to_cpu(super->fmt_vers),
			 SCOUTFS_FORMAT_VERSION_MIN, SCOUTFS_FORMAT_VERSION_MAX);
		return -EINVAL;
	}
	return 0;
}

void super_close_pair(struct super_pair *sp)
{
	dev_close(sp->meta);
	dev_close(sp->data);
	free(sp->meta_super);
	free(sp->data_super);
	memset(sp, 0, sizeof(*sp));
}

int super_open_pair(const char *meta_path, const char *data_path, bool rdonly,
		    struct super_pair *sp, char *why, size_t why_len)
{
	struct scoutfs_super_block *ms, *ds;
	int flags = rdonly ? DEV_RDONLY : DEV_RDWR;
	char overlap[256];
	int err;

	memset(sp, 0, sizeof(*sp));
	err = dev_open(meta_path, flags, &sp->meta);
	if (err < 0) {
		snprintf(why, why_len, "cannot open metadata device %s: %s", meta_path,
			 strerror(-err));
		goto out;
	}
	err = dev_open(data_path, flags, &sp->data);
	if (err < 0) {
		snprintf(why, why_len, "cannot open data device %s: %s", data_path, strerror(-err));
		goto out;
	}
	if (dev_overlaps(sp->meta, sp->data, overlap, sizeof(overlap))) {
		snprintf(why, why_len, "the metadata and data devices must be different: %s",
			 overlap);
		err = -EINVAL;
		goto out;
	}
	sp->meta_super = ms = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);
	sp->data_super = ds = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);
	if (!ms || !ds) {
		snprintf(why, why_len, "out of memory");
		err = -ENOMEM;
		goto out;
	}
	err = super_read(sp->meta, 0, ms, why, why_len);
	if (err < 0)
		goto out;
	err = super_read(sp->data, 0, ds, why, why_len);
	if (err < 0)
		goto out;

	if (!(le64_to_cpu(ms->flags) & SCOUTFS_FLAG_IS_META_BDEV)) {
		if (le64_to_cpu(ds->flags) & SCOUTFS_FLAG_IS_META_BDEV)
			snprintf(why, why_len,
				 "the devices are swapped: %s is the data device and %s the "
				 "metadata device",
				 meta_path, data_path);
		else
			snprintf(why, why_len, "%s is a data device, not a metadata device",
				 meta_path);
		err = -EINVAL;
		goto out;
	}
	if (le64_to_cpu(ds->flags) & SCOUTFS_FLAG_IS_META_BDEV) {
		snprintf(why, why_len, "%s is a metadata device, not a data device", data_path);
		err = -EINVAL;
		goto out;
	}
	if (memcmp(ms->uuid, ds->uuid, sizeof(ms->uuid)) != 0 || ms->hdr.fsid != ds->hdr.fsid) {
		snprintf(why, why_len, "%s and %s belong to different filesystems", meta_path,
			 data_path);
		err = -EINVAL;
		goto out;
	}
	if (ms->fmt_vers != ds->fmt_vers) {
		snprintf(why, why_len, "metadata format version %llu differs from data version %llu",
			 (unsigned long long)le64_to_cpu(ms->fmt_vers),
			 (unsigned long long)le64_to_cpu(ds->fmt_vers));
		err = -EINVAL;
		goto out;
	}
	if (le64_to_cpu(ms->total_meta_blocks) > dev_size(sp->meta) >> SCOUTFS_BLOCK_LG_SHIFT) {
		snprintf(why, why_len,
			 "the filesystem records %llu metadata blocks but %s holds only %llu",
			 (unsigned long long)le64_to_cpu(ms->total_meta_blocks), meta_path,
			 (unsigned long long)(dev_size(sp->meta) >> SCOUTFS_BLOCK_LG_SHIFT));
		err = -EINVAL;
		goto out;
	}
	if (le64_to_cpu(ms->total_data_blocks) > dev_size(sp->data) >> SCOUTFS_BLOCK_SM_SHIFT) {
		snprintf(why, why_len, "the filesystem records %llu data blocks but %s holds only %llu",
			 (unsigned long long)le64_to_cpu(ms->total_data_blocks), data_path,
			 (unsigned long long)(dev_size(sp->data) >> SCOUTFS_BLOCK_SM_SHIFT));
		err = -EINVAL;
		goto out;
	}
	err = 0;
out:
	if (err < 0)
		super_close_pair(sp);
	return err;
}
