/*
 * ctl_client.c: connecting to a mount's daemon and making calls.
 *
 * A path is mapped to its mount the way fuse-facts.md section 5 measured: the st_dev of the
 * path is the FUSE connection's anonymous device, and the /proc/self/mountinfo line with
 * that "MAJ:MIN" is the mount (its type must be fuse.scoutfs).  The socket name follows from
 * the device number alone (control_proto.h), so the CLI needs no other state to find it.
 *
 * Calls are strictly one at a time per connection: the request goes out with the
 * descriptor attached to its first bytes, then replies are read until one arrives without
 * CONTROL_F_MORE.  Every reply header is checked before its payload is read, so a confused
 * or hostile daemon yields -EPROTO rather than a huge allocation.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "control/ctl_client.h"
#include "control/mountinfo.h"

struct ctl_conn {
	int sock;
	bool broken;
	void *buf;
	size_t buf_cap;
	char mountpoint[PATH_MAX];
};

static int connect_sock(const char *sock_path, int *ret_sock)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int sock;

	if (strlen(sock_path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, sock_path, strlen(sock_path) + 1);

	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -errno;
	while (connect(sock, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int err = errno;

		if (err == EINTR)
			continue;
		close(sock);
		return -err;
	}
	*ret_sock = sock;
	return 0;
}

static int new_conn(int sock, const char *mountpoint, struct ctl_conn **ret)
{
	struct ctl_conn *conn = calloc(1, sizeof(*conn));

	if (!conn) {
		close(sock);
		return -ENOMEM;
	}
	conn->sock = sock;
	snprintf(conn->mountpoint, sizeof(conn->mountpoint), "%s", mountpoint);
	*ret = conn;
	return 0;
}

int ctl_open_socket(const char *sock_path, struct ctl_conn **ret, char *err, size_t errlen)
{
	int sock;
	int rc;

	*ret = NULL;
	rc = connect_sock(sock_path, &sock);
	if (rc < 0) {
		snprintf(err, errlen, "cannot connect to %s: %s", sock_path, strerror(-rc));
		return rc;
	}
	return new_conn(sock, "", ret);
}

/* connect to the daemon of the mount with device dev; name is what the user called it */
static int open_dev(dev_t dev, const char *name, struct ctl_conn **ret, char *err, size_t errlen)
{
	const char *mountinfo = getenv(CTL_MOUNTINFO_ENV);
	struct mountinfo_ent *ent = NULL;
	char sock_path[PATH_MAX];
	int sock;
	int rc;

	if (!mountinfo || !*mountinfo)
		mountinfo = MOUNTINFO_DEFAULT_PATH;

	ent = malloc(sizeof(*ent));
	if (!ent) {
		rc = -ENOMEM;
		snprintf(err, errlen, "%s", strerror(ENOMEM));
		goto out;
	}

	rc = mountinfo_find_dev(mountinfo, major(dev), minor(dev), CONTROL_FSTYPE, ent);
	if (rc < 0 && rc != -ENOENT) {
		snprintf(err, errlen, "cannot read %s: %s", mountinfo, strerror(-rc));
		goto out;
	}
	if (rc == -ENOENT || strcmp(ent->fstype, CONTROL_FSTYPE) != 0) {
		rc = -ENOTTY;
		snprintf(err, errlen, "%s is not in a scoutfs filesystem", name);
		goto out;
	}

	rc = control_sock_path(sock_path, sizeof(sock_path), major(dev), minor(dev));
	if (rc < 0 || (size_t)rc >= sizeof(sock_path)) {
		rc = -ENAMETOOLONG;
		snprintf(err, errlen, "control socket path too long");
		goto out;
	}

	rc = connect_sock(sock_path, &sock);
	if (rc < 0) {
		snprintf(err, errlen,
		         "the scoutfs daemon of the mount at %s is not answering on %s: %s",
		         ent->mountpoint, sock_path, strerror(-rc));
		goto out;
	}
	rc = new_conn(sock, ent->mountpoint, ret);
	if (rc < 0)
		snprintf(err, errlen, "%s", strerror(-rc));
out:
	free(ent);
	return rc;
}

/*
 * path made absolute and normalized without looking at the filesystem ("." and ".." and
 * repeated slashes resolved lexically); false if it doesn't fit.
 */
static bool lexical_abspath(const char *path, char *out, size_t len)
{
	char buf[PATH_MAX];
	char *save = NULL;
	char *comp;
	size_t n = 0;

	if (path[0] == '/') {
		if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
			return false;
	} else {
		if (!getcwd(buf, sizeof(buf)) || strlen(buf) + 1 + strlen(path) + 1 > sizeof(buf))
			return false;
		strcat(buf, "/");
		strcat(buf, path);
	}
	out[0] = '\0';
	for (comp = strtok_r(buf, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		if (strcmp(comp, ".") == 0)
			continue;
		if (strcmp(comp, "..") == 0) {
			while (n > 0 && out[n] != '/')
				n--;
			out[n] = '\0';
			continue;
		}
		if (n + 1 + strlen(comp) + 1 > len)
			return false;
		out[n++] = '/';
		strcpy(out + n, comp);
		n += strlen(comp);
	}
	if (n == 0)
		snprintf(out, len, "/");
	return true;
}

int ctl_open_path(const char *path, struct ctl_conn **ret, char *err, size_t errlen)
{
	const char *mountinfo = getenv(CTL_MOUNTINFO_ENV);
	struct mountinfo_ent *ent;
	char abs[PATH_MAX];
	struct stat st;
	int rc;

	*ret = NULL;
	/*
	 * A mount point is found in mountinfo without a stat: statting into a mount whose
	 * cluster is stuck would hang, and that is when its counters and locks are wanted.
	 */
	ent = malloc(sizeof(*ent));
	if (ent && lexical_abspath(path, abs, sizeof(abs)) &&
	    mountinfo_find_mountpoint(mountinfo && *mountinfo ? mountinfo : MOUNTINFO_DEFAULT_PATH,
				      abs, CONTROL_FSTYPE, ent) == 0) {
		rc = open_dev(makedev(ent->maj, ent->min), path, ret, err, errlen);
		free(ent);
		return rc;
	}
	free(ent);
	if (stat(path, &st) < 0) {
		rc = -errno;

		snprintf(err, errlen, "cannot access '%s': %s", path, strerror(-rc));
		return rc;
	}
	return open_dev(st.st_dev, path, ret, err, errlen);
}

int ctl_open_fd(int fd, const char *name, struct ctl_conn **ret, char *err, size_t errlen)
{
	struct stat st;

	*ret = NULL;
	if (fstat(fd, &st) < 0) {
		int rc = -errno;

		snprintf(err, errlen, "cannot stat '%s': %s", name, strerror(-rc));
		return rc;
	}
	return open_dev(st.st_dev, name, ret, err, errlen);
}

const char *ctl_mountpoint(const struct ctl_conn *conn)
{
	return conn->mountpoint;
}

void ctl_close(struct ctl_conn *conn)
{
	if (conn) {
		close(conn->sock);
		free(conn->buf);
		free(conn);
	}
}

int ctl_set_timeout(struct ctl_conn *conn, unsigned int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	if (setsockopt(conn->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(conn->sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

/* send everything, the descriptor riding on the first sendmsg */
static int send_request(struct ctl_conn *conn, const struct control_hdr *hdr, const void *req,
                        size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov[2] = {
		{ .iov_base = (void *)hdr, .iov_len = sizeof(*hdr) },
		{ .iov_base = (void *)req, .iov_len = len },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(&cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = sizeof(cbuf.buf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}

	while (msg.msg_iovlen > 0) {
		ssize_t ret = sendmsg(conn->sock, &msg, MSG_NOSIGNAL);

		if (ret < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return -ETIMEDOUT; /* ctl_set_timeout */
			return errno == EPIPE ? -ECONNRESET : -errno;
		}
		msg.msg_control = NULL;
		msg.msg_controllen = 0;
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

static int recv_exact(struct ctl_conn *conn, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t ret = recv(conn->sock, (char *)buf + got, len - got, 0);

		if (ret < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return -ETIMEDOUT; /* ctl_set_timeout */
			return -errno;
		}
		if (ret == 0)
			return -ECONNRESET;
		got += ret;
	}
	return 0;
}

int ctl_call(struct ctl_conn *conn, unsigned int cmd, const void *req, size_t len, int fd,
             ctl_reply_fn cb, void *arg)
{
	struct control_hdr hdr = {
		.magic = CONTROL_MAGIC,
		.version = CONTROL_VERSION,
		.cmd = (uint16_t)cmd,
		.len = (uint32_t)len,
	};
	int cb_ret = 0;
	void *buf;
	int ret;

	if (conn->broken)
		return -ECONNRESET;
	if (cmd >= CONTROL_CMD_NR || len > CONTROL_MAX_PAYLOAD)
		return -EINVAL;

	ret = send_request(conn, &hdr, req, len, fd);
	if (ret < 0)
		goto out;

	for (;;) {
		ret = recv_exact(conn, &hdr, sizeof(hdr));
		if (ret < 0)
			goto out;
		if (hdr.magic != CONTROL_MAGIC) {
			ret = -EPROTO;
			goto out;
		}
		if (hdr.version != CONTROL_VERSION) {
			ret = -EPROTONOSUPPORT;
			goto out;
		}
		if (hdr.cmd != cmd || (hdr.flags & ~CONTROL_F_ALL) ||
		    hdr.len > CONTROL_MAX_PAYLOAD || hdr.status > 0 ||
		    ((hdr.flags & CONTROL_F_MORE) && hdr.status != 0)) {
			ret = -EPROTO;
			goto out;
		}

		if (hdr.len > conn->buf_cap) {
			buf = realloc(conn->buf, hdr.len);
			if (!buf) {
				ret = -ENOMEM;
				goto out;
			}
			conn->buf = buf;
			conn->buf_cap = hdr.len;
		}
		ret = recv_exact(conn, conn->buf, hdr.len);
		if (ret < 0)
			goto out;

		if (hdr.len && cb && cb_ret == 0)
			cb_ret = cb(conn->buf, hdr.len, arg);

		if (!(hdr.flags & CONTROL_F_MORE))
			break;
	}

	return hdr.status < 0 ? hdr.status : cb_ret;
out:
	/* the reply stream is out of step with our calls now */
	conn->broken = true;
	return ret;
}

struct fixed_args {
	void *resp;
	size_t len;
	size_t got;
};

static int fixed_cb(const void *data, size_t len, void *arg)
{
	struct fixed_args *fa = arg;

	if (len > fa->len - fa->got)
		return -EPROTO;
	memcpy((char *)fa->resp + fa->got, data, len);
	fa->got += len;
	return 0;
}

int ctl_call_fixed(struct ctl_conn *conn, unsigned int cmd, const void *req, size_t req_len, int fd,
                   void *resp, size_t resp_len)
{
	struct fixed_args fa = { .resp = resp, .len = resp_len };
	int ret;

	ret = ctl_call(conn, cmd, req, req_len, fd, fixed_cb, &fa);
	if (ret == 0 && fa.got != resp_len)
		ret = -EPROTO;
	return ret;
}
