/*
 * fsbench: the timed inner loops of the benchmarks (bench/run.py drives it).
 *
 * Every rate the benchmarks report is measured here, in C, so that what is timed is the
 * filesystem and not an interpreter: through FUSE a create costs tens of microseconds, and a
 * Python loop around it would add a noticeable fraction of that.  Each invocation runs one
 * workload against one directory or file and prints one line of key=value results on stdout
 * (ops, seconds, and the wall-clock start and end so that the runner can add up processes that
 * ran at the same time on several mounts).  It knows nothing about scoutfs: the same loops run on
 * the mount, on the backing filesystem and through a FUSE passthrough, which is what makes the
 * baselines comparable.
 *
 * Directory workloads name their files PREFIX<index> for indexes [first, first + n) and split
 * that range into one contiguous slice per thread, so any operation can follow a create made
 * with another number of threads.  All threads start together on a barrier and the time runs
 * until the last one has finished.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define PATH_LEN    4096
#define MAX_THREADS 256

struct opts {
	const char *cmd;
	const char *path;
	const char *path_b;
	const char *prefix;
	const char *new_prefix;
	const char *bounce_op;
	uint64_t n;
	uint64_t first;
	uint64_t count;
	uint64_t size;
	uint64_t bs;
	uint64_t seed;
	uint64_t start_at_ns;
	double seconds;
	int threads;
	int direct;
	int keep;
};

struct worker {
	pthread_t thread;
	const struct opts *o;
	pthread_barrier_t *barrier;
	int index;
	int fd;
	uint64_t ops;
	int err;
	char what[PATH_LEN + 32];
};

static uint64_t now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: cheap, good enough to scatter offsets and sample names */
static uint64_t next_random(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

static void fail_op(struct worker *w, const char *op, const char *name, int err)
{
	if (!w->err) {
		w->err = err;
		snprintf(w->what, sizeof(w->what), "%s %s", op, name);
	}
}

static void slice(const struct opts *o, int index, uint64_t *first, uint64_t *last)
{
	*first = o->first + o->n * (uint64_t)index / (uint64_t)o->threads;
	*last = o->first + o->n * (uint64_t)(index + 1) / (uint64_t)o->threads;
}

static void file_name(char *buf, size_t len, const char *dir, const char *prefix, uint64_t i)
{
	snprintf(buf, len, "%s/%s%llu", dir, prefix, (unsigned long long)i);
}

static void do_create(struct worker *w, uint64_t i)
{
	char name[PATH_LEN];
	int fd;

	file_name(name, sizeof(name), w->o->path, w->o->prefix, i);
	fd = open(name, O_CREAT | O_EXCL | O_WRONLY, 0644);
	if (fd < 0 || close(fd) < 0)
		fail_op(w, "create", name, errno);
}

static void do_stat(struct worker *w, uint64_t i)
{
	char name[PATH_LEN];
	struct stat st;

	file_name(name, sizeof(name), w->o->path, w->o->prefix, i);
	if (lstat(name, &st) < 0)
		fail_op(w, "stat", name, errno);
}

static void do_rename(struct worker *w, uint64_t i)
{
	char from[PATH_LEN];
	char to[PATH_LEN];

	file_name(from, sizeof(from), w->o->path, w->o->prefix, i);
	file_name(to, sizeof(to), w->o->path, w->o->new_prefix, i);
	if (rename(from, to) < 0)
		fail_op(w, "rename", from, errno);
}

static void do_unlink(struct worker *w, uint64_t i)
{
	char name[PATH_LEN];

	file_name(name, sizeof(name), w->o->path, w->o->prefix, i);
	if (unlink(name) < 0)
		fail_op(w, "unlink", name, errno);
}

static void (*name_op(const char *cmd))(struct worker *, uint64_t)
{
	if (!strcmp(cmd, "create"))
		return do_create;
	if (!strcmp(cmd, "stat"))
		return do_stat;
	if (!strcmp(cmd, "rename"))
		return do_rename;
	if (!strcmp(cmd, "unlink"))
		return do_unlink;
	return NULL;
}

/* each thread works through its slice of names, or a random sample of the whole range */
static void *names_worker(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = w->o;
	void (*op)(struct worker *, uint64_t) = name_op(o->cmd);
	uint64_t rnd = o->seed * 2654435761ull + (uint64_t)w->index + 1;
	uint64_t first;
	uint64_t last;
	uint64_t i;

	slice(o, w->index, &first, &last);
	pthread_barrier_wait(w->barrier);
	if (o->count) {
		uint64_t share = o->count / (uint64_t)o->threads +
		                 ((uint64_t)w->index < o->count % (uint64_t)o->threads);

		for (i = 0; i < share && !w->err; i++, w->ops++)
			op(w, o->first + next_random(&rnd) % o->n);
	} else {
		for (i = first; i < last && !w->err; i++, w->ops++)
			op(w, i);
	}
	return NULL;
}

static void fill_random(void *buf, size_t len, uint64_t seed)
{
	uint64_t *p = buf;
	size_t i;

	for (i = 0; i < len / sizeof(*p); i++)
		p[i] = next_random(&seed);
}

static void *alloc_buf(size_t len, uint64_t seed)
{
	void *buf;

	if (posix_memalign(&buf, 4096, len) != 0)
		return NULL;
	fill_random(buf, len, seed | 1);
	return buf;
}

/* random reads or writes of bs bytes at aligned offsets until the time is up */
static void *random_worker(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = w->o;
	int writing = !strcmp(o->cmd, "randwrite");
	uint64_t rnd = o->seed * 2654435761ull + (uint64_t)w->index + 1;
	uint64_t blocks = o->size / o->bs;
	uint64_t deadline;
	ssize_t ret;
	void *buf;

	buf = alloc_buf(o->bs, rnd);
	if (!buf) {
		fail_op(w, "allocate", "buffer", ENOMEM);
		pthread_barrier_wait(w->barrier);
		return NULL;
	}
	pthread_barrier_wait(w->barrier);
	deadline = now_ns(CLOCK_MONOTONIC) + (uint64_t)(o->seconds * 1e9);
	while (now_ns(CLOCK_MONOTONIC) < deadline) {
		off_t off = (off_t)((next_random(&rnd) % blocks) * o->bs);

		if (writing)
			ret = pwrite(w->fd, buf, o->bs, off);
		else
			ret = pread(w->fd, buf, o->bs, off);
		if (ret != (ssize_t)o->bs) {
			fail_op(w, writing ? "pwrite" : "pread", o->path, ret < 0 ? errno : EIO);
			break;
		}
		w->ops++;
	}
	free(buf);
	return NULL;
}

static void print_result(const struct opts *o, uint64_t ops, uint64_t bytes, uint64_t start_mono,
                         uint64_t end_mono, uint64_t start_real)
{
	double secs = (double)(end_mono - start_mono) / 1e9;

	printf("op=%s ops=%llu bytes=%llu secs=%.6f start_ns=%llu end_ns=%llu\n", o->cmd,
	       (unsigned long long)ops, (unsigned long long)bytes, secs,
	       (unsigned long long)start_real,
	       (unsigned long long)(start_real + (end_mono - start_mono)));
}

static void wait_for_start(const struct opts *o)
{
	struct timespec ts;

	if (!o->start_at_ns)
		return;
	ts.tv_sec = (time_t)(o->start_at_ns / 1000000000ull);
	ts.tv_nsec = (long)(o->start_at_ns % 1000000000ull);
	while (clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/*
 * Start the threads, release them together and wait for all of them.  fd is handed to every
 * worker (the file of the random I/O workloads); the time includes sync_fd's fsync if given.
 */
static int run_threads(const struct opts *o, void *(*fn)(void *), int fd, int sync_fd,
                       uint64_t bytes_per_op)
{
	struct worker *workers;
	pthread_barrier_t barrier;
	uint64_t start_mono;
	uint64_t start_real;
	uint64_t end_mono;
	uint64_t ops = 0;
	int ret = 0;
	int err;
	int i;

	workers = calloc((size_t)o->threads, sizeof(*workers));
	if (!workers)
		return -ENOMEM;
	pthread_barrier_init(&barrier, NULL, (unsigned)o->threads + 1);
	for (i = 0; i < o->threads; i++) {
		workers[i].o = o;
		workers[i].barrier = &barrier;
		workers[i].index = i;
		workers[i].fd = fd;
		err = pthread_create(&workers[i].thread, NULL, fn, &workers[i]);
		if (err) {
			/* the threads already started wait on the barrier forever */
			fprintf(stderr, "fsbench: pthread_create: %s\n", strerror(err));
			exit(1);
		}
	}
	wait_for_start(o);
	start_real = now_ns(CLOCK_REALTIME);
	start_mono = now_ns(CLOCK_MONOTONIC);
	pthread_barrier_wait(&barrier);
	for (i = 0; i < o->threads; i++)
		pthread_join(workers[i].thread, NULL);
	if (sync_fd >= 0 && fsync(sync_fd) < 0)
		fail_op(&workers[0], "fsync", o->path, errno);
	end_mono = now_ns(CLOCK_MONOTONIC);

	for (i = 0; i < o->threads; i++) {
		ops += workers[i].ops;
		if (workers[i].err && !ret) {
			fprintf(stderr, "fsbench: %s: %s\n", workers[i].what,
			        strerror(workers[i].err));
			ret = -workers[i].err;
		}
	}
	if (!ret)
		print_result(o, ops, ops * bytes_per_op, start_mono, end_mono, start_real);
	pthread_barrier_destroy(&barrier);
	free(workers);
	return ret;
}

static int cmd_readdir(const struct opts *o)
{
	uint64_t start_mono = now_ns(CLOCK_MONOTONIC);
	uint64_t start_real = now_ns(CLOCK_REALTIME);
	uint64_t entries = 0;
	struct dirent *de;
	DIR *dir;

	dir = opendir(o->path);
	if (!dir) {
		fprintf(stderr, "fsbench: opendir %s: %s\n", o->path, strerror(errno));
		return -errno;
	}
	errno = 0;
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			entries++;
	}
	if (errno) {
		fprintf(stderr, "fsbench: readdir %s: %s\n", o->path, strerror(errno));
		closedir(dir);
		return -errno;
	}
	closedir(dir);
	print_result(o, entries, 0, start_mono, now_ns(CLOCK_MONOTONIC), start_real);
	return 0;
}

static int open_flags(const struct opts *o, int base)
{
	return base | (o->direct ? O_DIRECT : 0);
}

/* the whole file in bs requests, from its start; writes are timed through their fsync */
static int cmd_sequential(const struct opts *o)
{
	int writing = !strcmp(o->cmd, "seqwrite");
	uint64_t start_mono;
	uint64_t start_real;
	uint64_t done = 0;
	ssize_t ret = 0;
	void *buf;
	int flags;
	int fd;

	buf = alloc_buf(o->bs, o->seed + 1);
	if (!buf)
		return -ENOMEM;
	if (writing)
		flags = open_flags(o, O_WRONLY | (o->keep ? 0 : O_CREAT | O_TRUNC));
	else
		flags = open_flags(o, O_RDONLY);
	start_real = now_ns(CLOCK_REALTIME);
	start_mono = now_ns(CLOCK_MONOTONIC);
	fd = open(o->path, flags, 0644);
	if (fd < 0) {
		ret = -errno;
		fprintf(stderr, "fsbench: open %s: %s\n", o->path, strerror(errno));
		goto out;
	}
	while (done < o->size) {
		size_t len = o->size - done < o->bs ? (size_t)(o->size - done) : (size_t)o->bs;

		if (writing)
			ret = pwrite(fd, buf, len, (off_t)done);
		else
			ret = pread(fd, buf, len, (off_t)done);
		if (ret <= 0) {
			ret = ret < 0 ? -errno : -EIO;
			fprintf(stderr, "fsbench: %s %s at %llu: %s\n", writing ? "write" : "read",
			        o->path, (unsigned long long)done, strerror((int)-ret));
			goto out_close;
		}
		done += (uint64_t)ret;
	}
	if (writing && fsync(fd) < 0) {
		ret = -errno;
		fprintf(stderr, "fsbench: fsync %s: %s\n", o->path, strerror(errno));
		goto out_close;
	}
	ret = 0;
out_close:
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret)
		print_result(o, (done + o->bs - 1) / o->bs, done, start_mono,
		             now_ns(CLOCK_MONOTONIC), start_real);
out:
	free(buf);
	return (int)ret;
}

static int cmd_random(const struct opts *o)
{
	int writing = !strcmp(o->cmd, "randwrite");
	struct stat st;
	int ret;
	int fd;

	fd = open(o->path, open_flags(o, writing ? O_WRONLY : O_RDONLY));
	if (fd < 0) {
		fprintf(stderr, "fsbench: open %s: %s\n", o->path, strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < o->size || o->size < o->bs) {
		fprintf(stderr, "fsbench: %s must be at least %llu bytes and hold a request\n",
		        o->path, (unsigned long long)o->size);
		close(fd);
		return -EINVAL;
	}
	ret = run_threads(o, random_worker, fd, writing ? fd : -1, o->bs);
	if (close(fd) < 0 && !ret)
		ret = -errno;
	return ret;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int bounce_one(const struct opts *o, int fd, const char *path, uint64_t i)
{
	uint64_t val = i;

	if (!strcmp(o->bounce_op, "setxattr"))
		return setxattr(path, "user.fsbench", &val, sizeof(val), 0);
	return pwrite(fd, &val, sizeof(val), 0) == (ssize_t)sizeof(val) ? 0 : -1;
}

/*
 * Alternate a small change to one file between two paths to it (on two mounts, the write lock
 * moves from one to the other every time) and report the latency of each change.
 */
static int cmd_bounce(const struct opts *o)
{
	const char *paths[2] = { o->path, o->path_b };
	uint64_t start_real = now_ns(CLOCK_REALTIME);
	uint64_t start_mono = now_ns(CLOCK_MONOTONIC);
	int fds[2] = { -1, -1 };
	uint64_t *lat;
	uint64_t sum = 0;
	uint64_t i;
	int ret = 0;
	int s;

	lat = calloc(o->n, sizeof(*lat));
	if (!lat)
		return -ENOMEM;
	for (s = 0; s < 2; s++) {
		fds[s] = open(paths[s], O_WRONLY);
		if (fds[s] < 0) {
			ret = -errno;
			fprintf(stderr, "fsbench: open %s: %s\n", paths[s], strerror(errno));
			goto out;
		}
	}
	for (i = 0; i < o->n; i++) {
		uint64_t t0 = now_ns(CLOCK_MONOTONIC);

		if (bounce_one(o, fds[i % 2], paths[i % 2], i) < 0) {
			ret = -errno;
			fprintf(stderr, "fsbench: %s %s: %s\n", o->bounce_op, paths[i % 2],
			        strerror(errno));
			goto out;
		}
		lat[i] = now_ns(CLOCK_MONOTONIC) - t0;
		sum += lat[i];
	}
	qsort(lat, o->n, sizeof(*lat), cmp_u64);
	printf("op=bounce ops=%llu secs=%.6f start_ns=%llu p50_us=%.1f p99_us=%.1f max_us=%.1f "
	       "mean_us=%.1f\n",
	       (unsigned long long)o->n, (double)(now_ns(CLOCK_MONOTONIC) - start_mono) / 1e9,
	       (unsigned long long)start_real, (double)lat[o->n / 2] / 1e3,
	       (double)lat[(o->n * 99) / 100] / 1e3, (double)lat[o->n - 1] / 1e3,
	       (double)sum / (double)o->n / 1e3);
out:
	for (s = 0; s < 2; s++) {
		if (fds[s] >= 0)
			close(fds[s]);
	}
	free(lat);
	return ret;
}

static void usage(FILE *f)
{
	fputs("usage: fsbench create|stat|rename|unlink DIR -n N [-f FIRST] [-t THREADS]\n"
	      "           [-p PREFIX] [-P NEW_PREFIX] [-c SAMPLE] [-x SEED] [-s START_NS]\n"
	      "       fsbench readdir DIR\n"
	      "       fsbench seqwrite|seqread FILE -b SIZE [-B BS] [-d] [-k]\n"
	      "       fsbench randread|randwrite FILE -b SIZE -T SECS [-B BS] [-t THREADS] [-d]\n"
	      "       fsbench bounce FILE_A FILE_B -n N [-o write|setxattr]\n"
	      "\n"
	      "Names are PREFIX<index> (default prefix f) for indexes FIRST..FIRST+N-1, split\n"
	      "between the threads; -c stats SAMPLE random names of that range instead.\n"
	      "rename renames PREFIX<i> to NEW_PREFIX<i>.  -d opens with O_DIRECT; -k writes\n"
	      "an existing file without truncating it.  -s waits until CLOCK_REALTIME reaches\n"
	      "START_NS.  Prints one line: op= ops= bytes= secs= start_ns= end_ns= (bounce:\n"
	      "op= ops= secs= start_ns= p50_us= p99_us= max_us= mean_us=).\n",
	      f);
}

static int bad_usage(const char *why)
{
	fprintf(stderr, "fsbench: %s\n", why);
	usage(stderr);
	return 2;
}

static int parse_u64(const char *s, uint64_t *v)
{
	unsigned long long mult = 1;
	char *end;

	errno = 0;
	*v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		mult = 1ull << 10;
		break;
	case 'm':
	case 'M':
		mult = 1ull << 20;
		break;
	case 'g':
	case 'G':
		mult = 1ull << 30;
		break;
	case '\0':
		return 0;
	default:
		return -EINVAL;
	}
	if (end[1])
		return -EINVAL;
	*v *= mult;
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	uint64_t v = 0;
	int c;

	memset(o, 0, sizeof(*o));
	o->prefix = "f";
	o->new_prefix = "r";
	o->bounce_op = "write";
	o->threads = 1;
	o->bs = 1 << 20;
	o->seed = 1;
	while ((c = getopt(argc, argv, "n:f:t:p:P:c:s:b:B:T:dko:x:h")) != -1) {
		if (strchr("nftcsbBx", c) && parse_u64(optarg, &v) < 0) {
			fprintf(stderr, "fsbench: bad number for -%c: %s\n", c, optarg);
			return -EINVAL;
		}
		switch (c) {
		case 'n':
			o->n = v;
			break;
		case 'f':
			o->first = v;
			break;
		case 't':
			o->threads = (int)v;
			break;
		case 'p':
			o->prefix = optarg;
			break;
		case 'P':
			o->new_prefix = optarg;
			break;
		case 'c':
			o->count = v;
			break;
		case 's':
			o->start_at_ns = v;
			break;
		case 'b':
			o->size = v;
			break;
		case 'B':
			o->bs = v;
			break;
		case 'x':
			o->seed = v;
			break;
		case 'T':
			o->seconds = atof(optarg);
			break;
		case 'd':
			o->direct = 1;
			break;
		case 'k':
			o->keep = 1;
			break;
		case 'o':
			o->bounce_op = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			return -EINVAL;
		}
	}
	if (argc - optind < 2)
		return -EINVAL;
	o->cmd = argv[optind];
	o->path = argv[optind + 1];
	o->path_b = argc - optind > 2 ? argv[optind + 2] : NULL;
	if (o->threads < 1 || o->threads > MAX_THREADS || o->bs == 0) {
		fprintf(stderr, "fsbench: threads must be 1 to %d and the request size not 0\n",
		        MAX_THREADS);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	int ret;

	if (parse_args(argc, argv, &o) < 0) {
		usage(stderr);
		return 2;
	}
	if (name_op(o.cmd)) {
		if (o.n < (uint64_t)o.threads)
			return bad_usage("-n must be at least the thread count");
		ret = run_threads(&o, names_worker, -1, -1, 0);
	} else if (!strcmp(o.cmd, "readdir")) {
		ret = cmd_readdir(&o);
	} else if (!strcmp(o.cmd, "seqwrite") || !strcmp(o.cmd, "seqread")) {
		if (!o.size)
			return bad_usage("sequential I/O needs -b SIZE");
		ret = cmd_sequential(&o);
	} else if (!strcmp(o.cmd, "randread") || !strcmp(o.cmd, "randwrite")) {
		if (!o.size || o.seconds <= 0)
			return bad_usage("random I/O needs -b SIZE and -T SECONDS");
		ret = cmd_random(&o);
	} else if (!strcmp(o.cmd, "bounce")) {
		if (!o.path_b || !o.n)
			return bad_usage("bounce needs two files and -n N");
		if (strcmp(o.bounce_op, "write") && strcmp(o.bounce_op, "setxattr"))
			return bad_usage("-o is write or setxattr");
		ret = cmd_bounce(&o);
	} else {
		return bad_usage("unknown command");
	}
	return ret < 0 ? 1 : 0;
}
