/*
 * merge.c: finalizing log btrees and merging them into fs_root.
 *
 * Mounts write items into their own log btrees, so without merging, readers would visit
 * ever more trees.  The server merges them into fs_root in the background.
 *
 * A merge must never let an older version of a key win over a newer one.  Readers pick the
 * greatest seq among all trees, and fs_root is read alongside the log trees, so everything
 * merged into fs_root must be older than everything still being written in any active log
 * tree.  That is why the server first *finalizes every mount's open log tree* before it
 * starts a merge: a finalized tree takes no more items, and every mount's next tree gets a
 * transaction seq (and lock grants get write seqs) greater than every finalize seq.  The
 * merge then copies exactly the finalized trees with finalize_seq below the merge's seq.
 *
 * Finalizing happens as each mount asks for its next transaction (GET_LOG_TREES): once one
 * tree needs merging (it grew tall, its metadata allocator ran low, or a merge was forced),
 * the server asks every other mount to commit soon (SYNC_LOG_TREES), finalizes trees as
 * their mounts come by, and whoever finds every tree finalized records the merge status.
 *
 * The merge itself runs here, window by window: for a range of keys it reads the leaf of
 * every input tree, keeps the newest version of each key, applies it to fs_root (a winning
 * deletion deletes the fs_root item; deletions are never stored in fs_root) and commits with
 * the range recorded in the status item, so a new server resumes where the old one stopped.
 * Readers meanwhile see a half-merged fs_root plus all inputs, whose versions are equal or
 * newer, so they read the same items throughout.  When every range is done, the inputs are
 * removed from logs_root in the same commit that records the merge complete, and their
 * blocks are freed in the background.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dev/dev.h"
#include "forest/forest.h"
#include "server/server_int.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(log_merge_start);
COUNTER_DEFINE(log_merge_complete);
COUNTER_DEFINE(log_merge_no_finalized);
COUNTER_DEFINE(log_merge_wait_timeout);
COUNTER_DEFINE(log_merge_finalized);
COUNTER_DEFINE(log_merge_windows);
COUNTER_DEFINE(log_merge_items);
COUNTER_DEFINE(log_merge_freed_blocks);
COUNTER_DEFINE(reclaimed_orphan_logs);

/* a log tree taller than this is finalized so that it can be merged */
#define FINALIZE_HEIGHT 2
/* commit a merge step once it has dirtied this many blocks */
#define MERGE_DIRTY_BUDGET 2000
#define MERGE_POLL_MS 5000
#define FREE_BLOCKS_BUDGET 1000

static struct scoutfs_key status_key(void)
{
	return key_make(SCOUTFS_LOG_MERGE_STATUS_ZONE, 0, 0, 0, 0, 0);
}

static struct scoutfs_key freeing_key(u64 seq)
{
	return key_make(SCOUTFS_LOG_MERGE_FREEING_ZONE, seq, 0, 0, 0, 0);
}

static int get_status(struct server *srv, struct scoutfs_log_merge_status *stat)
{
	struct scoutfs_key key = status_key();
	struct btree_item_ref iref;
	int err;

	err = btree_lookup(srv->bc, &srv->dirty->log_merge, &key, &iref);
	if (err < 0)
		return err;
	if (iref.val_len != sizeof(*stat))
		err = -EIO;
	else
		memcpy(stat, iref.val, sizeof(*stat));
	btree_iref_put(&iref);
	return err;
}

/* ---- finalizing ---- */

static int finalize_tree(struct server *srv, struct scoutfs_log_trees *lt)
{
	int err;

	err = server_return_log_tree_allocs(srv, lt);
	if (err < 0)
		return err;
	lt->commit_trans_seq = lt->get_trans_seq;
	lt->flags = cpu_to_le64(le64_to_cpu(lt->flags) | SCOUTFS_LOG_TREES_FINALIZED);
	lt->finalize_seq = cpu_to_le64(server_next_seq(srv));
	counter_inc(log_merge_finalized);
	return server_update_log_trees(srv, lt);
}

struct latest_scan {
	struct server *srv;
	u64 rid;
	bool have_prev;
	struct scoutfs_log_trees prev;
	/* results */
	bool have_ours;
	struct scoutfs_log_trees ours;
	int finalized;
	int active_others;
	u64 *sync_rids;
	int nr_sync;
	int alloc_sync;
	u64 max_sync_seq;
	struct scoutfs_log_trees *orphans;
	int nr_orphans;
	int alloc_orphans;
};

static int scan_one_latest(struct latest_scan *ls, const struct scoutfs_log_trees *lt)
{
	struct scoutfs_mounted_client_btree_val mcv;
	u64 rid = le64_to_cpu(lt->rid);
	int err;

	if (le64_to_cpu(lt->flags) & SCOUTFS_LOG_TREES_FINALIZED) {
		ls->finalized++;
		return 0;
	}
	if (rid == ls->rid) {
		ls->have_ours = true;
		ls->ours = *lt;
		return 0;
	}
	err = server_mounted_client(ls->srv, rid, &mcv);
	if (err == -ENOENT) {
		/* an open tree of a mount that is gone: reclaim it (interrupted reclaim) */
		if (ls->nr_orphans == ls->alloc_orphans) {
			int nr = ls->alloc_orphans ? ls->alloc_orphans * 2 : 4;
			void *p = realloc(ls->orphans, nr * sizeof(*ls->orphans));

			if (!p)
				return -ENOMEM;
			ls->orphans = p;
			ls->alloc_orphans = nr;
		}
		ls->orphans[ls->nr_orphans++] = *lt;
		return 0;
	}
	if (err < 0)
		return err;
	ls->active_others++;
	if (le64_to_cpu(lt->get_trans_seq) > ls->srv->finalize_sent_seq) {
		if (ls->nr_sync == ls->alloc_sync) {
			int nr = ls->alloc_sync ? ls->alloc_sync * 2 : 8;
			void *p = realloc(ls->sync_rids, nr * sizeof(u64));

			if (!p)
				return -ENOMEM;
			ls->sync_rids = p;
			ls->alloc_sync = nr;
		}
		ls->sync_rids[ls->nr_sync++] = rid;
		ls->max_sync_seq = max_t(u64, ls->max_sync_seq, le64_to_cpu(lt->get_trans_seq));
	}
	return 0;
}

/* log trees arrive in (rid, nr) order: the last one of each rid is its latest */
static int scan_cb(void *arg, const struct scoutfs_log_trees *lt)
{
	struct latest_scan *ls = arg;
	int err = 0;

	if (ls->have_prev && ls->prev.rid != lt->rid)
		err = scan_one_latest(ls, &ls->prev);
	ls->prev = *lt;
	ls->have_prev = true;
	return err;
}

static int scan_latest(struct server *srv, u64 rid, struct latest_scan *ls)
{
	int err;

	memset(ls, 0, sizeof(*ls));
	ls->srv = srv;
	ls->rid = rid;
	err = forest_for_each_log_tree(srv->bc, &srv->dirty->logs_root, scan_cb, ls);
	if (err == 0 && ls->have_prev)
		err = scan_one_latest(ls, &ls->prev);
	return err;
}

static void free_scan(struct latest_scan *ls)
{
	free(ls->sync_rids);
	free(ls->orphans);
}

static int insert_status(struct server *srv)
{
	struct btree_txn txn = server_txn(srv);
	struct scoutfs_log_merge_status stat;
	struct scoutfs_key key = status_key();

	memset(&stat, 0, sizeof(stat));
	stat.seq = cpu_to_le64(server_next_seq(srv));
	counter_inc(log_merge_start);
	atomic_store(&srv->force_merge, false);
	return btree_insert(&txn, &srv->dirty->log_merge, &key, &stat, sizeof(stat));
}

/*
 * A commit may rewrite every block of its mount's item tree, so a tree that a full metadata
 * list couldn't comfortably rewrite is finalized and the mount starts a new one.  That only
 * bites small metadata devices, whose lists are short.
 */
static bool tree_too_big_to_rewrite(struct server *srv, const struct scoutfs_log_trees *lt)
{
	u64 nr;

	if (lt->item_root.height < 2)
		return false;
	if (btree_count_blocks(srv->bc, &lt->item_root, &nr) < 0)
		return true;
	return nr > server_meta_fill_target(srv->dirty) / 4;
}

static bool tree_needs_finalize(struct server *srv, const struct scoutfs_log_trees *lt)
{
	return lt->item_root.height > FINALIZE_HEIGHT ||
	       (le32_to_cpu(lt->meta_avail.flags) & SCOUTFS_ALLOC_FLAG_LOW) ||
	       atomic_load(&srv->force_merge) || tree_too_big_to_rewrite(srv, lt);
}

static bool is_committed(const struct scoutfs_log_trees *lt)
{
	return lt->get_trans_seq == lt->commit_trans_seq;
}

/*
 * Before rid's next transaction: finalize its tree if it (or any tree) needs merging, and
 * start a merge once every mount's tree is finalized.  Waits a bounded time for the others.
 */
int merge_finalize_for_client(struct server *srv, u64 rid)
{
	struct scoutfs_log_merge_status stat;
	struct latest_scan ls;
	u64 deadline = now_mono_ms() + srv->log_merge_wait_timeout_ms;
	u64 delay_us = 5000;
	bool waiting = false;
	int err;
	int i;

	for (;;) {
		server_hold(srv);
		err = get_status(srv, &stat);
		if (err != -ENOENT) {
			/* a merge is running (or an error): nothing to finalize */
			server_release(srv);
			return err == 0 ? 0 : err;
		}
		err = scan_latest(srv, rid, &ls);
		if (err < 0)
			goto release;

		for (i = 0; i < ls.nr_orphans; i++) {
			log_info("reclaiming orphan log trees for rid %016llx",
				 (unsigned long long)le64_to_cpu(ls.orphans[i].rid));
			counter_inc(reclaimed_orphan_logs);
			err = finalize_tree(srv, &ls.orphans[i]);
			if (err < 0)
				goto apply;
			ls.finalized++;
		}

		if (!waiting) {
			bool ours = ls.have_ours && is_committed(&ls.ours);

			if (!(ours && tree_needs_finalize(srv, &ls.ours)) && ls.finalized == 0) {
				/* nothing changed: the caller's own commit carries on */
				counter_inc(log_merge_no_finalized);
				goto release;
			}
			if (ours) {
				err = finalize_tree(srv, &ls.ours);
				if (err < 0)
					goto apply;
			}
		}

		/* an open transaction of the caller (a replay after failover) is active too */
		if (ls.have_ours && !is_committed(&ls.ours) &&
		    !(le64_to_cpu(ls.ours.flags) & SCOUTFS_LOG_TREES_FINALIZED))
			ls.active_others++;

		if (ls.active_others == 0) {
			err = insert_status(srv);
			if (err == 0)
				workq_queue(srv->wq, &srv->merge_work);
			goto apply;
		}

		if (ls.max_sync_seq > srv->finalize_sent_seq)
			srv->finalize_sent_seq = ls.max_sync_seq;
		err = server_apply(srv, 0);
		for (i = 0; err == 0 && i < ls.nr_sync; i++)
			net_server_submit_request(srv->net, ls.sync_rids[i],
						  SCOUTFS_NET_CMD_SYNC_LOG_TREES, NULL, 0, NULL, NULL);
		free_scan(&ls);
		if (err < 0)
			return err;

		/* wait a little for the other mounts to come by and finalize theirs */
		if (now_mono_ms() >= deadline || server_stopping(srv)) {
			counter_inc(log_merge_wait_timeout);
			return 0;
		}
		usleep(delay_us);
		delay_us = min_t(u64, delay_us * 3 / 2, 100000);
		waiting = true;
	}

apply:
	free_scan(&ls);
	return server_apply(srv, err);
release:
	free_scan(&ls);
	server_release(srv);
	return err;
}

/* ---- merging ---- */

struct merge_item {
	struct scoutfs_key key;
	u64 seq;
	u64 order;
	u8 flags;
	unsigned int val_len;
	u8 *val;
};

struct merge_set {
	struct merge_item *items;
	size_t nr;
	size_t alloced;
};

static int merge_collect(const struct scoutfs_key *key, u64 seq, u8 flags, const void *val,
			 unsigned int val_len, void *arg)
{
	struct merge_set *ms = arg;
	struct merge_item *mi;

	if (ms->nr == ms->alloced) {
		size_t nr = ms->alloced ? ms->alloced * 2 : 1024;
		void *p = realloc(ms->items, nr * sizeof(*ms->items));

		if (!p)
			return -ENOMEM;
		ms->items = p;
		ms->alloced = nr;
	}
	mi = &ms->items[ms->nr];
	mi->val = NULL;
	if (val_len) {
		mi->val = malloc(val_len);
		if (!mi->val)
			return -ENOMEM;
		memcpy(mi->val, val, val_len);
	}
	mi->key = *key;
	mi->seq = seq;
	mi->order = ms->nr;
	mi->flags = flags;
	mi->val_len = val_len;
	ms->nr++;
	return 0;
}

static int cmp_merge_item(const void *a, const void *b)
{
	const struct merge_item *x = a;
	const struct merge_item *y = b;
	int c = key_compare(&x->key, &y->key);

	if (c)
		return c;
	if (x->seq != y->seq)
		return x->seq > y->seq ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order ? 1 : 0;
}

static void free_merge_set(struct merge_set *ms)
{
	for (size_t i = 0; i < ms->nr; i++)
		free(ms->items[i].val);
	free(ms->items);
	memset(ms, 0, sizeof(*ms));
}

struct inputs {
	struct scoutfs_log_trees *lts;
	int nr;
	int alloced;
	u64 below_seq;
};

static int input_cb(void *arg, const struct scoutfs_log_trees *lt)
{
	struct inputs *in = arg;

	if (!(le64_to_cpu(lt->flags) & SCOUTFS_LOG_TREES_FINALIZED) ||
	    le64_to_cpu(lt->finalize_seq) >= in->below_seq)
		return 0;
	if (in->nr == in->alloced) {
		int nr = in->alloced ? in->alloced * 2 : 8;
		void *p = realloc(in->lts, nr * sizeof(*in->lts));

		if (!p)
			return -ENOMEM;
		in->lts = p;
		in->alloced = nr;
	}
	in->lts[in->nr++] = *lt;
	return 0;
}

/* merge one window of keys starting at *key; *key becomes the next window's start */
static int merge_window(struct server *srv, struct inputs *in, struct scoutfs_key *key, bool *done)
{
	struct btree_txn txn = server_txn(srv);
	struct btree_item_list *head = NULL, **tail = &head, *bil;
	struct scoutfs_key start = *key;
	struct scoutfs_key end = key_ones();
	struct merge_set ms = { 0 };
	struct merge_item *mi;
	size_t i;
	int err = 0;

	for (int t = 0; t < in->nr; t++) {
		err = btree_read_items(srv->bc, &in->lts[t].item_root, key, &start, &end,
				       merge_collect, &ms);
		if (err < 0)
			goto out;
	}

	if (ms.nr > 0) /* items is NULL when nothing was collected */
		qsort(ms.items, ms.nr, sizeof(ms.items[0]), cmp_merge_item);
	for (i = 0; i < ms.nr; i++) {
		mi = &ms.items[i];
		if (i > 0 && key_compare(&mi->key, &ms.items[i - 1].key) == 0)
			continue; /* an older version */
		if (!key_in_range(&mi->key, &start, &end))
			continue;
		if (mi->flags & SCOUTFS_ITEM_FLAG_DELETION) {
			err = btree_delete(&txn, &srv->dirty->fs_root, &mi->key);
			if (err == -ENOENT)
				err = 0;
			if (err < 0)
				goto out;
			continue;
		}
		bil = malloc(sizeof(*bil) + mi->val_len);
		if (!bil) {
			err = -ENOMEM;
			goto out;
		}
		bil->next = NULL;
		bil->key = mi->key;
		bil->seq = mi->seq;
		bil->flags = mi->flags & ~SCOUTFS_ITEM_FLAG_DELETION;
		bil->val_len = mi->val_len;
		if (mi->val_len)
			memcpy(bil->val, mi->val, mi->val_len);
		*tail = bil;
		tail = &bil->next;
		counter_inc(log_merge_items);
	}
	if (head) {
		err = btree_insert_list(&txn, &srv->dirty->fs_root, head, NULL);
		if (err < 0)
			goto out;
	}
	counter_inc(log_merge_windows);

	if (key_is_ones(&end)) {
		*done = true;
	} else {
		*key = end;
		key_inc(key);
	}
out:
	while ((bil = head)) {
		head = bil->next;
		free(bil);
	}
	free_merge_set(&ms);
	return err;
}

/* the inputs are merged: remove them and free their blocks in the background */
static int complete_merge(struct server *srv, struct inputs *in)
{
	struct btree_txn txn = server_txn(srv);
	struct scoutfs_log_merge_freeing fr;
	struct scoutfs_key key;
	int err;

	for (int t = 0; t < in->nr; t++) {
		struct scoutfs_log_trees *lt = &in->lts[t];

		if (lt->item_root.height) {
			memset(&fr, 0, sizeof(fr));
			fr.root = lt->item_root;
			fr.seq = cpu_to_le64(server_next_seq(srv));
			key = freeing_key(le64_to_cpu(fr.seq));
			err = btree_insert(&txn, &srv->dirty->log_merge, &key, &fr, sizeof(fr));
			if (err < 0)
				return err;
		}
		if (lt->bloom_ref.blkno) {
			err = srv->alloc.ba.free_meta(&srv->alloc, le64_to_cpu(lt->bloom_ref.blkno));
			if (err < 0)
				return err;
		}
		key = server_lt_key(le64_to_cpu(lt->rid), le64_to_cpu(lt->nr));
		err = btree_delete(&txn, &srv->dirty->logs_root, &key);
		if (err < 0)
			return err;
		le64_add_cpu(&srv->dirty->inode_count, (s64)le64_to_cpu(lt->inode_count_delta));
	}
	key = status_key();
	err = btree_delete(&txn, &srv->dirty->log_merge, &key);
	if (err == 0) {
		counter_inc(log_merge_complete);
		atomic_fetch_add(&srv->merges_done, 1);
	}
	return err;
}

/* one bounded step of merging; returns 1 if there is more to do right away */
static int merge_step(struct server *srv)
{
	struct scoutfs_log_merge_status stat;
	struct inputs in = { 0 };
	struct scoutfs_key key;
	struct btree_txn txn;
	bool done = false;
	int err;

	server_hold(srv);
	err = get_status(srv, &stat);
	if (err == -ENOENT) {
		server_release(srv);
		return 0;
	}
	if (err < 0)
		goto apply;

	in.below_seq = le64_to_cpu(stat.seq);
	err = forest_for_each_log_tree(srv->bc, &srv->dirty->logs_root, input_cb, &in);
	if (err < 0)
		goto apply;

	key = stat.next_key;
	while (!done) {
		err = merge_window(srv, &in, &key, &done);
		if (err < 0)
			goto apply;
		if (block_writer_dirty_count(srv->wri) >= MERGE_DIRTY_BUDGET ||
		    alloc_meta_avail_nr(&srv->alloc) < server_hold_budget(srv->dirty) * 2)
			break;
	}

	if (done) {
		err = complete_merge(srv, &in);
		if (err == 0)
			log_info("merged %d log trees into the filesystem root", in.nr);
	} else {
		txn = server_txn(srv);
		stat.next_key = key;
		key = status_key();
		err = btree_update(&txn, &srv->dirty->log_merge, &key, &stat, sizeof(stat));
	}
apply:
	free(in.lts);
	err = server_apply(srv, err);
	if (err < 0)
		return err;
	return done ? 0 : 1;
}

/* free a bounded number of blocks of merged input trees; 1 if there is more */
static int free_step(struct server *srv)
{
	struct scoutfs_key key = freeing_key(0);
	struct scoutfs_log_merge_freeing fr;
	struct btree_item_ref iref;
	struct btree_txn txn;
	int freed;
	int err;

	server_hold(srv);
	err = btree_next(srv->bc, &srv->dirty->log_merge, &key, &iref);
	if (err == -ENOENT) {
		server_release(srv);
		return 0;
	}
	if (err < 0) {
		server_release(srv);
		return err;
	}
	if (iref.key.sk_zone != SCOUTFS_LOG_MERGE_FREEING_ZONE || iref.val_len != sizeof(fr)) {
		err = iref.key.sk_zone == SCOUTFS_LOG_MERGE_FREEING_ZONE ? -EIO : 0;
		btree_iref_put(&iref);
		server_release(srv);
		return err;
	}
	memcpy(&fr, iref.val, sizeof(fr));
	key = iref.key;
	btree_iref_put(&iref);

	txn = server_txn(srv);
	freed = btree_free_blocks(&txn, &fr.root, &fr.key, FREE_BLOCKS_BUDGET);
	if (freed < 0) {
		err = freed;
	} else {
		counter_add(log_merge_freed_blocks, freed);
		if (key_is_ones(&fr.key))
			err = btree_delete(&txn, &srv->dirty->log_merge, &key);
		else
			err = btree_update(&txn, &srv->dirty->log_merge, &key, &fr, sizeof(fr));
	}
	err = server_apply(srv, err);
	return err < 0 ? err : 1;
}

void merge_work_fn(struct work *work)
{
	struct server *srv = container_of(work, struct server, merge_work);
	int more = 0;
	int ret;

	if (server_stopping(srv))
		return;
	ret = merge_step(srv);
	if (ret < 0)
		goto fail;
	more |= ret;
	ret = free_step(srv);
	if (ret < 0)
		goto fail;
	more |= ret;
	workq_queue_delayed(srv->wq, &srv->merge_work, more ? 0 : MERGE_POLL_MS);
	return;
fail:
	if (!server_stopping(srv))
		server_fail(srv, "log merging", ret);
}
