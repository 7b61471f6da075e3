/*
 * model_support.h: what the randomized model tests (test_btree, test_alloc, test_item) share.
 *
 * Each of those tests drives a layer with long random operation sequences and checks it
 * against an in-memory model.  A failure must be replayable, so all their randomness comes
 * from one seeded generator: model_support_init() takes the seed from PREFIX_TEST_SEED (or
 * the time), each test reseeds with rng_seed_test(salt) and prints how to replay, and CHECK()
 * failures name the seed and the operation number g_op.  PREFIX_TEST_LONG=1 sets g_long for
 * longer runs and PREFIX_TEST_FILTER selects tests by name.
 *
 * The tests run on a model device: a sparse temporary file of MODEL_DEV_BYTES, unlinked as
 * soon as it is open, with a block cache on it.
 *
 * Include it after <cmocka.h> (and the four headers cmocka.h needs): CHECK() reports through
 * cmocka.
 */
#ifndef SCOUTFS_TESTS_MODEL_SUPPORT_H
#define SCOUTFS_TESTS_MODEL_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "block/block.h"
#include "dev/dev.h"
#include "format/format.h"

/* ------------------------------------------------------------------------------------ */
/* randomness and failure reports */

extern u64 g_seed;  /* the seed of the whole run */
extern u64 g_op;    /* the operation a test is at, for failure reports */
extern bool g_long; /* PREFIX_TEST_LONG: run longer */

/* read PREFIX_TEST_SEED, PREFIX_TEST_LONG and PREFIX_TEST_FILTER; call first in main() */
void model_support_init(const char *prefix);

/* xorshift64*: fast, and the same sequence for the same seed and salt */
u64 rnd(void);
/* uniform enough in [0, n); 0 when n is 0 */
u64 rnd_below(u64 n);
/* start the sequence of one test (salt tells tests apart), zero g_op, print the seed */
void rng_seed_test(u64 salt);

/* the value bytes of version ver of key number k: a pure function, so models store no bytes */
void model_fill_val(u64 k, u32 ver, u64 salt, unsigned int len, u8 *buf);

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			print_error("%s:%d: check failed: %s (seed %llu op %llu): ", __FILE__,     \
			            __LINE__, #cond, (unsigned long long)g_seed,                   \
			            (unsigned long long)g_op);                                     \
			print_error(__VA_ARGS__);                                                  \
			print_error("\n");                                                         \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

#define CHECK_RET(expr, want)                                                                      \
	do {                                                                                       \
		int _r = (expr);                                                                   \
		CHECK(_r == (want), "%s returned %d, wanted %d", #expr, _r, (int)(want));          \
	} while (0)

/* ------------------------------------------------------------------------------------ */
/* the model device */

#define MODEL_DEV_BYTES  (4ULL << 30)
#define MODEL_DEV_BLOCKS (MODEL_DEV_BYTES >> SCOUTFS_BLOCK_LG_SHIFT)

/*
 * Open a new model device read-write (dev_flags add to DEV_RDWR) from a temporary file
 * named after name, and a block cache of fsid on it (cache_blocks 0 for the default size).
 * Fails the test if anything fails.
 */
void model_dev_open(const char *name, u64 fsid, size_t cache_blocks, int dev_flags,
                    struct dev **dev, struct block_cache **bc);
void model_dev_close(struct dev *dev, struct block_cache *bc);

#endif
