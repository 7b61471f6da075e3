/*
 * workq.c: a mutex, two condition variables and a due-time ordered list of items per
 * queue.  Worker threads sleep until the earliest item is due.  All item state changes
 * happen under the queue mutex, which is what makes "queued at most once, never running
 * twice" simple to keep.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"
#include "util/workq.h"

struct workq {
	char name[16];
	pthread_mutex_t mutex;
	pthread_cond_t wake;	 /* an item was queued or the queue is stopping */
	pthread_cond_t finished; /* an item finished running */
	struct work *head;	 /* sorted by due_ns */
	bool stopping;
	int nr_threads;
	pthread_t *threads;
};

static void insert_sorted(struct workq *wq, struct work *work)
{
	struct work **pos;

	for (pos = &wq->head; *pos && (*pos)->due_ns <= work->due_ns; pos = &(*pos)->next)
		;
	work->next = *pos;
	*pos = work;
}

static void remove_from_list(struct workq *wq, struct work *work)
{
	struct work **pos;

	for (pos = &wq->head; *pos; pos = &(*pos)->next) {
		if (*pos == work) {
			*pos = work->next;
			work->next = NULL;
			return;
		}
	}
}

static void *worker_thread(void *arg)
{
	struct workq *wq = arg;
	struct work *work;
	uint64_t now;

	thread_set_name(wq->name);
	pthread_mutex_lock(&wq->mutex);
	for (;;) {
		if (wq->stopping)
			break;
		work = wq->head;
		now = now_mono_ns();
		if (!work) {
			pthread_cond_wait(&wq->wake, &wq->mutex);
			continue;
		}
		if (work->due_ns > now) {
			struct timespec ts = { .tv_sec = work->due_ns / NSEC_PER_SEC,
					       .tv_nsec = work->due_ns % NSEC_PER_SEC };

			pthread_cond_timedwait(&wq->wake, &wq->mutex, &ts);
			continue;
		}
		wq->head = work->next;
		work->next = NULL;
		work->state = WORK_RUNNING;
		pthread_mutex_unlock(&wq->mutex);

		work->fn(work);

		pthread_mutex_lock(&wq->mutex);
		if (work->state == WORK_RUNNING_REQUEUE) {
			work->state = WORK_QUEUED;
			insert_sorted(wq, work);
		} else {
			work->state = WORK_IDLE;
		}
		pthread_cond_broadcast(&wq->finished);
	}
	pthread_mutex_unlock(&wq->mutex);
	return NULL;
}

struct workq *workq_create(const char *name, int nr_threads)
{
	pthread_condattr_t attr;
	struct workq *wq;
	int i;

	wq = calloc(1, sizeof(*wq));
	if (!wq)
		return NULL;
	wq->threads = calloc(nr_threads, sizeof(pthread_t));
	if (!wq->threads) {
		free(wq);
		return NULL;
	}
	snprintf(wq->name, sizeof(wq->name), "%s", name);
	pthread_mutex_init(&wq->mutex, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&wq->wake, &attr);
	pthread_cond_init(&wq->finished, &attr);
	pthread_condattr_destroy(&attr);

	for (i = 0; i < nr_threads; i++) {
		if (pthread_create(&wq->threads[i], NULL, worker_thread, wq) != 0)
			break;
	}
	wq->nr_threads = i;
	if (i == 0) {
		free(wq->threads);
		free(wq);
		return NULL;
	}
	return wq;
}

void workq_destroy(struct workq *wq)
{
	struct work *work;
	int i;

	if (!wq)
		return;
	pthread_mutex_lock(&wq->mutex);
	wq->stopping = true;
	while ((work = wq->head)) {
		wq->head = work->next;
		work->next = NULL;
		work->state = WORK_IDLE;
	}
	pthread_cond_broadcast(&wq->wake);
	pthread_mutex_unlock(&wq->mutex);

	for (i = 0; i < wq->nr_threads; i++)
		pthread_join(wq->threads[i], NULL);

	pthread_cond_destroy(&wq->wake);
	pthread_cond_destroy(&wq->finished);
	pthread_mutex_destroy(&wq->mutex);
	free(wq->threads);
	free(wq);
}

void work_init(struct work *work, work_fn fn)
{
	memset(work, 0, sizeof(*work));
	work->fn = fn;
}

static bool queue_at(struct workq *wq, struct work *work, uint64_t due_ns)
{
	bool queued = false;

	pthread_mutex_lock(&wq->mutex);
	if (wq->stopping)
		goto out;
	work->wq = wq;
	switch (work->state) {
	case WORK_IDLE:
		work->state = WORK_QUEUED;
		work->due_ns = due_ns;
		insert_sorted(wq, work);
		pthread_cond_signal(&wq->wake);
		queued = true;
		break;
	case WORK_QUEUED:
		if (due_ns < work->due_ns) {
			remove_from_list(wq, work);
			work->due_ns = due_ns;
			insert_sorted(wq, work);
			pthread_cond_signal(&wq->wake);
		}
		break;
	case WORK_RUNNING:
		/* run again after this run, at the requested time */
		work->state = WORK_RUNNING_REQUEUE;
		work->due_ns = due_ns;
		queued = true;
		break;
	case WORK_RUNNING_REQUEUE:
		if (due_ns < work->due_ns)
			work->due_ns = due_ns;
		break;
	}
out:
	pthread_mutex_unlock(&wq->mutex);
	return queued;
}

bool workq_queue(struct workq *wq, struct work *work)
{
	return queue_at(wq, work, now_mono_ns());
}

bool workq_queue_delayed(struct workq *wq, struct work *work, uint64_t delay_ms)
{
	return queue_at(wq, work, now_mono_ns() + delay_ms * NSEC_PER_MSEC);
}

void workq_cancel_sync(struct work *work)
{
	struct workq *wq = work->wq;

	if (!wq)
		return;
	pthread_mutex_lock(&wq->mutex);
	if (work->state == WORK_QUEUED) {
		remove_from_list(wq, work);
		work->state = WORK_IDLE;
	} else if (work->state == WORK_RUNNING_REQUEUE) {
		work->state = WORK_RUNNING;
	}
	while (work->state == WORK_RUNNING)
		pthread_cond_wait(&wq->finished, &wq->mutex);
	pthread_mutex_unlock(&wq->mutex);
}

void workq_flush_work(struct work *work)
{
	struct workq *wq = work->wq;

	if (!wq)
		return;
	pthread_mutex_lock(&wq->mutex);
	while (work->state != WORK_IDLE && !wq->stopping) {
		/* a delayed item is flushed by running it now */
		if (work->state == WORK_QUEUED && work->due_ns > now_mono_ns()) {
			remove_from_list(wq, work);
			work->due_ns = now_mono_ns();
			insert_sorted(wq, work);
			pthread_cond_signal(&wq->wake);
		}
		pthread_cond_wait(&wq->finished, &wq->mutex);
	}
	pthread_mutex_unlock(&wq->mutex);
}

bool work_busy(struct work *work)
{
	struct workq *wq = work->wq;
	bool busy;

	if (!wq)
		return false;
	pthread_mutex_lock(&wq->mutex);
	busy = work->state != WORK_IDLE;
	pthread_mutex_unlock(&wq->mutex);
	return busy;
}
