/*
 * test_control.c: the control socket, daemon and client ends together.
 *
 * A control server with fake handlers runs on a socket in a temporary directory, and the
 * tests drive it through ctl_client and through raw sockets: request and reply round trips,
 * streamed and split replies, descriptor passing (the handler sees the caller's inode and open
 * mode; every received descriptor is closed afterwards), privileged commands refused for a
 * caller that dropped to nobody, malformed messages that cost only their own connection,
 * many concurrent clients, stale and live socket files, and the mountinfo lookups.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control/control.h"
#include "control/ctl_client.h"
#include "control/mountinfo.h"
#include "util/util.h"

/* fake commands, numbered in the free admin range */
enum {
	T_ECHO = 100,
	T_STREAM,
	T_BIG,
	T_FDINFO,
	T_PRIV,
	T_FAIL,
	T_BARRIER,
	T_CREDS,
	T_DOUBLE_REPLY,
};

struct stream_req {
	uint32_t nr_chunks;
	uint32_t chunk_len;
};

struct fdinfo_resp {
	uint64_t ino;
	uint64_t dev;
	int32_t flags;
	uint32_t _pad;
};

struct creds_resp {
	int32_t pid;
	uint32_t uid;
	uint32_t gid;
	uint32_t privileged;
};

#define BIG_LEN    (CONTROL_MAX_PAYLOAD * 2 + CONTROL_MAX_PAYLOAD / 2)
#define BARRIER_NR 8

static char tmp_dir[PATH_MAX];
static char sock_path[PATH_MAX + 32];
static struct control_server *srv;

static pthread_mutex_t barrier_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t barrier_cond = PTHREAD_COND_INITIALIZER;
static int barrier_inside;

/* ------------------------------------------------------------------------------------------ */
/* fake handlers */

static int h_ping(struct control_call *call, void *arg)
{
	static const char mnt[] = "/mnt/test";
	char buf[sizeof(struct control_ping_resp) + sizeof(mnt)];
	struct control_ping_resp *pr = (void *)buf;

	memset(buf, 0, sizeof(buf));
	pr->fsid = 0x1122334455667788ULL;
	pr->rid = 0x99aabbccddeeff00ULL;
	pr->pid = (uint32_t)getpid();
	pr->format_version = 2;
	pr->mountpoint_len = sizeof(mnt) - 1;
	memcpy(pr->mountpoint, mnt, sizeof(mnt) - 1);
	return control_reply(call, 0, buf, sizeof(*pr) + sizeof(mnt) - 1);
}

static int h_echo(struct control_call *call, void *arg)
{
	if (call->req_len == 0 && call->req != NULL)
		return -EINVAL;
	return control_reply(call, 0, call->req, call->req_len);
}

static int h_stream(struct control_call *call, void *arg)
{
	struct stream_req sr;
	char *chunk;
	int ret = 0;

	if (call->req_len != sizeof(sr))
		return -EINVAL;
	memcpy(&sr, call->req, sizeof(sr));
	if (sr.chunk_len == 0 || sr.chunk_len > CONTROL_MAX_PAYLOAD)
		return -EINVAL;
	chunk = malloc(sr.chunk_len);
	if (!chunk)
		return -ENOMEM;
	for (uint32_t i = 0; i < sr.nr_chunks && ret == 0; i++) {
		memset(chunk, 'a' + (i % 26), sr.chunk_len);
		ret = control_reply_more(call, chunk, sr.chunk_len);
	}
	free(chunk);
	if (ret < 0)
		return ret;
	return control_reply(call, 0, "end", 3);
}

static int h_big(struct control_call *call, void *arg)
{
	char *buf = malloc(BIG_LEN);
	int ret;

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < BIG_LEN; i++)
		buf[i] = (char)(i * 31 + 7);
	ret = control_reply(call, 0, buf, BIG_LEN);
	free(buf);
	return ret;
}

static int h_fdinfo(struct control_call *call, void *arg)
{
	struct fdinfo_resp fr = { 0 };
	struct stat st;

	if (fstat(call->fd, &st) < 0)
		return -errno;
	fr.ino = st.st_ino;
	fr.dev = st.st_dev;
	fr.flags = fcntl(call->fd, F_GETFL);
	return control_reply(call, 0, &fr, sizeof(fr));
}

static int h_priv(struct control_call *call, void *arg)
{
	return control_reply(call, 0, "root", 4);
}

static int h_fail(struct control_call *call, void *arg)
{
	return -ENOSPC;
}

/* wait until BARRIER_NR calls are inside at once: only possible if they run concurrently */
static int h_barrier(struct control_call *call, void *arg)
{
	struct timespec ts;
	int ret = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;

	pthread_mutex_lock(&barrier_lock);
	barrier_inside++;
	pthread_cond_broadcast(&barrier_cond);
	while (barrier_inside < BARRIER_NR && ret == 0)
		ret = pthread_cond_timedwait(&barrier_cond, &barrier_lock, &ts);
	pthread_mutex_unlock(&barrier_lock);
	return ret ? -ETIMEDOUT : 0;
}

static int h_creds(struct control_call *call, void *arg)
{
	struct creds_resp cr = {
		.pid = call->creds->pid,
		.uid = call->creds->uid,
		.gid = call->creds->gid,
		.privileged = call->creds->privileged,
	};

	return control_reply(call, 0, &cr, sizeof(cr));
}

static int h_double_reply(struct control_call *call, void *arg)
{
	int ret = control_reply(call, -ENOENT, NULL, 0);

	/* a second final reply and a late chunk are refused, not sent */
	if (ret == 0 && control_reply(call, 0, NULL, 0) != -EINVAL)
		return -EIO;
	if (ret == 0 && control_reply_more(call, "x", 1) != -EINVAL)
		return -EIO;
	return 0;
}

static struct control_handler handlers[CONTROL_CMD_NR] = {
	[CONTROL_CMD_PING] = { .fn = h_ping },
	[T_ECHO] = { .fn = h_echo },
	[T_STREAM] = { .fn = h_stream },
	[T_BIG] = { .fn = h_big },
	[T_FDINFO] = { .fn = h_fdinfo, .needs_fd = true },
	[T_PRIV] = { .fn = h_priv, .privileged = true },
	[T_FAIL] = { .fn = h_fail },
	[T_BARRIER] = { .fn = h_barrier },
	[T_CREDS] = { .fn = h_creds },
	[T_DOUBLE_REPLY] = { .fn = h_double_reply },
};

/* ------------------------------------------------------------------------------------------ */
/* helpers */

static struct ctl_conn *open_conn(void)
{
	struct ctl_conn *conn = NULL;
	char err[512];

	assert_int_equal(ctl_open_socket(sock_path, &conn, err, sizeof(err)), 0);
	return conn;
}

struct collect {
	char *buf;
	size_t len;
	int chunks;
};

static int collect_cb(const void *data, size_t len, void *arg)
{
	struct collect *c = arg;

	c->buf = realloc(c->buf, c->len + len);
	if (!c->buf)
		return -ENOMEM;
	memcpy(c->buf + c->len, data, len);
	c->len += len;
	c->chunks++;
	return 0;
}

/* how many of our descriptors are open on path (the server's copies are ours too) */
static int count_fds_to(const char *path)
{
	DIR *d = opendir("/proc/self/fd");
	char link[PATH_MAX + 32];
	char target[PATH_MAX];
	struct dirent *de;
	int nr = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		nr += strcmp(target, path) == 0;
	}
	closedir(d);
	return nr;
}

/* the server closes a passed descriptor just after replying: give it a moment */
static void wait_fds_to(const char *path, int expect)
{
	for (int i = 0; i < 400 && count_fds_to(path) != expect; i++)
		usleep(5000);
	assert_int_equal(count_fds_to(path), expect);
}

static void tmp_file(char *buf, size_t len, const char *name)
{
	int fd;

	snprintf(buf, len, "%s/%s", tmp_dir, name);
	fd = open(buf, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
}

static int raw_connect(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(sock >= 0);
	assert_true(strlen(path) < sizeof(addr.sun_path));
	memcpy(addr.sun_path, path, strlen(path) + 1);
	assert_int_equal(connect(sock, (struct sockaddr *)&addr, sizeof(addr)), 0);
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return sock;
}

static void raw_send(int sock, const void *data, size_t len, const int *fds, int nr_fds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nr_fds) {
		struct cmsghdr *cm;

		memset(&cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nr_fds);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nr_fds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nr_fds);
	}
	assert_int_equal(sendmsg(sock, &msg, MSG_NOSIGNAL), (ssize_t)len);
}

/* read until EOF; returns the bytes read before it (the server hung up) or -1 on timeout */
static ssize_t raw_read_to_eof(int sock, void *buf, size_t len)
{
	size_t got = 0;

	for (;;) {
		char junk[256];
		ssize_t ret = recv(sock, got < len ? (char *)buf + got : junk,
		                   got < len ? len - got : sizeof(junk), 0);

		if (ret < 0)
			return errno == ECONNRESET ? (ssize_t)got : -1;
		if (ret == 0)
			return got;
		got += ret;
	}
}

static struct control_hdr make_hdr(uint16_t cmd, uint32_t len)
{
	struct control_hdr hdr = {
		.magic = CONTROL_MAGIC,
		.version = CONTROL_VERSION,
		.cmd = cmd,
		.len = len,
	};
	return hdr;
}

static void ping_ok(void)
{
	struct ctl_conn *conn = open_conn();
	struct collect c = { 0 };
	struct control_ping_resp pr;

	assert_int_equal(ctl_call(conn, CONTROL_CMD_PING, NULL, 0, -1, collect_cb, &c), 0);
	assert_true(c.len >= sizeof(pr));
	memcpy(&pr, c.buf, sizeof(pr));
	assert_int_equal(pr.pid, getpid());
	assert_int_equal(c.len, sizeof(pr) + pr.mountpoint_len);
	assert_memory_equal(c.buf + sizeof(pr), "/mnt/test", 9);
	free(c.buf);
	ctl_close(conn);
}

/* ------------------------------------------------------------------------------------------ */
/* tests */

static void test_round_trip(void **state)
{
	static const size_t sizes[] = { 0, 1, 7, 4096, 100000, CONTROL_MAX_PAYLOAD };
	struct ctl_conn *conn = open_conn();

	ping_ok();

	/* several calls on one connection */
	for (size_t s = 0; s < ARRAY_SIZE(sizes); s++) {
		struct collect c = { 0 };
		char *req = malloc(sizes[s] + 1);

		assert_non_null(req);
		for (size_t i = 0; i < sizes[s]; i++)
			req[i] = (char)(i ^ s);
		assert_int_equal(ctl_call(conn, T_ECHO, req, sizes[s], -1, collect_cb, &c), 0);
		assert_int_equal(c.len, sizes[s]);
		if (sizes[s])
			assert_memory_equal(c.buf, req, sizes[s]);
		free(c.buf);
		free(req);
	}

	/* a handler's error return is the status; the connection stays usable */
	assert_int_equal(ctl_call(conn, T_FAIL, NULL, 0, -1, NULL, NULL), -ENOSPC);
	assert_int_equal(ctl_call(conn, T_DOUBLE_REPLY, NULL, 0, -1, NULL, NULL), -ENOENT);
	assert_int_equal(ctl_call(conn, T_ECHO, "hi", 2, -1, NULL, NULL), 0);

	/* commands nobody handles */
	assert_int_equal(ctl_call(conn, CONTROL_CMD_STATFS, NULL, 0, -1, NULL, NULL), -EOPNOTSUPP);
	assert_int_equal(ctl_call(conn, CONTROL_CMD_NR - 1, NULL, 0, -1, NULL, NULL), -EOPNOTSUPP);
	assert_int_equal(ctl_call(conn, CONTROL_CMD_NR, NULL, 0, -1, NULL, NULL), -EINVAL);
	assert_int_equal(ctl_call(conn, T_ECHO, NULL, CONTROL_MAX_PAYLOAD + 1, -1, NULL, NULL),
	                 -EINVAL);

	/* fixed-size replies must have exactly the size */
	{
		struct creds_resp cr;
		char small[4];

		assert_int_equal(ctl_call_fixed(conn, T_CREDS, NULL, 0, -1, &cr, sizeof(cr)), 0);
		assert_int_equal(cr.pid, getpid());
		assert_int_equal(cr.uid, geteuid());
		assert_int_equal(ctl_call_fixed(conn, T_CREDS, NULL, 0, -1, small, sizeof(small)),
		                 -EPROTO);
	}
	ctl_close(conn);
}

static void test_streaming(void **state)
{
	struct ctl_conn *conn = open_conn();
	struct stream_req sr = { .nr_chunks = 40, .chunk_len = 5000 };
	struct collect c = { 0 };

	assert_int_equal(ctl_call(conn, T_STREAM, &sr, sizeof(sr), -1, collect_cb, &c), 0);
	assert_int_equal(c.chunks, 41);
	assert_int_equal(c.len, 40 * 5000 + 3);
	for (uint32_t i = 0; i < 40; i++)
		assert_int_equal(c.buf[i * 5000 + 4999], 'a' + (i % 26));
	assert_memory_equal(c.buf + 40 * 5000, "end", 3);
	free(c.buf);

	/* a reply longer than the payload limit is split into limit-sized chunks */
	memset(&c, 0, sizeof(c));
	assert_int_equal(ctl_call(conn, T_BIG, NULL, 0, -1, collect_cb, &c), 0);
	assert_int_equal(c.len, BIG_LEN);
	assert_int_equal(c.chunks, 3);
	for (size_t i = 0; i < BIG_LEN; i += 4093)
		assert_int_equal(c.buf[i], (char)(i * 31 + 7));
	free(c.buf);

	/* replies without a callback are read and dropped */
	sr.nr_chunks = 3;
	assert_int_equal(ctl_call(conn, T_STREAM, &sr, sizeof(sr), -1, NULL, NULL), 0);
	ctl_close(conn);
}

static int fail_cb(const void *data, size_t len, void *arg)
{
	return -ECANCELED;
}

static void test_callback_error(void **state)
{
	struct ctl_conn *conn = open_conn();
	struct stream_req sr = { .nr_chunks = 5, .chunk_len = 100 };

	assert_int_equal(ctl_call(conn, T_STREAM, &sr, sizeof(sr), -1, fail_cb, NULL), -ECANCELED);
	/* still in step: the next call works */
	assert_int_equal(ctl_call(conn, T_ECHO, "x", 1, -1, NULL, NULL), 0);
	ctl_close(conn);
}

static void check_fd_mode(struct ctl_conn *conn, const char *path, int flags)
{
	struct fdinfo_resp fr;
	struct stat st;
	int fd;

	fd = open(path, flags | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);

	assert_int_equal(ctl_call_fixed(conn, T_FDINFO, NULL, 0, fd, &fr, sizeof(fr)), 0);
	assert_int_equal(fr.ino, st.st_ino);
	assert_int_equal(fr.dev, st.st_dev);
	assert_int_equal(fr.flags & O_ACCMODE, flags & O_ACCMODE);
	assert_int_equal(fr.flags & O_APPEND, flags & O_APPEND);

	/* the server's copy is closed after the handler */
	wait_fds_to(path, 1);
	close(fd);
}

static void test_fd_passing(void **state)
{
	struct ctl_conn *conn = open_conn();
	char path[PATH_MAX + 16];
	struct fdinfo_resp fr;
	struct stat st;
	int fd;

	tmp_file(path, sizeof(path), "file");

	check_fd_mode(conn, path, O_RDONLY);
	check_fd_mode(conn, path, O_WRONLY);
	check_fd_mode(conn, path, O_RDWR | O_APPEND);

	/* needs_fd without one */
	assert_int_equal(ctl_call(conn, T_FDINFO, NULL, 0, -1, NULL, NULL), -EBADF);

	/* with the mount's device set, descriptors of other filesystems are refused */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	control_server_set_mount_dev(srv, makedev(major(st.st_dev) + 1, 12345));
	assert_int_equal(ctl_call(conn, T_FDINFO, NULL, 0, fd, NULL, NULL), -EXDEV);
	control_server_set_mount_dev(srv, st.st_dev);
	assert_int_equal(ctl_call_fixed(conn, T_FDINFO, NULL, 0, fd, &fr, sizeof(fr)), 0);
	assert_int_equal(fr.ino, st.st_ino);
	control_server_set_mount_dev(srv, 0);

	/* a descriptor sent with a command that does not use it is closed too */
	assert_int_equal(ctl_call(conn, T_ECHO, "a", 1, fd, NULL, NULL), 0);
	wait_fds_to(path, 1);
	close(fd);
	ctl_close(conn);
}

static void test_extra_fds_closed(void **state)
{
	struct control_hdr hdr = make_hdr(T_FDINFO, 0);
	char path[PATH_MAX + 16];
	struct control_hdr rhdr;
	struct fdinfo_resp fr;
	int fds[3];
	int sock;

	tmp_file(path, sizeof(path), "extra");
	for (int i = 0; i < 3; i++) {
		fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		assert_true(fds[i] >= 0);
	}

	/* three descriptors with one request: the first is used, the others closed */
	sock = raw_connect(sock_path);
	raw_send(sock, &hdr, sizeof(hdr), fds, 3);
	assert_int_equal(recv(sock, &rhdr, sizeof(rhdr), MSG_WAITALL), sizeof(rhdr));
	assert_int_equal(rhdr.status, 0);
	assert_int_equal(rhdr.len, sizeof(fr));
	assert_int_equal(recv(sock, &fr, sizeof(fr), MSG_WAITALL), sizeof(fr));
	wait_fds_to(path, 3);

	for (int i = 0; i < 3; i++)
		close(fds[i]);
	close(sock);
}

/* the child's half of test_privileged: exit status 0 if everything was as expected */
static int unprivileged_child(void)
{
	struct ctl_conn *conn = NULL;
	struct creds_resp cr;
	char err[512];

	if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
		return 10;
	if (ctl_open_socket(sock_path, &conn, err, sizeof(err)) < 0)
		return 11;
	if (ctl_call(conn, T_PRIV, NULL, 0, -1, NULL, NULL) != -EPERM)
		return 12;
	if (ctl_call_fixed(conn, T_CREDS, NULL, 0, -1, &cr, sizeof(cr)) != 0)
		return 13;
	if (cr.uid != 65534 || cr.gid != 65534 || cr.privileged || cr.pid != getpid())
		return 14;
	/* the refusal did not cost the connection */
	if (ctl_call(conn, T_ECHO, "x", 1, -1, NULL, NULL) != 0)
		return 15;
	ctl_close(conn);
	return 0;
}

static void test_privileged(void **state)
{
	struct ctl_conn *conn = open_conn();
	struct creds_resp cr;
	int status;
	pid_t pid;

	if (geteuid() != 0) {
		/* we are the unprivileged caller */
		assert_int_equal(ctl_call(conn, T_PRIV, NULL, 0, -1, NULL, NULL), -EPERM);
		ctl_close(conn);
		skip();
	}

	assert_int_equal(ctl_call(conn, T_PRIV, NULL, 0, -1, NULL, NULL), 0);
	assert_int_equal(ctl_call_fixed(conn, T_CREDS, NULL, 0, -1, &cr, sizeof(cr)), 0);
	assert_int_equal(cr.uid, 0);
	assert_true(cr.privileged);
	ctl_close(conn);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(unprivileged_child());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* send raw bytes (and maybe a descriptor), expect the server to hang up without a reply */
static void expect_hangup(const void *data, size_t len, bool shut_wr, int fd)
{
	char buf[64];
	int sock = raw_connect(sock_path);

	raw_send(sock, data, len, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
	if (shut_wr)
		shutdown(sock, SHUT_WR);
	assert_int_equal(raw_read_to_eof(sock, buf, sizeof(buf)), 0);
	close(sock);
}

static void test_malformed(void **state)
{
	struct ctl_conn *good = open_conn();
	struct control_hdr hdr;
	char msg[sizeof(hdr) + 10];
	char path[PATH_MAX + 16];
	struct control_hdr rhdr;
	int sock;
	int fd;

	/* bad magic */
	hdr = make_hdr(T_ECHO, 0);
	hdr.magic = 0xdeadbeef;
	expect_hangup(&hdr, sizeof(hdr), false, -1);

	/* a length over the limit */
	hdr = make_hdr(T_ECHO, CONTROL_MAX_PAYLOAD + 1);
	expect_hangup(&hdr, sizeof(hdr), false, -1);
	hdr = make_hdr(T_ECHO, UINT32_MAX);
	expect_hangup(&hdr, sizeof(hdr), false, -1);

	/* unknown flags */
	hdr = make_hdr(T_ECHO, 0);
	hdr.flags = 0x80;
	expect_hangup(&hdr, sizeof(hdr), false, -1);

	/* a truncated header, and a truncated payload carrying a descriptor */
	hdr = make_hdr(T_ECHO, 0);
	expect_hangup(&hdr, 5, true, -1);
	tmp_file(path, sizeof(path), "truncated");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	hdr = make_hdr(T_ECHO, 100);
	memcpy(msg, &hdr, sizeof(hdr));
	memset(msg + sizeof(hdr), 'x', 10);
	expect_hangup(msg, sizeof(msg), true, fd);
	wait_fds_to(path, 1);
	close(fd);

	/* connect and hang up at once */
	close(raw_connect(sock_path));

	/* another protocol version gets a reason, then the hangup */
	hdr = make_hdr(T_ECHO, 0);
	hdr.version = CONTROL_VERSION + 1;
	sock = raw_connect(sock_path);
	raw_send(sock, &hdr, sizeof(hdr), NULL, 0);
	assert_int_equal(recv(sock, &rhdr, sizeof(rhdr), MSG_WAITALL), sizeof(rhdr));
	assert_int_equal(rhdr.status, -EPROTONOSUPPORT);
	assert_int_equal(raw_read_to_eof(sock, &rhdr, sizeof(rhdr)), 0);
	close(sock);

	/* through it all, the server kept serving old and new connections */
	assert_int_equal(ctl_call(good, T_ECHO, "still", 5, -1, NULL, NULL), 0);
	ctl_close(good);
	ping_ok();
}

struct client_args {
	int id;
	int errors;
};

static void *client_thread(void *arg)
{
	struct client_args *ca = arg;
	struct ctl_conn *conn = NULL;
	char err[512];
	char req[3000];

	if (ctl_open_socket(sock_path, &conn, err, sizeof(err)) < 0) {
		ca->errors++;
		return NULL;
	}
	for (int i = 0; i < 50; i++) {
		struct collect c = { 0 };
		size_t len = (size_t)((ca->id * 131 + i * 17) % (int)sizeof(req));

		for (size_t j = 0; j < len; j++)
			req[j] = (char)(ca->id + i + j);
		if (ctl_call(conn, T_ECHO, req, len, -1, collect_cb, &c) != 0 || c.len != len ||
		    (len && memcmp(c.buf, req, len) != 0))
			ca->errors++;
		free(c.buf);
	}
	/* some of us meet inside one handler at the same time */
	if (ca->id < BARRIER_NR && ctl_call(conn, T_BARRIER, NULL, 0, -1, NULL, NULL) != 0)
		ca->errors++;
	ctl_close(conn);
	return NULL;
}

static void test_concurrent_clients(void **state)
{
	enum { NR = 32 };
	struct client_args args[NR];
	pthread_t threads[NR];

	barrier_inside = 0;
	for (int i = 0; i < NR; i++) {
		args[i] = (struct client_args){ .id = i };
		assert_int_equal(pthread_create(&threads[i], NULL, client_thread, &args[i]), 0);
	}
	for (int i = 0; i < NR; i++) {
		pthread_join(threads[i], NULL);
		assert_int_equal(args[i].errors, 0);
	}
	assert_int_equal(barrier_inside, BARRIER_NR);
}

static void test_socket_file_rules(void **state)
{
	struct control_handler none[CONTROL_CMD_NR] = { 0 };
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct control_server *s2 = NULL;
	struct ctl_conn *idle;
	char path[PATH_MAX + 32];
	struct stat st;
	int sock;
	int fd;

	/* a live daemon's socket is not taken over */
	assert_int_equal(control_server_start(sock_path, none, NULL, &s2), -EADDRINUSE);
	assert_null(s2);
	ping_ok();

	/* a stale socket (bound, never unlinked, nobody listening) is replaced */
	snprintf(path, sizeof(path), "%s/run/stale.sock", tmp_dir);
	assert_true(strlen(path) < sizeof(addr.sun_path));
	memcpy(addr.sun_path, path, strlen(path) + 1);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(sock, (struct sockaddr *)&addr, sizeof(addr)), 0);
	close(sock);
	assert_int_equal(control_server_start(path, handlers, NULL, &s2), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0666);

	/* stop with a client connected: it returns, the client sees the hangup */
	idle = NULL;
	{
		char err[256];

		assert_int_equal(ctl_open_socket(path, &idle, err, sizeof(err)), 0);
		assert_int_equal(ctl_call(idle, T_ECHO, "x", 1, -1, NULL, NULL), 0);
	}
	control_server_stop(s2);
	assert_int_equal(ctl_call(idle, T_ECHO, "x", 1, -1, NULL, NULL), -ECONNRESET);
	ctl_close(idle);
	assert_int_equal(stat(path, &st), -1);

	/* a file that is not a socket is left alone */
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(control_server_start(path, handlers, NULL, &s2), -EEXIST);
	unlink(path);

	/* too long for sun_path */
	{
		char longp[200];

		memset(longp, 'x', sizeof(longp) - 1);
		longp[0] = '/';
		longp[sizeof(longp) - 1] = '\0';
		assert_int_equal(control_server_start(longp, handlers, NULL, &s2), -ENAMETOOLONG);
	}
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_mountinfo(void **state)
{
	char path[PATH_MAX + 32];
	struct mountinfo_ent *ent = malloc(sizeof(*ent));

	assert_non_null(ent);
	snprintf(path, sizeof(path), "%s/mountinfo", tmp_dir);
	write_file(path,
	           "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	           "40 22 0:41 / /mnt/a\\040b rw,nosuid shared:7 master:2 - fuse.other src rw\n"
	           "41 22 0:41 / /mnt/bind rw - fuse.scoutfs /dev/data rw\n"
	           "garbage line\n"
	           "42 22 0:50 / /mnt/x rw - fuse.scoutfs one rw\n"
	           "43 22 0:51 / /mnt/x rw - fuse.scoutfs two rw\n"
	           "44 22 0:52 /sub /mnt/tab\\011nl\\012bs\\134 rw - tmpfs tmpfs rw\n");

	/* the line with the wanted type wins over an earlier one with the same device */
	assert_int_equal(mountinfo_find_dev(path, 0, 41, "fuse.scoutfs", ent), 0);
	assert_string_equal(ent->mountpoint, "/mnt/bind");
	assert_string_equal(ent->source, "/dev/data");
	/* otherwise the first line with the device, so callers can say what it is */
	assert_int_equal(mountinfo_find_dev(path, 8, 1, "fuse.scoutfs", ent), 0);
	assert_string_equal(ent->fstype, "ext4");
	assert_int_equal(mountinfo_find_dev(path, 0, 41, NULL, ent), 0);
	assert_string_equal(ent->mountpoint, "/mnt/a b");
	assert_int_equal(mountinfo_find_dev(path, 0, 52, NULL, ent), 0);
	assert_string_equal(ent->mountpoint, "/mnt/tab\tnl\nbs\\");
	assert_int_equal(mountinfo_find_dev(path, 9, 9, NULL, ent), -ENOENT);

	/* the daemon's view: its socket from its mount point */
	{
		char sp[PATH_MAX];
		dev_t dev;

		setenv(CONTROL_RUN_DIR_ENV, "/run/x", 1);
		assert_int_equal(control_mount_sock_path(path, "/mnt/bind", sp, sizeof(sp), &dev),
		                 0);
		unsetenv(CONTROL_RUN_DIR_ENV);
		assert_string_equal(sp, "/run/x/mnt-0:41.sock");
		assert_true(dev == makedev(0, 41));
		assert_int_equal(control_mount_sock_path(path, "/mnt/a b", sp, sizeof(sp), &dev),
		                 -ENOENT);
	}

	/* stacked mounts: the topmost */
	assert_int_equal(mountinfo_find_mountpoint(path, "/mnt/x", "fuse.scoutfs", ent), 0);
	assert_int_equal(ent->min, 51);
	assert_string_equal(ent->source, "two");
	assert_int_equal(mountinfo_find_mountpoint(path, "/mnt/a b", "fuse.scoutfs", ent), -ENOENT);

	assert_int_equal(mountinfo_find_dev("/nonexistent/mountinfo", 0, 1, NULL, ent), -ENOENT);

	/* the real one has our root */
	assert_int_equal(mountinfo_find_mountpoint(NULL, "/", NULL, ent), 0);
	free(ent);
}

static void test_open_path(void **state)
{
	char mi[PATH_MAX + 32];
	char run[PATH_MAX + 32];
	char line[PATH_MAX + 128];
	char sp[PATH_MAX + 64];
	struct control_server *s2 = NULL;
	struct ctl_conn *conn = NULL;
	char err[PATH_MAX + 256];
	struct stat st;

	/* a directory on an ordinary filesystem */
	assert_int_equal(ctl_open_path(tmp_dir, &conn, err, sizeof(err)), -ENOTTY);
	assert_null(conn);
	assert_non_null(strstr(err, "is not in a scoutfs filesystem"));
	assert_non_null(strstr(err, tmp_dir));

	assert_int_equal(ctl_open_path("/nonexistent/x", &conn, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/x"));

	/* pretend tmp_dir is a scoutfs mount, with no daemon yet */
	assert_int_equal(stat(tmp_dir, &st), 0);
	snprintf(mi, sizeof(mi), "%s/fake-mountinfo", tmp_dir);
	snprintf(line, sizeof(line), "50 1 %u:%u / %s rw - fuse.scoutfs /dev/fake rw\n",
	         major(st.st_dev), minor(st.st_dev), tmp_dir);
	write_file(mi, line);
	snprintf(run, sizeof(run), "%s/fakerun", tmp_dir);
	setenv(CTL_MOUNTINFO_ENV, mi, 1);
	setenv(CONTROL_RUN_DIR_ENV, run, 1);

	assert_int_equal(ctl_open_path(tmp_dir, &conn, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "not answering"));

	/* now with a daemon on the socket the rule names */
	assert_true(control_sock_path(sp, sizeof(sp), major(st.st_dev), minor(st.st_dev)) <
	            (int)sizeof(sp));
	assert_int_equal(strncmp(sp, run, strlen(run)), 0);
	assert_int_equal(control_server_start(sp, handlers, NULL, &s2), 0);
	assert_int_equal(ctl_open_path(tmp_dir, &conn, err, sizeof(err)), 0);
	assert_string_equal(ctl_mountpoint(conn), tmp_dir);
	assert_int_equal(ctl_call(conn, T_ECHO, "x", 1, -1, NULL, NULL), 0);
	ctl_close(conn);

	{
		int fd = open(tmp_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		assert_true(fd >= 0);
		assert_int_equal(ctl_open_fd(fd, "dir", &conn, err, sizeof(err)), 0);
		ctl_close(conn);
		close(fd);
	}

	control_server_stop(s2);
	unsetenv(CTL_MOUNTINFO_ENV);
	unsetenv(CONTROL_RUN_DIR_ENV);
}

static int setup(void **state)
{
	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/test_control.XXXXXX");
	if (!mkdtemp(tmp_dir))
		return -1;
	/* the unprivileged child must reach the socket */
	chmod(tmp_dir, 0755);
	/* the run directory does not exist yet: the server makes it */
	snprintf(sock_path, sizeof(sock_path), "%s/run/mnt-0:99.sock", tmp_dir);
	return control_server_start(sock_path, handlers, NULL, &srv) ? -1 : 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];
	struct stat st;

	control_server_stop(srv);
	/* stop removed the socket */
	if (stat(sock_path, &st) == 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),        cmocka_unit_test(test_streaming),
		cmocka_unit_test(test_callback_error),    cmocka_unit_test(test_fd_passing),
		cmocka_unit_test(test_extra_fds_closed),  cmocka_unit_test(test_privileged),
		cmocka_unit_test(test_malformed),         cmocka_unit_test(test_concurrent_clients),
		cmocka_unit_test(test_socket_file_rules), cmocka_unit_test(test_mountinfo),
		cmocka_unit_test(test_open_path),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
