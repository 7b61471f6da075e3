/*
 * inode.c: inode items, their seq indexes, inode numbers and inode deletion.
 *
 * Every inode carries meta_seq and data_seq: the seq of the transaction that last changed
 * its metadata, and (for regular files) its contents or size.  Each inode has an index item
 * keyed by its meta_seq (and a regular file one keyed by its data_seq) so that archive
 * agents find what changed by walking the index instead of the namespace.  When an inode
 * item is written in a transaction whose seq differs from the inode's, the old index item is
 * deleted and a new one created, in that same transaction -- an inode is never in two places
 * of an index, and moves only forward.
 *
 * Index items of many inodes share a lock per group of 1024 seqs, taken WRITE_ONLY so that
 * mounts changing different inodes never wait for each other.  The group of the new seq is
 * only known once the transaction is held, but locks must be taken before holding: so a
 * change reads the transaction seq, locks the groups, holds, and starts over in the rare case
 * the transaction committed in between.
 *
 * Deletion: when an inode's last link goes, an orphan item records it, and the inode's items
 * are deleted once nothing references it any more (the kernel forgot it); the orphan item
 * lets a later scan finish the job after a crash.
 */
#include <errno.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "fs/fs_int.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(fs_change_retry);
COUNTER_DEFINE(fs_inode_write);
COUNTER_DEFINE(inode_deleted);
COUNTER_DEFINE(inode_omap_error);
COUNTER_DEFINE(inode_used_elsewhere);
COUNTER_DEFINE(inode_evict_unlocked);
COUNTER_DEFINE(fs_ino_alloc_batch);

/* ---- inode items ---- */

unsigned int fs_inode_bytes(struct fs_info *fs)
{
	return fs->fmt_vers >= 2 ? SCOUTFS_INODE_FMT_V2_BYTES : SCOUTFS_INODE_FMT_V1_BYTES;
}

int fs_inode_read(struct fs_info *fs, struct lock *lock, u64 ino, struct scoutfs_inode *si)
{
	struct scoutfs_key key = inode_key(ino);
	int ret;

	memset(si, 0, sizeof(*si));
	ret = item_lookup(fs->ic, lock, &key, si, sizeof(*si));
	if (ret < 0)
		return ret;
	if (ret != SCOUTFS_INODE_FMT_V1_BYTES &&
	    !(ret == SCOUTFS_INODE_FMT_V2_BYTES && fs->fmt_vers >= 2)) {
		log_err("inode %llu item has %d bytes", (unsigned long long)ino, ret);
		return -EIO;
	}
	return 0;
}

struct timespec fs_now(void)
{
	return now_real();
}

void fs_set_ts(struct scoutfs_timespec *dst, struct timespec ts)
{
	dst->sec = cpu_to_le64((u64)ts.tv_sec);
	dst->nsec = cpu_to_le32((u32)ts.tv_nsec);
	memset(dst->__pad, 0, sizeof(dst->__pad));
}

static struct timespec get_ts(const struct scoutfs_timespec *ts)
{
	struct timespec t = { .tv_sec = (time_t)le64_to_cpu(ts->sec),
			      .tv_nsec = le32_to_cpu(ts->nsec) };

	return t;
}

void fs_inode_attr(const struct scoutfs_inode *si, u64 ino, struct fs_attr *attr)
{
	u32 mode = le32_to_cpu(si->mode);

	memset(attr, 0, sizeof(*attr));
	attr->ino = ino;
	attr->mode = mode;
	attr->nlink = le32_to_cpu(si->nlink);
	attr->uid = le32_to_cpu(si->uid);
	attr->gid = le32_to_cpu(si->gid);
	attr->rdev = le32_to_cpu(si->rdev);
	attr->size = le64_to_cpu(si->size);
	if (S_ISLNK(mode) && attr->size)
		attr->size--; /* stored with its NUL; POSIX wants the path length */
	attr->online_blocks = le64_to_cpu(si->online_blocks);
	attr->offline_blocks = le64_to_cpu(si->offline_blocks);
	attr->blocks = (attr->online_blocks + attr->offline_blocks) << (FS_BLOCK_SHIFT - 9);
	attr->atime = get_ts(&si->atime);
	attr->mtime = get_ts(&si->mtime);
	attr->ctime = get_ts(&si->ctime);
	attr->crtime = get_ts(&si->crtime);
	attr->meta_seq = le64_to_cpu(si->meta_seq);
	attr->data_seq = le64_to_cpu(si->data_seq);
	attr->data_version = le64_to_cpu(si->data_version);
}

u32 fs_mode_dtype(u32 mode)
{
	return scoutfs_mode_dtype(mode);
}

bool fs_capable(const struct fs_cred *cred, int cap)
{
	if (!cred)
		return true;
	if (cred->capable)
		return cred->capable(cred->caller_arg, cap);
	return cred->uid == 0;
}

bool fs_in_group(const struct fs_cred *cred, gid_t gid)
{
	if (!cred || cred->gid == gid)
		return true;
	return cred->in_group && cred->in_group(cred->caller_arg, gid);
}

bool fs_inode_owner_or_capable(const struct fs_cred *cred, const struct scoutfs_inode *si)
{
	return !cred || cred->uid == le32_to_cpu(si->uid) || fs_capable(cred, CAP_FOWNER);
}

/*
 * The set-id bits a write or truncate by this caller removes, as the kernel decides for
 * local filesystems: setuid; setgid when the group may execute, or when the caller is not
 * in the file's group; none if the caller holds CAP_FSETID.
 *
 * FUSE leaves part of this to us (libfuse 3.14 cannot ask for HANDLE_KILLPRIV, and we
 * measured what the kernel still does): before a buffered write or a truncate the kernel
 * clears setuid and group-executable setgid itself, but it never clears a setgid bit
 * without group execute, nothing at all for an O_TRUNC open (atomic_o_trunc) or for a
 * direct I/O write.  Doing it here again is harmless for what the kernel did clear.
 */
bool fs_inode_kill_suid(const struct fs_cred *cred, struct scoutfs_inode *si)
{
	u32 mode = le32_to_cpu(si->mode);
	u32 kill = 0;

	if (!S_ISREG(mode))
		return false;
	if (mode & S_ISUID)
		kill |= S_ISUID;
	if ((mode & S_ISGID) &&
	    ((mode & S_IXGRP) || !fs_in_group(cred, le32_to_cpu(si->gid))))
		kill |= S_ISGID;
	if (!kill || fs_capable(cred, CAP_FSETID))
		return false;
	si->mode = cpu_to_le32(mode & ~kill);
	return true;
}

struct lock_waiter fs_waiter(const struct fs_cred *cred)
{
	struct lock_waiter w = { .interrupted = cred ? cred->interrupted : NULL,
				 .arg = cred ? cred->interrupted_arg : NULL };

	return w;
}

int fs_lock_flags(const struct fs_cred *cred)
{
	return cred && cred->holds_pages ? LOCK_KERNEL_PAGES : 0;
}

static bool never_interrupted(void *arg)
{
	return false;
}

/* ---- changes: index locks, orphan lock, transaction ---- */

void fs_change_init(struct fs_change *chg, struct fs_info *fs)
{
	memset(chg, 0, sizeof(*chg));
	chg->fs = fs;
}

void fs_change_add(struct fs_change *chg, struct fs_inode *fi)
{
	for (int i = 0; i < chg->nr_inodes; i++) {
		if (chg->inodes[i] == fi)
			return;
	}
	if (chg->nr_inodes < FS_MAX_CHANGE_INODES)
		chg->inodes[chg->nr_inodes++] = fi;
}

static void add_index_group(struct fs_change *chg, u8 type, u64 seq)
{
	u64 group = seq & ~SCOUTFS_LOCK_SEQ_GROUP_MASK;

	for (int i = 0; i < chg->nr_index; i++) {
		if (chg->index_types[i] == type && chg->index_groups[i] == group)
			return;
	}
	if (chg->nr_index < FS_MAX_INDEX_LOCKS) {
		chg->index_types[chg->nr_index] = type;
		chg->index_groups[chg->nr_index] = group;
		chg->nr_index++;
	}
}

static void unlock_indexes(struct fs_change *chg)
{
	for (int i = 0; i < chg->nr_index; i++) {
		if (chg->index_locks[i])
			lock_unlock(chg->fs->li, chg->index_locks[i], SCOUTFS_LOCK_WRITE_ONLY);
		chg->index_locks[i] = NULL;
	}
	chg->nr_index = 0;
	if (chg->orphan_lock) {
		lock_unlock(chg->fs->li, chg->orphan_lock, SCOUTFS_LOCK_WRITE_ONLY);
		chg->orphan_lock = NULL;
	}
}

/* locks sort by (type, group) which is their start key order: the lock order rule */
static void sort_index_groups(struct fs_change *chg)
{
	for (int i = 1; i < chg->nr_index; i++) {
		for (int j = i; j > 0; j--) {
			bool swap = chg->index_types[j - 1] > chg->index_types[j] ||
				    (chg->index_types[j - 1] == chg->index_types[j] &&
				     chg->index_groups[j - 1] > chg->index_groups[j]);
			u8 t;
			u64 g;

			if (!swap)
				break;
			t = chg->index_types[j];
			chg->index_types[j] = chg->index_types[j - 1];
			chg->index_types[j - 1] = t;
			g = chg->index_groups[j];
			chg->index_groups[j] = chg->index_groups[j - 1];
			chg->index_groups[j - 1] = g;
		}
	}
}

int fs_change_begin(struct fs_change *chg, const struct fs_cred *cred, int hold_flags)
{
	struct fs_info *fs = chg->fs;
	struct lock_waiter w = fs_waiter(cred);
	struct scoutfs_key start, end;
	struct fs_inode *fi;
	u64 seq;
	int err;

	if (!w.interrupted)
		w.interrupted = never_interrupted;

	for (;;) {
		seq = trans_seq(fs->ti);
		chg->nr_index = 0;
		for (int i = 0; i < chg->nr_inodes; i++) {
			fi = chg->inodes[i];
			add_index_group(chg, SCOUTFS_INODE_INDEX_META_SEQ_TYPE, seq);
			if (!fi->created)
				add_index_group(chg, SCOUTFS_INODE_INDEX_META_SEQ_TYPE,
						le64_to_cpu(fi->si.meta_seq));
			if (S_ISREG(le32_to_cpu(fi->si.mode))) {
				add_index_group(chg, SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE, seq);
				if (!fi->created)
					add_index_group(chg, SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE,
							le64_to_cpu(fi->si.data_seq));
			}
		}
		sort_index_groups(chg);

		/* orphan zone first: it sorts before the fs zone's index... both after inodes */
		if (chg->want_orphan) {
			lock_orphan_range(&start, &end);
			err = lock_key_range(fs->li, SCOUTFS_LOCK_WRITE_ONLY, 0, &start, &end, &w,
					     &chg->orphan_lock);
			if (err < 0)
				goto fail;
		}
		for (int i = 0; i < chg->nr_index; i++) {
			lock_index_range(chg->index_types[i], chg->index_groups[i], &start, &end);
			err = lock_key_range(fs->li, SCOUTFS_LOCK_WRITE_ONLY, 0, &start, &end, &w,
					     &chg->index_locks[i]);
			if (err < 0)
				goto fail;
		}

		err = trans_hold(fs->ti, hold_flags);
		if (err < 0)
			goto fail;
		if (trans_seq(fs->ti) == seq) {
			chg->held = true;
			chg->seq = seq;
			return 0;
		}
		/* the transaction committed while we locked: the new seq's group may differ */
		trans_release(fs->ti);
		unlock_indexes(chg);
		counter_inc(fs_change_retry);
	}
fail:
	unlock_indexes(chg);
	return err;
}

static struct lock *index_lock_for(struct fs_change *chg, u8 type, u64 seq)
{
	u64 group = seq & ~SCOUTFS_LOCK_SEQ_GROUP_MASK;

	for (int i = 0; i < chg->nr_index; i++) {
		if (chg->index_types[i] == type && chg->index_groups[i] == group)
			return chg->index_locks[i];
	}
	return NULL;
}

/* move an inode's index item from its old seq to the transaction's seq */
static int update_index(struct fs_change *chg, struct fs_inode *fi, u8 type, le64 *seqp)
{
	struct fs_info *fs = chg->fs;
	u64 old = le64_to_cpu(*seqp);
	struct scoutfs_key key;
	struct lock *lock;
	int err;

	if (!fi->created && old == chg->seq)
		return 0;
	if (!fi->created) {
		lock = index_lock_for(chg, type, old);
		key = index_key(type, old, fi->ino);
		err = item_delete_force(fs->ic, lock, fi->lock, &key);
		if (err < 0)
			return err;
	}
	lock = index_lock_for(chg, type, chg->seq);
	key = index_key(type, chg->seq, fi->ino);
	err = item_create_force(fs->ic, lock, fi->lock, &key, NULL, 0);
	if (err < 0)
		return err;
	*seqp = cpu_to_le64(chg->seq);
	return 0;
}

static int write_inode(struct fs_change *chg, struct fs_inode *fi)
{
	struct fs_info *fs = chg->fs;
	struct scoutfs_key key = inode_key(fi->ino);
	int err;

	err = update_index(chg, fi, SCOUTFS_INODE_INDEX_META_SEQ_TYPE, &fi->si.meta_seq);
	if (err < 0)
		return err;
	if (S_ISREG(le32_to_cpu(fi->si.mode)) && (fi->data_changed || fi->created)) {
		err = update_index(chg, fi, SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE, &fi->si.data_seq);
		if (err < 0)
			return err;
	}
	le64_add_cpu(&fi->si.version, 1);
	if (fi->created)
		err = item_create(fs->ic, fi->lock, &key, &fi->si, fs_inode_bytes(fs));
	else
		err = item_update(fs->ic, fi->lock, &key, &fi->si, fs_inode_bytes(fs));
	if (err == 0) {
		fi->created = false;
		fi->dirty = false;
		fi->data_changed = false;
		counter_inc(fs_inode_write);
	}
	return err;
}

int fs_change_write_inodes(struct fs_change *chg)
{
	int err;

	for (int i = 0; i < chg->nr_inodes; i++) {
		struct fs_inode *fi = chg->inodes[i];

		if (!fi->dirty || fi->deleted)
			continue;
		err = write_inode(chg, fi);
		if (err < 0)
			return err;
	}
	return 0;
}

void fs_change_end(struct fs_change *chg)
{
	if (chg->held) {
		trans_release(chg->fs->ti);
		chg->held = false;
	}
	unlock_indexes(chg);
}

int fs_orphan_add(struct fs_change *chg, u64 ino)
{
	struct scoutfs_key key = orphan_key(ino);

	return item_create_force(chg->fs->ic, chg->orphan_lock, NULL, &key, NULL, 0);
}

int fs_orphan_del(struct fs_change *chg, u64 ino)
{
	struct scoutfs_key key = orphan_key(ino);

	return item_delete_force(chg->fs->ic, chg->orphan_lock, NULL, &key);
}

/* ---- inode numbers ---- */

int fs_alloc_ino(struct fs_info *fs, bool dir, u64 *ino)
{
	struct ino_pool *pool;
	u32 per_lock;
	u64 start, nr;
	int err;

	pthread_mutex_lock(&fs->opts_mutex);
	per_lock = fs->opts.ino_alloc_per_lock;
	pthread_mutex_unlock(&fs->opts_mutex);
	if (per_lock == 0 || per_lock > SCOUTFS_LOCK_INODE_GROUP_NR)
		per_lock = SCOUTFS_LOCK_INODE_GROUP_NR;

	/*
	 * Directories come from their own batch by default, so the entries of different
	 * directories tend to fall under different locks.
	 */
	pthread_mutex_lock(&fs->ino_mutex);
	pool = (dir && per_lock == SCOUTFS_LOCK_INODE_GROUP_NR) ? &fs->dir_pool : &fs->file_pool;
	while (pool->next >= pool->end) {
		pthread_mutex_unlock(&fs->ino_mutex);
		err = client_alloc_inodes(fs->cl, FS_INO_BATCH, &start, &nr);
		if (err < 0)
			return err;
		counter_inc(fs_ino_alloc_batch);
		pthread_mutex_lock(&fs->ino_mutex);
		if (pool->next >= pool->end) {
			pool->next = start;
			pool->end = start + nr;
		}
	}
	*ino = pool->next++;
	if ((pool->next & SCOUTFS_LOCK_INODE_GROUP_MASK) >= per_lock)
		pool->next = (pool->next | SCOUTFS_LOCK_INODE_GROUP_MASK) + 1;
	pthread_mutex_unlock(&fs->ino_mutex);
	return 0;
}

/* ---- deletion ---- */

static int delete_type_items(struct fs_info *fs, struct lock *lock, u64 ino, u8 type, int max,
			     int *nr)
{
	struct scoutfs_key key = key_make(SCOUTFS_FS_ZONE, ino, type, 0, 0, 0);
	struct scoutfs_key last = key_make(SCOUTFS_FS_ZONE, ino, type, ~0ULL, ~0ULL, 0xff);
	u8 buf[SCOUTFS_BTREE_MAX_VAL_LEN];
	int ret;

	while (*nr < max) {
		ret = item_next(fs->ic, lock, &key, &last, buf, sizeof(buf));
		if (ret == -ENOENT)
			return 0;
		if (ret < 0)
			return ret;
		ret = item_delete(fs->ic, lock, &key);
		if (ret < 0)
			return ret;
		(*nr)++;
	}
	return 1;
}

/*
 * Delete everything of an inode with no links left, over as many transactions as it takes.
 * The caller holds the inode's lock in WRITE.  Data blocks are freed with the extents.
 */
int fs_delete_inode_items(struct fs_info *fs, struct lock *lock, u64 ino)
{
	struct fs_inode fi = { .ino = ino, .lock = lock };
	struct fs_change chg;
	struct scoutfs_key key;
	int nr, more, err;

	err = fs_inode_read(fs, lock, ino, &fi.si);
	if (err < 0)
		return err == -ENOENT ? 0 : err;
	if (le32_to_cpu(fi.si.nlink) > 0)
		return 0;

	/* data extents, freeing their blocks, in bounded transactions */
	fs_change_init(&chg, fs);
	err = fs_data_truncate_blocks(fs, &chg, &fi, 0);
	if (err < 0)
		return err;

	/* xattrs and symlink chunks, a bounded number per transaction */
	do {
		fs_change_init(&chg, fs);
		err = fs_change_begin(&chg, NULL, 0);
		if (err < 0)
			return err;
		nr = 0;
		more = fs_xattr_delete_all(fs, lock, ino, 1000, &nr);
		if (more >= 0 && nr < 1000)
			more = delete_type_items(fs, lock, ino, SCOUTFS_SYMLINK_TYPE, 1000, &nr);
		fs_change_end(&chg);
		if (more < 0)
			return more;
	} while (more > 0);

	/* finally the index items, the inode, and the orphan item, together */
	fs_change_init(&chg, fs);
	chg.want_orphan = true;
	fs_change_add(&chg, &fi);
	err = fs_change_begin(&chg, NULL, 0);
	if (err < 0)
		return err;
	key = index_key(SCOUTFS_INODE_INDEX_META_SEQ_TYPE, le64_to_cpu(fi.si.meta_seq), ino);
	err = item_delete_force(fs->ic,
				index_lock_for(&chg, SCOUTFS_INODE_INDEX_META_SEQ_TYPE,
					       le64_to_cpu(fi.si.meta_seq)),
				lock, &key);
	if (err == 0 && S_ISREG(le32_to_cpu(fi.si.mode))) {
		key = index_key(SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE, le64_to_cpu(fi.si.data_seq), ino);
		err = item_delete_force(fs->ic,
					index_lock_for(&chg, SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE,
						       le64_to_cpu(fi.si.data_seq)),
					lock, &key);
	}
	if (err == 0) {
		key = inode_key(ino);
		err = item_delete(fs->ic, lock, &key);
	}
	if (err == 0)
		err = fs_orphan_del(&chg, ino);
	if (err == 0) {
		trans_add_inode_count(fs->ti, -1);
		counter_inc(inode_deleted);
	}
	fs_change_end(&chg);
	return err;
}

/*
 * The open map of one inode group, kept while a batch of evictions asks about several of
 * its inodes: one request to the server for all of them.
 */
struct omap_cache {
	bool valid;
	u64 group;
	le64 bits[SCOUTFS_OPEN_INO_MAP_LE64S];
};

/*
 * Does any mount, this one included, still use ino (open, mapped, cached)?  Asked under the
 * inode's WRITE lock, when its last link is gone: nobody can find it by name any more, so
 * the answer can only go from yes to no, and a "no" in a map asked for after the inode was
 * seen unlinked stays true (which lets a batch share oc).  Errors count as yes: the orphan
 * scan retries.
 */
static bool used_anywhere(struct fs_info *fs, u64 ino, struct omap_cache *oc)
{
	u64 group = ino >> SCOUTFS_OPEN_INO_MAP_SHIFT;
	u64 bit = ino & SCOUTFS_OPEN_INO_MAP_MASK;
	int err;

	if (fs_inode_in_kernel(fs, ino))
		return true;
	if (!oc->valid || oc->group != group) {
		oc->valid = false;
		err = client_open_ino_map(fs->cl, group, oc->bits);
		if (err < 0) {
			counter_inc(inode_omap_error);
			return true;
		}
		oc->valid = true;
		oc->group = group;
	}
	if (le64_to_cpu(oc->bits[bit / 64]) & (1ULL << (bit % 64))) {
		counter_inc(inode_used_elsewhere);
		return true;
	}
	return false;
}

bool fs_inode_used_anywhere(struct fs_info *fs, u64 ino)
{
	struct omap_cache oc = { .valid = false };

	return used_anywhere(fs, ino, &oc);
}

/*
 * Cheap check first, and only under a lock we still hold: most forgotten inodes still have
 * links, and asking for locks just to find that out would take them from the mounts using
 * them.  One we don't hold was changed (unlinked, perhaps) elsewhere since: if it is an
 * orphan, the orphan scan deletes it.
 */
static bool evict_candidate(struct fs_info *fs, u64 ino)
{
	struct scoutfs_inode si;
	struct lock *lock;
	int err;

	if (ino == SCOUTFS_ROOT_INO)
		return false;
	err = lock_inode(fs->li, ino, SCOUTFS_LOCK_READ, LOCK_NONBLOCK, NULL, &lock);
	if (err == -EAGAIN)
		counter_inc(inode_evict_unlocked);
	if (err < 0)
		return false;
	err = fs_inode_read(fs, lock, ino, &si);
	lock_unlock(fs->li, lock, SCOUTFS_LOCK_READ);
	return err == 0 && le32_to_cpu(si.nlink) == 0;
}

static void evict_unlinked(struct fs_info *fs, u64 ino, struct omap_cache *oc)
{
	struct lock *lock;
	int err;

	pthread_mutex_lock(&fs->delete_mutex);
	err = lock_inode(fs->li, ino, SCOUTFS_LOCK_WRITE, 0, NULL, &lock);
	if (err < 0)
		goto out;
	/* another mount still using it deletes it when it lets go (or an orphan scan does) */
	if (!used_anywhere(fs, ino, oc)) {
		err = fs_delete_inode_items(fs, lock, ino);
		if (err < 0)
			log_warn("deleting unlinked inode %llu failed: %s (the orphan scan retries)",
				 (unsigned long long)ino, strerror(-err));
	}
	lock_unlock(fs->li, lock, SCOUTFS_LOCK_WRITE);
out:
	pthread_mutex_unlock(&fs->delete_mutex);
}

static int cmp_ino(const void *a, const void *b)
{
	return cmp_u64(*(const u64 *)a, *(const u64 *)b);
}

void fs_evict_many(struct fs_info *fs, const u64 *inos, int nr)
{
	struct omap_cache oc;
	u64 unlinked[FS_EVICT_BATCH];
	int nr_unlinked;
	int batch;

	for (; nr > 0; inos += batch, nr -= batch) {
		batch = min_t(int, nr, FS_EVICT_BATCH);
		nr_unlinked = 0;
		for (int i = 0; i < batch; i++) {
			if (evict_candidate(fs, inos[i]))
				unlinked[nr_unlinked++] = inos[i];
		}
		/*
		 * Every open map asked for from here on is newer than those inodes' unlinks;
		 * sorted, the inodes of one group follow each other and share one map.
		 */
		qsort(unlinked, (size_t)nr_unlinked, sizeof(unlinked[0]), cmp_ino);
		oc.valid = false;
		for (int i = 0; i < nr_unlinked; i++)
			evict_unlinked(fs, unlinked[i], &oc);
	}
}

/* ---- attributes ---- */

int fs_getattr(struct fs_info *fs, const struct fs_cred *cred, u64 ino, struct fs_attr *attr)
{
	struct lock_waiter w = fs_waiter(cred);
	struct scoutfs_inode si;
	struct lock *lock;
	int err;

	err = lock_inode(fs->li, ino, SCOUTFS_LOCK_READ, 0, w.interrupted ? &w : NULL, &lock);
	if (err < 0)
		return err;
	err = fs_inode_read(fs, lock, ino, &si);
	if (err == 0)
		fs_inode_attr(&si, ino, attr);
	lock_unlock(fs->li, lock, SCOUTFS_LOCK_READ);
	return err == -ENOENT ? -ESTALE : err;
}

int fs_setattr(struct fs_info *fs, const struct fs_cred *cred, u64 ino, const struct fs_setattr *sa,
	       struct fs_attr *attr)
{
	struct lock_waiter w = fs_waiter(cred);
	struct fs_inode fi = { .ino = ino };
	struct timespec now = fs_now();
	struct fs_change chg;
	u32 mode;
	int err;

	err = lock_inode(fs->li, ino, SCOUTFS_LOCK_WRITE, 0, w.interrupted ? &w : NULL, &fi.lock);
	if (err < 0)
		return err;
	/* excludes data operations, which change the inode item too (sizes, block counts) */
	err = fs_data_lock(fs, ino, true);
	if (err < 0) {
		lock_unlock(fs->li, fi.lock, SCOUTFS_LOCK_WRITE);
		return err;
	}
	err = fs_inode_read(fs, fi.lock, ino, &fi.si);
	if (err < 0)
		goto unlock;
	mode = le32_to_cpu(fi.si.mode);

	if (sa->valid & FS_SET_SIZE) {
		if (S_ISDIR(mode)) {
			err = -EISDIR;
			goto unlock;
		}
		if (!S_ISREG(mode)) {
			err = -EINVAL;
			goto unlock;
		}
		if (sa->size > FS_MAX_FILE_SIZE) {
			err = -EFBIG;
			goto unlock;
		}
		err = fs_data_truncate(fs, cred, &fi, sa->size, now);
		if (err < 0)
			goto unlock;
	}

	fs_change_init(&chg, fs);
	fs_change_add(&chg, &fi);
	err = fs_change_begin(&chg, cred, 0);
	if (err < 0)
		goto unlock;
	/* re-read: the truncate above may have written the inode in earlier transactions */
	err = fs_inode_read(fs, fi.lock, ino, &fi.si);
	if (err < 0)
		goto end;

	if (sa->valid & FS_SET_MODE) {
		fi.si.mode = cpu_to_le32((mode & S_IFMT) | (sa->mode & ~S_IFMT));
		err = fs_acl_chmod(fs, &fi);
		if (err < 0)
			goto end;
	}
	if (sa->valid & FS_SET_UID)
		fi.si.uid = cpu_to_le32(sa->uid);
	if (sa->valid & FS_SET_GID)
		fi.si.gid = cpu_to_le32(sa->gid);
	if (sa->valid & FS_SET_ATIME_NOW)
		fs_set_ts(&fi.si.atime, now);
	else if (sa->valid & FS_SET_ATIME)
		fs_set_ts(&fi.si.atime, sa->atime);
	if (sa->valid & FS_SET_MTIME_NOW)
		fs_set_ts(&fi.si.mtime, now);
	else if (sa->valid & FS_SET_MTIME)
		fs_set_ts(&fi.si.mtime, sa->mtime);
	if (sa->valid & FS_SET_CTIME)
		fs_set_ts(&fi.si.ctime, sa->ctime);
	else
		fs_set_ts(&fi.si.ctime, now);
	if (sa->valid & FS_SET_SIZE) {
		fi.data_changed = true; /* even to the same size */
		fs_inode_kill_suid(cred, &fi.si);
	}
	fi.dirty = true;
	err = fs_change_write_inodes(&chg);
	if (err == 0)
		fs_inode_attr(&fi.si, ino, attr);
end:
	fs_change_end(&chg);
unlock:
	fs_data_unlock(fs, ino);
	lock_unlock(fs->li, fi.lock, SCOUTFS_LOCK_WRITE);
	return err == -ENOENT ? -ESTALE : err;
}
