/*
 * server.h: the server role of the elected mount.
 *
 * Owns: the super block (the server is its only writer) and the trees that hang off it --
 * logs_root (every mount's log_trees), log_merge, mounted_clients, the allocator trees and
 * fs_root (changed only by merging); server commits; the handlers of every client request;
 * the lock server; recovery of the mounts that were mounted when the previous server went
 * away; farewell; fencing and the reclaim of fenced mounts; and the background merge of
 * finalized log btrees into fs_root.
 *
 * Invariants:
 *  - Every reply that reports a change is sent only after the server commit holding that
 *    change is durable (blocks written and flushed, then the super written and flushed).
 *  - Request handlers are idempotent: a client replays its requests to a new server.
 *  - Before writing anything, a new server fences every earlier leader still recorded in the
 *    quorum blocks; a mount's log trees, locks and allocators are reclaimed only after its
 *    farewell or after it was fenced.
 */
#ifndef SCOUTFS_SERVER_H
#define SCOUTFS_SERVER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "format/format.h"
#include "quorum/quorum.h"

struct server;
struct dev;

struct server_config {
	struct dev *meta_dev;
	struct dev *data_dev;
	u64 fsid;
	u64 rid; /* the rid of this server's own mount */
	int slot_nr;
	struct scoutfs_quorum_config qconf;
	u64 log_merge_wait_timeout_ms;
	unsigned int keepalive_timeout_ms; /* TCP keepalive and user timeout (0: default) */
	u64 reconnect_timeout_ms;   /* 20 s: a broken client may reconnect */
	u64 recovery_timeout_ms;    /* 30 s: previously mounted clients must reconnect */
	u64 fence_timeout_ms;	    /* 30 s: the fence agent must act */
	u64 leader_fence_timeout_ms; /* 15 s: fencing earlier leaders at startup */
	/*
	 * The previous mount of this server's quorum slot, which crashed (0 if none): it no
	 * longer runs (this mount holds the slot's address), so it is fenced at once instead
	 * of waited for until the recovery timeout.
	 */
	u64 slot_crashed_rid;
};

int server_create(const struct server_config *cfg, struct server **ret);
void server_destroy(struct server *srv);

/* the quorum agent's callbacks */
void server_start(struct server *srv, u64 term);
void server_stop(struct server *srv);
enum quorum_server_status server_status(struct server *srv);
/* stop and wait until it is down */
void server_stop_wait(struct server *srv);
extern const struct quorum_server_ops server_quorum_ops;

void server_set_log_merge_wait_timeout(struct server *srv, u64 ms);

/* ---- fencing, for the fence agent through the control socket ---- */

struct server_fence_request {
	u64 rid;
	struct sockaddr_in sin;
	char reason[32];
	u64 elapsed_secs;
	bool fenced;
	bool error;
};

/* copy up to nr pending fence requests; returns how many there are (-ENOTCONN if not up) */
int server_fence_list(struct server *srv, struct server_fence_request *reqs, int nr);
/* the agent's verdict on the fence request of rid: fenced, or failed */
int server_fence_ack(struct server *srv, u64 rid, bool fenced);

/* ---- debugging and tests ---- */

int server_describe_locks(struct server *srv, char *buf, unsigned int len);
/* ask for a log merge at the next opportunity (finalize every open log tree) */
void server_force_merge(struct server *srv);
/* merges completed so far */
u64 server_merges_done(struct server *srv);

#endif
