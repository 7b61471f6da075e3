/*
 * test_util.c: crc32c known answers, key ordering and carry, number parsing, counters and
 * the work queue's "queued once, never concurrent, delayed" rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <unistd.h>

#include "format/key.h"
#include "util/counters.h"
#include "util/crc32c.h"
#include "util/util.h"
#include "util/workq.h"

COUNTER_DEFINE(test_util_events);

static void test_crc32c_known(void **state)
{
	char big[4099];

	assert_int_equal(crc32c("123456789", 9), 0xe3069283);
	assert_int_equal(crc32c("", 0), 0);
	/* the sse and table paths must agree on unaligned tails; compare against bytewise */
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + 3);
	for (size_t len = 0; len < 40; len++) {
		uint32_t whole = crc32c(big + 1, len);
		assert_int_equal(whole, crc32c(big + 1, len));
	}
}

static void test_key_order(void **state)
{
	struct scoutfs_key a = key_make(16, 5, 4, 0, 0, 0);
	struct scoutfs_key b = key_make(16, 5, 8, 0, 0, 0);
	struct scoutfs_key c = key_make(16, 6, 0, 0, 0, 0);
	struct scoutfs_key d = key_make(4, 100, 100, 100, 100, 100);
	struct scoutfs_key k;

	assert_true(key_compare(&a, &b) < 0);
	assert_true(key_compare(&b, &c) < 0); /* first dominates type */
	assert_true(key_compare(&d, &a) < 0); /* zone dominates everything */
	assert_int_equal(key_compare(&a, &a), 0);

	k = key_make(16, 5, 4, ~0ULL, ~0ULL, 0xff);
	key_inc(&k);
	
	assert_int_equal(k.sk_type, 5);
	assert_int_equal(key_second(&k), 0);
	key_dec(&k);
	assert_int_equal(k.sk_type, 4);
	assert_true(key_second(&k) == ~0ULL && key_third(&k) == ~0ULL && key_fourth(&k) == 0xff);

	k = key_ones();
	assert_true(key_is_ones(&k));
	key_inc(&k);
	assert_true(key_is_zeros(&k));
	key_dec(&k);
	assert_true(key_is_ones(&k));
}

static void test_parse(void **state)
{
	uint64_t v;

	assert_int_equal(parse_human_u64("10G", &v), 0);
	assert_int_equal(v, 10ULL << 30);
	assert_int_equal(parse_human_u64("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(parse_human_u64("1k", &v), 0);
	assert_int_equal(v, 1024);
	assert_int_equal(parse_human_u64("-1", &v), -EINVAL);
	assert_int_equal(parse_human_u64("1X", &v), -EINVAL);
	assert_int_equal(parse_human_u64("16777216P", &v), -EINVAL);
	assert_int_equal(parse_u64("0x10", &v), 0);
	assert_int_equal(v, 16);
	assert_int_equal(parse_u64("10 ", &v), -EINVAL);
	assert_int_equal(parse_u64("", &v), -EINVAL);
}

static void test_counters(void **state)
{
	uint64_t v;

	counter_inc(test_util_events);
	counter_add(test_util_events, 2);
	assert_int_equal(counter_read("test_util_events", &v), 0);
	assert_int_equal(v, 3);
	assert_int_equal(counter_read("no_such_counter", &v), -ENOENT);
}

struct test_work {
	struct work work;
	atomic_int runs;
	atomic_int running;
	atomic_int overlap;
	useconds_t sleep_us;
};

static void test_work_fn(struct work *work)
{
	struct test_work *tw = container_of(work, struct test_work, work);

	if (atomic_fetch_add(&tw->running, 1) != 0)
		atomic_fetch_add(&tw->overlap, 1);
	usleep(tw->sleep_us);
	atomic_fetch_add(&tw->runs, 1);
	atomic_fetch_sub(&tw->running, 1);
}

static void test_workq(void **state)
{
	struct workq *wq = workq_create("test", 4);
	struct test_work tw = { .sleep_us = 20000 };
	uint64_t start;

	assert_non_null(wq);
	work_init(&tw.work, test_work_fn);

	/* queued twice before it runs: runs once */
	assert_true(workq_queue_delayed(wq, &tw.work, 50));
	assert_false(workq_queue_delayed(wq, &tw.work, 60));
	workq_flush_work(&tw.work);
	assert_int_equal(atomic_load(&tw.runs), 1);

	/* queued while running: runs again afterwards, never on two threads at once */
	for (int i = 0; i < 20; i++) {
		workq_queue(wq, &tw.work);
		usleep(3000);
	}
	workq_flush_work(&tw.work);
	assert_int_equal(atomic_load(&tw.overlap), 0);
	assert_true(atomic_load(&tw.runs) >= 3);

	/* a delayed item does not run early, and cancel removes it */
	start = now_mono_ms();
	atomic_store(&tw.runs, 0);
	workq_queue_delayed(wq, &tw.work, 200);
	usleep(50000);
	assert_int_equal(atomic_load(&tw.runs), 0);
	workq_cancel_sync(&tw.work);
	usleep(250000);
	assert_int_equal(atomic_load(&tw.runs), 0);
	assert_true(now_mono_ms() - start >= 250);

	/* a shorter delay pulls a queued item forward */
	workq_queue_delayed(wq, &tw.work, 100000);
	workq_queue_delayed(wq, &tw.work, 1);
	usleep(100000);
	assert_int_equal(atomic_load(&tw.runs), 1);

	workq_destroy(wq);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_known), cmocka_unit_test(test_key_order),
		cmocka_unit_test(test_parse),	     cmocka_unit_test(test_counters),
		cmocka_unit_test(test_workq),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
