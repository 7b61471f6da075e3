/*
 * lock_server.h: the server side of cluster locks.
 *
 * Owns: for every lock key any client asked about, the clients granted a mode, the
 * requests waiting in arrival order, and the clients being invalidated.  Nothing is
 * persistent: a new server rebuilds the table from what the clients report in recovery.
 *
 * Rules:
 *  - Requests are granted strictly in arrival order; a request waits behind the head even
 *    when it is compatible with the current holders.
 *  - One round of invalidations at a time per lock, at most one outstanding per client
 *    entry; the head request is granted when no invalidations are outstanding and no client
 *    is still recovering its locks.
 *  - Compatibility: same mode READ/READ or WRITE_ONLY/WRITE_ONLY; READ -> WRITE by the same
 *    client (an upgrade keeps its cache); NULL with anything of another client.  A NULL
 *    request from a client invalidates that client's own grant.  Invalidation of a WRITE for
 *    a READ request downgrades to READ; everything else invalidates to NULL.
 *  - Every WRITE and WRITE_ONLY grant carries a fresh seq from the server's seq counter.
 *  - A send to a client that is gone (-ENOTCONN) is not an error: it will be fenced and
 *    reclaimed, which removes its entries.
 */
#ifndef SCOUTFS_LOCK_SERVER_H
#define SCOUTFS_LOCK_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "format/format.h"

struct lock_server;

struct lock_server_ops {
	/* the grant: a response to the client's request net_id */
	int (*send_grant)(void *arg, u64 rid, u64 net_id, const struct scoutfs_net_lock *nl);
	/* an invalidation request to a client */
	int (*send_invalidate)(void *arg, u64 rid, const struct scoutfs_net_lock *nl);
	/* a LOCK_RECOVER request to a client for its locks at or after key */
	int (*send_recover)(void *arg, u64 rid, const struct scoutfs_key *key);
	/* a new seq from the server's counter (write_seq of WRITE and WRITE_ONLY grants) */
	u64 (*next_seq)(void *arg);
	/* raise the server's seq counter to at least seq (recovered write_seqs) */
	void (*raise_seq)(void *arg, u64 seq);
	/* is any client still pending lock recovery? grants wait while it is */
	bool (*recovery_pending)(void *arg);
	/* rid finished lock recovery (its empty recover reply arrived) */
	void (*recovery_finished)(void *arg, u64 rid);
};

int lock_server_create(const struct lock_server_ops *ops, void *arg, struct lock_server **ret);
void lock_server_destroy(struct lock_server *ls);

/* a client's LOCK request (net_id: its request id, answered with the grant) */
int lock_server_request(struct lock_server *ls, u64 rid, u64 net_id, const struct scoutfs_net_lock *nl);
/* a client's answer to our invalidation */
int lock_server_invalidate_response(struct lock_server *ls, u64 rid,
				    const struct scoutfs_net_lock *nl);
/* a client greeted this server for the first time; if it must recover, ask for its locks */
int lock_server_greeting(struct lock_server *ls, u64 rid, bool recovering);
/* a client's LOCK_RECOVER reply: install its grants and ask for more, or finish */
int lock_server_recover_response(struct lock_server *ls, u64 rid,
				 const struct scoutfs_net_lock_recover *nlr, unsigned int len);
/* every client has recovered or was fenced: process everything that queued meanwhile */
int lock_server_recovery_done(struct lock_server *ls);
/* a client left (farewell) or was fenced: drop all its entries, process affected locks */
int lock_server_farewell(struct lock_server *ls, u64 rid);

/* debugging: "key mode list rid net_id" lines of every entry (tests parse the rid) */
int lock_server_describe(struct lock_server *ls, char *buf, unsigned int len);
/* how many entries a rid has (tests: no entries left for departed rids) */
int lock_server_rid_entries(struct lock_server *ls, u64 rid);

#endif
