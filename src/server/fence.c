/*
 * fence.c: recovery of mounts after a server change, fencing, and reclaiming departed mounts.
 *
 * A new server knows only what is persistent.  Every rid in mounted_clients was mounted
 * under the previous server and may hold cluster locks, so the server records each as
 * pending a greeting and a lock recovery, and grants no lock until all have recovered.
 * Mounts that do not come back within the recovery timeout are fenced.
 *
 * Fencing makes sure a mount can no longer write to the devices.  The server only records
 * requests {rid, address, reason}; a fence agent (scoutfs-fenced) lists them through the
 * control socket, acts (kills the daemon, powers off the host, ...) and acknowledges.  Only
 * after a rid is confirmed fenced does the reclaim worker give its locks, log trees and
 * allocators back.  A request the agent does not service in time, or reports as failed,
 * stops the server so that another quorum member can try.
 *
 * Reclaiming a rid (after its farewell or its fencing) is idempotent, so a later server can
 * repeat it: drop its lock entries, finalize its open log tree after returning the tree's
 * allocators, and delete its mounted_clients item last -- that item's existence is what
 * marks the rid as still needing to be dealt with.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/server_int.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(fence_requests);
COUNTER_DEFINE(fence_timeouts);
COUNTER_DEFINE(reclaimed_open_logs);
COUNTER_DEFINE(reclaimed_rids);
COUNTER_DEFINE(recov_timeouts);

#define RECLAIM_POLL_MS 1000

/* ---- recovery ---- */

struct recov_scan {
	struct server *srv;
	int nr;
	int err;
};

static int recov_add_cb(void *arg, const struct scoutfs_key *key, u64 seq, u8 flags,
			const void *val, unsigned int val_len)
{
	struct recov_scan *rs = arg;
	struct recov_entry *re;

	if (key->sk_zone != SCOUTFS_MOUNTED_CLIENT_ZONE)
		return 0;
	re = calloc(1, sizeof(*re));
	if (!re)
		return -ENOMEM;
	re->rid = key_first(key);
	re->pending = RECOV_ALL;
	re->next = rs->srv->recov;
	rs->srv->recov = re;
	rs->nr++;
	return 0;
}

static void mc_sin(const struct scoutfs_mounted_client_btree_val *mcv, struct sockaddr_in *sin)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(le16_to_cpu(mcv->addr.port));
	sin->sin_addr.s_addr = htonl(le32_to_cpu(mcv->addr.addr));
}

/* fence a rid at the address its mounted-client record gives */
static int fence_start_mounted(struct server *srv, u64 rid, const char *reason)
{
	struct scoutfs_mounted_client_btree_val mcv;
	struct sockaddr_in sin;
	int err;

	pthread_mutex_lock(&srv->mutex);
	err = server_mounted_client(srv, rid, &mcv);
	pthread_mutex_unlock(&srv->mutex);
	if (err == 0)
		mc_sin(&mcv, &sin);
	else
		memset(&sin, 0, sizeof(sin));
	return fence_start(srv, rid, &sin, reason);
}

int recov_prepare(struct server *srv)
{
	struct btree_visit_ops ops = { .item = recov_add_cb };
	struct recov_scan rs = { .srv = srv };
	int err;

	pthread_mutex_lock(&srv->recov_mutex);
	err = btree_visit(srv->bc, &srv->dirty->mounted_clients, &ops, &rs);
	srv->recov_armed = false;
	pthread_mutex_unlock(&srv->recov_mutex);
	if (rs.nr)
		log_info("waiting for %d previously mounted clients to recover", rs.nr);
	return err;
}

void recov_begin(struct server *srv)
{
	u64 crashed = srv->cfg.slot_crashed_rid;
	bool fence_crashed = false;

	pthread_mutex_lock(&srv->recov_mutex);
	srv->recov_armed = true;
	if (srv->recov) {
		srv->recov_deadline_ms = now_mono_ms() + srv->cfg.recovery_timeout_ms;
		workq_queue_delayed(srv->wq, &srv->recov_work, srv->cfg.recovery_timeout_ms);
	}
	for (struct recov_entry *re = srv->recov; crashed && re; re = re->next)
		fence_crashed |= re->rid == crashed;
	pthread_mutex_unlock(&srv->recov_mutex);

	if (fence_crashed) {
		log_warn("rid %016llx, the previous mount of this quorum slot, crashed: fencing it "
			 "now rather than waiting for it to recover", (unsigned long long)crashed);
		if (fence_start_mounted(srv, crashed, "client_recovery") < 0)
			server_fail(srv, "starting a fence", -ENOMEM);
	}
}

/* run as work: it may be reached from inside the lock server's own callbacks */
void recov_done_work_fn(struct work *work)
{
	struct server *srv = container_of(work, struct server, recov_done_work);
	int err;

	log_info("all clients recovered");
	err = lock_server_recovery_done(srv->ls);
	if (err < 0)
		server_fail(srv, "processing locks after recovery", err);
}

void recov_finish(struct server *srv, u64 rid, unsigned int bits)
{
	struct recov_entry **pos, *re;
	bool done = false;

	pthread_mutex_lock(&srv->recov_mutex);
	for (pos = &srv->recov; (re = *pos); pos = &re->next) {
		if (re->rid != rid)
			continue;
		re->pending &= ~bits;
		if (re->pending == 0) {
			*pos = re->next;
			free(re);
			done = srv->recov == NULL && srv->recov_armed;
		}
		break;
	}
	pthread_mutex_unlock(&srv->recov_mutex);
	if (done && srv->wq)
		workq_queue(srv->wq, &srv->recov_done_work);
}

bool recov_pending(struct server *srv, u64 rid, unsigned int bits)
{
	struct recov_entry *re;
	bool pending = false;

	pthread_mutex_lock(&srv->recov_mutex);
	for (re = srv->recov; re; re = re->next) {
		if (re->rid == rid) {
			pending = (re->pending & bits) != 0;
			break;
		}
	}
	pthread_mutex_unlock(&srv->recov_mutex);
	return pending;
}

bool recov_any_pending(struct server *srv, unsigned int bits)
{
	struct recov_entry *re;
	bool pending = false;

	pthread_mutex_lock(&srv->recov_mutex);
	for (re = srv->recov; re; re = re->next) {
		if (re->pending & bits) {
			pending = true;
			break;
		}
	}
	pthread_mutex_unlock(&srv->recov_mutex);
	return pending;
}

void recov_destroy(struct server *srv)
{
	struct recov_entry *re;

	pthread_mutex_lock(&srv->recov_mutex);
	while ((re = srv->recov)) {
		srv->recov = re->next;
		free(re);
	}
	srv->recov_armed = false;
	pthread_mutex_unlock(&srv->recov_mutex);
}

/* the recovery timeout: fence every rid that has not recovered */
void recov_work_fn(struct work *work)
{
	struct server *srv = container_of(work, struct server, recov_work);
	u64 rids[64];
	int nr = 0;

	pthread_mutex_lock(&srv->recov_mutex);
	for (struct recov_entry *re = srv->recov; re && nr < (int)ARRAY_SIZE(rids); re = re->next)
		rids[nr++] = re->rid;
	pthread_mutex_unlock(&srv->recov_mutex);

	for (int i = 0; i < nr; i++) {
		counter_inc(recov_timeouts);
		log_warn("client rid %016llx did not recover in time", (unsigned long long)rids[i]);
		if (fence_start_mounted(srv, rids[i], "client_recovery") < 0)
			server_fail(srv, "starting a fence", -ENOMEM);
	}
}

/* ---- fence requests ---- */

int fence_start(struct server *srv, u64 rid, const struct sockaddr_in *sin, const char *reason)
{
	struct fence_req *fr;
	char addr[INET_ADDRSTRLEN];

	if (rid == 0)
		return 0;
	pthread_mutex_lock(&srv->fence_mutex);
	for (fr = srv->fences; fr; fr = fr->next) {
		if (fr->rid == rid) {
			/* one request per rid, whatever the reasons */
			pthread_mutex_unlock(&srv->fence_mutex);
			return 0;
		}
	}
	fr = calloc(1, sizeof(*fr));
	if (!fr) {
		pthread_mutex_unlock(&srv->fence_mutex);
		return -ENOMEM;
	}
	fr->rid = rid;
	fr->sin = *sin;
	snprintf(fr->reason, sizeof(fr->reason), "%s", reason);
	fr->start_ms = now_mono_ms();
	fr->state = FENCE_PENDING;
	fr->next = srv->fences;
	srv->fences = fr;
	pthread_mutex_unlock(&srv->fence_mutex);

	counter_inc(fence_requests);
	inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
	log_warn("fencing rid %016llx at %s for %s", (unsigned long long)rid, addr, reason);
	return 0;
}

/* mark requests the agent has not serviced in time as failed */
static void expire_fences(struct server *srv)
{
	u64 now = now_mono_ms();
	struct fence_req *fr;

	pthread_mutex_lock(&srv->fence_mutex);
	for (fr = srv->fences; fr; fr = fr->next) {
		if (fr->state == FENCE_PENDING && now - fr->start_ms > srv->cfg.fence_timeout_ms) {
			fr->state = FENCE_ERROR;
			counter_inc(fence_timeouts);
			log_err("fence request for rid %016llx was not serviced in %llu ms",
				(unsigned long long)fr->rid,
				(unsigned long long)srv->cfg.fence_timeout_ms);
		}
	}
	pthread_mutex_unlock(&srv->fence_mutex);
}

int server_fence_list(struct server *srv, struct server_fence_request *reqs, int nr)
{
	enum quorum_server_status status = server_status(srv);
	struct fence_req *fr;
	u64 now = now_mono_ms();
	int count = 0;

	if (status != QUORUM_SERVER_UP && status != QUORUM_SERVER_STARTING)
		return -ENOTCONN;
	expire_fences(srv);
	pthread_mutex_lock(&srv->fence_mutex);
	for (fr = srv->fences; fr; fr = fr->next) {
		if (count < nr) {
			reqs[count].rid = fr->rid;
			reqs[count].sin = fr->sin;
			snprintf(reqs[count].reason, sizeof(reqs[count].reason), "%s", fr->reason);
			reqs[count].elapsed_secs = (now - fr->start_ms) / 1000;
			reqs[count].fenced = fr->state == FENCE_FENCED;
			reqs[count].error = fr->state == FENCE_ERROR;
		}
		count++;
	}
	pthread_mutex_unlock(&srv->fence_mutex);
	return count;
}

int server_fence_ack(struct server *srv, u64 rid, bool fenced)
{
	struct fence_req *fr;
	int err = -ENOENT;

	pthread_mutex_lock(&srv->fence_mutex);
	for (fr = srv->fences; fr; fr = fr->next) {
		if (fr->rid == rid && fr->state == FENCE_PENDING) {
			fr->state = fenced ? FENCE_FENCED : FENCE_ERROR;
			err = 0;
			break;
		}
	}
	pthread_mutex_unlock(&srv->fence_mutex);
	if (err == 0) {
		if (fenced)
			log_info("fence agent fenced rid %016llx", (unsigned long long)rid);
		else
			log_err("error indicated by fence action for rid %016llx",
				(unsigned long long)rid);
		if (srv->wq)
			workq_queue(srv->wq, &srv->reclaim_work);
	}
	return err;
}

void fence_destroy(struct server *srv)
{
	struct fence_req *fr;

	pthread_mutex_lock(&srv->fence_mutex);
	while ((fr = srv->fences)) {
		srv->fences = fr->next;
		free(fr);
	}
	pthread_mutex_unlock(&srv->fence_mutex);
}

struct leader_ctx {
	struct server *srv;
	u64 rids[SCOUTFS_QUORUM_MAX_SLOTS * 2];
	int nr;
};

static int old_leader_cb(void *arg, u64 rid, u64 term, const struct sockaddr_in *sin)
{
	struct leader_ctx *ctx = arg;
	int err;

	log_warn("fencing previous leader rid %016llx of term %llu", (unsigned long long)rid,
		 (unsigned long long)term);
	err = fence_start(ctx->srv, rid, sin, "quorum_block_leader");
	if (err == 0 && ctx->nr < (int)ARRAY_SIZE(ctx->rids))
		ctx->rids[ctx->nr++] = rid;
	return err;
}

static enum fence_state fence_state_of(struct server *srv, u64 rid)
{
	enum fence_state state = FENCE_ERROR;
	struct fence_req *fr;

	pthread_mutex_lock(&srv->fence_mutex);
	for (fr = srv->fences; fr; fr = fr->next) {
		if (fr->rid == rid) {
			state = fr->state;
			break;
		}
	}
	pthread_mutex_unlock(&srv->fence_mutex);
	return state;
}

/*
 * Every earlier leader recorded in the quorum blocks that may still be running must be
 * fenced before this server writes anything.
 */
int fence_old_leaders(struct server *srv)
{
	struct leader_ctx ctx = { .srv = srv };
	u64 deadline;
	bool pending;
	int err;

	err = quorum_for_each_old_leader(srv->cfg.meta_dev, srv->cfg.fsid, &srv->cfg.qconf,
					 srv->term, srv->cfg.rid, old_leader_cb, &ctx);
	if (err < 0) {
		log_err("reading quorum blocks for earlier leaders failed: %s", strerror(-err));
		return err;
	}
	deadline = now_mono_ms() + srv->cfg.leader_fence_timeout_ms;
	for (;;) {
		pending = false;
		for (int i = 0; i < ctx.nr; i++) {
			enum fence_state state = fence_state_of(srv, ctx.rids[i]);

			if (state == FENCE_ERROR) {
				log_err("fencing previous leader rid %016llx failed",
					(unsigned long long)ctx.rids[i]);
				return -EIO;
			}
			if (state == FENCE_PENDING)
				pending = true;
		}
		if (!pending)
			return 0;
		if (now_mono_ms() >= deadline) {
			log_err("timed out fencing previous leaders (is scoutfs-fenced running?)");
			return -ETIMEDOUT;
		}
		if (server_stopping(srv))
			return -ESHUTDOWN;
		usleep(50 * 1000);
	}
}

/* ---- reclaim ---- */

int reclaim_rid(struct server *srv, u64 rid)
{
	struct scoutfs_log_trees lt;
	struct scoutfs_key key;
	struct btree_txn txn;
	int err;

	err = lock_server_farewell(srv->ls, rid);
	if (err < 0)
		return err;

	server_hold(srv);
	err = server_latest_log_trees(srv, rid, &lt);
	if (err == 0 && !(le64_to_cpu(lt.flags) & SCOUTFS_LOG_TREES_FINALIZED)) {
		/* the tree keeps its items for merging; its allocators go back */
		err = server_return_log_tree_allocs(srv, &lt);
		if (err == 0) {
			lt.commit_trans_seq = lt.get_trans_seq;
			lt.flags = cpu_to_le64(le64_to_cpu(lt.flags) | SCOUTFS_LOG_TREES_FINALIZED);
			lt.finalize_seq = cpu_to_le64(server_next_seq(srv));
			memset(lt.data_alloc_zones, 0, sizeof(lt.data_alloc_zones));
			err = server_update_log_trees(srv, &lt);
		}
		if (err == 0)
			counter_inc(reclaimed_open_logs);
	} else if (err == -ENOENT) {
		err = 0;
	}
	if (err == 0) {
		txn = server_txn(srv);
		key = server_mc_key(rid);
		err = btree_delete(&txn, &srv->dirty->mounted_clients, &key);
		if (err == -ENOENT)
			err = 0;
	}
	err = server_apply(srv, err);
	if (err == 0) {
		counter_inc(reclaimed_rids);
		recov_finish(srv, rid, RECOV_ALL);
		omap_remove_rid(srv, rid);
		/* a merge may have been waiting for this rid's tree */
		workq_queue(srv->wq, &srv->merge_work);
	}
	return err;
}

void reclaim_work_fn(struct work *work)
{
	struct server *srv = container_of(work, struct server, reclaim_work);
	struct fence_req **pos, *fr;
	enum fence_state state = FENCE_PENDING;
	u64 rid = 0;
	int err;

	if (server_stopping(srv))
		return;
	/* fences acknowledged while starting are reclaimed once up (queued then) */
	if (server_status(srv) != QUORUM_SERVER_UP)
		return;
	expire_fences(srv);

	pthread_mutex_lock(&srv->fence_mutex);
	for (fr = srv->fences; fr; fr = fr->next) {
		if (fr->state != FENCE_PENDING) {
			rid = fr->rid;
			state = fr->state;
			break;
		}
	}
	pthread_mutex_unlock(&srv->fence_mutex);

	if (state == FENCE_ERROR) {
		/* another leader may be able to fence it */
		server_fail(srv, "fencing", -EIO);
		return;
	}
	if (state == FENCE_FENCED) {
		err = reclaim_rid(srv, rid);
		if (err < 0) {
			server_fail(srv, "reclaiming a fenced mount", err);
			return;
		}
		log_info("reclaimed fenced rid %016llx", (unsigned long long)rid);
		pthread_mutex_lock(&srv->fence_mutex);
		for (pos = &srv->fences; (fr = *pos); pos = &fr->next) {
			if (fr->rid == rid) {
				*pos = fr->next;
				free(fr);
				break;
			}
		}
		pthread_mutex_unlock(&srv->fence_mutex);
		workq_queue(srv->wq, &srv->reclaim_work);
		return;
	}
	workq_queue_delayed(srv->wq, &srv->reclaim_work, RECLAIM_POLL_MS);
}
