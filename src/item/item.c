/*
 * item.c: the item cache.
 *
 * Filesystem operations never touch btrees directly: they read and write items here, and
 * the transaction commit writes the dirty ones into the mount's log btree.  The cache keeps
 * two ordered trees:
 *
 *  - items: cached items by key.  Each is clean (a copy of what the persistent trees hold),
 *    dirty (changed in the open transaction), or a dirty deletion (a tombstone that becomes a
 *    deletion item at commit).  "Persistent" marks items that may exist in some persistent
 *    tree; deleting one of those needs a tombstone, deleting anything else just forgets it.
 *  - ranges: key ranges whose contents are completely known.  A lookup inside a cached range
 *    that finds no item (or a tombstone) has its answer: the key does not exist.  A lookup
 *    outside every range reads the forest first.
 *
 * Reads of the forest are narrowed to what the visited leaves cover and to the lock's range;
 * the results are inserted only where no cached range already exists, because anything
 * already cached (a local change, or a read that finished first) is at least as new.  The
 * caller of a read holds the covering lock in a readable mode for the whole read, so the
 * lock cannot be invalidated (and the range dropped) underneath it: invalidation to NULL
 * waits for every user, and a WRITE to READ downgrade keeps the cache.
 *
 * Items written under WRITE_ONLY locks are never read back (that mode cannot read); they
 * live in the cache only until the commit that writes them.
 *
 * One mutex protects both trees.  Forest reads and value copies of large reads happen with
 * the mutex released.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "util/rbtree.h"

#include "forest/forest.h"
#include "format/key.h"
#include "item/item.h"
#include "lock/lock.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(item_lookup);
COUNTER_DEFINE(item_lookup_miss);
COUNTER_DEFINE(item_read_range);
COUNTER_DEFINE(item_read_range_stale);
COUNTER_DEFINE(item_read_items);
COUNTER_DEFINE(item_create);
COUNTER_DEFINE(item_update);
COUNTER_DEFINE(item_delete);
COUNTER_DEFINE(item_invalidate);
COUNTER_DEFINE(item_invalidate_items);
COUNTER_DEFINE(item_commit_items);
COUNTER_DEFINE(item_get_roots);
COUNTER_DEFINE(item_shrink);

#define CI_DIRTY (1U << 0)
#define CI_DELETED (1U << 1)	/* a tombstone: the key does not exist */
#define CI_PERSISTENT (1U << 2) /* may exist in a persistent tree */
#define CI_BLIND (1U << 3)	/* written without reading (WRITE_ONLY): drop after commit */

struct citem {
	RB_ENTRY(citem) node;
	TAILQ_ENTRY(citem) dirty_entry;
	struct scoutfs_key key;
	u64 seq;
	unsigned int flags;
	unsigned int val_len;
	u8 *val;
};

struct crange {
	RB_ENTRY(crange) node;
	struct scoutfs_key start;
	struct scoutfs_key end;
	u64 last_used;
};

static int citem_cmp(struct citem *a, struct citem *b)
{
	return key_compare(&a->key, &b->key);
}

static int crange_cmp(struct crange *a, struct crange *b)
{
	return key_compare(&a->start, &b->start);
}

RB_HEAD(citem_tree, citem);
RB_HEAD(crange_tree, crange);
RB_GENERATE_STATIC_UNUSED(citem_tree, citem, node, citem_cmp)
RB_GENERATE_STATIC_UNUSED(crange_tree, crange, node, crange_cmp)

TAILQ_HEAD(dirty_list, citem);

struct item_cache {
	struct block_cache *bc;
	const struct item_cache_ops *ops;
	void *arg;

	pthread_mutex_t mutex;
	struct citem_tree items;
	struct crange_tree ranges;
	struct dirty_list dirty;
	u64 nr_dirty;
	u64 dirty_bytes;
	u64 cached_bytes;
	u64 trans_seq;
	u64 use_counter;

	/* roots are reused until a grant or a commit may have made them too old */
	pthread_mutex_t roots_mutex;
	struct scoutfs_net_roots roots;
	bool have_roots;
	u64 roots_gen;	    /* need_gen when the cached roots were requested */
	_Atomic u64 need_gen;
	/* every lock granted with a refresh_gen up to this preceded the cached roots */
	u64 roots_lock_gen;
};

static u64 citem_bytes(const struct citem *ci)
{
	return sizeof(*ci) + ci->val_len;
}

int item_cache_create(struct block_cache *bc, const struct item_cache_ops *ops, void *arg,
		      struct item_cache **ret)
{
	struct item_cache *ic;

	ic = calloc(1, sizeof(*ic));
	if (!ic)
		return -ENOMEM;
	ic->bc = bc;
	ic->ops = ops;
	ic->arg = arg;
	pthread_mutex_init(&ic->mutex, NULL);
	pthread_mutex_init(&ic->roots_mutex, NULL);
	RB_INIT(&ic->items);
	RB_INIT(&ic->ranges);
	TAILQ_INIT(&ic->dirty);
	ic->need_gen = 1;
	*ret = ic;
	return 0;
}

static void free_citem(struct citem *ci)
{
	free(ci->val);
	free(ci);
}

void item_cache_destroy(struct item_cache *ic)
{
	struct citem *ci, *ci_tmp;
	struct crange *cr, *cr_tmp;

	if (!ic)
		return;
	RB_FOREACH_SAFE(ci, citem_tree, &ic->items, ci_tmp)
	{
		RB_REMOVE(citem_tree, &ic->items, ci);
		free_citem(ci);
	}
	RB_FOREACH_SAFE(cr, crange_tree, &ic->ranges, cr_tmp)
	{
		RB_REMOVE(crange_tree, &ic->ranges, cr);
		free(cr);
	}
	pthread_mutex_destroy(&ic->mutex);
	pthread_mutex_destroy(&ic->roots_mutex);
	free(ic);
}

void item_set_trans_seq(struct item_cache *ic, u64 seq)
{
	pthread_mutex_lock(&ic->mutex);
	ic->trans_seq = seq;
	pthread_mutex_unlock(&ic->mutex);
}

void item_roots_changed(struct item_cache *ic)
{
	atomic_fetch_add(&ic->need_gen, 1);
}

/*
 * Roots fetched before lock was granted can miss what another mount committed before giving
 * the lock up, so a grant newer than the cached roots fetches them again.  refresh_gen grows
 * with every grant, so one fetch covers every grant numbered up to the one it was made for.
 */
static int get_roots(struct item_cache *ic, const struct lock *lock,
                     struct scoutfs_net_roots *roots)
{
	u64 gen;
	int err = 0;

	pthread_mutex_lock(&ic->roots_mutex);
	gen = atomic_load(&ic->need_gen);
	if (!ic->have_roots || ic->roots_gen != gen || ic->roots_lock_gen < lock->refresh_gen) {
		counter_inc(item_get_roots);
		err = ic->ops->get_roots(ic->arg, &ic->roots);
		ic->have_roots = err == 0;
		ic->roots_gen = gen;
		if (err == 0 && ic->roots_lock_gen < lock->refresh_gen)
			ic->roots_lock_gen = lock->refresh_gen;
	}
	if (err == 0)
		*roots = ic->roots;
	pthread_mutex_unlock(&ic->roots_mutex);
	return err;
}

/* ---- ranges (under mutex) ---- */

/* the cached range that contains key, or NULL */
static struct crange *range_find(struct item_cache *ic, const struct scoutfs_key *key)
{
	struct crange search = { .start = *key };
	struct crange *cr;

	cr = RB_NFIND(crange_tree, &ic->ranges, &search);
	if (cr && key_compare(&cr->start, key) == 0)
		return cr;
	cr = cr ? RB_PREV(crange_tree, &ic->ranges, cr) : RB_MAX(crange_tree, &ic->ranges);
	if (cr && key_compare(&cr->end, key) >= 0)
		return cr;
	return NULL;
}

/* add [start, end] to the cached ranges, merging with any it overlaps or touches */
static int range_insert(struct item_cache *ic, struct scoutfs_key start, struct scoutfs_key end)
{
	struct crange search;
	struct crange *cr, *next, *prev;
	struct scoutfs_key after;

	/* absorb a range that starts before and reaches (or touches) start */
	search.start = start;
	cr = RB_NFIND(crange_tree, &ic->ranges, &search);
	prev = cr ? RB_PREV(crange_tree, &ic->ranges, cr) : RB_MAX(crange_tree, &ic->ranges);
	if (prev) {
		after = prev->end;
		if (!key_is_ones(&after))
			key_inc(&after);
		if (key_compare(&after, &start) >= 0) {
			if (key_compare(&prev->end, &end) > 0)
				end = prev->end;
			start = prev->start;
			RB_REMOVE(crange_tree, &ic->ranges, prev);
			free(prev);
		}
	}

	/* absorb ranges that start within (or just after) [start, end] */
	after = end;
	if (!key_is_ones(&after))
		key_inc(&after);
	search.start = start;
	for (cr = RB_NFIND(crange_tree, &ic->ranges, &search); cr; cr = next) {
		if (key_compare(&cr->start, &after) > 0)
			break;
		next = RB_NEXT(crange_tree, &ic->ranges, cr);
		if (key_compare(&cr->end, &end) > 0)
			end = cr->end;
		RB_REMOVE(crange_tree, &ic->ranges, cr);
		free(cr);
	}

	cr = calloc(1, sizeof(*cr));
	if (!cr)
		return -ENOMEM;
	cr->start = start;
	cr->end = end;
	cr->last_used = ++ic->use_counter;
	RB_INSERT(crange_tree, &ic->ranges, cr);
	return 0;
}

/* remove [start, end] from the cached ranges, trimming or splitting those that overlap */
static int range_remove(struct item_cache *ic, const struct scoutfs_key *start,
			const struct scoutfs_key *end)
{
	struct crange search = { .start = *start };
	struct crange *cr, *next, *tail;

	cr = RB_NFIND(crange_tree, &ic->ranges, &search);
	next = cr ? RB_PREV(crange_tree, &ic->ranges, cr) : RB_MAX(crange_tree, &ic->ranges);
	if (next && key_compare(&next->end, start) >= 0)
		cr = next;

	for (; cr && key_compare(&cr->start, end) <= 0; cr = next) {
		next = RB_NEXT(crange_tree, &ic->ranges, cr);
		if (key_compare(&cr->start, start) < 0 && key_compare(&cr->end, end) > 0) {
			/* split around the removed part */
			tail = calloc(1, sizeof(*tail));
			if (!tail)
				return -ENOMEM;
			tail->start = *end;
			key_inc(&tail->start);
			tail->end = cr->end;
			tail->last_used = cr->last_used;
			cr->end = *start;
			key_dec(&cr->end);
			RB_INSERT(crange_tree, &ic->ranges, tail);
			break;
		}
		if (key_compare(&cr->start, start) < 0) {
			cr->end = *start;
			key_dec(&cr->end);
		} else if (key_compare(&cr->end, end) > 0) {
			/* changing the start keeps tree order: nothing else lies in between */
			cr->start = *end;
			key_inc(&cr->start);
		} else {
			RB_REMOVE(crange_tree, &ic->ranges, cr);
			free(cr);
		}
	}
	return 0;
}

/* ---- items (under mutex) ---- */

static struct citem *item_find(struct item_cache *ic, const struct scoutfs_key *key)
{
	struct citem search = { .key = *key };

	return RB_FIND(citem_tree, &ic->items, &search);
}

static struct citem *item_first_at_or_after(struct item_cache *ic, const struct scoutfs_key *key)
{
	struct citem search = { .key = *key };

	return RB_NFIND(citem_tree, &ic->items, &search);
}

static struct citem *item_last_at_or_before(struct item_cache *ic, const struct scoutfs_key *key)
{
	struct citem search = { .key = *key };
	struct citem *ci;

	ci = RB_NFIND(citem_tree, &ic->items, &search);
	if (ci && key_compare(&ci->key, key) == 0)
		return ci;
	return ci ? RB_PREV(citem_tree, &ic->items, ci) : RB_MAX(citem_tree, &ic->items);
}

/* value-less items have no buffer: copy nothing rather than pass memcpy a NULL */
static void copy_val(void *dst, const void *src, unsigned int len)
{
	if (len)
		memcpy(dst, src, len);
}

static int set_value(struct citem *ci, const void *val, unsigned int val_len)
{
	u8 *buf = NULL;

	if (val_len) {
		buf = malloc(val_len);
		if (!buf)
			return -ENOMEM;
		memcpy(buf, val, val_len);
	}
	free(ci->val);
	ci->val = buf;
	ci->val_len = val_len;
	return 0;
}

static void mark_dirty(struct item_cache *ic, struct citem *ci)
{
	if (!(ci->flags & CI_DIRTY)) {
		ci->flags |= CI_DIRTY;
		TAILQ_INSERT_TAIL(&ic->dirty, ci, dirty_entry);
		ic->nr_dirty++;
		ic->dirty_bytes += sizeof(struct scoutfs_btree_item) + ci->val_len;
	}
}

static void clear_dirty(struct item_cache *ic, struct citem *ci)
{
	if (ci->flags & CI_DIRTY) {
		ci->flags &= ~CI_DIRTY;
		TAILQ_REMOVE(&ic->dirty, ci, dirty_entry);
		ic->nr_dirty--;
		ic->dirty_bytes -= min_t(u64, ic->dirty_bytes,
					 sizeof(struct scoutfs_btree_item) + ci->val_len);
	}
}

static void remove_item(struct item_cache *ic, struct citem *ci)
{
	clear_dirty(ic, ci);
	RB_REMOVE(citem_tree, &ic->items, ci);
	ic->cached_bytes -= min_t(u64, ic->cached_bytes, citem_bytes(ci));
	free_citem(ci);
}

static struct citem *new_item(struct item_cache *ic, const struct scoutfs_key *key,
			      const void *val, unsigned int val_len)
{
	struct citem *ci;

	ci = calloc(1, sizeof(*ci));
	if (!ci)
		return NULL;
	ci->key = *key;
	if (set_value(ci, val, val_len) < 0) {
		free(ci);
		return NULL;
	}
	RB_INSERT(citem_tree, &ic->items, ci);
	ic->cached_bytes += citem_bytes(ci);
	return ci;
}

static u64 item_seq(struct item_cache *ic, struct lock *lock, struct lock *primary)
{
	u64 seq = max_t(u64, ic->trans_seq, lock->write_seq);

	if (primary)
		seq = max_t(u64, seq, primary->write_seq);
	return seq;
}

/* ---- reading the forest ---- */

struct read_result {
	struct read_result *next;
	struct scoutfs_key key;
	u64 seq;
	unsigned int val_len;
	u8 val[];
};

struct read_ctx {
	struct read_result *head;
	struct read_result **tail;
	u64 nr;
};

static int read_cb(const struct scoutfs_key *key, u64 seq, u8 flags, const void *val,
		   unsigned int val_len, void *arg)
{
	struct read_ctx *rc = arg;
	struct read_result *rr;

	rr = malloc(sizeof(*rr) + val_len);
	if (!rr)
		return -ENOMEM;
	rr->next = NULL;
	rr->key = *key;
	rr->seq = seq;
	rr->val_len = val_len;
	copy_val(rr->val, val, val_len);
	*rc->tail = rr;
	rc->tail = &rr->next;
	rc->nr++;
	return 0;
}

static void free_results(struct read_ctx *rc)
{
	struct read_result *rr;

	while ((rr = rc->head)) {
		rc->head = rr->next;
		free(rr);
	}
	rc->tail = &rc->head;
	rc->nr = 0;
}

/*
 * Read the range around key from the forest and add it to the cache.  The caller holds
 * lock in a readable mode and does not hold the cache mutex.
 */
static int read_range(struct item_cache *ic, struct lock *lock, const struct scoutfs_key *key)
{
	struct scoutfs_net_roots roots;
	struct scoutfs_net_roots prev_roots;
	struct read_ctx rc = { .head = NULL, .tail = &rc.head };
	struct scoutfs_key start, end;
	struct read_result *rr;
	bool have_prev = false;
	struct citem *ci;
	int err;

	counter_inc(item_read_range);
	for (;;) {
		err = get_roots(ic, lock, &roots);
		if (err < 0)
			return err;
		start = lock->start;
		end = lock->end;
		err = forest_read_items(ic->bc, &roots, key, &start, &end, read_cb, &rc);
		if (err != -ESTALE)
			break;
		/* blocks moved on since these roots: newer roots, unless they didn't change */
		counter_inc(item_read_range_stale);
		free_results(&rc);
		err = block_check_stale(&prev_roots, &have_prev, &roots, sizeof(roots), err);
		if (err != -ESTALE)
			break;
		item_roots_changed(ic);
	}
	if (err < 0)
		goto out;

	pthread_mutex_lock(&ic->mutex);
	for (rr = rc.head; rr; rr = rr->next) {
		/* anything already cached is at least as new as what we read */
		if (range_find(ic, &rr->key))
			continue;
		ci = item_find(ic, &rr->key);
		if (ci) {
			/*
			 * A blind write outside any cached range: it stays, but the key does
			 * exist persistently, so deleting it later must leave a deletion item.
			 */
			ci->flags |= CI_PERSISTENT;
			continue;
		}
		ci = new_item(ic, &rr->key, rr->val, rr->val_len);
		if (!ci) {
			err = -ENOMEM;
			break;
		}
		ci->seq = rr->seq;
		ci->flags = CI_PERSISTENT;
	}
	if (err == 0) {
		/*
		 * Blind writes the range now covers are part of what the cache knows about it:
		 * they must stay cached after the commit instead of being dropped.
		 */
		for (ci = item_first_at_or_after(ic, &start); ci && key_compare(&ci->key, &end) <= 0;
		     ci = RB_NEXT(citem_tree, &ic->items, ci)) {
			if ((ci->flags & CI_BLIND) && !range_find(ic, &ci->key))
				ci->flags &= ~CI_BLIND;
		}
		err = range_insert(ic, start, end);
	}
	pthread_mutex_unlock(&ic->mutex);
	counter_add(item_read_items, rc.nr);
out:
	free_results(&rc);
	return err;
}

enum access {
	ACCESS_READ = 1 << 0,
	ACCESS_WRITE = 1 << 1,
};

/*
 * Reads need a readable mode, blind writes a writable one, and the other writes (which
 * read the range first to know whether the key exists) need both: WRITE, not WRITE_ONLY.
 */
static void check_access(struct lock *lock, const struct scoutfs_key *key, int access)
{
	/* a caller bug, never input from outside: fail loudly in every build */
	if (!lock_covers(lock, key) ||
	    ((access & ACCESS_READ) && !lock_mode_allows_read(lock)) ||
	    ((access & ACCESS_WRITE) && !lock_mode_allows_write(lock))) {
		char kb[KEY_STR_LEN];

		log_err("item access to key %s not covered by its lock (mode %d, access %d)",
			key_str(key, kb), lock->mode, access);
		abort();
	}
}

/*
 * Take the mutex with key's range cached, reading it first if needed.  Returns with the
 * mutex held on success.
 */
static int lock_cached(struct item_cache *ic, struct lock *lock, const struct scoutfs_key *key)
{
	struct crange *cr;
	int err;

	for (;;) {
		pthread_mutex_lock(&ic->mutex);
		cr = range_find(ic, key);
		if (cr) {
			cr->last_used = ++ic->use_counter;
			return 0;
		}
		pthread_mutex_unlock(&ic->mutex);
		counter_inc(item_lookup_miss);
		err = read_range(ic, lock, key);
		if (err < 0)
			return err;
	}
}

/* ---- the public operations ---- */

int item_lookup(struct item_cache *ic, struct lock *lock, const struct scoutfs_key *key, void *val,
		unsigned int val_len)
{
	struct citem *ci;
	int err;

	check_access(lock, key, ACCESS_READ);
	counter_inc(item_lookup);
	err = lock_cached(ic, lock, key);
	if (err < 0)
		return err;
	ci = item_find(ic, key);
	if (!ci || (ci->flags & CI_DELETED)) {
		err = -ENOENT;
	} else {
		copy_val(val, ci->val, min_t(unsigned int, val_len, ci->val_len));
		err = ci->val_len;
	}
	pthread_mutex_unlock(&ic->mutex);
	return err;
}

int item_lookup_exact(struct item_cache *ic, struct lock *lock, const struct scoutfs_key *key,
		      void *val, unsigned int val_len)
{
	int ret = item_lookup(ic, lock, key, val, val_len);

	if (ret >= 0 && (unsigned int)ret != val_len) {
		char kb[KEY_STR_LEN];

		log_err("item %s has a %d byte value, expected %u", key_str(key, kb), ret, val_len);
		return -EIO;
	}
	return ret < 0 ? ret : 0;
}

int item_next(struct item_cache *ic, struct lock *lock, struct scoutfs_key *key,
	      const struct scoutfs_key *last, void *val, unsigned int val_len)
{
	struct scoutfs_key pos = *key;
	struct scoutfs_key lim;
	struct crange *cr;
	struct citem *ci;
	int err;

	if (key_compare(last, &lock->end) > 0)
		last = &lock->end;
	if (key_compare(&pos, last) > 0)
		return -ENOENT;
	check_access(lock, &pos, ACCESS_READ);

	for (;;) {
		err = lock_cached(ic, lock, &pos);
		if (err < 0)
			return err;
		cr = range_find(ic, &pos);
		lim = *key_min(&cr->end, last);
		for (ci = item_first_at_or_after(ic, &pos); ci && key_compare(&ci->key, &lim) <= 0;
		     ci = RB_NEXT(citem_tree, &ic->items, ci)) {
			if (ci->flags & CI_DELETED)
				continue;
			*key = ci->key;
			copy_val(val, ci->val, min_t(unsigned int, val_len, ci->val_len));
			err = ci->val_len;
			pthread_mutex_unlock(&ic->mutex);
			return err;
		}
		pthread_mutex_unlock(&ic->mutex);
		if (key_compare(&lim, last) >= 0)
			return -ENOENT;
		pos = lim;
		key_inc(&pos);
	}
}

int item_prev(struct item_cache *ic, struct lock *lock, struct scoutfs_key *key,
	      const struct scoutfs_key *first, void *val, unsigned int val_len)
{
	struct scoutfs_key pos = *key;
	struct scoutfs_key lim;
	struct crange *cr;
	struct citem *ci;
	int err;

	if (key_compare(first, &lock->start) < 0)
		first = &lock->start;
	if (key_compare(&pos, &lock->end) > 0)
		pos = lock->end;
	if (key_compare(&pos, first) < 0)
		return -ENOENT;
	check_access(lock, &pos, ACCESS_READ);

	for (;;) {
		err = lock_cached(ic, lock, &pos);
		if (err < 0)
			return err;
		cr = range_find(ic, &pos);
		lim = *key_max(&cr->start, first);
		for (ci = item_last_at_or_before(ic, &pos); ci && key_compare(&ci->key, &lim) >= 0;
		     ci = RB_PREV(citem_tree, &ic->items, ci)) {
			if (ci->flags & CI_DELETED)
				continue;
			*key = ci->key;
			copy_val(val, ci->val, min_t(unsigned int, val_len, ci->val_len));
			err = ci->val_len;
			pthread_mutex_unlock(&ic->mutex);
			return err;
		}
		pthread_mutex_unlock(&ic->mutex);
		if (key_compare(&lim, first) <= 0)
			return -ENOENT;
		pos = lim;
		key_dec(&pos);
	}
}

int item_create(struct item_cache *ic, struct lock *lock, const struct scoutfs_key *key,
		const void *val, unsigned int val_len)
{
	struct citem *ci;
	int err;

	check_access(lock, key, ACCESS_READ | ACCESS_WRITE);
	err = lock_cached(ic, lock, key);
	if (err < 0)
		return err;
	ci = item_find(ic, key);
	if (ci && !(ci->flags & CI_DELETED)) {
		err = -EEXIST;
		goto out;
	}
	if (ci) {
		/* reusing a tombstone: the key still may exist persistently */
		clear_dirty(ic, ci);
		ic->cached_bytes -= min_t(u64, ic->cached_bytes, citem_bytes(ci));
		err = set_value(ci, val, val_len);
		ic->cached_bytes += citem_bytes(ci);
		if (err < 0)
			goto out;
		ci->flags &= ~CI_DELETED;
	} else {
		ci = new_item(ic, key, val, val_len);
		if (!ci) {
			err = -ENOMEM;
			goto out;
		}
	}
	ci->seq = item_seq(ic, lock, NULL);
	mark_dirty(ic, ci);
	counter_inc(item_create);
out:
	pthread_mutex_unlock(&ic->mutex);
	return err;
}

int item_update(struct item_cache *ic, struct lock *lock, const struct scoutfs_key *key,
		const void *val, unsigned int val_len)
{
	struct citem *ci;
	int err;

	check_access(lock, key, ACCESS_READ | ACCESS_WRITE);
	err = lock_cached(ic, lock, key);
	if (err < 0)
		return err;
	ci = item_find(ic, key);
	if (!ci || (ci->flags & CI_DELETED)) {
		err = -ENOENT;
		goto out;
	}
	clear_dirty(ic, ci);
	ic->cached_bytes -= min_t(u64, ic->cached_bytes, citem_bytes(ci));
	err = set_value(ci, val, val_len);
	ic->cached_bytes += citem_bytes(ci);
	if (err < 0)
		goto out;
	ci->seq = item_seq(ic, lock, NULL);
	mark_dirty(ic, ci);
	counter_inc(item_update);
out:
	pthread_mutex_unlock(&ic->mutex);
	return err;
}

/* delete a found item: a tombstone if it may be persistent, else forget it */
static void delete_found(struct item_cache *ic, struct citem *ci, u64 seq)
{
	if (ci->flags & CI_PERSISTENT) {
		clear_dirty(ic, ci);
		ic->cached_bytes -= min_t(u64, ic->cached_bytes, citem_bytes(ci));
		set_value(ci, NULL, 0);
		ic->cached_bytes += citem_bytes(ci);
		ci->flags |= CI_DELETED;
		ci->seq = seq;
		mark_dirty(ic, ci);
	} else {
		remove_item(ic, ci);
	}
	counter_inc(item_delete);
}

int item_delete(struct item_cache *ic, struct lock *lock, const struct scoutfs_key *key)
{
	struct citem *ci;
	int err;

	check_access(lock, key, ACCESS_READ | ACCESS_WRITE);
	err = lock_cached(ic, lock, key);
	if (err < 0)
		return err;
	ci = item_find(ic, key);
	if (!ci || (ci->flags & CI_DELETED))
		err = -ENOENT;
	else
		delete_found(ic, ci, item_seq(ic, lock, NULL));
	pthread_mutex_unlock(&ic->mutex);
	return err;
}

int item_create_force(struct item_cache *ic, struct lock *lock, struct lock *primary,
		      const struct scoutfs_key *key, const void *val, unsigned int val_len)
{
	struct citem *ci;
	int err = 0;

	check_access(lock, key, ACCESS_WRITE);
	pthread_mutex_lock(&ic->mutex);
	ci = item_find(ic, key);
	if (!ci) {
		ci = new_item(ic, key, val, val_len);
		if (!ci) {
			err = -ENOMEM;
			goto out;
		}
	} else {
		clear_dirty(ic, ci);
		ic->cached_bytes -= min_t(u64, ic->cached_bytes, citem_bytes(ci));
		err = set_value(ci, val, val_len);
		ic->cached_bytes += citem_bytes(ci);
		if (err < 0)
			goto out;
	}
	/* unless the range was read, it can't be kept after commit */
	ci->flags = (ci->flags & CI_PERSISTENT) | (range_find(ic, key) ? 0 : CI_BLIND);
	ci->seq = item_seq(ic, lock, primary);
	mark_dirty(ic, ci);
	counter_inc(item_create);
out:
	pthread_mutex_unlock(&ic->mutex);
	return err;
}

int item_delete_force(struct item_cache *ic, struct lock *lock, struct lock *primary,
		      const struct scoutfs_key *key)
{
	struct citem *ci;
	int err = 0;

	check_access(lock, key, ACCESS_WRITE);
	pthread_mutex_lock(&ic->mutex);
	ci = item_find(ic, key);
	if (!ci) {
		ci = new_item(ic, key, NULL, 0);
		if (!ci) {
			err = -ENOMEM;
			goto out;
		}
		ci->flags = range_find(ic, key) ? 0 : CI_BLIND;
	}
	/* we can't know whether it exists anywhere: always leave a deletion item */
	ci->flags |= CI_PERSISTENT;
	delete_found(ic, ci, item_seq(ic, lock, primary));
out:
	pthread_mutex_unlock(&ic->mutex);
	return err;
}

/* ---- commits ---- */

u64 item_dirty_count(struct item_cache *ic)
{
	u64 nr;

	pthread_mutex_lock(&ic->mutex);
	nr = ic->nr_dirty;
	pthread_mutex_unlock(&ic->mutex);
	return nr;
}

u64 item_dirty_bytes(struct item_cache *ic)
{
	u64 bytes;

	pthread_mutex_lock(&ic->mutex);
	bytes = ic->dirty_bytes;
	pthread_mutex_unlock(&ic->mutex);
	return bytes;
}

static int cmp_citem_ptr(const void *a, const void *b)
{
	const struct citem *x = *(struct citem *const *)a;
	const struct citem *y = *(struct citem *const *)b;

	return key_compare(&x->key, &y->key);
}

int item_write_dirty(struct item_cache *ic, const struct btree_txn *txn,
		     struct scoutfs_btree_root *root, u64 *max_seq)
{
	struct btree_item_list *head = NULL;
	struct btree_item_list **tail = &head;
	struct btree_item_list *bil;
	struct citem **sorted = NULL;
	struct citem *ci;
	u64 nr, i;
	int err = 0;

	*max_seq = 0;
	pthread_mutex_lock(&ic->mutex);
	nr = ic->nr_dirty;
	if (nr == 0)
		goto out;
	sorted = malloc(nr * sizeof(*sorted));
	if (!sorted) {
		err = -ENOMEM;
		goto out;
	}
	i = 0;
	TAILQ_FOREACH(ci, &ic->dirty, dirty_entry)
	sorted[i++] = ci;
	qsort(sorted, nr, sizeof(*sorted), cmp_citem_ptr);

	for (i = 0; i < nr; i++) {
		ci = sorted[i];
		bil = malloc(sizeof(*bil) + ci->val_len);
		if (!bil) {
			err = -ENOMEM;
			goto out;
		}
		bil->next = NULL;
		bil->key = ci->key;
		bil->seq = ci->seq;
		bil->flags = (ci->flags & CI_DELETED) ? SCOUTFS_ITEM_FLAG_DELETION : 0;
		bil->val_len = ci->val_len;
		copy_val(bil->val, ci->val, ci->val_len);
		*tail = bil;
		tail = &bil->next;
		*max_seq = max_t(u64, *max_seq, ci->seq);
	}
	/*
	 * Holders are excluded during commit, so nothing dirties items while the mutex is
	 * dropped for the btree writes (reads may still populate clean ranges).
	 */
	pthread_mutex_unlock(&ic->mutex);
	err = btree_insert_list(txn, root, head, NULL);
	pthread_mutex_lock(&ic->mutex);
	if (err == 0)
		counter_add(item_commit_items, nr);
out:
	pthread_mutex_unlock(&ic->mutex);
	while ((bil = head)) {
		head = bil->next;
		free(bil);
	}
	free(sorted);
	return err;
}

void item_commit_done(struct item_cache *ic)
{
	struct citem *ci;

	pthread_mutex_lock(&ic->mutex);
	while ((ci = TAILQ_FIRST(&ic->dirty))) {
		clear_dirty(ic, ci);
		if (ci->flags & (CI_DELETED | CI_BLIND)) {
			remove_item(ic, ci);
		} else {
			ci->flags |= CI_PERSISTENT;
		}
	}
	pthread_mutex_unlock(&ic->mutex);
}

/* ---- invalidation and memory ---- */

bool item_range_dirty(struct item_cache *ic, const struct scoutfs_key *start,
		      const struct scoutfs_key *end)
{
	struct citem *ci;
	bool dirty = false;

	pthread_mutex_lock(&ic->mutex);
	TAILQ_FOREACH(ci, &ic->dirty, dirty_entry)
	{
		if (key_in_range(&ci->key, start, end)) {
			dirty = true;
			break;
		}
	}
	pthread_mutex_unlock(&ic->mutex);
	return dirty;
}

int item_invalidate(struct item_cache *ic, const struct scoutfs_key *start,
		    const struct scoutfs_key *end)
{
	struct citem *ci, *next;
	u64 nr = 0;
	int err;

	pthread_mutex_lock(&ic->mutex);
	for (ci = item_first_at_or_after(ic, start); ci && key_compare(&ci->key, end) <= 0;
	     ci = next) {
		next = RB_NEXT(citem_tree, &ic->items, ci);
		if (ci->flags & CI_DIRTY) {
			char kb[KEY_STR_LEN];

			log_err("invalidating dirty item %s", key_str(&ci->key, kb));
			pthread_mutex_unlock(&ic->mutex);
			return -EBUSY;
		}
	}
	for (ci = item_first_at_or_after(ic, start); ci && key_compare(&ci->key, end) <= 0;
	     ci = next) {
		next = RB_NEXT(citem_tree, &ic->items, ci);
		remove_item(ic, ci);
		nr++;
	}
	err = range_remove(ic, start, end);
	pthread_mutex_unlock(&ic->mutex);
	counter_inc(item_invalidate);
	counter_add(item_invalidate_items, nr);
	return err;
}

u64 item_cached_bytes(struct item_cache *ic)
{
	u64 bytes;

	pthread_mutex_lock(&ic->mutex);
	bytes = ic->cached_bytes;
	pthread_mutex_unlock(&ic->mutex);
	return bytes;
}

/*
 * Drop the least recently used clean ranges until the cache is under target.  A range with
 * a dirty item in it is kept whole.
 */
void item_shrink(struct item_cache *ic, u64 target_bytes)
{
	struct crange *cr, *oldest;
	struct citem *ci, *next;
	bool dirty;

	pthread_mutex_lock(&ic->mutex);
	while (ic->cached_bytes > target_bytes) {
		oldest = NULL;
		RB_FOREACH(cr, crange_tree, &ic->ranges)
		{
			dirty = false;
			for (ci = item_first_at_or_after(ic, &cr->start);
			     ci && key_compare(&ci->key, &cr->end) <= 0;
			     ci = RB_NEXT(citem_tree, &ic->items, ci)) {
				if (ci->flags & CI_DIRTY) {
					dirty = true;
					break;
				}
			}
			if (!dirty && (!oldest || cr->last_used < oldest->last_used))
				oldest = cr;
		}
		if (!oldest)
			break;
		for (ci = item_first_at_or_after(ic, &oldest->start);
		     ci && key_compare(&ci->key, &oldest->end) <= 0; ci = next) {
			next = RB_NEXT(citem_tree, &ic->items, ci);
			remove_item(ic, ci);
		}
		RB_REMOVE(crange_tree, &ic->ranges, oldest);
		free(oldest);
		counter_inc(item_shrink);
	}
	pthread_mutex_unlock(&ic->mutex);
}
