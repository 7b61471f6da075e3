/*
 * fs.c: the filesystem as a whole -- lock invalidation, sync, statfs, inode index walks
 * and the orphan scan.
 *
 * Lock invalidation is where cluster consistency becomes concrete.  Before a lock that
 * could write is given up or downgraded, the transaction that holds its dirty items is
 * committed, so the next holder reads them.  Unless it is a WRITE to READ downgrade (after
 * which the cache is still valid), everything cached under the lock is forgotten: items in
 * the item cache, and attributes, directory entries and pages the kernel cached for the
 * inodes of the range (through the FUSE layer's upcall).
 *
 * The orphan scan finds inodes whose last link went away but whose items remain because a
 * mount was using them when it crashed, and deletes them once nothing uses them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "block/block.h"
#include "client/client.h"
#include "forest/forest.h"
#include "fs/fs_int.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(fs_lock_invalidate);
COUNTER_DEFINE(fs_lock_invalidate_sync);
COUNTER_DEFINE(orphan_scan);
COUNTER_DEFINE(orphan_scan_item);
COUNTER_DEFINE(orphan_scan_cached);
COUNTER_DEFINE(orphan_scan_attempts);
COUNTER_DEFINE(orphan_scan_omap_set);
COUNTER_DEFINE(orphan_scan_error);

#define ORPHAN_SCAN_DELAY_MS 10000

int fs_create(const struct fs_config *cfg, struct fs_info **ret)
{
	struct fs_info *fs;

	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->ic = cfg->ic;
	fs->li = cfg->li;
	fs->ti = cfg->ti;
	fs->cl = cfg->cl;
	fs->data_dev = cfg->data_dev;
	fs->bc = cfg->bc;
	fs->fsid = cfg->fsid;
	fs->rid = cfg->rid;
	fs->fmt_vers = cfg->fmt_vers;
	fs->total_data_blocks = cfg->total_data_blocks;
	fs->opts = cfg->opts;
	fs->orphan_scan_delay_ms = ORPHAN_SCAN_DELAY_MS;
	pthread_mutex_init(&fs->opts_mutex, NULL);
	pthread_mutex_init(&fs->ino_mutex, NULL);
	for (int i = 0; i < FS_XATTR_LOCKS; i++)
		pthread_rwlock_init(&fs->xattr_locks[i], NULL);
	fs_data_init(fs);
	pthread_mutex_init(&fs->up_mutex, NULL);
	pthread_cond_init(&fs->up_cond, NULL);
	pthread_mutex_init(&fs->orphan_mutex, NULL);
	pthread_mutex_init(&fs->delete_mutex, NULL);
	pthread_cond_init(&fs->orphan_cond, NULL);
	*ret = fs;
	return 0;
}

/* clearing them (up NULL) returns once no thread is inside an upcall any more */
void fs_set_upcalls(struct fs_info *fs, const struct fs_upcalls *up, void *arg)
{
	pthread_mutex_lock(&fs->up_mutex);
	fs->up = up;
	fs->up_arg = arg;
	while (!up && fs->up_users)
		pthread_cond_wait(&fs->up_cond, &fs->up_mutex);
	pthread_mutex_unlock(&fs->up_mutex);
}

/* the upcalls, held until upcalls_put, or NULL when there are none (any more) */
static const struct fs_upcalls *upcalls_get(struct fs_info *fs, void **arg)
{
	const struct fs_upcalls *up;

	pthread_mutex_lock(&fs->up_mutex);
	up = fs->up;
	*arg = fs->up_arg;
	if (up)
		fs->up_users++;
	pthread_mutex_unlock(&fs->up_mutex);
	return up;
}

static void upcalls_put(struct fs_info *fs)
{
	pthread_mutex_lock(&fs->up_mutex);
	if (--fs->up_users == 0)
		pthread_cond_broadcast(&fs->up_cond);
	pthread_mutex_unlock(&fs->up_mutex);
}

bool fs_inode_in_kernel(struct fs_info *fs, u64 ino)
{
	const struct fs_upcalls *up;
	bool used = false;
	void *arg;

	if ((up = upcalls_get(fs, &arg))) {
		used = up->inode_in_use && up->inode_in_use(arg, ino);
		upcalls_put(fs);
	}
	return used;
}

void fs_open_ino_map(struct fs_info *fs, u64 group_nr, le64 *bits)
{
	const struct fs_upcalls *up;
	void *arg;

	memset(bits, 0, SCOUTFS_OPEN_INO_MAP_LE64S * sizeof(le64));
	if ((up = upcalls_get(fs, &arg))) {
		if (up->inodes_in_use)
			up->inodes_in_use(arg, group_nr << SCOUTFS_OPEN_INO_MAP_SHIFT, bits);
		upcalls_put(fs);
	}
}

void fs_set_options(struct fs_info *fs, const struct fs_options *opts)
{
	pthread_mutex_lock(&fs->opts_mutex);
	fs->opts = *opts;
	pthread_mutex_unlock(&fs->opts_mutex);
}

void fs_destroy(struct fs_info *fs)
{
	if (!fs)
		return;
	fs_stop(fs);
	fs_data_destroy(fs);
	pthread_mutex_destroy(&fs->opts_mutex);
	pthread_mutex_destroy(&fs->ino_mutex);
	for (int i = 0; i < FS_XATTR_LOCKS; i++)
		pthread_rwlock_destroy(&fs->xattr_locks[i]);
	pthread_mutex_destroy(&fs->up_mutex);
	pthread_cond_destroy(&fs->up_cond);
	pthread_mutex_destroy(&fs->orphan_mutex);
	pthread_mutex_destroy(&fs->delete_mutex);
	pthread_cond_destroy(&fs->orphan_cond);
	free(fs);
}

/* ---- lock invalidation ---- */

int fs_lock_invalidate(void *arg, struct lock *lock, enum scoutfs_lock_mode old_mode,
		       enum scoutfs_lock_mode new_mode)
{
	struct fs_info *fs = arg;
	bool downgrade = old_mode == SCOUTFS_LOCK_WRITE && new_mode == SCOUTFS_LOCK_READ;
	const struct fs_upcalls *up = NULL;
	u64 first = key_first(&lock->start);
	u64 last = key_first(&lock->end);
	void *up_arg;
	int err = 0;

	counter_inc(fs_lock_invalidate);
	if (lock->start.sk_zone == SCOUTFS_FS_ZONE)
		up = upcalls_get(fs, &up_arg);
	if (old_mode == SCOUTFS_LOCK_WRITE && up && up->flush_inodes) {
		/* pages written through mappings become items before the commit */
		lock_flush_begin(fs->li, lock);
		up->flush_inodes(up_arg, first, last);
		lock_flush_end(fs->li, lock);
	}
	/* commit: the next holder must read what we wrote under this lock */
	if (lock_can_write(old_mode) && lock->dirty_trans_seq &&
	    item_range_dirty(fs->ic, &lock->start, &lock->end)) {
		counter_inc(fs_lock_invalidate_sync);
		err = trans_sync_seq(fs->ti, lock->dirty_trans_seq);
		if (err < 0)
			goto out;
	}
	if (up && up->invalidate_inodes)
		up->invalidate_inodes(up_arg, first, last, downgrade);
	if (!downgrade) /* after a downgrade what we cached is still true */
		err = item_invalidate(fs->ic, &lock->start, &lock->end);
out:
	if (up)
		upcalls_put(fs);
	return err;
}

/* ---- whole filesystem ---- */

int fs_sync(struct fs_info *fs)
{
	return trans_sync(fs->ti);
}

int fs_statfs(struct fs_info *fs, struct statvfs *st)
{
	struct scoutfs_net_statfs nst;
	s64 free_data;
	u64 files;
	int err;

	err = client_statfs(fs->cl, &nst);
	if (err < 0)
		return err;
	memset(st, 0, sizeof(*st));
	st->f_bsize = FS_BLOCK_SIZE;
	st->f_frsize = FS_BLOCK_SIZE;
	st->f_blocks = le64_to_cpu(nst.total_meta_blocks) * SCOUTFS_BLOCK_SM_PER_LG +
		       le64_to_cpu(nst.total_data_blocks);
	/* the server counts committed allocators: add what this mount used or freed since */
	free_data = (s64)le64_to_cpu(nst.free_data_blocks) + trans_data_free_delta(fs->ti);
	free_data = max_t(s64, 0, min_t(s64, free_data, (s64)le64_to_cpu(nst.total_data_blocks)));
	st->f_bfree = le64_to_cpu(nst.free_meta_blocks) * SCOUTFS_BLOCK_SM_PER_LG + (u64)free_data;
	st->f_bavail = st->f_bfree;
	/* an inode costs about 2 KiB of metadata */
	files = (le64_to_cpu(nst.total_meta_blocks) << SCOUTFS_BLOCK_LG_SHIFT) / 2048;
	st->f_files = files;
	st->f_ffree = files > le64_to_cpu(nst.inode_count) ? files - le64_to_cpu(nst.inode_count) : 0;
	st->f_favail = st->f_ffree;
	st->f_namemax = SCOUTFS_NAME_LEN;
	for (int i = 0; i < SCOUTFS_UUID_BYTES; i += 8) {
		u64 v;

		memcpy(&v, nst.uuid + i, 8);
		st->f_fsid ^= v;
	}
	return 0;
}

/* ---- inode index walks ---- */

int fs_committed_seq(struct fs_info *fs, u64 *seq)
{
	return client_get_last_seq(fs->cl, seq);
}

static int walk_cmp(const struct fs_walk_entry *a, const struct fs_walk_entry *b)
{
	if (a->major != b->major)
		return a->major < b->major ? -1 : 1;
	if (a->minor != b->minor)
		return a->minor < b->minor ? -1 : 1;
	return a->ino < b->ino ? -1 : a->ino > b->ino ? 1 : 0;
}

int fs_walk_inodes(struct fs_info *fs, u8 type, const struct fs_walk_entry *first,
		   const struct fs_walk_entry *last_in, struct fs_walk_entry *ents, int nr)
{
	struct fs_walk_entry last = *last_in;
	struct scoutfs_key start, end, key, kl;
	struct lock *lock;
	u64 committed, group;
	int count = 0;
	int ret;

	if (type != SCOUTFS_INODE_INDEX_META_SEQ_TYPE && type != SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE)
		return -EINVAL;
	if (nr <= 0 || walk_cmp(first, &last) > 0)
		return 0;

	/* only seqs whose transactions (and every older one) are committed are final */
	ret = fs_committed_seq(fs, &committed);
	if (ret < 0)
		return ret;
	if (last.major > committed) {
		last.major = committed;
		last.minor = ~0U;
		last.ino = ~0ULL;
	}
	if (walk_cmp(first, &last) > 0)
		return 0;

	key = index_key(type, first->major, first->ino);
	kl = index_key(type, last.major, last.ino);
	while (count < nr && key_compare(&key, &kl) <= 0) {
		group = key_second(&key);
		lock_index_range(type, group, &start, &end);
		ret = lock_key_range(fs->li, SCOUTFS_LOCK_READ, 0, &start, &end, NULL, &lock);
		if (ret < 0)
			return ret;
		while (count < nr) {
			ret = item_next(fs->ic, lock, &key, key_min(&kl, &end), NULL, 0);
			if (ret == -ENOENT)
				break;
			if (ret < 0) {
				lock_unlock(fs->li, lock, SCOUTFS_LOCK_READ);
				return ret;
			}
			ents[count].major = key_second(&key);
			ents[count].minor = 0;
			ents[count].ino = key_third(&key);
			count++;
			key_inc(&key);
		}
		lock_unlock(fs->li, lock, SCOUTFS_LOCK_READ);
		if (count >= nr || key_compare(&end, &kl) >= 0)
			break;
		key = end;
		key_inc(&key);
	}
	return count;
}

/* ---- orphans ---- */

struct orphan_ctx {
	u64 inos[256];
	int nr;
};

static int orphan_cb(const struct scoutfs_key *key, u64 seq, u8 flags, const void *val,
		     unsigned int val_len, void *arg)
{
	struct orphan_ctx *oc = arg;

	if (key->sk_zone == SCOUTFS_ORPHAN_ZONE && key->sk_type == SCOUTFS_ORPHAN_TYPE &&
	    oc->nr < (int)ARRAY_SIZE(oc->inos))
		oc->inos[oc->nr++] = key_second(key);
	return 0;
}

/* delete orphans nobody uses; returns the number of orphan items seen */
static int orphan_scan_once(struct fs_info *fs)
{
	struct scoutfs_net_roots roots;
	struct scoutfs_key start, end, zone_end, key;
	struct orphan_ctx oc;
	struct lock *lock;
	int seen = 0;
	int err;

	counter_inc(orphan_scan);
	lock_orphan_range(&key, &zone_end);
	err = client_get_roots(fs->cl, &roots);
	if (err < 0)
		return err;

	for (;;) {
		/* committed state, read without a lock: candidates are checked under one */
		start = key;
		end = zone_end;
		oc.nr = 0;
		err = forest_read_items(fs->bc, &roots, &key, &start, &end, orphan_cb, &oc);
		if (err < 0)
			return err;
		for (int i = 0; i < oc.nr; i++) {
			u64 ino = oc.inos[i];

			seen++;
			counter_inc(orphan_scan_item);
			if (fs_inode_in_kernel(fs, ino)) {
				counter_inc(orphan_scan_cached);
				continue;
			}
			counter_inc(orphan_scan_attempts);
			pthread_mutex_lock(&fs->delete_mutex);
			err = lock_inode(fs->li, ino, SCOUTFS_LOCK_WRITE, 0, NULL, &lock);
			if (err < 0) {
				pthread_mutex_unlock(&fs->delete_mutex);
				return err;
			}
			/* the kernel (here or elsewhere) may have looked it up again meanwhile */
			if (fs_inode_used_anywhere(fs, ino)) {
				counter_inc(orphan_scan_omap_set);
				err = 0;
			} else {
				err = fs_delete_inode_items(fs, lock, ino);
			}
			lock_unlock(fs->li, lock, SCOUTFS_LOCK_WRITE);
			pthread_mutex_unlock(&fs->delete_mutex);
			if (err < 0) {
				counter_inc(orphan_scan_error);
				log_warn("orphan inode %llu could not be deleted: %s",
					 (unsigned long long)ino, strerror(-err));
			}
		}
		if (key_compare(&end, &zone_end) >= 0)
			break;
		key = end;
		key_inc(&key);
	}
	return seen;
}

static void *orphan_thread(void *arg)
{
	struct fs_info *fs = arg;
	struct timespec ts;
	u64 delay;
	int ret;

	thread_set_name("orphan-scan");
	pthread_mutex_lock(&fs->orphan_mutex);
	while (!fs->orphan_stop) {
		pthread_mutex_unlock(&fs->orphan_mutex);
		ret = orphan_scan_once(fs);
		if (ret < 0 && ret != -ESHUTDOWN)
			log_debug("orphan scan failed: %s", strerror(-ret));
		pthread_mutex_lock(&fs->orphan_mutex);
		/* jitter so that mounts don't scan in lockstep */
		delay = fs->orphan_scan_delay_ms * (80 + random_below(41)) / 100;
		ts = now_real();
		ts.tv_sec += delay / 1000;
		ts.tv_nsec += (long)((delay % 1000) * NSEC_PER_MSEC);
		if (ts.tv_nsec >= (long)NSEC_PER_SEC) {
			ts.tv_sec++;
			ts.tv_nsec -= NSEC_PER_SEC;
		}
		if (!fs->orphan_stop)
			pthread_cond_timedwait(&fs->orphan_cond, &fs->orphan_mutex, &ts);
	}
	pthread_mutex_unlock(&fs->orphan_mutex);
	return NULL;
}

int fs_start(struct fs_info *fs)
{
	int err;

	fs->orphan_stop = false;
	err = -pthread_create(&fs->orphan_thread, NULL, orphan_thread, fs);
	if (err == 0)
		fs->orphan_running = true;
	return err;
}

void fs_stop(struct fs_info *fs)
{
	if (!fs->orphan_running)
		return;
	pthread_mutex_lock(&fs->orphan_mutex);
	fs->orphan_stop = true;
	pthread_cond_broadcast(&fs->orphan_cond);
	pthread_mutex_unlock(&fs->orphan_mutex);
	pthread_join(fs->orphan_thread, NULL);
	fs->orphan_running = false;
}

void fs_set_orphan_scan_delay(struct fs_info *fs, u64 ms)
{
	pthread_mutex_lock(&fs->orphan_mutex);
	fs->orphan_scan_delay_ms = ms;
	pthread_cond_broadcast(&fs->orphan_cond);
	pthread_mutex_unlock(&fs->orphan_mutex);
}
