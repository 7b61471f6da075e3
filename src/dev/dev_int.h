/*
 * dev_int.h: what dev.c and dev_wb.c (write-behind) share -- the device structure and the
 * unqueued I/O functions.  Nothing outside src/dev includes it.
 */
#ifndef SCOUTFS_DEV_INT_H
#define SCOUTFS_DEV_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "dev/dev.h"

struct dev_fault_state {
	struct dev_fault_rule rule;
	uint64_t seen;
	uint64_t hits;
	bool armed;
};

struct dev_wb_io;

/* the write-behind queue of a device (dev_wb.c); all of it under mutex */
struct dev_wb {
	pthread_mutex_t mutex;
	/* an I/O finished, a buffer was released, or work arrived */
	pthread_cond_t cond;
	pthread_t thread;
	/* the writer thread runs (started by the first queued write, never for most devices) */
	_Atomic bool started;
	bool stop;
	/* queued writes, oldest first; the head is the one being written */
	struct dev_wb_io *head;
	struct dev_wb_io *tail;
	/* writes queued and writes done so far (the queue is FIFO: done <= queued) */
	uint64_t queued_seq;
	uint64_t done_seq;
	bool create_failed_logged;
	/* bytes of write buffers alive (queued, or still held by their writers) */
	size_t bytes_held;
	struct dev_wbuf *free_bufs;
	unsigned int nr_free;
	/* tags of failed writes that no one has asked about yet (dev_take_write_error) */
	uint64_t *err_tags;
	unsigned int nr_err_tags;
	/* fresh blocks whose write failed and whose zeroing failed too */
	struct dev_wb_io *unzeroed;
	char *zeros;
};

struct dev {
	int fd;
	char *path;
	uint64_t size;
	bool direct;
	bool shutdown;
	int oflags;
	struct stat st;
	pthread_mutex_t fault_lock;
	struct dev_fault_state faults[2];
	/*
	 * Counted after every write that may have reached the device (even a failed one) and
	 * remembered by each flush as what it covered: a flush with nothing new to cover
	 * returns at once (commits flush the data device whether or not they wrote data).
	 */
	_Atomic uint64_t write_gen;
	_Atomic uint64_t flushed_gen;
	struct dev_wb wb;
};

bool dev_is_shutdown(struct dev *dev);
/* log an I/O error with the device, offset and length; returns err */
int dev_io_error(struct dev *dev, const char *what, size_t len, uint64_t off, int err);
/* write now, with fault injection, ignoring the write-behind queue */
int dev_write_now(struct dev *dev, const void *buf, size_t len, uint64_t off);

/* dev_wb.c */
void dev_wb_init(struct dev *dev);
/* write out what is queued, stop the writer and free the buffers */
void dev_wb_destroy(struct dev *dev);
/*
 * Before a read of [off, off + len): 1 if it was served from a queued write's buffer, 0 if
 * the device holds what the read must see (it waited for overlapping queued writes), or
 * -EIO for blocks that are neither written nor zeroed (see dev_flush).
 */
int dev_wb_read(struct dev *dev, void *buf, size_t len, uint64_t off);
/* before a write that bypasses the queue: wait for queued writes that overlap it */
void dev_wb_wait_overlap(struct dev *dev, size_t len, uint64_t off);
/* after a write that bypassed the queue succeeded: its range no longer needs zeroing */
void dev_wb_written(struct dev *dev, size_t len, uint64_t off);
/* dev_shutdown(): wake everyone waiting on the queue */
void dev_wb_shutdown(struct dev *dev);

#endif
