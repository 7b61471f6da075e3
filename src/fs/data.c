/*
 * data.c: file contents -- extents on the data device, and the operations on them.
 *
 * A file's data is a set of extent items keyed by (ino, last logical block, length) whose
 * values give the first physical 4 KiB block on the data device (0 when unmapped) and
 * flags.  No item is a hole and reads as zeros.  An UNWRITTEN extent owns its blocks but
 * has never had data written to them, so it reads as zeros too: it is what fallocate and
 * preallocation create.  An OFFLINE extent's contents live in an archive.  ext.c keeps the
 * items canonical (merged, never overlapping); the inode's online_blocks and
 * offline_blocks follow every item inserted or removed.
 *
 * Data is written in place.  Only holes (and unmapped offline ranges) get new blocks, from
 * the transaction's data allocator, next to the blocks of the logical block before them so
 * that streams stay contiguous.  How many blocks a hole gets beyond the ones being written
 * is the original's preallocation policy (data_prealloc_blocks, data_prealloc_contig_only):
 * by default a write that extends a fully allocated file (a simple stream) preallocates as
 * many blocks as the file already has, up to data_prealloc_blocks, so extents grow with the
 * file; in region mode a write into a hole fills the aligned data_prealloc_blocks region
 * around it.  Preallocated blocks are unwritten until written; those past EOF are freed by
 * truncate.  Durability is ordered: the commit flushes the data device before it writes the
 * metadata that maps new blocks, so a crash never exposes blocks nobody wrote.
 *
 * Every operation takes the inode's cluster lock, then the inode's data lock (a striped
 * rwlock: readers share it, anything that changes extents or the inode excludes them), then
 * holds the transaction for as many passes as it needs -- each pass re-reads the inode item,
 * changes a bounded number of extents and writes the inode item back.  Without the data lock
 * a read racing a write could see an extent between its removal and its re-insertion (a
 * merge) and return zeros for blocks that hold data, and writes arriving together (async
 * direct I/O, page writeback) would lose each other's inode updates.
 *
 * The data device is opened with O_DIRECT, so transfers use aligned buffers covering whole
 * 4 KiB blocks.  Reads land straight in the caller's aligned buffer; writes copy into a
 * write-behind buffer of the device (reading only the partial first and last blocks
 * first) and are queued: the write returns once its extents are mapped, while the device's
 * writer thread writes (dev.h says how reads, flushes and errors stay right).  The bytes
 * past EOF in a file's last block are always zero (truncate and punch zero them), which is
 * what lets a later extension read zeros there.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dev/dev.h"
#include "fs/ext.h"
#include "fs/fs_int.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(data_read_calls);
COUNTER_DEFINE(data_read_bytes);
COUNTER_DEFINE(data_write_calls);
COUNTER_DEFINE(data_write_bytes);
COUNTER_DEFINE(data_write_rmw_blocks);
COUNTER_DEFINE(data_alloc_blocks);
COUNTER_DEFINE(data_prealloc_blocks);
COUNTER_DEFINE(data_free_blocks);
COUNTER_DEFINE(data_unwritten_converted);
COUNTER_DEFINE(data_truncate_batches);
COUNTER_DEFINE(data_enospc_commit);
COUNTER_DEFINE(data_fallocate_blocks);
COUNTER_DEFINE(data_fdatasync_flush);
COUNTER_DEFINE(data_punch_blocks);
COUNTER_DEFINE(data_zero_range_blocks);

/* extents freed per transaction by truncate, punch and deletion */
#define FREE_BATCH 256
/* extents allocated or converted per transaction by fallocate */
#define FALLOC_BATCH 8
/* the largest allocation fallocate asks for at a time (128 MiB) */
#define FALLOC_ALLOC_LIMIT (128ULL << (20 - FS_BLOCK_SHIFT))

#define BLOCK_MASK ((u64)FS_BLOCK_SIZE - 1)

/* ---- the per-inode data lock ---- */

/*
 * One rwlock per inode in use, found through a hash of buckets; an entry lives while anyone
 * holds or waits for it.  Per inode rather than striped, so that no operation on one file
 * ever waits for another file's (a writer waiting for a cluster lock would otherwise hold up
 * unrelated files, and the writeback of their pages that a lock invalidation waits for).
 */
struct data_lock {
	struct data_lock *next;
	u64 ino;
	unsigned int refs;
	pthread_rwlock_t rw;
};

static unsigned int data_bucket(u64 ino)
{
	/* Fibonacci hashing: consecutive inode numbers land on different buckets */
	return (unsigned int)((ino * 0x9e3779b97f4a7c15ULL) >> (64 - FS_DATA_LOCK_BITS));
}

/* find (or add) ino's lock and count a user; NULL without memory */
static struct data_lock *data_lock_get(struct fs_info *fs, u64 ino, bool create)
{
	struct fs_data_lock_bucket *b = &fs->data_locks[data_bucket(ino)];
	pthread_rwlockattr_t attr;
	struct data_lock *dl;

	pthread_mutex_lock(&b->mutex);
	for (dl = b->head; dl && dl->ino != ino; dl = dl->next)
		;
	if (!dl && create) {
		dl = calloc(1, sizeof(*dl));
		if (dl) {
			dl->ino = ino;
			/* a stream of readers must not starve a writer */
			pthread_rwlockattr_init(&attr);
			pthread_rwlockattr_setkind_np(&attr,
			                              PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
			pthread_rwlock_init(&dl->rw, &attr);
			pthread_rwlockattr_destroy(&attr);
			dl->next = b->head;
			b->head = dl;
		}
	}
	if (dl && create)
		dl->refs++;
	pthread_mutex_unlock(&b->mutex);
	return dl;
}

static void data_lock_put(struct fs_info *fs, struct data_lock *dl)
{
	struct fs_data_lock_bucket *b = &fs->data_locks[data_bucket(dl->ino)];
	struct data_lock **pos;

	pthread_mutex_lock(&b->mutex);
	if (--dl->refs == 0) {
		for (pos = &b->head; *pos != dl; pos = &(*pos)->next)
			;
		*pos = dl->next;
	} else {
		dl = NULL;
	}
	pthread_mutex_unlock(&b->mutex);
	if (dl) {
		pthread_rwlock_destroy(&dl->rw);
		free(dl);
	}
}

int fs_data_lock(struct fs_info *fs, u64 ino, bool write)
{
	struct data_lock *dl = data_lock_get(fs, ino, true);

	if (!dl)
		return -ENOMEM;
	if (write)
		pthread_rwlock_wrlock(&dl->rw);
	else
		pthread_rwlock_rdlock(&dl->rw);
	return 0;
}

void fs_data_unlock(struct fs_info *fs, u64 ino)
{
	struct data_lock *dl = data_lock_get(fs, ino, false);

	pthread_rwlock_unlock(&dl->rw);
	data_lock_put(fs, dl);
}

int fs_data_lock_inodes(struct fs_info *fs, const u64 *inos, int nr)
{
	u64 sorted[4];
	int n = 0;
	int err;

	/* unique non-zero inode numbers in ascending order: the order everyone takes them in */
	for (int i = 0; i < nr && i < 4; i++) {
		int j;

		if (!inos[i])
			continue;
		for (j = 0; j < n && sorted[j] != inos[i]; j++)
			;
		if (j < n)
			continue;
		for (j = n++; j > 0 && sorted[j - 1] > inos[i]; j--)
			sorted[j] = sorted[j - 1];
		sorted[j] = inos[i];
	}
	for (int i = 0; i < n; i++) {
		err = fs_data_lock(fs, sorted[i], true);
		if (err < 0) {
			while (--i >= 0)
				fs_data_unlock(fs, sorted[i]);
			return err;
		}
	}
	return 0;
}

void fs_data_unlock_inodes(struct fs_info *fs, const u64 *inos, int nr)
{
	for (int i = 0; i < nr && i < 4; i++) {
		int j;

		if (!inos[i])
			continue;
		for (j = 0; j < i && inos[j] != inos[i]; j++)
			;
		if (j == i)
			fs_data_unlock(fs, inos[i]);
	}
}

int fs_data_init(struct fs_info *fs)
{
	for (int i = 0; i < (1 << FS_DATA_LOCK_BITS); i++)
		pthread_mutex_init(&fs->data_locks[i].mutex, NULL);
	return 0;
}

void fs_data_destroy(struct fs_info *fs)
{
	struct data_lock *dl, *next;

	for (int i = 0; i < (1 << FS_DATA_LOCK_BITS); i++) {
		for (dl = fs->data_locks[i].head; dl; dl = next) {
			next = dl->next;
			pthread_rwlock_destroy(&dl->rw);
			free(dl);
		}
		pthread_mutex_destroy(&fs->data_locks[i].mutex);
	}
}

/* ---- extents stored as items ---- */

/* what the item-backed extent operations work on */
struct data_ext {
	struct fs_info *fs;
	struct lock *lock;
	u64 ino;
	struct fs_inode *fi; /* counts online/offline blocks; NULL for read-only use */
};

static int item_ext_next(void *arg, u64 blk, struct fs_ext *ext)
{
	struct data_ext *de = arg;
	struct scoutfs_key key = extent_key(de->ino, blk, 0);
	struct scoutfs_key last = extent_key(de->ino, ~0ULL, ~0ULL);
	struct scoutfs_data_extent_val dv;
	int ret;

	ret = item_next(de->fs->ic, de->lock, &key, &last, &dv, sizeof(dv));
	if (ret < 0)
		return ret;
	if (ret != sizeof(dv) || key_third(&key) == 0 || key_third(&key) > key_second(&key) + 1) {
		log_err("inode %llu has a malformed data extent item ending at block %llu",
		        (unsigned long long)de->ino, (unsigned long long)key_second(&key));
		return -EIO;
	}
	ext->len = key_third(&key);
	ext->start = key_second(&key) - ext->len + 1;
	ext->map = le64_to_cpu(dv.blkno);
	ext->flags = dv.flags;
	return 0;
}

/* keep the inode's online and offline block counts in step with its extent items */
static void count_ext(struct data_ext *de, const struct fs_ext *ext, s64 sign)
{
	if (!de->fi)
		return;
	if (ext->flags & SCOUTFS_EXTENT_FLAG_OFFLINE)
		le64_add_cpu(&de->fi->si.offline_blocks, sign * (s64)ext->len);
	else if (ext->map && !(ext->flags & SCOUTFS_EXTENT_FLAG_UNWRITTEN))
		le64_add_cpu(&de->fi->si.online_blocks, sign * (s64)ext->len);
	de->fi->dirty = true;
	de->fi->layout_changed = true;
}

static int item_ext_insert(void *arg, const struct fs_ext *ext)
{
	struct data_ext *de = arg;
	struct scoutfs_key key = extent_key(de->ino, fs_ext_end(ext), ext->len);
	struct scoutfs_data_extent_val dv;
	int err;

	memset(&dv, 0, sizeof(dv));
	dv.blkno = cpu_to_le64(ext->map);
	dv.flags = ext->flags;
	err = item_create(de->fs->ic, de->lock, &key, &dv, sizeof(dv));
	if (err == 0)
		count_ext(de, ext, 1);
	return err;
}

static int item_ext_remove(void *arg, const struct fs_ext *ext)
{
	struct data_ext *de = arg;
	struct scoutfs_key key = extent_key(de->ino, fs_ext_end(ext), ext->len);
	int err;

	err = item_delete(de->fs->ic, de->lock, &key);
	if (err == 0)
		count_ext(de, ext, -1);
	return err;
}

static const struct fs_ext_ops item_ext_ops = {
	.next = item_ext_next,
	.insert = item_ext_insert,
	.remove = item_ext_remove,
};

static struct data_ext data_ext_of(struct fs_info *fs, struct fs_inode *fi)
{
	struct data_ext de = { .fs = fs, .lock = fi->lock, .ino = fi->ino, .fi = fi };

	return de;
}

static int ext_next(struct data_ext *de, u64 blk, struct fs_ext *ext)
{
	return fs_ext_next(&item_ext_ops, de, blk, ext);
}

static int ext_set(struct data_ext *de, u64 start, u64 len, u64 map, u8 flags)
{
	return fs_ext_set(&item_ext_ops, de, start, len, map, flags);
}

/* ---- bounce buffers ---- */

static struct thread_buf bounce_tb = THREAD_BUF_INIT(true);

static void *get_bounce(u64 blocks)
{
	return thread_buf_get(&bounce_tb, blocks << FS_BLOCK_SHIFT);
}

/* ---- inodes ---- */

/*
 * The cluster lock mode of a data operation: WRITE to change the file, and also to read one
 * that is open for writing on this mount -- what a read brings into the kernel's page cache
 * may then be dirtied through a shared mapping, and must be flushed before another mount
 * reads the file.
 */
static enum scoutfs_lock_mode data_lock_mode(const struct fs_cred *cred, bool write)
{
	return write || (cred && cred->open_for_write) ? SCOUTFS_LOCK_WRITE : SCOUTFS_LOCK_READ;
}

/* lock an inode for a data operation: cluster lock, data lock, its item */
static int data_begin(struct fs_info *fs, const struct fs_cred *cred, u64 ino, bool write,
                      struct fs_inode *fi)
{
	enum scoutfs_lock_mode mode = data_lock_mode(cred, write);
	struct lock_waiter w = fs_waiter(cred);
	int err;

	memset(fi, 0, sizeof(*fi));
	fi->ino = ino;
	err = lock_inode(fs->li, ino, mode, fs_lock_flags(cred), w.interrupted ? &w : NULL,
	                 &fi->lock);
	if (err < 0)
		return err;
	err = fs_data_lock(fs, ino, write);
	if (err < 0) {
		lock_unlock(fs->li, fi->lock, mode);
		return err;
	}
	err = fs_inode_read(fs, fi->lock, ino, &fi->si);
	if (err < 0) {
		fs_data_unlock(fs, ino);
		lock_unlock(fs->li, fi->lock, mode);
		return err == -ENOENT ? -ESTALE : err;
	}
	return 0;
}

static void data_end(struct fs_info *fs, const struct fs_cred *cred, struct fs_inode *fi,
                     bool write)
{
	fs_data_unlock(fs, fi->ino);
	lock_unlock(fs->li, fi->lock, data_lock_mode(cred, write));
}

/* regular files only: -EISDIR for directories, -EINVAL for the rest */
static int check_regular(const struct fs_inode *fi)
{
	u32 mode = le32_to_cpu(fi->si.mode);

	if (S_ISREG(mode))
		return 0;
	return S_ISDIR(mode) ? -EISDIR : -EINVAL;
}

/*
 * Start a transaction pass of a change to fi: lock the index groups, hold, and re-read the
 * inode item, which operations that don't take the data lock may have changed since.
 */
static int pass_begin(struct fs_info *fs, const struct fs_cred *cred, struct fs_inode *fi,
                      struct fs_change *chg, int hold_flags)
{
	int err;

	fs_change_init(chg, fs);
	fs_change_add(chg, fi);
	err = fs_change_begin(chg, cred, hold_flags);
	if (err < 0)
		return err;
	err = fs_inode_read(fs, fi->lock, fi->ino, &fi->si);
	if (err < 0)
		fs_change_end(chg);
	return err;
}

/*
 * Write the inode item if the pass changed it and end the pass; the first error wins.  A
 * pass that changed the file's extents or size records its transaction for fdatasync.
 */
static int pass_end(struct fs_change *chg, struct fs_inode *fi, int err)
{
	_Atomic u64 *seqp = &chg->fs->layout_seqs[data_bucket(fi->ino)];
	int wret = 0;

	if (fi->dirty)
		wret = fs_change_write_inodes(chg);
	if (fi->layout_changed && chg->seq > atomic_load(seqp))
		atomic_store(seqp, chg->seq);
	fi->layout_changed = false;
	fs_change_end(chg);
	return err ? err : wret;
}

/*
 * Data writes are queued (dev.h): the flush, or the commit's flush, waits for them, and a
 * queued write of this file that failed is the EIO that fsync reports, as a local
 * filesystem reports a failed writeback.
 */
int fs_fsync(struct fs_info *fs, u64 ino, bool datasync)
{
	int err;

	if (datasync && atomic_load(&fs->layout_seqs[data_bucket(ino)]) < trans_seq(fs->ti)) {
		counter_inc(data_fdatasync_flush);
		err = dev_flush(fs->data_dev);
	} else {
		/*
		 * The commit's flush waited for this file's queued writes; waiting again costs
		 * a lock when nothing is queued, and keeps fsync right should a write ever be
		 * queued without dirtying the transaction.
		 */
		err = trans_sync(fs->ti);
		if (err == 0)
			err = dev_wait_queued(fs->data_dev);
	}
	if (dev_take_write_error(fs->data_dev, ino))
		return -EIO;
	return err;
}

/* the contents changed: new mtime, ctime, data_version and (at write) data_seq */
static void contents_changed(struct fs_inode *fi, struct timespec now)
{
	fs_set_ts(&fi->si.mtime, now);
	fs_set_ts(&fi->si.ctime, now);
	le64_add_cpu(&fi->si.data_version, 1);
	fi->data_changed = true;
	fi->dirty = true;
}

/* ---- reading ---- */

/* read blocks [blk, blk + nr) of a file into buf: data where written, zeros elsewhere */
static int read_blocks(struct fs_info *fs, struct data_ext *de, u64 blk, u64 nr, char *buf)
{
	u64 end = blk + nr - 1;
	struct fs_ext ext;
	u64 n;
	int err;

	while (blk <= end) {
		err = ext_next(de, blk, &ext);
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
		n = min_t(u64, fs_ext_end(&ext), end) - blk + 1;
		if (fs_ext_written(&ext)) {
			err = dev_read(fs->data_dev, buf, n << FS_BLOCK_SHIFT,
			               (ext.map + (blk - ext.start)) << FS_BLOCK_SHIFT);
			if (err < 0)
				return err;
		} else if (ext.flags & SCOUTFS_EXTENT_FLAG_OFFLINE) {
			/* waiting for archived data to be staged is not built yet */
			log_warn("read of offline blocks of inode %llu refused: data waiting is "
			         "not supported",
			         (unsigned long long)de->ino);
			return -ENODATA;
		} else {
			memset(buf, 0, n << FS_BLOCK_SHIFT);
		}
		buf += n << FS_BLOCK_SHIFT;
		blk += n;
	}
	return 0;
}

size_t fs_read_buf_size(u64 off, size_t len)
{
	return ROUND_UP((off & BLOCK_MASK) + max_t(size_t, len, 1), FS_BLOCK_SIZE);
}

ssize_t fs_read(struct fs_info *fs, const struct fs_cred *cred, u64 ino, u64 off, size_t len,
                void *buf, const void **data)
{
	struct fs_inode fi;
	struct data_ext de;
	u64 size, first, last;
	ssize_t ret;

	*data = buf;
	counter_inc(data_read_calls);
	ret = data_begin(fs, cred, ino, false, &fi);
	if (ret < 0)
		return ret;
	if (S_ISDIR(le32_to_cpu(fi.si.mode))) {
		ret = -EISDIR;
		goto out;
	}
	size = le64_to_cpu(fi.si.size);
	if (off >= size || len == 0) {
		ret = 0;
		goto out;
	}
	len = min_t(u64, len, size - off);
	first = off >> FS_BLOCK_SHIFT;
	last = (off + len - 1) >> FS_BLOCK_SHIFT;
	de = data_ext_of(fs, &fi);
	de.fi = NULL;
	ret = read_blocks(fs, &de, first, last - first + 1, buf);
	if (ret == 0) {
		*data = (char *)buf + (off & BLOCK_MASK);
		ret = (ssize_t)len;
		counter_add(data_read_bytes, len);
	}
out:
	data_end(fs, cred, &fi, false);
	return ret;
}

/* ---- allocating ---- */

/* the physical block that would continue the mapping of the block before blk (0: none) */
static u64 alloc_goal(struct data_ext *de, u64 blk)
{
	struct fs_ext prev;

	if (blk == 0 || ext_next(de, blk - 1, &prev) < 0 || prev.start > blk - 1 || !prev.map)
		return 0;
	return prev.map + (blk - 1 - prev.start) + 1;
}

/* blocks [start, start + count) to allocate for a write into a hole at blk, and their flags */
struct prealloc {
	u64 start;
	u64 count;
	u8 flags;
};

/*
 * The original's preallocation policy, for a write of blocks [blk, run_end] into a hole or
 * an unmapped offline extent (unmapped, else NULL).  Staging into an offline extent
 * preallocates the rest of it (keeping it offline), on the assumption that the stager will
 * write it all.  Otherwise, in contig_only mode, only a write at the end of a fully
 * allocated file (blk == online blocks: a simple stream) preallocates, up to the next
 * extent but no more blocks than the file has.  In region mode the write fills the aligned
 * data_prealloc_blocks region around blk, starting at blk if an extent precedes it in the
 * region and stopping at the next extent.  Either way no more than data_prealloc_blocks,
 * except that the blocks being written are always covered.
 */
static int prealloc_window(struct fs_info *fs, struct data_ext *de, u64 blk, u64 run_end,
                           const struct fs_ext *unmapped, struct prealloc *pw)
{
	u64 online = le64_to_cpu(de->fi->si.online_blocks);
	struct fs_options opts;
	struct fs_ext next;
	u64 prealloc;
	int err;

	pthread_mutex_lock(&fs->opts_mutex);
	opts = fs->opts;
	pthread_mutex_unlock(&fs->opts_mutex);
	prealloc = max_t(u64, opts.data_prealloc_blocks, 1);

	pw->start = blk;
	pw->count = 1;
	pw->flags = 0;
	if (unmapped) {
		pw->count = fs_ext_end(unmapped) - blk + 1;
		pw->flags = unmapped->flags;
	} else if (opts.data_prealloc_contig_only) {
		if (blk > 1 && blk == online) {
			err = ext_next(de, blk, &next);
			if (err < 0 && err != -ENOENT)
				return err;
			pw->count = err == 0 ? next.start - blk : prealloc;
			pw->count = min_t(u64, pw->count, blk);
		}
	} else {
		pw->start = blk - blk % prealloc;
		pw->count = prealloc;
		err = ext_next(de, pw->start, &next);
		if (err < 0 && err != -ENOENT)
			return err;
		if (err == 0 && next.start < blk) {
			/* an extent in the region before blk: fill from blk */
			pw->count -= blk - pw->start;
			pw->start = blk;
			err = ext_next(de, blk, &next);
			if (err < 0 && err != -ENOENT)
				return err;
		}
		if (err == 0 && next.start > pw->start && next.start < pw->start + pw->count)
			pw->count = next.start - pw->start;
	}
	pw->count = min_t(u64, pw->count, prealloc);
	if (pw->start + pw->count - 1 < run_end)
		pw->count = run_end - pw->start + 1;
	return 0;
}

/* where the blocks of a write come from: a queued-write buffer, from off on */
struct write_src {
	struct dev_wbuf *wbuf;
	size_t off;
};

/*
 * Queue the write of nr blocks from src to physical block phys.  Fresh blocks (new or
 * preallocated) are zeroed by the device if the write fails, so that they never show what
 * a deleted file left in them.
 */
static int queue_write(struct fs_info *fs, struct data_ext *de, const struct write_src *src,
                       u64 nr, u64 phys, bool fresh)
{
	return dev_write_behind(fs->data_dev, src->wbuf, src->off, nr << FS_BLOCK_SHIFT,
	                        phys << FS_BLOCK_SHIFT, de->ino, fresh ? DEV_WB_FRESH : 0);
}

/*
 * Allocate blocks for a write of [blk, run_end] into a hole (or an unmapped offline
 * extent), write buf's blocks into them and map them; the rest of what was allocated is
 * mapped unwritten.  *written says how many blocks from blk were written (the allocator
 * may return fewer than asked).
 */
static int write_into_hole(struct fs_info *fs, struct data_ext *de, u64 blk, u64 run_end,
                           const struct fs_ext *unmapped, const struct write_src *src,
                           u64 *written)
{
	struct alloc_extent a;
	struct prealloc pw;
	u64 n, phys;
	int err;

	err = prealloc_window(fs, de, blk, run_end, unmapped, &pw);
	if (err < 0)
		return err;
	err = trans_alloc_data(fs->ti, alloc_goal(de, pw.start), pw.count, &a);
	if (err < 0)
		return err;
	if (pw.start + a.len <= blk)
		pw.start = blk; /* a short region allocation must still cover blk */
	n = min_t(u64, pw.start + a.len - 1, run_end) - blk + 1;
	phys = a.start + (blk - pw.start);
	counter_add(data_alloc_blocks, a.len);
	counter_add(data_prealloc_blocks, a.len - n);

	err = queue_write(fs, de, src, n, phys, true);
	if (err < 0) {
		trans_free_data(fs->ti, a.start, a.len);
		return err;
	}
	if (pw.start < blk) {
		err = ext_set(de, pw.start, blk - pw.start, a.start,
		              pw.flags | SCOUTFS_EXTENT_FLAG_UNWRITTEN);
		if (err < 0)
			return err;
	}
	if (blk + n < pw.start + a.len) {
		err = ext_set(de, blk + n, pw.start + a.len - (blk + n), phys + n,
		              pw.flags | SCOUTFS_EXTENT_FLAG_UNWRITTEN);
		if (err < 0)
			return err;
	}
	err = ext_set(de, blk, n, phys, 0);
	if (err == 0)
		*written = n;
	return err;
}

/* ---- writing ---- */

/*
 * Write the blocks [blk, last] from buf in the held transaction, allocating where unmapped.
 * Returns with *done blocks written; -ENOBUFS (after writing some, perhaps) when the
 * transaction's data allocator must be refilled by a commit.
 */
static int write_blocks(struct fs_info *fs, struct data_ext *de, u64 blk, u64 last,
                        struct write_src src, u64 *done)
{
	struct fs_ext ext;
	bool have;
	u64 n = 0, run_end;
	int err;

	*done = 0;
	while (blk <= last) {
		err = ext_next(de, blk, &ext);
		if (err < 0 && err != -ENOENT)
			return err;
		have = err == 0 && ext.start <= blk;

		if (have && fs_ext_written(&ext)) {
			/* overwrite in place */
			n = min_t(u64, fs_ext_end(&ext), last) - blk + 1;
			err = queue_write(fs, de, &src, n, ext.map + (blk - ext.start), false);
		} else if (have && ext.map) {
			/* preallocated (unwritten) blocks become data as they're written */
			n = min_t(u64, fs_ext_end(&ext), last) - blk + 1;
			err = queue_write(fs, de, &src, n, ext.map + (blk - ext.start), true);
			if (err == 0)
				err = ext_set(de, blk, n, ext.map + (blk - ext.start), 0);
			counter_add(data_unwritten_converted, n);
		} else {
			/* a hole up to the next extent, or an unmapped (offline) extent */
			if (have)
				run_end = min_t(u64, fs_ext_end(&ext), last);
			else if (err == 0)
				run_end = min_t(u64, ext.start - 1, last);
			else
				run_end = last;
			err = write_into_hole(fs, de, blk, run_end, have ? &ext : NULL, &src, &n);
		}
		if (err < 0)
			return err;
		src.off += n << FS_BLOCK_SHIFT;
		blk += n;
		*done += n;
	}
	return 0;
}

/* an earlier truncate of this inode was interrupted: free what it had still to free */
static int finish_truncate(struct fs_info *fs, struct fs_inode *fi)
{
	struct fs_change chg;

	if (!(le32_to_cpu(fi->si.flags) & SCOUTFS_INO_FLAG_TRUNCATE))
		return 0;
	return fs_data_truncate_blocks(fs, &chg, fi,
	                               DIV_ROUND_UP(le64_to_cpu(fi->si.size), FS_BLOCK_SIZE));
}

/* read the partial first and last blocks of a write into the bounce buffer */
static int read_write_edges(struct fs_info *fs, struct data_ext *de, u64 off, size_t len,
                            char *bounce)
{
	u64 first = off >> FS_BLOCK_SHIFT;
	u64 last = (off + len - 1) >> FS_BLOCK_SHIFT;
	int err;

	if (off & BLOCK_MASK) {
		err = read_blocks(fs, de, first, 1, bounce);
		if (err < 0)
			return err;
		counter_inc(data_write_rmw_blocks);
	}
	if (((off + len) & BLOCK_MASK) && (last != first || !(off & BLOCK_MASK))) {
		err = read_blocks(fs, de, last, 1, bounce + ((last - first) << FS_BLOCK_SHIFT));
		if (err < 0)
			return err;
		counter_inc(data_write_rmw_blocks);
	}
	return 0;
}

ssize_t fs_write(struct fs_info *fs, const struct fs_cred *cred, u64 ino, u64 off, bool append,
                 const void *buf, size_t len)
{
	struct timespec now = fs_now();
	struct fs_inode fi;
	struct data_ext de;
	struct fs_change chg;
	u64 first, last, blk, done, end;
	bool committed = false;
	size_t written = 0;
	struct dev_wbuf *wbuf = NULL;
	char *bounce;
	ssize_t ret;

	if (len == 0)
		return 0;
	counter_inc(data_write_calls);
	ret = data_begin(fs, cred, ino, true, &fi);
	if (ret < 0)
		return ret;
	ret = check_regular(&fi);
	if (ret == 0)
		ret = finish_truncate(fs, &fi);
	if (ret < 0)
		goto out;
	if (append)
		off = le64_to_cpu(fi.si.size);
	if (off >= FS_MAX_FILE_SIZE || len > FS_MAX_FILE_SIZE - off) {
		ret = -EFBIG;
		goto out;
	}

	first = off >> FS_BLOCK_SHIFT;
	last = (off + len - 1) >> FS_BLOCK_SHIFT;
	wbuf = dev_wbuf_get(fs->data_dev, (last - first + 1) << FS_BLOCK_SHIFT);
	if (!wbuf) {
		ret = -ENOMEM;
		goto out;
	}
	bounce = dev_wbuf_data(wbuf);
	de = data_ext_of(fs, &fi);
	ret = read_write_edges(fs, &de, off, len, bounce);
	if (ret < 0)
		goto out;
	memcpy(bounce + (off & BLOCK_MASK), buf, len);

	/* each pass is one transaction; a pass stops early if the allocator needs a commit */
	blk = first;
	while (blk <= last) {
		ret = pass_begin(fs, cred, &fi, &chg, TRANS_HOLD_ALLOC);
		if (ret < 0)
			break;
		/* a write clears set-id bits as on local filesystems (see fs_inode_kill_suid) */
		if (blk == first && fs_inode_kill_suid(cred, &fi.si))
			fi.dirty = true;
		ret = write_blocks(fs, &de, blk, last,
		                   (struct write_src){ wbuf, (blk - first) << FS_BLOCK_SHIFT }, &done);
		if (done) {
			end = min_t(u64, off + len, (blk + done) << FS_BLOCK_SHIFT);
			if (end > le64_to_cpu(fi.si.size)) {
				fi.si.size = cpu_to_le64(end);
				fi.layout_changed = true;
			}
			written = end - off;
			contents_changed(&fi, now);
			blk += done;
			committed = false;
		}
		ret = pass_end(&chg, &fi, (int)ret);
		if (ret == -ENOBUFS || (ret == -ENOSPC && !committed)) {
			/*
			 * Commit: the server refills the data allocator, and blocks freed by
			 * this mount or others become allocatable again.  A second ENOSPC
			 * without progress in between is final.
			 */
			if (ret == -ENOSPC)
				counter_inc(data_enospc_commit);
			committed = true;
			ret = trans_sync(fs->ti);
			if (ret == 0)
				continue;
		}
		if (ret < 0)
			break;
	}
	if (written > 0)
		ret = (ssize_t)written;
	if (ret > 0)
		counter_add(data_write_bytes, (u64)ret);
out:
	dev_wbuf_put(wbuf);
	data_end(fs, cred, &fi, true);
	return ret;
}

/* ---- freeing ---- */

/*
 * Remove every extent in blocks [first, last], freeing the blocks they map, at most max
 * extents in the held transaction.  *more says whether extents remain.
 */
static int free_blocks(struct fs_info *fs, struct data_ext *de, u64 first, u64 last, int max,
                       bool *more, u64 *freed)
{
	struct fs_ext ext;
	int err;

	*more = true;
	for (int nr = 0; nr < max; nr++) {
		err = ext_next(de, first, &ext);
		if (err == -ENOENT || (err == 0 && ext.start > last)) {
			*more = false;
			return 0;
		}
		if (err < 0)
			return err;
		if (ext.start < first) {
			ext.map = ext.map ? ext.map + (first - ext.start) : 0;
			ext.len -= first - ext.start;
			ext.start = first;
		}
		if (fs_ext_end(&ext) > last)
			ext.len = last - ext.start + 1;
		err = ext_set(de, ext.start, ext.len, 0, 0);
		if (err == 0 && ext.map) {
			err = trans_free_data(fs->ti, ext.map, ext.len);
			counter_add(data_free_blocks, ext.len);
			*freed += ext.len;
		}
		if (err < 0)
			return err;
	}
	return 0;
}

/*
 * Remove every extent from block first on, freeing mapped blocks, a bounded number of
 * extents per transaction.  The inode's TRUNCATE flag stays set until the last batch, so an
 * interrupted truncate is finished later.
 */
int fs_data_truncate_blocks(struct fs_info *fs, struct fs_change *chg, struct fs_inode *fi,
                            u64 first)
{
	struct data_ext de = data_ext_of(fs, fi);
	bool more = true;
	u64 freed = 0;
	int err;

	while (more) {
		err = pass_begin(fs, NULL, fi, chg, 0);
		if (err < 0)
			return err;
		err = free_blocks(fs, &de, first, ~0ULL >> 1, FREE_BATCH, &more, &freed);
		if (err == 0) {
			if (more)
				fi->si.flags |= cpu_to_le32(SCOUTFS_INO_FLAG_TRUNCATE);
			else
				fi->si.flags &= ~cpu_to_le32(SCOUTFS_INO_FLAG_TRUNCATE);
			fi->dirty = true;
		}
		counter_inc(data_truncate_batches);
		err = pass_end(chg, fi, err);
		if (err < 0)
			return err;
	}
	return 0;
}

/*
 * Zero bytes [off, off + len) of one block if it holds written data (holes and unwritten
 * blocks already read as zeros).  Done outside a transaction: it only rewrites a block in
 * place.
 */
static int zero_in_block(struct fs_info *fs, struct data_ext *de, u64 off, u64 len)
{
	u64 blk = off >> FS_BLOCK_SHIFT;
	struct fs_ext ext;
	char *bounce;
	int err;

	err = ext_next(de, blk, &ext);
	if (err == -ENOENT || (err == 0 && (ext.start > blk || !fs_ext_written(&ext))))
		return 0;
	if (err < 0)
		return err;
	bounce = get_bounce(1);
	if (!bounce)
		return -ENOMEM;
	err = dev_read(fs->data_dev, bounce, FS_BLOCK_SIZE,
	               (ext.map + (blk - ext.start)) << FS_BLOCK_SHIFT);
	if (err < 0)
		return err;
	memset(bounce + (off & BLOCK_MASK), 0, len);
	return dev_write(fs->data_dev, bounce, FS_BLOCK_SIZE,
	                 (ext.map + (blk - ext.start)) << FS_BLOCK_SHIFT);
}

/*
 * Change a regular file's size.  Shrinking zeroes the rest of the new last block, records the
 * size (readers never see past it) and then frees the extents beyond it -- including
 * preallocated ones, even when the size does not change.
 */
int fs_data_truncate(struct fs_info *fs, const struct fs_cred *cred, struct fs_inode *fi,
                     u64 new_size, struct timespec now)
{
	struct data_ext de = data_ext_of(fs, fi);
	struct fs_change chg;
	u64 old_size;
	int err;

	err = finish_truncate(fs, fi);
	if (err < 0)
		return err;
	old_size = le64_to_cpu(fi->si.size);

	if (new_size < old_size && (new_size & BLOCK_MASK)) {
		err = zero_in_block(fs, &de, new_size, FS_BLOCK_SIZE - (new_size & BLOCK_MASK));
		if (err < 0)
			return err;
	}

	err = pass_begin(fs, cred, fi, &chg, 0);
	if (err < 0)
		return err;
	/* mtime and ctime change even for the same size, as on tmpfs and the original */
	fs_set_ts(&fi->si.mtime, now);
	fs_set_ts(&fi->si.ctime, now);
	if (new_size != old_size) {
		fi->si.size = cpu_to_le64(new_size);
		fi->layout_changed = true;
		contents_changed(fi, now);
	}
	if (new_size <= old_size)
		fi->si.flags |= cpu_to_le32(SCOUTFS_INO_FLAG_TRUNCATE);
	fi->data_changed = true; /* even to the same size (the original's rule) */
	fi->dirty = true;
	err = pass_end(&chg, fi, 0);
	if (err < 0)
		return err;

	if (new_size <= old_size)
		err = fs_data_truncate_blocks(fs, &chg, fi, DIV_ROUND_UP(new_size, FS_BLOCK_SIZE));
	return err;
}

/* ---- fallocate ---- */

/*
 * Give every block of [blk, last] blocks, as unwritten extents: holes are allocated, and
 * with zero set written blocks become unwritten (their contents are gone) and offline ones
 * are allocated online.  Without zero, mapped blocks are kept and offline ones are
 * allocated but stay offline (as the original's fallocate did).  At most FALLOC_BATCH
 * extents in the held transaction; *next is where to go on.
 */
static int falloc_blocks(struct fs_info *fs, struct data_ext *de, u64 blk, u64 last, bool zero,
                         u64 *next)
{
	struct alloc_extent a;
	struct fs_ext ext;
	u64 n, goal;
	u8 flags;
	int err = 0;

	for (int nr = 0; blk <= last && nr < FALLOC_BATCH; nr++) {
		err = ext_next(de, blk, &ext);
		if (err < 0 && err != -ENOENT)
			break;
		flags = SCOUTFS_EXTENT_FLAG_UNWRITTEN;
		if (err == 0 && ext.start <= blk) {
			n = min_t(u64, fs_ext_end(&ext), last) - blk + 1;
			if (ext.map) {
				if (zero && fs_ext_written(&ext)) {
					err = ext_set(de, blk, n, ext.map + (blk - ext.start),
					              SCOUTFS_EXTENT_FLAG_UNWRITTEN);
					if (err < 0)
						break;
					counter_add(data_zero_range_blocks, n);
				}
				blk += n;
				continue;
			}
			if (!zero)
				flags |= ext.flags & SCOUTFS_EXTENT_FLAG_OFFLINE;
		} else {
			n = (err == 0 ? min_t(u64, ext.start - 1, last) : last) - blk + 1;
		}
		n = min_t(u64, n, FALLOC_ALLOC_LIMIT);
		goal = alloc_goal(de, blk);
		err = trans_alloc_data(fs->ti, goal, n, &a);
		if (err < 0)
			break;
		err = ext_set(de, blk, a.len, a.start, flags);
		if (err < 0)
			break;
		counter_add(data_fallocate_blocks, a.len);
		blk += a.len;
	}
	*next = blk;
	return err;
}

/*
 * Zero the parts of the partial first and last blocks of bytes [off, off + len) that hold
 * written data, and narrow [*first, *end) to the range's whole blocks.
 */
static int zero_partial_blocks(struct fs_info *fs, struct data_ext *de, u64 off, u64 len,
                               u64 *first, u64 *end)
{
	u64 last_byte = off + len - 1;
	int err;

	*first = DIV_ROUND_UP(off, FS_BLOCK_SIZE);
	*end = (off + len) >> FS_BLOCK_SHIFT;
	if ((off >> FS_BLOCK_SHIFT) == (last_byte >> FS_BLOCK_SHIFT)) {
		if (len == FS_BLOCK_SIZE)
			return 0;
		*first = *end = 0;
		return zero_in_block(fs, de, off, len);
	}
	if (off & BLOCK_MASK) {
		err = zero_in_block(fs, de, off, FS_BLOCK_SIZE - (off & BLOCK_MASK));
		if (err < 0)
			return err;
	}
	if ((off + len) & BLOCK_MASK)
		return zero_in_block(fs, de, (off + len) & ~BLOCK_MASK, (off + len) & BLOCK_MASK);
	return 0;
}

/*
 * Preallocate (or, with zero, zero) bytes [off, off + len): allocate unwritten extents over
 * the blocks of the range, a bounded number per transaction.  Without keep_size the size
 * grows as passes complete, with the data_version bumped by each pass that grows it (the
 * original's rule).  Zeroing rewrites the partial edge blocks and changes the contents
 * (mtime, ctime, data_version, data_seq); plain preallocation changes ctime, and mtime only
 * when the file grows, as on ext4.
 */
static int falloc_range(struct fs_info *fs, const struct fs_cred *cred, struct fs_inode *fi,
                        u64 off, u64 len, bool keep_size, bool zero)
{
	struct data_ext de = data_ext_of(fs, fi);
	struct timespec now = fs_now();
	bool committed = false, first_pass = true, grow;
	struct fs_change chg;
	u64 blk, end_blk, next, end;
	int err;

	if (zero) {
		err = zero_partial_blocks(fs, &de, off, len, &blk, &end_blk);
		if (err < 0)
			return err;
	} else {
		blk = off >> FS_BLOCK_SHIFT;
		end_blk = ((off + len - 1) >> FS_BLOCK_SHIFT) + 1;
	}

	do {
		err = pass_begin(fs, cred, fi, &chg, TRANS_HOLD_ALLOC);
		if (err < 0)
			return err;
		next = blk;
		if (blk < end_blk)
			err = falloc_blocks(fs, &de, blk, end_blk - 1, zero, &next);
		if (next > blk)
			committed = false;
		/* the size covers what is allocated so far, all of the range once done */
		end = next >= end_blk ? off + len : next << FS_BLOCK_SHIFT;
		grow = !keep_size && (next > blk || next >= end_blk) &&
		       end > le64_to_cpu(fi->si.size);
		if (grow) {
			fi->si.size = cpu_to_le64(end);
			fi->layout_changed = true;
			fi->dirty = true;
		}
		if (zero ? first_pass : grow) {
			contents_changed(fi, now);
		} else if (next > blk) {
			fs_set_ts(&fi->si.ctime, now);
			fi->dirty = true;
		}
		first_pass = false;
		err = pass_end(&chg, fi, err);
		blk = next;
		if (err == -ENOBUFS || (err == -ENOSPC && !committed)) {
			if (err == -ENOSPC)
				counter_inc(data_enospc_commit);
			committed = true;
			err = trans_sync(fs->ti);
		}
		if (err < 0)
			return err;
	} while (blk < end_blk);
	return 0;
}

/* punch a hole in bytes [off, off + len): zero partial blocks, free whole ones */
static int punch_range(struct fs_info *fs, const struct fs_cred *cred, struct fs_inode *fi, u64 off,
                       u64 len)
{
	struct data_ext de = data_ext_of(fs, fi);
	struct timespec now = fs_now();
	bool more, first_pass = true;
	struct fs_change chg;
	u64 first, end, freed = 0;
	int err;

	err = zero_partial_blocks(fs, &de, off, len, &first, &end);
	if (err < 0)
		return err;
	do {
		err = pass_begin(fs, cred, fi, &chg, 0);
		if (err < 0)
			return err;
		more = false;
		if (first < end)
			err = free_blocks(fs, &de, first, end - 1, FREE_BATCH, &more, &freed);
		if (first_pass)
			contents_changed(fi, now);
		first_pass = false;
		err = pass_end(&chg, fi, err);
		if (err < 0)
			return err;
	} while (more);
	counter_add(data_punch_blocks, freed);
	return 0;
}

int fs_fallocate(struct fs_info *fs, const struct fs_cred *cred, u64 ino, int mode, u64 off,
                 u64 len)
{
	bool keep_size = mode & FS_FALLOC_KEEP_SIZE;
	struct fs_inode fi;
	int err;

	if (mode & ~(FS_FALLOC_KEEP_SIZE | FS_FALLOC_PUNCH_HOLE | FS_FALLOC_ZERO_RANGE))
		return -EOPNOTSUPP;
	if ((mode & FS_FALLOC_PUNCH_HOLE) &&
	    ((mode & FS_FALLOC_ZERO_RANGE) || !(mode & FS_FALLOC_KEEP_SIZE)))
		return -EOPNOTSUPP;
	if (len == 0)
		return -EINVAL;
	if (off > FS_MAX_FILE_SIZE || len > FS_MAX_FILE_SIZE - off)
		return -EFBIG;

	err = data_begin(fs, cred, ino, true, &fi);
	if (err < 0)
		return err;
	err = check_regular(&fi);
	if (err == -EINVAL)
		err = -ENODEV; /* what the kernel says for other file types */
	if (err == 0)
		err = finish_truncate(fs, &fi);
	if (err < 0)
		goto out;
	if (mode & FS_FALLOC_PUNCH_HOLE)
		err = punch_range(fs, cred, &fi, off, len);
	else
		err = falloc_range(fs, cred, &fi, off, len, keep_size, mode & FS_FALLOC_ZERO_RANGE);
out:
	data_end(fs, cred, &fi, true);
	return err;
}

/* ---- mapping: SEEK_DATA/SEEK_HOLE and extent lists ---- */

/*
 * Data for lseek is what reads return from blocks: written extents, and offline ones (their
 * contents exist, in an archive).  Unwritten extents read as zeros and are holes, as on
 * ext4 and XFS (which only report them as data where the page cache has dirty pages over
 * them; ours never does, every write reaches us before it returns).
 */
static bool ext_is_data(const struct fs_ext *ext)
{
	return fs_ext_written(ext) || (ext->flags & SCOUTFS_EXTENT_FLAG_OFFLINE);
}

/* the first data at or after off (< size), or -ENXIO */
static int seek_data(struct data_ext *de, u64 off, u64 size, u64 *pos)
{
	u64 blk = off >> FS_BLOCK_SHIFT;
	struct fs_ext ext;
	int err;

	for (;;) {
		err = ext_next(de, blk, &ext);
		if (err == -ENOENT)
			return -ENXIO;
		if (err < 0)
			return err;
		if ((ext.start << FS_BLOCK_SHIFT) >= size)
			return -ENXIO;
		if (ext_is_data(&ext)) {
			*pos = max_t(u64, off, ext.start << FS_BLOCK_SHIFT);
			return 0;
		}
		blk = fs_ext_end(&ext) + 1;
	}
}

/* the first hole at or after off (< size), or size: every file ends in a hole */
static int seek_hole(struct data_ext *de, u64 off, u64 size, u64 *pos)
{
	u64 blk = off >> FS_BLOCK_SHIFT;
	struct fs_ext ext;
	int err;

	for (;;) {
		err = ext_next(de, blk, &ext);
		if (err < 0 && err != -ENOENT)
			return err;
		if (err == -ENOENT || ext.start > blk || !ext_is_data(&ext)) {
			*pos = min_t(u64, max_t(u64, off, blk << FS_BLOCK_SHIFT), size);
			return 0;
		}
		blk = fs_ext_end(&ext) + 1;
		if ((blk << FS_BLOCK_SHIFT) >= size) {
			*pos = size;
			return 0;
		}
	}
}

int fs_seek_data_hole(struct fs_info *fs, const struct fs_cred *cred, u64 ino, u64 off, bool data,
                      u64 *pos)
{
	struct fs_inode fi;
	struct data_ext de;
	u64 size;
	int err;

	err = data_begin(fs, cred, ino, false, &fi);
	if (err < 0)
		return err;
	err = check_regular(&fi);
	if (err < 0)
		goto out;
	size = le64_to_cpu(fi.si.size);
	if (off >= size) {
		err = -ENXIO;
		goto out;
	}
	de = data_ext_of(fs, &fi);
	de.fi = NULL;
	err = data ? seek_data(&de, off, size, pos) : seek_hole(&de, off, size, pos);
out:
	data_end(fs, cred, &fi, false);
	return err;
}

int fs_get_extents(struct fs_info *fs, const struct fs_cred *cred, u64 ino, u64 start_blk,
                   struct fs_extent_info *exts, int nr)
{
	struct fs_inode fi;
	struct data_ext de;
	struct fs_ext ext;
	int count = 0;
	int err;

	err = data_begin(fs, cred, ino, false, &fi);
	if (err < 0)
		return err;
	err = check_regular(&fi);
	if (err < 0)
		goto out;
	de = data_ext_of(fs, &fi);
	de.fi = NULL;
	while (count < nr) {
		err = ext_next(&de, start_blk, &ext);
		if (err == -ENOENT) {
			if (count)
				exts[count - 1].flags |= FS_EXTENT_LAST;
			err = 0;
			break;
		}
		if (err < 0)
			goto out;
		exts[count].logical = ext.start;
		exts[count].physical = ext.map;
		exts[count].len = ext.len;
		exts[count].flags = 0;
		if (ext.flags & SCOUTFS_EXTENT_FLAG_OFFLINE)
			exts[count].flags |= FS_EXTENT_OFFLINE;
		if (ext.flags & SCOUTFS_EXTENT_FLAG_UNWRITTEN)
			exts[count].flags |= FS_EXTENT_UNWRITTEN;
		count++;
		start_blk = fs_ext_end(&ext) + 1;
	}
	/* a full batch: is its last extent the file's last? */
	if (err == 0 && count == nr && ext_next(&de, start_blk, &ext) == -ENOENT)
		exts[count - 1].flags |= FS_EXTENT_LAST;
out:
	data_end(fs, cred, &fi, false);
	return err < 0 ? err : count;
}
