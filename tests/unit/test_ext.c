/*
 * test_ext.c: extent maps (fs/ext.c) against a per-block model.
 *
 * The map lives in a sorted array behind struct fs_ext_ops; the model is an array giving
 * every logical block of a small file its physical block (0 for none) and flags.  Random
 * fs_ext_set() calls -- holes, written and unwritten mappings, offline ranges, physical
 * blocks chosen so that neighbours often could merge -- are applied to both.  After each one
 * the stored extents must be sorted, must not overlap, must map exactly the model's blocks,
 * and must be canonical: no two stored extents that fs_ext_can_merge() would join, and none
 * that is an unmapped extent without flags.
 *
 * EXT_TEST_SEED=n replays, EXT_TEST_LONG=1 runs longer.
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

#include "format/format.h"
#include "fs/ext.h"

#include "model_support.h"

#define NR_BLOCKS 160
#define MAX_EXTS  (NR_BLOCKS + 8)

struct store {
	struct fs_ext exts[MAX_EXTS]; /* sorted by start */
	int nr;
	u64 inserts;
	u64 removes;
};

struct model {
	u64 map[NR_BLOCKS];
	u8 flags[NR_BLOCKS];
};

static int store_next(void *arg, u64 blk, struct fs_ext *ext)
{
	struct store *st = arg;

	for (int i = 0; i < st->nr; i++) {
		if (fs_ext_end(&st->exts[i]) >= blk) {
			*ext = st->exts[i];
			return 0;
		}
	}
	return -ENOENT;
}

static int store_insert(void *arg, const struct fs_ext *ext)
{
	struct store *st = arg;
	int i;

	CHECK(st->nr < MAX_EXTS, "store full");
	for (i = 0; i < st->nr && st->exts[i].start < ext->start; i++)
		;
	CHECK(i == 0 || fs_ext_end(&st->exts[i - 1]) < ext->start,
	      "insert %llu+%llu overlaps the extent before it", (unsigned long long)ext->start,
	      (unsigned long long)ext->len);
	CHECK(i == st->nr || fs_ext_end(ext) < st->exts[i].start,
	      "insert %llu+%llu overlaps the extent after it", (unsigned long long)ext->start,
	      (unsigned long long)ext->len);
	memmove(&st->exts[i + 1], &st->exts[i], (size_t)(st->nr - i) * sizeof(st->exts[0]));
	st->exts[i] = *ext;
	st->nr++;
	st->inserts++;
	return 0;
}

static int store_remove(void *arg, const struct fs_ext *ext)
{
	struct store *st = arg;

	for (int i = 0; i < st->nr; i++) {
		if (memcmp(&st->exts[i], ext, sizeof(*ext)) == 0) {
			memmove(&st->exts[i], &st->exts[i + 1],
			        (size_t)(st->nr - i - 1) * sizeof(st->exts[0]));
			st->nr--;
			st->removes++;
			return 0;
		}
	}
	CHECK(false, "remove of %llu+%llu that is not stored", (unsigned long long)ext->start,
	      (unsigned long long)ext->len);
	return -ENOENT;
}

static const struct fs_ext_ops store_ops = {
	.next = store_next,
	.insert = store_insert,
	.remove = store_remove,
};

static void model_set(struct model *md, u64 start, u64 len, u64 map, u8 flags)
{
	for (u64 b = start; b < start + len; b++) {
		md->map[b] = map ? map + (b - start) : 0;
		md->flags[b] = flags;
	}
}

static void check_store(const struct store *st, const struct model *md)
{
	struct model seen;

	memset(&seen, 0, sizeof(seen));
	for (int i = 0; i < st->nr; i++) {
		const struct fs_ext *e = &st->exts[i];

		CHECK(e->len > 0 && fs_ext_end(e) < NR_BLOCKS, "extent %d out of range", i);
		CHECK(e->map || e->flags, "extent %llu+%llu is stored but maps nothing",
		      (unsigned long long)e->start, (unsigned long long)e->len);
		if (i > 0) {
			CHECK(fs_ext_end(&st->exts[i - 1]) < e->start, "extents %d and %d overlap",
			      i - 1, i);
			CHECK(!fs_ext_can_merge(&st->exts[i - 1], e),
			      "extents %llu+%llu and %llu+%llu should have merged",
			      (unsigned long long)st->exts[i - 1].start,
			      (unsigned long long)st->exts[i - 1].len, (unsigned long long)e->start,
			      (unsigned long long)e->len);
		}
		model_set(&seen, e->start, e->len, e->map, e->flags);
	}
	for (u64 b = 0; b < NR_BLOCKS; b++) {
		CHECK(seen.map[b] == md->map[b] && seen.flags[b] == md->flags[b],
		      "block %llu maps %llu flags %u, the model says %llu flags %u",
		      (unsigned long long)b, (unsigned long long)seen.map[b], seen.flags[b],
		      (unsigned long long)md->map[b], md->flags[b]);
	}
}

/* a mapping for [start, start + len): often contiguous with what neighbours have */
static void random_mapping(const struct model *md, u64 start, u64 len, u64 *map, u8 *flags)
{
	static const u8 flag_choices[] = {
		0,
		0,
		0,
		SCOUTFS_EXTENT_FLAG_UNWRITTEN,
		SCOUTFS_EXTENT_FLAG_UNWRITTEN,
		SCOUTFS_EXTENT_FLAG_OFFLINE,
		SCOUTFS_EXTENT_FLAG_OFFLINE | SCOUTFS_EXTENT_FLAG_UNWRITTEN,
	};

	*flags = flag_choices[rnd_below(sizeof(flag_choices))];
	switch (rnd_below(5)) {
	case 0: /* a hole, or an unmapped (offline) range */
		*map = 0;
		if (*flags != SCOUTFS_EXTENT_FLAG_OFFLINE)
			*flags = 0;
		break;
	case 1: /* continue the physical blocks of the block before */
		if (start > 0 && md->map[start - 1]) {
			*map = md->map[start - 1] + 1;
			break;
		}
		/* fall through */
	case 2: /* the same physical layout as a fixed base: neighbours line up */
		*map = 10000 + start;
		break;
	default:
		*map = 100000 + rnd_below(1000) * 1000;
		break;
	}
	(void)len;
}

static void test_random_sets(void **state)
{
	u64 nr_ops = g_long ? 2000000 : 200000;
	struct store *st = calloc(1, sizeof(*st));
	struct model *md = calloc(1, sizeof(*md));
	u64 start, len, map;
	u8 flags;

	(void)state;
	rng_seed_test(1);
	for (g_op = 0; g_op < nr_ops; g_op++) {
		start = rnd_below(NR_BLOCKS);
		len = 1 + rnd_below(rnd_below(3) ? 8 : NR_BLOCKS - start);
		if (start + len > NR_BLOCKS)
			len = NR_BLOCKS - start;
		random_mapping(md, start, len, &map, &flags);
		CHECK_RET(fs_ext_set(&store_ops, st, start, len, map, flags), 0);
		model_set(md, start, len, map, flags);
		check_store(st, md);
	}
	print_message("%llu sets: %llu inserts, %llu removes\n", (unsigned long long)nr_ops,
	              (unsigned long long)st->inserts, (unsigned long long)st->removes);
	free(st);
	free(md);
}

/* streaming writes in order leave one extent, and converting prealloc keeps it one */
static void test_streams_merge(void **state)
{
	struct store *st = calloc(1, sizeof(*st));
	struct fs_ext ext;

	(void)state;
	rng_seed_test(2);
	for (u64 b = 0; b < 64; b++)
		CHECK_RET(fs_ext_set(&store_ops, st, b, 1, 500 + b, 0), 0);
	CHECK(st->nr == 1 && st->exts[0].len == 64 && st->exts[0].map == 500, "not one extent");

	/* preallocate 64 unwritten blocks after it, then write them in two halves */
	CHECK_RET(fs_ext_set(&store_ops, st, 64, 64, 564, SCOUTFS_EXTENT_FLAG_UNWRITTEN), 0);
	CHECK(st->nr == 2, "unwritten merged with written");
	CHECK_RET(fs_ext_set(&store_ops, st, 64, 32, 564, 0), 0);
	CHECK(st->nr == 2 && st->exts[0].len == 96 && st->exts[1].start == 96 &&
	              st->exts[1].len == 32 && st->exts[1].map == 596,
	      "converting the front of the prealloc");
	CHECK_RET(fs_ext_set(&store_ops, st, 96, 32, 596, 0), 0);
	CHECK(st->nr == 1 && st->exts[0].len == 128, "converting the rest");

	/* a hole in the middle splits it, physical blocks follow */
	CHECK_RET(fs_ext_set(&store_ops, st, 10, 5, 0, 0), 0);
	CHECK(st->nr == 2 && st->exts[1].start == 15 && st->exts[1].map == 515, "hole split");
	CHECK_RET(fs_ext_next(&store_ops, st, 12, &ext), 0);
	CHECK(ext.start == 15, "next after a hole");
	CHECK_RET(fs_ext_next(&store_ops, st, 128, &ext), -ENOENT);

	/* bad arguments */
	CHECK_RET(fs_ext_set(&store_ops, st, 5, 0, 1, 0), -EINVAL);
	CHECK_RET(fs_ext_set(&store_ops, st, ~0ULL, 2, 1, 0), -EINVAL);
	free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_streams_merge),
		cmocka_unit_test(test_random_sets),
	};

	model_support_init("EXT");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
