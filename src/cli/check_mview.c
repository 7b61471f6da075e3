/*
 * check_mview.c: the merged view of the filesystem's items, as a mount would read them.
 *
 * Items live in fs_root and in every mount's log btree; for each key the version with the
 * greatest seq wins (fs_root and then the log trees in (rid, nr) order break ties, as
 * forest.c does), and a winning deletion means the key doesn't exist.  The checker needs
 * every live item in key order, for filesystems of any size, so the view is a k-way merge:
 * one cursor per tree, each holding a copy of one leaf's items, and a heap of cursors ordered
 * by their current key.  Memory is one leaf per tree, whatever the number of items.
 *
 * Cursors descend from their root for every leaf with our own verified reads, so a damaged
 * block costs only the key range it covers: the cursor notes it and resumes after that range
 * (known from the parent's keys).  Keys are clamped to the ranges the parents promise, so
 * the stream stays in order and always advances even through nonsense.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "btree/btree.h"
#include "cli/check.h"
#include "util/util.h"

#define LEAF_MAX_ITEMS                                                                             \
	((SCOUTFS_BLOCK_LG_SIZE - SCOUTFS_BTREE_BLOCK_HDR_SIZE) / SCOUTFS_BTREE_ITEM_SIZE + 1)

struct citem {
	struct scoutfs_key key;
	u64 seq;
	u32 val_off;
	u16 val_len;
	u8 flags;
};

struct mcursor {
	int tree;
	struct scoutfs_btree_root root;
	struct scoutfs_key next; /* the first key not loaded yet */
	bool exhausted;          /* nothing left to load */
	struct citem *items;
	u8 *vals;
	unsigned int nr;
	unsigned int pos;
};

struct mview {
	struct check *chk;
	struct scoutfs_key end;
	struct mcursor *curs;
	int nr_curs;
	int *heap; /* cursor indexes, smallest current key first */
	int heap_nr;
	int *popped;
	u8 val[SCOUTFS_BTREE_MAX_VAL_LEN];
};

const char *mview_tree_name(struct check *chk, int tree, char *buf, size_t len)
{
	const struct scoutfs_log_trees *lt;

	if (tree == 0) {
		snprintf(buf, len, "fs_root");
	} else if (tree > 0 && (u64)tree <= chk->nr_lts) {
		lt = &chk->lts[tree - 1];
		snprintf(buf, len, "log tree %016llx.%llu",
		         (unsigned long long)le64_to_cpu(lt->rid),
		         (unsigned long long)le64_to_cpu(lt->nr));
	} else {
		snprintf(buf, len, "tree %d", tree);
	}
	return buf;
}

static const struct scoutfs_btree_root *tree_root(struct check *chk, int tree)
{
	return tree == 0 ? &chk->super->fs_root : &chk->lts[tree - 1].item_root;
}

static void note(struct check *chk, int tree, const struct scoutfs_key *lo,
                 const struct scoutfs_key *hi, const char *why)
{
	char name[64], ka[KEY_STR_LEN], kb[KEY_STR_LEN];

	if (chk->quiet)
		return;
	printf("  note: the items of %s in keys (%s, %s] can't be read and are left out of the "
	       "checks of filesystem items: %s\n",
	       mview_tree_name(chk, tree, name, sizeof(name)), lo ? key_str(lo, ka) : "start",
	       key_is_ones(hi) ? "end" : key_str(hi, kb), why);
}

/* ---------------------------------------------------------------------------------------- */
/* cursors */

static bool cursor_has(const struct mcursor *c)
{
	return c->pos < c->nr;
}

static const struct citem *cursor_item(const struct mcursor *c)
{
	return &c->items[c->pos];
}

/* load leaves until the cursor holds an item or is exhausted */
static int cursor_load(struct mview *mv, struct mcursor *c)
{
	struct check *chk = mv->chk;
	const struct scoutfs_btree_block *bt;
	const struct scoutfs_btree_item *it;
	struct scoutfs_key lo, hi;
	char why[CHECK_WHY_LEN];
	struct block *bl;
	bool have_lo;
	u32 off = 0;
	int ret;

	c->nr = 0;
	c->pos = 0;
	while (c->nr == 0 && !c->exhausted) {
		ret = walk_descend(chk->bc, &c->root, &c->next, &bl, &lo, &have_lo, &hi, why,
		                   sizeof(why));
		if (ret == -ENOMEM)
			return ret;
		if (ret == -ENOENT) {
			c->exhausted = true;
			break;
		}
		if (ret < 0) {
			note(chk, c->tree, have_lo ? &lo : NULL, &hi, why);
		} else {
			bt = bl->data;
			for (unsigned int i = 0; i < le16_to_cpu(bt->nr_items); i++) {
				it = &bt->items[i];
				if (key_compare(&it->key, &c->next) < 0 ||
				    key_compare(&it->key, &hi) > 0 ||
				    key_compare(&it->key, &mv->end) > 0)
					continue;
				c->items[c->nr].key = it->key;
				c->items[c->nr].seq = le64_to_cpu(it->seq);
				c->items[c->nr].flags = it->flags;
				c->items[c->nr].val_len = le16_to_cpu(it->val_len);
				c->items[c->nr].val_off = off;
				memcpy(c->vals + off, (const char *)bt + le16_to_cpu(it->val_off),
				       le16_to_cpu(it->val_len));
				off += le16_to_cpu(it->val_len);
				c->nr++;
			}
			block_put(chk->bc, bl);
		}
		if (key_is_ones(&hi) || key_compare(&hi, &mv->end) >= 0) {
			c->exhausted = true;
		} else {
			c->next = hi;
			key_inc(&c->next);
		}
	}
	return 0;
}

static int cursor_advance(struct mview *mv, struct mcursor *c)
{
	c->pos++;
	if (c->pos < c->nr)
		return 0;
	return cursor_load(mv, c);
}

/* ---------------------------------------------------------------------------------------- */
/* the heap of cursors */

static bool heap_less(struct mview *mv, int a, int b)
{
	int c = key_compare(&cursor_item(&mv->curs[a])->key, &cursor_item(&mv->curs[b])->key);

	return c < 0 || (c == 0 && mv->curs[a].tree < mv->curs[b].tree);
}

static void heap_push(struct mview *mv, int ci)
{
	int i = mv->heap_nr++;

	mv->heap[i] = ci;
	while (i > 0 && heap_less(mv, mv->heap[i], mv->heap[(i - 1) / 2])) {
		int p = (i - 1) / 2;
		int t = mv->heap[p];

		mv->heap[p] = mv->heap[i];
		mv->heap[i] = t;
		i = p;
	}
}

static int heap_pop(struct mview *mv)
{
	int top = mv->heap[0];
	int i = 0;

	mv->heap[0] = mv->heap[--mv->heap_nr];
	for (;;) {
		int l = 2 * i + 1, r = l + 1, s = i, t;

		if (l < mv->heap_nr && heap_less(mv, mv->heap[l], mv->heap[s]))
			s = l;
		if (r < mv->heap_nr && heap_less(mv, mv->heap[r], mv->heap[s]))
			s = r;
		if (s == i)
			break;
		t = mv->heap[s];
		mv->heap[s] = mv->heap[i];
		mv->heap[i] = t;
		i = s;
	}
	return top;
}

int mview_open(struct check *chk, const struct scoutfs_key *start, const struct scoutfs_key *end,
               struct mview **ret)
{
	struct mview *mv;
	int ret_err = -ENOMEM;

	*ret = NULL;
	mv = calloc(1, sizeof(*mv));
	if (!mv)
		return -ENOMEM;
	mv->chk = chk;
	mv->end = *end;
	mv->nr_curs = (int)chk->nr_lts + 1;
	mv->curs = calloc(mv->nr_curs, sizeof(mv->curs[0]));
	mv->heap = calloc(mv->nr_curs, sizeof(int));
	mv->popped = calloc(mv->nr_curs, sizeof(int));
	if (!mv->curs || !mv->heap || !mv->popped)
		goto fail;
	for (int i = 0; i < mv->nr_curs; i++) {
		struct mcursor *c = &mv->curs[i];

		c->tree = i;
		c->root = *tree_root(chk, i);
		c->next = *start;
		c->items = calloc(LEAF_MAX_ITEMS, sizeof(c->items[0]));
		c->vals = malloc(SCOUTFS_BLOCK_LG_SIZE);
		if (!c->items || !c->vals)
			goto fail;
		ret_err = cursor_load(mv, c);
		if (ret_err < 0)
			goto fail;
		ret_err = -ENOMEM;
		if (cursor_has(c))
			heap_push(mv, i);
	}
	*ret = mv;
	return 0;
fail:
	mview_close(mv);
	return ret_err;
}

void mview_close(struct mview *mv)
{
	if (!mv)
		return;
	for (int i = 0; mv->curs && i < mv->nr_curs; i++) {
		free(mv->curs[i].items);
		free(mv->curs[i].vals);
	}
	free(mv->curs);
	free(mv->heap);
	free(mv->popped);
	free(mv);
}

int mview_next(struct mview *mv, struct mview_item *item)
{
	const struct citem *best, *ci;
	struct mcursor *bc;
	int nr_popped;
	int ret;

	for (;;) {
		if (mv->heap_nr == 0)
			return -ENOENT;

		/* every version of the smallest key, in tree order */
		nr_popped = 0;
		mv->popped[nr_popped++] = heap_pop(mv);
		best = cursor_item(&mv->curs[mv->popped[0]]);
		bc = &mv->curs[mv->popped[0]];
		while (mv->heap_nr &&
		       key_compare(&cursor_item(&mv->curs[mv->heap[0]])->key, &best->key) == 0) {
			int i = heap_pop(mv);

			mv->popped[nr_popped++] = i;
			ci = cursor_item(&mv->curs[i]);
			if (ci->seq > best->seq) {
				best = ci;
				bc = &mv->curs[i];
			}
		}

		item->key = best->key;
		item->seq = best->seq;
		item->flags = best->flags;
		item->val_len = best->val_len;
		item->tree = bc->tree;
		memcpy(mv->val, bc->vals + best->val_off,
		       min_t(u32, best->val_len, sizeof(mv->val)));
		item->val = mv->val;

		for (int i = 0; i < nr_popped; i++) {
			struct mcursor *c = &mv->curs[mv->popped[i]];

			ret = cursor_advance(mv, c);
			if (ret < 0)
				return ret;
			if (cursor_has(c))
				heap_push(mv, mv->popped[i]);
		}
		if (!(item->flags & SCOUTFS_ITEM_FLAG_DELETION))
			return 0;
	}
}

int mview_lookup(struct check *chk, const struct scoutfs_key *key, void *val, unsigned int *val_len)
{
	u8 buf[SCOUTFS_BTREE_MAX_VAL_LEN];
	struct scoutfs_btree_item it;
	char why[CHECK_WHY_LEN];
	bool found = false, deleted = false;
	u64 best_seq = 0;
	int ret;

	for (int t = 0; t <= (int)chk->nr_lts; t++) {
		ret = walk_lookup(chk->bc, tree_root(chk, t), key, &it, buf, why, sizeof(why));
		if (ret == -ENOMEM)
			return ret;
		if (ret < 0)
			continue;
		if (!found || le64_to_cpu(it.seq) > best_seq) {
			found = true;
			best_seq = le64_to_cpu(it.seq);
			deleted = it.flags & SCOUTFS_ITEM_FLAG_DELETION;
			*val_len = le16_to_cpu(it.val_len);
			memcpy(val, buf, *val_len);
		}
	}
	return found && !deleted ? 0 : -ENOENT;
}
