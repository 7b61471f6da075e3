/*
 * test_dev.c: the device's write-behind queue against a model of the device's bytes.
 *
 * Random sequences of queued writes (several slices of one buffer, overlapping each other),
 * writes that bypass the queue, reads and flushes run on a temporary file while the writer
 * thread works: every read must return what the model says the device holds after all
 * earlier writes.  Injected failures check that a failed write of fresh blocks leaves zeros
 * and is reported once for its tag, and that a failure to zero them holds flushes (and
 * reads of them) until zeroing works.  DEV_TEST_SEED replays a run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dev/dev.h"

#define BLK 4096
#define DEV_BLOCKS 2048 /* 8 MiB: small, so that writes overlap often */
#define MAX_BLOCKS 300

static uint64_t seed, rng_state, op;
static struct dev *dev;
static unsigned char *model;
static unsigned char *rbuf;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			print_error("check failed: %s (DEV_TEST_SEED=%" PRIu64 " op %" PRIu64 "): ", \
				    #cond, seed, op);                                              \
			print_error(__VA_ARGS__);                                                  \
			print_error("\n");                                                         \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

static int setup(void **state)
{
	char path[] = "/tmp/test_dev.XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)DEV_BLOCKS * BLK), 0);
	close(fd);
	assert_int_equal(dev_open(path, DEV_RDWR, &dev), 0);
	unlink(path);
	model = calloc(DEV_BLOCKS, BLK);
	rbuf = dev_alloc_buf((size_t)DEV_BLOCKS * BLK);
	assert_non_null(model);
	assert_non_null(rbuf);
	rng_state = seed | 1;
	op = 0;
	return 0;
}

static int teardown(void **state)
{
	dev_close(dev);
	free(model);
	free(rbuf);
	return 0;
}

static void fill(unsigned char *p, size_t len)
{
	unsigned char v = (unsigned char)rnd();

	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(v + i / 512);
}

static void random_range(uint64_t *blk, uint64_t *nr)
{
	*nr = 1 + below(MAX_BLOCKS);
	*blk = below(DEV_BLOCKS - *nr + 1);
}

static void check_read(uint64_t blk, uint64_t nr)
{
	size_t len = nr * BLK;
	int err = dev_read(dev, rbuf, len, blk * BLK);

	CHECK(err == 0, "read of %" PRIu64 "+%" PRIu64 " returned %d", blk, nr, err);
	for (size_t i = 0; i < len; i++)
		CHECK(rbuf[i] == model[blk * BLK + i], "byte %zu of block %" PRIu64 " is %u, model %u",
		      i % BLK, blk + i / BLK, rbuf[i], model[blk * BLK + i]);
}

/* queue one buffer in up to four slices, each to its own place */
static void queue_slices(unsigned int flags, uint64_t tag)
{
	uint64_t nr = 1 + below(MAX_BLOCKS), done = 0, n, blk;
	struct dev_wbuf *wbuf = dev_wbuf_get(dev, nr * BLK);
	char *data;

	CHECK(wbuf != NULL, "no buffer");
	data = dev_wbuf_data(wbuf);
	fill((unsigned char *)data, nr * BLK);
	while (done < nr) {
		n = below(4) == 0 ? nr - done : 1 + below(nr - done);
		blk = below(DEV_BLOCKS - n + 1);
		CHECK(dev_write_behind(dev, wbuf, done * BLK, n * BLK, blk * BLK, tag, flags) == 0,
		      "queue");
		memcpy(model + blk * BLK, data + done * BLK, n * BLK);
		done += n;
	}
	dev_wbuf_put(wbuf);
}

static void write_now(void)
{
	uint64_t blk, nr;
	char *buf;

	random_range(&blk, &nr);
	buf = dev_alloc_buf(nr * BLK);
	fill((unsigned char *)buf, nr * BLK);
	CHECK(dev_write(dev, buf, nr * BLK, blk * BLK) == 0, "write");
	memcpy(model + blk * BLK, buf, nr * BLK);
	free(buf);
}

static void test_queue_matches_model(void **state)
{
	uint64_t nr_ops = getenv("DEV_TEST_LONG") ? 50000 : 6000;
	uint64_t blk, nr, r;

	for (op = 0; op < nr_ops; op++) {
		r = below(100);
		if (r < 45) {
			queue_slices(below(2) ? DEV_WB_FRESH : 0, 1);
		} else if (r < 55) {
			write_now();
		} else if (r < 97) {
			random_range(&blk, &nr);
			check_read(blk, nr);
		} else if (r < 99) {
			CHECK(dev_flush(dev) == 0, "flush");
		} else {
			CHECK(dev_wait_queued(dev) == 0, "wait");
		}
	}
	CHECK(dev_flush(dev) == 0, "flush");
	CHECK(!dev_take_write_error(dev, 1), "an error nobody injected");
	check_read(0, DEV_BLOCKS);
}

/*
 * Queue one write under an injected rule (for writes of at least min_len bytes); the queue
 * is empty before.  The range is at least min_blocks long.
 */
static void failed_write(enum dev_fault_action action, uint64_t count, uint64_t min_len,
			 uint64_t min_blocks, unsigned int flags, uint64_t tag, uint64_t *blk,
			 uint64_t *nr)
{
	struct dev_fault_rule rule = { .action = action, .count = count, .min_len = min_len };
	struct dev_wbuf *wbuf;

	CHECK(dev_wait_queued(dev) == 0, "wait");
	do
		random_range(blk, nr);
	while (*nr < min_blocks);
	wbuf = dev_wbuf_get(dev, *nr * BLK);
	fill((unsigned char *)dev_wbuf_data(wbuf), *nr * BLK);
	dev_set_fault(dev, DEV_FAULT_OP_WRITE, &rule);
	CHECK(dev_write_behind(dev, wbuf, 0, *nr * BLK, *blk * BLK, tag, flags) == 0, "queue");
	dev_wbuf_put(wbuf);
}

/*
 * A write of fresh blocks fails and so does their zeroing (writes of 16 blocks and more
 * fail); then a small write of part of them succeeds, queued or not.  Reads of the part
 * return it at once, reads of the rest fail, and once zeroing works the rest is zeroed and
 * the part keeps its data.
 */
static void rewrite_unzeroed(uint64_t tag, uint64_t *blk, uint64_t *nr)
{
	uint64_t pblk, pnr;
	char *buf;

	failed_write(DEV_FAULT_FAIL, 0, 16 * BLK, 16, DEV_WB_FRESH, tag, blk, nr);
	CHECK(dev_wait_queued(dev) == -EIO, "wait while unzeroed");
	memset(model + *blk * BLK, 0, *nr * BLK);
	pnr = 1 + below(15);
	pblk = *blk + below(*nr - pnr + 1);
	if (below(2)) {
		struct dev_wbuf *wbuf = dev_wbuf_get(dev, pnr * BLK);

		buf = dev_wbuf_data(wbuf);
		fill((unsigned char *)buf, pnr * BLK);
		memcpy(model + pblk * BLK, buf, pnr * BLK);
		CHECK(dev_write_behind(dev, wbuf, 0, pnr * BLK, pblk * BLK, tag, 0) == 0, "queue");
		dev_wbuf_put(wbuf);
	} else {
		buf = dev_alloc_buf(pnr * BLK);
		fill((unsigned char *)buf, pnr * BLK);
		memcpy(model + pblk * BLK, buf, pnr * BLK);
		CHECK(dev_write(dev, buf, pnr * BLK, pblk * BLK) == 0, "write");
		free(buf);
	}
	check_read(pblk, pnr);
	if (pblk > *blk)
		CHECK(dev_read(dev, rbuf, BLK, *blk * BLK) == -EIO, "read of unzeroed");
	/* the sides left unzeroed are zeroed by the flush if both are too short to fail */
	CHECK(dev_flush(dev) == (pblk - *blk >= 16 || *blk + *nr - (pblk + pnr) >= 16 ? -EIO : 0),
	      "flush while unzeroed (%" PRIu64 " + %" PRIu64 " in %" PRIu64 " + %" PRIu64 ")",
	      pblk, pnr, *blk, *nr);
	dev_clear_faults(dev);
	CHECK(dev_flush(dev) == 0, "flush after");
}

static void test_failures(void **state)
{
	uint64_t blk, nr, tag;

	for (op = 0; op < 300; op++) {
		/* some ordinary traffic around the failures */
		queue_slices(DEV_WB_FRESH, 1);
		write_now();
		tag = 100 + op;
		switch (below(4)) {
		case 0: /* fresh blocks: zeroed */
			failed_write(DEV_FAULT_FAIL, 1, 0, 1, DEV_WB_FRESH, tag, &blk, &nr);
			CHECK(dev_wait_queued(dev) == 0, "wait");
			memset(model + blk * BLK, 0, nr * BLK);
			break;
		case 1: /* overwritten blocks: what reached the device stays (nothing here) */
			failed_write(DEV_FAULT_FAIL, 1, 0, 1, 0, tag, &blk, &nr);
			CHECK(dev_wait_queued(dev) == 0, "wait");
			break;
		case 2: /* zeroing fails too: flushes and reads fail until it works */
			failed_write(DEV_FAULT_FAIL, 0, 0, 1, DEV_WB_FRESH, tag, &blk, &nr);
			CHECK(dev_wait_queued(dev) == -EIO, "wait while unzeroed");
			CHECK(dev_flush(dev) == -EIO, "flush while unzeroed");
			CHECK(dev_read(dev, rbuf, BLK, (blk + below(nr)) * BLK) == -EIO,
			      "read of unzeroed");
			dev_clear_faults(dev);
			CHECK(dev_flush(dev) == 0, "flush after");
			memset(model + blk * BLK, 0, nr * BLK);
			break;
		case 3: /* ... and a later write of part of them keeps its data */
			rewrite_unzeroed(tag, &blk, &nr);
			break;
		}
		dev_clear_faults(dev);
		CHECK(dev_take_write_error(dev, tag), "tag %" PRIu64 " not reported", tag);
		CHECK(!dev_take_write_error(dev, tag), "tag %" PRIu64 " reported twice", tag);
		check_read(blk, nr);
	}
	CHECK(!dev_take_write_error(dev, 1), "an error nobody injected");
	check_read(0, DEV_BLOCKS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_queue_matches_model, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failures, setup, teardown),
	};
	const char *s = getenv("DEV_TEST_SEED");

	seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	printf("DEV_TEST_SEED=%" PRIu64 "\n", seed);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
