/*
 * util.c: implementations of the small helpers in util.h.
 */

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/util.h"

struct timespec mono_deadline_ms(uint64_t ms)
{
	uint64_t ns = now_mono_ns() + ms * NSEC_PER_MSEC;
	struct timespec ts = { .tv_sec = ns / NSEC_PER_SEC, .tv_nsec = ns % NSEC_PER_SEC };

	return ts;
}

void random_bytes(void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t ret = getrandom(p, len, 0);

		if (ret < 0) {
			if (errno == EINTR)
				continue;
			perror("getrandom");
			abort();
		}
		p += ret;
		len -= ret;
	}
}

uint64_t random_u64(void)
{
	uint64_t v;

	random_bytes(&v, sizeof(v));
	return v;
}

uint64_t random_below(uint64_t n)
{
	return n ? random_u64() % n : 0;
}

int parse_u64(const char *str, uint64_t *val)
{
	char *end;

	if (!str || !*str || *str == '-' || *str == '+' || isspace((unsigned char)*str))
		return -EINVAL;
	errno = 0;
	*val = strtoull(str, &end, 0);
	if (errno || *end)
		return -EINVAL;
	return 0;
}

int parse_human_u64(const char *str, uint64_t *val)
{
	static const char suffixes[] = "KMGTP";
	unsigned long long v;
	const char *s;
	char *end;
	int shift = 0;

	if (!str || !*str || *str == '-' || *str == '+' || isspace((unsigned char)*str))
		return -EINVAL;
	errno = 0;
	v = strtoull(str, &end, 0);
	if (errno || end == str)
		return -EINVAL;
	if (*end) {
		s = strchr(suffixes, toupper((unsigned char)*end));
		if (!s || end[1] != '\0')
			return -EINVAL;
		shift = 10 * (int)(s - suffixes + 1);
	}
	if (shift && v > (~0ULL >> shift))
		return -EINVAL;
	*val = v << shift;
	return 0;
}

void thread_set_name(const char *name)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%s", name);
	pthread_setname_np(pthread_self(), buf);
}

struct thread_buf_val {
	void *buf;
	size_t size;
};

static void thread_buf_free(void *arg)
{
	struct thread_buf_val *tv = arg;

	free(tv->buf);
	free(tv);
}

static pthread_mutex_t thread_buf_mutex = PTHREAD_MUTEX_INITIALIZER;

void *thread_buf_get(struct thread_buf *tb, size_t size)
{
	struct thread_buf_val *tv;
	void *buf = NULL;

	if (!__atomic_load_n(&tb->ready, __ATOMIC_ACQUIRE)) {
		pthread_mutex_lock(&thread_buf_mutex);
		if (!tb->ready) {
			if (pthread_key_create(&tb->key, thread_buf_free) != 0) {
				pthread_mutex_unlock(&thread_buf_mutex);
				return NULL;
			}
			__atomic_store_n(&tb->ready, true, __ATOMIC_RELEASE);
		}
		pthread_mutex_unlock(&thread_buf_mutex);
	}

	tv = pthread_getspecific(tb->key);
	if (!tv) {
		tv = calloc(1, sizeof(*tv));
		if (!tv)
			return NULL;
		pthread_setspecific(tb->key, tv);
	}
	if (size > tv->size) {
		if (tb->aligned) {
			if (posix_memalign(&buf, 4096, ROUND_UP(size, 4096)) != 0)
				buf = NULL;
		} else {
			buf = malloc(size);
		}
		if (!buf)
			return NULL;
		free(tv->buf);
		tv->buf = buf;
		tv->size = size;
	}
	return tv->buf;
}
