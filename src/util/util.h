/*
 * util.h: small helpers every layer uses: size arithmetic, container_of, time and random
 * numbers.  Nothing here knows about scoutfs structures.
 */
#ifndef SCOUTFS_UTIL_H
#define SCOUTFS_UTIL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define DIV_ROUND_UP(n, d) (((n) + (d)-1) / (d))
#define ROUND_UP(n, a) (DIV_ROUND_UP(n, a) * (a))
#define ROUND_DOWN(n, a) (((n) / (a)) * (a))
#define ALIGN8(n) (((n) + 7) & ~7U)

#define min_t(t, a, b) ((t)(a) < (t)(b) ? (t)(a) : (t)(b))
#define max_t(t, a, b) ((t)(a) > (t)(b) ? (t)(a) : (t)(b))

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define NSEC_PER_SEC 1000000000ULL
#define NSEC_PER_MSEC 1000000ULL

static inline uint64_t now_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static inline uint64_t now_mono_ms(void)
{
	return now_mono_ns() / NSEC_PER_MSEC;
}

static inline struct timespec now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

/* an absolute CLOCK_MONOTONIC time ms from now, for pthread_cond_timedwait */
struct timespec mono_deadline_ms(uint64_t ms);

/* fill buf with random bytes from the kernel; never fails (aborts if getrandom is broken) */
void random_bytes(void *buf, size_t len);
uint64_t random_u64(void);
/* a random number in [0, n) */
uint64_t random_below(uint64_t n);

/* fls64: 1-based index of the most significant set bit, 0 for 0 */
static inline int fls64(uint64_t v)
{
	return v ? 64 - __builtin_clzll(v) : 0;
}

/* parse a u64 with an optional K/M/G/T/P suffix (powers of 1024); -EINVAL on junk/overflow */
int parse_human_u64(const char *str, uint64_t *val);
/* parse a plain u64 in base 0 (decimal, 0x hex, 0 octal) with no trailing junk */
int parse_u64(const char *str, uint64_t *val);

/* set the calling thread's name (shown by ps/top/gdb), truncated to 15 bytes */
void thread_set_name(const char *name);

/*
 * A buffer per thread that grows as needed and is freed when the thread exits (I/O bounce
 * buffers of request threads).  Define with THREAD_BUF_INIT(aligned).
 */
struct thread_buf {
	bool ready; /* key created */
	pthread_key_t key;
	bool aligned; /* DEV_ALIGN-aligned for direct I/O */
};

#define THREAD_BUF_INIT(al) { .ready = false, .aligned = (al) }

void *thread_buf_get(struct thread_buf *tb, size_t size);

#endif
