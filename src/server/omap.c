/*
 * omap.c: the open map -- which mounts still use the inodes of a group.
 *
 * An inode whose last link is gone may be deleted only when no mount anywhere still uses it
 * (open files, mappings, a cwd, names the kernel still caches).  Each mount knows only what
 * its own kernel holds, so a mount about to delete asks the server for the union of every
 * other mount's bitmap of the inode's 1024-inode group.  The server asks each mounted
 * client in turn (OPEN_INO_MAP, server to client), ORs the answers and replies.
 *
 * The answer errs on the side of "in use": a mounted client that is not connected right
 * now (it may be reconnecting, or the server may still be recovering it) counts as using
 * every inode, and so does one whose answer fails.  A deletion skipped that way is retried
 * by a later orphan scan; an inode deleted while in use would lose data.  A mount that is
 * reclaimed (farewell, or fenced) uses nothing any more: a request still waiting for it
 * stops waiting.  Requests are not persistent: after a failover clients resend them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_int.h"
#include "util/counters.h"
#include "util/log.h"

COUNTER_DEFINE(omap_request);
COUNTER_DEFINE(omap_fanout);
COUNTER_DEFINE(omap_unreachable);
COUNTER_DEFINE(omap_reply);

struct omap_req {
	struct omap_req *next;
	u64 id;
	u64 rid;    /* the asking mount */
	u64 net_id; /* its request, answered when every other mount has answered */
	u64 group_nr;
	le64 bits[SCOUTFS_OPEN_INO_MAP_LE64S];
	u64 *waiting; /* rids still to answer */
	unsigned int nr_waiting;
};

/* the mounted clients other than rid */
struct mc_rids {
	u64 except;
	u64 *rids;
	unsigned int nr;
	unsigned int alloc;
};

static int collect_rid(void *arg, const struct scoutfs_key *key, u64 seq, u8 flags,
		       const void *val, unsigned int val_len)
{
	struct mc_rids *mr = arg;
	u64 rid = key_first(key);
	u64 *rids;

	if (rid == mr->except)
		return 0;
	if (mr->nr == mr->alloc) {
		rids = realloc(mr->rids, (mr->alloc ? mr->alloc * 2 : 8) * sizeof(*rids));
		if (!rids)
			return -ENOMEM;
		mr->rids = rids;
		mr->alloc = mr->alloc ? mr->alloc * 2 : 8;
	}
	mr->rids[mr->nr++] = rid;
	return 0;
}

static struct omap_req *find_req(struct server *srv, u64 id)
{
	struct omap_req *req;

	for (req = srv->omap_reqs; req && req->id != id; req = req->next)
		;
	return req;
}

static void unlink_req(struct server *srv, struct omap_req *req)
{
	struct omap_req **pos;

	for (pos = &srv->omap_reqs; *pos; pos = &(*pos)->next) {
		if (*pos == req) {
			*pos = req->next;
			return;
		}
	}
}

static void free_req(struct omap_req *req)
{
	free(req->waiting);
	free(req);
}

static void answer(struct server *srv, struct omap_req *req)
{
	struct scoutfs_open_ino_map map;

	memset(&map, 0, sizeof(map));
	map.args.group_nr = cpu_to_le64(req->group_nr);
	memcpy(map.bits, req->bits, sizeof(map.bits));
	counter_inc(omap_reply);
	/* a requester that is gone resends to whichever server it finds */
	net_server_response(srv->net, req->rid, SCOUTFS_NET_CMD_OPEN_INO_MAP, req->net_id, 0, &map,
			    sizeof(map));
}

/*
 * rid answered (bits, or NULL: counts as using every inode; or gone: uses nothing).
 * Returns the request if that was the last answer it waited for (unlinked, for the caller
 * to answer and free outside the mutex).
 */
static struct omap_req *note_answer(struct server *srv, struct omap_req *req, u64 rid,
				    const le64 *bits, bool gone)
{
	unsigned int i;

	for (i = 0; i < req->nr_waiting && req->waiting[i] != rid; i++)
		;
	if (i == req->nr_waiting)
		return NULL; /* a duplicate, or reclaimed meanwhile */
	req->waiting[i] = req->waiting[--req->nr_waiting];
	for (unsigned int b = 0; !gone && b < SCOUTFS_OPEN_INO_MAP_LE64S; b++)
		req->bits[b] |= bits ? bits[b] : cpu_to_le64(~0ULL);
	if (req->nr_waiting)
		return NULL;
	unlink_req(srv, req);
	return req;
}

static void omap_response(struct net_conn *conn, const void *data, unsigned int len, int error,
			  void *arg)
{
	struct server *srv = net_conn_arg(conn);
	const struct scoutfs_open_ino_map *map = data;
	u64 id = (u64)(uintptr_t)arg;
	struct omap_req *req;

	if (error == 0 && (len != sizeof(*map) || le64_to_cpu(map->args.req_id) != id)) {
		log_warn("malformed open map answer from rid %016llx",
			 (unsigned long long)net_conn_rid(conn));
		error = -EPROTO;
	}
	pthread_mutex_lock(&srv->omap_mutex);
	req = find_req(srv, id);
	if (req)
		req = note_answer(srv, req, net_conn_rid(conn), error ? NULL : map->bits, false);
	pthread_mutex_unlock(&srv->omap_mutex);
	if (req) {
		answer(srv, req);
		free_req(req);
	}
}

int omap_request(struct server *srv, u64 rid, u64 net_id, u64 group_nr)
{
	struct btree_visit_ops ops = { .item = collect_rid };
	struct scoutfs_open_ino_map_args args;
	struct mc_rids mr = { .except = rid };
	struct omap_req *req;
	struct omap_req *done = NULL;
	int err;

	counter_inc(omap_request);
	req = calloc(1, sizeof(*req));
	if (!req)
		return -ENOMEM;
	pthread_mutex_lock(&srv->mutex);
	err = btree_visit(srv->bc, &srv->dirty->mounted_clients, &ops, &mr);
	pthread_mutex_unlock(&srv->mutex);
	if (err < 0) {
		free(mr.rids);
		free(req);
		return err;
	}

	req->rid = rid;
	req->net_id = net_id;
	req->group_nr = group_nr;
	/* answers may finish (and free) the request while we still send: keep our own list */
	if (mr.nr) {
		req->waiting = malloc(mr.nr * sizeof(*req->waiting));
		if (!req->waiting) {
			free(mr.rids);
			free(req);
			return -ENOMEM;
		}
		memcpy(req->waiting, mr.rids, mr.nr * sizeof(*req->waiting));
	}
	req->nr_waiting = mr.nr;
	pthread_mutex_lock(&srv->omap_mutex);
	req->id = ++srv->omap_next_id;
	if (req->nr_waiting) {
		req->next = srv->omap_reqs;
		srv->omap_reqs = req;
	} else {
		done = req; /* the only mount: nobody else uses anything */
	}
	pthread_mutex_unlock(&srv->omap_mutex);

	memset(&args, 0, sizeof(args));
	args.group_nr = cpu_to_le64(group_nr);
	args.req_id = cpu_to_le64(req->id);
	for (unsigned int i = 0; !done && i < mr.nr; i++) {
		counter_inc(omap_fanout);
		err = net_server_submit_request(srv->net, mr.rids[i], SCOUTFS_NET_CMD_OPEN_INO_MAP,
						&args, sizeof(args), omap_response,
						(void *)(uintptr_t)args.req_id);
		if (err == 0)
			continue;
		/* not connected now: it may hold anything */
		counter_inc(omap_unreachable);
		pthread_mutex_lock(&srv->omap_mutex);
		req = find_req(srv, le64_to_cpu(args.req_id));
		if (req)
			done = note_answer(srv, req, mr.rids[i], NULL, false);
		pthread_mutex_unlock(&srv->omap_mutex);
	}
	free(mr.rids);
	if (done) {
		answer(srv, done);
		free_req(done);
	}
	return 0;
}

void omap_remove_rid(struct server *srv, u64 rid)
{
	struct omap_req *done = NULL;
	struct omap_req *req, *next, *fin;

	pthread_mutex_lock(&srv->omap_mutex);
	for (req = srv->omap_reqs; req; req = next) {
		next = req->next;
		fin = note_answer(srv, req, rid, NULL, true);
		if (fin) {
			fin->next = done;
			done = fin;
		}
	}
	pthread_mutex_unlock(&srv->omap_mutex);
	for (req = done; req; req = next) {
		next = req->next;
		answer(srv, req);
		free_req(req);
	}
}

void omap_destroy(struct server *srv)
{
	struct omap_req *req;

	pthread_mutex_lock(&srv->omap_mutex);
	while ((req = srv->omap_reqs)) {
		srv->omap_reqs = req->next;
		free_req(req);
	}
	pthread_mutex_unlock(&srv->omap_mutex);
}
