/*
 * client.c: the mount's connection to the server.
 *
 * The net layer keeps one logical connection alive across sockets and servers and replays
 * outstanding requests after failover; this file gives it what only the mount knows: where
 * the server is (the quorum blocks), what to put in the greeting, whether a greeting reply
 * is acceptable, and whether an unmount already finished its farewell out of band.
 *
 * Server requests for locks (invalidations, recovery) and grants (responses to our lock
 * requests) are handed to the lock layer on the net receive thread, so they are processed
 * in exactly the order the server sent them; the lock layer only queues them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "block/block.h"
#include "btree/btree.h"
#include "client/client.h"
#include "dev/dev.h"
#include "format/key.h"
#include "lock/lock.h"
#include "net/net.h"
#include "quorum/quorum.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(client_greeting_accepted);
COUNTER_DEFINE(client_new_server);
COUNTER_DEFINE(client_farewell_out_of_band);

struct client {
	struct client_config cfg;
	const struct client_ops *ops;
	void *arg;
	struct net_conn *conn;
	struct lock_info *li;

	pthread_mutex_t mutex;
	pthread_cond_t cond;
	u64 server_term;
	bool greeted;
	bool shutdown;
	bool farewell_pending;
	bool farewell_done;
	int farewell_err;
	bool farewell_replied;
};

/* ---- net callbacks ---- */

static int find_server(void *arg, struct sockaddr_in *sin)
{
	struct client *cl = arg;
	u64 term;

	return quorum_find_server(cl->cfg.meta_dev, cl->cfg.fsid, &cl->cfg.qconf, sin, &term);
}

static void build_greeting(void *arg, struct scoutfs_net_greeting *gr)
{
	struct client *cl = arg;
	u64 flags = 0;

	pthread_mutex_lock(&cl->mutex);
	if (cl->cfg.quorum_member)
		flags |= SCOUTFS_NET_GREETING_FLAG_QUORUM;
	if (cl->farewell_pending)
		flags |= SCOUTFS_NET_GREETING_FLAG_FAREWELL;
	gr->fsid = cpu_to_le64(cl->cfg.fsid);
	gr->fmt_vers = cpu_to_le64(cl->cfg.fmt_vers);
	gr->server_term = cpu_to_le64(cl->server_term);
	gr->rid = cpu_to_le64(cl->cfg.rid);
	gr->flags = cpu_to_le64(flags);
	pthread_mutex_unlock(&cl->mutex);
}

static int greeting_reply(void *arg, const struct scoutfs_net_greeting *gr, bool new_server)
{
	struct client *cl = arg;

	if (le64_to_cpu(gr->fsid) != cl->cfg.fsid) {
		log_err("server greeting has fsid %016llx, ours is %016llx: wrong filesystem",
			(unsigned long long)le64_to_cpu(gr->fsid), (unsigned long long)cl->cfg.fsid);
		return -EINVAL;
	}
	if (le64_to_cpu(gr->fmt_vers) != cl->cfg.fmt_vers) {
		log_err("server greeting has format version %llu, ours is %llu",
			(unsigned long long)le64_to_cpu(gr->fmt_vers),
			(unsigned long long)cl->cfg.fmt_vers);
		return -EINVAL;
	}

	pthread_mutex_lock(&cl->mutex);
	if (new_server) {
		log_info("connected to server in term %llu",
			 (unsigned long long)le64_to_cpu(gr->server_term));
		counter_inc(client_new_server);
	}
	cl->server_term = le64_to_cpu(gr->server_term);
	cl->greeted = true;
	pthread_cond_broadcast(&cl->cond);
	pthread_mutex_unlock(&cl->mutex);
	counter_inc(client_greeting_accepted);

	if (new_server) {
		if (cl->li)
			lock_new_server(cl->li);
		if (cl->ops->new_server)
			cl->ops->new_server(cl->arg);
	}
	return 0;
}

/* has a server already processed our farewell?  (our mounted_clients item is gone) */
static bool farewell_processed(struct client *cl)
{
	struct scoutfs_super_block *super;
	struct btree_item_ref iref;
	struct scoutfs_key key;
	bool gone = false;
	int err;

	super = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);
	if (!super)
		return false;
	err = block_sm_read(cl->cfg.meta_dev, SCOUTFS_SUPER_BLKNO, SCOUTFS_BLOCK_MAGIC_SUPER,
			    cl->cfg.fsid, super);
	if (err == 0) {
		key = key_make(SCOUTFS_MOUNTED_CLIENT_ZONE, cl->cfg.rid, 0, 0, 0, 0);
		err = btree_lookup(cl->cfg.bc, &super->mounted_clients, &key, &iref);
		if (err == 0)
			btree_iref_put(&iref);
		gone = err == -ENOENT;
	}
	free(super);
	return gone;
}

static bool should_stop_reconnecting(void *arg)
{
	struct client *cl = arg;
	bool pending;

	pthread_mutex_lock(&cl->mutex);
	pending = cl->farewell_pending && !cl->farewell_done;
	pthread_mutex_unlock(&cl->mutex);
	if (!pending || !farewell_processed(cl))
		return false;

	counter_inc(client_farewell_out_of_band);
	log_info("farewell was processed by a server while disconnected");
	pthread_mutex_lock(&cl->mutex);
	cl->farewell_done = true;
	pthread_cond_broadcast(&cl->cond);
	pthread_mutex_unlock(&cl->mutex);
	return true;
}

static int handle_lock(struct net_conn *conn, u8 cmd, u64 id, const void *data, unsigned int len)
{
	struct client *cl = net_conn_arg(conn);

	if (len != sizeof(struct scoutfs_net_lock) || !cl->li)
		return -EINVAL;
	return lock_invalidate_request(cl->li, id, data);
}

static int handle_lock_recover(struct net_conn *conn, u8 cmd, u64 id, const void *data,
			       unsigned int len)
{
	struct client *cl = net_conn_arg(conn);

	if (len != sizeof(struct scoutfs_key) || !cl->li)
		return -EINVAL;
	return lock_recover_request(cl->li, id, data);
}

static int handle_sync_log_trees(struct net_conn *conn, u8 cmd, u64 id, const void *data,
				 unsigned int len)
{
	struct client *cl = net_conn_arg(conn);

	if (len != 0)
		return -EINVAL;
	if (cl->ops->sync_log_trees)
		cl->ops->sync_log_trees(cl->arg);
	return net_response(conn, cmd, id, 0, NULL, 0);
}

static int handle_open_ino_map(struct net_conn *conn, u8 cmd, u64 id, const void *data,
			       unsigned int len)
{
	struct client *cl = net_conn_arg(conn);
	const struct scoutfs_open_ino_map_args *args = data;
	struct scoutfs_open_ino_map map;

	if (len != sizeof(*args))
		return -EINVAL;
	memset(&map, 0, sizeof(map));
	map.args = *args;
	if (cl->ops->open_ino_map)
		cl->ops->open_ino_map(cl->arg, le64_to_cpu(args->group_nr), map.bits);
	else
		memset(map.bits, 0xff, sizeof(map.bits)); /* can't tell: everything is in use */
	return net_response(conn, cmd, id, 0, &map, sizeof(map));
}

static const struct net_client_ops client_net_ops = {
	.find_server = find_server,
	.build_greeting = build_greeting,
	.greeting_reply = greeting_reply,
	.should_stop_reconnecting = should_stop_reconnecting,
};

static const struct net_handler client_handlers[SCOUTFS_NET_CMD_UNKNOWN] = {
	[SCOUTFS_NET_CMD_LOCK] = { .fn = handle_lock, .inline_recv = true },
	[SCOUTFS_NET_CMD_LOCK_RECOVER] = { .fn = handle_lock_recover, .inline_recv = true },
	[SCOUTFS_NET_CMD_OPEN_INO_MAP] = { .fn = handle_open_ino_map },
	[SCOUTFS_NET_CMD_SYNC_LOG_TREES] = { .fn = handle_sync_log_trees, .inline_recv = true },
};

/* ---- lifecycle ---- */

int client_create(const struct client_config *cfg, const struct client_ops *ops, void *arg,
		  struct client **ret)
{
	struct client *cl;
	int err;

	cl = calloc(1, sizeof(*cl));
	if (!cl)
		return -ENOMEM;
	cl->cfg = *cfg;
	cl->ops = ops;
	cl->arg = arg;
	pthread_mutex_init(&cl->mutex, NULL);
	pthread_cond_init(&cl->cond, NULL);
	err = net_client_create(&client_net_ops, client_handlers, cl, &cl->conn);
	if (err == 0 && cfg->keepalive_timeout_ms)
		err = net_client_set_keepalive_timeout_ms(cl->conn, cfg->keepalive_timeout_ms);
	if (err < 0) {
		if (cl->conn)
			net_client_destroy(cl->conn);
		free(cl);
		return err;
	}
	*ret = cl;
	return 0;
}

void client_set_lock_info(struct client *cl, struct lock_info *li)
{
	cl->li = li;
}

void client_start(struct client *cl)
{
	net_client_start(cl->conn);
}

/* with the mutex held: wait for a change, or long enough to look at a waiter again */
static void wait_a_moment(struct client *cl)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 100 * NSEC_PER_MSEC;
	if (ts.tv_nsec >= (long)NSEC_PER_SEC) {
		ts.tv_sec++;
		ts.tv_nsec -= NSEC_PER_SEC;
	}
	pthread_cond_timedwait(&cl->cond, &cl->mutex, &ts);
}

int client_wait_connected(struct client *cl, const struct lock_waiter *waiter)
{
	int err = 0;

	pthread_mutex_lock(&cl->mutex);
	while (!cl->greeted && !cl->shutdown) {
		if (waiter && waiter->interrupted(waiter->arg)) {
			err = -EINTR;
			break;
		}
		wait_a_moment(cl);
	}
	if (!err && !cl->greeted)
		err = -ESHUTDOWN;
	pthread_mutex_unlock(&cl->mutex);
	return err;
}

void client_shutdown(struct client *cl)
{
	pthread_mutex_lock(&cl->mutex);
	cl->shutdown = true;
	pthread_cond_broadcast(&cl->cond);
	pthread_mutex_unlock(&cl->mutex);
	net_client_shutdown(cl->conn);
}

void client_destroy(struct client *cl)
{
	if (!cl)
		return;
	net_client_destroy(cl->conn);
	pthread_cond_destroy(&cl->cond);
	pthread_mutex_destroy(&cl->mutex);
	free(cl);
}

u64 client_server_term(struct client *cl)
{
	u64 term;

	pthread_mutex_lock(&cl->mutex);
	term = cl->server_term;
	pthread_mutex_unlock(&cl->mutex);
	return term;
}

bool client_connected(struct client *cl)
{
	return net_client_connected(cl->conn);
}

/* ---- requests ---- */

int client_get_log_trees(struct client *cl, struct scoutfs_log_trees *lt)
{
	return net_sync_request(cl->conn, SCOUTFS_NET_CMD_GET_LOG_TREES, NULL, 0, lt, sizeof(*lt));
}

int client_commit_log_trees(struct client *cl, const struct scoutfs_log_trees *lt,
			    struct scoutfs_log_trees *next)
{
	return net_sync_request(cl->conn, SCOUTFS_NET_CMD_COMMIT_LOG_TREES, lt, sizeof(*lt), next,
				sizeof(*next));
}

int client_get_roots(struct client *cl, struct scoutfs_net_roots *roots)
{
	return net_sync_request(cl->conn, SCOUTFS_NET_CMD_GET_ROOTS, NULL, 0, roots, sizeof(*roots));
}

int client_get_last_seq(struct client *cl, u64 *seq)
{
	le64 lseq;
	int err;

	err = net_sync_request(cl->conn, SCOUTFS_NET_CMD_GET_LAST_SEQ, NULL, 0, &lseq, sizeof(lseq));
	if (err == 0)
		*seq = le64_to_cpu(lseq);
	return err;
}

int client_alloc_inodes(struct client *cl, u64 count, u64 *ino, u64 *nr)
{
	struct scoutfs_net_inode_alloc ial;
	le64 lcount = cpu_to_le64(count);
	int err;

	err = net_sync_request(cl->conn, SCOUTFS_NET_CMD_ALLOC_INODES, &lcount, sizeof(lcount), &ial,
			       sizeof(ial));
	if (err == 0) {
		*ino = le64_to_cpu(ial.ino);
		*nr = le64_to_cpu(ial.nr);
		if (*nr == 0 || *ino + *nr < *ino)
			err = -ENOSPC;
	}
	return err;
}

int client_statfs(struct client *cl, struct scoutfs_net_statfs *nst)
{
	return net_sync_request(cl->conn, SCOUTFS_NET_CMD_STATFS, NULL, 0, nst, sizeof(*nst));
}

int client_open_ino_map(struct client *cl, u64 group_nr, le64 *bits)
{
	struct scoutfs_open_ino_map_args args = { .group_nr = cpu_to_le64(group_nr) };
	struct scoutfs_open_ino_map map;
	int err;

	err = net_sync_request(cl->conn, SCOUTFS_NET_CMD_OPEN_INO_MAP, &args, sizeof(args), &map,
			       sizeof(map));
	if (err == 0 && le64_to_cpu(map.args.group_nr) != group_nr)
		err = -EPROTO;
	if (err == 0)
		memcpy(bits, map.bits, sizeof(map.bits));
	return err;
}

static void farewell_response(struct net_conn *conn, const void *data, unsigned int len, int error,
			      void *arg)
{
	struct client *cl = arg;

	pthread_mutex_lock(&cl->mutex);
	cl->farewell_replied = true;
	cl->farewell_err = error;
	pthread_cond_broadcast(&cl->cond);
	pthread_mutex_unlock(&cl->mutex);
}

int client_farewell(struct client *cl, const struct lock_waiter *waiter)
{
	int err;

	pthread_mutex_lock(&cl->mutex);
	if (cl->server_term == 0) {
		/* never greeted: no server knows this mount */
		pthread_mutex_unlock(&cl->mutex);
		return 0;
	}
	cl->farewell_pending = true;
	pthread_mutex_unlock(&cl->mutex);

	err = net_submit_request(cl->conn, SCOUTFS_NET_CMD_FAREWELL, NULL, 0, farewell_response, cl);
	if (err < 0)
		return err;

	pthread_mutex_lock(&cl->mutex);
	while (!cl->farewell_replied && !cl->farewell_done) {
		if (waiter && waiter->interrupted(waiter->arg)) {
			pthread_mutex_unlock(&cl->mutex);
			return -EINTR;
		}
		wait_a_moment(cl);
	}
	if (cl->farewell_done)
		err = 0;
	else
		err = cl->farewell_err;
	pthread_mutex_unlock(&cl->mutex);
	return err;
}

/* ---- locks ---- */

static void lock_response(struct net_conn *conn, const void *data, unsigned int len, int error,
			  void *arg)
{
	struct client *cl = net_conn_arg(conn);
	const struct scoutfs_net_lock *nl = data;
	struct scoutfs_net_lock *sent = arg;

	if (error == 0 && len != sizeof(*nl))
		error = -EIO;
	/* an error response carries no payload: report it against the lock we asked for */
	lock_grant_response(cl->li, error ? sent : nl, error);
	free(sent);
}

int client_lock_request(struct client *cl, const struct scoutfs_net_lock *nl)
{
	struct scoutfs_net_lock *copy;
	int err;

	copy = malloc(sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	*copy = *nl;
	err = net_submit_request(cl->conn, SCOUTFS_NET_CMD_LOCK, nl, sizeof(*nl), lock_response, copy);
	if (err < 0)
		free(copy);
	return err;
}

int client_lock_invalidate_response(struct client *cl, u64 net_id, const struct scoutfs_net_lock *nl)
{
	return net_response(cl->conn, SCOUTFS_NET_CMD_LOCK, net_id, 0, nl, sizeof(*nl));
}

int client_lock_recover_response(struct client *cl, u64 net_id,
				 const struct scoutfs_net_lock_recover *nlr, unsigned int len)
{
	return net_response(cl->conn, SCOUTFS_NET_CMD_LOCK_RECOVER, net_id, 0, nlr, len);
}

int client_describe(struct client *cl, char *buf, unsigned int len)
{
	return net_describe(cl->conn, buf, len);
}
