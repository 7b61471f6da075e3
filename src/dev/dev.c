/*
 * dev.c: device I/O.
 *
 * Reads and writes loop until the whole range is transferred: a short transfer from a
 * regular file or block device is retried from where it stopped, and a read past the end of
 * the device is an error (EIO), never silently zero-filled.  Errors are logged with the
 * device, offset and length, because an I/O error is the one thing an admin must be able to
 * trace to a device.
 */
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "dev/dev.h"
#include "dev/dev_int.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(dev_read_bytes);
COUNTER_DEFINE(dev_write_bytes);
COUNTER_DEFINE(dev_flush);
COUNTER_DEFINE(dev_flush_clean);
COUNTER_DEFINE(dev_io_error);
COUNTER_DEFINE(dev_fault_injected);

static int open_fd(const char *path, int oflags, bool try_direct, bool *direct)
{
	int fd;

	if (try_direct) {
		fd = open(path, oflags | O_DIRECT);
		if (fd >= 0) {
			*direct = true;
			return fd;
		}
		if (errno != EINVAL)
			return -errno;
	}
	*direct = false;
	fd = open(path, oflags);
	return fd < 0 ? -errno : fd;
}

int dev_open(const char *path, int flags, struct dev **dev_ret)
{
	int oflags = (flags & DEV_RDWR) ? O_RDWR : O_RDONLY;
	struct dev *dev;
	uint64_t size;
	int ret;

	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->fd = -1;
	pthread_mutex_init(&dev->fault_lock, NULL);
	dev_wb_init(dev);
	dev->path = strdup(path);
	if (!dev->path) {
		ret = -ENOMEM;
		goto out;
	}

	ret = open_fd(path, oflags | O_CLOEXEC, !(flags & DEV_BUFFERED), &dev->direct);
	if (ret < 0)
		goto out;
	dev->fd = ret;

	if (fstat(dev->fd, &dev->st) < 0) {
		ret = -errno;
		goto out;
	}
	if (S_ISBLK(dev->st.st_mode)) {
		if (ioctl(dev->fd, BLKGETSIZE64, &size) < 0) {
			ret = -errno;
			goto out;
		}
	} else if (S_ISREG(dev->st.st_mode)) {
		size = dev->st.st_size;
	} else {
		ret = -ENODEV;
		goto out;
	}
	dev->size = size;
	dev->oflags = oflags;
	if (!dev->direct && !(flags & DEV_BUFFERED))
		log_warn("%s does not support O_DIRECT, using buffered I/O (only safe when every "
			 "mount runs on this host)",
			 path);
	ret = 0;
out:
	if (ret < 0) {
		dev_close(dev);
		dev = NULL;
	}
	*dev_ret = dev;
	return ret;
}

void dev_close(struct dev *dev)
{
	if (!dev)
		return;
	dev_wb_destroy(dev);
	if (dev->fd >= 0)
		close(dev->fd);
	pthread_mutex_destroy(&dev->fault_lock);
	free(dev->path);
	free(dev);
}

int dev_claim(struct dev *dev)
{
	struct stat st;
	int fd;

	if (!S_ISBLK(dev->st.st_mode))
		return 0;
	/* O_EXCL without O_CREAT claims a block device; the path must still name the same one */
	fd = open(dev->path, dev->oflags | O_CLOEXEC | O_EXCL | (dev->direct ? O_DIRECT : 0));
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != dev->st.st_rdev) {
		close(fd);
		return -ENODEV;
	}
	close(dev->fd);
	dev->fd = fd;
	return 0;
}

const char *dev_path(struct dev *dev)
{
	return dev->path;
}

uint64_t dev_size(struct dev *dev)
{
	return dev->size;
}

bool dev_is_direct(struct dev *dev)
{
	return dev->direct;
}

/*
 * Where a device's bytes are stored: a byte range of one file or one block device.  A loop
 * device is the file behind it, from its offset on.  (A partition and its disk are not
 * compared here: claiming block devices exclusively, as mkfs does, refuses that pair.)
 */
struct dev_storage {
	bool file; /* a file: ino on dev; else the whole disk dev */
	dev_t dev;
	ino_t ino;
	uint64_t start;
	uint64_t len;
};

/* read /sys/dev/block/MAJ:MIN/name into buf; false if it doesn't exist */
static bool sysfs_read(dev_t rdev, const char *name, char *buf, size_t len)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", major(rdev), minor(rdev), name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return false;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	return true;
}

static bool sysfs_u64(dev_t rdev, const char *name, uint64_t *val)
{
	char buf[64];

	return sysfs_read(rdev, name, buf, sizeof(buf)) && parse_u64(buf, val) == 0;
}

static void block_storage(dev_t rdev, uint64_t len, struct dev_storage *sto)
{
	char buf[4096];
	struct stat st;
	uint64_t off;

	sto->file = false;
	sto->dev = rdev;
	sto->start = 0;
	sto->len = len;
	/* a loop device: the file behind it, from its offset on */
	if (sysfs_read(rdev, "loop/backing_file", buf, sizeof(buf)) && stat(buf, &st) == 0 &&
	    S_ISREG(st.st_mode)) {
		if (sysfs_u64(rdev, "loop/offset", &off))
			sto->start = off;
		sto->file = true;
		sto->dev = st.st_dev;
		sto->ino = st.st_ino;
	}
}

static void dev_storage(struct dev *dev, struct dev_storage *sto)
{
	memset(sto, 0, sizeof(*sto));
	if (S_ISBLK(dev->st.st_mode)) {
		block_storage(dev->st.st_rdev, dev->size, sto);
	} else {
		sto->file = true;
		sto->dev = dev->st.st_dev;
		sto->ino = dev->st.st_ino;
		sto->len = dev->size;
	}
}

/* the same file, or the same block device, through any two paths */
static bool same_node(struct dev *a, struct dev *b)
{
	if (S_ISBLK(a->st.st_mode) && S_ISBLK(b->st.st_mode))
		return a->st.st_rdev == b->st.st_rdev;
	return a->st.st_dev == b->st.st_dev && a->st.st_ino == b->st.st_ino;
}

bool dev_overlaps(struct dev *a, struct dev *b, char *why, size_t why_len)
{
	struct dev_storage sa, sb;

	if (same_node(a, b)) {
		snprintf(why, why_len, "%s and %s are the same device", a->path, b->path);
		return true;
	}
	dev_storage(a, &sa);
	dev_storage(b, &sb);
	if (sa.file != sb.file || sa.dev != sb.dev || (sa.file && sa.ino != sb.ino))
		return false;
	/* an empty range (a zero-length device) still names the storage */
	if (sa.start < sb.start + max_t(uint64_t, sb.len, 1) &&
	    sb.start < sa.start + max_t(uint64_t, sa.len, 1)) {
		snprintf(why, why_len, "%s and %s share storage (the same file, through a loop "
					"device)",
			 a->path, b->path);
		return true;
	}
	return false;
}

void dev_shutdown(struct dev *dev)
{
	__atomic_store_n(&dev->shutdown, true, __ATOMIC_SEQ_CST);
	dev_wb_shutdown(dev);
}

bool dev_is_shutdown(struct dev *dev)
{
	return __atomic_load_n(&dev->shutdown, __ATOMIC_SEQ_CST);
}

void *dev_alloc_buf(size_t len)
{
	void *buf = NULL;

	if (posix_memalign(&buf, DEV_ALIGN, ROUND_UP(len, DEV_ALIGN)) != 0)
		return NULL;
	return buf;
}

static enum dev_fault_action fault_check(struct dev *dev, enum dev_fault_op op, size_t len)
{
	struct dev_fault_state *fs = &dev->faults[op];
	enum dev_fault_action action = DEV_FAULT_PASS;

	pthread_mutex_lock(&dev->fault_lock);
	if (fs->armed && len >= fs->rule.min_len) {
		if (fs->seen++ >= fs->rule.skip) {
			action = fs->rule.action;
			fs->hits++;
			if (fs->rule.count && fs->hits >= fs->rule.count)
				fs->armed = false;
		}
	}
	pthread_mutex_unlock(&dev->fault_lock);
	if (action != DEV_FAULT_PASS)
		counter_inc(dev_fault_injected);
	return action;
}

void dev_set_fault(struct dev *dev, enum dev_fault_op op, const struct dev_fault_rule *rule)
{
	pthread_mutex_lock(&dev->fault_lock);
	dev->faults[op].rule = *rule;
	dev->faults[op].seen = 0;
	dev->faults[op].hits = 0;
	dev->faults[op].armed = rule->action != DEV_FAULT_PASS;
	pthread_mutex_unlock(&dev->fault_lock);
}

void dev_clear_faults(struct dev *dev)
{
	pthread_mutex_lock(&dev->fault_lock);
	memset(dev->faults, 0, sizeof(dev->faults));
	pthread_mutex_unlock(&dev->fault_lock);
}

uint64_t dev_fault_hits(struct dev *dev, enum dev_fault_op op)
{
	uint64_t hits;

	pthread_mutex_lock(&dev->fault_lock);
	hits = dev->faults[op].hits;
	pthread_mutex_unlock(&dev->fault_lock);
	return hits;
}

int dev_io_error(struct dev *dev, const char *what, size_t len, uint64_t off, int err)
{
	counter_inc(dev_io_error);
	log_err("%s of %zu bytes at offset %llu on %s failed: %s", what, len,
		(unsigned long long)off, dev->path, strerror(-err));
	return err;
}

int dev_read(struct dev *dev, void *buf, size_t len, uint64_t off)
{
	char *p = buf;
	size_t done = 0;
	ssize_t ret;

	if (dev_is_shutdown(dev))
		return -ENOLINK;
	if (off + len > dev->size || off + len < off)
		return dev_io_error(dev, "read", len, off, -EIO);
	ret = dev_wb_read(dev, buf, len, off);
	if (ret != 0)
		return ret < 0 ? (int)ret : 0;

	while (done < len) {
		ret = pread(dev->fd, p + done, len - done, off + done);
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			return dev_io_error(dev, "read", len, off, -errno);
		}
		if (ret == 0)
			return dev_io_error(dev, "read", len, off, -EIO);
		done += ret;
	}
	counter_add(dev_read_bytes, len);
	return 0;
}

static int write_all(struct dev *dev, const char *p, size_t len, uint64_t off)
{
	size_t done = 0;
	ssize_t ret;

	while (done < len) {
		ret = pwrite(dev->fd, p + done, len - done, off + done);
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (ret == 0)
			return -EIO;
		done += ret;
	}
	return 0;
}

int dev_write_now(struct dev *dev, const void *buf, size_t len, uint64_t off)
{
	enum dev_fault_action action;
	size_t torn;
	int ret;

	if (dev_is_shutdown(dev))
		return -ENOLINK;
	if (off + len > dev->size || off + len < off)
		return dev_io_error(dev, "write", len, off, -EIO);

	action = fault_check(dev, DEV_FAULT_OP_WRITE, len);
	if (action == DEV_FAULT_FAIL)
		return dev_io_error(dev, "injected failed write", len, off, -EIO);
	if (action == DEV_FAULT_TEAR) {
		/* keep whole sectors so direct I/O stays aligned: at least one, never all */
		torn = len > DEV_ALIGN ? ROUND_DOWN(len / 2, DEV_ALIGN) : 0;
		if (torn) {
			ret = write_all(dev, buf, torn, off);
			atomic_fetch_add(&dev->write_gen, 1);
			if (ret < 0)
				return dev_io_error(dev, "write", torn, off, ret);
		}
		return dev_io_error(dev, "injected torn write", len, off, -EIO);
	}

	ret = write_all(dev, buf, len, off);
	atomic_fetch_add(&dev->write_gen, 1);
	if (ret < 0)
		return dev_io_error(dev, "write", len, off, ret);
	counter_add(dev_write_bytes, len);
	return 0;
}

int dev_write(struct dev *dev, const void *buf, size_t len, uint64_t off)
{
	int err;

	if (dev_is_shutdown(dev))
		return -ENOLINK;
	dev_wb_wait_overlap(dev, len, off);
	err = dev_write_now(dev, buf, len, off);
	if (err == 0)
		dev_wb_written(dev, len, off);
	return err;
}

int dev_flush(struct dev *dev)
{
	uint64_t gen;
	uint64_t flushed;
	int err;

	if (dev_is_shutdown(dev))
		return -ENOLINK;
	err = dev_wait_queued(dev);
	if (err < 0)
		return err;
	gen = atomic_load(&dev->write_gen);
	if (gen == atomic_load(&dev->flushed_gen)) {
		counter_inc(dev_flush_clean);
		return 0;
	}
	if (fault_check(dev, DEV_FAULT_OP_FLUSH, 0) != DEV_FAULT_PASS)
		return dev_io_error(dev, "injected failed flush", 0, 0, -EIO);
	counter_inc(dev_flush);
	if (fdatasync(dev->fd) < 0)
		return dev_io_error(dev, "flush", 0, 0, -errno);
	/* writes counted before it started are durable; later ones need another flush */
	flushed = atomic_load(&dev->flushed_gen);
	while (flushed < gen && !atomic_compare_exchange_weak(&dev->flushed_gen, &flushed, gen))
		;
	return 0;
}
