/*
 * forest.c: merged reads of fs_root and the log btrees.
 *
 * Each mount writes its own log btree, and the server merges finalized log btrees into
 * fs_root in the background, so one key may have versions in several trees at once.  Every
 * version carries the seq it was written with: a mount's transaction seq, raised to at least
 * the write_seq of the lock it was written under.  A lock is only granted after the previous
 * holder committed, and each grant takes a fresh seq, so the newest version of a key always
 * has the greatest seq no matter in which order the trees were committed or merged.
 *
 * A read visits, for one key, the leaf of each tree that would hold it, collects every item
 * those leaves hold in the caller's range, and narrows the range to what all the leaves
 * cover.  Within that range the collected versions are complete: the winner per key is the
 * greatest seq, and a winning deletion hides the key.  Callers (the item cache) cache the
 * whole narrowed range, including the keys that turned out not to exist.
 *
 * Every log tree is read; a later version can skip trees with a bloom filter of lock start
 * keys (the format reserves bloom_ref for it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "format/key.h"
#include "forest/forest.h"
#include "util/counters.h"
#include "util/util.h"

COUNTER_DEFINE(forest_read_items);
COUNTER_DEFINE(forest_read_trees);

struct collected {
	struct scoutfs_key key;
	u64 seq;
	u64 order; /* tiebreak: versions collected earlier win equal seqs */
	u8 flags;
	unsigned int val_len;
	u8 *val;
};

struct collector {
	struct collected *items;
	size_t nr;
	size_t alloced;
	int err;
};

static int collect_cb(const struct scoutfs_key *key, u64 seq, u8 flags, const void *val,
		      unsigned int val_len, void *arg)
{
	struct collector *col = arg;
	struct collected *ci;

	if (col->nr == col->alloced) {
		size_t nr = col->alloced ? col->alloced * 2 : 256;
		struct collected *items = realloc(col->items, nr * sizeof(*items));

		if (!items)
			return -ENOMEM;
		col->items = items;
		col->alloced = nr;
	}
	ci = &col->items[col->nr];
	ci->val = NULL;
	if (val_len) {
		ci->val = malloc(val_len);
		if (!ci->val)
			return -ENOMEM;
		memcpy(ci->val, val, val_len);
	}
	ci->key = *key;
	ci->seq = seq;
	ci->order = col->nr;
	ci->flags = flags;
	ci->val_len = val_len;
	col->nr++;
	return 0;
}

static int cmp_collected(const void *a, const void *b)
{
	const struct collected *x = a;
	const struct collected *y = b;
	int c = key_compare(&x->key, &y->key);

	if (c)
		return c;
	/* within a key: greatest seq first, then earliest collected */
	if (x->seq != y->seq)
		return x->seq > y->seq ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order ? 1 : 0;
}

struct log_tree_read {
	struct block_cache *bc;
	const struct scoutfs_key *key;
	struct scoutfs_key *start;
	struct scoutfs_key *end;
	struct collector *col;
};

static int read_log_tree(void *arg, const struct scoutfs_log_trees *lt)
{
	struct log_tree_read *ltr = arg;

	if (lt->item_root.height == 0)
		return 0;
	counter_inc(forest_read_trees);
	return btree_read_items(ltr->bc, &lt->item_root, ltr->key, ltr->start, ltr->end,
				collect_cb, ltr->col);
}

int forest_for_each_log_tree(struct block_cache *bc, const struct scoutfs_btree_root *logs_root,
			     int (*cb)(void *arg, const struct scoutfs_log_trees *lt), void *arg)
{
	struct scoutfs_key key = key_make(SCOUTFS_LOG_TREES_ZONE, 0, 0, 0, 0, 0);
	struct scoutfs_log_trees lt;
	struct btree_item_ref iref;
	int err;

	for (;;) {
		err = btree_next(bc, logs_root, &key, &iref);
		if (err == -ENOENT)
			return 0;
		if (err < 0)
			return err;
		if (iref.key.sk_zone != SCOUTFS_LOG_TREES_ZONE) {
			btree_iref_put(&iref);
			return 0;
		}
		if (iref.val_len != sizeof(lt)) {
			btree_iref_put(&iref);
			return -EIO;
		}
		memcpy(&lt, iref.val, sizeof(lt));
		key = iref.key;
		btree_iref_put(&iref);

		err = cb(arg, &lt);
		if (err)
			return err;
		if (key_is_ones(&key))
			return 0;
		key_inc(&key);
	}
}

int forest_read_items(struct block_cache *bc, const struct scoutfs_net_roots *roots,
		      const struct scoutfs_key *key, struct scoutfs_key *start,
		      struct scoutfs_key *end, btree_item_cb cb, void *arg)
{
	struct collector col = { 0 };
	struct log_tree_read ltr = { .bc = bc, .key = key, .start = start, .end = end, .col = &col };
	struct collected *ci;
	size_t i;
	int err;

	counter_inc(forest_read_items);

	err = btree_read_items(bc, &roots->fs_root, key, start, end, collect_cb, &col);
	if (err < 0)
		goto out;
	err = forest_for_each_log_tree(bc, &roots->logs_root, read_log_tree, &ltr);
	if (err < 0)
		goto out;

	if (col.nr)
		qsort(col.items, col.nr, sizeof(col.items[0]), cmp_collected);
	for (i = 0; i < col.nr; i++) {
		ci = &col.items[i];
		/* only the first version of each key (the winner) is considered */
		if (i > 0 && key_compare(&ci->key, &col.items[i - 1].key) == 0)
			continue;
		if (ci->flags & SCOUTFS_ITEM_FLAG_DELETION)
			continue;
		if (!key_in_range(&ci->key, start, end))
			continue;
		err = cb(&ci->key, ci->seq, ci->flags, ci->val, ci->val_len, arg);
		if (err)
			break;
	}
out:
	for (i = 0; i < col.nr; i++)
		free(col.items[i].val);
	free(col.items);
	return err;
}
