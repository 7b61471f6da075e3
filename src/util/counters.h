/*
 * counters.h: named event counters for everything that can go wrong or be slow.
 *
 * Each module defines its own counters with COUNTER_DEFINE(name) at file scope; they
 * register themselves at program start, so there is no central list to keep in sync.
 * Counters only grow.  `scoutfs counters` reads them from a running mount and tests use
 * them to prove that a path was taken.  Names are subsystem_event.
 */
#ifndef SCOUTFS_COUNTERS_H
#define SCOUTFS_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

struct counter {
	const char *name;
	_Atomic uint64_t value;
	struct counter *next;
};

void counter_register(struct counter *c);
/* call fn for every registered counter, sorted by name */
void counters_for_each(void (*fn)(const char *name, uint64_t value, void *arg), void *arg);
/* the value of a counter by name; -ENOENT if there is none */
int counter_read(const char *name, uint64_t *value);

#define COUNTER_DEFINE(nm)                                                                 \
	struct counter counter_##nm = { .name = #nm };                                    \
	__attribute__((constructor)) static void counter_register_##nm(void)              \
	{                                                                                  \
		counter_register(&counter_##nm);                                          \
	}

#define COUNTER_DECLARE(nm) extern struct counter counter_##nm

#define counter_inc(nm) atomic_fetch_add_explicit(&counter_##nm.value, 1, memory_order_relaxed)
#define counter_add(nm, n)                                                                 \
	atomic_fetch_add_explicit(&counter_##nm.value, (n), memory_order_relaxed)

#endif
