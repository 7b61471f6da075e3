/*
 * fsx.c: a randomized file-operation checker for scoutfs (any Linux filesystem, really).
 *
 * It runs a long seeded sequence of random operations on a few files -- buffered, direct
 * (aligned and unaligned) and mmap reads and writes, truncate up and down, every supported
 * fallocate mode, SEEK_DATA/SEEK_HOLE, fsync, reopening, dropping the page cache and
 * remounting -- and checks every byte it reads, and every size, block count and seek answer
 * it sees, against an in-memory model of what the files must hold.
 *
 * Each file has a window of the model: window bytes starting at a base offset (0, past 4
 * GiB, or near the largest file size Linux allows), so huge sparse files are checked with a
 * small dense model.  Everything below the base is a hole; the file's size never drops below
 * the base.
 *
 * The model also knows, per 4 KiB block, whether the block holds written data.  On scoutfs
 * that decides SEEK_DATA/SEEK_HOLE exactly (written blocks are data; holes and unwritten,
 * fallocated blocks are holes) and st_blocks (8 per written block).  On other filesystems
 * those answers differ, so -S and -B turn those checks off.
 *
 * A failure prints the seed, the operation number, what differed, and the log of the
 * operations that led there, then exits 1.  The same seed and options replay the run.
 *
 * usage: fsx [options] DIR
 *   -n OPS       operations (default 10000)
 *   -s SEED      seed (default: time)
 *   -f FILES     files (1-3, default 3)
 *   -w BYTES     model window per file (default 4 MiB)
 *   -o BYTES     largest single operation (default 256 KiB)
 *   -r CMD       remount by running CMD (with every file closed) about every 2000 ops
 *   -R N         remount about every N ops instead
 *   -D           drop the page cache (/proc/sys/vm/drop_caches) at reopens
 *   -S, -B       don't check seek answers, st_blocks
 *   -M, -O, -F   no mmap, no O_DIRECT, no fallocate
 *   -U           O_DIRECT aligned only (where unaligned direct I/O fails with EINVAL)
 *   -v           print every operation
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLK       ((uint64_t)4096)
#define MAX_FILES 3
#define LOG_OPS   400 /* operations kept for the failure report */

/* per-block state in the model */
enum blk_state {
	B_HOLE = 0,      /* reads zeros, not allocated */
	B_UNWRITTEN = 1, /* allocated (fallocate), reads zeros, is a hole for lseek */
	B_DATA = 2,      /* written */
};

struct mfile {
	char path[PATH_MAX];
	int fd;         /* buffered */
	int dfd;        /* O_DIRECT */
	char *map;      /* MAP_SHARED over the window, or NULL */
	uint64_t base;  /* the window's file offset */
	uint64_t size;  /* the file's size */
	uint8_t *data;  /* window bytes */
	uint8_t *state; /* window blocks: enum blk_state */
	bool map_dirty; /* mmap writes not yet msync'ed */
};

enum op_type {
	OP_READ,
	OP_WRITE,
	OP_DREAD,
	OP_DWRITE,
	OP_MREAD,
	OP_MWRITE,
	OP_TRUNCATE,
	OP_FALLOC,
	OP_PUNCH,
	OP_ZERO,
	OP_SEEK,
	OP_FSYNC,
	OP_REOPEN,
	OP_REMOUNT,
	OP_CHECK,
	OP_NR,
};

static const char *const op_names[OP_NR] = {
	"read",  "write", "dread", "dwrite", "mread",  "mwrite",  "truncate", "falloc",
	"punch", "zero",  "seek",  "fsync",  "reopen", "remount", "check",
};

/* weights of the randomly chosen operations */
static unsigned int op_weight[OP_NR] = {
	[OP_READ] = 14,  [OP_WRITE] = 20,   [OP_DREAD] = 4,  [OP_DWRITE] = 6, [OP_MREAD] = 4,
	[OP_MWRITE] = 8, [OP_TRUNCATE] = 8, [OP_FALLOC] = 6, [OP_PUNCH] = 5,  [OP_ZERO] = 5,
	[OP_SEEK] = 6,   [OP_FSYNC] = 2,    [OP_REOPEN] = 2, [OP_CHECK] = 2,
};

struct op_rec {
	uint64_t nr;
	int type;
	int file;
	uint64_t off; /* file offset */
	uint64_t len;
	int mode;
};

static struct {
	uint64_t nr_ops;
	uint64_t seed;
	int nr_files;
	uint64_t window;
	uint64_t max_op;
	const char *remount_cmd;
	uint64_t remount_every;
	bool drop_caches;
	bool check_seek;
	bool check_blocks;
	bool aligned_direct;
	bool verbose;
} opt = {
	.nr_ops = 10000,
	.nr_files = 3,
	.window = 4ULL << 20,
	.max_op = 256ULL << 10,
	.remount_every = 2000,
	.check_seek = true,
	.check_blocks = true,
};

static struct mfile files[MAX_FILES];
static struct op_rec oplog[LOG_OPS];
static uint64_t op_nr;
static uint64_t rng_state;
static uint8_t *iobuf; /* aligned scratch for O_DIRECT and reads */
static uint8_t *iobuf2;
static uint64_t counts[OP_NR];

/* ---- randomness ---- */

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static void fill_random(uint8_t *buf, uint64_t len)
{
	uint64_t v = 0;

	for (uint64_t i = 0; i < len; i++) {
		if ((i & 7) == 0)
			v = rnd();
		buf[i] = (uint8_t)(v >> ((i & 7) * 8));
	}
}

/* ---- failure reports ---- */

static void print_op(const struct op_rec *r)
{
	const struct mfile *f = &files[r->file];

	fprintf(stderr,
	        "  op %" PRIu64 ": %-8s file %d off %" PRIu64 " (window +%" PRIu64 ") len %" PRIu64
	        " mode %d\n",
	        r->nr, op_names[r->type], r->file, r->off, r->off - f->base, r->len, r->mode);
}

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	uint64_t first = op_nr >= LOG_OPS ? op_nr - LOG_OPS + 1 : 0;
	va_list ap;

	fprintf(stderr, "fsx: FAILED at op %" PRIu64 " (seed %" PRIu64 "): ", op_nr, opt.seed);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nfsx: the last operations:\n");
	for (uint64_t n = first; n <= op_nr; n++)
		print_op(&oplog[n % LOG_OPS]);
	fprintf(stderr, "fsx: replay with -s %" PRIu64 " and the same options\n", opt.seed);
	exit(1);
}

static void check_sys(bool ok, const char *what)
{
	if (!ok)
		fail("%s failed: %s (%d)", what, strerror(errno), errno);
}

/* ---- the model ---- */

static uint64_t win_end(const struct mfile *f)
{
	return f->base + opt.window;
}

/* set model bytes [off, off + len) (file offsets inside the window) */
static void model_write(struct mfile *f, uint64_t off, const uint8_t *buf, uint64_t len)
{
	memcpy(f->data + (off - f->base), buf, len);
	for (uint64_t b = (off - f->base) / BLK; b <= (off + len - 1 - f->base) / BLK; b++)
		f->state[b] = B_DATA;
	if (off + len > f->size)
		f->size = off + len;
}

static void model_zero(struct mfile *f, uint64_t off, uint64_t len)
{
	memset(f->data + (off - f->base), 0, len);
}

/* the whole blocks of [off, off + len) in window block numbers: [*first, *end) */
static void whole_blocks(const struct mfile *f, uint64_t off, uint64_t len, uint64_t *first,
                         uint64_t *end)
{
	*first = (off - f->base + BLK - 1) / BLK;
	*end = (off + len - f->base) / BLK;
	if (*end < *first)
		*end = *first;
}

static void model_truncate(struct mfile *f, uint64_t size)
{
	uint64_t keep = (size - f->base + BLK - 1) / BLK;

	if (size < f->size) {
		/* the bytes past the new size are gone: they read as zeros if it grows again */
		memset(f->data + (size - f->base), 0, f->size - size);
	}
	/* truncate to the same or a smaller size frees every block past it */
	if (size <= f->size)
		memset(f->state + keep, B_HOLE, opt.window / BLK - keep);
	f->size = size;
}

static uint64_t model_data_blocks(const struct mfile *f)
{
	uint64_t n = 0;

	for (uint64_t b = 0; b < opt.window / BLK; b++)
		n += f->state[b] == B_DATA;
	return n;
}

/* ---- files ---- */

static void open_file(struct mfile *f, bool create)
{
	f->fd = open(f->path, O_RDWR | (create ? O_CREAT | O_TRUNC : 0), 0644);
	check_sys(f->fd >= 0, "open");
	f->dfd = open(f->path, O_RDWR | O_DIRECT);
	check_sys(f->dfd >= 0, "open O_DIRECT");
	f->map = mmap(NULL, opt.window, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, (off_t)f->base);
	if (f->map == MAP_FAILED)
		f->map = NULL;
	f->map_dirty = false;
}

static void close_file(struct mfile *f)
{
	if (f->map) {
		check_sys(msync(f->map, opt.window, MS_SYNC) == 0, "msync");
		munmap(f->map, opt.window);
		f->map = NULL;
	}
	close(f->dfd);
	close(f->fd);
	f->fd = f->dfd = -1;
}

static void drop_caches(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);

	if (fd >= 0) {
		if (write(fd, "3\n", 2) != 2)
			fail("dropping caches: %s", strerror(errno));
		close(fd);
	}
}

/* ---- checks ---- */

static void compare(const struct mfile *f, uint64_t off, const uint8_t *got, uint64_t len,
                    const char *how)
{
	const uint8_t *want = f->data + (off - f->base);

	for (uint64_t i = 0; i < len; i++) {
		if (got[i] != want[i]) {
			uint64_t j = i;

			while (j < len && got[j] != want[j])
				j++;
			fail("%s of file %d at %" PRIu64 " (window +%" PRIu64 ", len %" PRIu64
			     "): byte %" PRIu64 " (file offset %" PRIu64 ", block %" PRIu64
			     ") is 0x%02x, the model says 0x%02x; %" PRIu64
			     " bytes differ from there",
			     how, (int)(f - files), off, off - f->base, len, i, off + i,
			     (off + i) / BLK, got[i], want[i], j - i);
		}
	}
}

static void check_size(struct mfile *f)
{
	struct stat st;

	check_sys(fstat(f->fd, &st) == 0, "fstat");
	if ((uint64_t)st.st_size != f->size)
		fail("file %d has size %" PRIu64 ", the model says %" PRIu64, (int)(f - files),
		     (uint64_t)st.st_size, f->size);
	if (opt.check_blocks && !f->map_dirty &&
	    (uint64_t)st.st_blocks != model_data_blocks(f) * (BLK / 512))
		fail("file %d has %" PRIu64 " st_blocks, the model says %" PRIu64, (int)(f - files),
		     (uint64_t)st.st_blocks, model_data_blocks(f) * (BLK / 512));
}

/* read [off, off + len) with pread and compare */
static void check_range(struct mfile *f, uint64_t off, uint64_t len, const char *how)
{
	uint64_t want = off >= f->size ? 0 : (off + len > f->size ? f->size - off : len);
	ssize_t n;

	n = pread(f->fd, iobuf, len, (off_t)off);
	check_sys(n >= 0, "pread");
	if ((uint64_t)n != want)
		fail("%s: pread of %" PRIu64 " at %" PRIu64
		     " returned %zd, the model says %" PRIu64,
		     how, len, off, n, want);
	if (n)
		compare(f, off, iobuf, (uint64_t)n, how);
}

static void check_all(struct mfile *f)
{
	check_size(f);
	for (uint64_t off = f->base; off < f->size; off += opt.max_op)
		check_range(f, off, opt.max_op, "full read");
	/* below the base is one hole */
	if (f->base && f->size > 0) {
		ssize_t n = pread(f->fd, iobuf, BLK, (off_t)(f->base / 2 & ~(BLK - 1)));

		check_sys(n == (ssize_t)BLK, "pread below the window");
		for (uint64_t i = 0; i < BLK; i++)
			if (iobuf[i])
				fail("file %d reads nonzero below its window", (int)(f - files));
	}
}

/* ---- operations ---- */

/* record the range of the current operation for the failure report */
static void note_range(uint64_t off, uint64_t len)
{
	oplog[op_nr % LOG_OPS].off = off;
	oplog[op_nr % LOG_OPS].len = len;
}

/* a random offset and length inside the window; past EOF as well with extend */
static void pick_range(struct mfile *f, bool extend, uint64_t *off, uint64_t *len)
{
	uint64_t limit = extend ? opt.window : (f->size > f->base ? f->size - f->base : 0);

	if (limit == 0) {
		*off = f->base;
		*len = 0;
		return;
	}
	switch (rnd_below(4)) {
	case 0: /* block aligned */
		*off = f->base + rnd_below(limit / BLK + 1) * BLK;
		*len = (1 + rnd_below(opt.max_op / BLK)) * BLK;
		break;
	case 1: /* small */
		*off = f->base + rnd_below(limit);
		*len = 1 + rnd_below(64);
		break;
	default:
		*off = f->base + rnd_below(limit);
		*len = 1 + rnd_below(opt.max_op);
		break;
	}
	if (*off >= win_end(f))
		*off = win_end(f) - 1;
	if (*off + *len > win_end(f))
		*len = win_end(f) - *off;
	if (!extend && *off + *len > f->size)
		*len = f->size > *off ? f->size - *off : 0;
}

static void do_read(struct mfile *f)
{
	uint64_t off, len;

	pick_range(f, true, &off, &len);
	note_range(off, len);
	check_range(f, off, len, "read");
}

static void do_write(struct mfile *f)
{
	uint64_t off, len;
	ssize_t n;

	pick_range(f, true, &off, &len);
	note_range(off, len);
	fill_random(iobuf2, len);
	n = pwrite(f->fd, iobuf2, len, (off_t)off);
	check_sys(n == (ssize_t)len, "pwrite");
	model_write(f, off, iobuf2, len);
	if (rnd_below(2))
		check_range(f, off, len, "read after write");
}

/* direct I/O: aligned most of the time, sometimes not (which must work as buffered) */
static void direct_range(struct mfile *f, bool write, uint64_t *off, uint64_t *len, uint8_t **buf)
{
	pick_range(f, write, off, len);
	*buf = iobuf2;
	if (rnd_below(4) || opt.aligned_direct) {
		*off &= ~(BLK - 1);
		*len = (*len + BLK - 1) & ~(BLK - 1);
		if (*off + *len > win_end(f))
			*len = win_end(f) - *off;
	} else {
		*buf = iobuf2 + 1 + rnd_below(511);
	}
}

static void do_dwrite(struct mfile *f)
{
	uint64_t off, len;
	uint8_t *buf;
	ssize_t n;

	direct_range(f, true, &off, &len, &buf);
	note_range(off, len);
	if (len == 0)
		return;
	fill_random(buf, len);
	n = pwrite(f->dfd, buf, len, (off_t)off);
	check_sys(n == (ssize_t)len, "O_DIRECT pwrite");
	model_write(f, off, buf, len);
}

static void do_dread(struct mfile *f)
{
	uint64_t off, len, want;
	uint8_t *buf;
	ssize_t n;

	direct_range(f, false, &off, &len, &buf);
	note_range(off, len);
	if (len == 0)
		return;
	want = off >= f->size ? 0 : (off + len > f->size ? f->size - off : len);
	n = pread(f->dfd, buf, len, (off_t)off);
	check_sys(n >= 0, "O_DIRECT pread");
	if ((uint64_t)n != want)
		fail("O_DIRECT pread of %" PRIu64 " at %" PRIu64
		     " returned %zd, the model says %" PRIu64,
		     len, off, n, want);
	compare(f, off, buf, (uint64_t)n, "O_DIRECT read");
}

static void do_mwrite(struct mfile *f)
{
	uint64_t off, len;

	pick_range(f, false, &off, &len);
	note_range(off, len);
	if (!f->map || len == 0)
		return;
	fill_random(iobuf2, len);
	memcpy(f->map + (off - f->base), iobuf2, len);
	model_write(f, off, iobuf2, len);
	f->map_dirty = true;
	if (rnd_below(3) == 0) {
		check_sys(msync(f->map, opt.window, MS_SYNC) == 0, "msync");
		f->map_dirty = false;
	}
}

static void do_mread(struct mfile *f)
{
	uint64_t off, len;

	pick_range(f, false, &off, &len);
	note_range(off, len);
	if (!f->map || len == 0)
		return;
	compare(f, off, (const uint8_t *)f->map + (off - f->base), len, "mmap read");
}

static void do_truncate(struct mfile *f)
{
	uint64_t size;

	switch (rnd_below(4)) {
	case 0:
		size = f->size; /* the same size: trims preallocation */
		break;
	case 1:
		size = f->base + rnd_below(opt.window / BLK + 1) * BLK;
		break;
	default:
		size = f->base + rnd_below(opt.window + 1);
		break;
	}
	oplog[op_nr % LOG_OPS].off = size;
	check_sys(ftruncate(f->fd, (off_t)size) == 0, "ftruncate");
	model_truncate(f, size);
	check_size(f);
	/* around the new end: the tail of the last block must read as zeros later */
	if (size > f->base)
		check_range(f, size - 1 - rnd_below(size - f->base < BLK ? size - f->base : BLK),
		            2 * BLK, "read after truncate");
}

static void do_fallocate(struct mfile *f, int type)
{
	uint64_t off, len, first, end;
	int mode = 0;

	pick_range(f, true, &off, &len);
	if (type == OP_PUNCH) {
		mode = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	} else if (type == OP_ZERO) {
		mode = FALLOC_FL_ZERO_RANGE | (rnd_below(2) ? FALLOC_FL_KEEP_SIZE : 0);
	} else {
		mode = rnd_below(2) ? FALLOC_FL_KEEP_SIZE : 0;
	}
	note_range(off, len);
	oplog[op_nr % LOG_OPS].mode = mode;
	check_sys(fallocate(f->fd, mode, (off_t)off, (off_t)len) == 0, "fallocate");

	whole_blocks(f, off, len, &first, &end);
	if (type == OP_PUNCH || type == OP_ZERO) {
		uint64_t zlen = off + len > f->size ? (f->size > off ? f->size - off : 0) : len;

		if (zlen)
			model_zero(f, off, zlen);
		for (uint64_t b = first; b < end; b++)
			f->state[b] = type == OP_PUNCH ? B_HOLE : B_UNWRITTEN;
	} else {
		/* every block the range touches is allocated */
		for (uint64_t b = (off - f->base) / BLK; b <= (off + len - 1 - f->base) / BLK; b++)
			if (f->state[b] == B_HOLE)
				f->state[b] = B_UNWRITTEN;
	}
	if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > f->size)
		f->size = off + len;
	check_size(f);
	first = off >= f->base + BLK ? off - BLK : f->base;
	check_range(f, first, off + len + BLK - first, "read after fallocate");
}

/* what SEEK_DATA/SEEK_HOLE must answer from off: -errno or the offset */
static int64_t model_seek(const struct mfile *f, uint64_t off, int whence)
{
	uint64_t b = 0;

	if (off >= f->size)
		return -ENXIO;
	if (off < f->base) {
		if (whence == SEEK_HOLE)
			return (int64_t)off; /* below the window is all hole */
	} else {
		b = (off - f->base) / BLK;
	}
	for (; b < opt.window / BLK && f->base + b * BLK < f->size; b++) {
		bool data = f->state[b] == B_DATA;
		uint64_t pos = f->base + b * BLK;

		if (pos < off)
			pos = off;
		if (whence == SEEK_DATA ? data : !data)
			return (int64_t)pos;
	}
	return whence == SEEK_DATA ? -ENXIO : (int64_t)f->size;
}

static void do_seek(struct mfile *f)
{
	uint64_t off;
	int whence = rnd_below(2) ? SEEK_DATA : SEEK_HOLE;
	int64_t want;
	off_t got;

	if (f->base && rnd_below(8) == 0)
		off = rnd_below(f->base);
	else
		off = f->base + rnd_below(opt.window + BLK);
	oplog[op_nr % LOG_OPS].off = off;
	oplog[op_nr % LOG_OPS].mode = whence;
	if (f->map_dirty) {
		/* dirty mmap pages are data only once written back */
		check_sys(msync(f->map, opt.window, MS_SYNC) == 0, "msync");
		f->map_dirty = false;
	}
	want = model_seek(f, off, whence);
	got = lseek(f->fd, (off_t)off, whence);
	if (got < 0 && -errno != want)
		fail("lseek(%" PRIu64 ", %s) failed with %s, the model says %" PRId64, off,
		     whence == SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE", strerror(errno), want);
	if (got >= 0 && (int64_t)got != want)
		fail("lseek(%" PRIu64 ", %s) returned %" PRId64 ", the model says %" PRId64, off,
		     whence == SEEK_DATA ? "SEEK_DATA" : "SEEK_HOLE", (int64_t)got, want);
}

static void reopen_all(bool remount)
{
	for (int i = 0; i < opt.nr_files; i++)
		close_file(&files[i]);
	if (remount) {
		int ret = system(opt.remount_cmd);

		if (ret != 0)
			fail("remount command '%s' exited with %d", opt.remount_cmd, ret);
	} else if (opt.drop_caches) {
		drop_caches();
	}
	for (int i = 0; i < opt.nr_files; i++)
		open_file(&files[i], false);
}

static int pick_op(void)
{
	unsigned int total = 0, r;

	for (int t = 0; t < OP_NR; t++)
		total += op_weight[t];
	r = (unsigned int)rnd_below(total);
	for (int t = 0; t < OP_NR; t++) {
		if (r < op_weight[t])
			return t;
		r -= op_weight[t];
	}
	return OP_READ;
}

static void run_op(void)
{
	struct op_rec *rec = &oplog[op_nr % LOG_OPS];
	int type = pick_op();
	struct mfile *f = &files[rnd_below(opt.nr_files)];

	if (opt.remount_cmd && rnd_below(opt.remount_every) == 0)
		type = OP_REMOUNT;
	memset(rec, 0, sizeof(*rec));
	rec->nr = op_nr;
	rec->type = type;
	rec->file = (int)(f - files);
	counts[type]++;

	switch (type) {
	case OP_READ:
		do_read(f);
		break;
	case OP_WRITE:
		do_write(f);
		break;
	case OP_DREAD:
		do_dread(f);
		break;
	case OP_DWRITE:
		do_dwrite(f);
		break;
	case OP_MREAD:
		do_mread(f);
		break;
	case OP_MWRITE:
		do_mwrite(f);
		break;
	case OP_TRUNCATE:
		do_truncate(f);
		break;
	case OP_FALLOC:
	case OP_PUNCH:
	case OP_ZERO:
		do_fallocate(f, type);
		break;
	case OP_SEEK:
		do_seek(f);
		break;
	case OP_FSYNC:
		check_sys(fsync(f->fd) == 0, "fsync");
		break;
	case OP_REOPEN:
	case OP_REMOUNT:
		reopen_all(type == OP_REMOUNT);
		for (int i = 0; i < opt.nr_files; i++)
			check_all(&files[i]);
		break;
	case OP_CHECK:
		if (f->map_dirty) {
			check_sys(msync(f->map, opt.window, MS_SYNC) == 0, "msync");
			f->map_dirty = false;
		}
		check_all(f);
		break;
	}
	if (opt.verbose)
		print_op(rec);
}

static void usage(void)
{
	fprintf(stderr, "usage: fsx [options] DIR\n"
	                "  -n OPS       operations (default 10000)\n"
	                "  -s SEED      seed (default: time)\n"
	                "  -f FILES     files (1-3, default 3)\n"
	                "  -w BYTES     model window per file (default 4 MiB)\n"
	                "  -o BYTES     largest single operation (default 256 KiB)\n"
	                "  -r CMD       remount by running CMD (with every file closed)\n"
	                "  -R N         remount about every N ops (default 2000)\n"
	                "  -D           drop the page cache at reopens\n"
	                "  -S, -B       don't check seek answers, st_blocks\n"
	                "  -M, -O, -F   no mmap, no O_DIRECT, no fallocate\n"
	                "  -U           O_DIRECT aligned only\n"
	                "  -v           print every operation\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const uint64_t bases[MAX_FILES] = {
		0,
		(5ULL << 30) + 12 * BLK, /* past 4 GiB */
		/* near the largest offset Linux allows (LLONG_MAX) */
		0,
	};
	int c;

	opt.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	while ((c = getopt(argc, argv, "n:s:f:w:o:r:R:DSBMOFUv")) != -1) {
		switch (c) {
		case 'n':
			opt.nr_ops = strtoull(optarg, NULL, 0);
			break;
		case 's':
			opt.seed = strtoull(optarg, NULL, 0);
			break;
		case 'f':
			opt.nr_files = atoi(optarg);
			break;
		case 'w':
			opt.window = strtoull(optarg, NULL, 0) & ~(BLK - 1);
			break;
		case 'o':
			opt.max_op = strtoull(optarg, NULL, 0);
			break;
		case 'r':
			opt.remount_cmd = optarg;
			break;
		case 'R':
			opt.remount_every = strtoull(optarg, NULL, 0);
			break;
		case 'D':
			opt.drop_caches = true;
			break;
		case 'S':
			opt.check_seek = false;
			break;
		case 'B':
			opt.check_blocks = false;
			break;
		case 'M':
			op_weight[OP_MREAD] = op_weight[OP_MWRITE] = 0;
			break;
		case 'O':
			op_weight[OP_DREAD] = op_weight[OP_DWRITE] = 0;
			break;
		case 'F':
			op_weight[OP_FALLOC] = op_weight[OP_PUNCH] = op_weight[OP_ZERO] = 0;
			break;
		case 'U':
			opt.aligned_direct = true;
			break;
		case 'v':
			opt.verbose = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1 || opt.nr_files < 1 || opt.nr_files > MAX_FILES ||
	    opt.window < 4 * BLK || opt.max_op < 1 || opt.max_op > opt.window ||
	    opt.remount_every == 0)
		usage();
	if (!opt.check_seek)
		op_weight[OP_SEEK] = 0;
	rng_state = opt.seed ? opt.seed : 1;
	printf("fsx: seed %" PRIu64 ", %" PRIu64 " operations on %d files in %s\n", opt.seed,
	       opt.nr_ops, opt.nr_files, argv[optind]);
	fflush(stdout);

	if (posix_memalign((void **)&iobuf, BLK, opt.max_op + 2 * BLK + BLK) ||
	    posix_memalign((void **)&iobuf2, BLK, opt.max_op + 2 * BLK + BLK)) {
		fprintf(stderr, "fsx: out of memory\n");
		return 1;
	}
	for (int i = 0; i < opt.nr_files; i++) {
		struct mfile *f = &files[i];

		snprintf(f->path, sizeof(f->path), "%s/fsx.%d", argv[optind], i);
		f->base = i == 2 ? ((uint64_t)LLONG_MAX - opt.window - 3 * BLK) & ~(BLK - 1)
		                 : bases[i];
		f->data = calloc(1, opt.window);
		f->state = calloc(1, opt.window / BLK);
		if (!f->data || !f->state) {
			fprintf(stderr, "fsx: out of memory\n");
			return 1;
		}
		open_file(f, true);
		if (f->base) {
			check_sys(ftruncate(f->fd, (off_t)f->base) == 0, "ftruncate to the base");
			f->size = f->base;
		}
	}

	for (op_nr = 0; op_nr < opt.nr_ops; op_nr++)
		run_op();
	op_nr--;
	for (int i = 0; i < opt.nr_files; i++) {
		if (files[i].map_dirty)
			check_sys(msync(files[i].map, opt.window, MS_SYNC) == 0, "msync");
		files[i].map_dirty = false;
		check_all(&files[i]);
		close_file(&files[i]);
	}
	printf("fsx: passed %" PRIu64 " operations:", opt.nr_ops);
	for (int t = 0; t < OP_NR; t++)
		printf(" %s %" PRIu64, op_names[t], counts[t]);
	printf("\n");
	return 0;
}
