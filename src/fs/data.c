/*
 * data.c: file contents in extents on the data device.
 *
 * A file's data is a set of non-overlapping extent items keyed by (ino, last logical
 * block, length) whose values give the first physical block on the data device (0 when
 * unmapped) and flags (UNWRITTEN, OFFLINE).  No item means a hole, which reads as zeros.
 * Neighbouring extents that are contiguous both logically and physically, with equal flags,
 * are merged into one item, so a file written sequentially is a handful of items however
 * large it grows.
 *
 * File data is written in place: only holes get new blocks, taken from the transaction's
 * data allocator near the block that precedes them so that streams stay contiguous.
 * Durability is ordered: the transaction commit flushes the data device before the metadata
 * that maps new blocks is written, so a crash never exposes a mapping to unwritten blocks.
 *
 * The data device is opened with O_DIRECT, so every transfer goes through an aligned bounce
 * buffer covering whole 4 KiB blocks; the partial first and last blocks of a write are read
 * first and merged.  The bytes past EOF in a file's last block are always zero (truncate
 * zeroes them), which is what lets a later extension read zeros there.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dev/dev.h"
#include "fs/fs_int.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(data_read_bytes);
COUNTER_DEFINE(data_write_bytes);
COUNTER_DEFINE(data_alloc_blocks);
COUNTER_DEFINE(data_free_blocks);
COUNTER_DEFINE(data_extent_merge);
COUNTER_DEFINE(data_truncate_batches);

/* extents freed per transaction by truncate and deletion */
#define TRUNCATE_BATCH 256

struct ext {
	u64 start; /* logical block */
	u64 len;
	u64 blkno; /* physical block of start, 0 if unmapped */
	u8 flags;
};

static inline u64 ext_end(const struct ext *ext)
{
	return ext->start + ext->len - 1;
}

static bool ext_mapped_data(const struct ext *ext)
{
	return ext->blkno && !(ext->flags & (SCOUTFS_EXTENT_FLAG_UNWRITTEN |
					       SCOUTFS_EXTENT_FLAG_OFFLINE));
}

/* the first extent that ends at or after blk; -ENOENT if none */
static int ext_next(struct fs_info *fs, struct lock *lock, u64 ino, u64 blk, struct ext *ext)
{
	struct scoutfs_key key = extent_key(ino, blk, 0);
	struct scoutfs_key last = extent_key(ino, ~0ULL, ~0ULL);
	struct scoutfs_data_extent_val dv;
	int ret;

	ret = item_next(fs->ic, lock, &key, &last, &dv, sizeof(dv));
	if (ret < 0)
		return ret;
	if (ret != sizeof(dv) || key_third(&key) == 0 || key_third(&key) > key_second(&key) + 1)
		return -EIO;
	ext->len = key_third(&key);
	ext->start = key_second(&key) - ext->len + 1;
	ext->blkno = le64_to_cpu(dv.blkno);
	ext->flags = dv.flags;
	return 0;
}

/* the extent that ends exactly at blk, if there is one */
static int ext_ending_at(struct fs_info *fs, struct lock *lock, u64 ino, u64 blk, struct ext *ext)
{
	int err = ext_next(fs, lock, ino, blk, ext);

	if (err == 0 && ext_end(ext) != blk)
		err = -ENOENT;
	return err;
}

static int ext_create(struct fs_info *fs, struct lock *lock, u64 ino, const struct ext *ext)
{
	struct scoutfs_key key = extent_key(ino, ext_end(ext), ext->len);
	struct scoutfs_data_extent_val dv;

	memset(&dv, 0, sizeof(dv));
	dv.blkno = cpu_to_le64(ext->blkno);
	dv.flags = ext->flags;
	return item_create(fs->ic, lock, &key, &dv, sizeof(dv));
}

static int ext_delete(struct fs_info *fs, struct lock *lock, u64 ino, const struct ext *ext)
{
	struct scoutfs_key key = extent_key(ino, ext_end(ext), ext->len);

	return item_delete(fs->ic, lock, &key);
}

static bool ext_can_merge(const struct ext *left, const struct ext *right)
{
	return ext_end(left) + 1 == right->start && left->flags == right->flags &&
	       ((!left->blkno && !right->blkno) ||
		(left->blkno && right->blkno && left->blkno + left->len == right->blkno));
}

/* add an extent over a range that has none, merging it with its neighbours */
static int ext_insert(struct fs_info *fs, struct lock *lock, u64 ino, struct ext ext)
{
	struct ext nb;
	int err;

	if (ext.start > 0 && ext_ending_at(fs, lock, ino, ext.start - 1, &nb) == 0 &&
	    ext_can_merge(&nb, &ext)) {
		err = ext_delete(fs, lock, ino, &nb);
		if (err < 0)
			return err;
		ext.start = nb.start;
		ext.blkno = nb.blkno;
		ext.len += nb.len;
		counter_inc(data_extent_merge);
	}
	if (ext_next(fs, lock, ino, ext_end(&ext) + 1, &nb) == 0 && nb.start == ext_end(&ext) + 1 &&
	    ext_can_merge(&ext, &nb)) {
		err = ext_delete(fs, lock, ino, &nb);
		if (err < 0)
			return err;
		ext.len += nb.len;
		counter_inc(data_extent_merge);
	}
	return ext_create(fs, lock, ino, &ext);
}

/* cut [start, start + len) out of an existing extent, keeping the parts around it */
static int ext_cut(struct fs_info *fs, struct lock *lock, u64 ino, const struct ext *ext, u64 start,
		   u64 len)
{
	struct ext part;
	int err;

	err = ext_delete(fs, lock, ino, ext);
	if (err < 0)
		return err;
	if (start > ext->start) {
		part = *ext;
		part.len = start - ext->start;
		err = ext_create(fs, lock, ino, &part);
		if (err < 0)
			return err;
	}
	if (start + len - 1 < ext_end(ext)) {
		part = *ext;
		part.start = start + len;
		part.len = ext_end(ext) - (start + len - 1);
		if (part.blkno)
			part.blkno = ext->blkno + (part.start - ext->start);
		err = ext_create(fs, lock, ino, &part);
	}
	return err;
}

/* ---- bounce buffers ---- */

static struct thread_buf bounce_tb = THREAD_BUF_INIT(true);

static void *get_bounce(size_t size)
{
	return thread_buf_get(&bounce_tb, size);
}

/* read blocks [blk, blk + nr) of a file into buf: data where mapped, zeros elsewhere */
static int read_blocks(struct fs_info *fs, struct lock *lock, u64 ino, u64 blk, u64 nr, char *buf)
{
	u64 end = blk + nr - 1;
	struct ext ext;
	u64 n;
	int err;

	while (blk <= end) {
		err = ext_next(fs, lock, ino, blk, &ext);
		if (err == -ENOENT || (err == 0 && ext.start > end)) {
			memset(buf, 0, (end - blk + 1) << FS_BLOCK_SHIFT);
			return 0;
		}
		if (err < 0)
			return err;
		if (ext.start > blk) {
			n = ext.start - blk;
			memset(buf, 0, n << FS_BLOCK_SHIFT);
			buf += n << FS_BLOCK_SHIFT;
			blk += n;
		}
		n = min_t(u64, ext_end(&ext), end) - blk + 1;
		if (ext_mapped_data(&ext)) {
			err = dev_read(fs->data_dev, buf, n << FS_BLOCK_SHIFT,
				       (ext.blkno + (blk - ext.start)) << FS_BLOCK_SHIFT);
			if (err < 0)
				return err;
		} else {
			memset(buf, 0, n << FS_BLOCK_SHIFT);
		}
		buf += n << FS_BLOCK_SHIFT;
		blk += n;
	}
	return 0;
}

ssize_t fs_read(struct fs_info *fs, const struct fs_cred *cred, u64 ino, u64 off, void *buf,
		size_t len)
{
	struct lock_waiter w = fs_waiter(cred);
	/* pages read for a file open for writing may be dirtied through a mapping */
	enum scoutfs_lock_mode mode = cred && cred->open_for_write ? SCOUTFS_LOCK_WRITE
								   : SCOUTFS_LOCK_READ;
	struct scoutfs_inode si;
	struct lock *lock;
	u64 size, first, last;
	char *bounce;
	ssize_t ret;

	ret = lock_inode(fs->li, ino, mode, fs_lock_flags(cred), w.interrupted ? &w : NULL, &lock);
	if (ret < 0)
		return ret;
	ret = fs_inode_read(fs, lock, ino, &si);
	if (ret < 0)
		goto out;
	if (S_ISDIR(le32_to_cpu(si.mode))) {
		ret = -EISDIR;
		goto out;
	}
	size = le64_to_cpu(si.size);
	if (off >= size || len == 0) {
		ret = 0;
		goto out;
	}
	len = min_t(u64, len, size - off);
	first = off >> FS_BLOCK_SHIFT;
	last = (off + len - 1) >> FS_BLOCK_SHIFT;
	bounce = get_bounce((last - first + 1) << FS_BLOCK_SHIFT);
	if (!bounce) {
		ret = -ENOMEM;
		goto out;
	}
	ret = read_blocks(fs, lock, ino, first, last - first + 1, bounce);
	if (ret == 0) {
		memcpy(buf, bounce + (off & (FS_BLOCK_SIZE - 1)), len);
		ret = (ssize_t)len;
		counter_add(data_read_bytes, len);
	}
out:
	lock_unlock(fs->li, lock, mode);
	return ret;
}

/* ---- writing ---- */

/* the physical block that would continue the mapping of the block before blk */
static u64 alloc_goal(struct fs_info *fs, struct lock *lock, u64 ino, u64 blk)
{
	struct ext prev;

	if (blk == 0 || ext_next(fs, lock, ino, blk - 1, &prev) < 0 || prev.start > blk - 1 ||
	    !prev.blkno)
		return 0;
	return prev.blkno + (blk - 1 - prev.start) + 1;
}

/*
 * Write the blocks [blk, last] from buf, allocating where unmapped.  Stops early without
 * error when the transaction's data allocator needs a commit (*more set).
 */
static int write_blocks(struct fs_info *fs, struct fs_inode *fi, u64 blk, u64 last,
			const char *buf, u64 *done, bool *more)
{
	struct alloc_extent a;
	struct ext ext, new;
	bool have;
	u64 n, run_end;
	int err;

	*done = 0;
	*more = false;
	while (blk <= last) {
		err = ext_next(fs, fi->lock, fi->ino, blk, &ext);
		if (err < 0 && err != -ENOENT)
			return err;
		have = err == 0 && ext.start <= blk;

		if (have && ext_mapped_data(&ext)) {
			/* overwrite in place */
			n = min_t(u64, ext_end(&ext), last) - blk + 1;
			err = dev_write(fs->data_dev, buf, n << FS_BLOCK_SHIFT,
					(ext.blkno + (blk - ext.start)) << FS_BLOCK_SHIFT);
			if (err < 0)
				return err;
		} else if (have && ext.blkno && (ext.flags & SCOUTFS_EXTENT_FLAG_UNWRITTEN)) {
			/* preallocated blocks: write them and they become data */
			n = min_t(u64, ext_end(&ext), last) - blk + 1;
			new.start = blk;
			new.len = n;
			new.blkno = ext.blkno + (blk - ext.start);
			new.flags = ext.flags & ~SCOUTFS_EXTENT_FLAG_UNWRITTEN;
			err = dev_write(fs->data_dev, buf, n << FS_BLOCK_SHIFT,
					new.blkno << FS_BLOCK_SHIFT);
			if (err == 0)
				err = ext_cut(fs, fi->lock, fi->ino, &ext, blk, n);
			if (err == 0)
				err = ext_insert(fs, fi->lock, fi->ino, new);
			if (err < 0)
				return err;
			if (!(new.flags & SCOUTFS_EXTENT_FLAG_OFFLINE))
				le64_add_cpu(&fi->si.online_blocks, (s64)n);
		} else {
			/* a hole up to the next extent, or an unmapped (offline) extent */
			if (have)
				run_end = min_t(u64, ext_end(&ext), last);
			else if (err == 0)
				run_end = min_t(u64, ext.start - 1, last);
			else
				run_end = last;
			err = trans_alloc_data(fs->ti, alloc_goal(fs, fi->lock, fi->ino, blk),
					       run_end - blk + 1, &a);
			if (err == -ENOBUFS) {
				*more = true;
				return 0;
			}
			if (err < 0)
				return err;
			n = a.len;
			counter_add(data_alloc_blocks, n);
			err = dev_write(fs->data_dev, buf, n << FS_BLOCK_SHIFT,
					a.start << FS_BLOCK_SHIFT);
			if (err == 0 && have)
				err = ext_cut(fs, fi->lock, fi->ino, &ext, blk, n);
			if (err < 0) {
				trans_free_data(fs->ti, a.start, a.len);
				return err;
			}
			if (have && (ext.flags & SCOUTFS_EXTENT_FLAG_OFFLINE))
				le64_add_cpu(&fi->si.offline_blocks, -(s64)n);
			new.start = blk;
			new.len = n;
			new.blkno = a.start;
			new.flags = 0;
			err = ext_insert(fs, fi->lock, fi->ino, new);
			if (err < 0)
				return err;
			le64_add_cpu(&fi->si.online_blocks, (s64)n);
		}
		buf += n << FS_BLOCK_SHIFT;
		blk += n;
		*done += n;
	}
	return 0;
}

static int finish_truncate(struct fs_info *fs, struct fs_inode *fi)
{
	struct fs_change chg;

	if (!(le32_to_cpu(fi->si.flags) & SCOUTFS_INO_FLAG_TRUNCATE))
		return 0;
	fs_change_init(&chg, fs);
	return fs_data_truncate_blocks(fs, &chg, fi,
				       DIV_ROUND_UP(le64_to_cpu(fi->si.size), FS_BLOCK_SIZE));
}

ssize_t fs_write(struct fs_info *fs, const struct fs_cred *cred, u64 ino, u64 off, bool append,
		 const void *buf, size_t len)
{
	struct lock_waiter w = fs_waiter(cred);
	struct fs_inode fi = { .ino = ino };
	struct timespec now = fs_now();
	struct fs_change chg;
	u64 first, last, blk, done_blocks;
	size_t written = 0;
	char *bounce;
	bool more;
	ssize_t ret;

	if (len == 0)
		return 0;
	ret = lock_inode(fs->li, ino, SCOUTFS_LOCK_WRITE, fs_lock_flags(cred),
			 w.interrupted ? &w : NULL, &fi.lock);
	if (ret < 0)
		return ret;
	ret = fs_inode_read(fs, fi.lock, ino, &fi.si);
	if (ret < 0)
		goto unlock;
	if (!S_ISREG(le32_to_cpu(fi.si.mode))) {
		ret = S_ISDIR(le32_to_cpu(fi.si.mode)) ? -EISDIR : -EINVAL;
		goto unlock;
	}
	ret = finish_truncate(fs, &fi);
	if (ret < 0)
		goto unlock;
	if (fs_inode_kill_suid(cred, &fi.si))
		fi.dirty = true; /* written with the first pass */
	if (append)
		off = le64_to_cpu(fi.si.size);
	if (off > FS_MAX_FILE_SIZE || len > FS_MAX_FILE_SIZE - off) {
		ret = -EFBIG;
		goto unlock;
	}

	first = off >> FS_BLOCK_SHIFT;
	last = (off + len - 1) >> FS_BLOCK_SHIFT;
	bounce = get_bounce((last - first + 1) << FS_BLOCK_SHIFT);
	if (!bounce) {
		ret = -ENOMEM;
		goto unlock;
	}
	/* partial edge blocks keep their other bytes */
	if (off & (FS_BLOCK_SIZE - 1)) {
		ret = read_blocks(fs, fi.lock, ino, first, 1, bounce);
		if (ret < 0)
			goto unlock;
	}
	if (((off + len) & (FS_BLOCK_SIZE - 1)) && (last != first || !(off & (FS_BLOCK_SIZE - 1)))) {
		ret = read_blocks(fs, fi.lock, ino, last, 1,
				  bounce + ((last - first) << FS_BLOCK_SHIFT));
		if (ret < 0)
			goto unlock;
	}
	memcpy(bounce + (off & (FS_BLOCK_SIZE - 1)), buf, len);

	/* each pass is one transaction; a pass stops early if the allocator needs a commit */
	blk = first;
	while (blk <= last) {
		fs_change_init(&chg, fs);
		fs_change_add(&chg, &fi);
		ret = fs_change_begin(&chg, cred, TRANS_HOLD_ALLOC);
		if (ret < 0)
			break;
		ret = write_blocks(fs, &fi, blk, last, bounce + ((blk - first) << FS_BLOCK_SHIFT),
				   &done_blocks, &more);
		if (done_blocks) {
			u64 end = min_t(u64, off + len, (blk + done_blocks) << FS_BLOCK_SHIFT);

			if (end > le64_to_cpu(fi.si.size))
				fi.si.size = cpu_to_le64(end);
			written = end - off;
			fs_set_ts(&fi.si.mtime, now);
			fs_set_ts(&fi.si.ctime, now);
			le64_add_cpu(&fi.si.data_version, 1);
			fi.data_changed = true;
			fi.dirty = true;
			blk += done_blocks;
		}
		if (fi.dirty) {
			ssize_t wret = fs_change_write_inodes(&chg);

			if (ret == 0)
				ret = wret;
		}
		fs_change_end(&chg);
		if (ret < 0)
			break;
		if (more) {
			/* commit to get the data allocator refilled, then go on */
			ret = trans_sync(fs->ti);
			if (ret < 0)
				break;
		}
	}
	if (written > 0)
		ret = (ssize_t)written;
	if (ret > 0)
		counter_add(data_write_bytes, (u64)ret);
unlock:
	lock_unlock(fs->li, fi.lock, SCOUTFS_LOCK_WRITE);
	return ret;
}

/* ---- truncating ---- */

/*
 * Remove every extent from block first on, freeing mapped blocks, a bounded number of
 * extents per transaction.  The inode's TRUNCATE flag stays set until the last batch, so an
 * interrupted truncate is finished later.
 */
int fs_data_truncate_blocks(struct fs_info *fs, struct fs_change *chg, struct fs_inode *fi,
			    u64 first)
{
	struct ext ext;
	bool done = false;
	int nr, err;

	while (!done) {
		fs_change_init(chg, fs);
		fs_change_add(chg, fi);
		err = fs_change_begin(chg, NULL, 0);
		if (err < 0)
			return err;
		for (nr = 0; nr < TRUNCATE_BATCH; nr++) {
			err = ext_next(fs, fi->lock, fi->ino, first, &ext);
			if (err == -ENOENT) {
				err = 0;
				done = true;
				break;
			}
			if (err < 0)
				goto end;
			if (ext.start < first) {
				u64 cut = first - ext.start;

				err = ext_cut(fs, fi->lock, fi->ino, &ext, first, ext.len - cut);
				ext.blkno = ext.blkno ? ext.blkno + cut : 0;
				ext.start = first;
				ext.len -= cut;
			} else {
				err = ext_delete(fs, fi->lock, fi->ino, &ext);
			}
			if (err < 0)
				goto end;
			if (ext.blkno) {
				err = trans_free_data(fs->ti, ext.blkno, ext.len);
				if (err < 0)
					goto end;
				counter_add(data_free_blocks, ext.len);
			}
			if (ext.flags & SCOUTFS_EXTENT_FLAG_OFFLINE)
				le64_add_cpu(&fi->si.offline_blocks, -(s64)ext.len);
			else if (ext.blkno && !(ext.flags & SCOUTFS_EXTENT_FLAG_UNWRITTEN))
				le64_add_cpu(&fi->si.online_blocks, -(s64)ext.len);
		}
		if (done)
			fi->si.flags &= ~cpu_to_le32(SCOUTFS_INO_FLAG_TRUNCATE);
		else
			fi->si.flags |= cpu_to_le32(SCOUTFS_INO_FLAG_TRUNCATE);
		fi->dirty = true;
		err = fs_change_write_inodes(chg);
		counter_inc(data_truncate_batches);
end:
		fs_change_end(chg);
		if (err < 0)
			return err;
	}
	return 0;
}

/*
 * Change a regular file's size.  Shrinking zeroes the rest of the new last block, records the
 * size (readers never see past it) and then frees the extents beyond it.
 */
int fs_data_truncate(struct fs_info *fs, const struct fs_cred *cred, struct fs_inode *fi,
		     u64 new_size)
{
	u64 old_size = le64_to_cpu(fi->si.size);
	struct timespec now = fs_now();
	struct fs_change chg;
	struct ext ext;
	char *bounce;
	u64 blk;
	int err;

	err = finish_truncate(fs, fi);
	if (err < 0)
		return err;

	if (new_size < old_size && (new_size & (FS_BLOCK_SIZE - 1))) {
		blk = new_size >> FS_BLOCK_SHIFT;
		err = ext_next(fs, fi->lock, fi->ino, blk, &ext);
		if (err == 0 && ext.start <= blk && ext_mapped_data(&ext)) {
			bounce = get_bounce(FS_BLOCK_SIZE);
			if (!bounce)
				return -ENOMEM;
			err = read_blocks(fs, fi->lock, fi->ino, blk, 1, bounce);
			if (err < 0)
				return err;
			memset(bounce + (new_size & (FS_BLOCK_SIZE - 1)), 0,
			       FS_BLOCK_SIZE - (new_size & (FS_BLOCK_SIZE - 1)));
			err = dev_write(fs->data_dev, bounce, FS_BLOCK_SIZE,
					(ext.blkno + (blk - ext.start)) << FS_BLOCK_SHIFT);
		} else if (err == -ENOENT || err == 0) {
			err = 0;
		}
		if (err < 0)
			return err;
	}

	fs_change_init(&chg, fs);
	fs_change_add(&chg, fi);
	err = fs_change_begin(&chg, cred, 0);
	if (err < 0)
		return err;
	if (new_size != old_size)
		le64_add_cpu(&fi->si.data_version, 1);
	fi->si.size = cpu_to_le64(new_size);
	if (new_size < old_size)
		fi->si.flags |= cpu_to_le32(SCOUTFS_INO_FLAG_TRUNCATE);
	fs_set_ts(&fi->si.mtime, now);
	fs_set_ts(&fi->si.ctime, now);
	fi->data_changed = true;
	fi->dirty = true;
	err = fs_change_write_inodes(&chg);
	fs_change_end(&chg);
	if (err < 0)
		return err;

	if (new_size < old_size)
		err = fs_data_truncate_blocks(fs, &chg, fi, DIV_ROUND_UP(new_size, FS_BLOCK_SIZE));
	return err;
}
