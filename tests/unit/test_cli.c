/*
 * test_cli.c: the `scoutfs` command's messages, exit statuses and output formats.
 *
 * The command (its path is argv[1]) runs in a child process against a fake daemon: a control
 * server in this process with canned handlers, reached through a fake mountinfo file that
 * says our temporary directory is a scoutfs mount (SCOUTFS_MOUNTINFO, SCOUTFS_RUN_DIR).  The
 * tests compare whole outputs, so they pin down the formats scripts depend on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "control/control.h"
#include "control/ctl_client.h"
#include "util/util.h"

#include "cli_support.h"

static const char *scoutfs_exe;
static char tmp_dir[PATH_MAX];
static struct control_server *srv;

#define NR_META           60
#define NR_DATA           5
#define WALK_MAX_PER_CALL 7

/* ------------------------------------------------------------------------------------------ */
/* the fake daemon */

static int h_statfs(struct control_call *call, void *arg)
{
	struct control_statfs_resp r = {
		.fsid = 0x0123456789abcdefULL,
		.rid = 0x00000000000000beULL,
		.committed_seq = 42,
		.total_meta_blocks = 1048576,
		.total_data_blocks = 16777152,
		.reserved_meta_blocks = 100,
	};

	return control_reply(call, 0, &r, sizeof(r));
}

static int h_stat(struct control_call *call, void *arg)
{
	struct control_stat_resp r = {
		.meta_seq = 11,
		.data_seq = 12,
		.data_version = 13,
		.online_blocks = 14,
		.offline_blocks = 15,
		.crtime_sec = 1700000000,
		.crtime_nsec = 5,
	};
	struct stat st;

	if (fstat(call->fd, &st) < 0)
		return -errno;
	/* the file named "fail" holds 4 bytes */
	if (st.st_size == 4)
		return -ENOSPC;
	return control_reply(call, 0, &r, sizeof(r));
}

/* the fake index: meta_seq entry i is (1 + i / 10, 0, 1024 + i); data_seq has fewer */
static struct control_walk_inodes_entry fake_ent(uint64_t i)
{
	struct control_walk_inodes_entry e = { .major = 1 + i / 10, .minor = 0, .ino = 1024 + i };

	return e;
}

static int cmp_pos(const struct control_walk_inodes_entry *a,
                   const struct control_walk_inodes_entry *b)
{
	if (a->major != b->major)
		return a->major < b->major ? -1 : 1;
	if (a->minor != b->minor)
		return a->minor < b->minor ? -1 : 1;
	if (a->ino != b->ino)
		return a->ino < b->ino ? -1 : 1;
	return 0;
}

static int h_walk(struct control_call *call, void *arg)
{
	struct control_walk_inodes_entry ents[WALK_MAX_PER_CALL];
	struct control_walk_inodes_req req;
	uint64_t nr_index;
	size_t nr = 0;
	int ret;

	if (call->req_len != sizeof(req))
		return -EINVAL;
	memcpy(&req, call->req, sizeof(req));
	if (req.index > CONTROL_WALK_DATA_SEQ || req.first.major == 999)
		return -EINVAL;
	nr_index = req.index == CONTROL_WALK_META_SEQ ? NR_META : NR_DATA;

	for (uint64_t i = 0; i < nr_index && nr < WALK_MAX_PER_CALL && nr < req.nr_entries; i++) {
		struct control_walk_inodes_entry e = fake_ent(i);

		if (cmp_pos(&e, &req.first) >= 0 && cmp_pos(&e, &req.last) <= 0)
			ents[nr++] = e;
	}

	/* the first two entries as MORE chunks, to exercise streaming */
	for (size_t i = 0; i < nr && i < 2; i++) {
		ret = control_reply_more(call, &ents[i], sizeof(ents[i]));
		if (ret < 0)
			return ret;
	}
	return control_reply(call, 0, nr > 2 ? &ents[2] : NULL,
	                     nr > 2 ? (nr - 2) * sizeof(ents[0]) : 0);
}

static int h_counters(struct control_call *call, void *arg)
{
	static const char text[] = "alpha_one 1\nbeta 22\ngamma_three_long 333\n";

	return control_reply(call, 0, text, sizeof(text) - 1);
}

/* five extents: written, unwritten, offline, written, written and last */
static int h_fiemap(struct control_call *call, void *arg)
{
	struct control_fiemap_entry ents[5];
	struct control_fiemap_req req;
	struct stat st;
	size_t nr = 0;

	if (call->req_len != sizeof(req) || fstat(call->fd, &st) < 0)
		return -EINVAL;
	if (st.st_size == 4) /* the file named "fail" */
		return -EISDIR;
	memcpy(&req, call->req, sizeof(req));
	for (uint64_t i = 0; i < 5 && nr < req.nr_entries; i++) {
		struct control_fiemap_entry e = {
			.logical = i * 10,
			.physical = i == 2 ? 0 : 1000 + i * 100,
			.length = i + 1,
			.flags = i == 1   ? CONTROL_FIEMAP_UNWRITTEN
			         : i == 2 ? CONTROL_FIEMAP_OFFLINE
			         : i == 4 ? CONTROL_FIEMAP_LAST
			                  : 0,
		};

		if (e.logical + e.length > req.start_block)
			ents[nr++] = e;
	}
	return control_reply(call, 0, ents, nr * sizeof(ents[0]));
}

static struct control_handler handlers[CONTROL_CMD_NR] = {
	[CONTROL_CMD_STATFS] = { .fn = h_statfs },
	[CONTROL_CMD_STAT] = { .fn = h_stat, .needs_fd = true },
	[CONTROL_CMD_WALK_INODES] = { .fn = h_walk },
	[CONTROL_CMD_COUNTERS] = { .fn = h_counters },
	[CONTROL_CMD_GET_FIEMAP] = { .fn = h_fiemap, .needs_fd = true },
};

/* ------------------------------------------------------------------------------------------ */
/* running the command */

struct result {
	int status;
	char out[65536];
	char err[8192];
};

static void read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, len - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
}

/* run scoutfs with the NULL-terminated arguments */
static struct result *run(const char *arg, ...)
{
	struct result *r = calloc(1, sizeof(*r));
	char out_path[PATH_MAX + 16];
	char err_path[PATH_MAX + 16];
	va_list ap;

	assert_non_null(r);
	snprintf(out_path, sizeof(out_path), "%s/out", tmp_dir);
	snprintf(err_path, sizeof(err_path), "%s/err", tmp_dir);
	va_start(ap, arg);
	r->status = cli_run(scoutfs_exe, out_path, err_path, arg, ap);
	va_end(ap);
	read_file(out_path, r->out, sizeof(r->out));
	read_file(err_path, r->err, sizeof(r->err));
	return r;
}

#define assert_contains(hay, needle) assert_non_null(strstr((hay), (needle)))

static void path_in_tmp(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmp_dir, name);
}

/* ------------------------------------------------------------------------------------------ */
/* tests */

static void test_help_and_version(void **state)
{
	struct result *r;

	r = run("--help", NULL);
	assert_int_equal(r->status, 0);
	assert_contains(r->out, "Usage: scoutfs COMMAND");
	assert_contains(r->out, "Info commands:\n");
	assert_contains(r->out, "Search commands:\n  walk-inodes");
	assert_contains(r->out, "Debug commands:\n");
	assert_contains(r->out, "Supported format versions: 1-2");
	assert_string_equal(r->err, "");
	free(r);

	r = run(NULL);
	assert_int_equal(r->status, 64);
	assert_contains(r->err, "Usage: scoutfs COMMAND");
	free(r);

	r = run("--version", NULL);
	assert_int_equal(r->status, 0);
	assert_int_equal(strncmp(r->out, "scoutfs ", 8), 0);
	free(r);

	r = run("walk-inodes", "--help", NULL);
	assert_int_equal(r->status, 0);
	assert_int_equal(strncmp(r->out, "Usage: scoutfs walk-inodes", 26), 0);
	assert_contains(r->out, "Exit status:\n");
	assert_contains(r->out, "SCOUTFS_MOUNT_PATH");
	free(r);

	/* --help anywhere before "--" */
	r = run("stat", "-s", "meta_seq", "--help", NULL);
	assert_int_equal(r->status, 0);
	assert_int_equal(strncmp(r->out, "Usage: scoutfs stat", 19), 0);
	assert_contains(r->out, "ioctl failed");
	free(r);

	r = run("help", "counters", NULL);
	assert_int_equal(r->status, 0);
	assert_int_equal(strncmp(r->out, "Usage: scoutfs counters", 23), 0);
	free(r);
}

static void test_unknown_command(void **state)
{
	struct result *r;

	r = run("frob", "x", NULL);
	assert_int_equal(r->status, 64);
	assert_string_equal(r->err, "scoutfs: unrecognized command: 'frob'\n"
	                            "Try `scoutfs --help' for a list of commands.\n");
	assert_string_equal(r->out, "");
	free(r);

	r = run("--frob", NULL);
	assert_int_equal(r->status, 64);
	assert_contains(r->err, "unrecognized option '--frob'");
	free(r);
}

static void expect_usage_error(struct result *r, const char *cmd, const char *msg)
{
	char want[512];

	snprintf(want, sizeof(want), "%s: %s\nTry `scoutfs %s --help' for more information.\n", cmd,
	         msg, cmd);
	assert_int_equal(r->status, 64);
	assert_string_equal(r->err, want);
	assert_string_equal(r->out, "");
	free(r);
}

static void test_usage_errors(void **state)
{
	expect_usage_error(run("walk-inodes", NULL), "walk-inodes",
	                   "missing index, first and last");
	expect_usage_error(run("walk-inodes", "meta_seq", "0", NULL), "walk-inodes",
	                   "missing last position");
	expect_usage_error(run("walk-inodes", "size", "0", "1", NULL), "walk-inodes",
	                   "unknown index 'size' (meta_seq or data_seq)");
	expect_usage_error(run("walk-inodes", "meta_seq", "1.2.3.4", "5", NULL), "walk-inodes",
	                   "invalid first position '1.2.3.4' (try 1.0.1024 or -1)");
	expect_usage_error(run("walk-inodes", "meta_seq", "0", "1.4294967296", NULL), "walk-inodes",
	                   "invalid last position '1.4294967296' (try 1.0.1024 or -1)");
	expect_usage_error(run("walk-inodes", "meta_seq", "0", "-2", NULL), "walk-inodes",
	                   "invalid last position '-2' (try 1.0.1024 or -1)");
	expect_usage_error(run("walk-inodes", "-x", "meta_seq", "0", "1", NULL), "walk-inodes",
	                   "invalid option -- 'x'");
	expect_usage_error(run("walk-inodes", "-p", "/a", "meta_seq", "0", "1", "/b", NULL),
	                   "walk-inodes", "too many arguments");
	expect_usage_error(run("walk-inodes", "meta_seq", "0", "-1", "-p", NULL), "walk-inodes",
	                   "option requires an argument -- 'p'");
	expect_usage_error(run("walk-inodes", "meta_seq", "--path", NULL), "walk-inodes",
	                   "option '--path' requires an argument");
	expect_usage_error(run("statfs", "--bogus", NULL), "statfs",
	                   "unrecognized option '--bogus'");
	expect_usage_error(run("statfs", "-p", NULL), "statfs",
	                   "option requires an argument -- 'p'");
	expect_usage_error(run("statfs", "--path", NULL), "statfs",
	                   "option '--path' requires an argument");
	expect_usage_error(run("statfs", "-s", "reserved_meta_blocks", NULL), "statfs",
	                   "unknown field 'reserved_meta_blocks'");
	expect_usage_error(run("statfs", "extra", NULL), "statfs", "unexpected argument 'extra'");
	expect_usage_error(run("stat", "-s", "nope", "/", NULL), "stat", "unknown field 'nope'");
	expect_usage_error(run("stat", NULL), "stat", "missing file");
	expect_usage_error(run("counters", "-t", "/a", "/b", NULL), "counters",
	                   "too many arguments");
}

static void test_not_scoutfs(void **state)
{
	struct result *r;
	char *mi = strdup(getenv(CTL_MOUNTINFO_ENV));
	char want[PATH_MAX + 128];

	/* /proc is never the fake mount */
	r = run("statfs", "-p", "/proc", NULL);
	assert_int_equal(r->status, 1);
	assert_string_equal(r->err, "scoutfs: statfs: /proc is not in a scoutfs filesystem\n");
	free(r);

	/* with the real mountinfo, neither is our directory; -p falls back to the env var */
	unsetenv(CTL_MOUNTINFO_ENV);
	setenv("SCOUTFS_MOUNT_PATH", tmp_dir, 1);
	r = run("counters", NULL);
	unsetenv("SCOUTFS_MOUNT_PATH");
	setenv(CTL_MOUNTINFO_ENV, mi, 1);
	free(mi);
	assert_int_equal(r->status, 1);
	snprintf(want, sizeof(want), "scoutfs: counters: %s is not in a scoutfs filesystem\n",
	         tmp_dir);
	assert_string_equal(r->err, want);
	free(r);

	r = run("walk-inodes", "-p", "/nonexistent/dir", "meta_seq", "0", "-1", NULL);
	assert_int_equal(r->status, 1);
	assert_string_equal(r->err, "scoutfs: walk-inodes: cannot access '/nonexistent/dir': "
	                            "No such file or directory\n");
	free(r);

	r = run("stat", "/nonexistent/file", NULL);
	assert_int_equal(r->status, 1);
	assert_string_equal(r->err, "scoutfs: stat: cannot open '/nonexistent/file': "
	                            "No such file or directory\n");
	free(r);
}

/* the expected walk-inodes output for fake entries [from, to) */
static void walk_expect(char *buf, size_t len, uint64_t from, uint64_t to)
{
	size_t off = 0;
	uint64_t row = 0;

	buf[0] = '\0';
	for (uint64_t i = from; i < to; i++, row++) {
		struct control_walk_inodes_entry e = fake_ent(i);

		if (row % 25 == 0)
			off += snprintf(buf + off, len - off, "%-20s %-20s %-10s %-20s\n", "#",
			                "major", "minor", "ino");
		off += snprintf(buf + off, len - off, "%-20llu %-20llu %-10u %-20llu\n",
		                (unsigned long long)row, (unsigned long long)e.major, e.minor,
		                (unsigned long long)e.ino);
	}
}

static void test_walk_inodes(void **state)
{
	char want[65536];
	struct result *r;

	walk_expect(want, sizeof(want), 0, NR_META);

	r = run("walk-inodes", "-p", tmp_dir, "meta_seq", "0", "-1", NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->err, "");
	assert_string_equal(r->out, want);
	free(r);

	/* the original's form: PATH as the last operand; and "--" before the operands */
	r = run("walk-inodes", "meta_seq", "0", "-1", tmp_dir, NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, want);
	free(r);
	r = run("walk-inodes", "--path", tmp_dir, "--", "META_SEQ", "0x0", "-1.-1.-1", NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, want);
	free(r);

	/* a range inside: from (2, 0, 1034) to (3, 0, 0): entries 10..19 */
	walk_expect(want, sizeof(want), 10, 20);
	r = run("walk-inodes", "-p", tmp_dir, "meta_seq", "2.0.1034", "3", NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, want);
	free(r);

	walk_expect(want, sizeof(want), 0, NR_DATA);
	r = run("walk-inodes", "-p", tmp_dir, "data_seq", "0", "-1", NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, want);
	free(r);

	/* first after last: nothing */
	r = run("walk-inodes", "-p", tmp_dir, "meta_seq", "5", "4", NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, "");
	free(r);

	/* the daemon's error */
	r = run("walk-inodes", "-p", tmp_dir, "meta_seq", "999", "-1", NULL);
	assert_int_equal(r->status, 1);
	assert_string_equal(r->err, "scoutfs: walk-inodes failed: Invalid argument (22)\n");
	free(r);
}

/* two files the fake daemon knows: f1 (empty) and fail (4 bytes: it fails the request) */
static void make_files(char f1[PATH_MAX + 16], char fail[PATH_MAX + 16])
{
	int fd;

	path_in_tmp(f1, PATH_MAX + 16, "f1");
	path_in_tmp(fail, PATH_MAX + 16, "fail");
	fd = open(f1, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	fd = open(fail, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "four", 4), 4);
	close(fd);
}

static void test_stat(void **state)
{
	char f1[PATH_MAX + 16];
	char fail[PATH_MAX + 16];
	struct result *r;

	make_files(f1, fail);

	r = run("stat", f1, NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, "meta_seq          11\n"
	                            "data_seq          12\n"
	                            "data_version      13\n"
	                            "online_blocks     14\n"
	                            "offline_blocks    15\n"
	                            "crtime            1700000000.000000005\n");
	free(r);

	r = run("stat", "-s", "crtime", f1, NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, "1700000000.000000005\n");
	free(r);
	r = run("stat", f1, "--single-field", "offline_blocks", NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, "15\n");
	free(r);

	/* the original's quirk: a refused request still exits 0 */
	r = run("stat", fail, NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, "");
	assert_string_equal(r->err, "ioctl failed: No space left on device (28)\n");
	free(r);
}

static void test_get_fiemap(void **state)
{
	char f1[PATH_MAX + 16];
	char fail[PATH_MAX + 16];
	struct result *r;

	make_files(f1, fail);

	r = run("get-fiemap", f1, NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, "0: offset: 0 1000 length: 1 flags: ...\n"
	                            "1: offset: 10 1100 length: 2 flags: .U.\n"
	                            "2: offset: 20 0 length: 3 flags: O..\n"
	                            "3: offset: 30 1300 length: 4 flags: ...\n"
	                            "4: offset: 40 1400 length: 5 flags: ..L\n"
	                            "extents: 5\n");
	free(r);

	r = run("get-fiemap", "-L", "-b", f1, NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, "0: offset: 0 length: 4096 flags: ...\n"
	                            "1: offset: 40960 length: 8192 flags: .U.\n"
	                            "2: offset: 81920 length: 12288 flags: O..\n"
	                            "3: offset: 122880 length: 16384 flags: ...\n"
	                            "4: offset: 163840 length: 20480 flags: ..L\n"
	                            "extents: 5\n");
	free(r);

	r = run("get-fiemap", "--physical", f1, NULL);
	assert_int_equal(r->status, 0);
	assert_contains(r->out, "1: offset: 1100 length: 2 flags: .U.\n");
	free(r);

	r = run("get-fiemap", fail, NULL);
	assert_int_equal(r->status, 1);
	assert_string_equal(r->out, "");
	assert_string_equal(r->err, "scoutfs: get-fiemap failed: Is a directory (21)\n");
	free(r);

	expect_usage_error(run("get-fiemap", "-L", "-P", f1, NULL), "get-fiemap",
	                   "can't pass both -P and -L options");
	expect_usage_error(run("get-fiemap", NULL), "get-fiemap", "no filename given");
	expect_usage_error(run("get-fiemap", f1, f1, NULL), "get-fiemap",
	                   "more than one argument given");
}

static void test_statfs(void **state)
{
	struct result *r;

	r = run("statfs", "-p", tmp_dir, NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, "fsid              0123456789abcdef\n"
	                            "rid               00000000000000be\n"
	                            "committed_seq     42\n"
	                            "total_meta_blocks 1048576\n"
	                            "total_data_blocks 16777152\n");
	free(r);

	r = run("statfs", "-p", tmp_dir, "-s", "rid", NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, "00000000000000be\n");
	free(r);

	/* the current directory is the last fallback */
	{
		char cwd[PATH_MAX];

		assert_non_null(getcwd(cwd, sizeof(cwd)));
		assert_int_equal(chdir(tmp_dir), 0);
		r = run("statfs", "-s", "committed_seq", NULL);
		assert_int_equal(chdir(cwd), 0);
		assert_int_equal(r->status, 0);
		assert_string_equal(r->out, "42\n");
		free(r);
	}
}

static void test_counters(void **state)
{
	struct result *r;

	r = run("counters", "-p", tmp_dir, NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, "alpha_one 1\nbeta 22\ngamma_three_long 333\n");
	free(r);

	setenv("COLUMNS", "80", 1);
	r = run("counters", "-t", tmp_dir, NULL);
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out,
	                    "alpha_one          1   beta              22   gamma_three_long 333\n");
	free(r);

	setenv("COLUMNS", "40", 1);
	r = run("counters", "--table", "--path", tmp_dir, NULL);
	unsetenv("COLUMNS");
	assert_int_equal(r->status, 0);
	assert_string_equal(r->out, "alpha_one          1\n"
	                            "beta              22\n"
	                            "gamma_three_long 333\n");
	free(r);
}

static int setup(void **state)
{
	char mi[PATH_MAX + 32];
	char run_dir[PATH_MAX + 32];
	char sock[PATH_MAX + 64];
	struct stat st;
	FILE *f;

	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/test_cli.XXXXXX");
	if (!mkdtemp(tmp_dir) || stat(tmp_dir, &st) < 0)
		return -1;

	/* our directory's device, listed as a scoutfs mount */
	snprintf(mi, sizeof(mi), "%s/mountinfo", tmp_dir);
	f = fopen(mi, "w");
	if (!f)
		return -1;
	fprintf(f, "50 1 %u:%u / %s rw - fuse.scoutfs /dev/fake rw\n", major(st.st_dev),
	        minor(st.st_dev), tmp_dir);
	fclose(f);
	snprintf(run_dir, sizeof(run_dir), "%s/run", tmp_dir);
	setenv(CTL_MOUNTINFO_ENV, mi, 1);
	setenv(CONTROL_RUN_DIR_ENV, run_dir, 1);
	unsetenv("SCOUTFS_MOUNT_PATH");

	control_sock_path(sock, sizeof(sock), major(st.st_dev), minor(st.st_dev));
	return control_server_start(sock, handlers, NULL, &srv) ? -1 : 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	control_server_stop(srv);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_help_and_version), cmocka_unit_test(test_unknown_command),
		cmocka_unit_test(test_usage_errors),     cmocka_unit_test(test_not_scoutfs),
		cmocka_unit_test(test_walk_inodes),      cmocka_unit_test(test_stat),
		cmocka_unit_test(test_statfs),           cmocka_unit_test(test_counters),
		cmocka_unit_test(test_get_fiemap),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH-OF-SCOUTFS\n", argv[0]);
		return 2;
	}
	scoutfs_exe = argv[1];
	return cmocka_run_group_tests(tests, setup, teardown);
}
