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
