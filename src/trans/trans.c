/*
 * trans.c: the mount's transaction and its commit.
 *
 * A mount always has one open transaction, opened by the server with GET_LOG_TREES: the
 * server hands out the transaction's seq, a list of free metadata blocks and a tree of free
 * data blocks, all recorded in the mount's log_trees item.  Filesystem operations hold the
 * transaction (a shared lock) while they change items; the commit thread takes it exclusively,
 * which waits for holders to finish and keeps new ones out until the commit is over.
 *
 * Commit order gives ordered-data semantics and atomicity:
 *   1. flush the data device, so file contents written in place are durable before any
 *      metadata that points at them;
 *   2. write every dirty item into the log btree (copy-on-write into free blocks);
 *   3. put the unused part of the cached data extent back and close the allocators;
 *   4. write every dirty metadata block and flush the metadata device;
 *   5. send the new log_trees to the server: its own commit (which writes the super) is the
 *      one atomic point where the whole transaction becomes durable and visible;
 *   6. mark the cached items clean and open the next transaction.
 * A step that fails is retried (after a short, growing delay) from that step: until step 5
 * succeeds nothing written is reachable from a committed super, so a failure anywhere leaves
 * the filesystem exactly as it was.  Callers waiting in trans_sync() keep waiting through
 * a transient failure; once a commit has kept failing for a while they get its error (fsync
 * returns EIO) while the transaction stays and is committed when the device recovers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "block/block.h"
#include "btree/btree.h"
#include "client/client.h"
#include "dev/dev.h"
#include "item/item.h"
#include "trans/trans.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(trans_commit);
COUNTER_DEFINE(trans_commit_error);
COUNTER_DEFINE(trans_commit_full);
COUNTER_DEFINE(trans_commit_timer);
COUNTER_DEFINE(trans_commit_sync);
COUNTER_DEFINE(trans_hold_wait_commit);
COUNTER_DEFINE(trans_data_refill);

#define COMMIT_DELAY_MS 10000
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 2000
/* a commit failing for this long makes syncs return its error (retries go on) */
#define FAIL_REPORT_MS 2000
/* commit before a transaction's dirty items reach this much */
#define DIRTY_BYTES_LIMIT (64ULL << 20)
/*
 * Commit (to be refilled) when the free data blocks fall below this fraction of the most the
 * server has handed us: 256 MiB of the 4 GiB fill on large devices, as the original does.
 */
#define DATA_LOW_FRACTION 16
/* small allocations are carved from a cached extent of this many blocks */
#define DATA_CACHE_BLOCKS 2048ULL

enum commit_stage {
	STAGE_IDLE = 0,
	STAGE_FLUSH_DATA,
	STAGE_WRITE_ITEMS,
	STAGE_WRITE_BLOCKS,
	STAGE_COMMIT,
	STAGE_OPEN,
};

struct trans_info {
	struct client *cl;
	struct item_cache *ic;
	struct block_cache *bc;
	struct dev *data_dev;

	pthread_rwlock_t holders;
	pthread_mutex_t mutex;
	pthread_cond_t cond;	  /* commits requested / finished */
	pthread_cond_t open_cond; /* a transaction is open */

	/* the open transaction; changed only by the commit thread with holders excluded */
	struct scoutfs_log_trees lt;
	struct block_writer *wri;
	struct alloc alloc;
	bool open;
	u64 seq;
	/* blocks in the log item tree when the transaction opened: a commit may rewrite them all */
	u64 item_tree_blocks;
	u8 item_tree_height;

	pthread_mutex_t data_mutex;
	struct alloc_extent cached_data;
	/* the next transaction, opened by the server with the commit of the last one */
	struct scoutfs_log_trees next_lt;
	bool have_next_lt;
	/* the most data blocks the server has handed us: how much its fills give */
	u64 data_fill_peak;
	/* free data blocks (avail + freed) when the transaction opened */
	u64 open_data_free;
	s64 inode_count_delta;

	/* commit requests: a commit satisfies every request made before it finished */
	u64 requested;
	u64 done;
	int done_err;
	bool shutdown;
	bool forced;
	bool broken; /* a commit failed for good (shutdown): no more holds */
	u64 first_dirty_ms;
	u64 nr_commits;
	int last_err;
	enum commit_stage stage;
	pthread_t thread;
	bool thread_started;
};

int trans_create(struct client *cl, struct item_cache *ic, struct block_cache *bc,
		 struct dev *data_dev, struct trans_info **ret)
{
	pthread_rwlockattr_t attr;
	struct trans_info *ti;
	int err;

	ti = calloc(1, sizeof(*ti));
	if (!ti)
		return -ENOMEM;
	ti->cl = cl;
	ti->ic = ic;
	ti->bc = bc;
	ti->data_dev = data_dev;
	pthread_rwlockattr_init(&attr);
	/* a waiting commit must not starve behind a stream of new holders */
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&ti->holders, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&ti->mutex, NULL);
	pthread_mutex_init(&ti->data_mutex, NULL);
	pthread_cond_init(&ti->cond, NULL);
	pthread_cond_init(&ti->open_cond, NULL);
	err = block_writer_create(bc, &ti->wri);
	if (err < 0) {
		free(ti);
		return err;
	}
	*ret = ti;
	return 0;
}

/* ---- opening ---- */

/* open the transaction of lt, or of the server's answer to GET_LOG_TREES if lt is NULL */
static int open_trans(struct trans_info *ti, const struct scoutfs_log_trees *next)
{
	struct scoutfs_log_trees lt;
	int err;

	if (next) {
		lt = *next;
	} else {
		err = client_get_log_trees(ti->cl, &lt);
		if (err < 0)
			return err;
	}
	if (le64_to_cpu(lt.get_trans_seq) <= le64_to_cpu(lt.commit_trans_seq)) {
		log_err("server opened a transaction that is already committed (seq %llu)",
			(unsigned long long)le64_to_cpu(lt.get_trans_seq));
		return -EIO;
	}
	err = btree_count_blocks(ti->bc, &lt.item_root, &ti->item_tree_blocks);
	if (err < 0)
		return err;
	ti->item_tree_height = lt.item_root.height;
	ti->lt = lt;
	ti->data_fill_peak = max_t(u64, ti->data_fill_peak, le64_to_cpu(lt.data_avail.total_len));
	ti->inode_count_delta = 0;
	pthread_mutex_lock(&ti->data_mutex);
	ti->open_data_free = le64_to_cpu(lt.data_avail.total_len) +
			     le64_to_cpu(lt.data_freed.total_len);
	pthread_mutex_unlock(&ti->data_mutex);
	alloc_init(&ti->alloc, ti->wri, &lt.meta_avail, &lt.meta_freed);
	item_set_trans_seq(ti->ic, le64_to_cpu(lt.get_trans_seq));

	pthread_mutex_lock(&ti->mutex);
	ti->seq = le64_to_cpu(lt.get_trans_seq);
	ti->open = true;
	ti->first_dirty_ms = 0;
	pthread_cond_broadcast(&ti->open_cond);
	pthread_mutex_unlock(&ti->mutex);
	return 0;
}

/* ---- committing ---- */

static bool trans_dirty(struct trans_info *ti)
{
	return item_dirty_count(ti->ic) > 0 || block_writer_has_dirty(ti->wri) ||
	       ti->inode_count_delta != 0 || ti->cached_data.len > 0;
}

/* give the unused part of the cached data extent back to the tree before commit */
static int return_cached_data(struct trans_info *ti)
{
	struct btree_txn txn = alloc_txn(&ti->alloc);
	int err = 0;

	pthread_mutex_lock(&ti->data_mutex);
	if (ti->cached_data.len) {
		err = alloc_ext_insert(&txn, &ti->lt.data_avail, ti->cached_data.start,
				       ti->cached_data.len);
		if (err == 0)
			ti->cached_data.len = 0;
	}
	pthread_mutex_unlock(&ti->data_mutex);
	return err;
}

/* run (or resume) the commit stages; returns with the stage reached on error */
static int run_commit(struct trans_info *ti)
{
	struct btree_txn txn;
	u64 max_seq;
	int err = 0;

	switch (ti->stage) {
	case STAGE_IDLE:
	case STAGE_FLUSH_DATA:
		ti->stage = STAGE_FLUSH_DATA;
		err = dev_flush(ti->data_dev);
		if (err < 0)
			break;
		ti->stage = STAGE_WRITE_ITEMS;
		/* fall through */
	case STAGE_WRITE_ITEMS:
		txn = alloc_txn(&ti->alloc);
		err = return_cached_data(ti);
		if (err < 0)
			break;
		err = item_write_dirty(ti->ic, &txn, &ti->lt.item_root, &max_seq);
		if (err < 0)
			break;
		if (max_seq > le64_to_cpu(ti->lt.max_item_seq))
			ti->lt.max_item_seq = cpu_to_le64(max_seq);
		le64_add_cpu(&ti->lt.inode_count_delta, ti->inode_count_delta);
		ti->inode_count_delta = 0;
		alloc_finish(&ti->alloc, &ti->lt.meta_avail, &ti->lt.meta_freed);
		ti->stage = STAGE_WRITE_BLOCKS;
		/* fall through */
	case STAGE_WRITE_BLOCKS:
		err = block_writer_write(ti->wri);
		if (err < 0)
			break;
		ti->stage = STAGE_COMMIT;
		/* fall through */
	case STAGE_COMMIT:
		err = client_commit_log_trees(ti->cl, &ti->lt, &ti->next_lt);
		if (err < 0)
			break;
		ti->have_next_lt = true;
		item_commit_done(ti->ic);
		item_roots_changed(ti->ic);
		pthread_mutex_lock(&ti->mutex);
		ti->open = false;
		ti->nr_commits++;
		pthread_mutex_unlock(&ti->mutex);
		counter_inc(trans_commit);
		ti->stage = STAGE_OPEN;
		/* fall through */
	case STAGE_OPEN:
		/* opened by the commit's answer; asked for again after a failure to take it */
		err = open_trans(ti, ti->have_next_lt ? &ti->next_lt : NULL);
		ti->have_next_lt = false;
		if (err < 0)
			break;
		ti->stage = STAGE_IDLE;
		break;
	}
	return err;
}

/* called with holders excluded */
static int commit_locked(struct trans_info *ti, bool force)
{
	int err;

	if (ti->stage == STAGE_IDLE && !force && !trans_dirty(ti))
		return 0;
	err = run_commit(ti);
	if (err < 0) {
		counter_inc(trans_commit_error);
		if (err != -ECONNABORTED && err != -ENOLINK)
			log_err("transaction commit failed in stage %d: %s (will retry)", ti->stage,
				strerror(-err));
	}
	return err;
}

static bool commit_due(struct trans_info *ti)
{
	u64 now = now_mono_ms();

	return ti->requested != ti->done ||
	       (ti->first_dirty_ms && now - ti->first_dirty_ms >= COMMIT_DELAY_MS);
}

static void *commit_thread(void *arg)
{
	struct trans_info *ti = arg;
	struct timespec ts;
	u64 fail_start;
	u64 retry_ms;
	bool timer;
	u64 target;
	int err;

	thread_set_name("trans-commit");
	pthread_mutex_lock(&ti->mutex);
	while (!ti->shutdown) {
		if (!commit_due(ti)) {
			ts = now_real();
			ts.tv_sec += 1;
			pthread_cond_timedwait(&ti->cond, &ti->mutex, &ts);
			continue;
		}
		timer = ti->requested == ti->done;
		pthread_mutex_unlock(&ti->mutex);
		if (timer)
			counter_inc(trans_commit_timer);

		/*
		 * Holders stay excluded until the commit succeeds: a half-done commit has
		 * already written items into the log btree and closed the allocators.
		 */
		pthread_rwlock_wrlock(&ti->holders);
		retry_ms = RETRY_MIN_MS;
		fail_start = 0;
		for (;;) {
			pthread_mutex_lock(&ti->mutex);
			target = ti->requested;
			pthread_mutex_unlock(&ti->mutex);

			err = commit_locked(ti, false);

			pthread_mutex_lock(&ti->mutex);
			ti->last_err = err;
			if (err == 0) {
				ti->done = max_t(u64, target, ti->done);
				ti->done_err = 0;
				ti->first_dirty_ms = 0;
				pthread_cond_broadcast(&ti->cond);
				pthread_mutex_unlock(&ti->mutex);
				break;
			}
			if (err == -ECONNABORTED || err == -ENOLINK || ti->shutdown || ti->forced) {
				ti->done = max_t(u64, target, ti->done);
				ti->done_err = err;
				ti->broken = true;
				pthread_cond_broadcast(&ti->cond);
				pthread_mutex_unlock(&ti->mutex);
				break;
			}
			/*
			 * A transient failure is retried without waiters noticing; one that
			 * lasts tells them (fsync gets EIO) while retries go on.
			 */
			if (!fail_start)
				fail_start = now_mono_ms();
			if (now_mono_ms() - fail_start >= FAIL_REPORT_MS) {
				ti->done = max_t(u64, target, ti->done);
				ti->done_err = err;
				pthread_cond_broadcast(&ti->cond);
			}
			ts = now_real();
			ts.tv_nsec += (long)(retry_ms * NSEC_PER_MSEC);
			ts.tv_sec += ts.tv_nsec / NSEC_PER_SEC;
			ts.tv_nsec %= NSEC_PER_SEC;
			pthread_cond_timedwait(&ti->cond, &ti->mutex, &ts);
			pthread_mutex_unlock(&ti->mutex);
			retry_ms = min_t(u64, retry_ms * 2, RETRY_MAX_MS);
		}
		pthread_rwlock_unlock(&ti->holders);
		pthread_mutex_lock(&ti->mutex);
	}
	pthread_mutex_unlock(&ti->mutex);
	return NULL;
}

int trans_start(struct trans_info *ti)
{
	int err;

	err = open_trans(ti, NULL);
	if (err < 0)
		return err;
	err = -pthread_create(&ti->thread, NULL, commit_thread, ti);
	if (err == 0)
		ti->thread_started = true;
	return err;
}

static void stop_thread(struct trans_info *ti)
{
	pthread_mutex_lock(&ti->mutex);
	ti->shutdown = true;
	pthread_cond_broadcast(&ti->cond);
	pthread_cond_broadcast(&ti->open_cond);
	pthread_mutex_unlock(&ti->mutex);
	if (ti->thread_started) {
		pthread_join(ti->thread, NULL);
		ti->thread_started = false;
	}
}

int trans_shutdown(struct trans_info *ti)
{
	int err = 0;
	int tries;

	stop_thread(ti);
	/* the final commit, retried a few times before giving up on the dirty state */
	pthread_rwlock_wrlock(&ti->holders);
	for (tries = 0; tries < 10; tries++) {
		err = commit_locked(ti, false);
		if (err == 0 || err == -ECONNABORTED || err == -ENOLINK)
			break;
		usleep(200 * 1000);
	}
	pthread_rwlock_unlock(&ti->holders);
	if (err < 0)
		log_err("final commit at unmount failed: %s; uncommitted changes are lost",
			strerror(-err));
	return err;
}

void trans_shutdown_forced(struct trans_info *ti)
{
	pthread_mutex_lock(&ti->mutex);
	ti->forced = true;
	pthread_mutex_unlock(&ti->mutex);
	stop_thread(ti);
}

void trans_destroy(struct trans_info *ti)
{
	if (!ti)
		return;
	stop_thread(ti);
	if (ti->open || ti->stage != STAGE_IDLE)
		alloc_finish(&ti->alloc, NULL, NULL);
	block_writer_destroy(ti->wri);
	pthread_rwlock_destroy(&ti->holders);
	pthread_mutex_destroy(&ti->mutex);
	pthread_mutex_destroy(&ti->data_mutex);
	pthread_cond_destroy(&ti->cond);
	pthread_cond_destroy(&ti->open_cond);
	free(ti);
}

/* ---- holding ---- */

/* would this transaction run out of something if more is added? */
/*
 * A bound on the metadata blocks the commit will allocate: the blocks already dirty, every
 * existing block of the item tree that the dirty items can reach (scattered changes rewrite
 * a leaf each), new leaves and parents for the bytes added, and room for the list blocks and
 * the rest of the log trees.
 */
static u64 commit_meta_need(struct trans_info *ti)
{
	u64 dirty_bytes = item_dirty_bytes(ti->ic);
	u64 dirty_items = item_dirty_count(ti->ic);
	u64 rewrite = min_t(u64, ti->item_tree_blocks, dirty_items * (ti->item_tree_height + 1u));
	u64 growth = 3 * (dirty_bytes / (SCOUTFS_BLOCK_LG_SIZE / 2));

	return 64 + rewrite + growth + block_writer_dirty_count(ti->wri);
}

static bool needs_commit(struct trans_info *ti)
{
	u64 data_free;

	if (item_dirty_bytes(ti->ic) >= DIRTY_BYTES_LIMIT)
		return true;
	if (alloc_meta_avail_nr(&ti->alloc) < commit_meta_need(ti) &&
	    !(le32_to_cpu(ti->lt.meta_avail.flags) & SCOUTFS_ALLOC_FLAG_LOW))
		return true;
	data_free = le64_to_cpu(ti->lt.data_avail.total_len) + ti->cached_data.len;
	if (data_free < ti->data_fill_peak / DATA_LOW_FRACTION &&
	    !(le32_to_cpu(ti->lt.data_avail.flags) & SCOUTFS_ALLOC_FLAG_LOW))
		return true;
	return false;
}

static int wait_commit(struct trans_info *ti, bool *failed)
{
	u64 target;
	int err;

	pthread_mutex_lock(&ti->mutex);
	if (ti->shutdown) {
		pthread_mutex_unlock(&ti->mutex);
		return -ESHUTDOWN;
	}
	target = ++ti->requested;
	pthread_cond_broadcast(&ti->cond);
	while (ti->done < target && !ti->shutdown)
		pthread_cond_wait(&ti->cond, &ti->mutex);
	err = ti->done < target ? -ESHUTDOWN : ti->done_err;
	pthread_mutex_unlock(&ti->mutex);
	if (failed)
		*failed = err != 0;
	return err;
}

int trans_hold(struct trans_info *ti, int flags)
{
	bool committed = false;

	for (;;) {
		pthread_rwlock_rdlock(&ti->holders);
		pthread_mutex_lock(&ti->mutex);
		if (ti->shutdown || ti->broken || !ti->open) {
			bool shut = ti->shutdown || ti->broken;

			pthread_mutex_unlock(&ti->mutex);
			pthread_rwlock_unlock(&ti->holders);
			if (shut)
				return -ESHUTDOWN;
			/* between commit and open after an error: wait for the retry */
			pthread_mutex_lock(&ti->mutex);
			while (!ti->open && !ti->shutdown && !ti->broken)
				pthread_cond_wait(&ti->open_cond, &ti->mutex);
			pthread_mutex_unlock(&ti->mutex);
			continue;
		}
		if (ti->first_dirty_ms == 0)
			ti->first_dirty_ms = now_mono_ms();
		pthread_mutex_unlock(&ti->mutex);

		if ((flags & TRANS_HOLD_ALLOC) &&
		    (le32_to_cpu(ti->lt.meta_avail.flags) & SCOUTFS_ALLOC_FLAG_LOW)) {
			pthread_rwlock_unlock(&ti->holders);
			return -ENOSPC;
		}
		if (committed || !needs_commit(ti))
			return 0;

		/* make room first: commit and get refilled allocators */
		pthread_rwlock_unlock(&ti->holders);
		counter_inc(trans_hold_wait_commit);
		counter_inc(trans_commit_full);
		wait_commit(ti, NULL);
		committed = true;
	}
}

void trans_release(struct trans_info *ti)
{
	pthread_rwlock_unlock(&ti->holders);
}

u64 trans_seq(struct trans_info *ti)
{
	u64 seq;

	pthread_mutex_lock(&ti->mutex);
	seq = ti->seq;
	pthread_mutex_unlock(&ti->mutex);
	return seq;
}

int trans_sync(struct trans_info *ti)
{
	counter_inc(trans_commit_sync);
	return wait_commit(ti, NULL);
}

void trans_sync_async(struct trans_info *ti)
{
	pthread_mutex_lock(&ti->mutex);
	if (!ti->shutdown) {
		ti->requested++;
		pthread_cond_broadcast(&ti->cond);
	}
	pthread_mutex_unlock(&ti->mutex);
}

int trans_sync_seq(struct trans_info *ti, u64 seq)
{
	u64 cur;

	pthread_mutex_lock(&ti->mutex);
	cur = ti->seq;
	pthread_mutex_unlock(&ti->mutex);
	if (seq < cur)
		return 0; /* that transaction already committed */
	return wait_commit(ti, NULL);
}

/* ---- data blocks ---- */

static bool in_extent(const struct alloc_extent *ext, u64 blk)
{
	return ext->len && blk >= ext->start && blk < ext->start + ext->len;
}

/*
 * Small requests are carved from a cached extent (refilled at the goal when the goal is not
 * in it), so that the allocation tree is touched once per DATA_CACHE_BLOCKS.  Large ones come
 * straight from the tree -- unless the goal is in the cached extent: then from the cache
 * first, so that a file keeps growing where it left off (the caller asks again for the rest),
 * and from the cache too when the tree has nothing left.
 */
int trans_alloc_data(struct trans_info *ti, u64 goal, u64 count, struct alloc_extent *ext)
{
	struct btree_txn txn = alloc_txn(&ti->alloc);
	struct alloc_extent *cd = &ti->cached_data;
	u64 take;
	int err = 0;

	if (count == 0)
		return -EINVAL;

	pthread_mutex_lock(&ti->data_mutex);
	if (count >= DATA_CACHE_BLOCKS && !in_extent(cd, goal)) {
		err = alloc_ext_alloc_goal(&txn, &ti->lt.data_avail, goal, count, ext);
		if (err != -ENOSPC || !cd->len)
			goto out;
		goal = cd->start;
		err = 0;
	}

	if (!in_extent(cd, goal) && !(cd->len && !goal)) {
		/* refill the cache, preferably at goal */
		if (cd->len) {
			err = alloc_ext_insert(&txn, &ti->lt.data_avail, cd->start, cd->len);
			if (err < 0)
				goto out;
			cd->len = 0;
		}
		err = alloc_ext_alloc_goal(&txn, &ti->lt.data_avail, goal, DATA_CACHE_BLOCKS, cd);
		if (err < 0) {
			cd->len = 0;
			goto out;
		}
		counter_inc(trans_data_refill);
	}

	if (!in_extent(cd, goal))
		goal = cd->start;
	if (goal > cd->start) {
		/* taking from the middle: the part before goal goes back */
		err = alloc_ext_insert(&txn, &ti->lt.data_avail, cd->start, goal - cd->start);
		if (err < 0)
			goto out;
		cd->len -= goal - cd->start;
		cd->start = goal;
	}
	take = min_t(u64, count, cd->len);
	ext->start = cd->start;
	ext->len = take;
	cd->start += take;
	cd->len -= take;
out:
	if (err == -ENOSPC && !(le32_to_cpu(ti->lt.data_avail.flags) & SCOUTFS_ALLOC_FLAG_LOW))
		err = -ENOBUFS;
	pthread_mutex_unlock(&ti->data_mutex);
	return err;
}

int trans_free_data(struct trans_info *ti, u64 start, u64 len)
{
	struct btree_txn txn = alloc_txn(&ti->alloc);
	int err;

	pthread_mutex_lock(&ti->data_mutex);
	err = alloc_ext_insert(&txn, &ti->lt.data_freed, start, len);
	pthread_mutex_unlock(&ti->data_mutex);
	if (err == -EINVAL)
		log_err("freeing data blocks %llu+%llu that are already free",
			(unsigned long long)start, (unsigned long long)len);
	return err;
}

s64 trans_data_free_delta(struct trans_info *ti)
{
	s64 delta;

	pthread_mutex_lock(&ti->data_mutex);
	delta = (s64)(le64_to_cpu(ti->lt.data_avail.total_len) + ti->cached_data.len +
		      le64_to_cpu(ti->lt.data_freed.total_len)) -
		(s64)ti->open_data_free;
	pthread_mutex_unlock(&ti->data_mutex);
	return delta;
}

void trans_add_inode_count(struct trans_info *ti, s64 delta)
{
	pthread_mutex_lock(&ti->data_mutex);
	ti->inode_count_delta += delta;
	pthread_mutex_unlock(&ti->data_mutex);
}

u64 trans_commit_count(struct trans_info *ti)
{
	u64 nr;

	pthread_mutex_lock(&ti->mutex);
	nr = ti->nr_commits;
	pthread_mutex_unlock(&ti->mutex);
	return nr;
}

int trans_last_error(struct trans_info *ti)
{
	int err;

	pthread_mutex_lock(&ti->mutex);
	err = ti->last_err;
	pthread_mutex_unlock(&ti->mutex);
	return err;
}
