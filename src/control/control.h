/*
 * control.h: the daemon's end of the per-mount control socket.
 *
 * The control server owns the listening socket, one thread per connected CLI, the framing
 * of control_proto.h, descriptor passing and the caller's credentials.  It knows nothing
 * about the filesystem: the daemon hands it a table of handlers indexed by command number,
 * and the server calls them with a parsed request.  What the server guarantees a handler:
 *
 *  - the request header was well formed and the payload is complete (req_len bytes; the
 *    handler still checks that req_len is the size it expects);
 *  - privileged handlers are only called for privileged callers (others get -EPERM), and
 *    needs_fd handlers only with a descriptor (others get -EBADF) that, once
 *    control_server_set_mount_dev() was called, is on this mount (others get -EXDEV);
 *  - the passed descriptor is closed after the handler returns (a held descriptor keeps the
 *    mount busy), so a handler that needs it longer must dup() it;
 *  - calls on one connection are serialized; calls on different connections run
 *    concurrently, so handlers must be thread-safe.
 *
 * A caller is privileged when its effective capabilities include CAP_SYS_ADMIN and it lives in
 * the daemon's user namespace, as the kernel's capable(CAP_SYS_ADMIN) would decide for an
 * ioctl.  Both are read from /proc/PID/{status,ns/user} of the connecting process when the
 * connection is accepted (SO_PEERCRED's pid); a pidfd from SO_PEERPIDFD, where the kernel has
 * it, confirms the pid was not reused in between.  A plain root process has CAP_SYS_ADMIN; a
 * root process that dropped it (setpriv, capsh) does not, exactly as with the original.
 */
#ifndef SCOUTFS_CONTROL_H
#define SCOUTFS_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "control/control_proto.h"

struct control_server;
struct control_conn;

/* who is calling, captured when the connection was accepted */
struct control_creds {
	pid_t pid;
	uid_t uid; /* effective ids at connect() time, as SO_PEERCRED reports them */
	gid_t gid;
	uint64_t cap_eff; /* effective capability bits, 0 if they could not be read */
	bool same_userns; /* the peer is in the daemon's user namespace */
	bool privileged;  /* CAP_SYS_ADMIN in cap_eff and same_userns */
};

struct control_call {
	uint16_t cmd;
	const void *req; /* the request payload, req_len bytes; NULL when req_len is 0 */
	size_t req_len;
	int fd; /* the passed descriptor, or -1 */
	const struct control_creds *creds;

	/* private to control.c */
	struct control_conn *conn;
	bool replied;
};

/*
 * A handler answers with control_reply() (after any control_reply_more() chunks), or simply
 * returns: if it has not replied, the server sends a final reply whose status is the return
 * value (0 or -errno).  After a final reply the return value is ignored.
 */
typedef int (*control_handler_fn)(struct control_call *call, void *arg);

struct control_handler {
	control_handler_fn fn; /* NULL: the command is not supported (-EOPNOTSUPP) */
	bool privileged;       /* needs CAP_SYS_ADMIN (see above) */
	bool needs_fd;         /* needs a passed descriptor */
};

/*
 * Listen on sock_path (see control_proto.h for the name), creating its directory (0755) if
 * missing and replacing a stale socket left by a dead daemon; -EADDRINUSE if a live daemon
 * answers there.  The socket is mode 0666: the handlers' checks are the access control.
 * handlers is an array of CONTROL_CMD_NR entries indexed by command number; it and arg must
 * stay valid until control_server_stop() returns.
 */
int control_server_start(const char *sock_path, const struct control_handler *handlers, void *arg,
                         struct control_server **ret);

/*
 * The socket path for the scoutfs (fuse.scoutfs) mount at mountpoint, found in the mountinfo
 * file (NULL: /proc/self/mountinfo) rather than by stat(), which the daemon must not do on its
 * own mount from a thread its FUSE session may need.  mountpoint must be the canonical path
 * (as realpath() gives it, as mountinfo shows it) and mounted already.  Sets *dev to the
 * mount's device number, for control_server_set_mount_dev().  Returns 0, -ENOENT if no such
 * mount is listed, -ENAMETOOLONG, or another -errno.
 */
int control_mount_sock_path(const char *mountinfo, const char *mountpoint, char *buf, size_t len,
                            dev_t *dev);

/* descriptors passed to needs_fd handlers must have this st_dev (else -EXDEV); 0 = no check */
void control_server_set_mount_dev(struct control_server *srv, dev_t dev);

/*
 * Stop accepting, unlink the socket, disconnect every client and wait for running handlers
 * to return, then free the server.  Handlers must not block forever.
 */
void control_server_stop(struct control_server *srv);

/*
 * Send a reply chunk with CONTROL_F_MORE: more follows.  Data longer than
 * CONTROL_MAX_PAYLOAD is split.  Returns 0 or -errno (e.g. -EPIPE once the client has gone;
 * a streaming handler should then stop and return).
 */
int control_reply_more(struct control_call *call, const void *data, size_t len);

/*
 * Send the final reply: status (0 or -errno) and optional data (split into MORE chunks if it
 * is longer than CONTROL_MAX_PAYLOAD).  Exactly one per call; -EINVAL if already sent.
 */
int control_reply(struct control_call *call, int status, const void *data, size_t len);

/* does the caller have capability cap (a CAP_* number) in our user namespace? */
bool control_call_capable(const struct control_call *call, int cap);

#endif
