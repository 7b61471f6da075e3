/*
 * workq.h: work queues -- a fixed set of threads running queued work items.
 *
 * A work item is queued at most once: queueing a queued item does nothing, and queueing an
 * item while it runs makes it run once more afterwards.  An item never runs on two threads
 * at once.  Delayed queueing runs the item at a later time (or sooner, if it is queued again
 * with a shorter delay).  A queue with one thread runs its items strictly in order.
 */
#ifndef SCOUTFS_WORKQ_H
#define SCOUTFS_WORKQ_H

#include <stdbool.h>
#include <stdint.h>

struct workq;
struct work;

typedef void (*work_fn)(struct work *work);

enum work_state {
	WORK_IDLE = 0,
	WORK_QUEUED,
	WORK_RUNNING,
	WORK_RUNNING_REQUEUE,
};

struct work {
	work_fn fn;
	struct workq *wq;
	enum work_state state;
	uint64_t due_ns;
	struct work *next;
};

struct workq *workq_create(const char *name, int nr_threads);
/* stop the threads once nothing is running; queued items that have not started are dropped */
void workq_destroy(struct workq *wq);

void work_init(struct work *work, work_fn fn);
/* queue to run as soon as a thread is free; true if it was not already queued */
bool workq_queue(struct workq *wq, struct work *work);
/* queue to run delay_ms from now, or sooner if it is already due sooner */
bool workq_queue_delayed(struct workq *wq, struct work *work, uint64_t delay_ms);
/* remove the item if queued and wait for it to finish if running */
void workq_cancel_sync(struct work *work);
/* wait until the item is neither queued nor running */
void workq_flush_work(struct work *work);
/* is the item queued or running? */
bool work_busy(struct work *work);

#endif
