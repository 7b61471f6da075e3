/*
 * mount_ctl.c: the daemon's answers to the scoutfs command (the control socket handlers).
 *
 * Each handler checks its request's size, does its work through the layers' public calls,
 * and replies.  The control layer has already checked privileges and descriptors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/client.h"
#include "control/control.h"
#include "daemon/mount.h"
#include "dev/dev.h"
#include "fs/fs.h"
#include "lock/lock.h"
#include "quorum/quorum.h"
#include "server/server.h"
#include "util/counters.h"
#include "util/util.h"

#define TEXT_BUF_BYTES (4U << 20)
/* every mount option as text, metadev_path at its longest included */
#define OPTIONS_TEXT_BYTES 8192

static int ctl_ping(struct control_call *call, void *arg)
{
	struct mount *m = arg;
	size_t mlen = strlen(m->mountpoint);
	struct control_ping_resp *resp;
	int err;

	if (call->req_len)
		return -EINVAL;
	resp = calloc(1, sizeof(*resp) + mlen);
	if (!resp)
		return -ENOMEM;
	resp->fsid = m->fsid;
	resp->rid = m->rid;
	resp->pid = (uint32_t)getpid();
	resp->format_version = (uint32_t)m->fmt_vers;
	resp->mountpoint_len = (uint32_t)mlen;
	memcpy(resp->mountpoint, m->mountpoint, mlen);
	err = control_reply(call, 0, resp, sizeof(*resp) + mlen);
	free(resp);
	return err;
}

static int ctl_statfs(struct control_call *call, void *arg)
{
	struct mount *m = arg;
	struct control_statfs_resp resp;
	u64 seq;
	int err;

	if (!m->ready)
		return -EAGAIN;

	if (call->req_len)
		return -EINVAL;
	err = fs_committed_seq(m->fs, &seq);
	if (err < 0)
		return err;
	memset(&resp, 0, sizeof(resp));
	resp.fsid = m->fsid;
	resp.rid = m->rid;
	resp.committed_seq = seq;
	resp.total_meta_blocks = le64_to_cpu(m->sp.meta_super->total_meta_blocks);
	resp.total_data_blocks = le64_to_cpu(m->sp.meta_super->total_data_blocks);
	return control_reply(call, 0, &resp, sizeof(resp));
}

struct text_buf {
	char *buf;
	size_t used;
	size_t size;
};

static void add_counter(const char *name, uint64_t value, void *arg)
{
	struct text_buf *tb = arg;
	int n;

	if (tb->used >= tb->size)
		return;
	n = snprintf(tb->buf + tb->used, tb->size - tb->used, "%s %llu\n", name,
		     (unsigned long long)value);
	if (n > 0)
		tb->used += min_t(size_t, (size_t)n, tb->size - tb->used);
}

static int ctl_counters(struct control_call *call, void *arg)
{
	struct text_buf tb = { .size = TEXT_BUF_BYTES };
	int err;

	if (call->req_len)
		return -EINVAL;
	tb.buf = malloc(tb.size);
	if (!tb.buf)
		return -ENOMEM;
	counters_for_each(add_counter, &tb);
	err = control_reply(call, 0, tb.buf, tb.used);
	free(tb.buf);
	return err;
}

static int ctl_sync(struct control_call *call, void *arg)
{
	struct mount *m = arg;

	if (!m->ready)
		return -EAGAIN;

	if (call->req_len)
		return -EINVAL;
	return fs_sync(m->fs);
}

static int reply_text(struct control_call *call, int (*fn)(void *obj, char *buf, unsigned int len),
		      void *obj)
{
	char *buf = malloc(TEXT_BUF_BYTES);
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = fn(obj, buf, TEXT_BUF_BYTES);
	if (ret >= 0)
		ret = control_reply(call, 0, buf, min_t(size_t, (size_t)ret, TEXT_BUF_BYTES));
	free(buf);
	return ret;
}

static int describe_client_locks(void *obj, char *buf, unsigned int len)
{
	return lock_describe(obj, buf, len);
}

static int describe_server_locks(void *obj, char *buf, unsigned int len)
{
	return server_describe_locks(obj, buf, len);
}

static int describe_quorum(void *obj, char *buf, unsigned int len)
{
	return quorum_status(obj, buf, len);
}

static int ctl_client_locks(struct control_call *call, void *arg)
{
	struct mount *m = arg;

	if (!m->ready)
		return -EAGAIN;

	return reply_text(call, describe_client_locks, m->li);
}

static int ctl_server_locks(struct control_call *call, void *arg)
{
	struct mount *m = arg;

	if (!m->srv)
		return -ENOTCONN;
	return reply_text(call, describe_server_locks, m->srv);
}

static int ctl_quorum_status(struct control_call *call, void *arg)
{
	struct mount *m = arg;

	if (!m->q)
		return -ENOENT;
	return reply_text(call, describe_quorum, m->q);
}

static int ctl_force_merge(struct control_call *call, void *arg)
{
	struct mount *m = arg;

	if (!m->ready)
		return -EAGAIN;

	if (!m->srv || server_status(m->srv) != QUORUM_SERVER_UP)
		return -ENOTCONN;
	server_force_merge(m->srv);
	/* the next transaction this mount opens finalizes every log tree */
	return fs_sync(m->fs);
}

static int ctl_fault(struct control_call *call, void *arg)
{
	struct mount *m = arg;
	const struct control_fault_req *req = call->req;
	struct dev_fault_rule rule = { 0 };
	struct dev *dev;

	if (call->req_len != sizeof(*req) || req->dev > CONTROL_FAULT_DATA ||
	    req->op > CONTROL_FAULT_FLUSH || req->action > CONTROL_FAULT_TEAR)
		return -EINVAL;
	dev = req->dev == CONTROL_FAULT_META ? m->sp.meta : m->sp.data;
	rule.action = req->action == CONTROL_FAULT_FAIL   ? DEV_FAULT_FAIL :
		      req->action == CONTROL_FAULT_TEAR ? DEV_FAULT_TEAR :
							  DEV_FAULT_PASS;
	rule.skip = req->skip;
	rule.count = req->count;
	rule.min_len = req->min_len;
	dev_set_fault(dev, req->op == CONTROL_FAULT_WRITE ? DEV_FAULT_OP_WRITE : DEV_FAULT_OP_FLUSH,
		      &rule);
	return 0;
}

static int ctl_stat(struct control_call *call, void *arg)
{
	struct mount *m = arg;
	struct control_stat_resp resp;
	struct fs_attr attr;
	struct stat st;
	int err;

	if (!m->ready)
		return -EAGAIN;

	if (call->req_len)
		return -EINVAL;
	if (fstat(call->fd, &st) < 0)
		return -errno;
	err = fs_getattr(m->fs, NULL, st.st_ino, &attr);
	if (err < 0)
		return err;
	memset(&resp, 0, sizeof(resp));
	resp.meta_seq = attr.meta_seq;
	resp.data_seq = attr.data_seq;
	resp.data_version = attr.data_version;
	resp.online_blocks = attr.online_blocks;
	resp.offline_blocks = attr.offline_blocks;
	resp.crtime_sec = (uint64_t)attr.crtime.tv_sec;
	resp.crtime_nsec = (uint32_t)attr.crtime.tv_nsec;
	return control_reply(call, 0, &resp, sizeof(resp));
}

static int ctl_walk_inodes(struct control_call *call, void *arg)
{
	struct mount *m = arg;
	const struct control_walk_inodes_req *req = call->req;
	struct control_walk_inodes_entry *out;
	struct fs_walk_entry first, last, *ents;
	u32 nr;
	u8 type;
	int ret;

	if (!m->ready)
		return -EAGAIN;

	if (call->req_len != sizeof(*req))
		return -EINVAL;
	if (req->index == CONTROL_WALK_META_SEQ)
		type = SCOUTFS_INODE_INDEX_META_SEQ_TYPE;
	else if (req->index == CONTROL_WALK_DATA_SEQ)
		type = SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE;
	else
		return -EINVAL;
	nr = min_t(u32, req->nr_entries, 65536);
	if (nr == 0)
		return control_reply(call, 0, NULL, 0);
	/*
	 * FUSE never passes sync(2) on to us, so "change; sync; walk-inodes" would not show
	 * this mount's changes: commit them here, as the sync would have.
	 */
	ret = fs_sync(m->fs);
	if (ret < 0)
		return ret;

	first.major = req->first.major;
	first.minor = req->first.minor;
	first.ino = req->first.ino;
	last.major = req->last.major;
	last.minor = req->last.minor;
	last.ino = req->last.ino;
	ents = calloc(nr, sizeof(*ents));
	out = calloc(nr, sizeof(*out));
	if (!ents || !out) {
		ret = -ENOMEM;
		goto out;
	}
	ret = fs_walk_inodes(m->fs, type, &first, &last, ents, (int)nr);
	if (ret < 0)
		goto out;
	for (int i = 0; i < ret; i++) {
		out[i].major = ents[i].major;
		out[i].minor = ents[i].minor;
		out[i].ino = ents[i].ino;
	}
	ret = control_reply(call, 0, out, (size_t)ret * sizeof(*out));
out:
	free(ents);
	free(out);
	return ret;
}

static int ctl_get_fiemap(struct control_call *call, void *arg)
{
	struct mount *m = arg;
	const struct control_fiemap_req *req = call->req;
	struct control_fiemap_entry *out = NULL;
	struct fs_extent_info *exts = NULL;
	struct stat st;
	u32 nr;
	int ret;

	if (!m->ready)
		return -EAGAIN;
	if (call->req_len != sizeof(*req) || req->_pad)
		return -EINVAL;
	if (fstat(call->fd, &st) < 0)
		return -errno;
	nr = min_t(u32, req->nr_entries, CONTROL_FIEMAP_MAX_ENTRIES);
	if (nr == 0)
		return control_reply(call, 0, NULL, 0);
	exts = calloc(nr, sizeof(*exts));
	out = calloc(nr, sizeof(*out));
	if (!exts || !out) {
		ret = -ENOMEM;
		goto out;
	}
	ret = fs_get_extents(m->fs, NULL, st.st_ino, req->start_block, exts, (int)nr);
	if (ret < 0)
		goto out;
	for (int i = 0; i < ret; i++) {
		out[i].logical = exts[i].logical;
		out[i].physical = exts[i].physical;
		out[i].length = exts[i].len;
		out[i].flags = ((exts[i].flags & FS_EXTENT_OFFLINE) ? CONTROL_FIEMAP_OFFLINE : 0) |
			       ((exts[i].flags & FS_EXTENT_UNWRITTEN) ? CONTROL_FIEMAP_UNWRITTEN : 0) |
			       ((exts[i].flags & FS_EXTENT_LAST) ? CONTROL_FIEMAP_LAST : 0);
	}
	ret = control_reply(call, 0, out, (size_t)ret * sizeof(*out));
out:
	free(exts);
	free(out);
	return ret;
}

static int ctl_fence_list(struct control_call *call, void *arg)
{
	struct mount *m = arg;
	struct server_fence_request reqs[256];
	struct control_fence_entry ents[256];
	int nr;

	if (call->req_len)
		return -EINVAL;
	if (!m->srv)
		return -ENOTCONN;
	nr = server_fence_list(m->srv, reqs, (int)ARRAY_SIZE(reqs));
	if (nr < 0)
		return nr;
	nr = min_t(int, nr, (int)ARRAY_SIZE(reqs));
	memset(ents, 0, sizeof(ents));
	for (int i = 0; i < nr; i++) {
		ents[i].rid = reqs[i].rid;
		ents[i].ipv4_addr = ntohl(reqs[i].sin.sin_addr.s_addr);
		ents[i].port = ntohs(reqs[i].sin.sin_port);
		ents[i].fenced = reqs[i].fenced;
		ents[i].error = reqs[i].error;
		ents[i].elapsed_secs = reqs[i].elapsed_secs;
		snprintf(ents[i].reason, sizeof(ents[i].reason), "%s", reqs[i].reason);
	}
	return control_reply(call, 0, ents, (size_t)nr * sizeof(ents[0]));
}

static int ctl_fence_ack(struct control_call *call, void *arg)
{
	struct mount *m = arg;
	const struct control_fence_ack_req *req = call->req;

	if (call->req_len != sizeof(*req))
		return -EINVAL;
	if (!m->srv)
		return -ENOTCONN;
	return server_fence_ack(m->srv, req->rid, req->fenced != 0);
}

static int reply_options(struct control_call *call, struct mount *m)
{
	char buf[OPTIONS_TEXT_BYTES];
	int n;

	n = mount_format_options(m, buf, sizeof(buf));
	if (n < 0)
		return -EIO;
	return control_reply(call, 0, buf, min_t(size_t, (size_t)n, sizeof(buf) - 1));
}

static int ctl_mount_options(struct control_call *call, void *arg)
{
	if (call->req_len)
		return -EINVAL;
	return reply_options(call, arg);
}

static int ctl_set_mount_options(struct control_call *call, void *arg)
{
	struct mount *m = arg;
	char str[OPTIONS_TEXT_BYTES];
	char why[256];
	int err;

	if (call->req_len == 0 || call->req_len >= sizeof(str) ||
	    memchr(call->req, '\0', call->req_len))
		return -EINVAL;
	memcpy(str, call->req, call->req_len);
	str[call->req_len] = '\0';
	err = mount_change_options(m, str, why, sizeof(why));
	if (err < 0)
		return control_reply(call, err, why, strlen(why));
	return reply_options(call, m);
}

static const struct control_handler handlers[CONTROL_CMD_NR] = {
	[CONTROL_CMD_PING] = { .fn = ctl_ping },
	[CONTROL_CMD_STATFS] = { .fn = ctl_statfs },
	[CONTROL_CMD_COUNTERS] = { .fn = ctl_counters },
	[CONTROL_CMD_SYNC] = { .fn = ctl_sync },
	[CONTROL_CMD_CLIENT_LOCKS] = { .fn = ctl_client_locks, .privileged = true },
	[CONTROL_CMD_SERVER_LOCKS] = { .fn = ctl_server_locks, .privileged = true },
	[CONTROL_CMD_QUORUM_STATUS] = { .fn = ctl_quorum_status, .privileged = true },
	[CONTROL_CMD_FORCE_MERGE] = { .fn = ctl_force_merge, .privileged = true },
	[CONTROL_CMD_FAULT] = { .fn = ctl_fault, .privileged = true },
	[CONTROL_CMD_MOUNT_OPTIONS] = { .fn = ctl_mount_options },
	[CONTROL_CMD_SET_MOUNT_OPTIONS] = { .fn = ctl_set_mount_options, .privileged = true },
	[CONTROL_CMD_STAT] = { .fn = ctl_stat, .needs_fd = true },
	[CONTROL_CMD_WALK_INODES] = { .fn = ctl_walk_inodes },
	[CONTROL_CMD_GET_FIEMAP] = { .fn = ctl_get_fiemap, .needs_fd = true },
	[CONTROL_CMD_FENCE_LIST] = { .fn = ctl_fence_list, .privileged = true },
	[CONTROL_CMD_FENCE_ACK] = { .fn = ctl_fence_ack, .privileged = true },
};

const struct control_handler *mount_control_handlers = handlers;
