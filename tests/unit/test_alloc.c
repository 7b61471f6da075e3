/*
 * test_alloc.c: free-extent btrees against a bitmap model, and the transaction metadata
 * allocator in a simulated server/client life cycle.
 *
 * Extent trees: random alloc/alloc_goal/insert/remove/move/next on two trees whose free
 * blocks are modelled by bitmaps.  After operations the trees must hold exactly the model's
 * maximal runs (neighbours always merged), twice (BLKNO and ORDER items), with total_len
 * right; an overlapping insert is -EINVAL and changes nothing; alloc takes the front of
 * the lowest extent of the largest size class.
 *
 * Transaction allocator: a hand-built first avail list (what mkfs writes) bootstraps a
 * "server" that keeps free metadata blocks in an extent tree and double-buffered lists of
 * its own; it fills a "client's" avail list and takes back its freed list (emptying it into
 * the tree or splicing it onto its idle freed list).  The client dirties a btree through
 * struct alloc.  After every step every block number of the device is in exactly one
 * place: the free tree, a list entry, a list's own block, or a live btree block.  And no
 * block freed in a client transaction is handed out again in that transaction.
 *
 * ALLOC_TEST_SEED=n replays, ALLOC_TEST_LONG=1 runs longer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the four above */
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc/alloc.h"
#include "block/block.h"
#include "btree/btree.h"
#include "dev/dev.h"
#include "format/format.h"
#include "format/key.h"
#include "util/counters.h"
#include "util/util.h"

#include "model_support.h"

#define TEST_FSID 0xa11c0c8e55e5a1e0ULL
#define LIST_MAX  ((u64)SCOUTFS_ALLOC_LIST_MAX_BLOCKS)
#define VAL_SALT  0x5a5a

/* ------------------------------------------------------------------------------------ */
/* device and cache */

struct tdev {
	struct dev *dev;
	struct block_cache *bc;
};

static struct tdev *g_td;

static struct tdev *tdev_create(void)
{
	struct tdev *td = calloc(1, sizeof(*td));

	assert_non_null(td);
	model_dev_open("test_alloc", TEST_FSID, 0, 0, &td->dev, &td->bc);
	return td;
}

static void tdev_destroy(struct tdev *td)
{
	if (!td)
		return;
	model_dev_close(td->dev, td->bc);
	free(td);
}

static int setup(void **state)
{
	g_td = NULL;
	return 0;
}

static int teardown(void **state)
{
	tdev_destroy(g_td);
	g_td = NULL;
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* a simple counting allocator for the extent trees' own btree blocks */

struct talloc {
	u8 *state; /* 0 free, 1 live, 2 freed in the open transaction */
	u64 next;
	u64 *reusable;
	size_t nr_reusable;
	u64 *pending;
	size_t nr_pending;
	u64 nr_live;
};

static int ta_alloc(void *arg, u64 *blkno)
{
	struct talloc *ta = arg;
	u64 b;

	if (ta->nr_reusable && rnd_below(2)) {
		size_t i = rnd_below(ta->nr_reusable);

		b = ta->reusable[i];
		ta->reusable[i] = ta->reusable[--ta->nr_reusable];
	} else {
		CHECK(ta->next < MODEL_DEV_BLOCKS, "device full");
		b = ta->next++;
	}
	CHECK(ta->state[b] == 0, "allocating block %llu in state %u", (unsigned long long)b,
	      ta->state[b]);
	ta->state[b] = 1;
	ta->nr_live++;
	*blkno = b;
	return 0;
}

static int ta_free(void *arg, u64 blkno)
{
	struct talloc *ta = arg;

	CHECK(blkno < MODEL_DEV_BLOCKS && ta->state[blkno] == 1, "freeing block %llu in state %u",
	      (unsigned long long)blkno, blkno < MODEL_DEV_BLOCKS ? ta->state[blkno] : 255);
	ta->state[blkno] = 2;
	ta->pending[ta->nr_pending++] = blkno;
	ta->nr_live--;
	return 0;
}

static void ta_commit(struct talloc *ta)
{
	for (size_t i = 0; i < ta->nr_pending; i++) {
		ta->state[ta->pending[i]] = 0;
		ta->reusable[ta->nr_reusable++] = ta->pending[i];
	}
	ta->nr_pending = 0;
}

/* ------------------------------------------------------------------------------------ */
/* extent trees against bitmaps */

#define EXT_BLOCKS 20000ULL

struct emodel {
	u64 w[DIV_ROUND_UP(EXT_BLOCKS, 64)]; /* a set bit: free in this tree */
	u64 total;
};

static bool mbit(const struct emodel *m, u64 b)
{
	return b < EXT_BLOCKS && (m->w[b / 64] >> (b % 64)) & 1;
}

/* the first block >= b whose bit is v, or EXT_BLOCKS */
static u64 mscan(const struct emodel *m, u64 b, bool v)
{
	u64 i, word;

	if (b >= EXT_BLOCKS)
		return EXT_BLOCKS;
	i = b / 64;
	word = (v ? m->w[i] : ~m->w[i]) & (~0ULL << (b % 64));
	for (;;) {
		if (word)
			return min_t(u64, i * 64 + __builtin_ctzll(word), EXT_BLOCKS);
		if (++i >= DIV_ROUND_UP(EXT_BLOCKS, 64))
			return EXT_BLOCKS;
		word = v ? m->w[i] : ~m->w[i];
	}
}

/* the last block <= b whose bit is clear, or ~0 */
static u64 mscan_back_clear(const struct emodel *m, u64 b)
{
	s64 i = (s64)(b / 64);
	u64 word = ~m->w[i] & (~0ULL >> (63 - (b % 64)));

	for (;;) {
		if (word)
			return (u64)i * 64 + 63 - __builtin_clzll(word);
		if (--i < 0)
			return ~0ULL;
		word = ~m->w[i];
	}
}

struct etest {
	struct tdev *td;
	struct block_writer *wri;
	struct talloc ta;
	struct block_allocator ba;
	struct btree_txn txn;
	struct scoutfs_alloc_root roots[2];
	struct emodel *m[2];
};

static void et_commit(struct etest *et)
{
	CHECK_RET(block_writer_write(et->wri), 0);
	block_writer_destroy(et->wri);
	assert_int_equal(block_writer_create(et->td->bc, &et->wri), 0);
	et->txn.wri = et->wri;
	ta_commit(&et->ta);
}

/* the maximal free run containing or following blk in the model (start and len), or false */
static bool model_run_from(const struct emodel *m, u64 blk, u64 *start, u64 *len)
{
	u64 s, e, c;

	s = mscan(m, blk, true);
	if (s >= EXT_BLOCKS)
		return false;
	c = s ? mscan_back_clear(m, s) : ~0ULL;
	s = c == ~0ULL ? 0 : c + 1;
	e = mscan(m, s, false);
	*start = s;
	*len = e - s;
	return true;
}

/* what alloc_ext_alloc must return: the lowest extent of the largest order */
static bool model_alloc_pick(const struct emodel *m, u64 *start, u64 *len)
{
	int best_order = -1;
	u64 s, l, blk = 0;

	while (model_run_from(m, blk, &s, &l)) {
		if (alloc_ext_order(l) > best_order) {
			best_order = alloc_ext_order(l);
			*start = s;
			*len = l;
		}
		blk = s + l;
	}
	return best_order >= 0;
}

static void model_set_range(struct emodel *m, u64 start, u64 len, u8 v)
{
	for (u64 b = start; b < start + len; b++) {
		CHECK(mbit(m, b) != v, "model range already %u at %llu", v, (unsigned long long)b);
		if (v)
			m->w[b / 64] |= 1ULL << (b % 64);
		else
			m->w[b / 64] &= ~(1ULL << (b % 64));
	}
	if (v)
		m->total += len;
	else
		m->total -= len;
}

static bool model_any(const struct emodel *m, u64 start, u64 len)
{
	return mscan(m, start, true) < min_t(u64, start + len, EXT_BLOCKS);
}

static bool model_all(const struct emodel *m, u64 start, u64 len)
{
	return start + len <= EXT_BLOCKS && mscan(m, start, false) >= start + len;
}

/* the tree holds exactly the model's maximal runs, each as a BLKNO and an ORDER item */
static void verify_ext_tree(struct etest *et, int t)
{
	struct scoutfs_alloc_root *root = &et->roots[t];
	const struct emodel *m = et->m[t];
	struct alloc_extent ext;
	struct btree_item_ref iref;
	struct scoutfs_key key;
	u64 blk = 0, s, l, nr_ext = 0, nr_order = 0, total = 0;
	u64 prev_end = 0;
	bool have_prev = false;
	int err;

	for (;;) {
		err = alloc_ext_next(et->td->bc, root, blk, &ext);
		if (err == -ENOENT) {
			CHECK(!model_run_from(m, blk, &s, &l), "tree ends before model run at %llu",
			      (unsigned long long)s);
			break;
		}
		CHECK(err == 0, "ext_next err %d", err);
		CHECK(model_run_from(m, blk, &s, &l), "tree extent %llu+%llu, model has none",
		      (unsigned long long)ext.start, (unsigned long long)ext.len);
		CHECK(ext.start == s && ext.len == l, "tree extent %llu+%llu model run %llu+%llu",
		      (unsigned long long)ext.start, (unsigned long long)ext.len,
		      (unsigned long long)s, (unsigned long long)l);
		/* maximal: never touching the previous extent */
		CHECK(!have_prev || ext.start > prev_end + 1, "extents %llu and %llu not merged",
		      (unsigned long long)prev_end, (unsigned long long)ext.start);
		prev_end = ext.start + ext.len - 1;
		have_prev = true;
		total += ext.len;
		nr_ext++;

		/* its ORDER twin */
		key = key_make(SCOUTFS_FREE_EXTENT_ORDER_ZONE, ~(u64)alloc_ext_order(ext.len), 0,
		               prev_end, ext.len, 0);
		CHECK_RET(btree_lookup(et->td->bc, &root->root, &key, &iref), 0);
		CHECK(iref.val_len == 0 && iref.seq == 0 && iref.flags == 0, "order item fields");
		btree_iref_put(&iref);
		blk = prev_end + 1;
	}
	CHECK(total == m->total && le64_to_cpu(root->total_len) == m->total,
	      "total_len %llu, extents %llu, model %llu",
	      (unsigned long long)le64_to_cpu(root->total_len), (unsigned long long)total,
	      (unsigned long long)m->total);

	/* no other items: as many ORDER items as extents, nothing outside the two zones */
	key = key_zeros();
	for (;;) {
		err = btree_next(et->td->bc, &root->root, &key, &iref);
		if (err == -ENOENT)
			break;
		CHECK(err == 0, "btree_next err %d", err);
		CHECK(iref.key.sk_zone == SCOUTFS_FREE_EXTENT_BLKNO_ZONE ||
		              iref.key.sk_zone == SCOUTFS_FREE_EXTENT_ORDER_ZONE,
		      "item in zone %u", iref.key.sk_zone);
		if (iref.key.sk_zone == SCOUTFS_FREE_EXTENT_ORDER_ZONE)
			nr_order++;
		else
			CHECK(key_first(&iref.key) < EXT_BLOCKS, "blkno item past the model");
		key = iref.key;
		btree_iref_put(&iref);
		key_inc(&key);
	}
	CHECK(nr_order == nr_ext, "%llu order items for %llu extents", (unsigned long long)nr_order,
	      (unsigned long long)nr_ext);
}

static int ext_blocks_cb(void *arg, const struct scoutfs_block_ref *ref, int level,
                         const struct scoutfs_btree_block *bt, int read_err)
{
	u64 *nr = arg;

	CHECK(read_err == 0, "read err %d", read_err);
	(*nr)++;
	return 0;
}

/* a random range: mostly small, near existing extents, sometimes big */
static void rnd_range(const struct emodel *m, u64 *start, u64 *len)
{
	u64 s, l;

	*len = rnd_below(4) ? 1 + rnd_below(8) : 1 + rnd_below(rnd_below(2) ? 100 : 3000);
	if (rnd_below(2) && model_run_from(m, rnd_below(EXT_BLOCKS), &s, &l)) {
		/* just before, inside, or just after an extent */
		switch (rnd_below(3)) {
		case 0:
			*start = s > *len ? s - *len : 0;
			break;
		case 1:
			*start = s + rnd_below(l);
			break;
		default:
			*start = s + l + rnd_below(3);
			break;
		}
	} else {
		*start = rnd_below(EXT_BLOCKS);
	}
	if (*start >= EXT_BLOCKS)
		*start = EXT_BLOCKS - 1;
	if (*start + *len > EXT_BLOCKS)
		*len = EXT_BLOCKS - *start;
	if (*len == 0) {
		*start = EXT_BLOCKS - 1;
		*len = 1;
	}
}

static void test_extent_trees(void **state)
{
	struct etest et;
	u64 nops = g_long ? 300000 : 40000;
	u64 start, len, moved, s, l;
	struct alloc_extent ext;
	int t, err, op;
	u64 nblocks;

	rng_seed_test(1);
	memset(&et, 0, sizeof(et));
	et.td = g_td = tdev_create();
	assert_int_equal(block_writer_create(et.td->bc, &et.wri), 0);
	et.ta.state = calloc(MODEL_DEV_BLOCKS, 1);
	et.ta.reusable = calloc(MODEL_DEV_BLOCKS, sizeof(u64));
	et.ta.pending = calloc(MODEL_DEV_BLOCKS, sizeof(u64));
	et.ta.next = SCOUTFS_META_DEV_START_BLKNO;
	et.ba.alloc_meta = ta_alloc;
	et.ba.free_meta = ta_free;
	et.ba.arg = &et.ta;
	et.txn.wri = et.wri;
	et.txn.alloc = &et.ba;
	et.m[0] = calloc(1, sizeof(struct emodel));
	et.m[1] = calloc(1, sizeof(struct emodel));

	/* argument checks */
	CHECK_RET(alloc_ext_insert(&et.txn, &et.roots[0], 5, 0), -EINVAL);
	CHECK_RET(alloc_ext_insert(&et.txn, &et.roots[0], ~0ULL - 2, 10), -EINVAL);
	CHECK_RET(alloc_ext_alloc(&et.txn, &et.roots[0], 1, &ext), -ENOSPC);
	CHECK_RET(alloc_ext_alloc(&et.txn, &et.roots[0], 0, &ext), -EINVAL);
	CHECK_RET(alloc_ext_alloc_goal(&et.txn, &et.roots[0], 7, 1, &ext), -ENOSPC);
	CHECK_RET(alloc_ext_remove(&et.txn, &et.roots[0], 1, 1), -ENOENT);
	CHECK_RET(alloc_ext_next(et.td->bc, &et.roots[0], 0, &ext), -ENOENT);
	CHECK(alloc_ext_order(1) == 0 && alloc_ext_order(7) == 0 && alloc_ext_order(8) == 1 &&
	              alloc_ext_order(63) == 1 && alloc_ext_order(64) == 2 &&
	              alloc_ext_order(~0ULL) == 21,
	      "orders");

	for (u64 i = 0; i < nops; i++) {
		g_op++;
		t = rnd_below(2);
		op = rnd_below(100);
		if (op < 40) {
			/* insert: succeeds only when free in neither tree's model */
			rnd_range(et.m[t], &start, &len);
			if (model_any(et.m[!t], start, len))
				continue;
			err = alloc_ext_insert(&et.txn, &et.roots[t], start, len);
			if (model_any(et.m[t], start, len)) {
				CHECK(err == -EINVAL, "overlapping insert %llu+%llu returned %d",
				      (unsigned long long)start, (unsigned long long)len, err);
				if (rnd_below(20) == 0)
					verify_ext_tree(&et, t);
			} else {
				CHECK(err == 0, "insert %llu+%llu returned %d",
				      (unsigned long long)start, (unsigned long long)len, err);
				model_set_range(et.m[t], start, len, 1);
			}
		} else if (op < 55) {
			/* remove */
			rnd_range(et.m[t], &start, &len);
			if (rnd_below(2) && model_run_from(et.m[t], start, &s, &l)) {
				start = s + rnd_below(l);
				len = 1 + rnd_below(s + l - start);
			}
			err = alloc_ext_remove(&et.txn, &et.roots[t], start, len);
			if (model_all(et.m[t], start, len)) {
				CHECK(err == 0, "remove %llu+%llu returned %d",
				      (unsigned long long)start, (unsigned long long)len, err);
				model_set_range(et.m[t], start, len, 0);
			} else {
				CHECK(err == -ENOENT, "remove of non-free %llu+%llu returned %d",
				      (unsigned long long)start, (unsigned long long)len, err);
			}
		} else if (op < 75) {
			/* alloc: the front of the lowest extent of the largest class */
			u64 count = 1 + rnd_below(rnd_below(2) ? 16 : 2000);
			bool any = model_alloc_pick(et.m[t], &s, &l);

			err = alloc_ext_alloc(&et.txn, &et.roots[t], count, &ext);
			if (!any) {
				CHECK(err == -ENOSPC, "alloc from empty returned %d", err);
			} else {
				CHECK(err == 0, "alloc returned %d", err);
				CHECK(ext.start == s && ext.len == min_t(u64, count, l),
				      "alloc %llu got %llu+%llu want %llu+%llu",
				      (unsigned long long)count, (unsigned long long)ext.start,
				      (unsigned long long)ext.len, (unsigned long long)s,
				      (unsigned long long)min_t(u64, count, l));
				model_set_range(et.m[t], ext.start, ext.len, 0);
			}
		} else if (op < 88) {
			/* alloc_goal: exactly at goal when goal is free */
			u64 count = 1 + rnd_below(64);
			u64 goal = rnd_below(2) && model_run_from(et.m[t], rnd_below(EXT_BLOCKS),
			                                          &s, &l)
			                   ? s + rnd_below(l)
			                   : rnd_below(EXT_BLOCKS);

			err = alloc_ext_alloc_goal(&et.txn, &et.roots[t], goal, count, &ext);
			if (mbit(et.m[t], goal)) {
				model_run_from(et.m[t], goal, &s, &l);
				CHECK(err == 0 && ext.start == goal &&
				              ext.len == min_t(u64, count, s + l - goal),
				      "goal %llu count %llu got %d %llu+%llu",
				      (unsigned long long)goal, (unsigned long long)count, err,
				      (unsigned long long)ext.start, (unsigned long long)ext.len);
			} else if (model_alloc_pick(et.m[t], &s, &l)) {
				CHECK(err == 0 && ext.start == s && ext.len == min_t(u64, count, l),
				      "goal miss %llu got %d %llu+%llu want %llu+%llu",
				      (unsigned long long)goal, err, (unsigned long long)ext.start,
				      (unsigned long long)ext.len, (unsigned long long)s,
				      (unsigned long long)min_t(u64, count, l));
			} else {
				CHECK(err == -ENOSPC, "goal from empty returned %d", err);
			}
			if (err == 0)
				model_set_range(et.m[t], ext.start, ext.len, 0);
		} else if (op < 93) {
			/* move some of one tree into the other */
			u64 total = rnd_below(2) ? 1 + rnd_below(500) : 1 + rnd_below(20000);
			u64 want = min_t(u64, total, et.m[!t]->total);
			u64 got = 0;

			err = alloc_ext_move(&et.txn, &et.roots[t], &et.roots[!t], total, &moved);
			if (want == 0) {
				CHECK(err == -ENOSPC && moved == 0, "move from empty: %d %llu", err,
				      (unsigned long long)moved);
			} else {
				CHECK(err == 0, "move returned %d", err);
				/* moved extents come off the source as alloc would take them */
				while (got < moved) {
					CHECK(model_alloc_pick(et.m[!t], &s, &l), "model ran dry");
					l = min_t(u64, l, moved - got);
					model_set_range(et.m[!t], s, l, 0);
					model_set_range(et.m[t], s, l, 1);
					got += l;
				}
				CHECK(moved == want, "moved %llu of %llu",
				      (unsigned long long)moved, (unsigned long long)want);
			}
		} else {
			/* next */
			u64 blk = rnd_below(EXT_BLOCKS + 10);

			err = alloc_ext_next(et.td->bc, &et.roots[t], blk, &ext);
			if (model_run_from(et.m[t], blk, &s, &l)) {
				CHECK(err == 0 && ext.start == s && ext.len == l,
				      "next %llu got %d %llu+%llu want %llu+%llu",
				      (unsigned long long)blk, err, (unsigned long long)ext.start,
				      (unsigned long long)ext.len, (unsigned long long)s,
				      (unsigned long long)l);
			} else {
				CHECK(err == -ENOENT, "next past the end returned %d", err);
			}
		}
		if (rnd_below(1000) == 0)
			et_commit(&et);
		if (rnd_below(2000) == 0) {
			verify_ext_tree(&et, 0);
			verify_ext_tree(&et, 1);
		}
	}
	et_commit(&et);
	verify_ext_tree(&et, 0);
	verify_ext_tree(&et, 1);

	/* the trees' blocks are exactly the live blocks of their allocator */
	nblocks = 0;
	for (t = 0; t < 2; t++) {
		struct btree_visit_ops ops = { .block = ext_blocks_cb };

		CHECK_RET(btree_visit(et.td->bc, &et.roots[t].root, &ops, &nblocks), 0);
	}
	CHECK(nblocks == et.ta.nr_live, "trees have %llu blocks, %llu live",
	      (unsigned long long)nblocks, (unsigned long long)et.ta.nr_live);

	/* empty both trees by allocating everything */
	for (t = 0; t < 2; t++) {
		while (model_alloc_pick(et.m[t], &s, &l)) {
			CHECK_RET(alloc_ext_alloc(&et.txn, &et.roots[t], ~0ULL, &ext), 0);
			CHECK(ext.start == s && ext.len == l, "draining alloc");
			model_set_range(et.m[t], s, l, 0);
		}
		CHECK_RET(alloc_ext_alloc(&et.txn, &et.roots[t], 1, &ext), -ENOSPC);
		CHECK(et.roots[t].root.height == 0 && et.roots[t].total_len == 0, "tree not empty");
	}
	et_commit(&et);
	CHECK(et.ta.nr_live == 0, "%llu blocks leaked", (unsigned long long)et.ta.nr_live);

	block_writer_destroy(et.wri);
	free(et.ta.state);
	free(et.ta.reusable);
	free(et.ta.pending);
	free(et.m[0]);
	free(et.m[1]);
}

/* ------------------------------------------------------------------------------------ */
/* the transaction allocator: a simulated server and client */

#define SIM_BLOCKS 30000ULL /* blocks [2, SIM_BLOCKS) are the filesystem's metadata */
#define BOOT_LIST  1500ULL  /* entries of the hand-built first server avail list */
#define CKEYS      (1ULL << 14)

struct cment {
	u32 ver;
	u16 len;
	u8 present;
};

struct sim {
	struct tdev *td;
	/* server state (what the super would hold) */
	struct scoutfs_alloc_root free_tree;
	struct scoutfs_alloc_list_head srv_avail[2];
	struct scoutfs_alloc_list_head srv_freed[2];
	int cur;
	/* the client's log tree state */
	struct scoutfs_alloc_list_head cl_avail;
	struct scoutfs_alloc_list_head cl_freed;
	struct scoutfs_btree_root cl_root;
	struct cment *cm;
	/* blocks the test itself holds (taken out of the free tree to be freed by a client) */
	u64 *held;
	size_t nr_held;
	/* ownership counts */
	u8 *owner;
	/* client transaction checks */
	struct alloc *ca;
	u8 *avail_at_start;
	u8 *txn_freed;
	u8 *txn_alloced;
	u8 *tree_at_start;
	u64 txn_allocs;
	u64 txn_frees;
	u64 cycles;
	u64 nonempty_splices;
};

static struct scoutfs_key ckey(u64 k)
{
	return key_make(SCOUTFS_FS_ZONE, k >> 4, SCOUTFS_XATTR_TYPE, k & 0xf, 0, 0);
}

/* ---- ownership ---- */

static void own(struct sim *sm, u64 blkno, const char *what)
{
	CHECK(blkno >= SCOUTFS_META_DEV_START_BLKNO && blkno < SIM_BLOCKS,
	      "%s holds block %llu outside the device", what, (unsigned long long)blkno);
	CHECK(sm->owner[blkno] == 0, "block %llu owned twice (second: %s)",
	      (unsigned long long)blkno, what);
	sm->owner[blkno] = 1;
}

struct list_count {
	struct sim *sm;
	const char *what;
	u64 blocks;
	u64 entries;
	u64 first_nr;
};

static int own_list_block(void *arg, u64 blkno, int err)
{
	struct list_count *lc = arg;

	CHECK(err == 0, "%s list block %llu read error %d", lc->what, (unsigned long long)blkno,
	      err);
	if (lc->blocks == 1)
		lc->first_nr = lc->entries;
	lc->blocks++;
	own(lc->sm, blkno, lc->what);
	return 0;
}

static int own_list_entry(void *arg, u64 blkno)
{
	struct list_count *lc = arg;

	lc->entries++;
	own(lc->sm, blkno, lc->what);
	return 0;
}

static void own_list(struct sim *sm, const struct scoutfs_alloc_list_head *lh, const char *what)
{
	struct list_count lc = { .sm = sm, .what = what };

	CHECK_RET(alloc_list_visit(sm->td->bc, lh, own_list_block, own_list_entry, &lc), 0);
	if (lc.blocks == 1)
		lc.first_nr = lc.entries;
	CHECK(le64_to_cpu(lh->total_nr) == lc.entries, "%s total_nr %llu, holds %llu", what,
	      (unsigned long long)le64_to_cpu(lh->total_nr), (unsigned long long)lc.entries);
	CHECK(le32_to_cpu(lh->first_nr) == lc.first_nr, "%s first_nr %u, first block holds %llu",
	      what, le32_to_cpu(lh->first_nr), (unsigned long long)lc.first_nr);
	if (lh->ref.blkno == 0)
		CHECK(lh->total_nr == 0 && lh->first_nr == 0, "%s empty list with counts", what);
}

struct tree_own {
	struct sim *sm;
	const char *what;
};

static int own_tree_block(void *arg, const struct scoutfs_block_ref *ref, int level,
                          const struct scoutfs_btree_block *bt, int read_err)
{
	struct tree_own *to = arg;
	char why[128];

	CHECK(read_err == 0, "%s block %llu read error %d", to->what,
	      (unsigned long long)le64_to_cpu(ref->blkno), read_err);
	CHECK(btree_block_verify(bt, why, sizeof(why)) == 0, "%s: %s", to->what, why);
	own(to->sm, le64_to_cpu(ref->blkno), to->what);
	return 0;
}

static void own_tree(struct sim *sm, const struct scoutfs_btree_root *root, const char *what)
{
	struct btree_visit_ops ops = { .block = own_tree_block };
	struct tree_own to = { .sm = sm, .what = what };

	CHECK_RET(btree_visit(sm->td->bc, root, &ops, &to), 0);
}

/* every block in exactly one place */
static void check_ownership(struct sim *sm)
{
	struct alloc_extent ext;
	u64 blk = 0;
	int err;

	memset(sm->owner, 0, SIM_BLOCKS);
	for (;;) {
		err = alloc_ext_next(sm->td->bc, &sm->free_tree, blk, &ext);
		if (err == -ENOENT)
			break;
		CHECK(err == 0, "free tree next err %d", err);
		for (u64 b = ext.start; b < ext.start + ext.len; b++)
			own(sm, b, "free tree");
		blk = ext.start + ext.len;
	}
	own_tree(sm, &sm->free_tree.root, "free tree btree");
	own_list(sm, &sm->srv_avail[0], "server avail 0");
	own_list(sm, &sm->srv_avail[1], "server avail 1");
	own_list(sm, &sm->srv_freed[0], "server freed 0");
	own_list(sm, &sm->srv_freed[1], "server freed 1");
	own_list(sm, &sm->cl_avail, "client avail");
	own_list(sm, &sm->cl_freed, "client freed");
	own_tree(sm, &sm->cl_root, "client tree");
	for (size_t i = 0; i < sm->nr_held; i++)
		own(sm, sm->held[i], "test");
	for (u64 b = SCOUTFS_META_DEV_START_BLKNO; b < SIM_BLOCKS; b++)
		CHECK(sm->owner[b] == 1, "block %llu owned by nobody (leaked)",
		      (unsigned long long)b);
}

/* ---- the client's transaction, with the checking block allocator ---- */

static int ca_alloc(void *arg, u64 *blkno)
{
	struct sim *sm = arg;
	int err;

	err = alloc_meta(sm->ca, blkno);
	if (err)
		return err;
	CHECK(*blkno < SIM_BLOCKS, "client allocated %llu", (unsigned long long)*blkno);
	CHECK(!sm->txn_freed[*blkno], "block %llu freed and allocated in one transaction",
	      (unsigned long long)*blkno);
	CHECK(!sm->txn_alloced[*blkno], "block %llu allocated twice", (unsigned long long)*blkno);
	CHECK(sm->avail_at_start[*blkno], "block %llu was not in the avail list",
	      (unsigned long long)*blkno);
	sm->txn_alloced[*blkno] = 1;
	sm->txn_allocs++;
	return 0;
}

static int ca_free(void *arg, u64 blkno)
{
	struct sim *sm = arg;

	CHECK(blkno < SIM_BLOCKS, "client freed %llu", (unsigned long long)blkno);
	CHECK(!sm->txn_freed[blkno], "block %llu freed twice", (unsigned long long)blkno);
	CHECK(sm->txn_alloced[blkno] || sm->tree_at_start[blkno] || sm->owner[blkno] == 2,
	      "client freed block %llu it doesn't own", (unsigned long long)blkno);
	sm->txn_freed[blkno] = 1;
	sm->txn_frees++;
	return alloc_free_meta(sm->ca, blkno);
}

static int mark_entry(void *arg, u64 blkno)
{
	u8 *map = arg;

	map[blkno] = 1;
	return 0;
}

static int mark_tree_block(void *arg, const struct scoutfs_block_ref *ref, int level,
                           const struct scoutfs_btree_block *bt, int read_err)
{
	u8 *map = arg;

	CHECK(read_err == 0, "read error");
	map[le64_to_cpu(ref->blkno)] = 1;
	return 0;
}

static void verify_client_tree(struct sim *sm)
{
	struct btree_item_ref iref;
	struct scoutfs_key key = key_zeros();
	u8 want[SCOUTFS_BTREE_MAX_VAL_LEN];
	u64 k = 0, nr = 0;
	int err;

	for (;;) {
		err = btree_next(sm->td->bc, &sm->cl_root, &key, &iref);
		if (err == -ENOENT)
			break;
		CHECK(err == 0, "client tree next err %d", err);
		k = (key_first(&iref.key) << 4) | key_second(&iref.key);
		CHECK(k < CKEYS && sm->cm[k].present, "client tree has extra key %llu",
		      (unsigned long long)k);
		model_fill_val(k, sm->cm[k].ver, VAL_SALT, sm->cm[k].len, want);
		CHECK(iref.val_len == sm->cm[k].len &&
		              (iref.val_len == 0 || memcmp(iref.val, want, iref.val_len) == 0),
		      "client tree value of %llu", (unsigned long long)k);
		key = iref.key;
		btree_iref_put(&iref);
		key_inc(&key);
		nr++;
	}
	for (k = 0; k < CKEYS; k++)
		nr -= sm->cm[k].present;
	CHECK(nr == 0, "client tree is missing items");
}

/* one client transaction of nops btree changes; frees the test's held blocks when asked */
static void client_transaction(struct sim *sm, u64 nops, bool free_held)
{
	struct block_writer *wri;
	struct block_allocator ba = { .alloc_meta = ca_alloc, .free_meta = ca_free, .arg = sm };
	struct btree_txn txn;
	struct alloc ca;
	u8 val[SCOUTFS_BTREE_MAX_VAL_LEN];
	u64 i, k;
	int err;

	memset(sm->avail_at_start, 0, SIM_BLOCKS);
	memset(sm->txn_freed, 0, SIM_BLOCKS);
	memset(sm->txn_alloced, 0, SIM_BLOCKS);
	memset(sm->tree_at_start, 0, SIM_BLOCKS);
	CHECK_RET(alloc_list_visit(sm->td->bc, &sm->cl_avail, NULL, mark_entry, sm->avail_at_start),
	          0);
	{
		struct btree_visit_ops ops = { .block = mark_tree_block };

		CHECK_RET(btree_visit(sm->td->bc, &sm->cl_root, &ops, sm->tree_at_start), 0);
	}
	sm->txn_allocs = sm->txn_frees = 0;

	assert_int_equal(block_writer_create(sm->td->bc, &wri), 0);
	alloc_init(&ca, wri, &sm->cl_avail, &sm->cl_freed);
	sm->ca = &ca;
	txn.wri = wri;
	txn.alloc = &ba;

	if (free_held) {
		/* more frees than a freed list block holds: the list grows a new head block */
		for (i = 0; i < sm->nr_held; i++) {
			sm->owner[sm->held[i]] = 2;
			CHECK_RET(ba.free_meta(ba.arg, sm->held[i]), 0);
		}
		sm->nr_held = 0;
	}

	for (i = 0; i < nops; i++) {
		unsigned int len = rnd_below(4) ? rnd_below(SCOUTFS_BTREE_MAX_VAL_LEN + 1) : 0;
		struct scoutfs_key key;

		/* commit before either list could run out */
		if (alloc_meta_low(&ca, 40))
			break;
		g_op++;
		k = rnd_below(4) ? (rnd_below(CKEYS / 64) * 64 + rnd_below(64)) % CKEYS
		                 : rnd_below(CKEYS);
		key = ckey(k);
		if (sm->cm[k].present && rnd_below(2)) {
			err = btree_delete(&txn, &sm->cl_root, &key);
			CHECK(err == 0, "client delete err %d", err);
			memset(&sm->cm[k], 0, sizeof(sm->cm[k]));
		} else {
			u32 ver = (u32)rnd();

			model_fill_val(k, ver, VAL_SALT, len, val);
			err = btree_force(&txn, &sm->cl_root, &key, val, len);
			CHECK(err == 0, "client force err %d", err);
			sm->cm[k].present = 1;
			sm->cm[k].ver = ver;
			sm->cm[k].len = len;
		}
	}

	alloc_finish(&ca, &sm->cl_avail, &sm->cl_freed);
	sm->ca = NULL;
	CHECK_RET(block_writer_write(wri), 0);
	block_writer_destroy(wri);
	CHECK(le64_to_cpu(sm->cl_freed.total_nr) >= sm->txn_frees,
	      "freed list holds %llu, transaction freed %llu",
	      (unsigned long long)le64_to_cpu(sm->cl_freed.total_nr),
	      (unsigned long long)sm->txn_frees);
}

/* ---- the server ---- */

struct sim_server {
	struct block_writer *wri;
	struct alloc sa;
};

static void server_begin(struct sim *sm, struct sim_server *ss)
{
	assert_int_equal(block_writer_create(sm->td->bc, &ss->wri), 0);
	alloc_init(&ss->sa, ss->wri, &sm->srv_avail[sm->cur], &sm->srv_freed[sm->cur]);
}

static void server_end(struct sim *sm, struct sim_server *ss)
{
	alloc_finish(&ss->sa, &sm->srv_avail[sm->cur], &sm->srv_freed[sm->cur]);
	CHECK_RET(block_writer_write(ss->wri), 0);
	block_writer_destroy(ss->wri);
	/* the idle pair becomes the one the next commit allocates from */
	sm->cur = !sm->cur;
}

/* empty a list into the free tree in budgeted steps, checking the budget */
static void empty_list(struct sim *sm, struct sim_server *ss, struct scoutfs_alloc_list_head *lh)
{
	u64 max = rnd_below(2) ? 1 + rnd_below(50) : 1 + rnd_below(20000);
	u64 before, after;
	bool done = false;
	int calls = 0;

	while (!done) {
		before = le64_to_cpu(lh->total_nr);
		CHECK_RET(alloc_empty_list(&ss->sa, &sm->free_tree, lh, max, &done), 0);
		after = le64_to_cpu(lh->total_nr);
		CHECK(before - after <= max, "emptied %llu entries with a budget of %llu",
		      (unsigned long long)(before - after), (unsigned long long)max);
		CHECK(done == (lh->ref.blkno == 0), "done %d with list block %llu", done,
		      (unsigned long long)le64_to_cpu(lh->ref.blkno));
		CHECK(++calls < 100000, "empty_list makes no progress");
	}
	CHECK(lh->total_nr == 0 && lh->first_nr == 0, "emptied list keeps counts");
}

static void server_cycle(struct sim *sm, bool take_held)
{
	struct sim_server ss;
	int other;
	u64 target;

	server_begin(sm, &ss);
	other = !sm->cur;

	/* the idle freed list holds frees of commits that are durable: drain it, or not yet */
	if (sm->srv_freed[other].ref.blkno && rnd_below(3))
		empty_list(sm, &ss, &sm->srv_freed[other]);

	/* the client's committed freed list: into the tree, or onto the idle freed list */
	if (sm->cl_freed.ref.blkno) {
		if (rnd_below(2)) {
			empty_list(sm, &ss, &sm->cl_freed);
		} else {
			u64 dst = le64_to_cpu(sm->srv_freed[other].total_nr);
			u64 src = le64_to_cpu(sm->cl_freed.total_nr);

			if (sm->srv_freed[other].ref.blkno)
				sm->nonempty_splices++;
			CHECK_RET(alloc_splice_list(&ss.sa, &sm->srv_freed[other], &sm->cl_freed),
			          0);
			CHECK(le64_to_cpu(sm->srv_freed[other].total_nr) == dst + src,
			      "splice counts");
			CHECK(sm->cl_freed.ref.blkno == 0 && sm->cl_freed.total_nr == 0,
			      "splice left the source");
		}
	}

	/* refill the client and the idle server list */
	target = rnd_below(4) ? 600 + rnd_below(1500) : LIST_MAX;
	CHECK_RET(alloc_fill_list(&ss.sa, &sm->cl_avail, &sm->free_tree, target), 0);
	CHECK(le32_to_cpu(sm->cl_avail.first_nr) >= min_t(u64, target, 600) ||
	              sm->free_tree.total_len == 0,
	      "client list filled to %u of %llu", le32_to_cpu(sm->cl_avail.first_nr),
	      (unsigned long long)target);
	CHECK_RET(alloc_fill_list(&ss.sa, &sm->srv_avail[other], &sm->free_tree, 1000), 0);

	/* sometimes hand the test a large set of blocks for a client to free */
	if (take_held) {
		struct btree_txn txn = alloc_txn(&ss.sa);
		struct alloc_extent ext;

		while (sm->nr_held < LIST_MAX + 500) {
			CHECK_RET(alloc_ext_alloc(&txn, &sm->free_tree,
			                          LIST_MAX + 500 - sm->nr_held, &ext),
			          0);
			for (u64 b = ext.start; b < ext.start + ext.len; b++)
				sm->held[sm->nr_held++] = b;
		}
	}
	server_end(sm, &ss);
}

static void test_transaction_allocator(void **state)
{
	struct sim *sm = calloc(1, sizeof(*sm));
	struct block_writer *wri;
	struct scoutfs_alloc_list_block *lb;
	struct block *bl;
	struct sim_server ss;
	u64 cycles = g_long ? 600 : 120;
	u64 c;

	rng_seed_test(2);
	assert_non_null(sm);
	sm->td = g_td = tdev_create();
	sm->owner = calloc(SIM_BLOCKS, 1);
	sm->avail_at_start = calloc(SIM_BLOCKS, 1);
	sm->txn_freed = calloc(SIM_BLOCKS, 1);
	sm->txn_alloced = calloc(SIM_BLOCKS, 1);
	sm->tree_at_start = calloc(SIM_BLOCKS, 1);
	sm->held = calloc(SIM_BLOCKS, sizeof(u64));
	sm->cm = calloc(CKEYS, sizeof(*sm->cm));

	/* mkfs: a first avail list block at 2 holding [3, 3 + BOOT_LIST) */
	assert_int_equal(block_writer_create(sm->td->bc, &wri), 0);
	CHECK_RET(block_dirty_new(wri, SCOUTFS_META_DEV_START_BLKNO, SCOUTFS_BLOCK_MAGIC_ALLOC_LIST,
	                          &sm->srv_avail[0].ref, &bl),
	          0);
	lb = bl->data;
	for (u64 i = 0; i < BOOT_LIST; i++)
		lb->blknos[i] = cpu_to_le64(SCOUTFS_META_DEV_START_BLKNO + 1 + i);
	lb->nr = cpu_to_le32(BOOT_LIST);
	block_put(sm->td->bc, bl);
	sm->srv_avail[0].total_nr = cpu_to_le64(BOOT_LIST);
	sm->srv_avail[0].first_nr = cpu_to_le32(BOOT_LIST);
	CHECK_RET(block_writer_write(wri), 0);
	block_writer_destroy(wri);

	/* the first server commit puts the rest of the device in the free tree */
	sm->cur = 0;
	server_begin(sm, &ss);
	{
		struct btree_txn txn = alloc_txn(&ss.sa);

		CHECK_RET(alloc_ext_insert(&txn, &sm->free_tree,
		                           SCOUTFS_META_DEV_START_BLKNO + 1 + BOOT_LIST,
		                           SIM_BLOCKS -
		                                   (SCOUTFS_META_DEV_START_BLKNO + 1 + BOOT_LIST)),
		          0);
	}
	/* and the idle pair's avail list, which the next commit allocates from */
	CHECK_RET(alloc_fill_list(&ss.sa, &sm->srv_avail[1], &sm->free_tree, 1000), 0);
	server_end(sm, &ss);
	check_ownership(sm);
	print_message("bootstrapped: %llu free in the tree\n",
	              (unsigned long long)le64_to_cpu(sm->free_tree.total_len));

	for (c = 0; c < cycles; c++) {
		bool big = c % 40 == 20;

		sm->cycles++;
		server_cycle(sm, big);
		check_ownership(sm);
		client_transaction(sm, 100 + rnd_below(rnd_below(4) ? 800 : 4000), big);
		check_ownership(sm);
		if (big)
			CHECK(le64_to_cpu(sm->cl_freed.total_nr) > LIST_MAX &&
			              le32_to_cpu(sm->cl_freed.first_nr) < LIST_MAX,
			      "freed list of %llu entries didn't grow a block",
			      (unsigned long long)le64_to_cpu(sm->cl_freed.total_nr));
		if (c % 10 == 0) {
			block_cache_drop_clean(sm->td->bc);
			verify_client_tree(sm);
		}
	}
	verify_client_tree(sm);
	print_message("%llu cycles, client tree height %u, %llu free in the tree, %llu splices "
	              "onto a non-empty list\n",
	              (unsigned long long)cycles, sm->cl_root.height,
	              (unsigned long long)le64_to_cpu(sm->free_tree.total_len),
	              (unsigned long long)sm->nonempty_splices);
	CHECK(sm->nonempty_splices > 0, "never spliced onto a non-empty list");

	free(sm->owner);
	free(sm->avail_at_start);
	free(sm->txn_freed);
	free(sm->txn_alloced);
	free(sm->tree_at_start);
	free(sm->held);
	free(sm->cm);
	free(sm);
}

/* exact counts of a small list: two entries go to the head blocks, the rest allocate */
static void test_list_exhaustion(void **state)
{
	struct block_writer *wri;
	struct scoutfs_alloc_list_head avail = { 0 }, freed = { 0 };
	struct scoutfs_alloc_list_block *lb;
	struct block *bl;
	struct alloc a;
	u64 got[16];
	u64 blkno;
	int n = 0;

	rng_seed_test(3);
	g_td = tdev_create();
	assert_int_equal(block_writer_create(g_td->bc, &wri), 0);

	/* no list at all, or one entry: ENOSPC */
	alloc_init(&a, wri, &avail, &freed);
	CHECK_RET(alloc_meta(&a, &blkno), -ENOSPC);
	CHECK_RET(alloc_free_meta(&a, 100), -ENOSPC);
	CHECK(alloc_meta_low(&a, 1), "empty list not low");
	alloc_finish(&a, &avail, &freed);

	CHECK_RET(block_dirty_new(wri, 2, SCOUTFS_BLOCK_MAGIC_ALLOC_LIST, &avail.ref, &bl), 0);
	lb = bl->data;
	for (int i = 0; i < 10; i++)
		lb->blknos[i] = cpu_to_le64(10 + i);
	lb->nr = cpu_to_le32(10);
	block_put(g_td->bc, bl);
	avail.total_nr = cpu_to_le64(10);
	avail.first_nr = cpu_to_le32(10);
	CHECK_RET(block_writer_write(wri), 0);

	alloc_init(&a, wri, &avail, &freed);
	/* two of the ten become the list heads: eight can be allocated */
	CHECK(!alloc_meta_low(&a, 8) && alloc_meta_low(&a, 9), "low before use");
	while (alloc_meta(&a, &got[n]) == 0) {
		CHECK(got[n] >= 12 && got[n] < 20, "allocated %llu", (unsigned long long)got[n]);
		n++;
		CHECK(n < 16, "too many allocations");
		CHECK(!alloc_meta_low(&a, 8 - n) && alloc_meta_low(&a, 9 - n),
		      "low after %d allocations", n);
	}
	CHECK(n == 8, "allocated %d of 10 (2 hold the list heads)", n);
	CHECK(alloc_meta_low(&a, 1), "exhausted list not low");
	for (int i = 0; i < n; i++)
		CHECK_RET(alloc_free_meta(&a, got[i]), 0);
	alloc_finish(&a, &avail, &freed);
	CHECK_RET(block_writer_write(wri), 0);
	/* freed: the 8 blocks and the avail list's old location (2) */
	CHECK(le64_to_cpu(freed.total_nr) == 9 && le32_to_cpu(freed.first_nr) == 9, "freed %llu/%u",
	      (unsigned long long)le64_to_cpu(freed.total_nr), le32_to_cpu(freed.first_nr));
	CHECK(avail.total_nr == 0 && avail.first_nr == 0, "avail counts");
	CHECK(le64_to_cpu(avail.ref.blkno) == 10 && le64_to_cpu(freed.ref.blkno) == 11,
	      "heads moved to %llu and %llu", (unsigned long long)le64_to_cpu(avail.ref.blkno),
	      (unsigned long long)le64_to_cpu(freed.ref.blkno));
	block_writer_destroy(wri);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_extent_trees, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_exhaustion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transaction_allocator, setup, teardown),
	};

	model_support_init("ALLOC");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
