/*
 * btree.c: copy-on-write btrees in 64 KiB blocks.
 *
 * Block layout.  After the 48-byte block header comes a dense array of 48-byte item
 * headers sorted by key, so a search is a binary search.  Values are packed downward from
 * the end of the block: val_start is the lowest byte used by a value, and values are 8-byte
 * aligned.  Deleting or shrinking a value leaves a hole; val_bytes counts the live value
 * bytes so a block knows how much a compaction (repacking every value against the end of the
 * block) would free.  Inserting compacts when the gap between the headers and the values is
 * too small but the block as a whole has room, and splits the block otherwise.
 *
 * Parents hold one item per child: the key is the greatest key that can live in the child
 * and the value is the child's block ref.  The rightmost item of every parent has the
 * all-ones key, so new keys beyond everything never require a parent key update, and the
 * key range a block covers is (previous sibling's key, its own key] -- read off the parents
 * while walking down.
 *
 * Modifying walks go from the root down and dirty every block on the way with
 * block_dirty_ref(), which moves the block to a new location and rewrites the ref held by
 * the (already dirty) parent or the root.  Insert walks split any block without room for
 * one more item before descending into it, so a split only ever adds an item to a parent that
 * has room; splitting the root adds a level.  Delete walks join any non-root block that has
 * fallen below a quarter full with a sibling, and a root parent with a single child is
 * replaced by that child.  Both restart the walk from the root after changing the shape.
 *
 * Reads trust nothing on disk: block headers and every item's value bounds are checked
 * before use, and anything inconsistent is -EIO.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "btree/btree.h"
#include "format/key.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(btree_split);
COUNTER_DEFINE(btree_join);
COUNTER_DEFINE(btree_merge_blocks);
COUNTER_DEFINE(btree_compact);
COUNTER_DEFINE(btree_root_grow);
COUNTER_DEFINE(btree_root_shrink);
COUNTER_DEFINE(btree_read_items);
COUNTER_DEFINE(btree_insert_list_items);
COUNTER_DEFINE(btree_corrupt);

#define BLOCK_SIZE SCOUTFS_BLOCK_LG_SIZE
#define HDR_SIZE SCOUTFS_BTREE_BLOCK_HDR_SIZE
#define ITEM_SIZE SCOUTFS_BTREE_ITEM_SIZE
#define USABLE (BLOCK_SIZE - HDR_SIZE)
#define JOIN_LOW (USABLE / 4)
#define PARENT_VAL_LEN ((unsigned int)sizeof(struct scoutfs_block_ref))

/* ---- block contents ---- */

static inline struct scoutfs_btree_block *bt_of(struct block *bl)
{
	return bl->data;
}

static inline unsigned int nr_items(const struct scoutfs_btree_block *bt)
{
	return le16_to_cpu(bt->nr_items);
}

static inline void set_nr_items(struct scoutfs_btree_block *bt, unsigned int nr)
{
	bt->nr_items = cpu_to_le16((u16)nr);
}

/*
 * val_start is stored in 16 bits and the value area ends at byte 65536, so an empty value
 * area (val_start == 65536) is stored as 0.  These two hide that.
 */
static inline unsigned int val_start(const struct scoutfs_btree_block *bt)
{
	unsigned int vs = le16_to_cpu(bt->val_start);

	return vs ? vs : BLOCK_SIZE;
}

static inline void set_val_start(struct scoutfs_btree_block *bt, unsigned int vs)
{
	bt->val_start = cpu_to_le16((u16)(vs == BLOCK_SIZE ? 0 : vs));
}

static inline unsigned int val_bytes(const struct scoutfs_btree_block *bt)
{
	return le32_to_cpu(bt->val_bytes);
}

static inline void add_val_bytes(struct scoutfs_btree_block *bt, int delta)
{
	bt->val_bytes = cpu_to_le32((u32)((int)val_bytes(bt) + delta));
}

/* the unused bytes between the last item header and the first value */
static inline unsigned int gap(const struct scoutfs_btree_block *bt)
{
	return val_start(bt) - (HDR_SIZE + nr_items(bt) * ITEM_SIZE);
}

static inline unsigned int used_bytes(const struct scoutfs_btree_block *bt)
{
	return nr_items(bt) * ITEM_SIZE + val_bytes(bt);
}

static inline unsigned int free_bytes(const struct scoutfs_btree_block *bt)
{
	return USABLE - used_bytes(bt);
}

static inline unsigned int item_bytes(unsigned int val_len)
{
	return ITEM_SIZE + ALIGN8(val_len);
}

static inline unsigned int item_val_len(const struct scoutfs_btree_block *bt, unsigned int i)
{
	return le16_to_cpu(bt->items[i].val_len);
}

static inline void *item_val(struct scoutfs_btree_block *bt, unsigned int i)
{
	return (char *)bt + le16_to_cpu(bt->items[i].val_off);
}

static inline struct scoutfs_block_ref *child_ref(struct scoutfs_btree_block *bt, unsigned int i)
{
	return item_val(bt, i);
}

static int corrupt(u64 blkno, const char *why)
{
	counter_inc(btree_corrupt);
	log_err("btree block %llu is corrupt: %s", (unsigned long long)blkno, why);
	return -EIO;
}

/* checks of a block's header and item bounds, so every access below stays in the block */
static int check_block(struct block *bl, int level)
{
	struct scoutfs_btree_block *bt = bt_of(bl);
	unsigned int nr = nr_items(bt);
	unsigned int vs = val_start(bt);
	unsigned int i, off, len, sum = 0;

	if (HDR_SIZE + nr * ITEM_SIZE > vs)
		return corrupt(bl->blkno, "item headers overlap values");
	if (val_bytes(bt) > BLOCK_SIZE - vs)
		return corrupt(bl->blkno, "value bytes exceed value area");
	if (level >= 0 && bt->level != level)
		return corrupt(bl->blkno, "unexpected level");
	if (bt->level > 0 && nr == 0)
		return corrupt(bl->blkno, "empty parent");
	for (i = 0; i < nr; i++) {
		off = le16_to_cpu(bt->items[i].val_off);
		len = item_val_len(bt, i);
		if (len > SCOUTFS_BTREE_MAX_VAL_LEN || (bt->level > 0 && len != PARENT_VAL_LEN))
			return corrupt(bl->blkno, "bad value length");
		if (len && (off < vs || off + len > BLOCK_SIZE || (off & 7)))
			return corrupt(bl->blkno, "value outside the value area");
		/* searches and the range math of walks rely on sorted keys */
		if (i > 0 && key_compare(&bt->items[i - 1].key, &bt->items[i].key) >= 0)
			return corrupt(bl->blkno, "keys out of order");
		sum += ALIGN8(len);
	}
	/* compaction repacks every value into the value area: they must fit it */
	if (sum != val_bytes(bt))
		return corrupt(bl->blkno, "value bytes don't match the items");
	return 0;
}

static void init_block(struct scoutfs_btree_block *bt, u8 level)
{
	set_nr_items(bt, 0);
	set_val_start(bt, BLOCK_SIZE);
	bt->val_bytes = 0;
	bt->level = level;
	memset(bt->__pad, 0, sizeof(bt->__pad));
}

/* index of the first item with key >= key; *found if it is equal */
static unsigned int find_pos(const struct scoutfs_btree_block *bt, const struct scoutfs_key *key,
			     bool *found)
{
	unsigned int lo = 0;
	unsigned int hi = nr_items(bt);
	unsigned int mid;
	int c;

	*found = false;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = key_compare(&bt->items[mid].key, key);
		if (c < 0) {
			lo = mid + 1;
		} else if (c > 0) {
			hi = mid;
		} else {
			*found = true;
			return mid;
		}
	}
	return lo;
}

/* repack every value against the end of the block, removing holes */
static void compact_values(struct scoutfs_btree_block *bt)
{
	static __thread char tmp[BLOCK_SIZE];
	unsigned int nr = nr_items(bt);
	unsigned int end = BLOCK_SIZE;
	unsigned int i, len, off;

	counter_inc(btree_compact);
	memcpy(tmp, bt, BLOCK_SIZE);
	for (i = 0; i < nr; i++) {
		len = item_val_len(bt, i);
		if (len == 0) {
			bt->items[i].val_off = 0;
			continue;
		}
		off = le16_to_cpu(bt->items[i].val_off);
		end -= ALIGN8(len);
		memcpy((char *)bt + end, tmp + off, ALIGN8(len));
		bt->items[i].val_off = cpu_to_le16((u16)end);
	}
	set_val_start(bt, end);
	bt->val_bytes = cpu_to_le32(BLOCK_SIZE - end);
	/* keep the freed space zeroed so blocks don't carry stale bytes */
	memset((char *)bt + HDR_SIZE + nr * ITEM_SIZE, 0, end - (HDR_SIZE + nr * ITEM_SIZE));
}

/*
 * Take room for a value of len bytes, leaving room for extra more item headers; the caller
 * checked free_bytes().  Returns the value's offset.
 */
static unsigned int alloc_val(struct scoutfs_btree_block *bt, unsigned int len,
			      unsigned int extra_headers)
{
	unsigned int need = ALIGN8(len);
	unsigned int vs;

	/* even a value-less item needs room for its header between the headers and values */
	if (gap(bt) < need + extra_headers * ITEM_SIZE)
		compact_values(bt);
	if (len == 0)
		return 0;
	vs = val_start(bt) - need;
	set_val_start(bt, vs);
	add_val_bytes(bt, (int)need);
	return vs;
}

static void free_val(struct scoutfs_btree_block *bt, unsigned int i)
{
	unsigned int len = item_val_len(bt, i);

	if (len) {
		memset(item_val(bt, i), 0, ALIGN8(len));
		add_val_bytes(bt, -(int)ALIGN8(len));
	}
	bt->items[i].val_off = 0;
	bt->items[i].val_len = 0;
}

static bool leaf_has_room(const struct scoutfs_btree_block *bt, unsigned int val_len)
{
	return free_bytes(bt) >= item_bytes(val_len);
}

/* insert a new item at pos; the caller made sure it fits */
static void insert_at(struct scoutfs_btree_block *bt, unsigned int pos,
		      const struct scoutfs_key *key, u64 seq, u8 flags, const void *val,
		      unsigned int val_len)
{
	unsigned int nr = nr_items(bt);
	struct scoutfs_btree_item *item;
	unsigned int off;

	off = alloc_val(bt, val_len, 1);
	memmove(&bt->items[pos + 1], &bt->items[pos], (nr - pos) * ITEM_SIZE);
	set_nr_items(bt, nr + 1);
	item = &bt->items[pos];
	memset(item, 0, sizeof(*item));
	item->key = *key;
	item->seq = cpu_to_le64(seq);
	item->flags = flags;
	item->val_off = cpu_to_le16((u16)off);
	item->val_len = cpu_to_le16((u16)val_len);
	if (val_len)
		memcpy((char *)bt + off, val, val_len);
}

static void delete_at(struct scoutfs_btree_block *bt, unsigned int pos)
{
	unsigned int nr = nr_items(bt);

	free_val(bt, pos);
	memmove(&bt->items[pos], &bt->items[pos + 1], (nr - pos - 1) * ITEM_SIZE);
	memset(&bt->items[nr - 1], 0, ITEM_SIZE);
	set_nr_items(bt, nr - 1);
}

/* replace the value of item pos; the caller made sure it fits */
static void update_at(struct scoutfs_btree_block *bt, unsigned int pos, u64 seq, u8 flags,
		      const void *val, unsigned int val_len)
{
	unsigned int old_len = item_val_len(bt, pos);
	unsigned int off;

	if (val_len && ALIGN8(val_len) == ALIGN8(old_len)) {
		off = le16_to_cpu(bt->items[pos].val_off);
	} else {
		free_val(bt, pos);
		off = alloc_val(bt, val_len, 0);
	}
	if (val_len) {
		memcpy((char *)bt + off, val, val_len);
		memset((char *)bt + off + val_len, 0, ALIGN8(val_len) - val_len);
	}
	bt->items[pos].val_off = cpu_to_le16((u16)off);
	bt->items[pos].val_len = cpu_to_le16((u16)val_len);
	bt->items[pos].seq = cpu_to_le64(seq);
	bt->items[pos].flags = flags;
}

/* can item pos take a new value of val_len bytes? */
static bool update_fits(const struct scoutfs_btree_block *bt, unsigned int pos,
			unsigned int val_len)
{
	unsigned int old = ALIGN8(item_val_len(bt, pos));

	return ALIGN8(val_len) <= old || free_bytes(bt) >= ALIGN8(val_len) - old;
}

/* move count items starting at pos of src to the end (or start) of dst */
static void move_items(struct scoutfs_btree_block *dst, struct scoutfs_btree_block *src,
		       unsigned int pos, unsigned int count, bool to_end)
{
	unsigned int dpos = to_end ? nr_items(dst) : 0;
	unsigned int i;

	for (i = 0; i < count; i++) {
		struct scoutfs_btree_item *it = &src->items[pos + i];

		insert_at(dst, dpos + i, &it->key, le64_to_cpu(it->seq), it->flags,
			  item_val(src, pos + i), item_val_len(src, pos + i));
	}
	for (i = 0; i < count; i++)
		delete_at(src, pos);
}

/* ---- reading ---- */

void btree_iref_put(struct btree_item_ref *iref)
{
	if (iref->bl) {
		block_put(iref->bc, iref->bl);
		iref->bl = NULL;
	}
}

static void fill_iref(struct btree_item_ref *iref, struct block_cache *bc, struct block *bl,
		      unsigned int i)
{
	struct scoutfs_btree_block *bt = bt_of(bl);

	iref->key = bt->items[i].key;
	iref->seq = le64_to_cpu(bt->items[i].seq);
	iref->flags = bt->items[i].flags;
	iref->val_len = item_val_len(bt, i);
	iref->val = iref->val_len ? item_val(bt, i) : NULL;
	iref->bc = bc;
	iref->bl = bl;
}

/*
 * Walk down to the leaf that covers key without changing anything.  Returns the leaf (with
 * a reference) and the range of keys it covers, or -ENOENT for an empty tree.
 */
static int walk_read(struct block_cache *bc, const struct scoutfs_btree_root *root,
		     const struct scoutfs_key *key, struct block **leaf, struct scoutfs_key *start,
		     struct scoutfs_key *end)
{
	struct scoutfs_block_ref ref = root->ref;
	struct scoutfs_btree_block *bt;
	struct block *bl;
	unsigned int pos;
	int level;
	bool found;
	int err;

	key_set_zeros(start);
	key_set_ones(end);
	if (root->height == 0)
		return -ENOENT;
	if (root->height > SCOUTFS_BTREE_MAX_HEIGHT)
		return corrupt(le64_to_cpu(root->ref.blkno), "root height too large");

	for (level = root->height - 1;; level--) {
		err = block_read_ref(bc, &ref, SCOUTFS_BLOCK_MAGIC_BTREE, &bl);
		if (err < 0)
			return err;
		err = check_block(bl, level);
		if (err < 0) {
			block_put(bc, bl);
			return err;
		}
		if (level == 0) {
			*leaf = bl;
			return 0;
		}
		bt = bt_of(bl);
		pos = find_pos(bt, key, &found);
		if (pos == nr_items(bt)) {
			block_put(bc, bl);
			return corrupt(bl->blkno, "no child covers the key");
		}
		if (pos > 0) {
			*start = bt->items[pos - 1].key;
			key_inc(start);
		}
		*end = bt->items[pos].key;
		ref = *child_ref(bt, pos);
		block_put(bc, bl);
	}
}

int btree_lookup(struct block_cache *bc, const struct scoutfs_btree_root *root,
		 const struct scoutfs_key *key, struct btree_item_ref *iref)
{
	struct scoutfs_key start, end;
	struct block *bl;
	unsigned int pos;
	bool found;
	int err;

	iref->bl = NULL;
	err = walk_read(bc, root, key, &bl, &start, &end);
	if (err < 0)
		return err;
	pos = find_pos(bt_of(bl), key, &found);
	if (!found) {
		block_put(bc, bl);
		return -ENOENT;
	}
	fill_iref(iref, bc, bl, pos);
	return 0;
}

int btree_next(struct block_cache *bc, const struct scoutfs_btree_root *root,
	       const struct scoutfs_key *key, struct btree_item_ref *iref)
{
	struct scoutfs_key pos_key = *key;
	struct scoutfs_key start, end;
	struct block *bl;
	unsigned int pos;
	bool found;
	int err;

	iref->bl = NULL;
	for (;;) {
		err = walk_read(bc, root, &pos_key, &bl, &start, &end);
		if (err < 0)
			return err;
		pos = find_pos(bt_of(bl), &pos_key, &found);
		if (pos < nr_items(bt_of(bl))) {
			fill_iref(iref, bc, bl, pos);
			return 0;
		}
		block_put(bc, bl);
		if (key_is_ones(&end))
			return -ENOENT;
		pos_key = end;
		key_inc(&pos_key);
	}
}

int btree_prev(struct block_cache *bc, const struct scoutfs_btree_root *root,
	       const struct scoutfs_key *key, struct btree_item_ref *iref)
{
	struct scoutfs_key pos_key = *key;
	struct scoutfs_key start, end;
	struct block *bl;
	unsigned int pos;
	bool found;
	int err;

	iref->bl = NULL;
	for (;;) {
		err = walk_read(bc, root, &pos_key, &bl, &start, &end);
		if (err < 0)
			return err;
		pos = find_pos(bt_of(bl), &pos_key, &found);
		if (found) {
			fill_iref(iref, bc, bl, pos);
			return 0;
		}
		if (pos > 0) {
			fill_iref(iref, bc, bl, pos - 1);
			return 0;
		}
		block_put(bc, bl);
		if (key_is_zeros(&start))
			return -ENOENT;
		pos_key = start;
		key_dec(&pos_key);
	}
}

int btree_read_items(struct block_cache *bc, const struct scoutfs_btree_root *root,
		     const struct scoutfs_key *key, struct scoutfs_key *start,
		     struct scoutfs_key *end, btree_item_cb cb, void *arg)
{
	struct scoutfs_key ls, le;
	struct scoutfs_btree_block *bt;
	struct block *bl;
	unsigned int pos, nr;
	bool found;
	int err;

	counter_inc(btree_read_items);
	err = walk_read(bc, root, key, &bl, &ls, &le);
	if (err == -ENOENT)
		return 0;
	if (err < 0)
		return err;

	if (key_compare(&ls, start) > 0)
		*start = ls;
	if (key_compare(&le, end) < 0)
		*end = le;

	bt = bt_of(bl);
	nr = nr_items(bt);
	for (pos = find_pos(bt, start, &found); pos < nr; pos++) {
		if (key_compare(&bt->items[pos].key, end) > 0)
			break;
		err = cb(&bt->items[pos].key, le64_to_cpu(bt->items[pos].seq), bt->items[pos].flags,
			 item_val_len(bt, pos) ? item_val(bt, pos) : NULL, item_val_len(bt, pos),
			 arg);
		if (err)
			break;
	}
	block_put(bc, bl);
	return err;
}

/* ---- modifying walks ---- */

enum walk_flags {
	WALK_INSERT = 1 << 0, /* make room for an item of val_len bytes */
	WALK_DELETE = 1 << 1, /* join underfull blocks on the way down */
};

static int dirty_block(const struct btree_txn *txn, struct scoutfs_block_ref *ref,
		       struct block **bl)
{
	return block_dirty_ref(txn->wri, txn->alloc, ref, SCOUTFS_BLOCK_MAGIC_BTREE, bl);
}

static int new_block(const struct btree_txn *txn, u8 level, struct scoutfs_block_ref *ref,
		     struct block **bl)
{
	int err;

	memset(ref, 0, sizeof(*ref));
	err = dirty_block(txn, ref, bl);
	if (err == 0)
		init_block(bt_of(*bl), level);
	return err;
}

static int free_block(const struct btree_txn *txn, u64 blkno)
{
	return txn->alloc->free_meta(txn->alloc->arg, blkno);
}

/* grow the tree by a level: a new root parent with one all-ones item for the old root */
static int grow_root(const struct btree_txn *txn, struct scoutfs_btree_root *root)
{
	struct scoutfs_block_ref old = root->ref;
	struct scoutfs_key ones = key_ones();
	struct block *bl;
	int err;

	if (root->height >= SCOUTFS_BTREE_MAX_HEIGHT)
		return -EFBIG;
	err = new_block(txn, root->height, &root->ref, &bl);
	if (err < 0)
		return err;
	insert_at(bt_of(bl), 0, &ones, 0, 0, &old, sizeof(old));
	root->height++;
	block_put(block_writer_cache(txn->wri), bl);
	counter_inc(btree_root_grow);
	return 0;
}

/*
 * Split a full child: its low half moves to a new left sibling, whose last key becomes its
 * parent key.  The parent has room (it was split first if it had none).
 */
static int split_child(const struct btree_txn *txn, struct block *parent, unsigned int par_pos,
		       struct block *child)
{
	struct scoutfs_btree_block *cbt = bt_of(child);
	struct scoutfs_btree_block *pbt = bt_of(parent);
	struct scoutfs_btree_block *lbt;
	struct scoutfs_block_ref lref;
	unsigned int half = used_bytes(cbt) / 2;
	unsigned int moved = 0;
	unsigned int count = 0;
	struct block *left;
	int err;

	err = new_block(txn, cbt->level, &lref, &left);
	if (err < 0)
		return err;
	lbt = bt_of(left);

	while (count < nr_items(cbt) - 1 && moved < half)
		moved += item_bytes(item_val_len(cbt, count++));
	move_items(lbt, cbt, 0, count, true);

	insert_at(pbt, par_pos, &lbt->items[nr_items(lbt) - 1].key, 0, 0, &lref, sizeof(lref));
	block_put(block_writer_cache(txn->wri), left);
	counter_inc(btree_split);
	return 0;
}

/*
 * Join an underfull child with a sibling: take all of a small sibling (freeing it), or a
 * chunk of a larger one.  Items always move into the right block of the pair when merging
 * whole, so the surviving block keeps its parent key.
 */
static int join_child(const struct btree_txn *txn, struct block *parent, unsigned int par_pos,
		      struct block *child)
{
	struct block_cache *bc = block_writer_cache(txn->wri);
	struct scoutfs_btree_block *pbt = bt_of(parent);
	struct scoutfs_btree_block *cbt = bt_of(child);
	struct scoutfs_btree_block *sbt;
	struct block *sib;
	unsigned int sib_pos;
	unsigned int count, moved;
	bool sib_left;
	int err;

	if (nr_items(pbt) < 2)
		return 0;
	sib_left = par_pos > 0;
	sib_pos = sib_left ? par_pos - 1 : par_pos + 1;

	err = dirty_block(txn, child_ref(pbt, sib_pos), &sib);
	if (err < 0)
		return err;
	err = check_block(sib, cbt->level);
	if (err < 0)
		goto out;
	sbt = bt_of(sib);

	if (used_bytes(sbt) <= JOIN_LOW * 2 && used_bytes(sbt) + used_bytes(cbt) <= USABLE) {
		/* merge the left block of the pair into the right one */
		struct scoutfs_btree_block *lbt = sib_left ? sbt : cbt;
		struct scoutfs_btree_block *rbt = sib_left ? cbt : sbt;
		struct block *lbl = sib_left ? sib : child;
		unsigned int lpos = sib_left ? sib_pos : par_pos;

		move_items(rbt, lbt, 0, nr_items(lbt), false);
		delete_at(pbt, lpos);
		err = free_block(txn, lbl->blkno);
		counter_inc(btree_merge_blocks);
	} else if (sib_left) {
		/* take the left sibling's highest items */
		moved = 0;
		count = 0;
		while (count < nr_items(sbt) - 1 && moved < JOIN_LOW)
			moved += item_bytes(item_val_len(sbt, nr_items(sbt) - 1 - count++));
		move_items(cbt, sbt, nr_items(sbt) - count, count, false);
		pbt->items[sib_pos].key = sbt->items[nr_items(sbt) - 1].key;
	} else {
		/* take the right sibling's lowest items */
		moved = 0;
		count = 0;
		while (count < nr_items(sbt) - 1 && moved < JOIN_LOW)
			moved += item_bytes(item_val_len(sbt, count++));
		move_items(cbt, sbt, 0, count, true);
		pbt->items[par_pos].key = cbt->items[nr_items(cbt) - 1].key;
	}
	counter_inc(btree_join);
out:
	block_put(bc, sib);
	return err;
}

static bool child_needs_split(const struct scoutfs_btree_block *bt, unsigned int val_len)
{
	if (bt->level == 0)
		return !leaf_has_room(bt, val_len);
	return free_bytes(bt) < item_bytes(PARENT_VAL_LEN);
}

/*
 * Walk down to the leaf for key, dirtying every block, splitting (insert) or joining
 * (delete) as needed.  Returns the dirty leaf and the range of keys it covers.
 */
static int walk_dirty(const struct btree_txn *txn, struct scoutfs_btree_root *root,
		      const struct scoutfs_key *key, int flags, unsigned int val_len,
		      struct block **leaf, struct scoutfs_key *start, struct scoutfs_key *end)
{
	struct block_cache *bc = block_writer_cache(txn->wri);
	struct scoutfs_block_ref *ref;
	struct scoutfs_btree_block *bt;
	struct block *parent;
	struct block *bl;
	unsigned int par_pos = 0;
	unsigned int pos;
	int level;
	bool found;
	int err;

restart:
	parent = NULL;
	key_set_zeros(start);
	key_set_ones(end);

	if (root->height == 0) {
		if (!(flags & WALK_INSERT))
			return -ENOENT;
		err = new_block(txn, 0, &root->ref, &bl);
		if (err < 0)
			return err;
		root->height = 1;
		*leaf = bl;
		return 0;
	}
	if (root->height > SCOUTFS_BTREE_MAX_HEIGHT)
		return corrupt(le64_to_cpu(root->ref.blkno), "root height too large");

	ref = &root->ref;
	for (level = root->height - 1;; level--) {
		err = dirty_block(txn, ref, &bl);
		if (err < 0)
			goto out;
		err = check_block(bl, level);
		if (err < 0) {
			block_put(bc, bl);
			goto out;
		}
		bt = bt_of(bl);

		if ((flags & WALK_INSERT) && child_needs_split(bt, val_len)) {
			if (!parent) {
				block_put(bc, bl);
				err = grow_root(txn, root);
				if (err < 0)
					return err;
				goto restart;
			}
			err = split_child(txn, parent, par_pos, bl);
			block_put(bc, bl);
			block_put(bc, parent);
			if (err < 0)
				return err;
			goto restart;
		}

		if ((flags & WALK_DELETE) && parent && used_bytes(bt) < JOIN_LOW) {
			err = join_child(txn, parent, par_pos, bl);
			block_put(bc, bl);
			block_put(bc, parent);
			if (err < 0)
				return err;
			goto restart;
		}

		if ((flags & WALK_DELETE) && !parent && level > 0 && nr_items(bt) == 1) {
			/* a root parent with one child: the child becomes the root */
			root->ref = *child_ref(bt, 0);
			root->height--;
			err = free_block(txn, bl->blkno);
			block_put(bc, bl);
			if (err < 0)
				return err;
			counter_inc(btree_root_shrink);
			goto restart;
		}

		if (level == 0) {
			block_put(bc, parent);
			*leaf = bl;
			return 0;
		}

		pos = find_pos(bt, key, &found);
		if (pos == nr_items(bt)) {
			block_put(bc, bl);
			err = corrupt(bl->blkno, "no child covers the key");
			goto out;
		}
		if (pos > 0) {
			*start = bt->items[pos - 1].key;
			key_inc(start);
		}
		*end = bt->items[pos].key;

		block_put(bc, parent);
		parent = bl;
		par_pos = pos;
		ref = child_ref(bt, pos);
	}
out:
	block_put(bc, parent);
	return err;
}

/* ---- item modification ---- */

enum modify_op {
	MOD_INSERT,
	MOD_UPDATE,
	MOD_FORCE,
};

static int modify(const struct btree_txn *txn, struct scoutfs_btree_root *root,
		  const struct scoutfs_key *key, const void *val, unsigned int val_len,
		  enum modify_op op)
{
	struct block_cache *bc = block_writer_cache(txn->wri);
	struct scoutfs_key start, end;
	struct scoutfs_btree_block *bt;
	struct block *bl;
	unsigned int pos;
	bool found;
	int err;

	if (val_len > SCOUTFS_BTREE_MAX_VAL_LEN)
		return -EINVAL;
	err = walk_dirty(txn, root, key, op == MOD_UPDATE ? 0 : WALK_INSERT, val_len, &bl, &start,
			 &end);
	if (err < 0)
		return (err == -ENOENT && op == MOD_UPDATE) ? -ENOENT : err;
	bt = bt_of(bl);
	pos = find_pos(bt, key, &found);
	if (found && op == MOD_INSERT) {
		err = -EEXIST;
	} else if (!found && op == MOD_UPDATE) {
		err = -ENOENT;
	} else if (found) {
		if (update_fits(bt, pos, val_len))
			update_at(bt, pos, 0, 0, val, val_len);
		else
			err = -ENOSPC; /* only an update without a split walk can get here */
	} else {
		insert_at(bt, pos, key, 0, 0, val, val_len);
	}
	block_put(bc, bl);

	if (err == -ENOSPC && op == MOD_UPDATE)
		return modify(txn, root, key, val, val_len, MOD_FORCE);
	return err;
}

int btree_insert(const struct btree_txn *txn, struct scoutfs_btree_root *root,
		 const struct scoutfs_key *key, const void *val, unsigned int val_len)
{
	return modify(txn, root, key, val, val_len, MOD_INSERT);
}

int btree_update(const struct btree_txn *txn, struct scoutfs_btree_root *root,
		 const struct scoutfs_key *key, const void *val, unsigned int val_len)
{
	return modify(txn, root, key, val, val_len, MOD_UPDATE);
}

int btree_force(const struct btree_txn *txn, struct scoutfs_btree_root *root,
		const struct scoutfs_key *key, const void *val, unsigned int val_len)
{
	return modify(txn, root, key, val, val_len, MOD_FORCE);
}

int btree_delete(const struct btree_txn *txn, struct scoutfs_btree_root *root,
		 const struct scoutfs_key *key)
{
	struct block_cache *bc = block_writer_cache(txn->wri);
	struct scoutfs_key start, end;
	struct scoutfs_btree_block *bt;
	struct block *bl;
	unsigned int pos;
	bool found;
	int err;

	err = walk_dirty(txn, root, key, WALK_DELETE, 0, &bl, &start, &end);
	if (err < 0)
		return err;
	bt = bt_of(bl);
	pos = find_pos(bt, key, &found);
	if (!found) {
		block_put(bc, bl);
		return -ENOENT;
	}
	delete_at(bt, pos);
	if (nr_items(bt) == 0 && root->height == 1) {
		/* the last item of the tree: the tree becomes empty */
		err = free_block(txn, bl->blkno);
		memset(root, 0, sizeof(*root));
	}
	block_put(bc, bl);
	return err;
}

int btree_dirty(const struct btree_txn *txn, struct scoutfs_btree_root *root,
		const struct scoutfs_key *key)
{
	struct block_cache *bc = block_writer_cache(txn->wri);
	struct scoutfs_key start, end;
	struct block *bl;
	bool found;
	int err;

	err = walk_dirty(txn, root, key, 0, 0, &bl, &start, &end);
	if (err < 0)
		return err;
	find_pos(bt_of(bl), key, &found);
	block_put(bc, bl);
	return found ? 0 : -ENOENT;
}

/*
 * Apply one list item to the leaf that covers it.  Returns 0 if applied, 1 if the leaf
 * lacks room (the caller walks again with a split).
 */
static int apply_list_item(struct scoutfs_btree_block *bt, const struct btree_item_list *li,
			   btree_delta_fn delta_fn)
{
	u8 combined[SCOUTFS_BTREE_MAX_VAL_LEN];
	const void *val = li->val;
	unsigned int val_len = li->val_len;
	unsigned int pos;
	bool found;
	int ret;

	pos = find_pos(bt, &li->key, &found);
	if (found && delta_fn && (bt->items[pos].flags & SCOUTFS_ITEM_FLAG_DELTA) &&
	    (li->flags & SCOUTFS_ITEM_FLAG_DELTA)) {
		ret = delta_fn(item_val(bt, pos), item_val_len(bt, pos), li->val, li->val_len,
			       combined, &val_len);
		if (ret < 0)
			return ret;
		if (ret == 1) {
			delete_at(bt, pos);
			return 0;
		}
		val = combined;
	}
	if (found) {
		if (!update_fits(bt, pos, val_len))
			return 1;
		update_at(bt, pos, li->seq, li->flags, val, val_len);
	} else {
		if (!leaf_has_room(bt, val_len))
			return 1;
		insert_at(bt, pos, &li->key, li->seq, li->flags, val, val_len);
	}
	return 0;
}

int btree_insert_list(const struct btree_txn *txn, struct scoutfs_btree_root *root,
		      const struct btree_item_list *list, btree_delta_fn delta_fn)
{
	struct block_cache *bc = block_writer_cache(txn->wri);
	const struct btree_item_list *li = list;
	const struct btree_item_list *full = NULL;
	struct scoutfs_key start, end;
	struct block *bl;
	unsigned int room;
	int ret;

	while (li) {
		if (li->val_len > SCOUTFS_BTREE_MAX_VAL_LEN)
			return -EINVAL;
		/*
		 * Walk with room for the item; if it didn't fit the leaf it was found in (a
		 * delta combination can be larger than the list item), walk again with room
		 * for the largest value so the leaf is split.
		 */
		room = li == full ? SCOUTFS_BTREE_MAX_VAL_LEN : li->val_len;
		ret = walk_dirty(txn, root, &li->key, WALK_INSERT, room, &bl, &start, &end);
		if (ret < 0)
			return ret;
		/* every following item in this leaf's range shares the walk */
		do {
			ret = apply_list_item(bt_of(bl), li, delta_fn);
			if (ret != 0)
				break;
			counter_inc(btree_insert_list_items);
			li = li->next;
		} while (li && key_compare(&li->key, &end) <= 0);
		block_put(bc, bl);
		if (ret < 0)
			return ret;
		if (ret == 1) {
			/* room for the largest value always fits: never a second retry */
			if (li == full)
				return -EIO;
			full = li;
		}
	}
	return 0;
}

/* ---- freeing whole trees ---- */

int btree_free_blocks(const struct btree_txn *txn, const struct scoutfs_btree_root *root,
		      struct scoutfs_key *cursor, u64 max_blocks)
{
	struct block_cache *bc = block_writer_cache(txn->wri);
	struct scoutfs_key ends[SCOUTFS_BTREE_MAX_HEIGHT];
	u64 blknos[SCOUTFS_BTREE_MAX_HEIGHT];
	bool last_child[SCOUTFS_BTREE_MAX_HEIGHT];
	struct scoutfs_block_ref ref;
	struct scoutfs_btree_block *bt;
	struct scoutfs_key end;
	struct block *bl;
	unsigned int pos, nr;
	u64 freed = 0;
	int done_parents;
	int level, l;
	bool found;
	int err;

	if (key_is_ones(cursor))
		return 0;
	if (root->height == 0) {
		key_set_ones(cursor);
		return 0;
	}
	if (root->height > SCOUTFS_BTREE_MAX_HEIGHT)
		return corrupt(le64_to_cpu(root->ref.blkno), "root height too large");
	if (root->height == 1) {
		err = free_block(txn, le64_to_cpu(root->ref.blkno));
		if (err < 0)
			return err;
		key_set_ones(cursor);
		return 1;
	}

	while (freed < max_blocks && !key_is_ones(cursor)) {
		/* walk down to the last parent above the leaves that covers the cursor */
		ref = root->ref;
		key_set_ones(&end);
		for (level = root->height - 1; level >= 1; level--) {
			err = block_read_ref(bc, &ref, SCOUTFS_BLOCK_MAGIC_BTREE, &bl);
			if (err < 0)
				return err;
			err = check_block(bl, level);
			if (err < 0) {
				block_put(bc, bl);
				return err;
			}
			blknos[level] = bl->blkno;
			ends[level] = end;
			if (level == 1)
				break;
			bt = bt_of(bl);
			pos = find_pos(bt, cursor, &found);
			if (pos == nr_items(bt)) {
				block_put(bc, bl);
				return corrupt(bl->blkno, "no child covers the cursor");
			}
			/* did the walk take this block's last child? */
			last_child[level] = pos + 1 == nr_items(bt);
			end = bt->items[pos].key;
			ref = *child_ref(bt, pos);
			block_put(bc, bl);
		}

		/*
		 * Parents are freed after their last leaf (the cursor can't record "leaves done,
		 * parent not"), together with every ancestor whose last child that finishes.
		 * Stop before a last leaf whose parents would overrun the budget, unless nothing
		 * was freed yet: a call always makes progress.
		 */
		done_parents = 1;
		for (l = 2; l < root->height && last_child[l]; l++)
			done_parents++;

		/* free the leaves (by number, unread) from the cursor on */
		bt = bt_of(bl);
		nr = nr_items(bt);
		pos = find_pos(bt, cursor, &found);
		if (pos == nr && freed > 0 && freed + done_parents > max_blocks) {
			block_put(bc, bl);
			break;
		}
		for (; pos < nr; pos++) {
			if (freed > 0 &&
			    freed + (pos + 1 == nr ? 1 + done_parents : 1) > max_blocks) {
				block_put(bc, bl);
				return (int)freed;
			}
			err = free_block(txn, le64_to_cpu(child_ref(bt, pos)->blkno));
			if (err < 0) {
				block_put(bc, bl);
				return err;
			}
			freed++;
			*cursor = bt->items[pos].key;
			if (!key_is_ones(cursor))
				key_inc(cursor);
		}
		block_put(bc, bl);

		/* this parent is done, and so is every ancestor that it ended */
		for (l = 1; l <= done_parents; l++) {
			err = free_block(txn, blknos[l]);
			if (err < 0)
				return err;
			freed++;
		}
		/* continue past everything the highest freed parent covered */
		*cursor = ends[done_parents];
		if (!key_is_ones(cursor))
			key_inc(cursor);
	}
	return (int)freed;
}

/* ---- tools ---- */

static int visit_block(struct block_cache *bc, const struct scoutfs_block_ref *ref, int level,
		       const struct btree_visit_ops *ops, void *arg)
{
	struct scoutfs_btree_block *bt;
	struct block *bl = NULL;
	unsigned int i;
	int err, ret;

	err = block_read_ref(bc, ref, SCOUTFS_BLOCK_MAGIC_BTREE, &bl);
	if (err == 0)
		err = check_block(bl, level);
	if (ops->block) {
		ret = ops->block(arg, ref, level, err == 0 ? bt_of(bl) : NULL, err);
		if (ret < 0 || err < 0) {
			block_put(bc, bl);
			return ret < 0 ? ret : 0;
		}
	} else if (err < 0) {
		block_put(bc, bl);
		return err;
	}

	bt = bt_of(bl);
	for (i = 0; i < nr_items(bt); i++) {
		if (level > 0) {
			err = visit_block(bc, child_ref(bt, i), level - 1, ops, arg);
		} else if (ops->item) {
			err = ops->item(arg, &bt->items[i].key, le64_to_cpu(bt->items[i].seq),
					bt->items[i].flags,
					item_val_len(bt, i) ? item_val(bt, i) : NULL,
					item_val_len(bt, i));
		}
		if (err < 0)
			break;
	}
	block_put(bc, bl);
	return err;
}

int btree_visit(struct block_cache *bc, const struct scoutfs_btree_root *root,
		const struct btree_visit_ops *ops, void *arg)
{
	if (root->height == 0)
		return 0;
	if (root->height > SCOUTFS_BTREE_MAX_HEIGHT)
		return corrupt(le64_to_cpu(root->ref.blkno), "root height too large");
	return visit_block(bc, &root->ref, root->height - 1, ops, arg);
}

static int count_blocks(struct block_cache *bc, const struct scoutfs_block_ref *ref, int level,
			u64 *nr)
{
	struct scoutfs_btree_block *bt;
	struct block *bl = NULL;
	unsigned int i;
	int err;

	err = block_read_ref(bc, ref, SCOUTFS_BLOCK_MAGIC_BTREE, &bl);
	if (err == 0)
		err = check_block(bl, level);
	if (err < 0) {
		block_put(bc, bl);
		return err;
	}
	bt = bt_of(bl);
	(*nr)++;
	if (level == 1)
		*nr += nr_items(bt);
	for (i = 0; level > 1 && i < nr_items(bt) && err == 0; i++)
		err = count_blocks(bc, child_ref(bt, i), level - 1, nr);
	block_put(bc, bl);
	return err;
}

int btree_count_blocks(struct block_cache *bc, const struct scoutfs_btree_root *root, u64 *nr)
{
	*nr = 0;
	if (root->height == 0)
		return 0;
	if (root->height > SCOUTFS_BTREE_MAX_HEIGHT)
		return corrupt(le64_to_cpu(root->ref.blkno), "root height too large");
	if (root->height == 1) {
		*nr = 1;
		return 0;
	}
	return count_blocks(bc, &root->ref, root->height - 1, nr);
}

int btree_block_verify(const struct scoutfs_btree_block *bt, char *why, size_t why_len)
{
	unsigned int nr = nr_items(bt);
	unsigned int vs = val_start(bt);
	unsigned int i, off, len, sum = 0;

#define VERIFY_FAIL(...)                                                                   \
	do {                                                                               \
		snprintf(why, why_len, __VA_ARGS__);                                       \
		return -EIO;                                                               \
	} while (0)

	if (bt->level >= SCOUTFS_BTREE_MAX_HEIGHT)
		VERIFY_FAIL("level %u too large", bt->level);
	if (HDR_SIZE + nr * ITEM_SIZE > vs)
		VERIFY_FAIL("%u item headers overlap values at %u", nr, vs);
	if (bt->level > 0 && nr == 0)
		VERIFY_FAIL("parent block has no items");
	for (i = 0; i < nr; i++) {
		off = le16_to_cpu(bt->items[i].val_off);
		len = item_val_len(bt, i);
		if (len > SCOUTFS_BTREE_MAX_VAL_LEN)
			VERIFY_FAIL("item %u value length %u too large", i, len);
		if (bt->level > 0 && len != PARENT_VAL_LEN)
			VERIFY_FAIL("parent item %u value length %u", i, len);
		if (len && (off < vs || off + len > BLOCK_SIZE || (off & 7)))
			VERIFY_FAIL("item %u value at %u+%u outside the value area", i, off, len);
		if (i > 0 && key_compare(&bt->items[i - 1].key, &bt->items[i].key) >= 0)
			VERIFY_FAIL("item %u key out of order", i);
		if (bt->level > 0 && (bt->items[i].seq || bt->items[i].flags))
			VERIFY_FAIL("parent item %u has a seq or flags", i);
		sum += ALIGN8(len);
	}
	if (sum != val_bytes(bt))
		VERIFY_FAIL("value bytes %u, items use %u", val_bytes(bt), sum);
	return 0;
#undef VERIFY_FAIL
}
