/*
 * counters.c: the registry of counters.  Registration happens in constructors before main
 * runs, so the list needs a lock only against concurrent readers of a running daemon.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/counters.h"

static struct counter *counter_list;
static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;

void counter_register(struct counter *c)
{
	struct counter **pos;

	pthread_mutex_lock(&counter_lock);
	for (pos = &counter_list; *pos && strcmp((*pos)->name, c->name) < 0; pos = &(*pos)->next)
		;
	c->next = *pos;
	*pos = c;
	pthread_mutex_unlock(&counter_lock);
}

void counters_for_each(void (*fn)(const char *name, uint64_t value, void *arg), void *arg)
{
	struct counter *c;

	pthread_mutex_lock(&counter_lock);
	for (c = counter_list; c; c = c->next)
		fn(c->name, atomic_load(&c->value), arg);
	pthread_mutex_unlock(&counter_lock);
}

int counter_read(const char *name, uint64_t *value)
{
	struct counter *c;
	int ret = -ENOENT;

	pthread_mutex_lock(&counter_lock);
	for (c = counter_list; c; c = c->next) {
		if (strcmp(c->name, name) == 0) {
			*value = atomic_load(&c->value);
			ret = 0;
			break;
		}
	}
	pthread_mutex_unlock(&counter_lock);
	return ret;
}
