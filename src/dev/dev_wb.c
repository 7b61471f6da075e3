/*
 * dev_wb.c: write-behind -- the queue of writes a device's writer thread performs while
 * their callers go on (see dev.h for the contract).
 *
 * Why: without it a program writing a file waits, for every 1 MiB FUSE request, for the
 * daemon's copy of the data and then for the device write, one after the other.  Queued,
 * the next request's copy overlaps this one's device write, and a stream runs at the pace
 * of the slower of the two instead of their sum.
 *
 * The queue is bounded by the bytes of buffers in use (WB_BUDGET), not by the number of
 * writes: a writer that wants a buffer waits for the device.  One writer thread per device
 * keeps the order of writes to the same blocks without any tracking of dependencies; a
 * queued write stays on the list until the device has it, which is what readers check.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dev/dev.h"
#include "dev/dev_int.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(dev_wb_writes);
COUNTER_DEFINE(dev_wb_bytes);
COUNTER_DEFINE(dev_wb_budget_waits);
COUNTER_DEFINE(dev_wb_read_copies);
COUNTER_DEFINE(dev_wb_read_waits);
COUNTER_DEFINE(dev_wb_write_waits);
COUNTER_DEFINE(dev_wb_errors);
COUNTER_DEFINE(dev_wb_zeroed);

/* bytes of buffers in use before a writer waits: about 15 requests of 1 MiB */
#define WB_BUDGET (16UL << 20)
/* the size of pooled buffers: a 1 MiB request that starts and ends inside blocks */
#define WB_POOL_BUF ((1UL << 20) + DEV_ALIGN)
/* smaller buffers are allocated to size, so that small writes take little of the budget */
#define WB_SMALL_BUF (64UL << 10)
#define WB_POOL_MAX (WB_BUDGET / WB_POOL_BUF)
/* failed tags remembered for fsync; past this the oldest is forgotten (it was logged) */
#define WB_ERR_TAGS 256
/* zeros written at a time over failed fresh blocks */
#define WB_ZERO_LEN (256UL << 10)

struct dev_wbuf {
	struct dev *dev;
	char *data;
	size_t cap;
	/* the caller's reference and one per queued write; under the queue's mutex */
	unsigned int refs;
	struct dev_wbuf *next_free;
};

struct dev_wb_io {
	struct dev_wb_io *next;
	struct dev_wbuf *wbuf;
	size_t buf_off;
	size_t len;
	uint64_t off;
	uint64_t tag;
	unsigned int flags;
};

static bool overlaps(const struct dev_wb_io *io, size_t len, uint64_t off)
{
	return io->off < off + len && off < io->off + io->len;
}

void dev_wb_init(struct dev *dev)
{
	struct dev_wb *wb = &dev->wb;
	pthread_condattr_t attr;

	pthread_mutex_init(&wb->mutex, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&wb->cond, &attr);
	pthread_condattr_destroy(&attr);
}

/* ---- buffers ---- */

struct dev_wbuf *dev_wbuf_get(struct dev *dev, size_t len)
{
	struct dev_wb *wb = &dev->wb;
	size_t cap = ROUND_UP(max_t(size_t, len, 1), DEV_ALIGN);
	struct dev_wbuf *wbuf = NULL;

	if (cap > WB_SMALL_BUF)
		cap = max_t(size_t, cap, WB_POOL_BUF);
	pthread_mutex_lock(&wb->mutex);
	/*
	 * One buffer is always allowed, however large, so that nothing waits for nothing; a
	 * shut down device fails every write at once, so nobody waits for it either.
	 */
	if (wb->bytes_held > 0 && wb->bytes_held + cap > WB_BUDGET) {
		counter_inc(dev_wb_budget_waits);
		while (wb->bytes_held > 0 && wb->bytes_held + cap > WB_BUDGET &&
		       !dev_is_shutdown(dev))
			pthread_cond_wait(&wb->cond, &wb->mutex);
	}
	if (cap == WB_POOL_BUF && wb->free_bufs) {
		wbuf = wb->free_bufs;
		wb->free_bufs = wbuf->next_free;
		wb->nr_free--;
	}
	wb->bytes_held += cap;
	pthread_mutex_unlock(&wb->mutex);

	if (!wbuf) {
		wbuf = calloc(1, sizeof(*wbuf));
		if (wbuf)
			wbuf->data = dev_alloc_buf(cap);
		if (!wbuf || !wbuf->data) {
			free(wbuf);
			pthread_mutex_lock(&wb->mutex);
			wb->bytes_held -= cap;
			pthread_cond_broadcast(&wb->cond);
			pthread_mutex_unlock(&wb->mutex);
			return NULL;
		}
		wbuf->dev = dev;
		wbuf->cap = cap;
	}
	wbuf->refs = 1;
	return wbuf;
}

char *dev_wbuf_data(struct dev_wbuf *wbuf)
{
	return wbuf->data;
}

/* drop a reference with the mutex held; the last one pools or frees the buffer */
static void wbuf_put_locked(struct dev_wb *wb, struct dev_wbuf *wbuf)
{
	if (--wbuf->refs > 0)
		return;
	wb->bytes_held -= wbuf->cap;
	pthread_cond_broadcast(&wb->cond);
	if (wbuf->cap == WB_POOL_BUF && wb->nr_free < WB_POOL_MAX && !wb->stop) {
		wbuf->next_free = wb->free_bufs;
		wb->free_bufs = wbuf;
		wb->nr_free++;
		return;
	}
	free(wbuf->data);
	free(wbuf);
}

void dev_wbuf_put(struct dev_wbuf *wbuf)
{
	struct dev_wb *wb;

	if (!wbuf)
		return;
	wb = &wbuf->dev->wb;
	pthread_mutex_lock(&wb->mutex);
	wbuf_put_locked(wb, wbuf);
	pthread_mutex_unlock(&wb->mutex);
}

/* ---- failures ---- */

static void remember_error_locked(struct dev *dev, uint64_t tag)
{
	struct dev_wb *wb = &dev->wb;
	unsigned int i;

	for (i = 0; i < wb->nr_err_tags; i++)
		if (wb->err_tags[i] == tag)
			return;
	if (!wb->err_tags) {
		wb->err_tags = calloc(WB_ERR_TAGS, sizeof(*wb->err_tags));
		if (!wb->err_tags)
			return; /* it was logged; fsync just won't know */
	}
	if (wb->nr_err_tags == WB_ERR_TAGS) {
		memmove(wb->err_tags, wb->err_tags + 1, (WB_ERR_TAGS - 1) * sizeof(*wb->err_tags));
		wb->nr_err_tags--;
	}
	wb->err_tags[wb->nr_err_tags++] = tag;
}

bool dev_take_write_error(struct dev *dev, uint64_t tag)
{
	struct dev_wb *wb = &dev->wb;
	bool found = false;
	unsigned int i;

	if (!atomic_load(&wb->started))
		return false;
	pthread_mutex_lock(&wb->mutex);
	for (i = 0; i < wb->nr_err_tags; i++) {
		if (wb->err_tags[i] == tag) {
			memmove(wb->err_tags + i, wb->err_tags + i + 1,
				(wb->nr_err_tags - i - 1) * sizeof(*wb->err_tags));
			wb->nr_err_tags--;
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&wb->mutex);
	return found;
}

/* the zeros buffer exists once the writer runs (start_writer_locked), before any failure */
static int write_zeros(struct dev *dev, size_t len, uint64_t off)
{
	size_t n;
	int err;

	while (len > 0) {
		n = min_t(size_t, len, WB_ZERO_LEN);
		err = dev_write_now(dev, dev->wb.zeros, n, off);
		if (err < 0)
			return err;
		len -= n;
		off += n;
	}
	return 0;
}

/*
 * A queued write failed (dev_write_now logged it).  Fresh blocks get zeros so that the
 * file, whose metadata already maps them, reads zeros rather than another file's old
 * data; returns a copy of io to keep on the unzeroed list if that failed too.
 */
static struct dev_wb_io *handle_failure(struct dev *dev, struct dev_wb_io *io, int err)
{
	struct dev_wb_io *copy;
	int zerr;

	counter_inc(dev_wb_errors);
	if (!(io->flags & DEV_WB_FRESH) || dev_is_shutdown(dev))
		return NULL;
	zerr = write_zeros(dev, io->len, io->off);
	if (zerr == 0) {
		counter_inc(dev_wb_zeroed);
		log_warn("queued write of %zu bytes at offset %llu of %s for inode %llu failed "
			 "(%s); its new blocks were zeroed and fsync reports EIO",
			 io->len, (unsigned long long)io->off, dev->path,
			 (unsigned long long)io->tag, strerror(-err));
		return NULL;
	}
	log_err("queued write of %zu bytes at offset %llu of %s for inode %llu failed (%s) "
		"and so did zeroing its new blocks (%s): commits wait until they are zeroed",
		io->len, (unsigned long long)io->off, dev->path, (unsigned long long)io->tag,
		strerror(-err), strerror(-zerr));
	copy = malloc(sizeof(*copy));
	if (copy) {
		*copy = *io;
		copy->wbuf = NULL;
	}
	return copy;
}

/*
 * A write of [off, off + len) reached the device: the unzeroed ranges it covers hold its
 * data now, and zeroing them later would destroy it.  Trims, splits or drops them.
 */
static void clear_unzeroed_locked(struct dev_wb *wb, size_t len, uint64_t off)
{
	struct dev_wb_io **pp = &wb->unzeroed;
	struct dev_wb_io *io, *tail;
	uint64_t end = off + len, io_end;

	while ((io = *pp)) {
		io_end = io->off + io->len;
		if (!overlaps(io, len, off)) {
			pp = &io->next;
			continue;
		}
		if (io->off < off && io_end > end) {
			/*
			 * The write is inside: keep both sides.  Without memory to split, keep
			 * it all: a later zeroing then wipes this write too, which is better
			 * than leaving blocks unzeroed that may show another file's data.
			 */
			tail = malloc(sizeof(*tail));
			if (!tail) {
				pp = &io->next;
				continue;
			}
			*tail = *io;
			tail->off = end;
			tail->len = io_end - end;
			io->len = off - io->off;
			tail->next = io->next;
			io->next = tail;
			pp = &tail->next;
		} else if (io->off < off) {
			io->len = off - io->off;
			pp = &io->next;
		} else if (io_end > end) {
			io->len = io_end - end;
			io->off = end;
			pp = &io->next;
		} else {
			*pp = io->next;
			free(io);
		}
	}
}

void dev_wb_written(struct dev *dev, size_t len, uint64_t off)
{
	struct dev_wb *wb = &dev->wb;

	if (!atomic_load(&wb->started))
		return;
	pthread_mutex_lock(&wb->mutex);
	clear_unzeroed_locked(wb, len, off);
	pthread_mutex_unlock(&wb->mutex);
}

void dev_wb_shutdown(struct dev *dev)
{
	struct dev_wb *wb = &dev->wb;

	pthread_mutex_lock(&wb->mutex);
	pthread_cond_broadcast(&wb->cond);
	pthread_mutex_unlock(&wb->mutex);
}

/* ---- the writer ---- */

static void *writer_thread(void *arg)
{
	struct dev *dev = arg;
	struct dev_wb *wb = &dev->wb;
	struct dev_wb_io *io, *unzeroed;
	int err;

	thread_set_name("dev-writer");
	pthread_mutex_lock(&wb->mutex);
	for (;;) {
		while (!wb->head && !wb->stop)
			pthread_cond_wait(&wb->cond, &wb->mutex);
		io = wb->head;
		if (!io)
			break;
		pthread_mutex_unlock(&wb->mutex);

		err = dev_write_now(dev, io->wbuf->data + io->buf_off, io->len, io->off);
		unzeroed = err < 0 ? handle_failure(dev, io, err) : NULL;
		if (err == 0) {
			counter_inc(dev_wb_writes);
			counter_add(dev_wb_bytes, io->len);
		}

		pthread_mutex_lock(&wb->mutex);
		if (err < 0)
			remember_error_locked(dev, io->tag);
		else
			clear_unzeroed_locked(wb, io->len, io->off);
		if (unzeroed) {
			unzeroed->next = wb->unzeroed;
			wb->unzeroed = unzeroed;
		}
		wb->done_seq++;
		wb->head = io->next;
		if (!wb->head)
			wb->tail = NULL;
		wbuf_put_locked(wb, io->wbuf);
		pthread_cond_broadcast(&wb->cond);
		free(io);
	}
	pthread_mutex_unlock(&wb->mutex);
	return NULL;
}

/* start the writer with the mutex held; false if it can't be */
static bool start_writer_locked(struct dev *dev)
{
	struct dev_wb *wb = &dev->wb;
	int err;

	if (atomic_load(&wb->started))
		return true;
	if (wb->stop)
		return false;
	/* made here, once: the writer and flushes (retrying) both zero failed blocks */
	if (!wb->zeros) {
		wb->zeros = dev_alloc_buf(WB_ZERO_LEN);
		if (!wb->zeros)
			return false;
		memset(wb->zeros, 0, WB_ZERO_LEN);
	}
	err = pthread_create(&wb->thread, NULL, writer_thread, dev);
	if (err) {
		if (!wb->create_failed_logged)
			log_warn("starting the writer thread of %s failed (%s): writing "
				 "synchronously", dev->path, strerror(err));
		wb->create_failed_logged = true;
		return false;
	}
	atomic_store(&wb->started, true);
	return true;
}

int dev_write_behind(struct dev *dev, struct dev_wbuf *wbuf, size_t buf_off, size_t len,
		     uint64_t off, uint64_t tag, unsigned int flags)
{
	struct dev_wb *wb = &dev->wb;
	struct dev_wb_io *io;
	bool queued = false;

	if (dev_is_shutdown(dev))
		return -ENOLINK;
	if (off + len > dev->size || off + len < off || buf_off + len > wbuf->cap)
		return dev_io_error(dev, "write", len, off, -EIO);

	io = malloc(sizeof(*io));
	if (io) {
		*io = (struct dev_wb_io){ .wbuf = wbuf, .buf_off = buf_off, .len = len,
					  .off = off, .tag = tag, .flags = flags };
		pthread_mutex_lock(&wb->mutex);
		if (start_writer_locked(dev)) {
			wbuf->refs++;
			if (wb->tail)
				wb->tail->next = io;
			else
				wb->head = io;
			wb->tail = io;
			wb->queued_seq++;
			pthread_cond_broadcast(&wb->cond);
			queued = true;
		}
		pthread_mutex_unlock(&wb->mutex);
	}
	if (queued)
		return 0;
	free(io);
	return dev_write(dev, wbuf->data + buf_off, len, off);
}

/* ---- coherence ---- */

/* the newest queued write overlapping [off, off + len), NULL if none */
static struct dev_wb_io *newest_overlap_locked(struct dev_wb *wb, size_t len, uint64_t off)
{
	struct dev_wb_io *io, *found = NULL;

	for (io = wb->head; io; io = io->next)
		if (overlaps(io, len, off))
			found = io;
	return found;
}

static bool unzeroed_overlap_locked(struct dev_wb *wb, size_t len, uint64_t off)
{
	struct dev_wb_io *io;

	for (io = wb->unzeroed; io; io = io->next)
		if (overlaps(io, len, off))
			return true;
	return false;
}

int dev_wb_read(struct dev *dev, void *buf, size_t len, uint64_t off)
{
	struct dev_wb *wb = &dev->wb;
	struct dev_wb_io *io;
	int ret = 0;

	if (!atomic_load(&wb->started))
		return 0;
	pthread_mutex_lock(&wb->mutex);
	for (;;) {
		io = newest_overlap_locked(wb, len, off);
		/*
		 * The newest write of the range decides what the device will hold; when it
		 * covers the whole read (a partial block read back before it is rewritten,
		 * data read right after it was written) its buffer is the answer.  (If that
		 * write then fails, the reader has seen data the device never got, as readers
		 * of a page cache do before a failed writeback.)
		 */
		if (io && io->off <= off && off + len <= io->off + io->len) {
			memcpy(buf, io->wbuf->data + io->buf_off + (off - io->off), len);
			counter_inc(dev_wb_read_copies);
			ret = 1;
			break;
		}
		if (io && dev_is_shutdown(dev)) {
			ret = -ENOLINK;
			break;
		}
		if (io) {
			counter_inc(dev_wb_read_waits);
			pthread_cond_wait(&wb->cond, &wb->mutex);
			continue;
		}
		if (unzeroed_overlap_locked(wb, len, off))
			ret = dev_io_error(dev, "read (blocks whose failed write is not yet zeroed)",
					   len, off, -EIO);
		break;
	}
	pthread_mutex_unlock(&wb->mutex);
	return ret;
}

void dev_wb_wait_overlap(struct dev *dev, size_t len, uint64_t off)
{
	struct dev_wb *wb = &dev->wb;

	if (!atomic_load(&wb->started))
		return;
	pthread_mutex_lock(&wb->mutex);
	if (newest_overlap_locked(wb, len, off)) {
		counter_inc(dev_wb_write_waits);
		while (newest_overlap_locked(wb, len, off) && !dev_is_shutdown(dev))
			pthread_cond_wait(&wb->cond, &wb->mutex);
	}
	pthread_mutex_unlock(&wb->mutex);
}

/* zero the unzeroed ranges again, with the mutex held; -EIO while one still fails */
static int retry_unzeroed_locked(struct dev *dev)
{
	struct dev_wb *wb = &dev->wb;
	struct dev_wb_io *io;
	int err;

	while ((io = wb->unzeroed)) {
		err = write_zeros(dev, io->len, io->off);
		if (err < 0)
			return dev_is_shutdown(dev) ? -ENOLINK : -EIO;
		counter_inc(dev_wb_zeroed);
		log_info("zeroed %zu bytes at offset %llu of %s after the earlier failure",
			 io->len, (unsigned long long)io->off, dev->path);
		wb->unzeroed = io->next;
		free(io);
	}
	return 0;
}

int dev_wait_queued(struct dev *dev)
{
	struct dev_wb *wb = &dev->wb;
	uint64_t target;
	int err;

	if (!atomic_load(&wb->started))
		return 0;
	pthread_mutex_lock(&wb->mutex);
	/* only what was queued before: writers that keep queueing can't hold this up */
	target = wb->queued_seq;
	while (wb->done_seq < target && !dev_is_shutdown(dev))
		pthread_cond_wait(&wb->cond, &wb->mutex);
	if (dev_is_shutdown(dev))
		err = -ENOLINK;
	else
		err = retry_unzeroed_locked(dev);
	pthread_mutex_unlock(&wb->mutex);
	return err;
}

void dev_wb_destroy(struct dev *dev)
{
	struct dev_wb *wb = &dev->wb;
	struct dev_wbuf *wbuf;
	struct dev_wb_io *io;

	pthread_mutex_lock(&wb->mutex);
	wb->stop = true;
	pthread_cond_broadcast(&wb->cond);
	pthread_mutex_unlock(&wb->mutex);
	if (atomic_load(&wb->started))
		pthread_join(wb->thread, NULL);

	while ((wbuf = wb->free_bufs)) {
		wb->free_bufs = wbuf->next_free;
		free(wbuf->data);
		free(wbuf);
	}
	while ((io = wb->unzeroed)) {
		wb->unzeroed = io->next;
		free(io);
	}
	free(wb->err_tags);
	free(wb->zeros);
	pthread_cond_destroy(&wb->cond);
	pthread_mutex_destroy(&wb->mutex);
}
