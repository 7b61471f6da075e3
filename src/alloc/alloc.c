/*
 * alloc.c: free-extent btrees, block lists, and the transaction metadata allocator.
 *
 * Free space lives in extent btrees.  Each free extent is two value-less items: a BLKNO
 * item keyed by the extent's last block (finds neighbours to merge on free, and the extent
 * holding a given block) and an ORDER item keyed by the complement of its size class, so
 * that iterating the ORDER zone from the start yields the largest extents first.
 *
 * Modifying an extent btree needs new metadata blocks, and those blocks would come from an
 * extent btree: a recursion.  Transactions break it with lists.  The server fills a list of
 * free block numbers for each transaction; copy-on-write pops numbers from that "avail"
 * list and appends freed numbers to a "freed" list.  The list blocks themselves are dirtied
 * into the first two numbers of the avail list the first time the transaction allocates
 * or frees, after which every allocation and free is a simple array operation on two dirty
 * blocks.  The server later drains freed lists back into an extent tree in its own
 * commits, which is what guarantees a freed block is not reused before the commit that
 * freed it is durable.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/alloc.h"
#include "format/key.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(alloc_alloc_meta);
COUNTER_DEFINE(alloc_free_meta);
COUNTER_DEFINE(alloc_ext_alloc);
COUNTER_DEFINE(alloc_ext_insert);
COUNTER_DEFINE(alloc_fill_list);
COUNTER_DEFINE(alloc_empty_list);
COUNTER_DEFINE(alloc_splice_list);
COUNTER_DEFINE(alloc_new_freed_block);

#define LIST_MAX ((u32)SCOUTFS_ALLOC_LIST_MAX_BLOCKS)

/* ---- extent items ---- */

int alloc_ext_order(u64 len)
{
	int order = 0;

	while (len >= 8) {
		len >>= 3;
		order++;
	}
	return order;
}

static struct scoutfs_key blkno_key(u64 end, u64 len)
{
	return key_make(SCOUTFS_FREE_EXTENT_BLKNO_ZONE, end, 0, len, 0, 0);
}

static struct scoutfs_key order_key(u64 end, u64 len)
{
	return key_make(SCOUTFS_FREE_EXTENT_ORDER_ZONE, ~(u64)alloc_ext_order(len), 0, end, len, 0);
}

static int ext_add(const struct btree_txn *txn, struct scoutfs_alloc_root *root, u64 start,
		   u64 len)
{
	u64 end = start + len - 1;
	struct scoutfs_key key;
	int err;

	key = blkno_key(end, len);
	err = btree_insert(txn, &root->root, &key, NULL, 0);
	if (err < 0)
		return err == -EEXIST ? -EINVAL : err;
	key = order_key(end, len);
	err = btree_insert(txn, &root->root, &key, NULL, 0);
	if (err < 0) {
		key = blkno_key(end, len);
		btree_delete(txn, &root->root, &key);
		return err == -EEXIST ? -EINVAL : err;
	}
	le64_add_cpu(&root->total_len, (s64)len);
	return 0;
}

static int ext_del(const struct btree_txn *txn, struct scoutfs_alloc_root *root, u64 start,
		   u64 len)
{
	u64 end = start + len - 1;
	struct scoutfs_key key;
	int err;

	key = blkno_key(end, len);
	err = btree_delete(txn, &root->root, &key);
	if (err < 0)
		return err;
	key = order_key(end, len);
	err = btree_delete(txn, &root->root, &key);
	if (err < 0)
		return err;
	le64_add_cpu(&root->total_len, -(s64)len);
	return 0;
}

/* decode a BLKNO item found by a search; -ENOENT if the search left the zone */
static int ext_from_blkno_iref(const struct btree_item_ref *iref, struct alloc_extent *ext)
{
	if (iref->key.sk_zone != SCOUTFS_FREE_EXTENT_BLKNO_ZONE)
		return -ENOENT;
	ext->len = key_second(&iref->key);
	ext->start = key_first(&iref->key) - ext->len + 1;
	if (ext->len == 0 || ext->start > key_first(&iref->key))
		return -EIO;
	return 0;
}

/* the first free extent whose last block is >= blk */
static int ext_next(struct block_cache *bc, const struct scoutfs_alloc_root *root, u64 blk,
		    struct alloc_extent *ext)
{
	struct scoutfs_key key = blkno_key(blk, 0);
	struct btree_item_ref iref;
	int err;

	err = btree_next(bc, &root->root, &key, &iref);
	if (err < 0)
		return err;
	err = ext_from_blkno_iref(&iref, ext);
	btree_iref_put(&iref);
	return err;
}

/* the last free extent whose last block is < blk */
static int ext_prev(struct block_cache *bc, const struct scoutfs_alloc_root *root, u64 blk,
		    struct alloc_extent *ext)
{
	struct scoutfs_key key;
	struct btree_item_ref iref;
	int err;

	if (blk == 0)
		return -ENOENT;
	key = blkno_key(blk - 1, ~0ULL);
	err = btree_prev(bc, &root->root, &key, &iref);
	if (err < 0)
		return err;
	err = ext_from_blkno_iref(&iref, ext);
	btree_iref_put(&iref);
	return err;
}

int alloc_ext_next(struct block_cache *bc, const struct scoutfs_alloc_root *root, u64 start,
		   struct alloc_extent *ext)
{
	return ext_next(bc, root, start, ext);
}

static struct block_cache *txn_cache(const struct btree_txn *txn)
{
	return block_writer_cache(txn->wri);
}

/* take [start, start+take) out of the free extent ext */
static int ext_take(const struct btree_txn *txn, struct scoutfs_alloc_root *root,
		    const struct alloc_extent *ext, u64 start, u64 take)
{
	u64 ext_end = ext->start + ext->len - 1;
	int err;

	err = ext_del(txn, root, ext->start, ext->len);
	if (err < 0)
		return err;
	if (start > ext->start) {
		err = ext_add(txn, root, ext->start, start - ext->start);
		if (err < 0)
			return err;
	}
	if (start + take - 1 < ext_end)
		err = ext_add(txn, root, start + take, ext_end - (start + take - 1));
	return err;
}

int alloc_ext_alloc(const struct btree_txn *txn, struct scoutfs_alloc_root *root, u64 count,
		    struct alloc_extent *ext)
{
	struct scoutfs_key key = key_make(SCOUTFS_FREE_EXTENT_ORDER_ZONE, 0, 0, 0, 0, 0);
	struct btree_item_ref iref;
	struct alloc_extent found;
	int err;

	if (count == 0)
		return -EINVAL;
	err = btree_next(txn_cache(txn), &root->root, &key, &iref);
	if (err == -ENOENT)
		return -ENOSPC;
	if (err < 0)
		return err;
	if (iref.key.sk_zone != SCOUTFS_FREE_EXTENT_ORDER_ZONE) {
		btree_iref_put(&iref);
		return -ENOSPC;
	}
	found.len = key_third(&iref.key);
	found.start = key_second(&iref.key) - found.len + 1;
	btree_iref_put(&iref);

	ext->start = found.start;
	ext->len = min_t(u64, count, found.len);
	err = ext_take(txn, root, &found, ext->start, ext->len);
	if (err == 0)
		counter_inc(alloc_ext_alloc);
	return err;
}

int alloc_ext_alloc_goal(const struct btree_txn *txn, struct scoutfs_alloc_root *root, u64 goal,
			 u64 count, struct alloc_extent *ext)
{
	struct alloc_extent found;
	int err;

	if (count == 0)
		return -EINVAL;
	err = ext_next(txn_cache(txn), root, goal, &found);
	if (err < 0 && err != -ENOENT)
		return err;
	if (err == 0 && found.start <= goal) {
		ext->start = goal;
		ext->len = min_t(u64, count, found.start + found.len - goal);
		err = ext_take(txn, root, &found, ext->start, ext->len);
		if (err == 0)
			counter_inc(alloc_ext_alloc);
		return err;
	}
	return alloc_ext_alloc(txn, root, count, ext);
}

int alloc_ext_insert(const struct btree_txn *txn, struct scoutfs_alloc_root *root, u64 start,
		     u64 len)
{
	struct block_cache *bc = txn_cache(txn);
	struct alloc_extent left = { 0 };
	struct alloc_extent right = { 0 };
	u64 end = start + len - 1;
	u64 new_start = start;
	u64 new_end = end;
	int err;

	if (len == 0 || end < start)
		return -EINVAL;

	/* the first extent ending at or after start must begin after end */
	err = ext_next(bc, root, start, &right);
	if (err == 0) {
		if (right.start <= end)
			return -EINVAL;
		if (right.start != end + 1)
			right.len = 0;
	} else if (err != -ENOENT) {
		return err;
	} else {
		right.len = 0;
	}

	err = ext_prev(bc, root, start, &left);
	if (err == 0) {
		if (left.start + left.len != start)
			left.len = 0;
	} else if (err != -ENOENT) {
		return err;
	} else {
		left.len = 0;
	}

	if (left.len) {
		err = ext_del(txn, root, left.start, left.len);
		if (err < 0)
			return err;
		new_start = left.start;
	}
	if (right.len) {
		err = ext_del(txn, root, right.start, right.len);
		if (err < 0)
			return err;
		new_end = right.start + right.len - 1;
	}
	err = ext_add(txn, root, new_start, new_end - new_start + 1);
	if (err == 0)
		counter_inc(alloc_ext_insert);
	return err;
}

int alloc_ext_remove(const struct btree_txn *txn, struct scoutfs_alloc_root *root, u64 start,
		     u64 len)
{
	struct alloc_extent found;
	u64 end = start + len - 1;
	int err;

	if (len == 0 || end < start)
		return -EINVAL;
	err = ext_next(txn_cache(txn), root, end, &found);
	if (err < 0)
		return err;
	if (found.start > start)
		return -ENOENT;
	return ext_take(txn, root, &found, start, len);
}

int alloc_ext_move(const struct btree_txn *txn, struct scoutfs_alloc_root *dst,
		   struct scoutfs_alloc_root *src, u64 total, u64 *moved)
{
	struct alloc_extent ext;
	int err = 0;

	*moved = 0;
	while (*moved < total) {
		err = alloc_ext_alloc(txn, src, total - *moved, &ext);
		if (err < 0)
			break;
		err = alloc_ext_insert(txn, dst, ext.start, ext.len);
		if (err < 0)
			break;
		*moved += ext.len;
	}
	if (err == -ENOSPC && *moved > 0)
		err = 0;
	return err;
}

/* ---- list blocks ---- */

static struct scoutfs_alloc_list_block *lblk(struct block *bl)
{
	return bl->data;
}

static bool lblk_valid(const struct scoutfs_alloc_list_block *lb)
{
	return le32_to_cpu(lb->start) <= LIST_MAX &&
	       le32_to_cpu(lb->nr) <= LIST_MAX - le32_to_cpu(lb->start);
}

static int read_list_block(struct block_cache *bc, const struct scoutfs_block_ref *ref,
			   struct block **ret)
{
	int err;

	err = block_read_ref(bc, ref, SCOUTFS_BLOCK_MAGIC_ALLOC_LIST, ret);
	if (err == 0 && !lblk_valid(lblk(*ret))) {
		block_put(bc, *ret);
		*ret = NULL;
		log_err("alloc list block %llu has invalid start/nr",
			(unsigned long long)le64_to_cpu(ref->blkno));
		err = -EIO;
	}
	return err;
}

static void list_append(struct scoutfs_alloc_list_block *lb, u64 blkno)
{
	u32 start = le32_to_cpu(lb->start);
	u32 nr = le32_to_cpu(lb->nr);

	if (start + nr == LIST_MAX) {
		/* full at the end: slide everything down to the front */
		memmove(&lb->blknos[0], &lb->blknos[start], nr * sizeof(le64));
		start = 0;
		lb->start = 0;
	}
	lb->blknos[start + nr] = cpu_to_le64(blkno);
	lb->nr = cpu_to_le32(nr + 1);
}

static u64 list_pop(struct scoutfs_alloc_list_block *lb)
{
	u32 start = le32_to_cpu(lb->start);
	u64 blkno = le64_to_cpu(lb->blknos[start]);

	lb->start = cpu_to_le32(start + 1);
	lb->nr = cpu_to_le32(le32_to_cpu(lb->nr) - 1);
	return blkno;
}

static void head_add(struct scoutfs_alloc_list_head *lhead, s64 nr)
{
	lhead->first_nr = cpu_to_le32((u32)((s64)le32_to_cpu(lhead->first_nr) + nr));
	le64_add_cpu(&lhead->total_nr, nr);
}

/* ---- the transaction allocator ---- */

static int ba_alloc(void *arg, u64 *blkno)
{
	return alloc_meta(arg, blkno);
}

static int ba_free(void *arg, u64 blkno)
{
	return alloc_free_meta(arg, blkno);
}

void alloc_init(struct alloc *alloc, struct block_writer *wri,
		const struct scoutfs_alloc_list_head *avail,
		const struct scoutfs_alloc_list_head *freed)
{
	memset(alloc, 0, sizeof(*alloc));
	pthread_mutex_init(&alloc->mutex, NULL);
	alloc->wri = wri;
	alloc->avail = *avail;
	alloc->freed = *freed;
	alloc->ba.alloc_meta = ba_alloc;
	alloc->ba.free_meta = ba_free;
	alloc->ba.arg = alloc;
}

void alloc_finish(struct alloc *alloc, struct scoutfs_alloc_list_head *avail,
		  struct scoutfs_alloc_list_head *freed)
{
	struct block_cache *bc = block_writer_cache(alloc->wri);

	pthread_mutex_lock(&alloc->mutex);
	block_put(bc, alloc->avail_bl);
	block_put(bc, alloc->freed_bl);
	alloc->avail_bl = NULL;
	alloc->freed_bl = NULL;
	alloc->heads_dirty = false;
	if (avail)
		*avail = alloc->avail;
	if (freed)
		*freed = alloc->freed;
	pthread_mutex_unlock(&alloc->mutex);
	pthread_mutex_destroy(&alloc->mutex);
}

/*
 * The first allocation or free of a transaction dirties both list head blocks into the
 * first two numbers of the avail list.  A freed head that is mostly full starts a new head
 * block instead, so frees rarely need a new block later.  The old locations of both head
 * blocks are the transaction's first frees.
 */
static int dirty_heads(struct alloc *alloc)
{
	struct block_cache *bc = block_writer_cache(alloc->wri);
	struct scoutfs_alloc_list_block *lb;
	struct block *peek = NULL;
	struct block *ab = NULL;
	struct block *fb = NULL;
	u64 old_avail = 0;
	u64 old_freed = 0;
	u64 a, b;
	bool new_freed;
	bool used_a = false;
	bool used_b = true;
	int err;

	if (alloc->heads_dirty)
		return 0;
	if (alloc->avail.ref.blkno == 0)
		return -ENOSPC;

	err = read_list_block(bc, &alloc->avail.ref, &peek);
	if (err < 0)
		return err;
	lb = lblk(peek);
	if (le32_to_cpu(lb->nr) < 2) {
		block_put(bc, peek);
		return -ENOSPC;
	}
	a = le64_to_cpu(lb->blknos[le32_to_cpu(lb->start)]);
	b = le64_to_cpu(lb->blknos[le32_to_cpu(lb->start) + 1]);
	block_put(bc, peek);

	new_freed = alloc->freed.ref.blkno == 0 || le32_to_cpu(alloc->freed.first_nr) > LIST_MAX * 3 / 4;
	if (new_freed) {
		struct scoutfs_block_ref next = alloc->freed.ref;

		err = block_dirty_new(alloc->wri, b, SCOUTFS_BLOCK_MAGIC_ALLOC_LIST, &alloc->freed.ref,
				      &fb);
		if (err < 0)
			return err;
		lblk(fb)->next = next;
		alloc->freed.first_nr = 0;
		counter_inc(alloc_new_freed_block);
	} else {
		err = block_dirty_ref_at(alloc->wri, &alloc->freed.ref, SCOUTFS_BLOCK_MAGIC_ALLOC_LIST,
					 b, &used_b, &old_freed, &fb);
		if (err < 0)
			return err;
	}

	err = block_dirty_ref_at(alloc->wri, &alloc->avail.ref, SCOUTFS_BLOCK_MAGIC_ALLOC_LIST, a,
				 &used_a, &old_avail, &ab);
	if (err < 0) {
		block_put(bc, fb);
		return err;
	}

	/*
	 * a and b now hold the heads: take them out of the avail list (a head that was already
	 * dirty in this writer didn't consume its number, which then stays available).
	 */
	lb = lblk(ab);
	if (used_b && !used_a)
		lb->blknos[le32_to_cpu(lb->start) + 1] = lb->blknos[le32_to_cpu(lb->start)];
	if (used_a || used_b) {
		list_pop(lb);
		head_add(&alloc->avail, -1);
	}
	if (used_a && used_b) {
		list_pop(lb);
		head_add(&alloc->avail, -1);
	}

	if (old_avail) {
		list_append(lblk(fb), old_avail);
		head_add(&alloc->freed, 1);
	}
	if (old_freed) {
		list_append(lblk(fb), old_freed);
		head_add(&alloc->freed, 1);
	}

	alloc->avail_bl = ab;
	alloc->freed_bl = fb;
	alloc->heads_dirty = true;
	return 0;
}

static int pop_avail(struct alloc *alloc, u64 *blkno)
{
	struct scoutfs_alloc_list_block *lb = lblk(alloc->avail_bl);

	if (le32_to_cpu(lb->nr) == 0)
		return -ENOSPC;
	*blkno = list_pop(lb);
	head_add(&alloc->avail, -1);
	alloc->nr_alloced++;
	return 0;
}

int alloc_meta(struct alloc *alloc, u64 *blkno)
{
	int err;

	pthread_mutex_lock(&alloc->mutex);
	err = dirty_heads(alloc);
	if (err == 0)
		err = pop_avail(alloc, blkno);
	pthread_mutex_unlock(&alloc->mutex);
	if (err == 0)
		counter_inc(alloc_alloc_meta);
	return err;
}

int alloc_free_meta(struct alloc *alloc, u64 blkno)
{
	struct scoutfs_alloc_list_block *lb;
	struct block *nb;
	u64 new_blkno;
	int err;

	pthread_mutex_lock(&alloc->mutex);
	err = dirty_heads(alloc);
	if (err < 0)
		goto out;

	lb = lblk(alloc->freed_bl);
	if (le32_to_cpu(lb->nr) == LIST_MAX) {
		/* the head block is full: a new head block links to it */
		struct scoutfs_block_ref next = alloc->freed.ref;

		err = pop_avail(alloc, &new_blkno);
		if (err < 0)
			goto out;
		err = block_dirty_new(alloc->wri, new_blkno, SCOUTFS_BLOCK_MAGIC_ALLOC_LIST,
				      &alloc->freed.ref, &nb);
		if (err < 0)
			goto out;
		lblk(nb)->next = next;
		block_put(block_writer_cache(alloc->wri), alloc->freed_bl);
		alloc->freed_bl = nb;
		alloc->freed.first_nr = 0;
		lb = lblk(nb);
		counter_inc(alloc_new_freed_block);
	}
	list_append(lb, blkno);
	head_add(&alloc->freed, 1);
	alloc->nr_freed++;
out:
	pthread_mutex_unlock(&alloc->mutex);
	if (err == 0)
		counter_inc(alloc_free_meta);
	return err;
}

u32 alloc_meta_avail_nr(struct alloc *alloc)
{
	u32 nr;

	pthread_mutex_lock(&alloc->mutex);
	nr = le32_to_cpu(alloc->avail.first_nr);
	pthread_mutex_unlock(&alloc->mutex);
	return nr;
}

/*
 * Can nr more blocks be allocated and nr more freed?  Before the first use the two head
 * blocks still have to come out of avail, and a freed head block without room for nr
 * more entries will take one more avail block for a new head.
 */
bool alloc_meta_low(struct alloc *alloc, u32 nr)
{
	u32 avail, freed_nr, room;

	pthread_mutex_lock(&alloc->mutex);
	avail = le32_to_cpu(alloc->avail.first_nr);
	if (alloc->heads_dirty) {
		freed_nr = le32_to_cpu(lblk(alloc->freed_bl)->nr);
	} else {
		avail = avail > 2 ? avail - 2 : 0;
		freed_nr = le32_to_cpu(alloc->freed.first_nr);
		if (alloc->freed.ref.blkno == 0 || freed_nr > LIST_MAX * 3 / 4)
			freed_nr = 0;
		freed_nr += 2; /* the heads' old locations */
	}
	pthread_mutex_unlock(&alloc->mutex);

	room = freed_nr < LIST_MAX ? LIST_MAX - freed_nr : 0;
	return avail < nr || (room < nr && avail < nr + 1);
}

/* ---- server list operations ---- */

int alloc_fill_list(struct alloc *alloc, struct scoutfs_alloc_list_head *lhead,
		    struct scoutfs_alloc_root *root, u64 target)
{
	struct btree_txn txn = alloc_txn(alloc);
	struct block_cache *bc = block_writer_cache(alloc->wri);
	struct scoutfs_alloc_list_block *lb;
	struct alloc_extent ext;
	struct block *bl = NULL;
	u32 start, nr;
	u64 i;
	int err;

	if (target > LIST_MAX)
		target = LIST_MAX;
	if (le32_to_cpu(lhead->first_nr) >= target)
		return 0;

	err = block_dirty_ref(alloc->wri, &alloc->ba, &lhead->ref, SCOUTFS_BLOCK_MAGIC_ALLOC_LIST,
			      &bl);
	if (err < 0)
		return err;
	lb = lblk(bl);
	start = le32_to_cpu(lb->start);
	nr = le32_to_cpu(lb->nr);
	if (start) {
		memmove(&lb->blknos[0], &lb->blknos[start], nr * sizeof(le64));
		lb->start = 0;
	}

	while (nr < target) {
		err = alloc_ext_alloc(&txn, root, target - nr, &ext);
		if (err < 0)
			break;
		for (i = 0; i < ext.len; i++)
			lb->blknos[nr + i] = cpu_to_le64(ext.start + i);
		nr += ext.len;
		le64_add_cpu(&lhead->total_nr, (s64)ext.len);
	}
	lb->nr = cpu_to_le32(nr);
	lhead->first_nr = cpu_to_le32(nr);
	if (err == -ENOSPC)
		err = 0;
	block_put(bc, bl);
	if (err == 0)
		counter_inc(alloc_fill_list);
	return err;
}

static int cmp_u64p(const void *a, const void *b)
{
	u64 x = *(const u64 *)a;
	u64 y = *(const u64 *)b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* insert sorted block numbers into a tree as runs of contiguous extents */
static int insert_runs(const struct btree_txn *txn, struct scoutfs_alloc_root *root, u64 *blknos,
		       u64 nr)
{
	u64 i, run;
	int err;

	qsort(blknos, nr, sizeof(u64), cmp_u64p);
	for (i = 0; i < nr; i += run) {
		for (run = 1; i + run < nr && blknos[i + run] == blknos[i] + run; run++)
			;
		err = alloc_ext_insert(txn, root, blknos[i], run);
		if (err < 0)
			return err;
	}
	return 0;
}

int alloc_empty_list(struct alloc *alloc, struct scoutfs_alloc_root *root,
		     struct scoutfs_alloc_list_head *lhead, u64 max_blocks, bool *done)
{
	struct btree_txn txn = alloc_txn(alloc);
	struct block_cache *bc = block_writer_cache(alloc->wri);
	struct scoutfs_alloc_list_block *lb;
	struct block *bl = NULL;
	struct block *next_bl;
	u64 *blknos = NULL;
	u64 moved = 0;
	u32 start, nr, take;
	int err = 0;

	blknos = malloc((LIST_MAX + 1) * sizeof(u64));
	if (!blknos)
		return -ENOMEM;

	while (lhead->ref.blkno && moved < max_blocks) {
		err = read_list_block(bc, &lhead->ref, &bl);
		if (err < 0)
			break;
		lb = lblk(bl);
		start = le32_to_cpu(lb->start);
		nr = le32_to_cpu(lb->nr);

		if ((u64)nr + 1 > max_blocks - moved) {
			/*
			 * The budget ends inside this block: move entries from its front and
			 * keep the rest, in a dirty copy of the block.
			 */
			take = (u32)(max_blocks - moved);
			block_put(bc, bl);
			bl = NULL;
			err = block_dirty_ref(alloc->wri, &alloc->ba, &lhead->ref,
					      SCOUTFS_BLOCK_MAGIC_ALLOC_LIST, &bl);
			if (err < 0)
				break;
			lb = lblk(bl);
			if (!lblk_valid(lb) || le32_to_cpu(lb->nr) != nr) {
				err = -EIO;
				break;
			}
			for (u32 i = 0; i < take; i++)
				blknos[i] = le64_to_cpu(lb->blknos[start + i]);
			err = insert_runs(&txn, root, blknos, take);
			if (err < 0)
				break;
			memset(&lb->blknos[start], 0, take * sizeof(le64));
			lb->start = cpu_to_le32(start + take);
			lb->nr = cpu_to_le32(nr - take);
			le64_add_cpu(&lhead->total_nr, -(s64)take);
			lhead->first_nr = lb->nr;
			moved += take;
			break;
		}

		for (u32 i = 0; i < nr; i++)
			blknos[i] = le64_to_cpu(lb->blknos[start + i]);
		/* the list block itself is free once its entries are gone */
		blknos[nr] = bl->blkno;
		err = insert_runs(&txn, root, blknos, nr + 1);
		if (err < 0)
			break;

		le64_add_cpu(&lhead->total_nr, -(s64)nr);
		lhead->ref = lb->next;
		lhead->first_nr = 0;
		if (lhead->ref.blkno) {
			err = read_list_block(bc, &lhead->ref, &next_bl);
			if (err < 0)
				break;
			lhead->first_nr = lblk(next_bl)->nr;
			block_put(bc, next_bl);
		}
		block_put(bc, bl);
		bl = NULL;
		moved += nr + 1;
	}
	block_put(bc, bl);
	free(blknos);
	if (err == 0 && lhead->ref.blkno == 0)
		memset(lhead, 0, sizeof(*lhead));
	*done = lhead->ref.blkno == 0;
	if (err == 0)
		counter_inc(alloc_empty_list);
	return err;
}

int alloc_splice_list(struct alloc *alloc, struct scoutfs_alloc_list_head *dst,
		      struct scoutfs_alloc_list_head *src)
{
	struct block_cache *bc = block_writer_cache(alloc->wri);
	struct scoutfs_block_ref *ref;
	struct block *prev = NULL;
	struct block *bl;
	int err = 0;

	if (src->ref.blkno == 0)
		return 0;

	/* every block of src is rewritten: the tail's next pointer changes */
	ref = &src->ref;
	while (ref->blkno) {
		err = block_dirty_ref(alloc->wri, &alloc->ba, ref, SCOUTFS_BLOCK_MAGIC_ALLOC_LIST, &bl);
		if (err < 0)
			goto out;
		block_put(bc, prev);
		prev = bl;
		if (!lblk_valid(lblk(bl))) {
			err = -EIO;
			goto out;
		}
		ref = &lblk(bl)->next;
	}
	*ref = dst->ref;

	dst->ref = src->ref;
	dst->first_nr = src->first_nr;
	le64_add_cpu(&dst->total_nr, (s64)le64_to_cpu(src->total_nr));
	memset(src, 0, sizeof(*src));
	counter_inc(alloc_splice_list);
out:
	block_put(bc, prev);
	return err;
}

int alloc_list_visit(struct block_cache *bc, const struct scoutfs_alloc_list_head *lhead,
		     int (*list_block)(void *arg, u64 blkno, int err),
		     int (*entry)(void *arg, u64 blkno), void *arg)
{
	struct scoutfs_block_ref ref = lhead->ref;
	struct scoutfs_alloc_list_block *lb;
	struct block *bl;
	u64 limit = 1ULL << 32; /* a loop in a corrupt list must end */
	int err = 0;

	while (ref.blkno && limit--) {
		bl = NULL;
		err = read_list_block(bc, &ref, &bl);
		if (list_block) {
			int ret = list_block(arg, le64_to_cpu(ref.blkno), err);

			if (ret < 0) {
				block_put(bc, bl);
				return ret;
			}
		}
		if (err < 0)
			return err;
		lb = lblk(bl);
		for (u32 i = 0; entry && i < le32_to_cpu(lb->nr); i++) {
			err = entry(arg, le64_to_cpu(lb->blknos[le32_to_cpu(lb->start) + i]));
			if (err < 0)
				break;
		}
		ref = lb->next;
		block_put(bc, bl);
		if (err < 0)
			return err;
	}
	return err;
}
