/*
 * test_btree.c: the copy-on-write btree against an in-memory model.
 *
 * The metadata device is a sparse temporary file.  A test block allocator hands out block
 * numbers, tracks every number's state (live, freed in the open transaction, reusable,
 * protected by a kept older root) and fails the test on a double free, on a free of a
 * number it never handed out, or on handing out a number that a live or kept committed
 * tree still references.  After every commit the live numbers must be exactly the blocks
 * of the current tree: no leak, no block freed while still referenced.
 *
 * Randomized operation sequences (seed printed; BTREE_TEST_SEED=n replays them) are
 * checked against a model keyed by a 64-bit index that maps monotonically onto scoutfs
 * keys, so model order is key order.  Full verifications iterate with btree_next and
 * btree_prev, visit every block with btree_block_verify, check that parent keys bound
 * their children and that the rightmost spine is all-ones, and compare every item.
 * BTREE_TEST_LONG=1 runs many more operations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the four above */
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "block/block.h"
#include "btree/btree.h"
#include "dev/dev.h"
#include "format/format.h"
#include "format/key.h"
#include "util/counters.h"
#include "util/util.h"

#include "model_support.h"

#define TEST_FSID 0x5c0f5e7e57b7ee01ULL
#define MAX_VAL   SCOUTFS_BTREE_MAX_VAL_LEN
#define VAL_SALT  0xabcdef

/* ------------------------------------------------------------------------------------ */
/* the test block allocator */

enum bstate {
	BS_NEVER = 0, /* never handed out */
	BS_LIVE,      /* handed out and not freed */
	BS_PENDING,   /* freed in the open transaction */
	BS_REUSABLE,  /* freed by a committed transaction, may be handed out again */
	BS_DEFERRED,  /* freed but still referenced by a kept older root */
	BS_GONE,      /* freed with reuse disabled */
};

struct talloc {
	u8 *state;
	u8 *protect; /* referenced by a kept committed root */
	u64 next;
	bool reuse;
	u64 *reusable;
	size_t nr_reusable;
	u64 *pending;
	size_t nr_pending;
	u64 *deferred;
	size_t nr_deferred;
	u64 nr_live;
	u64 nr_allocs;
	u64 nr_frees;
	unsigned int fail_per_mille; /* inject -ENOSPC */
	/* every number freed while recording, in order */
	bool recording;
	u64 *rec;
	size_t nr_rec;
};

static int ta_alloc(void *arg, u64 *blkno)
{
	struct talloc *ta = arg;
	u64 b;

	if (ta->fail_per_mille && rnd_below(1000) < ta->fail_per_mille)
		return -ENOSPC;
	if (ta->reuse && ta->nr_reusable && (ta->next >= MODEL_DEV_BLOCKS || rnd_below(4))) {
		size_t i = rnd_below(ta->nr_reusable);

		b = ta->reusable[i];
		ta->reusable[i] = ta->reusable[--ta->nr_reusable];
	} else {
		CHECK(ta->next < MODEL_DEV_BLOCKS, "test device full");
		b = ta->next++;
	}
	CHECK(ta->state[b] == BS_NEVER || ta->state[b] == BS_REUSABLE,
	      "allocating block %llu in state %u", (unsigned long long)b, ta->state[b]);
	CHECK(!ta->protect[b], "allocating block %llu still referenced by a kept root",
	      (unsigned long long)b);
	ta->state[b] = BS_LIVE;
	ta->nr_live++;
	ta->nr_allocs++;
	*blkno = b;
	return 0;
}

static int ta_free(void *arg, u64 blkno)
{
	struct talloc *ta = arg;

	CHECK(blkno >= SCOUTFS_META_DEV_START_BLKNO && blkno < MODEL_DEV_BLOCKS,
	      "freeing bad blkno %llu", (unsigned long long)blkno);
	CHECK(ta->state[blkno] == BS_LIVE, "freeing block %llu in state %u (double free?)",
	      (unsigned long long)blkno, ta->state[blkno]);
	ta->state[blkno] = BS_PENDING;
	ta->pending[ta->nr_pending++] = blkno;
	ta->nr_live--;
	ta->nr_frees++;
	if (ta->recording)
		ta->rec[ta->nr_rec++] = blkno;
	return 0;
}

static void ta_init(struct talloc *ta, bool reuse)
{
	memset(ta, 0, sizeof(*ta));
	ta->state = calloc(MODEL_DEV_BLOCKS, 1);
	ta->protect = calloc(MODEL_DEV_BLOCKS, 1);
	ta->reusable = calloc(MODEL_DEV_BLOCKS, sizeof(u64));
	ta->pending = calloc(MODEL_DEV_BLOCKS, sizeof(u64));
	ta->deferred = calloc(MODEL_DEV_BLOCKS, sizeof(u64));
	ta->rec = calloc(MODEL_DEV_BLOCKS, sizeof(u64));
	assert_non_null(ta->state);
	assert_non_null(ta->protect);
	assert_non_null(ta->reusable);
	assert_non_null(ta->pending);
	assert_non_null(ta->deferred);
	assert_non_null(ta->rec);
	ta->next = SCOUTFS_META_DEV_START_BLKNO;
	ta->reuse = reuse;
}

static void ta_destroy(struct talloc *ta)
{
	free(ta->state);
	free(ta->protect);
	free(ta->reusable);
	free(ta->pending);
	free(ta->deferred);
	free(ta->rec);
}

/* the transaction that freed pending numbers is durable */
static void ta_commit(struct talloc *ta)
{
	for (size_t i = 0; i < ta->nr_pending; i++) {
		u64 b = ta->pending[i];

		if (!ta->reuse) {
			ta->state[b] = BS_GONE;
		} else if (ta->protect[b]) {
			ta->state[b] = BS_DEFERRED;
			ta->deferred[ta->nr_deferred++] = b;
		} else {
			ta->state[b] = BS_REUSABLE;
			ta->reusable[ta->nr_reusable++] = b;
		}
	}
	ta->nr_pending = 0;
}

/* protection changed: deferred numbers no longer protected become reusable */
static void ta_release_deferred(struct talloc *ta)
{
	size_t i = 0;

	while (i < ta->nr_deferred) {
		u64 b = ta->deferred[i];

		if (!ta->protect[b]) {
			ta->state[b] = BS_REUSABLE;
			ta->reusable[ta->nr_reusable++] = b;
			ta->deferred[i] = ta->deferred[--ta->nr_deferred];
		} else {
			i++;
		}
	}
}

/*
 * A permissive allocator for modifications that are expected to fail on damaged trees:
 * numbers from the top of the device, frees ignored (the transaction is forgotten).
 */
static u64 junk_next = MODEL_DEV_BLOCKS - 1;

static int junk_alloc(void *arg, u64 *blkno)
{
	*blkno = junk_next--;
	return 0;
}

static int junk_free(void *arg, u64 blkno)
{
	return 0;
}

static const struct block_allocator junk_ba = { .alloc_meta = junk_alloc, .free_meta = junk_free };

static int noop_item_cb(const struct scoutfs_key *key, u64 seq, u8 flags, const void *val,
                        unsigned int val_len, void *arg)
{
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* the device, cache and transaction */

struct tctx {
	struct dev *dev;
	struct block_cache *bc;
	struct block_writer *wri;
	struct talloc ta;
	struct block_allocator ba;
	struct btree_txn txn;
	void *raw; /* a block buffer for corrupting the device */
};

static struct tctx *ctx_create_flags(bool reuse, size_t cache_blocks, int dev_flags)
{
	struct tctx *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	model_dev_open("test_btree", TEST_FSID, cache_blocks, dev_flags, &t->dev, &t->bc);
	assert_int_equal(block_writer_create(t->bc, &t->wri), 0);
	ta_init(&t->ta, reuse);
	t->ba.alloc_meta = ta_alloc;
	t->ba.free_meta = ta_free;
	t->ba.arg = &t->ta;
	t->txn.wri = t->wri;
	t->txn.alloc = &t->ba;
	t->raw = dev_alloc_buf(SCOUTFS_BLOCK_LG_SIZE);
	assert_non_null(t->raw);
	return t;
}

static struct tctx *ctx_create(bool reuse, size_t cache_blocks)
{
	return ctx_create_flags(reuse, cache_blocks, 0);
}

static void ctx_destroy(struct tctx *t)
{
	block_writer_destroy(t->wri);
	model_dev_close(t->dev, t->bc);
	ta_destroy(&t->ta);
	free(t->raw);
	free(t);
}

/* write the transaction and start the next one with a new writer */
static void commit(struct tctx *t)
{
	CHECK_RET(block_writer_write(t->wri), 0);
	CHECK(!block_writer_has_dirty(t->wri), "dirty blocks after a write");
	block_writer_destroy(t->wri);
	assert_int_equal(block_writer_create(t->bc, &t->wri), 0);
	t->txn.wri = t->wri;
	ta_commit(&t->ta);
}

/* ------------------------------------------------------------------------------------ */
/* the model: items indexed by a number that maps monotonically onto keys */

struct ment {
	u64 seq;
	u64 dval; /* the le64 value of delta items */
	u32 ver;  /* value bytes are derived from (k, ver) */
	u16 len;
	u8 flags;
	u8 present;
};

struct model {
	u64 nkeys;
	struct ment *e;
	u64 *bits;
	u64 count;
};

static void model_init(struct model *m, u64 nkeys)
{
	m->nkeys = nkeys;
	m->e = calloc(nkeys, sizeof(*m->e));
	m->bits = calloc(DIV_ROUND_UP(nkeys, 64), sizeof(u64));
	m->count = 0;
	assert_non_null(m->e);
	assert_non_null(m->bits);
}

static void model_free(struct model *m)
{
	free(m->e);
	free(m->bits);
	memset(m, 0, sizeof(*m));
}

static void model_copy(struct model *dst, const struct model *src)
{
	model_init(dst, src->nkeys);
	memcpy(dst->e, src->e, src->nkeys * sizeof(*src->e));
	memcpy(dst->bits, src->bits, DIV_ROUND_UP(src->nkeys, 64) * sizeof(u64));
	dst->count = src->count;
}

static void model_set(struct model *m, u64 k, const struct ment *me)
{
	if (!m->e[k].present) {
		m->bits[k / 64] |= 1ULL << (k % 64);
		m->count++;
	}
	m->e[k] = *me;
	m->e[k].present = 1;
}

static void model_del(struct model *m, u64 k)
{
	if (m->e[k].present) {
		m->bits[k / 64] &= ~(1ULL << (k % 64));
		m->count--;
	}
	memset(&m->e[k], 0, sizeof(m->e[k]));
}

/* first present k >= k, or nkeys */
static u64 model_next(const struct model *m, u64 k)
{
	u64 w, word;

	if (k >= m->nkeys)
		return m->nkeys;
	w = k / 64;
	word = m->bits[w] & (~0ULL << (k % 64));
	for (;;) {
		if (word)
			return min_t(u64, w * 64 + __builtin_ctzll(word), m->nkeys);
		if (++w >= DIV_ROUND_UP(m->nkeys, 64))
			return m->nkeys;
		word = m->bits[w];
	}
}

/* last present k <= k, or ~0 */
static u64 model_prev(const struct model *m, u64 k)
{
	u64 w, word;
	s64 sw;

	if (k >= m->nkeys)
		k = m->nkeys - 1;
	w = k / 64;
	word = m->bits[w] & (~0ULL >> (63 - (k % 64)));
	for (sw = (s64)w;;) {
		if (word)
			return (u64)sw * 64 + 63 - __builtin_clzll(word);
		if (--sw < 0)
			return ~0ULL;
		word = m->bits[sw];
	}
}

/* k -> key, monotonically: every key field takes part */
static struct scoutfs_key key_of(u64 k)
{
	return key_make(SCOUTFS_FS_ZONE, k >> 16, (k >> 8) & 0xff, (k >> 4) & 0xf, (k >> 2) & 0x3,
	                k & 0x3);
}

static bool k_of_key(const struct scoutfs_key *key, u64 *k)
{
	u64 v;

	if (key->sk_zone != SCOUTFS_FS_ZONE || key_second(key) > 0xf || key_third(key) > 3 ||
	    key_fourth(key) > 3 || key_first(key) > (~0ULL >> 16))
		return false;
	v = (key_first(key) << 16) | ((u64)key->sk_type << 8) | (key_second(key) << 4) |
	    (key_third(key) << 2) | key_fourth(key);
	*k = v;
	return true;
}

/* the expected value bytes of a model entry */
static unsigned int model_val(u64 k, const struct ment *me, u8 *buf)
{
	if (me->flags & SCOUTFS_ITEM_FLAG_DELTA) {
		le64 v = cpu_to_le64(me->dval);

		memcpy(buf, &v, sizeof(v));
		return sizeof(v);
	}
	model_fill_val(k, me->ver, VAL_SALT, me->len, buf);
	return me->len;
}

static void check_item(const struct model *m, const struct scoutfs_key *key, u64 seq, u8 flags,
                       const void *val, unsigned int val_len, const char *what)
{
	u8 want[MAX_VAL];
	unsigned int want_len;
	char kb[KEY_STR_LEN];
	u64 k;

	CHECK(k_of_key(key, &k) && k < m->nkeys, "%s: foreign key %s", what, key_str(key, kb));
	CHECK(m->e[k].present, "%s: key %llu present in tree, not in model", what,
	      (unsigned long long)k);
	want_len = model_val(k, &m->e[k], want);
	CHECK(val_len == want_len, "%s: key %llu len %u want %u", what, (unsigned long long)k,
	      val_len, want_len);
	CHECK(val_len == 0 || memcmp(val, want, val_len) == 0, "%s: key %llu value differs", what,
	      (unsigned long long)k);
	CHECK(seq == m->e[k].seq && flags == m->e[k].flags,
	      "%s: key %llu seq %llu flags %u want %llu %u", what, (unsigned long long)k,
	      (unsigned long long)seq, flags, (unsigned long long)m->e[k].seq, m->e[k].flags);
}

/* ------------------------------------------------------------------------------------ */
/* full verification */

struct vlevel {
	struct scoutfs_key lo; /* exclusive, unless lo_none */
	bool lo_none;
	struct scoutfs_key hi; /* inclusive */
	struct scoutfs_key *keys;
	unsigned int nr;
	unsigned int next_child;
	bool active;
};

struct vstate {
	const struct model *m;
	int height;
	struct vlevel lv[SCOUTFS_BTREE_MAX_HEIGHT];
	u64 *blknos;
	size_t nr_blocks;
	size_t max_blocks;
	u64 nr_items;
	struct scoutfs_key last;
	bool have_last;
	u64 leaves;
};

static void vlevel_done(struct vlevel *lv)
{
	if (lv->active)
		CHECK(lv->next_child == lv->nr, "parent visited %u of %u children", lv->next_child,
		      lv->nr);
	free(lv->keys);
	lv->keys = NULL;
	lv->active = false;
}

static int verify_block_cb(void *arg, const struct scoutfs_block_ref *ref, int level,
                           const struct scoutfs_btree_block *bt, int read_err)
{
	struct vstate *vs = arg;
	struct scoutfs_key lo = { 0 }, hi = key_ones();
	bool lo_none = true;
	unsigned int nr, i;
	char why[128];
	char kb[KEY_STR_LEN];

	CHECK(read_err == 0 && bt, "block %llu read error %d", (unsigned long long)ref->blkno,
	      read_err);
	CHECK(btree_block_verify(bt, why, sizeof(why)) == 0, "block %llu: %s",
	      (unsigned long long)le64_to_cpu(ref->blkno), why);
	CHECK(bt->level == level, "block level %u visited at %d", bt->level, level);
	CHECK(le64_to_cpu(bt->hdr.blkno) == le64_to_cpu(ref->blkno) && bt->hdr.seq == ref->seq,
	      "header does not match ref");
	CHECK(vs->nr_blocks < vs->max_blocks, "too many blocks");
	vs->blknos[vs->nr_blocks++] = le64_to_cpu(ref->blkno);
	nr = le16_to_cpu(bt->nr_items);

	if (level < vs->height - 1) {
		struct vlevel *par = &vs->lv[level + 1];
		unsigned int j = par->next_child++;

		CHECK(par->active && j < par->nr, "block not expected by its parent");
		hi = par->keys[j];
		if (j > 0) {
			lo = par->keys[j - 1];
			lo_none = false;
		} else {
			lo = par->lo;
			lo_none = par->lo_none;
		}
		/* every non-root parent holds at least one child */
		if (level > 0)
			CHECK(nr > 0, "empty parent");
	} else {
		/* the root: a non-empty tree has no empty root */
		CHECK(nr > 0, "empty root block at height %d", vs->height);
	}

	for (i = 0; i < nr; i++) {
		const struct scoutfs_key *k = &bt->items[i].key;

		CHECK(lo_none || key_compare(k, &lo) > 0, "item %s not above parent bound",
		      key_str(k, kb));
		CHECK(key_compare(k, &hi) <= 0, "item %s above parent key", key_str(k, kb));
	}

	if (level > 0) {
		struct vlevel *me = &vs->lv[level];

		/* the rightmost spine keys are all ones */
		if (key_is_ones(&hi))
			CHECK(key_is_ones(&bt->items[nr - 1].key), "rightmost parent key not ones");
		vlevel_done(me);
		me->keys = malloc(nr * sizeof(*me->keys));
		assert_non_null(me->keys);
		for (i = 0; i < nr; i++)
			me->keys[i] = bt->items[i].key;
		me->nr = nr;
		me->next_child = 0;
		me->lo = lo;
		me->lo_none = lo_none;
		me->hi = hi;
		me->active = true;
	} else {
		vs->leaves++;
	}
	return 0;
}

static int verify_item_cb(void *arg, const struct scoutfs_key *key, u64 seq, u8 flags,
                          const void *val, unsigned int val_len)
{
	struct vstate *vs = arg;

	if (vs->have_last)
		CHECK(key_compare(&vs->last, key) < 0, "visit items out of order");
	vs->last = *key;
	vs->have_last = true;
	vs->nr_items++;
	if (vs->m)
		check_item(vs->m, key, seq, flags, val, val_len, "visit");
	return 0;
}

/*
 * Visit every block: verify it, check bounds, collect block numbers.  Returns the number
 * of blocks; *blknos (malloced) holds them.
 */
static size_t visit_tree(struct tctx *t, const struct scoutfs_btree_root *root,
                         const struct model *m, u64 **blknos, u64 *leaves)
{
	struct btree_visit_ops ops = { .block = verify_block_cb, .item = verify_item_cb };
	struct vstate vs;
	u64 counted;
	int i;

	memset(&vs, 0, sizeof(vs));
	vs.m = m;
	vs.height = root->height;
	vs.max_blocks = MODEL_DEV_BLOCKS;
	vs.blknos = malloc(MODEL_DEV_BLOCKS * sizeof(u64));
	assert_non_null(vs.blknos);
	CHECK(root->height <= SCOUTFS_BTREE_MAX_HEIGHT, "height %u", root->height);
	if (root->height == 0)
		CHECK(root->ref.blkno == 0 && root->ref.seq == 0, "empty root with a ref");
	CHECK_RET(btree_visit(t->bc, root, &ops, &vs), 0);
	for (i = 0; i < SCOUTFS_BTREE_MAX_HEIGHT; i++)
		vlevel_done(&vs.lv[i]);
	if (m)
		CHECK(vs.nr_items == m->count, "visit saw %llu items, model has %llu",
		      (unsigned long long)vs.nr_items, (unsigned long long)m->count);
	if (leaves)
		*leaves = vs.leaves;
	CHECK_RET(btree_count_blocks(t->bc, root, &counted), 0);
	CHECK(counted == vs.nr_blocks, "count_blocks %llu, visit saw %llu",
	      (unsigned long long)counted, (unsigned long long)vs.nr_blocks);
	*blknos = vs.blknos;
	return vs.nr_blocks;
}

static void verify_iterate(struct tctx *t, const struct scoutfs_btree_root *root,
                           const struct model *m)
{
	struct btree_item_ref iref;
	struct scoutfs_key key;
	u64 k, mk;
	int err;

	/* forward */
	key = key_zeros();
	mk = model_next(m, 0);
	for (;;) {
		err = btree_next(t->bc, root, &key, &iref);
		if (err == -ENOENT) {
			CHECK(mk == m->nkeys, "next ended early, model has %llu",
			      (unsigned long long)mk);
			break;
		}
		CHECK(err == 0, "next err %d", err);
		CHECK(k_of_key(&iref.key, &k) && k == mk, "next found %llu want %llu",
		      (unsigned long long)k, (unsigned long long)mk);
		check_item(m, &iref.key, iref.seq, iref.flags, iref.val, iref.val_len, "next");
		btree_iref_put(&iref);
		mk = model_next(m, k + 1);
		key = key_of(k);
		key_inc(&key);
	}

	/* backward */
	key = key_ones();
	mk = model_prev(m, m->nkeys - 1);
	for (;;) {
		err = btree_prev(t->bc, root, &key, &iref);
		if (err == -ENOENT) {
			CHECK(mk == ~0ULL, "prev ended early, model has %llu",
			      (unsigned long long)mk);
			break;
		}
		CHECK(err == 0, "prev err %d", err);
		CHECK(k_of_key(&iref.key, &k) && k == mk, "prev found %llu want %llu",
		      (unsigned long long)k, (unsigned long long)mk);
		check_item(m, &iref.key, iref.seq, iref.flags, iref.val, iref.val_len, "prev");
		btree_iref_put(&iref);
		mk = k ? model_prev(m, k - 1) : ~0ULL;
		key = key_of(k);
		key_dec(&key);
	}
}

/* everything: structure, contents both ways, and (optionally) no leaked or lost blocks */
static void verify_full(struct tctx *t, const struct scoutfs_btree_root *root,
                        const struct model *m, bool check_live)
{
	u64 *blknos;
	size_t nr, i;

	nr = visit_tree(t, root, m, &blknos, NULL);
	if (check_live) {
		for (i = 0; i < nr; i++)
			CHECK(t->ta.state[blknos[i]] == BS_LIVE, "tree block %llu is in state %u",
			      (unsigned long long)blknos[i], t->ta.state[blknos[i]]);
		CHECK(nr == t->ta.nr_live, "tree has %zu blocks, allocator has %llu live", nr,
		      (unsigned long long)t->ta.nr_live);
	}
	free(blknos);
	verify_iterate(t, root, m);
}

/* ------------------------------------------------------------------------------------ */
/* random operations */

enum dist {
	DIST_RANDOM = 0,
	DIST_CLUSTER,
	DIST_SEQ_UP,
	DIST_SEQ_DOWN,
	DIST_NR,
};

struct keygen {
	enum dist dist;
	u64 nkeys;
	u64 center;
	u64 pos;
	u64 left;
};

static u64 keygen_next(struct keygen *kg)
{
	if (kg->left == 0) {
		kg->dist = rnd_below(DIST_NR);
		kg->left = 50 + rnd_below(2000);
		kg->center = rnd_below(kg->nkeys);
		kg->pos = kg->center;
	}
	kg->left--;
	switch (kg->dist) {
	case DIST_CLUSTER:
		return (kg->center + rnd_below(256)) % kg->nkeys;
	case DIST_SEQ_UP:
		kg->pos = (kg->pos + 1 + rnd_below(2)) % kg->nkeys;
		return kg->pos;
	case DIST_SEQ_DOWN:
		kg->pos = (kg->pos + kg->nkeys - 1 - rnd_below(2)) % kg->nkeys;
		return kg->pos;
	default:
		return rnd_below(kg->nkeys);
	}
}

static unsigned int rnd_len(unsigned int big_pct)
{
	unsigned int r = rnd_below(100);

	if (r < big_pct)
		return MAX_VAL - rnd_below(MAX_VAL / 2);
	r = rnd_below(10);
	if (r == 0)
		return 0;
	if (r < 4)
		return 1 + rnd_below(64);
	if (r == 4)
		return MAX_VAL;
	return rnd_below(MAX_VAL + 1);
}

enum op {
	OP_INSERT = 0,
	OP_UPDATE,
	OP_FORCE,
	OP_DELETE,
	OP_DIRTY,
	OP_LOOKUP,
	OP_NEXT,
	OP_PREV,
	OP_NR,
};

/* one random operation on root checked against m */
static void do_op(struct tctx *t, struct scoutfs_btree_root *root, struct model *m, enum op op,
                  u64 k, unsigned int len)
{
	u8 val[MAX_VAL];
	struct scoutfs_key key = key_of(k);
	struct btree_item_ref iref;
	struct ment me = { 0 };
	bool present = m->e[k].present;
	u64 allocs;
	u64 mk;
	int err;

	g_op++;
	me.ver = (u32)rnd();
	me.len = len;
	model_fill_val(k, me.ver, VAL_SALT, len, val);

	switch (op) {
	case OP_INSERT:
		err = btree_insert(&t->txn, root, &key, val, len);
		if (err == -ENOSPC && t->ta.fail_per_mille)
			break;
		CHECK(err == (present ? -EEXIST : 0), "insert %llu err %d present %d",
		      (unsigned long long)k, err, present);
		if (!present)
			model_set(m, k, &me);
		break;
	case OP_UPDATE:
		err = btree_update(&t->txn, root, &key, val, len);
		if (err == -ENOSPC && t->ta.fail_per_mille)
			break;
		CHECK(err == (present ? 0 : -ENOENT), "update %llu err %d present %d",
		      (unsigned long long)k, err, present);
		if (present)
			model_set(m, k, &me);
		break;
	case OP_FORCE:
		err = btree_force(&t->txn, root, &key, val, len);
		if (err == -ENOSPC && t->ta.fail_per_mille)
			break;
		CHECK(err == 0, "force %llu err %d", (unsigned long long)k, err);
		model_set(m, k, &me);
		break;
	case OP_DELETE:
		err = btree_delete(&t->txn, root, &key);
		if (err == -ENOSPC && t->ta.fail_per_mille)
			break;
		CHECK(err == (present ? 0 : -ENOENT), "delete %llu err %d present %d",
		      (unsigned long long)k, err, present);
		model_del(m, k);
		if (m->count == 0)
			CHECK(root->height == 0 && root->ref.blkno == 0,
			      "empty tree keeps height %u", root->height);
		break;
	case OP_DIRTY:
		err = btree_dirty(&t->txn, root, &key);
		if (err == -ENOSPC && t->ta.fail_per_mille)
			break;
		CHECK(err == (present ? 0 : -ENOENT), "dirty %llu err %d present %d",
		      (unsigned long long)k, err, present);
		if (present) {
			/* a same-sized update after dirty allocates nothing and cannot fail */
			unsigned int fail = t->ta.fail_per_mille;

			me.len = m->e[k].len;
			model_fill_val(k, me.ver, VAL_SALT, me.len, val);
			allocs = t->ta.nr_allocs;
			t->ta.fail_per_mille = 1000;
			err = btree_update(&t->txn, root, &key, val, me.len);
			t->ta.fail_per_mille = fail;
			CHECK(err == 0, "update after dirty err %d", err);
			CHECK(t->ta.nr_allocs == allocs, "update after dirty allocated");
			model_set(m, k, &me);
		}
		break;
	case OP_LOOKUP:
		err = btree_lookup(t->bc, root, &key, &iref);
		CHECK(err == (present ? 0 : -ENOENT), "lookup %llu err %d present %d",
		      (unsigned long long)k, err, present);
		if (err == 0) {
			check_item(m, &iref.key, iref.seq, iref.flags, iref.val, iref.val_len,
			           "lookup");
			CHECK(key_compare(&iref.key, &key) == 0, "lookup returned another key");
			btree_iref_put(&iref);
		}
		break;
	case OP_NEXT:
		mk = model_next(m, k);
		err = btree_next(t->bc, root, &key, &iref);
		if (mk == m->nkeys) {
			CHECK(err == -ENOENT, "next %llu err %d, model has none",
			      (unsigned long long)k, err);
		} else {
			u64 got = ~0ULL;

			CHECK(err == 0, "next %llu err %d", (unsigned long long)k, err);
			CHECK(k_of_key(&iref.key, &got) && got == mk,
			      "next %llu got %llu want %llu", (unsigned long long)k,
			      (unsigned long long)got, (unsigned long long)mk);
			check_item(m, &iref.key, iref.seq, iref.flags, iref.val, iref.val_len,
			           "next");
			btree_iref_put(&iref);
		}
		break;
	case OP_PREV:
		mk = model_prev(m, k);
		err = btree_prev(t->bc, root, &key, &iref);
		if (mk == ~0ULL) {
			CHECK(err == -ENOENT, "prev %llu err %d, model has none",
			      (unsigned long long)k, err);
		} else {
			u64 got = ~0ULL;

			CHECK(err == 0, "prev %llu err %d", (unsigned long long)k, err);
			CHECK(k_of_key(&iref.key, &got) && got == mk,
			      "prev %llu got %llu want %llu", (unsigned long long)k,
			      (unsigned long long)got, (unsigned long long)mk);
			check_item(m, &iref.key, iref.seq, iref.flags, iref.val, iref.val_len,
			           "prev");
			btree_iref_put(&iref);
		}
		break;
	default:
		break;
	}
}

/* pick an op with weights; write ops favour inserts while growing, deletes while shrinking */
static enum op pick_op(int grow)
{
	unsigned int r = rnd_below(100);

	if (grow > 0) {
		if (r < 55)
			return OP_INSERT;
		if (r < 65)
			return OP_FORCE;
		if (r < 72)
			return OP_UPDATE;
		if (r < 75)
			return OP_DELETE;
	} else if (grow < 0) {
		if (r < 70)
			return OP_DELETE;
		if (r < 73)
			return OP_INSERT;
		if (r < 78)
			return OP_UPDATE;
	} else {
		if (r < 22)
			return OP_INSERT;
		if (r < 30)
			return OP_FORCE;
		if (r < 42)
			return OP_UPDATE;
		if (r < 64)
			return OP_DELETE;
	}
	r = rnd_below(4);
	return r == 0 ? OP_DIRTY : r == 1 ? OP_LOOKUP : r == 2 ? OP_NEXT : OP_PREV;
}

/* a present key near k, or k */
static u64 present_near(const struct model *m, u64 k)
{
	u64 p = model_next(m, k);

	if (p == m->nkeys)
		p = model_prev(m, k);
	return p == ~0ULL ? k : p;
}

/* ------------------------------------------------------------------------------------ */
/* tests */

static struct tctx *g_t;

static int setup_ctx(void **state)
{
	*state = NULL;
	return 0;
}

static int teardown_ctx(void **state)
{
	if (g_t) {
		ctx_destroy(g_t);
		g_t = NULL;
	}
	return 0;
}

static void test_empty_and_limits(void **state)
{
	struct tctx *t = g_t = ctx_create(true, 0);
	struct scoutfs_btree_root root = { 0 };
	struct scoutfs_key key = key_of(5);
	struct scoutfs_key s = key_zeros(), e = key_ones();
	struct btree_item_ref iref;
	u8 val[MAX_VAL + 8] = { 0 };
	struct scoutfs_key cursor = key_zeros();

	rng_seed_test(1);
	CHECK_RET(btree_lookup(t->bc, &root, &key, &iref), -ENOENT);
	CHECK_RET(btree_next(t->bc, &root, &key, &iref), -ENOENT);
	CHECK_RET(btree_prev(t->bc, &root, &key, &iref), -ENOENT);
	CHECK_RET(btree_update(&t->txn, &root, &key, val, 1), -ENOENT);
	CHECK_RET(btree_delete(&t->txn, &root, &key), -ENOENT);
	CHECK_RET(btree_dirty(&t->txn, &root, &key), -ENOENT);
	CHECK_RET(btree_read_items(t->bc, &root, &key, &s, &e, noop_item_cb, NULL), 0);
	CHECK(key_is_zeros(&s) && key_is_ones(&e), "empty read_items narrowed the range");
	CHECK(root.height == 0 && t->ta.nr_allocs == 0, "empty ops allocated");
	CHECK_RET(btree_insert(&t->txn, &root, &key, val, MAX_VAL + 1), -EINVAL);
	CHECK_RET(btree_force(&t->txn, &root, &key, val, MAX_VAL + 1), -EINVAL);
	CHECK(root.height == 0, "failed insert grew the tree");

	/* one item: a single leaf; deleting it empties the tree and frees the leaf */
	CHECK_RET(btree_insert(&t->txn, &root, &key, val, MAX_VAL), 0);
	CHECK(root.height == 1 && t->ta.nr_live == 1, "height %u live %llu", root.height,
	      (unsigned long long)t->ta.nr_live);
	CHECK_RET(btree_insert(&t->txn, &root, &key, val, 3), -EEXIST);
	CHECK_RET(btree_update(&t->txn, &root, &key, val, MAX_VAL + 1), -EINVAL);
	commit(t);
	CHECK_RET(btree_lookup(t->bc, &root, &key, &iref), 0);
	CHECK(iref.val_len == MAX_VAL && iref.seq == 0 && iref.flags == 0, "item fields");
	btree_iref_put(&iref);
	CHECK_RET(btree_delete(&t->txn, &root, &key), 0);
	CHECK(root.height == 0 && root.ref.blkno == 0, "tree not empty after the last delete");
	commit(t);
	CHECK(t->ta.nr_live == 0, "%llu blocks leaked", (unsigned long long)t->ta.nr_live);

	/* free_blocks of an empty tree and of a single leaf */
	CHECK_RET(btree_free_blocks(&t->txn, &root, &cursor, 10), 0);
	CHECK(key_is_ones(&cursor), "cursor of an empty tree");
	CHECK_RET(btree_insert(&t->txn, &root, &key, NULL, 0), 0);
	commit(t);
	cursor = key_zeros();
	CHECK_RET(btree_free_blocks(&t->txn, &root, &cursor, 10), 1);
	CHECK(key_is_ones(&cursor) && t->ta.nr_live == 0, "single leaf not freed");
	commit(t);
}

/*
 * Many random operations on a small key space: frequent collisions (EEXIST/ENOENT),
 * heights 1-2, verification every few hundred operations, random commits, and a phase
 * with allocation failures injected: a failed operation changes nothing.
 */
static void test_small_random(void **state)
{
	struct tctx *t = g_t = ctx_create(true, 64);
	struct scoutfs_btree_root root = { 0 };
	struct keygen kg = { .nkeys = 3000 };
	struct model m;
	u64 nops = g_long ? 400000 : 60000;
	u64 i, k;
	enum op op;
	int grow = 1;

	rng_seed_test(2);
	model_init(&m, kg.nkeys);
	for (i = 0; i < nops; i++) {
		if (i % 5000 == 0)
			grow = (int)rnd_below(3) - 1;
		t->ta.fail_per_mille = (i / 10000) % 3 == 2 ? 20 : 0;
		op = pick_op(grow);
		k = keygen_next(&kg);
		if ((op == OP_UPDATE || op == OP_DELETE || op == OP_DIRTY) && rnd_below(3))
			k = present_near(&m, k);
		do_op(t, &root, &m, op, k, rnd_len(grow > 0 ? 30 : 10));
		if (rnd_below(400) == 0) {
			t->ta.fail_per_mille = 0;
			verify_full(t, &root, &m, false);
			commit(t);
			verify_full(t, &root, &m, true);
		}
	}
	t->ta.fail_per_mille = 0;
	commit(t);
	verify_full(t, &root, &m, true);

	/* delete everything: the tree empties and every block is freed */
	for (k = model_next(&m, 0); k < m.nkeys; k = model_next(&m, k + 1))
		do_op(t, &root, &m, OP_DELETE, k, 0);
	CHECK(root.height == 0, "height %u after deleting all", root.height);
	commit(t);
	CHECK(t->ta.nr_live == 0, "%llu blocks leaked", (unsigned long long)t->ta.nr_live);
	model_free(&m);
}

struct snapshot {
	struct scoutfs_btree_root root;
	struct model m;
	bool used;
};

static void recompute_protect(struct tctx *t, struct snapshot *snaps, int nr)
{
	u64 *blknos;
	size_t n, j;

	memset(t->ta.protect, 0, MODEL_DEV_BLOCKS);
	for (int s = 0; s < nr; s++) {
		if (!snaps[s].used)
			continue;
		n = visit_tree(t, &snaps[s].root, NULL, &blknos, NULL);
		for (j = 0; j < n; j++)
			t->ta.protect[blknos[j]] = 1;
		free(blknos);
	}
	ta_release_deferred(&t->ta);
}

/*
 * Grow a tree to height >= 3 with mostly large values under every key distribution,
 * churn it, then delete nearly everything and finally everything: splits, joins, root
 * growth and shrinking.  Older committed roots are kept with copies of their models and
 * must keep reading their old contents while the tree moves on (their blocks are kept
 * from reuse; everything else freed is reused).
 */
#define NSNAP 3
static void test_large_grow_shrink(void **state)
{
	struct tctx *t = g_t = ctx_create(true, 0);
	struct scoutfs_btree_root root = { 0 };
	struct keygen kg = { .nkeys = 1ULL << 19 };
	struct snapshot snaps[NSNAP];
	struct model m;
	u64 max_items = g_long ? 200000 : 60000;
	u64 churn = g_long ? 600000 : 80000;
	u64 i, k, ops = 0, next_commit, next_verify;
	u64 splits0, joins0, grow0, shrink0, v;
	int max_height = 0;
	int s;

	rng_seed_test(3);
	memset(snaps, 0, sizeof(snaps));
	model_init(&m, kg.nkeys);
	counter_read("btree_split", &splits0);
	counter_read("btree_join", &joins0);
	counter_read("btree_root_grow", &grow0);
	counter_read("btree_root_shrink", &shrink0);
	next_commit = 1000 + rnd_below(4000);
	next_verify = 40000;

#define MAYBE_COMMIT_VERIFY()                                                                      \
	do {                                                                                       \
		ops++;                                                                             \
		max_height = max_t(int, max_height, root.height);                                  \
		if (ops >= next_commit) {                                                          \
			commit(t);                                                                 \
			next_commit = ops + 500 + rnd_below(5000);                                 \
			if (rnd_below(4) == 0) {                                                   \
				s = rnd_below(NSNAP);                                              \
				if (snaps[s].used)                                                 \
					model_free(&snaps[s].m);                                   \
				snaps[s].root = root;                                              \
				model_copy(&snaps[s].m, &m);                                       \
				snaps[s].used = true;                                              \
				recompute_protect(t, snaps, NSNAP);                                \
			}                                                                          \
		}                                                                                  \
		if (ops >= next_verify) {                                                          \
			next_verify = ops + 40000;                                                 \
			verify_full(t, &root, &m, false);                                          \
			for (s = 0; s < NSNAP; s++)                                                \
				if (snaps[s].used)                                                 \
					verify_full(t, &snaps[s].root, &snaps[s].m, false);        \
			block_cache_drop_clean(t->bc);                                             \
		}                                                                                  \
	} while (0)

	/* grow */
	while (m.count < max_items || root.height < 3) {
		CHECK(m.count < kg.nkeys / 2, "grew to %llu items without reaching height 3",
		      (unsigned long long)m.count);
		do_op(t, &root, &m, pick_op(1), keygen_next(&kg), rnd_len(70));
		MAYBE_COMMIT_VERIFY();
	}
	print_message("grew to %llu items, height %u\n", (unsigned long long)m.count, root.height);
	commit(t);
	verify_full(t, &root, &m, true);

	/* churn at the same size */
	for (i = 0; i < churn; i++) {
		enum op op = pick_op(0);

		k = keygen_next(&kg);
		if ((op == OP_UPDATE || op == OP_DELETE || op == OP_DIRTY) && rnd_below(2))
			k = present_near(&m, k);
		if (op == OP_INSERT && m.count > max_items)
			op = OP_DELETE;
		do_op(t, &root, &m, op, k, rnd_len(40));
		MAYBE_COMMIT_VERIFY();
	}
	commit(t);
	verify_full(t, &root, &m, true);

	/* shrink: delete nearly everything, mostly by walking runs of present keys */
	while (m.count > 50) {
		k = keygen_next(&kg);
		if (rnd_below(10))
			k = present_near(&m, k);
		do_op(t, &root, &m, pick_op(-1), k, rnd_len(10));
		MAYBE_COMMIT_VERIFY();
	}
	commit(t);
	for (s = 0; s < NSNAP; s++) {
		if (snaps[s].used) {
			block_cache_drop_clean(t->bc);
			verify_full(t, &snaps[s].root, &snaps[s].m, false);
			model_free(&snaps[s].m);
			snaps[s].used = false;
		}
	}
	recompute_protect(t, snaps, NSNAP);
	verify_full(t, &root, &m, true);
	CHECK(root.height <= 2, "height %u with %llu items left", root.height,
	      (unsigned long long)m.count);

	/* and the rest */
	for (k = model_next(&m, 0); k < m.nkeys; k = model_next(&m, k + 1))
		do_op(t, &root, &m, OP_DELETE, k, 0);
	CHECK(root.height == 0, "height %u after deleting all", root.height);
	commit(t);
	CHECK(t->ta.nr_live == 0, "%llu blocks leaked", (unsigned long long)t->ta.nr_live);

	CHECK(max_height >= 3, "only reached height %d", max_height);
	counter_read("btree_split", &v);
	CHECK(v > splits0, "no splits");
	counter_read("btree_join", &v);
	CHECK(v > joins0, "no joins");
	counter_read("btree_root_grow", &v);
	CHECK(v >= grow0 + 2, "root grew only %llu times", (unsigned long long)(v - grow0));
	counter_read("btree_root_shrink", &v);
	CHECK(v >= shrink0 + 2, "root shrank only %llu times", (unsigned long long)(v - shrink0));
	print_message("%llu ops, max height %d, allocs %llu\n", (unsigned long long)ops, max_height,
	              (unsigned long long)t->ta.nr_allocs);
	model_free(&m);
#undef MAYBE_COMMIT_VERIFY
}

/*
 * With reuse disabled nothing freed is ever handed out again: every committed root ever
 * taken stays readable.  Also checks that the last committed root reads its old contents
 * while the open transaction is rewriting the same keys.
 */
static void test_cow_old_roots(void **state)
{
	struct tctx *t = g_t = ctx_create(false, 256);
	struct scoutfs_btree_root root = { 0 };
	struct keygen kg = { .nkeys = 1ULL << 16 };
	struct snapshot snaps[8];
	struct model m;
	int nsnap = 0;
	u64 i;

	rng_seed_test(4);
	memset(snaps, 0, sizeof(snaps));
	model_init(&m, kg.nkeys);
	for (int round = 0; round < 8; round++) {
		for (i = 0; i < 3000; i++)
			do_op(t, &root, &m, pick_op(round < 5 ? 1 : -1), keygen_next(&kg),
			      rnd_len(50));
		/* the last committed root is untouched by the open transaction */
		if (nsnap)
			verify_full(t, &snaps[nsnap - 1].root, &snaps[nsnap - 1].m, false);
		commit(t);
		verify_full(t, &root, &m, true);
		snaps[nsnap].root = root;
		model_copy(&snaps[nsnap].m, &m);
		snaps[nsnap].used = true;
		nsnap++;
	}
	block_cache_drop_clean(t->bc);
	for (int s = 0; s < nsnap; s++) {
		verify_full(t, &snaps[s].root, &snaps[s].m, false);
		model_free(&snaps[s].m);
	}
	model_free(&m);
}

/* ---- insert_list ---- */

static int delta_add(const void *old_val, unsigned int old_len, const void *new_val,
                     unsigned int new_len, void *dst, unsigned int *dst_len)
{
	le64 a, b, sum;

	if (old_len != sizeof(le64) || new_len != sizeof(le64))
		return -EINVAL;
	memcpy(&a, old_val, sizeof(a));
	memcpy(&b, new_val, sizeof(b));
	sum = cpu_to_le64(le64_to_cpu(a) + le64_to_cpu(b));
	memcpy(dst, &sum, sizeof(sum));
	*dst_len = sizeof(sum);
	return le64_to_cpu(sum) == 0 ? 1 : 0;
}

static void free_list(struct btree_item_list *head)
{
	struct btree_item_list *li;

	while ((li = head)) {
		head = li->next;
		free(li);
	}
}

static void test_insert_list(void **state)
{
	struct tctx *t = g_t = ctx_create(true, 0);
	struct scoutfs_btree_root root = { 0 };
	struct keygen kg = { .nkeys = 1ULL << 17 };
	struct model m;
	u64 seq = 1;
	u64 rounds = g_long ? 2000 : 300;
	u64 total = 0;
	int max_height = 0;

	rng_seed_test(5);
	model_init(&m, kg.nkeys);
	for (u64 r = 0; r < rounds; r++) {
		struct btree_item_list *head = NULL, **tail = &head, *li;
		u64 nr = 1 + rnd_below(rnd_below(4) ? 300 : 3000);
		u64 k = rnd_below(kg.nkeys);
		bool use_delta = r % 4 != 3;
		struct ment me;

		/* a sorted list of distinct keys: clustered runs with gaps */
		for (u64 i = 0; i < nr; i++) {
			unsigned int len;
			u8 flags = 0;
			u32 ver = (u32)rnd();
			unsigned int c = rnd_below(10);

			k += 1 + (rnd_below(4) ? 0 : rnd_below(rnd_below(2) ? 16 : 5000));
			if (k >= kg.nkeys)
				break;
			/* keys that already hold deltas mostly get more deltas */
			if (m.e[k].present && (m.e[k].flags & SCOUTFS_ITEM_FLAG_DELTA) && c < 7)
				c = 9;
			if (c < 2) {
				flags = SCOUTFS_ITEM_FLAG_DELETION;
				len = 0;
			} else if (c == 9) {
				flags = SCOUTFS_ITEM_FLAG_DELTA;
				len = sizeof(le64);
			} else {
				len = rnd_len(30);
			}
			li = malloc(sizeof(*li) + len);
			assert_non_null(li);
			li->next = NULL;
			li->key = key_of(k);
			li->seq = seq++;
			li->flags = flags;
			li->val_len = len;
			memset(&me, 0, sizeof(me));
			me.seq = li->seq;
			me.flags = flags;
			if (flags & SCOUTFS_ITEM_FLAG_DELTA) {
				/* small values that often cancel what is stored */
				u64 d = m.e[k].present && rnd_below(2) ? -m.e[k].dval
				                                       : rnd_below(5) - 2;
				le64 dv = cpu_to_le64(d);

				memcpy(li->val, &dv, sizeof(dv));
				me.dval = d;
				if (use_delta && m.e[k].present &&
				    (m.e[k].flags & SCOUTFS_ITEM_FLAG_DELTA)) {
					me.dval = m.e[k].dval + d;
					if (me.dval == 0) {
						model_del(&m, k);
						goto added;
					}
				}
			} else {
				me.ver = ver;
				me.len = len;
				model_fill_val(k, ver, VAL_SALT, len, li->val);
			}
			model_set(&m, k, &me);
		added:
			*tail = li;
			tail = &li->next;
			total++;
		}
		g_op++;
		CHECK_RET(btree_insert_list(&t->txn, &root, head, use_delta ? delta_add : NULL), 0);
		free_list(head);
		max_height = max_t(int, max_height, root.height);

		/* plain deletes in between make leaves join */
		for (u64 i = 0; i < nr / 3; i++) {
			k = present_near(&m, rnd_below(kg.nkeys));
			if (m.e[k].present && rnd_below(3) == 0)
				do_op(t, &root, &m, OP_DELETE, k, 0);
		}
		if (rnd_below(5) == 0)
			commit(t);
		if (r % 50 == 49) {
			commit(t);
			verify_full(t, &root, &m, true);
		}
	}
	commit(t);
	verify_full(t, &root, &m, true);
	print_message("%llu list items, %llu in the tree, height %d\n", (unsigned long long)total,
	              (unsigned long long)m.count, max_height);
	CHECK(max_height >= 2, "insert_list only reached height %d", max_height);
	model_free(&m);
}

/* a delta combination that grows: the combined value is always the maximum size */
static int delta_grow(const void *old_val, unsigned int old_len, const void *new_val,
                      unsigned int new_len, void *dst, unsigned int *dst_len)
{
	memset(dst, 0x5a, MAX_VAL);
	memcpy(dst, new_val, min_t(unsigned int, new_len, MAX_VAL));
	*dst_len = MAX_VAL;
	return 0;
}

/*
 * A leaf with room for the list item but not for the value the delta function makes of
 * it: insert_list must split rather than retry the same walk forever.
 */
static void test_insert_list_growing_delta(void **state)
{
	struct tctx *t = g_t = ctx_create(true, 0);
	struct scoutfs_btree_root root = { 0 };
	struct btree_item_list *li;
	struct btree_item_ref iref;
	struct scoutfs_key key;
	u8 val[MAX_VAL] = { 0 };
	int i;

	rng_seed_test(9);
	/* 69 maximum items leave 352 bytes of a leaf's 65488 */
	for (i = 0; i < 69; i++) {
		key = key_of(i * 2);
		CHECK_RET(btree_insert(&t->txn, &root, &key, val, MAX_VAL), 0);
	}
	CHECK(root.height == 1, "height %u", root.height);
	li = calloc(1, sizeof(*li) + 8);
	assert_non_null(li);
	li->key = key_of(1001);
	li->seq = 1;
	li->flags = SCOUTFS_ITEM_FLAG_DELTA;
	li->val_len = 8;
	memset(li->val, 1, 8);
	CHECK_RET(btree_insert_list(&t->txn, &root, li, delta_grow), 0);
	CHECK(root.height == 1, "height %u", root.height);
	li->seq = 2;
	memset(li->val, 2, 8);
	CHECK_RET(btree_insert_list(&t->txn, &root, li, delta_grow), 0);
	key = key_of(1001);
	CHECK_RET(btree_lookup(t->bc, &root, &key, &iref), 0);
	CHECK(iref.val_len == MAX_VAL && iref.seq == 2 && ((u8 *)iref.val)[0] == 2 &&
	              ((u8 *)iref.val)[8] == 0x5a,
	      "combined item len %u seq %llu", iref.val_len, (unsigned long long)iref.seq);
	btree_iref_put(&iref);
	CHECK(root.height == 2, "the leaf didn't split (height %u)", root.height);
	free(li);
	commit(t);
}

/* ---- read_items ---- */

struct ri_state {
	const struct model *m;
	u64 *ks;
	size_t nr;
	size_t max;
};

static int ri_cb(const struct scoutfs_key *key, u64 seq, u8 flags, const void *val,
                 unsigned int val_len, void *arg)
{
	struct ri_state *rs = arg;
	u64 k;

	CHECK(k_of_key(key, &k), "read_items foreign key");
	CHECK(rs->nr < rs->max, "read_items reported too many items");
	CHECK(rs->nr == 0 || rs->ks[rs->nr - 1] < k, "read_items out of order");
	check_item(rs->m, key, seq, flags, val, val_len, "read_items");
	rs->ks[rs->nr++] = k;
	return 0;
}

/* the model keys in [start, end], which need not be model-domain keys */
static void model_range(const struct model *m, const struct scoutfs_key *start,
                        const struct scoutfs_key *end, u64 *first, u64 *last)
{
	struct scoutfs_key mk0 = key_of(0);
	struct scoutfs_key mkn = key_of(m->nkeys - 1);
	u64 lo, hi;

	/* find the first model k whose key >= start by binary search on the monotone map */
	if (key_compare(start, &mk0) <= 0) {
		lo = 0;
	} else if (key_compare(start, &mkn) > 0) {
		lo = m->nkeys;
	} else {
		u64 a = 0, b = m->nkeys - 1;

		while (a < b) {
			u64 mid = a + (b - a) / 2;
			struct scoutfs_key kk = key_of(mid);

			if (key_compare(&kk, start) < 0)
				a = mid + 1;
			else
				b = mid;
		}
		lo = a;
	}
	if (key_compare(end, &mk0) < 0) {
		hi = ~0ULL;
	} else if (key_compare(end, &mkn) >= 0) {
		hi = m->nkeys - 1;
	} else {
		u64 a = 0, b = m->nkeys - 1;

		while (a < b) {
			u64 mid = a + (b - a + 1) / 2;
			struct scoutfs_key kk = key_of(mid);

			if (key_compare(&kk, end) <= 0)
				a = mid;
			else
				b = mid - 1;
		}
		hi = a;
	}
	*first = lo;
	*last = hi;
}

static void check_read_items(struct tctx *t, const struct scoutfs_btree_root *root,
                             const struct model *m, const struct scoutfs_key *key,
                             struct scoutfs_key *start, struct scoutfs_key *end,
                             struct ri_state *rs)
{
	struct scoutfs_key s0 = *start, e0 = *end;
	u64 lo, hi, k;
	size_t i = 0;

	rs->nr = 0;
	CHECK_RET(btree_read_items(t->bc, root, key, start, end, ri_cb, rs), 0);
	CHECK(key_compare(start, &s0) >= 0 && key_compare(end, &e0) <= 0,
	      "narrowed range outside the requested one");
	CHECK(key_compare(start, key) <= 0 && key_compare(key, end) <= 0,
	      "narrowed range lost the key");
	model_range(m, start, end, &lo, &hi);
	if (hi != ~0ULL) {
		for (k = model_next(m, lo); k <= hi && k < m->nkeys; k = model_next(m, k + 1)) {
			CHECK(i < rs->nr && rs->ks[i] == k, "read_items missed model key %llu",
			      (unsigned long long)k);
			i++;
		}
	}
	CHECK(i == rs->nr, "read_items reported %zu items, model has %zu in range", rs->nr, i);
}

static void run_read_items(struct tctx *t, const struct scoutfs_btree_root *root,
                           const struct model *m, u64 queries)
{
	struct ri_state rs = { .m = m, .max = 100000 };
	struct scoutfs_key key, start, end, pos;
	u64 seen = 0, k, a, b;

	rs.ks = malloc(rs.max * sizeof(u64));
	assert_non_null(rs.ks);

	for (u64 q = 0; q < queries; q++) {
		g_op++;
		k = rnd_below(m->nkeys);
		a = rnd_below(3) ? rnd_below(k + 1) : 0;
		b = rnd_below(3) ? k + rnd_below(m->nkeys - k) : ~0ULL;
		key = key_of(k);
		start = rnd_below(5) ? key_of(k - rnd_below(k - a + 1)) : key_zeros();
		end = b == ~0ULL ? key_ones() : key_of(b);
		if (rnd_below(10) == 0)
			start = key; /* the range begins at the key */
		if (rnd_below(10) == 0)
			end = key;
		check_read_items(t, root, m, &key, &start, &end, &rs);
	}

	/* keys outside the model's zone */
	key = key_make(2, 0, 0, 0, 0, 0);
	start = key_zeros();
	end = key_ones();
	check_read_items(t, root, m, &key, &start, &end, &rs);
	key = key_make(200, 0, 0, 0, 0, 0);
	start = key_zeros();
	end = key_ones();
	check_read_items(t, root, m, &key, &start, &end, &rs);

	/* advancing past each narrowed end covers every item exactly once */
	pos = key_zeros();
	for (;;) {
		start = pos;
		end = key_ones();
		check_read_items(t, root, m, &pos, &start, &end, &rs);
		CHECK(key_compare(&start, &pos) == 0,
		      "narrowed start moved past the read position");
		for (size_t i = 0; i < rs.nr; i++) {
			CHECK(seen == 0 || rs.ks[i] > k, "item seen twice");
			k = rs.ks[i];
			seen++;
		}
		if (key_is_ones(&end))
			break;
		pos = end;
		key_inc(&pos);
	}
	CHECK(seen == m->count, "coverage saw %llu of %llu items", (unsigned long long)seen,
	      (unsigned long long)m->count);
	free(rs.ks);
}

static void build_tree(struct tctx *t, struct scoutfs_btree_root *root, struct model *m,
                       u64 nr_items, unsigned int big_pct)
{
	struct keygen kg = { .nkeys = m->nkeys };

	while (m->count < nr_items)
		do_op(t, root, m, OP_INSERT, keygen_next(&kg), rnd_len(big_pct));
	commit(t);
}

static void test_read_items(void **state)
{
	struct tctx *t = g_t = ctx_create(true, 0);
	struct scoutfs_btree_root root = { 0 };
	struct model m;
	u64 sizes[] = { 1, 40, 400, 4000, 60000 };

	rng_seed_test(6);
	model_init(&m, 1ULL << 18);
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		build_tree(t, &root, &m, sizes[i], 80);
		while (i == ARRAY_SIZE(sizes) - 1 && root.height < 3)
			build_tree(t, &root, &m, m.count + 2000, 95);
		verify_full(t, &root, &m, true);
		run_read_items(t, &root, &m, g_long ? 20000 : 3000);
	}
	CHECK(root.height >= 3, "read_items tree only reached height %u", root.height);
	/* and again with leaves emptied by deletes */
	for (u64 k = model_next(&m, 0); k < m.nkeys; k = model_next(&m, k + 1)) {
		if (rnd_below(10))
			do_op(t, &root, &m, OP_DELETE, k, 0);
	}
	commit(t);
	verify_full(t, &root, &m, true);
	run_read_items(t, &root, &m, 3000);
	model_free(&m);
}

/* ---- free_blocks ---- */

static int cmp_u64p(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y ? 1 : 0;
}

static void check_free_blocks(struct tctx *t, const struct scoutfs_btree_root *root, u64 max_blocks,
                              const u64 *known, size_t nr_known)
{
	struct scoutfs_key cursor = key_zeros();
	u64 *blknos;
	size_t nr, i;
	u64 total = 0;
	int calls = 0;
	int ret;

	if (known) {
		blknos = malloc(nr_known * sizeof(u64));
		assert_non_null(blknos);
		memcpy(blknos, known, nr_known * sizeof(u64));
		nr = nr_known;
	} else {
		nr = visit_tree(t, root, NULL, &blknos, NULL);
	}
	t->ta.recording = true;
	t->ta.nr_rec = 0;
	do {
		ret = btree_free_blocks(&t->txn, root, &cursor, max_blocks);
		CHECK(ret >= 0, "free_blocks err %d", ret);
		/* at most max_blocks, except that a call always frees a leaf and its parents */
		CHECK((u64)ret <= max_t(u64, max_blocks, root->height),
		      "free_blocks freed %d of at most %llu", ret, (unsigned long long)max_blocks);
		CHECK(ret > 0 || key_is_ones(&cursor), "free_blocks made no progress");
		total += ret;
		CHECK(++calls < 1000000, "free_blocks never finishes");
		/* the budgeted job spans commits */
		if (rnd_below(4) == 0)
			commit(t);
	} while (!key_is_ones(&cursor));
	t->ta.recording = false;
	CHECK(total == t->ta.nr_rec, "free_blocks returned %llu, freed %zu",
	      (unsigned long long)total, t->ta.nr_rec);
	CHECK(t->ta.nr_rec == nr, "freed %zu blocks of a %zu block tree", t->ta.nr_rec, nr);
	qsort(blknos, nr, sizeof(u64), cmp_u64p);
	qsort(t->ta.rec, t->ta.nr_rec, sizeof(u64), cmp_u64p);
	for (i = 0; i < nr; i++)
		CHECK(blknos[i] == t->ta.rec[i], "freed set differs from the tree's blocks");
	/* calling again after done does nothing */
	CHECK_RET(btree_free_blocks(&t->txn, root, &cursor, max_blocks), 0);
	free(blknos);
}

static void test_free_blocks(void **state)
{
	struct tctx *t = g_t = ctx_create(false, 0);
	struct scoutfs_btree_root root = { 0 };
	struct scoutfs_btree_root copy;
	u64 maxes[] = { 1, 2, 3, 4, 7, 64, 1000, 1000000 };
	u64 sizes[] = { 1, 300, 3000, 45000 };
	struct model m;
	u64 leaf_blkno = 0;

	rng_seed_test(7);
	model_init(&m, 1ULL << 18);
	for (size_t s = 0; s < ARRAY_SIZE(sizes); s++) {
		build_tree(t, &root, &m, sizes[s], 95);
		while (s == ARRAY_SIZE(sizes) - 1 && root.height < 3)
			build_tree(t, &root, &m, m.count + 2000, 95);
		verify_full(t, &root, &m, true);
		print_message("free_blocks of %llu items, height %u\n", (unsigned long long)m.count,
		              root.height);
		for (size_t i = 0; i < ARRAY_SIZE(maxes); i++) {
			/* each run frees the same committed tree, then the test takes it back */
			copy = root;
			check_free_blocks(t, &copy, maxes[i], NULL, 0);
			commit(t);
			for (size_t j = 0; j < t->ta.nr_rec; j++) {
				CHECK(t->ta.state[t->ta.rec[j]] == BS_GONE, "state");
				t->ta.state[t->ta.rec[j]] = BS_LIVE;
			}
			t->ta.nr_live += t->ta.nr_rec;
			verify_full(t, &root, &m, true);
		}
	}
	CHECK(root.height >= 3, "only height %u", root.height);

	/* free_blocks doesn't read leaves: a corrupt leaf doesn't stop it */
	{
		u64 *blknos;
		size_t nr = visit_tree(t, &root, NULL, &blknos, NULL);

		for (size_t i = 0; i < nr && !leaf_blkno; i++) {
			CHECK_RET(dev_read(t->dev, t->raw, SCOUTFS_BLOCK_LG_SIZE,
			                   blknos[i] << SCOUTFS_BLOCK_LG_SHIFT),
			          0);
			if (((struct scoutfs_btree_block *)t->raw)->level == 0)
				leaf_blkno = blknos[i];
		}
		CHECK(leaf_blkno, "no leaf");
		memset((char *)t->raw + 100, 0xa5, 100);
		CHECK_RET(dev_write(t->dev, t->raw, SCOUTFS_BLOCK_LG_SIZE,
		                    leaf_blkno << SCOUTFS_BLOCK_LG_SHIFT),
		          0);
		block_cache_drop_clean(t->bc);
		copy = root;
		check_free_blocks(t, &copy, 5, blknos, nr);
		commit(t);
		free(blknos);
	}
	model_free(&m);
}

/* ---- corruption ---- */

struct leaf_pick {
	u64 blkno;
	struct scoutfs_key first;
	int want_level;
};

static int pick_block_cb(void *arg, const struct scoutfs_block_ref *ref, int level,
                         const struct scoutfs_btree_block *bt, int read_err)
{
	struct leaf_pick *lp = arg;

	if (read_err == 0 && level == lp->want_level && le16_to_cpu(bt->nr_items) > 2 &&
	    (!lp->blkno || rnd_below(3) == 0)) {
		lp->blkno = le64_to_cpu(ref->blkno);
		lp->first = bt->items[1].key;
	}
	return 0;
}

static int count_block_cb(void *arg, const struct scoutfs_block_ref *ref, int level,
                          const struct scoutfs_btree_block *bt, int read_err)
{
	int *errs = arg;

	if (read_err)
		(*errs)++;
	return 0;
}

/* every read path on a damaged tree returns an error or a correct answer, never crashes */
static int exercise_reads(struct tctx *t, const struct scoutfs_btree_root *root,
                          const struct model *m, const struct scoutfs_key *key, bool expect_ok)
{
	struct btree_visit_ops ops = { .block = count_block_cb };
	struct ri_state rs = { .m = m, .max = 100000 };
	struct scoutfs_key s, e, pos;
	struct btree_item_ref iref;
	struct scoutfs_btree_root r = *root;
	int errs = 0;
	int bad = 0;
	int err;

	rs.ks = malloc(rs.max * sizeof(u64));
	assert_non_null(rs.ks);
	err = btree_lookup(t->bc, root, key, &iref);
	if (err == 0)
		btree_iref_put(&iref);
	bad += err != 0;
	err = btree_next(t->bc, root, key, &iref);
	if (err == 0)
		btree_iref_put(&iref);
	bad += err != 0;
	err = btree_prev(t->bc, root, key, &iref);
	if (err == 0)
		btree_iref_put(&iref);
	bad += err != 0;
	s = key_zeros();
	e = key_ones();
	/* a read error stops read_items; its items are not checked against the model */
	err = btree_read_items(t->bc, root, key, &s, &e, noop_item_cb, NULL);
	bad += err != 0;
	err = btree_visit(t->bc, root, &ops, &errs);
	bad += err != 0 || errs != 0;
	/* full iteration must end with an error rather than loop */
	pos = key_zeros();
	for (int i = 0; i < 2000000; i++) {
		err = btree_next(t->bc, root, &pos, &iref);
		if (err)
			break;
		pos = iref.key;
		btree_iref_put(&iref);
		if (key_is_ones(&pos))
			break;
		key_inc(&pos);
	}
	bad += err != 0 && err != -ENOENT;
	/* modifying through the bad block fails too; the transaction is then forgotten */
	{
		struct btree_txn jtxn = { .wri = t->wri, .alloc = &junk_ba };

		junk_next = MODEL_DEV_BLOCKS - 1;
		err = btree_force(&jtxn, &r, key, "x", 1);
		bad += err != 0;
		block_writer_forget(t->wri);
	}
	free(rs.ks);
	if (expect_ok)
		CHECK(bad == 0, "reads of an intact tree failed");
	return bad;
}

/*
 * Corruption is logged on every read; keep thousands of those lines out of the output.
 * They go to a file that is kept if the test dies in between (sanitizer reports too).
 */
static int saved_stderr = -1;
static char quiet_path[64];

static void quiet_stderr(bool quiet)
{
	fflush(stderr);
	if (quiet && saved_stderr < 0) {
		int fd;

		if (!quiet_path[0]) {
			snprintf(quiet_path, sizeof(quiet_path), "/tmp/test_btree_quiet.%d.log",
			         (int)getpid());
			print_message("corruption log lines go to %s\n", quiet_path);
		}
		fd = open(quiet_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		saved_stderr = dup(STDERR_FILENO);
		dup2(fd, STDERR_FILENO);
		close(fd);
	} else if (!quiet && saved_stderr >= 0) {
		dup2(saved_stderr, STDERR_FILENO);
		close(saved_stderr);
		saved_stderr = -1;
	}
}

static void write_raw(struct tctx *t, u64 blkno, const void *buf)
{
	CHECK_RET(dev_write(t->dev, buf, SCOUTFS_BLOCK_LG_SIZE, blkno << SCOUTFS_BLOCK_LG_SHIFT),
	          0);
	block_cache_drop_clean(t->bc);
}

static void test_corruption(void **state)
{
	/* buffered: the corruption loops re-read the tree from the device thousands of times */
	struct tctx *t = g_t = ctx_create_flags(false, 0, DEV_BUFFERED);
	struct scoutfs_btree_root root = { 0 };
	struct btree_item_ref iref;
	struct scoutfs_btree_block *bt;
	struct leaf_pick lp;
	struct model m;
	void *orig = dev_alloc_buf(SCOUTFS_BLOCK_LG_SIZE);
	u64 fuzz = g_long ? 20000 : 1000;
	int err, bad;

	rng_seed_test(8);
	assert_non_null(orig);
	model_init(&m, 1ULL << 16);
	build_tree(t, &root, &m, 2500, 30);
	verify_full(t, &root, &m, true);
	CHECK(root.height >= 2, "height %u", root.height);

	for (int level = 0; level < root.height; level++) {
		struct btree_visit_ops ops = { .block = pick_block_cb };

		memset(&lp, 0, sizeof(lp));
		lp.want_level = level;
		CHECK_RET(btree_visit(t->bc, &root, &ops, &lp), 0);
		CHECK(lp.blkno, "no block at level %d", level);
		CHECK_RET(dev_read(t->dev, orig, SCOUTFS_BLOCK_LG_SIZE,
		                   lp.blkno << SCOUTFS_BLOCK_LG_SHIFT),
		          0);

		/* flipped bytes: the crc fails, reads see a stale block */
		for (int i = 0; i < 20; i++) {
			u32 off = 4 + rnd_below(SCOUTFS_BLOCK_LG_SIZE - 4);

			memcpy(t->raw, orig, SCOUTFS_BLOCK_LG_SIZE);
			((u8 *)t->raw)[off] ^= 1 << rnd_below(8);
			write_raw(t, lp.blkno, t->raw);
			quiet_stderr(true);
			err = btree_lookup(t->bc, &root, &lp.first, &iref);
			bad = exercise_reads(t, &root, &m, &lp.first, false);
			quiet_stderr(false);
			CHECK(err == -ESTALE, "lookup in a flipped block returned %d", err);
			CHECK(bad >= 5, "reads of a flipped block succeeded");
		}

		/* a valid crc over garbage header fields is corruption: -EIO */
		for (int i = 0; i < 6; i++) {
			memcpy(t->raw, orig, SCOUTFS_BLOCK_LG_SIZE);
			bt = t->raw;
			switch (i) {
			case 0:
				bt->nr_items = cpu_to_le16(0xffff);
				break;
			case 1:
				bt->level = bt->level + 1;
				break;
			case 2:
				bt->val_start = cpu_to_le16(SCOUTFS_BTREE_BLOCK_HDR_SIZE + 8);
				break;
			case 3:
				bt->items[1].val_off = cpu_to_le16(0xfff8);
				bt->items[1].val_len = cpu_to_le16(64);
				break;
			case 4:
				bt->items[0].val_len = cpu_to_le16(MAX_VAL + 1);
				break;
			case 5:
				bt->val_bytes = cpu_to_le32(1U << 20);
				break;
			}
			block_set_crc(t->raw, SCOUTFS_BLOCK_LG_SIZE);
			write_raw(t, lp.blkno, t->raw);
			quiet_stderr(true);
			err = btree_lookup(t->bc, &root, &lp.first, &iref);
			bad = exercise_reads(t, &root, &m, &lp.first, false);
			quiet_stderr(false);
			CHECK(err == -EIO, "lookup in garbage case %d returned %d", i, err);
			CHECK(bad >= 5, "reads of a garbage block succeeded");
		}

		/* random garbage in the items with a valid crc: no crash, no endless loop */
		for (u64 i = 0; i < fuzz; i++) {
			unsigned int n = 1 + rnd_below(8);

			memcpy(t->raw, orig, SCOUTFS_BLOCK_LG_SIZE);
			for (unsigned int j = 0; j < n; j++) {
				u32 off = sizeof(struct scoutfs_block_header) +
				          rnd_below(rnd_below(2) ? 16 + 48 * 4
				                                 : SCOUTFS_BLOCK_LG_SIZE - 32);
				((u8 *)t->raw)[off] = (u8)rnd();
			}
			block_set_crc(t->raw, SCOUTFS_BLOCK_LG_SIZE);
			write_raw(t, lp.blkno, t->raw);
			g_op++;
			quiet_stderr(true);
			exercise_reads(t, &root, &m, &lp.first, false);
			quiet_stderr(false);
		}

		/* restored, everything reads again */
		write_raw(t, lp.blkno, orig);
		exercise_reads(t, &root, &m, &lp.first, true);
		verify_full(t, &root, &m, true);
	}
	free(orig);
	model_free(&m);
	unlink(quiet_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty_and_limits, setup_ctx, teardown_ctx),
		cmocka_unit_test_setup_teardown(test_small_random, setup_ctx, teardown_ctx),
		cmocka_unit_test_setup_teardown(test_large_grow_shrink, setup_ctx, teardown_ctx),
		cmocka_unit_test_setup_teardown(test_cow_old_roots, setup_ctx, teardown_ctx),
		cmocka_unit_test_setup_teardown(test_insert_list, setup_ctx, teardown_ctx),
		cmocka_unit_test_setup_teardown(test_insert_list_growing_delta, setup_ctx,
		                                teardown_ctx),
		cmocka_unit_test_setup_teardown(test_read_items, setup_ctx, teardown_ctx),
		cmocka_unit_test_setup_teardown(test_free_blocks, setup_ctx, teardown_ctx),
		cmocka_unit_test_setup_teardown(test_corruption, setup_ctx, teardown_ctx),
	};

	model_support_init("BTREE");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
