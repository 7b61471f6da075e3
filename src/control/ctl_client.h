/*
 * ctl_client.h: the CLI's end of a mount's control socket.
 *
 * ctl_open_path() maps any path to the scoutfs mount it lives in (by st_dev, through
 * /proc/self/mountinfo) and connects to that mount's daemon; ctl_call() sends one request,
 * optionally with a descriptor, and hands each reply chunk to a callback.  Errors come back
 * as negative errnos; ctl_open_path() also writes a sentence for the user into err.
 */
#ifndef SCOUTFS_CTL_CLIENT_H
#define SCOUTFS_CTL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "control/control_proto.h"

/*
 * Tests point this at a mountinfo file of their own to reach a fake daemon without a FUSE
 * mount; unset, /proc/self/mountinfo is read.
 */
#define CTL_MOUNTINFO_ENV "SCOUTFS_MOUNTINFO"

struct ctl_conn;

/*
 * Connect to the daemon of the scoutfs mount that holds path.  Errors (with err filled):
 * the stat's errno if path cannot be stat'ed, -ENOTTY if path is not in a scoutfs filesystem
 * ("PATH is not in a scoutfs filesystem"), the connect errno (typically -ENOENT or
 * -ECONNREFUSED) if the mount's daemon is not answering.
 */
int ctl_open_path(const char *path, struct ctl_conn **ret, char *err, size_t errlen);

/* the same for the mount of an open file (name is used in messages) */
int ctl_open_fd(int fd, const char *name, struct ctl_conn **ret, char *err, size_t errlen);

/* connect to a daemon's socket directly (tests, tools that know the socket) */
int ctl_open_socket(const char *sock_path, struct ctl_conn **ret, char *err, size_t errlen);

/* the mount point of a connection made by ctl_open_path ("" for ctl_open_socket) */
const char *ctl_mountpoint(const struct ctl_conn *conn);

/*
 * A reply chunk: len payload bytes (only valid during the call).  Returning a negative
 * errno makes ctl_call() return it once the call's remaining replies have been read.
 */
typedef int (*ctl_reply_fn)(const void *data, size_t len, void *arg);

/*
 * Send request cmd with len bytes of req and, if fd >= 0, that descriptor, then read
 * replies until the final one, passing every non-empty payload to cb (may be NULL).
 * Returns the final status (0 or the daemon's -errno), the callback's error, or a transport
 * error: -EPROTO for a malformed reply, -EPROTONOSUPPORT if the daemon speaks another
 * version, -ECONNRESET if it hung up.  After a transport error the connection is unusable.
 */
/*
 * Give up (-ETIMEDOUT, the connection then unusable) when the daemon sends or takes nothing
 * for ms milliseconds; for agents that must not hang on one stuck daemon.  0: wait forever.
 */
int ctl_set_timeout(struct ctl_conn *conn, unsigned int ms);

int ctl_call(struct ctl_conn *conn, unsigned int cmd, const void *req, size_t len, int fd,
             ctl_reply_fn cb, void *arg);

/* ctl_call() for replies that are one fixed-size struct: -EPROTO unless exactly len bytes */
int ctl_call_fixed(struct ctl_conn *conn, unsigned int cmd, const void *req, size_t req_len, int fd,
                   void *resp, size_t resp_len);

void ctl_close(struct ctl_conn *conn);

#endif
