/*
 * test_item.c: forest reads and the item cache against a model of the merged view.
 *
 * The forest is built directly with btrees: an fs_root and several log btrees listed as
 * log_trees items in a logs_root, with overlapping keys, different (and equal) seqs and
 * deletion items.  forest_read_items must return exactly the model's merged view (greatest
 * seq wins, ties go to the tree read first -- fs_root, then log trees in (rid, nr) order --
 * and a winning deletion hides the key) inside a narrowed range that holds the key.
 *
 * The item cache runs random lookups, next/prev, creates, updates, deletes and blind
 * force_create/force_delete (under WRITE_ONLY locks and under WRITE locks of uncached
 * ranges) against a model, with invalidations, shrinking and commits.  Each commit writes
 * the dirty items into a new log btree which is checked item by item: the final value of
 * every changed key, a deletion item for every deleted key that existed persistently (or
 * was force-deleted), and nothing for keys created and deleted within the transaction.
 * The new log tree joins the forest and a fresh item cache must see the model's view.
 *
 * Locks are fakes: this file defines the few lock.c functions item.c calls, so the test
 * does not need the lock layer.  ITEM_TEST_SEED=n replays, ITEM_TEST_LONG=1 runs longer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the four above */
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "block/block.h"
#include "btree/btree.h"
#include "dev/dev.h"
#include "forest/forest.h"
#include "format/format.h"
#include "format/key.h"
#include "item/item.h"
#include "lock/lock.h"
#include "util/counters.h"
#include "util/util.h"

#include "model_support.h"

#define TEST_FSID 0x17e3c0ffee123456ULL
#define MAX_VAL   SCOUTFS_BTREE_MAX_VAL_LEN
#define VAL_SALT  0x17e3

/* ------------------------------------------------------------------------------------ */
/* the lock functions item.c uses */

bool lock_covers(const struct lock *lock, const struct scoutfs_key *key)
{
	return key_in_range(key, &lock->start, &lock->end);
}

bool lock_mode_allows_read(const struct lock *lock)
{
	return lock->mode == SCOUTFS_LOCK_READ || lock->mode == SCOUTFS_LOCK_WRITE;
}

bool lock_mode_allows_write(const struct lock *lock)
{
	return lock->mode == SCOUTFS_LOCK_WRITE || lock->mode == SCOUTFS_LOCK_WRITE_ONLY;
}

/* ------------------------------------------------------------------------------------ */
/* keys, values, locks */

#define NLOCKS        8
#define KEYS_PER_LOCK 600
#define NKEYS         (NLOCKS * KEYS_PER_LOCK)
#define WO_LOCK_FIRST 6 /* locks 6 and 7 are written only under WRITE_ONLY */

static struct scoutfs_key key_of(u64 k)
{
	return key_make(SCOUTFS_FS_ZONE, 1000 + k / 16, SCOUTFS_XATTR_TYPE, k % 16, 0, 0);
}

static bool k_of_key(const struct scoutfs_key *key, u64 *k)
{
	if (key->sk_zone != SCOUTFS_FS_ZONE || key->sk_type != SCOUTFS_XATTR_TYPE ||
	    key_first(key) < 1000 || key_second(key) >= 16 || key_third(key) || key_fourth(key))
		return false;
	*k = (key_first(key) - 1000) * 16 + key_second(key);
	return *k < NKEYS;
}

static unsigned int rnd_len(void)
{
	switch (rnd_below(6)) {
	case 0:
		return 0;
	case 1:
		return 1 + rnd_below(16);
	case 2:
		return MAX_VAL - rnd_below(100);
	default:
		return rnd_below(MAX_VAL + 1);
	}
}

/* lock i covers model keys [i * KEYS_PER_LOCK, (i + 1) * KEYS_PER_LOCK) and the gaps */
static void lock_range(int i, struct scoutfs_key *start, struct scoutfs_key *end)
{
	*start = i == 0 ? key_zeros() : key_of((u64)i * KEYS_PER_LOCK);
	if (i == NLOCKS - 1) {
		*end = key_ones();
	} else {
		*end = key_of((u64)(i + 1) * KEYS_PER_LOCK);
		key_dec(end);
	}
}

static void init_lock(struct lock *lock, int i, enum scoutfs_lock_mode mode)
{
	memset(lock, 0, sizeof(*lock));
	lock_range(i, &lock->start, &lock->end);
	lock->mode = mode;
}

/* ------------------------------------------------------------------------------------ */
/* the device and a never-reusing allocator for building trees */

struct tctx {
	struct dev *dev;
	struct block_cache *bc;
	struct block_writer *wri;
	u64 next_blkno;
	struct block_allocator ba;
	struct btree_txn txn;
	struct scoutfs_net_roots roots; /* the committed roots get_roots hands out */
	u64 get_roots_calls;
	int stale_gets; /* hand out roots whose fs_root ref no longer matches this many times */
};

static struct tctx *g_t;

static int t_alloc(void *arg, u64 *blkno)
{
	struct tctx *t = arg;

	CHECK(t->next_blkno < MODEL_DEV_BLOCKS, "device full");
	*blkno = t->next_blkno++;
	return 0;
}

static int t_free(void *arg, u64 blkno)
{
	return 0;
}

static int t_get_roots(void *arg, struct scoutfs_net_roots *roots)
{
	struct tctx *t = arg;

	t->get_roots_calls++;
	*roots = t->roots;
	if (t->stale_gets > 0) {
		t->stale_gets--;
		roots->fs_root.ref.seq ^= cpu_to_le64(1);
	}
	return 0;
}

static const struct item_cache_ops t_ops = { .get_roots = t_get_roots };

static struct tctx *ctx_create(void)
{
	struct tctx *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	model_dev_open("test_item", TEST_FSID, 0, 0, &t->dev, &t->bc);
	assert_int_equal(block_writer_create(t->bc, &t->wri), 0);
	t->next_blkno = SCOUTFS_META_DEV_START_BLKNO;
	t->ba.alloc_meta = t_alloc;
	t->ba.free_meta = t_free;
	t->ba.arg = t;
	t->txn.wri = t->wri;
	t->txn.alloc = &t->ba;
	return t;
}

static void ctx_destroy(struct tctx *t)
{
	if (!t)
		return;
	block_writer_destroy(t->wri);
	model_dev_close(t->dev, t->bc);
	free(t);
}

static void t_commit(struct tctx *t)
{
	CHECK_RET(block_writer_write(t->wri), 0);
	block_writer_destroy(t->wri);
	assert_int_equal(block_writer_create(t->bc, &t->wri), 0);
	t->txn.wri = t->wri;
}

static int setup(void **state)
{
	g_t = NULL;
	return 0;
}

static int teardown(void **state)
{
	ctx_destroy(g_t);
	g_t = NULL;
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* the forest model: every version of every key, in read order */

#define MAX_TREES 200

struct version {
	u64 seq;
	u32 ver;
	u16 len;
	u8 deletion;
	u8 present;
};

struct fmodel {
	int nr_trees; /* tree 0 is fs_root, then log trees in (rid, nr) order */
	struct version *v[MAX_TREES];
	u64 next_nr;
};

/* the merged view of key k: 1 and the winning version if it exists */
static bool merged(const struct fmodel *fm, u64 k, struct version *win)
{
	const struct version *best = NULL;

	for (int i = 0; i < fm->nr_trees; i++) {
		const struct version *v = &fm->v[i][k];

		if (v->present && (!best || v->seq > best->seq))
			best = v;
	}
	if (!best || best->deletion)
		return false;
	*win = *best;
	return true;
}

static struct btree_item_list *list_item(u64 k, const struct version *v)
{
	struct btree_item_list *li = malloc(sizeof(*li) + v->len);

	assert_non_null(li);
	li->next = NULL;
	li->key = key_of(k);
	li->seq = v->seq;
	li->flags = v->deletion ? SCOUTFS_ITEM_FLAG_DELETION : 0;
	li->val_len = v->len;
	model_fill_val(k, v->ver, VAL_SALT, v->len, li->val);
	return li;
}

static void write_tree(struct tctx *t, struct scoutfs_btree_root *root, const struct version *vs)
{
	struct btree_item_list *head = NULL, **tail = &head, *li;

	for (u64 k = 0; k < NKEYS; k++) {
		if (!vs[k].present)
			continue;
		li = list_item(k, &vs[k]);
		*tail = li;
		tail = &li->next;
	}
	CHECK_RET(btree_insert_list(&t->txn, root, head, NULL), 0);
	while ((li = head)) {
		head = li->next;
		free(li);
	}
}

static struct scoutfs_key lt_key(u64 rid, u64 nr)
{
	return key_make(SCOUTFS_LOG_TREES_ZONE, rid, 0, nr, 0, 0);
}

/* add a log tree to logs_root (rid 1, increasing nr keeps model order == read order) */
static void add_log_tree(struct tctx *t, struct fmodel *fm, const struct scoutfs_btree_root *root)
{
	struct scoutfs_log_trees lt;
	struct scoutfs_key key;

	memset(&lt, 0, sizeof(lt));
	lt.item_root = *root;
	lt.rid = cpu_to_le64(1);
	lt.nr = cpu_to_le64(++fm->next_nr);
	key = lt_key(1, fm->next_nr);
	CHECK_RET(btree_insert(&t->txn, &t->roots.logs_root, &key, &lt, sizeof(lt)), 0);
}

/*
 * A random forest: fs_root and nr_logs log trees over the same keys with seqs in a small
 * range (so equal seqs happen), deletion items, and an empty log tree.
 */
static void build_forest(struct tctx *t, struct fmodel *fm, int nr_logs)
{
	struct scoutfs_btree_root root;

	memset(fm, 0, sizeof(*fm));
	fm->nr_trees = nr_logs + 1;
	for (int i = 0; i < fm->nr_trees; i++) {
		fm->v[i] = calloc(NKEYS, sizeof(struct version));
		assert_non_null(fm->v[i]);
		for (u64 k = 0; k < NKEYS; k++) {
			struct version *v = &fm->v[i][k];

			/* dense runs and sparse stretches */
			if (rnd_below(100) >= ((k / 300) % 3 == 0 ? 70 : i == 0 ? 35 : 12))
				continue;
			v->present = 1;
			v->seq = 1 + rnd_below(i == 0 ? 60 : 100);
			v->deletion = i > 0 && rnd_below(4) == 0;
			if (!v->deletion) {
				v->ver = (u32)rnd();
				v->len = rnd_len();
			}
		}
		memset(&root, 0, sizeof(root));
		write_tree(t, &root, fm->v[i]);
		if (i == 0)
			t->roots.fs_root = root;
		else
			add_log_tree(t, fm, &root);
	}
	/* an empty log tree is skipped */
	memset(&root, 0, sizeof(root));
	fm->v[fm->nr_trees] = calloc(NKEYS, sizeof(struct version));
	fm->nr_trees++;
	add_log_tree(t, fm, &root);
	t_commit(t);
}

static void free_forest(struct fmodel *fm)
{
	for (int i = 0; i < fm->nr_trees; i++) {
		free(fm->v[i]);
		fm->v[i] = NULL;
	}
}

/* ------------------------------------------------------------------------------------ */
/* forest_read_items */

struct fr_state {
	const struct fmodel *fm;
	u64 *ks;
	size_t nr;
};

static int fr_cb(const struct scoutfs_key *key, u64 seq, u8 flags, const void *val,
                 unsigned int val_len, void *arg)
{
	struct fr_state *fs = arg;
	struct version win;
	u8 want[MAX_VAL];
	u64 k = ~0ULL;

	CHECK(k_of_key(key, &k), "forest returned a foreign key");
	CHECK(fs->nr == 0 || fs->ks[fs->nr - 1] < k, "forest items out of order or repeated");
	CHECK(merged(fs->fm, k, &win), "forest returned hidden key %llu", (unsigned long long)k);
	CHECK(seq == win.seq && !(flags & SCOUTFS_ITEM_FLAG_DELETION),
	      "key %llu seq %llu flags %u, winner seq %llu", (unsigned long long)k,
	      (unsigned long long)seq, flags, (unsigned long long)win.seq);
	model_fill_val(k, win.ver, VAL_SALT, win.len, want);
	CHECK(val_len == win.len && (val_len == 0 || memcmp(val, want, val_len) == 0),
	      "key %llu value is not the winner's", (unsigned long long)k);
	fs->ks[fs->nr++] = k;
	return 0;
}

/* the model keys in [start, end] (start/end may be any keys) */
static void key_span(const struct scoutfs_key *start, const struct scoutfs_key *end, u64 *lo,
                     u64 *hi)
{
	u64 k = ~0ULL;

	*lo = NKEYS;
	*hi = 0;
	for (k = 0; k < NKEYS; k++) {
		struct scoutfs_key kk = key_of(k);

		if (key_compare(&kk, start) >= 0 && key_compare(&kk, end) <= 0) {
			if (*lo == NKEYS)
				*lo = k;
			*hi = k + 1;
		}
	}
	if (*lo == NKEYS)
		*lo = *hi = 0;
}

static void check_forest_read(struct tctx *t, const struct fmodel *fm, u64 k,
                              struct scoutfs_key *start, struct scoutfs_key *end, u64 *seen)
{
	struct fr_state fs = { .fm = fm };
	struct scoutfs_key key = key_of(k);
	struct scoutfs_key s0 = *start, e0 = *end;
	struct version win;
	u64 lo, hi, i = 0;

	fs.ks = malloc(NKEYS * sizeof(u64));
	assert_non_null(fs.ks);
	CHECK_RET(forest_read_items(t->bc, &t->roots, &key, start, end, fr_cb, &fs), 0);
	CHECK(key_compare(start, &s0) >= 0 && key_compare(end, &e0) <= 0,
	      "narrowed outside the requested range");
	CHECK(key_compare(start, &key) <= 0 && key_compare(&key, end) <= 0,
	      "narrowed range lost the key");
	key_span(start, end, &lo, &hi);
	for (u64 kk = lo; kk < hi; kk++) {
		if (!merged(fm, kk, &win))
			continue;
		CHECK(i < fs.nr && fs.ks[i] == kk, "forest missed key %llu",
		      (unsigned long long)kk);
		i++;
	}
	CHECK(i == fs.nr, "forest returned %zu items, model %llu", fs.nr, (unsigned long long)i);
	if (seen)
		*seen += fs.nr;
	free(fs.ks);
}

static void test_forest_read(void **state)
{
	struct tctx *t = g_t = ctx_create();
	struct scoutfs_key start, end;
	struct fmodel fm;
	u64 queries = g_long ? 20000 : 2000;
	u64 k, seen, total;
	struct version win;

	rng_seed_test(1);
	build_forest(t, &fm, 4);
	CHECK(t->roots.fs_root.height >= 2, "fs_root height %u", t->roots.fs_root.height);

	for (u64 q = 0; q < queries; q++) {
		g_op++;
		k = rnd_below(NKEYS);
		switch (rnd_below(4)) {
		case 0:
			start = key_zeros();
			end = key_ones();
			break;
		case 1:
			lock_range(k / KEYS_PER_LOCK, &start, &end);
			break;
		default:
			start = key_of(k - rnd_below(k + 1));
			end = key_of(k + rnd_below(NKEYS - k));
			break;
		}
		check_forest_read(t, &fm, k, &start, &end, NULL);
	}

	/* walking narrowed ranges covers every live key once */
	total = 0;
	for (k = 0; k < NKEYS; k++)
		total += merged(&fm, k, &win);
	seen = 0;
	start = key_zeros();
	for (;;) {
		struct scoutfs_key pos = start;
		u64 pk;

		end = key_ones();
		/* read around the first model key at or after the position */
		if (!k_of_key(&pos, &pk)) {
			pk = 0;
			while (pk < NKEYS) {
				struct scoutfs_key kk = key_of(pk);

				if (key_compare(&kk, &pos) >= 0)
					break;
				pk++;
			}
			if (pk == NKEYS)
				break;
			start = key_of(pk);
		}
		check_forest_read(t, &fm, pk, &start, &end, &seen);
		if (key_is_ones(&end))
			break;
		start = end;
		key_inc(&start);
	}
	CHECK(seen == total, "coverage saw %llu of %llu", (unsigned long long)seen,
	      (unsigned long long)total);
	free_forest(&fm);
}

/* ------------------------------------------------------------------------------------ */
/* the item cache against the model */

struct kstate {
	/* the committed merged view */
	u8 c_present;
	u16 c_len;
	u32 c_ver;
	/* the view including the open transaction */
	u8 present;
	u16 len;
	u32 ver;
	/* the open transaction */
	u8 touched;
	u8 force_deleted;
	u64 last_seq;
};

struct itest {
	struct tctx *t;
	struct fmodel fm;
	struct item_cache *ic;
	struct kstate ks[NKEYS];
	struct lock locks[NLOCKS];
	u64 trans_seq;
	u64 commits;
	u64 deletion_items;
	u64 dropped_pairs;
	u64 merges;
};

static void start_trans(struct itest *it)
{
	it->trans_seq += 20;
	item_set_trans_seq(it->ic, it->trans_seq);
	for (int i = 0; i < NLOCKS; i++) {
		/* a lock granted during the transaction can carry a larger write_seq */
		it->locks[i].write_seq = rnd_below(3) ? 0 : it->trans_seq - 5 + rnd_below(11);
	}
	for (u64 k = 0; k < NKEYS; k++) {
		it->ks[k].touched = 0;
		it->ks[k].force_deleted = 0;
		it->ks[k].last_seq = 0;
	}
}

static struct lock *lock_of(struct itest *it, u64 k)
{
	return &it->locks[k / KEYS_PER_LOCK];
}

static u64 op_seq(struct itest *it, u64 k)
{
	return max_t(u64, it->trans_seq, lock_of(it, k)->write_seq);
}

/* what the log tree written at commit must hold for key k, if anything */
static bool expect_log_item(const struct kstate *ks, bool *deletion)
{
	if (!ks->touched)
		return false;
	if (ks->present) {
		*deletion = false;
		return true;
	}
	*deletion = true;
	return ks->c_present || ks->force_deleted;
}

static void check_lookup(struct itest *it, struct item_cache *ic, struct lock *lock, u64 k)
{
	struct scoutfs_key key = key_of(k);
	const struct kstate *ks = &it->ks[k];
	u8 val[MAX_VAL + 8], want[MAX_VAL];
	int ret;

	memset(val, 0xee, sizeof(val));
	ret = item_lookup(ic, lock, &key, val, sizeof(val));
	if (!ks->present) {
		CHECK(ret == -ENOENT, "lookup %llu returned %d, model has none",
		      (unsigned long long)k, ret);
		return;
	}
	model_fill_val(k, ks->ver, VAL_SALT, ks->len, want);
	CHECK(ret == ks->len, "lookup %llu returned %d, model len %u", (unsigned long long)k, ret,
	      ks->len);
	CHECK(memcmp(val, want, ks->len) == 0, "lookup %llu value differs", (unsigned long long)k);
	/* a short buffer gets a prefix and the full length */
	if (ks->len > 3) {
		memset(val, 0xee, sizeof(val));
		ret = item_lookup(ic, lock, &key, val, 3);
		CHECK(ret == ks->len && memcmp(val, want, 3) == 0 && val[3] == 0xee,
		      "short lookup %d", ret);
	}
	if (rnd_below(200) == 0) {
		/* (logs an error line) */
		ret = item_lookup_exact(ic, lock, &key, val, ks->len + 1);
		CHECK(ret == -EIO, "lookup_exact with the wrong size returned %d", ret);
	}
	ret = item_lookup_exact(ic, lock, &key, val, ks->len);
	CHECK(ret == 0, "lookup_exact returned %d", ret);
}

/* next within [k, last] of lock li, or prev within [first, k] */
static void check_next_prev(struct itest *it, struct item_cache *ic, struct lock *lock, u64 k,
                            bool next)
{
	int li = k / KEYS_PER_LOCK;
	u64 lo = (u64)li * KEYS_PER_LOCK, hi = lo + KEYS_PER_LOCK - 1;
	struct scoutfs_key key = key_of(k), lim;
	u8 val[MAX_VAL], want[MAX_VAL];
	u64 bound, m, got = ~0ULL;
	int ret;

	if (next) {
		bound = rnd_below(3) ? hi : k + rnd_below(hi - k + 1);
		lim = bound == hi && rnd_below(2) ? key_ones() : key_of(bound);
		for (m = k; m <= bound && !it->ks[m].present; m++)
			;
		ret = item_next(ic, lock, &key, &lim, val, sizeof(val));
		if (m > bound) {
			CHECK(ret == -ENOENT, "next %llu..%llu returned %d, model has none",
			      (unsigned long long)k, (unsigned long long)bound, ret);
			return;
		}
	} else {
		bound = rnd_below(3) ? lo : lo + rnd_below(k - lo + 1);
		lim = bound == lo && rnd_below(2) ? key_zeros() : key_of(bound);
		for (m = k; m >= bound && m != ~0ULL && !it->ks[m].present; m--)
			;
		if (m < bound || m == ~0ULL)
			m = ~0ULL;
		ret = item_prev(ic, lock, &key, &lim, val, sizeof(val));
		if (m == ~0ULL) {
			CHECK(ret == -ENOENT, "prev %llu..%llu returned %d, model has none",
			      (unsigned long long)bound, (unsigned long long)k, ret);
			return;
		}
	}
	CHECK(ret >= 0, "%s %llu returned %d", next ? "next" : "prev", (unsigned long long)k, ret);
	CHECK(k_of_key(&key, &got) && got == m, "%s %llu found %llu want %llu",
	      next ? "next" : "prev", (unsigned long long)k, (unsigned long long)got,
	      (unsigned long long)m);
	model_fill_val(m, it->ks[m].ver, VAL_SALT, it->ks[m].len, want);
	CHECK(ret == it->ks[m].len && memcmp(val, want, ret) == 0, "%s value of %llu",
	      next ? "next" : "prev", (unsigned long long)m);
}

static void touch(struct itest *it, u64 k, bool present, u32 ver, u16 len)
{
	struct kstate *ks = &it->ks[k];

	ks->touched = 1;
	ks->present = present;
	ks->ver = present ? ver : 0;
	ks->len = present ? len : 0;
	ks->last_seq = op_seq(it, k);
}

/* one random operation on key k */
static void item_op(struct itest *it, u64 k)
{
	struct lock *lock = lock_of(it, k);
	struct scoutfs_key key = key_of(k);
	struct kstate *ks = &it->ks[k];
	bool wo = lock->mode == SCOUTFS_LOCK_WRITE_ONLY;
	u8 val[MAX_VAL];
	u32 ver = (u32)rnd();
	u16 len = rnd_len();
	unsigned int r = rnd_below(100);
	int ret;

	g_op++;
	model_fill_val(k, ver, VAL_SALT, len, val);
	if (wo || r >= 90) {
		/* blind writes */
		if (rnd_below(2)) {
			CHECK_RET(item_create_force(it->ic, lock, NULL, &key, val, len), 0);
			touch(it, k, true, ver, len);
		} else {
			CHECK_RET(item_delete_force(it->ic, lock, NULL, &key), 0);
			touch(it, k, false, 0, 0);
			ks->force_deleted = 1;
		}
		return;
	}
	if (r < 20) {
		check_lookup(it, it->ic, lock, k);
	} else if (r < 35) {
		check_next_prev(it, it->ic, lock, k, r < 28);
	} else if (r < 55) {
		ret = item_create(it->ic, lock, &key, val, len);
		CHECK(ret == (ks->present ? -EEXIST : 0), "create %llu returned %d present %u",
		      (unsigned long long)k, ret, ks->present);
		if (ret == 0)
			touch(it, k, true, ver, len);
	} else if (r < 70) {
		ret = item_update(it->ic, lock, &key, val, len);
		CHECK(ret == (ks->present ? 0 : -ENOENT), "update %llu returned %d present %u",
		      (unsigned long long)k, ret, ks->present);
		if (ret == 0)
			touch(it, k, true, ver, len);
	} else {
		ret = item_delete(it->ic, lock, &key);
		CHECK(ret == (ks->present ? 0 : -ENOENT), "delete %llu returned %d present %u",
		      (unsigned long long)k, ret, ks->present);
		if (ret == 0)
			touch(it, k, false, 0, 0);
	}
}

/* check the dirty accounting the cache reports against the model */
static void check_dirty(struct itest *it)
{
	u64 nr = 0;
	bool del;

	for (int i = 0; i < NLOCKS; i++) {
		bool dirty = false;

		for (u64 k = (u64)i * KEYS_PER_LOCK; k < (u64)(i + 1) * KEYS_PER_LOCK; k++) {
			if (expect_log_item(&it->ks[k], &del)) {
				dirty = true;
				nr++;
			}
		}
		CHECK(item_range_dirty(it->ic, &it->locks[i].start, &it->locks[i].end) == dirty,
		      "lock %d range dirty %d, model %d", i, !dirty, dirty);
	}
	CHECK(item_dirty_count(it->ic) == nr, "dirty count %llu, model %llu",
	      (unsigned long long)item_dirty_count(it->ic), (unsigned long long)nr);
}

struct lt_check {
	struct itest *it;
	u64 nr;
	u64 max_seq;
};

static int lt_item_cb(void *arg, const struct scoutfs_key *key, u64 seq, u8 flags, const void *val,
                      unsigned int val_len)
{
	struct lt_check *lc = arg;
	struct kstate *ks;
	u8 want[MAX_VAL];
	bool del;
	u64 k = ~0ULL;

	CHECK(k_of_key(key, &k), "log tree holds a foreign key");
	ks = &lc->it->ks[k];
	CHECK(expect_log_item(ks, &del),
	      "log tree holds key %llu (touched %u present %u "
	      "committed %u force_deleted %u)",
	      (unsigned long long)k, ks->touched, ks->present, ks->c_present, ks->force_deleted);
	CHECK(seq == ks->last_seq, "key %llu seq %llu want %llu", (unsigned long long)k,
	      (unsigned long long)seq, (unsigned long long)ks->last_seq);
	if (del) {
		CHECK(flags == SCOUTFS_ITEM_FLAG_DELETION && val_len == 0,
		      "key %llu should be a deletion item (flags %u len %u)", (unsigned long long)k,
		      flags, val_len);
		lc->it->deletion_items++;
	} else {
		model_fill_val(k, ks->ver, VAL_SALT, ks->len, want);
		CHECK(flags == 0 && val_len == ks->len &&
		              (val_len == 0 || memcmp(val, want, val_len) == 0),
		      "key %llu log item differs", (unsigned long long)k);
	}
	lc->nr++;
	lc->max_seq = max_t(u64, lc->max_seq, seq);
	return 0;
}

/* write the dirty items into a new log tree, check it, and add it to the forest */
static void commit(struct itest *it)
{
	struct tctx *t = it->t;
	struct btree_visit_ops ops = { .item = lt_item_cb };
	struct lt_check lc = { .it = it };
	struct scoutfs_btree_root root = { 0 };
	u64 max_seq, want = 0;
	bool del;
	int ti;

	check_dirty(it);
	CHECK_RET(item_write_dirty(it->ic, &t->txn, &root, &max_seq), 0);
	CHECK_RET(btree_visit(t->bc, &root, &ops, &lc), 0);
	for (u64 k = 0; k < NKEYS; k++) {
		if (expect_log_item(&it->ks[k], &del))
			want++;
		else if (it->ks[k].touched)
			it->dropped_pairs++;
	}
	CHECK(lc.nr == want, "log tree holds %llu items, model %llu", (unsigned long long)lc.nr,
	      (unsigned long long)want);
	CHECK(max_seq == lc.max_seq, "max_seq %llu, items %llu", (unsigned long long)max_seq,
	      (unsigned long long)lc.max_seq);

	/* the model's forest gets the tree too */
	CHECK(it->fm.nr_trees < MAX_TREES, "too many trees");
	ti = it->fm.nr_trees++;
	it->fm.v[ti] = calloc(NKEYS, sizeof(struct version));
	assert_non_null(it->fm.v[ti]);
	for (u64 k = 0; k < NKEYS; k++) {
		struct kstate *ks = &it->ks[k];

		if (expect_log_item(ks, &del)) {
			it->fm.v[ti][k].present = 1;
			it->fm.v[ti][k].seq = ks->last_seq;
			it->fm.v[ti][k].deletion = del;
			it->fm.v[ti][k].ver = ks->ver;
			it->fm.v[ti][k].len = ks->len;
		}
		ks->c_present = ks->present;
		ks->c_ver = ks->ver;
		ks->c_len = ks->len;
	}
	add_log_tree(t, &it->fm, &root);
	t_commit(t);
	item_commit_done(it->ic);
	item_roots_changed(it->ic);
	CHECK(item_dirty_count(it->ic) == 0 && item_dirty_bytes(it->ic) == 0,
	      "dirty after commit_done");
	it->commits++;
	start_trans(it);
}

/*
 * What the server's log merge does in the end: every log tree merged into a new fs_root
 * (winners only, deletions applied) and the log trees gone.  The view doesn't change.
 */
static void merge_forest(struct itest *it)
{
	struct tctx *t = it->t;
	struct version *merged_v = calloc(NKEYS, sizeof(struct version));
	struct scoutfs_btree_root root = { 0 };
	struct version win;

	assert_non_null(merged_v);
	for (u64 k = 0; k < NKEYS; k++) {
		if (merged(&it->fm, k, &win))
			merged_v[k] = win;
	}
	write_tree(t, &root, merged_v);
	t->roots.fs_root = root;
	memset(&t->roots.logs_root, 0, sizeof(t->roots.logs_root));
	t_commit(t);
	free_forest(&it->fm);
	it->fm.nr_trees = 1;
	it->fm.v[0] = merged_v;
	item_roots_changed(it->ic);
	it->merges++;
}

/* a fresh cache and the forest itself both see the committed view */
static void verify_committed(struct itest *it)
{
	struct tctx *t = it->t;
	struct item_cache *ic;
	struct lock rl[NLOCKS];
	struct scoutfs_key key, last;
	struct version win;
	u8 val[MAX_VAL], want[MAX_VAL];
	u64 k, got = ~0ULL;
	int ret;

	for (k = 0; k < NKEYS; k++) {
		bool m = merged(&it->fm, k, &win);

		CHECK(m == it->ks[k].c_present, "forest model and key model differ at %llu",
		      (unsigned long long)k);
		if (m)
			CHECK(win.ver == it->ks[k].c_ver && win.len == it->ks[k].c_len,
			      "forest model value differs at %llu", (unsigned long long)k);
	}

	CHECK_RET(item_cache_create(t->bc, &t_ops, t, &ic), 0);
	for (int i = 0; i < NLOCKS; i++) {
		init_lock(&rl[i], i, SCOUTFS_LOCK_READ);
		key = rl[i].start;
		last = rl[i].end;
		k = (u64)i * KEYS_PER_LOCK;
		for (;;) {
			ret = item_next(ic, &rl[i], &key, &last, val, sizeof(val));
			while (k < (u64)(i + 1) * KEYS_PER_LOCK && !it->ks[k].c_present)
				k++;
			if (ret == -ENOENT) {
				CHECK(k == (u64)(i + 1) * KEYS_PER_LOCK,
				      "fresh cache next ended, model has %llu",
				      (unsigned long long)k);
				break;
			}
			CHECK(ret >= 0 && k_of_key(&key, &got) && got == k,
			      "fresh cache next returned %d at %llu want %llu", ret,
			      (unsigned long long)got, (unsigned long long)k);
			model_fill_val(k, it->ks[k].c_ver, VAL_SALT, it->ks[k].c_len, want);
			CHECK(ret == it->ks[k].c_len && memcmp(val, want, ret) == 0,
			      "fresh cache value of %llu", (unsigned long long)k);
			k++;
			key_inc(&key);
		}
	}
	item_cache_destroy(ic);

	/* and forest reads around random keys */
	for (int q = 0; q < 50; q++) {
		struct scoutfs_key s, e;

		k = rnd_below(NKEYS);
		lock_range(k / KEYS_PER_LOCK, &s, &e);
		check_forest_read(t, &it->fm, k, &s, &e, NULL);
	}
}

/* check every writable lock's keys through the working cache */
static void verify_open(struct itest *it)
{
	for (u64 k = 0; k < NKEYS; k++) {
		struct lock *lock = lock_of(it, k);

		if (lock->mode != SCOUTFS_LOCK_WRITE_ONLY && rnd_below(4) == 0)
			check_lookup(it, it->ic, lock, k);
	}
}

static void test_item_cache(void **state)
{
	struct tctx *t = g_t = ctx_create();
	struct itest *it = calloc(1, sizeof(*it));
	u64 nops = g_long ? 1000000 : 150000;
	u64 invalidations = 0, shrinks = 0;
	struct version win;

	rng_seed_test(2);
	assert_non_null(it);
	it->t = t;
	build_forest(t, &it->fm, 3);
	for (u64 k = 0; k < NKEYS; k++) {
		struct kstate *ks = &it->ks[k];

		ks->c_present = ks->present = merged(&it->fm, k, &win);
		if (ks->present) {
			ks->c_ver = ks->ver = win.ver;
			ks->c_len = ks->len = win.len;
		}
	}
	for (int i = 0; i < NLOCKS; i++)
		init_lock(&it->locks[i], i,
		          i >= WO_LOCK_FIRST ? SCOUTFS_LOCK_WRITE_ONLY : SCOUTFS_LOCK_WRITE);
	CHECK_RET(item_cache_create(t->bc, &t_ops, t, &it->ic), 0);
	it->trans_seq = 1000;
	start_trans(it);
	verify_committed(it);

	for (u64 i = 0; i < nops; i++) {
		u64 k;

		/* clustered keys in one lock at a time, sometimes anywhere */
		if (rnd_below(4))
			k = (i / 500 % NLOCKS) * KEYS_PER_LOCK + rnd_below(KEYS_PER_LOCK);
		else
			k = rnd_below(NKEYS);
		item_op(it, k);

		if (rnd_below(100) == 0) {
			/* invalidate a clean lock range or part of one; dirty ones are -EBUSY */
			int li = rnd_below(WO_LOCK_FIRST);
			struct scoutfs_key s = it->locks[li].start, e = it->locks[li].end;
			bool del, dirty = false;
			u64 a = (u64)li * KEYS_PER_LOCK, b = a + KEYS_PER_LOCK - 1;
			int ret;

			if (rnd_below(2)) {
				a += rnd_below(KEYS_PER_LOCK);
				b = a + rnd_below((u64)(li + 1) * KEYS_PER_LOCK - a);
				s = key_of(a);
				e = key_of(b);
			}
			for (u64 kk = a; kk <= b; kk++)
				dirty |= expect_log_item(&it->ks[kk], &del);
			CHECK(item_range_dirty(it->ic, &s, &e) == dirty, "range_dirty %llu-%llu",
			      (unsigned long long)a, (unsigned long long)b);
			/* (a dirty invalidation is a caller bug that logs an error line) */
			if (dirty && rnd_below(10))
				continue;
			ret = item_invalidate(it->ic, &s, &e);
			CHECK(ret == (dirty ? -EBUSY : 0), "invalidate returned %d dirty %d", ret,
			      dirty);
			invalidations += ret == 0;
		}
		if (rnd_below(1000) == 0) {
			u64 nr = item_dirty_count(it->ic);

			item_shrink(it->ic, rnd_below(2) ? 0 : item_cached_bytes(it->ic) / 2);
			CHECK(item_dirty_count(it->ic) == nr, "shrink dropped dirty items");
			shrinks++;
		}
		if (rnd_below(700) == 0) {
			verify_open(it);
			check_dirty(it);
		}
		if (rnd_below(1500) == 0) {
			commit(it);
			if (it->fm.nr_trees > 40)
				merge_forest(it);
			if (rnd_below(3) == 0)
				verify_committed(it);
		}
	}
	commit(it);
	verify_open(it);
	verify_committed(it);
	print_message(
	        "%llu ops, %llu commits, %llu merges, %llu deletion items, %llu "
	        "create+delete pairs dropped, %llu invalidations, %llu shrinks, %llu get_roots\n",
	        (unsigned long long)nops, (unsigned long long)it->commits,
	        (unsigned long long)it->merges, (unsigned long long)it->deletion_items,
	        (unsigned long long)it->dropped_pairs, (unsigned long long)invalidations,
	        (unsigned long long)shrinks, (unsigned long long)t->get_roots_calls);
	CHECK(it->deletion_items > 0 && it->dropped_pairs > 0 && invalidations > 0,
	      "paths not taken");

	item_cache_destroy(it->ic);
	free_forest(&it->fm);
	free(it);
}

/* the specific rules, one at a time */
static void test_item_rules(void **state)
{
	struct tctx *t = g_t = ctx_create();
	struct item_cache *ic;
	struct lock w, wo, r;
	struct scoutfs_btree_root root = { 0 };
	struct scoutfs_key key, last;
	struct btree_item_ref iref;
	struct fmodel fm;
	u8 val[16];
	u64 max_seq, calls;
	int ret;

	rng_seed_test(3);
	memset(&fm, 0, sizeof(fm));
	/* fs_root holds keys 1 and 2 */
	fm.nr_trees = 1;
	fm.v[0] = calloc(NKEYS, sizeof(struct version));
	fm.v[0][1] = (struct version){ .seq = 5, .ver = 1, .len = 8, .present = 1 };
	fm.v[0][2] = (struct version){ .seq = 5, .ver = 2, .len = 8, .present = 1 };
	write_tree(t, &t->roots.fs_root, fm.v[0]);
	t_commit(t);

	CHECK_RET(item_cache_create(t->bc, &t_ops, t, &ic), 0);
	init_lock(&w, 0, SCOUTFS_LOCK_WRITE);
	init_lock(&wo, 0, SCOUTFS_LOCK_WRITE_ONLY);
	init_lock(&r, 0, SCOUTFS_LOCK_READ);
	item_set_trans_seq(ic, 100);

	/* create + delete of a new key: nothing; delete of a persistent key: a deletion */
	key = key_of(3);
	CHECK_RET(item_create(ic, &w, &key, "abc", 3), 0);
	CHECK_RET(item_create(ic, &w, &key, "abc", 3), -EEXIST);
	CHECK_RET(item_delete(ic, &w, &key), 0);
	CHECK_RET(item_delete(ic, &w, &key), -ENOENT);
	CHECK_RET(item_update(ic, &w, &key, "x", 1), -ENOENT);
	key = key_of(1);
	CHECK_RET(item_delete(ic, &w, &key), 0);
	CHECK_RET(item_lookup(ic, &w, &key, val, sizeof(val)), -ENOENT);
	/* dirty items can't be invalidated; an update takes the lock's larger write_seq */
	CHECK_RET(item_invalidate(ic, &w.start, &w.end), -EBUSY);
	key = key_of(2);
	w.write_seq = 150;
	CHECK_RET(item_update(ic, &w, &key, "upd", 3), 0);
	CHECK(item_dirty_count(ic) == 2, "dirty count %llu",
	      (unsigned long long)item_dirty_count(ic));

	CHECK_RET(item_write_dirty(ic, &t->txn, &root, &max_seq), 0);
	CHECK(max_seq == 150, "max_seq %llu", (unsigned long long)max_seq);
	key = key_of(3);
	CHECK_RET(btree_lookup(t->bc, &root, &key, &iref), -ENOENT);
	key = key_of(1);
	CHECK_RET(btree_lookup(t->bc, &root, &key, &iref), 0);
	CHECK(iref.flags == SCOUTFS_ITEM_FLAG_DELETION && iref.seq == 100 && iref.val_len == 0,
	      "deletion item flags %u seq %llu len %u", iref.flags, (unsigned long long)iref.seq,
	      iref.val_len);
	btree_iref_put(&iref);
	key = key_of(2);
	CHECK_RET(btree_lookup(t->bc, &root, &key, &iref), 0);
	CHECK(iref.flags == 0 && iref.seq == 150 && iref.val_len == 3 &&
	              memcmp(iref.val, "upd", 3) == 0,
	      "updated item");
	btree_iref_put(&iref);
	item_commit_done(ic);
	CHECK(!item_range_dirty(ic, &w.start, &w.end), "dirty after commit");
	fm.nr_trees = 2;
	fm.v[1] = calloc(NKEYS, sizeof(struct version));
	add_log_tree(t, &fm, &root);
	t_commit(t);
	item_roots_changed(ic);

	/* after the commit the cache still answers from memory, and agrees with a new read */
	key = key_of(2);
	CHECK_RET(item_lookup(ic, &r, &key, val, sizeof(val)), 3);
	CHECK_RET(item_invalidate(ic, &w.start, &w.end), 0);
	CHECK_RET(item_lookup(ic, &r, &key, val, sizeof(val)), 3);
	key = key_of(1);
	CHECK_RET(item_lookup(ic, &r, &key, val, sizeof(val)), -ENOENT);

	/*
	 * Blind writes under WRITE_ONLY, then the range is read under a WRITE lock in the
	 * same transaction: the blind create of key 5 must still be seen after the commit,
	 * and a blind create of persistent key 2 followed by a delete must delete it.
	 */
	item_set_trans_seq(ic, 200);
	CHECK_RET(item_invalidate(ic, &w.start, &w.end), 0);
	key = key_of(5);
	CHECK_RET(item_create_force(ic, &wo, NULL, &key, "blind", 5), 0);
	key = key_of(2);
	CHECK_RET(item_create_force(ic, &wo, NULL, &key, "b2", 2), 0);
	key = key_of(2);
	CHECK_RET(item_delete(ic, &w, &key), 0);
	key = key_of(5);
	CHECK_RET(item_lookup(ic, &w, &key, val, sizeof(val)), 5);
	root = (struct scoutfs_btree_root){ 0 };
	CHECK_RET(item_write_dirty(ic, &t->txn, &root, &max_seq), 0);
	key = key_of(2);
	ret = btree_lookup(t->bc, &root, &key, &iref);
	CHECK(ret == 0 && iref.flags == SCOUTFS_ITEM_FLAG_DELETION,
	      "blind create then delete of a persistent key left %d flags %u", ret,
	      ret == 0 ? iref.flags : 0);
	if (ret == 0)
		btree_iref_put(&iref);
	item_commit_done(ic);
	fm.v[fm.nr_trees++] = calloc(NKEYS, sizeof(struct version));
	add_log_tree(t, &fm, &root);
	t_commit(t);
	item_roots_changed(ic);
	key = key_of(5);
	CHECK_RET(item_lookup(ic, &r, &key, val, sizeof(val)), 5);
	key = key_of(2);
	CHECK_RET(item_lookup(ic, &r, &key, val, sizeof(val)), -ENOENT);

	/* next/prev limits clamp to the lock */
	key = key_of(0);
	last = key_ones();
	CHECK_RET(item_next(ic, &r, &key, &last, val, sizeof(val)), 5);
	CHECK(key_compare(&key, &(struct scoutfs_key){ 0 }) != 0, "next key");
	last = key_of(5);
	CHECK(key_compare(&key, &last) == 0, "next found the wrong key");
	key = key_of(KEYS_PER_LOCK - 1);
	last = key_zeros();
	CHECK_RET(item_prev(ic, &r, &key, &last, val, sizeof(val)), 5);
	last = key_of(5);
	CHECK(key_compare(&key, &last) == 0, "prev found the wrong key");
	key = key_of(6);
	last = key_of(KEYS_PER_LOCK - 1);
	CHECK_RET(item_next(ic, &r, &key, &last, val, sizeof(val)), -ENOENT);

	/* stale roots: fetch newer ones and retry; the same stale roots twice are -EIO */
	CHECK_RET(item_invalidate(ic, &r.start, &r.end), 0);
	item_roots_changed(ic);
	t->stale_gets = 1;
	calls = t->get_roots_calls;
	key = key_of(5);
	CHECK_RET(item_lookup(ic, &r, &key, val, sizeof(val)), 5);
	CHECK(t->get_roots_calls == calls + 2, "%llu get_roots calls for one stale read",
	      (unsigned long long)(t->get_roots_calls - calls));
	CHECK_RET(item_invalidate(ic, &r.start, &r.end), 0);
	item_roots_changed(ic);
	t->stale_gets = 1000;
	CHECK_RET(item_lookup(ic, &r, &key, val, sizeof(val)), -EIO);
	t->stale_gets = 0;
	item_roots_changed(ic);
	CHECK_RET(item_lookup(ic, &r, &key, val, sizeof(val)), 5);

	item_cache_destroy(ic);
	for (int i = 0; i < fm.nr_trees; i++)
		free(fm.v[i]);
}

/* a non-blind write under WRITE_ONLY would have to read: a caller bug that aborts */
static void test_item_write_only_rules(void **state)
{
	struct tctx *t = g_t = ctx_create();
	struct item_cache *ic;
	struct lock wo;
	struct scoutfs_key key = key_of(7);
	int status;
	pid_t pid;

	rng_seed_test(4);
	CHECK_RET(item_cache_create(t->bc, &t_ops, t, &ic), 0);
	init_lock(&wo, 0, SCOUTFS_LOCK_WRITE_ONLY);
	CHECK_RET(item_create_force(ic, &wo, NULL, &key, "x", 1), 0);
	CHECK_RET(item_delete_force(ic, &wo, NULL, &key), 0);
	for (int i = 0; i < 4; i++) {
		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			/* the abort's log line is expected: keep it out of the output */
			int fd = open("/dev/null", O_WRONLY);

			dup2(fd, STDERR_FILENO);
			if (i == 0)
				item_create(ic, &wo, &key, "y", 1);
			else if (i == 1)
				item_update(ic, &wo, &key, "y", 1);
			else if (i == 2)
				item_delete(ic, &wo, &key);
			else
				item_lookup(ic, &wo, &key, NULL, 0);
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
		      "access %d under WRITE_ONLY did not abort (status %#x)", i, status);
	}
	item_cache_destroy(ic);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_forest_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_item_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_item_write_only_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_item_cache, setup, teardown),
	};

	model_support_init("ITEM");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
