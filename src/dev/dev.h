/*
 * dev.h: the device layer -- all reads and writes of the metadata and data devices.
 *
 * Devices are block devices or regular files.  They are opened with O_DIRECT where the
 * backing store allows it, because another host's writes never reach this host's page cache;
 * callers pass buffers aligned to DEV_ALIGN and offsets and lengths that are multiples of it.
 * dev_flush() is the durability barrier (fdatasync).
 *
 * The fault hook lets tests fail or tear chosen writes and flushes: a torn write stores only
 * a prefix of the buffer and then reports EIO, like a crash in the middle of a write.
 * After dev_shutdown() (forced unmount, fencing) every I/O fails with ENOLINK.
 */
#ifndef SCOUTFS_DEV_H
#define SCOUTFS_DEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEV_ALIGN 4096

struct dev;

enum dev_open_flags {
	DEV_RDONLY = 0,
	DEV_RDWR = 1 << 0,
	/* buffered I/O even when O_DIRECT would work (tools that only read a few blocks) */
	DEV_BUFFERED = 1 << 1,
};

int dev_open(const char *path, int flags, struct dev **dev_ret);
void dev_close(struct dev *dev);
/*
 * Claim a block device for this process alone (reopen it with O_EXCL): -EBUSY while the
 * device, or a partition of it, is mounted or held exclusively by another program.  A
 * no-op for files.  For mkfs, never for mounts (every mount of a host opens the same
 * devices).
 */
int dev_claim(struct dev *dev);

const char *dev_path(struct dev *dev);
uint64_t dev_size(struct dev *dev);
bool dev_is_direct(struct dev *dev);
/*
 * Whether two devices share storage, so that writing one would damage the other: the same
 * file or block device (through any paths), a loop device and the file behind it, or two
 * loop devices over one file (where their ranges overlap).  Returns true and says how in
 * why.  Partitions and device-mapper stacks are not seen through (dev_claim() refuses a
 * partition of a claimed disk).
 */
bool dev_overlaps(struct dev *a, struct dev *b, char *why, size_t why_len);

int dev_read(struct dev *dev, void *buf, size_t len, uint64_t off);
int dev_write(struct dev *dev, const void *buf, size_t len, uint64_t off);
int dev_flush(struct dev *dev);

/* make every later I/O fail with -ENOLINK */
void dev_shutdown(struct dev *dev);

/* aligned buffers for direct I/O; free with free() */
void *dev_alloc_buf(size_t len);

/* -------------------------------------------------------------------------------------- */
/*
 * Write-behind: a write handed to the device's writer thread, so that the caller can go on
 * (answer the program that wrote) while the device writes.  The queue is one FIFO per
 * device, so writes of the same blocks reach the device in the order they were queued.
 * The device keeps every reader and writer of this process coherent with the queue:
 * dev_read() returns queued data (from the queued buffer, or after waiting for it),
 * dev_write() waits for queued writes of the blocks it overwrites, and dev_flush() waits
 * for everything queued before it flushes, so a commit's flush still orders file data
 * before the metadata that maps it.
 *
 * A queued write that fails is logged and remembered by its tag (callers use the inode
 * number) until dev_take_write_error() asks, which is how fsync reports it (once: an fsync
 * through another descriptor of the file does not see it again).  A write of DEV_WB_FRESH
 * blocks (blocks that held no data of the file: new or preallocated) that fails is
 * followed by writing zeros over them, so that they never show what another file left
 * there; if that fails too, dev_flush() -- and so every commit -- fails until the zeroing
 * succeeds, and dev_read() of them fails with EIO, except where a later write of the
 * blocks has succeeded (that data stays).  After dev_shutdown() nobody waits for the queue.
 */
struct dev_wbuf;

enum dev_wb_flags {
	DEV_WB_FRESH = 1 << 0,
};

/*
 * A buffer of at least len bytes (aligned) for queued writes.  Waits while the buffers in
 * use hold more than the queue's budget, which is what paces a writer to the device.
 */
struct dev_wbuf *dev_wbuf_get(struct dev *dev, size_t len);
char *dev_wbuf_data(struct dev_wbuf *wbuf);
/* drop the caller's reference; the buffer is reused when its queued writes are done */
void dev_wbuf_put(struct dev_wbuf *wbuf);
/* queue a write of len bytes from wbuf's data + buf_off to off */
int dev_write_behind(struct dev *dev, struct dev_wbuf *wbuf, size_t buf_off, size_t len,
		     uint64_t off, uint64_t tag, unsigned int flags);
/*
 * Wait until every write queued before the call is on the device or has failed (not for
 * writes queued meanwhile; dev_flush() does this first); -EIO while failed fresh blocks
 * are not zeroed.
 */
int dev_wait_queued(struct dev *dev);
/* whether a queued write with this tag failed since the last call; forgets it */
bool dev_take_write_error(struct dev *dev, uint64_t tag);

/* -------------------------------------------------------------------------------------- */
/* fault injection */

enum dev_fault_op {
	DEV_FAULT_OP_WRITE = 0,
	DEV_FAULT_OP_FLUSH,
};

enum dev_fault_action {
	DEV_FAULT_PASS = 0, /* perform the I/O */
	DEV_FAULT_FAIL,	    /* write nothing, return -EIO */
	DEV_FAULT_TEAR,	    /* write a prefix (whole 4 KiB sectors), then return -EIO */
};

/*
 * A rule: skip the next `skip` matching operations, then apply `action` to the following
 * `count` ones (0 = every one after that).  Rules are one per device and op.
 */
struct dev_fault_rule {
	enum dev_fault_action action;
	uint64_t skip;
	uint64_t count;
	uint64_t min_len; /* only operations of at least this many bytes match */
};

void dev_set_fault(struct dev *dev, enum dev_fault_op op, const struct dev_fault_rule *rule);
void dev_clear_faults(struct dev *dev);
/* how many operations a rule has hit so far */
uint64_t dev_fault_hits(struct dev *dev, enum dev_fault_op op);

#endif
