/*
 * control.c: the per-mount control socket, daemon side.
 *
 * The online `scoutfs` commands reach a mount through its daemon's Unix socket instead of
 * the original's ioctls (control_proto.h describes the messages and where the socket lives).
 * This file is the transport only: it accepts connections, frames messages, receives the
 * descriptor a request may carry, decides who may call privileged commands, and calls the
 * handler the daemon registered for each command.
 *
 * Threads.  One thread accepts connections; each connection gets a thread of its own that
 * reads a request, runs its handler to completion, and reads the next.  CLI connections are
 * few and short-lived, so a thread each keeps handlers simple (they may block on cluster locks
 * or the network) while letting different clients run concurrently.  The number of
 * connections is capped so a misbehaving local program cannot create threads without bound.
 *
 * Hostile input.  Any local user can connect (the socket is 0666), so everything read is
 * checked before use: a bad magic, an oversized length or a connection that ends in the
 * middle of a message closes that connection only; descriptors beyond the one a request may
 * carry are closed at once, and the one it may carry is closed after its handler returns, so
 * nothing a client sends can leak descriptors or crash the daemon.
 *
 * Credentials.  SO_PEERCRED gives the pid and effective ids of the process that connected;
 * its capabilities come from /proc/PID/status, and a pidfd (SO_PEERPIDFD, kernels 6.5+)
 * confirms that pid still named the same process when we read it.  They are captured once,
 * at accept, so a descriptor handed to another process keeps the rights of the process that
 * connected, as an open file keeps its opener's.
 *
 * Stopping.  control_server_stop() wakes the accept thread through an eventfd, shuts down
 * every connection's socket so blocked reads return, and joins every thread.  A connection
 * thread closes its socket when it ends (under the server's lock, so stop never shuts down a
 * reused descriptor) but never frees itself: the accept thread joins and frees finished
 * connections, and stop the rest.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "control/control.h"
#include "control/mountinfo.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

/* the asm-generic value; older headers lack it and older kernels refuse it (ENOPROTOOPT) */
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* at most this many clients at once; more are disconnected at accept */
#define CONTROL_MAX_CONNS 256
/* descriptors one recvmsg can take; extras beyond the first per request are closed */
#define CONTROL_MAX_RX_FDS 8

COUNTER_DEFINE(control_accept);
COUNTER_DEFINE(control_accept_error);
COUNTER_DEFINE(control_conn_limit);
COUNTER_DEFINE(control_request);
COUNTER_DEFINE(control_bad_message);
COUNTER_DEFINE(control_bad_version);
COUNTER_DEFINE(control_extra_fd);
COUNTER_DEFINE(control_unsupported);
COUNTER_DEFINE(control_eperm);
COUNTER_DEFINE(control_send_error);

struct control_conn {
	struct control_server *srv;
	struct control_conn *next;
	pthread_t thread;
	int sock;
	bool done;   /* the thread has finished (under srv->lock) */
	bool broken; /* a send failed: end the connection after this call */
	struct control_creds creds;
	int rx_fd; /* descriptor received with the current request, or -1 */
	void *buf; /* request payload buffer */
	size_t buf_cap;
};

struct control_server {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int listen_sock;
	int stop_efd;
	pthread_t accept_thread;
	const struct control_handler *handlers;
	void *arg;
	_Atomic dev_t mount_dev;

	/* our user namespace, to compare peers' with */
	bool userns_known;
	dev_t userns_dev;
	ino_t userns_ino;

	pthread_mutex_t lock;
	struct control_conn *conns;
	unsigned int nr_conns;
};

/* ------------------------------------------------------------------------------------------ */
/* credentials */

static uint64_t read_cap_eff(pid_t pid, bool *ok)
{
	char path[64];
	char line[256];
	unsigned long long caps = 0;
	FILE *f;

	*ok = false;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "CapEff: %llx", &caps) == 1) {
			*ok = true;
			break;
		}
	}
	fclose(f);
	return *ok ? caps : 0;
}

static void get_creds(struct control_server *srv, int sock, struct control_creds *cr)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);
	char path[64];
	struct stat st;
	int pidfd = -1;
	bool ok;

	memset(cr, 0, sizeof(*cr));
	cr->pid = -1;
	cr->uid = (uid_t)-1;
	cr->gid = (gid_t)-1;

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0 || len != sizeof(uc)) {
		log_warn("control: no peer credentials: %s", strerror(errno));
		return;
	}
	cr->pid = uc.pid;
	cr->uid = uc.uid;
	cr->gid = uc.gid;

	len = sizeof(pidfd);
	if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0)
		pidfd = -1;

	cr->cap_eff = read_cap_eff(uc.pid, &ok);

	snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)uc.pid);
	if (!srv->userns_known)
		cr->same_userns = true;
	else if (stat(path, &st) == 0)
		cr->same_userns = st.st_dev == srv->userns_dev && st.st_ino == srv->userns_ino;

	/* the pid may have exited and been reused while we read /proc: trust nothing then */
	if (pidfd >= 0) {
		if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0)
			ok = false;
		close(pidfd);
	}
	if (!ok) {
		cr->cap_eff = 0;
		cr->same_userns = false;
	}

	cr->privileged = cr->same_userns && (cr->cap_eff & (1ULL << CAP_SYS_ADMIN));
}

bool control_call_capable(const struct control_call *call, int cap)
{
	return cap >= 0 && cap < 64 && call->creds->same_userns &&
	       (call->creds->cap_eff & (1ULL << cap));
}

/* ------------------------------------------------------------------------------------------ */
/* receiving */

/* keep the first descriptor of a request, close any others */
static void take_fds(struct control_conn *conn, struct msghdr *msg)
{
	struct cmsghdr *cm;

	for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		size_t nr;
		int *fds;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		nr = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		fds = (int *)CMSG_DATA(cm);
		for (size_t i = 0; i < nr; i++) {
			int fd;

			memcpy(&fd, &fds[i], sizeof(fd));
			if (conn->rx_fd < 0) {
				conn->rx_fd = fd;
			} else {
				counter_inc(control_extra_fd);
				close(fd);
			}
		}
	}
}

/*
 * Read exactly len bytes, collecting descriptors.  Returns 0, -ENODATA if the peer closed
 * before the first byte, -EPROTO if it closed in the middle, or another -errno.
 */
static int recv_exact(struct control_conn *conn, void *buf, size_t len, bool at_start)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * CONTROL_MAX_RX_FDS)];
		struct cmsghdr align;
	} cbuf;
	size_t got = 0;

	while (got < len) {
		struct iovec iov = { .iov_base = (char *)buf + got, .iov_len = len - got };
		struct msghdr msg = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = cbuf.buf,
			.msg_controllen = sizeof(cbuf.buf),
		};
		ssize_t ret;

		ret = recvmsg(conn->sock, &msg, MSG_CMSG_CLOEXEC);
		if (ret < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		take_fds(conn, &msg);
		if (ret == 0)
			return (at_start && got == 0) ? -ENODATA : -EPROTO;
		got += ret;
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* sending */

static int send_msg(struct control_conn *conn, uint16_t cmd, uint32_t flags, int32_t status,
                    const void *data, size_t len)
{
	struct control_hdr hdr = {
		.magic = CONTROL_MAGIC,
		.version = CONTROL_VERSION,
		.cmd = cmd,
		.flags = flags,
		.len = (uint32_t)len,
		.status = status,
	};
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)data, .iov_len = len },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (conn->broken)
		return -EPIPE;

	while (msg.msg_iovlen > 0) {
		ssize_t ret = sendmsg(conn->sock, &msg, MSG_NOSIGNAL);

		if (ret < 0) {
			if (errno == EINTR)
				continue;
			counter_inc(control_send_error);
			conn->broken = true;
			return -errno;
		}
		/* step over what was sent */
		while (msg.msg_iovlen > 0 && (size_t)ret >= msg.msg_iov->iov_len) {
			ret -= msg.msg_iov->iov_len;
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
		if (msg.msg_iovlen > 0) {
			msg.msg_iov->iov_base = (char *)msg.msg_iov->iov_base + ret;
			msg.msg_iov->iov_len -= ret;
		}
	}
	return 0;
}

/* send data as MORE chunks of at most the payload limit, keeping the last tail_max bytes */
static int send_chunks(struct control_call *call, const void **data, size_t *len, size_t tail_max)
{
	int ret;

	while (*len > tail_max) {
		size_t n = min_t(size_t, *len, CONTROL_MAX_PAYLOAD);

		ret = send_msg(call->conn, call->cmd, CONTROL_F_MORE, 0, *data, n);
		if (ret < 0)
			return ret;
		*data = (const char *)*data + n;
		*len -= n;
	}
	return 0;
}

int control_reply_more(struct control_call *call, const void *data, size_t len)
{
	if (call->replied)
		return -EINVAL;
	return send_chunks(call, &data, &len, 0);
}

int control_reply(struct control_call *call, int status, const void *data, size_t len)
{
	int ret;

	if (call->replied)
		return -EINVAL;
	call->replied = true;

	/* a status is 0 or -errno; a positive one is a handler bug, not a success */
	if (status > 0) {
		log_warn("control: handler for command %u replied with status %d", call->cmd,
		         status);
		status = -EIO;
	}

	ret = send_chunks(call, &data, &len, CONTROL_MAX_PAYLOAD);
	if (ret == 0)
		ret = send_msg(call->conn, call->cmd, 0, status, data, len);
	return ret;
}

/* ------------------------------------------------------------------------------------------ */
/* one connection */

/* which handler runs, or the status the call gets without one */
static int check_call(struct control_server *srv, struct control_call *call,
                      const struct control_handler **ret_h)
{
	const struct control_handler *h = NULL;
	dev_t dev = atomic_load(&srv->mount_dev);
	struct stat st;

	if (call->cmd < CONTROL_CMD_NR)
		h = &srv->handlers[call->cmd];
	if (!h || !h->fn) {
		counter_inc(control_unsupported);
		return -EOPNOTSUPP;
	}
	if (h->privileged && !call->creds->privileged) {
		counter_inc(control_eperm);
		return -EPERM;
	}
	if (h->needs_fd) {
		if (call->fd < 0)
			return -EBADF;
		if (dev != 0) {
			if (fstat(call->fd, &st) < 0)
				return -errno;
			if (st.st_dev != dev)
				return -EXDEV;
		}
	}
	*ret_h = h;
	return 0;
}

static void run_call(struct control_conn *conn, const struct control_hdr *hdr)
{
	struct control_server *srv = conn->srv;
	const struct control_handler *h = NULL;
	struct control_call call = {
		.cmd = hdr->cmd,
		.req = hdr->len ? conn->buf : NULL,
		.req_len = hdr->len,
		.fd = conn->rx_fd,
		.creds = &conn->creds,
		.conn = conn,
	};
	int ret;

	counter_inc(control_request);

	ret = check_call(srv, &call, &h);
	if (ret == 0)
		ret = h->fn(&call, srv->arg);
	if (!call.replied)
		control_reply(&call, ret < 0 ? ret : 0, NULL, 0);
}

/* read one request into conn; 0, or -errno to end the connection */
static int read_request(struct control_conn *conn, struct control_hdr *hdr)
{
	void *buf;
	int ret;

	ret = recv_exact(conn, hdr, sizeof(*hdr), true);
	if (ret < 0)
		goto out;

	if (hdr->magic != CONTROL_MAGIC || hdr->flags != 0 || hdr->len > CONTROL_MAX_PAYLOAD) {
		counter_inc(control_bad_message);
		log_warn("control: bad request header from pid %d (magic 0x%08x flags 0x%x len %u)",
		         (int)conn->creds.pid, hdr->magic, hdr->flags, hdr->len);
		ret = -EPROTO;
		goto out;
	}
	if (hdr->version != CONTROL_VERSION) {
		/* the payload may mean something else: say why, then hang up */
		counter_inc(control_bad_version);
		send_msg(conn, hdr->cmd, 0, -EPROTONOSUPPORT, NULL, 0);
		ret = -EPROTONOSUPPORT;
		goto out;
	}

	if (hdr->len > conn->buf_cap) {
		buf = realloc(conn->buf, hdr->len);
		if (!buf) {
			ret = -ENOMEM;
			goto out;
		}
		conn->buf = buf;
		conn->buf_cap = hdr->len;
	}
	ret = recv_exact(conn, conn->buf, hdr->len, false);
	if (ret < 0) {
		counter_inc(control_bad_message);
		log_warn("control: truncated request from pid %d", (int)conn->creds.pid);
	}
out:
	return ret;
}

static void *conn_thread(void *arg)
{
	struct control_conn *conn = arg;
	struct control_server *srv = conn->srv;
	struct control_hdr hdr;

	thread_set_name("scoutfs-ctl");

	while (!conn->broken) {
		if (read_request(conn, &hdr) < 0)
			break;
		run_call(conn, &hdr);
		if (conn->rx_fd >= 0) {
			close(conn->rx_fd);
			conn->rx_fd = -1;
		}
	}
	if (conn->rx_fd >= 0) {
		close(conn->rx_fd);
		conn->rx_fd = -1;
	}

	/* closed under the lock: stop shuts down the sockets of the others under it too */
	pthread_mutex_lock(&srv->lock);
	close(conn->sock);
	conn->sock = -1;
	conn->done = true;
	pthread_mutex_unlock(&srv->lock);
	return NULL;
}

static void free_conn(struct control_conn *conn)
{
	if (conn->sock >= 0)
		close(conn->sock);
	free(conn->buf);
	free(conn);
}

/* ------------------------------------------------------------------------------------------ */
/* accepting */

/* join and free the connections whose threads have finished */
static void reap_conns(struct control_server *srv)
{
	struct control_conn *done = NULL;
	struct control_conn **pos;
	struct control_conn *conn;

	pthread_mutex_lock(&srv->lock);
	for (pos = &srv->conns; (conn = *pos);) {
		if (conn->done) {
			*pos = conn->next;
			conn->next = done;
			done = conn;
			srv->nr_conns--;
		} else {
			pos = &conn->next;
		}
	}
	pthread_mutex_unlock(&srv->lock);

	while ((conn = done)) {
		done = conn->next;
		pthread_join(conn->thread, NULL);
		free_conn(conn);
	}
}

static void add_conn(struct control_server *srv, int sock)
{
	struct control_conn *conn;
	int ret;

	reap_conns(srv);

	pthread_mutex_lock(&srv->lock);
	if (srv->nr_conns >= CONTROL_MAX_CONNS) {
		pthread_mutex_unlock(&srv->lock);
		counter_inc(control_conn_limit);
		log_warn("control: %u clients connected, refusing another", CONTROL_MAX_CONNS);
		close(sock);
		return;
	}
	srv->nr_conns++;
	pthread_mutex_unlock(&srv->lock);

	conn = calloc(1, sizeof(*conn));
	if (!conn) {
		ret = ENOMEM;
		goto fail;
	}
	conn->srv = srv;
	conn->sock = sock;
	conn->rx_fd = -1;
	get_creds(srv, sock, &conn->creds);

	/* linked before the thread starts so that stop always finds it */
	pthread_mutex_lock(&srv->lock);
	ret = pthread_create(&conn->thread, NULL, conn_thread, conn);
	if (ret == 0) {
		conn->next = srv->conns;
		srv->conns = conn;
	}
	pthread_mutex_unlock(&srv->lock);
	if (ret == 0) {
		counter_inc(control_accept);
		return;
	}
fail:
	log_warn("control: cannot serve a client: %s", strerror(ret));
	pthread_mutex_lock(&srv->lock);
	srv->nr_conns--;
	pthread_mutex_unlock(&srv->lock);
	free(conn);
	close(sock);
}

static void *accept_thread(void *arg)
{
	struct control_server *srv = arg;
	struct pollfd pfds[2] = {
		{ .fd = srv->listen_sock, .events = POLLIN },
		{ .fd = srv->stop_efd, .events = POLLIN },
	};
	int timeout = -1;

	thread_set_name("scoutfs-ctl-acc");

	for (;;) {
		int sock;

		if (poll(pfds, 2, timeout) < 0 && errno != EINTR) {
			log_err("control: poll: %s", strerror(errno));
			break;
		}
		if (pfds[1].revents)
			break;
		timeout = -1;
		if (!(pfds[0].revents & POLLIN))
			continue;

		sock = accept4(srv->listen_sock, NULL, NULL, SOCK_CLOEXEC);
		if (sock < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
				continue;
			/* out of descriptors or memory: back off instead of spinning */
			counter_inc(control_accept_error);
			log_warn("control: accept: %s", strerror(errno));
			reap_conns(srv);
			timeout = 100;
			continue;
		}
		add_conn(srv, sock);
	}
	return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* starting and stopping */

/* mkdir -p of the directory part of path */
static int make_parent_dirs(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *p;

	snprintf(dir, sizeof(dir), "%s", path);
	p = strrchr(dir, '/');
	if (!p || p == dir)
		return 0;
	*p = '\0';

	for (p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/*
 * Clear the way for our socket: a socket nobody answers on was left by a dead daemon and is
 * removed; one that answers belongs to a live daemon; anything else is not ours to delete.
 */
static int remove_stale(const char *path, const struct sockaddr_un *addr)
{
	struct stat st;
	int sock;
	int ret;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EEXIST;

	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -errno;
	ret = connect(sock, (const struct sockaddr *)addr, sizeof(*addr));
	if (ret == 0) {
		ret = -EADDRINUSE;
	} else if (errno == ECONNREFUSED) {
		log_info("control: replacing stale socket %s", path);
		ret = (unlink(path) < 0 && errno != ENOENT) ? -errno : 0;
	} else {
		ret = -errno;
	}
	close(sock);
	return ret;
}

int control_server_start(const char *sock_path, const struct control_handler *handlers, void *arg,
                         struct control_server **ret_srv)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct control_server *srv = NULL;
	bool bound = false;
	struct stat st;
	int ret;

	*ret_srv = NULL;

	if (strlen(sock_path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, sock_path, strlen(sock_path) + 1);

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	snprintf(srv->path, sizeof(srv->path), "%s", sock_path);
	srv->listen_sock = -1;
	srv->stop_efd = -1;
	srv->handlers = handlers;
	srv->arg = arg;
	pthread_mutex_init(&srv->lock, NULL);

	if (stat("/proc/self/ns/user", &st) == 0) {
		srv->userns_known = true;
		srv->userns_dev = st.st_dev;
		srv->userns_ino = st.st_ino;
	}

	ret = make_parent_dirs(sock_path);
	if (ret < 0)
		goto out;
	ret = remove_stale(sock_path, &addr);
	if (ret < 0)
		goto out;

	srv->listen_sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	srv->stop_efd = eventfd(0, EFD_CLOEXEC);
	if (srv->listen_sock < 0 || srv->stop_efd < 0) {
		ret = -errno;
		goto out;
	}
	if (bind(srv->listen_sock, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		ret = -errno;
		goto out;
	}
	bound = true;
	if (chmod(sock_path, 0666) < 0 || listen(srv->listen_sock, 64) < 0) {
		ret = -errno;
		goto out;
	}

	ret = -pthread_create(&srv->accept_thread, NULL, accept_thread, srv);
out:
	if (ret < 0) {
		log_err("control: cannot listen on %s: %s", sock_path, strerror(-ret));
		if (bound)
			unlink(sock_path);
		if (srv->listen_sock >= 0)
			close(srv->listen_sock);
		if (srv->stop_efd >= 0)
			close(srv->stop_efd);
		pthread_mutex_destroy(&srv->lock);
		free(srv);
		return ret;
	}
	*ret_srv = srv;
	return 0;
}

int control_mount_sock_path(const char *mountinfo, const char *mountpoint, char *buf, size_t len,
                            dev_t *dev)
{
	struct mountinfo_ent *ent;
	int ret;

	ent = malloc(sizeof(*ent));
	if (!ent)
		return -ENOMEM;
	ret = mountinfo_find_mountpoint(mountinfo, mountpoint, CONTROL_FSTYPE, ent);
	if (ret == 0) {
		*dev = makedev(ent->maj, ent->min);
		ret = control_sock_path(buf, len, ent->maj, ent->min);
		ret = (ret < 0 || (size_t)ret >= len ||
		       (size_t)ret >= sizeof(((struct sockaddr_un *)0)->sun_path))
		              ? -ENAMETOOLONG
		              : 0;
	}
	free(ent);
	return ret;
}

void control_server_set_mount_dev(struct control_server *srv, dev_t dev)
{
	atomic_store(&srv->mount_dev, dev);
}

void control_server_stop(struct control_server *srv)
{
	struct control_conn *conn;
	uint64_t one = 1;

	if (!srv)
		return;

	/* no new clients: new connect()s fail once the name is gone */
	unlink(srv->path);
	if (write(srv->stop_efd, &one, sizeof(one)) != sizeof(one))
		log_err("control: cannot wake the accept thread: %s", strerror(errno));
	pthread_join(srv->accept_thread, NULL);

	/* wake every connection blocked in a read; running handlers finish their call */
	pthread_mutex_lock(&srv->lock);
	for (conn = srv->conns; conn; conn = conn->next) {
		if (conn->sock >= 0)
			shutdown(conn->sock, SHUT_RDWR);
	}
	pthread_mutex_unlock(&srv->lock);

	while ((conn = srv->conns)) {
		srv->conns = conn->next;
		pthread_join(conn->thread, NULL);
		free_conn(conn);
	}

	close(srv->listen_sock);
	close(srv->stop_efd);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}
