/*
 * client.h: the mount's side of the protocol with the server.
 *
 * Owns: the mount's one connection to whichever server is elected (found through the
 * quorum blocks), the greeting that identifies the mount (fsid, format version, rid, the
 * last server term it talked to), the requests the mount makes (log trees, roots, inode
 * numbers, locks, statfs, farewell), and dispatching the server's requests to the lock layer
 * and the transaction.  Every request may be resent to a new server after failover; the
 * server handles them idempotently.
 */
#ifndef SCOUTFS_CLIENT_H
#define SCOUTFS_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "format/format.h"
#include "lock/lock.h"

struct client;
struct dev;
struct block_cache;

struct client_ops {
	/* the server asked for a commit soon (SYNC_LOG_TREES); must not block */
	void (*sync_log_trees)(void *arg);
	/* connected to a server we had not talked to before (failover) */
	void (*new_server)(void *arg);
	/* set the bits of the inodes of group_nr this mount uses (the server's OPEN_INO_MAP) */
	void (*open_ino_map)(void *arg, u64 group_nr, le64 *bits);
};

struct client_config {
	struct dev *meta_dev;
	struct block_cache *bc;
	u64 fsid;
	u64 fmt_vers;
	u64 rid;
	bool quorum_member;
	struct scoutfs_quorum_config qconf;
	unsigned int keepalive_timeout_ms; /* TCP keepalive and user timeout (0: default) */
};

int client_create(const struct client_config *cfg, const struct client_ops *ops, void *arg,
		  struct client **ret);
/* the lock layer that grants and invalidations go to; set before client_start */
void client_set_lock_info(struct client *cl, struct lock_info *li);
/* start connecting to the server */
void client_start(struct client *cl);
/* wait until the first greeting was accepted (or the client shut down) */
int client_wait_connected(struct client *cl, const struct lock_waiter *waiter);
/* fail everything pending with -ECONNABORTED and stop reconnecting */
void client_shutdown(struct client *cl);
void client_destroy(struct client *cl);

u64 client_server_term(struct client *cl);
bool client_connected(struct client *cl);

int client_get_log_trees(struct client *cl, struct scoutfs_log_trees *lt);
/* commit the transaction of lt and open the next one, whose log trees come back in next */
int client_commit_log_trees(struct client *cl, const struct scoutfs_log_trees *lt,
			    struct scoutfs_log_trees *next);
int client_get_roots(struct client *cl, struct scoutfs_net_roots *roots);
int client_get_last_seq(struct client *cl, u64 *seq);
int client_alloc_inodes(struct client *cl, u64 count, u64 *ino, u64 *nr);
int client_statfs(struct client *cl, struct scoutfs_net_statfs *nst);
/* the union of the other mounts' bitmaps of the inodes of group_nr they use */
int client_open_ino_map(struct client *cl, u64 group_nr, le64 *bits);
/*
 * Say farewell and wait for the answer.  If the connection breaks meanwhile, the client
 * checks the super for its mounted_clients item: gone means a server processed the farewell.
 * -EINTR once waiter (if any) says to give up: with no server there may be no answer ever.
 */
int client_farewell(struct client *cl, const struct lock_waiter *waiter);

/* lock traffic (lock_ops of the mount) */
int client_lock_request(struct client *cl, const struct scoutfs_net_lock *nl);
int client_lock_invalidate_response(struct client *cl, u64 net_id, const struct scoutfs_net_lock *nl);
int client_lock_recover_response(struct client *cl, u64 net_id,
				 const struct scoutfs_net_lock_recover *nlr, unsigned int len);

/* debugging */
int client_describe(struct client *cl, char *buf, unsigned int len);

#endif
