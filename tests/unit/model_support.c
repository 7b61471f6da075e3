/*
 * model_support.c: the seeded randomness, value bytes and model device of the randomized
 * model tests (model_support.h says what they share and why).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the four above */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model_support.h"
#include "util/util.h"

u64 g_seed;
u64 g_op;
bool g_long;

static u64 rng_state;
static const char *env_prefix = "MODEL";

static const char *prefixed_env(const char *name)
{
	char var[64];

	snprintf(var, sizeof(var), "%s_TEST_%s", env_prefix, name);
	return getenv(var);
}

void model_support_init(const char *prefix)
{
	const char *s, *l, *f;

	env_prefix = prefix;
	s = prefixed_env("SEED");
	l = prefixed_env("LONG");
	f = prefixed_env("FILTER");
	g_seed = s ? strtoull(s, NULL, 0) : ((u64)time(NULL) ^ ((u64)getpid() << 32));
	g_long = l && atoi(l) > 0;
	if (f)
		cmocka_set_test_filter(f);
}

u64 rnd(void)
{
	u64 x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

u64 rnd_below(u64 n)
{
	return n ? rnd() % n : 0;
}

void rng_seed_test(u64 salt)
{
	u64 z = g_seed + salt * 0x9e3779b97f4a7c15ULL;

	/* splitmix64 so that nearby seeds give unrelated sequences */
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	rng_state = z ? z : 1;
	g_op = 0;
	print_message("seed %llu (replay with %s_TEST_SEED=%llu)\n", (unsigned long long)g_seed,
	              env_prefix, (unsigned long long)g_seed);
}

void model_fill_val(u64 k, u32 ver, u64 salt, unsigned int len, u8 *buf)
{
	u64 x = (k * 0x9e3779b97f4a7c15ULL) ^ ((u64)ver << 32) ^ salt;

	for (unsigned int i = 0; i < len; i += 8) {
		x ^= x >> 33;
		x *= 0xff51afd7ed558ccdULL;
		memcpy(buf + i, &x, min_t(unsigned int, 8, len - i));
	}
}

void model_dev_open(const char *name, u64 fsid, size_t cache_blocks, int dev_flags,
                    struct dev **dev, struct block_cache **bc)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/%s.XXXXXX", name);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, MODEL_DEV_BYTES), 0);
	close(fd);
	assert_int_equal(dev_open(path, DEV_RDWR | dev_flags, dev), 0);
	unlink(path);
	assert_int_equal(block_cache_create(*dev, fsid, cache_blocks, bc), 0);
}

void model_dev_close(struct dev *dev, struct block_cache *bc)
{
	block_cache_destroy(bc);
	dev_close(dev);
}
