/*
 * server_int.h: state shared by the files of the server layer (server.c: lifecycle,
 * commits and request handlers; merge.c: finalizing and merging log btrees; fence.c:
 * recovery, fencing and reclaim).  Nothing outside src/server includes this.
 */
#ifndef SCOUTFS_SERVER_INT_H
#define SCOUTFS_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "alloc/alloc.h"
#include "block/block.h"
#include "btree/btree.h"
#include "format/key.h"
#include "net/net.h"
#include "server/lock_server.h"
#include "server/server.h"
#include "util/util.h"
#include "util/workq.h"

/*
 * Blocks the server refills metadata lists to: a full list block, or less on a small
 * metadata device so that a few mounts' transactions don't take all of it.  Lists are refilled
 * when they fall below half.  Metadata blocks held back from creations so that deletions can
 * always commit scale the same way.
 */
static inline u64 server_meta_fill_target(const struct scoutfs_super_block *super)
{
	u64 total = le64_to_cpu(super->total_meta_blocks);

	return max_t(u64, 256, min_t(u64, SCOUTFS_ALLOC_LIST_MAX_BLOCKS, total / 16));
}

static inline u64 server_meta_reserved(const struct scoutfs_super_block *super)
{
	return min_t(u64, 5ULL * SCOUTFS_ALLOC_LIST_MAX_BLOCKS,
		     le64_to_cpu(super->total_meta_blocks) / 8);
}

/* a holder may dirty this many blocks; commit first if the server has less */
static inline u64 server_hold_budget(const struct scoutfs_super_block *super)
{
	return max_t(u64, 32, min_t(u64, 500, server_meta_fill_target(super) / 4));
}
/*
 * Data blocks a client's transaction gets, and the level below which it is refilled: 4 GiB
 * and 1 GiB as in the original, but never more than 1/64th of the device, so that on small
 * devices a few mounts don't hold all the free space in their pools (another mount would get
 * ENOSPC with the device nearly empty).
 */
static inline u64 server_data_fill_target(const struct scoutfs_super_block *super)
{
	return max_t(u64, 256, min_t(u64, 4ULL << (30 - SCOUTFS_BLOCK_SM_SHIFT),
				     le64_to_cpu(super->total_data_blocks) / 64));
}

static inline u64 server_data_fill_lo(const struct scoutfs_super_block *super)
{
	return server_data_fill_target(super) / 4;
}

enum recov_bits {
	RECOV_GREETING = 1 << 0,
	RECOV_LOCKS = 1 << 1,
	RECOV_ALL = RECOV_GREETING | RECOV_LOCKS,
};

struct recov_entry {
	struct recov_entry *next;
	u64 rid;
	unsigned int pending;
};

enum fence_state {
	FENCE_PENDING = 0,
	FENCE_FENCED,
	FENCE_ERROR,
};

struct fence_req {
	struct fence_req *next;
	u64 rid;
	struct sockaddr_in sin;
	char reason[32];
	u64 start_ms;
	enum fence_state state;
};

struct farewell_req {
	struct farewell_req *next;
	u64 rid;
	u64 net_id;
};

struct server {
	struct server_config cfg;

	/* lifecycle */
	pthread_mutex_t status_mutex;
	pthread_cond_t status_cond;
	enum quorum_server_status status;
	u64 term;
	bool stop_requested;
	pthread_t thread;
	bool thread_joinable;

	/* persistent state, changed under mutex ("holding the server commit") */
	pthread_mutex_t mutex;
	struct block_cache *bc;
	struct block_writer *wri;
	struct alloc alloc;
	bool alloc_active;
	int cur;	/* server_meta_avail/freed index the server allocates from */
	int avail_idx;	/* meta_alloc index that fills lists; the other takes frees */
	struct scoutfs_super_block *dirty; /* an aligned small block buffer */
	_Atomic u64 seq;
	u64 change_gen; /* changes made now belong to this commit generation */

	/* the last written super, served to readers */
	pthread_mutex_t stable_mutex;
	struct scoutfs_super_block stable;

	/* group commit */
	pthread_mutex_t commit_mutex;
	pthread_cond_t commit_cond;
	u64 commit_requested; /* highest generation someone waits for */
	u64 committed;	      /* highest generation durable */
	int commit_err;
	pthread_t commit_thread;
	bool commit_thread_running;
	bool commit_stop;

	struct net_server *net;
	struct lock_server *ls;
	struct workq *wq;

	/* recovery of clients mounted under the previous server */
	pthread_mutex_t recov_mutex;
	struct recov_entry *recov;
	bool recov_armed;
	u64 recov_deadline_ms;
	struct work recov_work;
	struct work recov_done_work;

	/* farewells waiting to be answered */
	pthread_mutex_t farewell_mutex;
	struct farewell_req *farewells;
	struct work farewell_work;

	/* fencing */
	pthread_mutex_t fence_mutex;
	struct fence_req *fences;
	struct work reclaim_work;

	/* open map requests waiting for other mounts' answers (omap.c) */
	pthread_mutex_t omap_mutex;
	struct omap_req *omap_reqs;
	u64 omap_next_id;

	/* merging */
	struct work merge_work;
	atomic_bool force_merge;
	u64 finalize_sent_seq;
	_Atomic u64 merges_done;
	u64 log_merge_wait_timeout_ms;
};

/* ---- server.c ---- */
u64 server_next_seq(struct server *srv);
void server_raise_seq(struct server *srv, u64 seq);
/* take and release the server commit; apply waits until the change is durable */
void server_hold(struct server *srv);
int server_apply(struct server *srv, int err);
/* release without waiting for a commit (nothing was changed) */
void server_release(struct server *srv);
bool server_stopping(struct server *srv);
void server_fail(struct server *srv, const char *why, int err);
struct btree_txn server_txn(struct server *srv);
int server_latest_log_trees(struct server *srv, u64 rid, struct scoutfs_log_trees *lt);
int server_update_log_trees(struct server *srv, const struct scoutfs_log_trees *lt);
int server_mounted_client(struct server *srv, u64 rid, struct scoutfs_mounted_client_btree_val *mcv);
/* give a log tree's allocators back (finalize, reclaim) */
int server_return_log_tree_allocs(struct server *srv, struct scoutfs_log_trees *lt);

static inline struct scoutfs_key server_lt_key(u64 rid, u64 nr)
{
	return key_make(SCOUTFS_LOG_TREES_ZONE, rid, 0, nr, 0, 0);
}

static inline struct scoutfs_key server_mc_key(u64 rid)
{
	return key_make(SCOUTFS_MOUNTED_CLIENT_ZONE, rid, 0, 0, 0, 0);
}

/* ---- omap.c ---- */
/* answer rid's request net_id with the union of the other mounts' bitmaps of group_nr */
int omap_request(struct server *srv, u64 rid, u64 net_id, u64 group_nr);
/* rid is gone (reclaimed): requests stop waiting for it */
void omap_remove_rid(struct server *srv, u64 rid);
/* forget every request (server stopping; clients resend to the next server) */
void omap_destroy(struct server *srv);

/* ---- merge.c ---- */
int merge_finalize_for_client(struct server *srv, u64 rid);
void merge_work_fn(struct work *work);

/* ---- fence.c ---- */
int recov_prepare(struct server *srv);
void recov_begin(struct server *srv);
void recov_finish(struct server *srv, u64 rid, unsigned int bits);
bool recov_pending(struct server *srv, u64 rid, unsigned int bits);
bool recov_any_pending(struct server *srv, unsigned int bits);
void recov_destroy(struct server *srv);
void recov_work_fn(struct work *work);
void recov_done_work_fn(struct work *work);
int fence_start(struct server *srv, u64 rid, const struct sockaddr_in *sin, const char *reason);
int fence_old_leaders(struct server *srv);
void fence_destroy(struct server *srv);
void reclaim_work_fn(struct work *work);
int reclaim_rid(struct server *srv, u64 rid);

#endif
