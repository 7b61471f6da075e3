/*
 * server.c: the server's lifecycle, its commits, and the handlers of client requests.
 *
 * The elected mount runs the server.  It reads the super into a private "dirty" copy, and
 * every change -- a client's new log_trees, inode numbers handed out, allocators refilled, a
 * merge step -- is made to that copy and to copy-on-write blocks under the server mutex
 * ("holding the commit").  A commit thread writes the dirty blocks, flushes, writes the
 * super, flushes again, and only then lets the handlers whose changes it carried reply.
 * Handlers that arrive while a commit is being written simply join the next one, so many
 * clients' requests share each pair of flushes (group commit).
 *
 * The server allocates its own metadata blocks from one of two list pairs in the super
 * (server_meta_avail/freed[cur]).  Each commit refills the other pair's avail list from the
 * avail extent tree and drains the other pair's freed list into the freed extent tree, then
 * the pairs swap.  Freed blocks therefore sit out at least one full commit before they can be
 * allocated again, and the list being allocated from is never the one being refilled.
 * Clients' freed lists are spliced onto the idle pair's freed list the same way.
 *
 * Every client request is answered from the server's own state and may be a replay of a
 * request a previous server already processed: GET_LOG_TREES returns an already open
 * transaction unchanged, COMMIT_LOG_TREES of an already committed transaction succeeds, a
 * first greeting whose mounted_clients item exists is fine, a farewell of a rid that is
 * already gone is answered at once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dev/dev.h"
#include "forest/forest.h"
#include "server/server_int.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(server_commit);
COUNTER_DEFINE(server_commit_hold);
COUNTER_DEFINE(server_commit_budget);
COUNTER_DEFINE(server_greeting);
COUNTER_DEFINE(server_get_log_trees);
COUNTER_DEFINE(server_get_log_trees_resend);
COUNTER_DEFINE(server_commit_log_trees);
COUNTER_DEFINE(server_commit_log_trees_resend);
COUNTER_DEFINE(server_alloc_inodes);
COUNTER_DEFINE(server_farewell);
COUNTER_DEFINE(server_apply_clean);
COUNTER_DEFINE(server_start_count);
COUNTER_DEFINE(server_stop_count);

/* ---- small helpers ---- */

u64 server_next_seq(struct server *srv)
{
	return atomic_fetch_add(&srv->seq, 1) + 1;
}

void server_raise_seq(struct server *srv, u64 seq)
{
	u64 cur = atomic_load(&srv->seq);

	while (cur < seq && !atomic_compare_exchange_weak(&srv->seq, &cur, seq))
		;
}

bool server_stopping(struct server *srv)
{
	bool stopping;

	pthread_mutex_lock(&srv->status_mutex);
	stopping = srv->stop_requested;
	pthread_mutex_unlock(&srv->status_mutex);
	return stopping;
}

struct btree_txn server_txn(struct server *srv)
{
	return alloc_txn(&srv->alloc);
}

static int lookup_val(struct block_cache *bc, const struct scoutfs_btree_root *root,
		      const struct scoutfs_key *key, void *val, unsigned int len)
{
	struct btree_item_ref iref;
	int err;

	err = btree_lookup(bc, root, key, &iref);
	if (err < 0)
		return err;
	if (iref.val_len != len)
		err = -EIO;
	else
		memcpy(val, iref.val, len);
	btree_iref_put(&iref);
	return err;
}

int server_latest_log_trees(struct server *srv, u64 rid, struct scoutfs_log_trees *lt)
{
	struct scoutfs_key key = server_lt_key(rid, ~0ULL);
	struct btree_item_ref iref;
	int err;

	err = btree_prev(srv->bc, &srv->dirty->logs_root, &key, &iref);
	if (err < 0)
		return err;
	if (iref.key.sk_zone != SCOUTFS_LOG_TREES_ZONE || key_first(&iref.key) != rid) {
		err = -ENOENT;
	} else if (iref.val_len != sizeof(*lt)) {
		err = -EIO;
	} else {
		memcpy(lt, iref.val, sizeof(*lt));
	}
	btree_iref_put(&iref);
	return err;
}

int server_update_log_trees(struct server *srv, const struct scoutfs_log_trees *lt)
{
	struct btree_txn txn = server_txn(srv);
	struct scoutfs_key key = server_lt_key(le64_to_cpu(lt->rid), le64_to_cpu(lt->nr));

	return btree_force(&txn, &srv->dirty->logs_root, &key, lt, sizeof(*lt));
}

int server_mounted_client(struct server *srv, u64 rid, struct scoutfs_mounted_client_btree_val *mcv)
{
	struct scoutfs_key key = server_mc_key(rid);

	return lookup_val(srv->bc, &srv->dirty->mounted_clients, &key, mcv, sizeof(*mcv));
}

/* ---- commits ---- */

static void write_super_buf(struct server *srv, struct scoutfs_super_block *super)
{
	le64_add_cpu(&super->hdr.seq, 1);
	super->seq = cpu_to_le64(atomic_load(&srv->seq));
}

/*
 * Write everything dirty and the super.  Called with the server mutex held, so no change
 * is half made.
 */
static int commit_locked(struct server *srv)
{
	struct scoutfs_super_block *super = srv->dirty;
	int other = !srv->cur;
	int freed_idx = !srv->avail_idx;
	bool done;
	int err;

	/* get the idle pair ready to be allocated from after this commit */
	err = alloc_fill_list(&srv->alloc, &super->server_meta_avail[other],
			      &super->meta_alloc[srv->avail_idx], server_meta_fill_target(super));
	if (err < 0)
		goto out;
	err = alloc_empty_list(&srv->alloc, &super->meta_alloc[freed_idx],
			       &super->server_meta_freed[other], SCOUTFS_ALLOC_LIST_MAX_BLOCKS * 2,
			       &done);
	if (err < 0)
		goto out;

	alloc_finish(&srv->alloc, &super->server_meta_avail[srv->cur],
		     &super->server_meta_freed[srv->cur]);
	srv->alloc_active = false;

	err = block_writer_write(srv->wri);
	if (err < 0)
		goto reinit;

	write_super_buf(srv, super);
	err = block_sm_write(srv->cfg.meta_dev, SCOUTFS_SUPER_BLKNO, SCOUTFS_BLOCK_MAGIC_SUPER,
			     srv->cfg.fsid, super, sizeof(*super));
	if (err == 0)
		err = dev_flush(srv->cfg.meta_dev);
	if (err < 0)
		goto reinit;

	pthread_mutex_lock(&srv->stable_mutex);
	srv->stable = *super;
	pthread_mutex_unlock(&srv->stable_mutex);

	/* the refilled pair becomes the one we allocate from */
	srv->cur = other;

	/* let freed space become allocatable once the avail tree runs low */
	if (le64_to_cpu(super->meta_alloc[srv->avail_idx].total_len) <
		    2 * server_meta_reserved(super) &&
	    le64_to_cpu(super->meta_alloc[freed_idx].total_len) >
		    le64_to_cpu(super->meta_alloc[srv->avail_idx].total_len))
		srv->avail_idx = freed_idx;
	counter_inc(server_commit);
reinit:
	alloc_init(&srv->alloc, srv->wri, &super->server_meta_avail[srv->cur],
		   &super->server_meta_freed[srv->cur]);
	srv->alloc_active = true;
out:
	if (err < 0)
		log_err("server commit failed: %s", strerror(-err));
	return err;
}

/* commit now from a context that holds the server mutex */
static int commit_now_locked(struct server *srv)
{
	u64 gen = srv->change_gen++;
	int err;

	err = commit_locked(srv);
	pthread_mutex_lock(&srv->commit_mutex);
	if (gen > srv->committed || srv->committed == 0) {
		srv->committed = gen;
		srv->commit_err = err;
	}
	pthread_cond_broadcast(&srv->commit_cond);
	pthread_mutex_unlock(&srv->commit_mutex);
	if (err < 0)
		server_fail(srv, "commit", err);
	return err;
}

static void *commit_thread(void *arg)
{
	struct server *srv = arg;
	bool work;

	thread_set_name("server-commit");
	pthread_mutex_lock(&srv->commit_mutex);
	for (;;) {
		work = srv->commit_requested > srv->committed;
		if (!work && srv->commit_stop)
			break;
		if (!work) {
			pthread_cond_wait(&srv->commit_cond, &srv->commit_mutex);
			continue;
		}
		pthread_mutex_unlock(&srv->commit_mutex);

		pthread_mutex_lock(&srv->mutex);
		commit_now_locked(srv);
		pthread_mutex_unlock(&srv->mutex);

		pthread_mutex_lock(&srv->commit_mutex);
	}
	pthread_mutex_unlock(&srv->commit_mutex);
	return NULL;
}

void server_hold(struct server *srv)
{
	pthread_mutex_lock(&srv->mutex);
	counter_inc(server_commit_hold);
	/* a holder may need this many blocks: commit first to swap in a refilled list */
	if (alloc_meta_avail_nr(&srv->alloc) < server_hold_budget(srv->dirty)) {
		counter_inc(server_commit_budget);
		commit_now_locked(srv);
	}
}

void server_release(struct server *srv)
{
	pthread_mutex_unlock(&srv->mutex);
}

int server_apply(struct server *srv, int err)
{
	u64 gen = srv->change_gen;
	int cerr;

	/*
	 * Nothing changed since the last commit (no dirty block, the super as written): what
	 * the caller saw is durable already.  Commits exclude holders, so none is half done.
	 */
	if (block_writer_dirty_count(srv->wri) == 0 &&
	    memcmp(srv->dirty, &srv->stable, sizeof(srv->stable)) == 0) {
		counter_inc(server_apply_clean);
		pthread_mutex_unlock(&srv->mutex);
		return err;
	}
	pthread_mutex_unlock(&srv->mutex);

	pthread_mutex_lock(&srv->commit_mutex);
	if (srv->commit_requested < gen)
		srv->commit_requested = gen;
	pthread_cond_broadcast(&srv->commit_cond);
	while (srv->committed < gen && !srv->commit_stop)
		pthread_cond_wait(&srv->commit_cond, &srv->commit_mutex);
	cerr = srv->committed >= gen ? srv->commit_err : -ESHUTDOWN;
	pthread_mutex_unlock(&srv->commit_mutex);
	return err ? err : cerr;
}

void server_fail(struct server *srv, const char *why, int err)
{
	log_err("server stopping after %s failed: %s", why, strerror(-err));
	server_stop(srv);
}

/* ---- allocators handed to clients ---- */

static int fill_client_allocs(struct server *srv, struct scoutfs_log_trees *lt)
{
	struct scoutfs_super_block *super = srv->dirty;
	struct btree_txn txn = server_txn(srv);
	u64 reserved = server_meta_reserved(super);
	u64 fill = server_meta_fill_target(super);
	u64 data_total;
	u64 moved;
	int err;

	/* frees of the committed transaction become reusable after the next server commit */
	err = alloc_splice_list(&srv->alloc, &super->server_meta_freed[!srv->cur], &lt->meta_freed);
	if (err < 0)
		return err;
	if (le64_to_cpu(lt->data_freed.total_len)) {
		err = alloc_ext_move(&txn, &super->data_alloc, &lt->data_freed,
				     le64_to_cpu(lt->data_freed.total_len), &moved);
		if (err < 0)
			return err;
	}

	if (le32_to_cpu(lt->meta_avail.first_nr) < fill / 2) {
		err = alloc_fill_list(&srv->alloc, &lt->meta_avail,
				      &super->meta_alloc[srv->avail_idx], fill);
		if (err < 0)
			return err;
	}
	if (le64_to_cpu(super->meta_alloc[srv->avail_idx].total_len) <= reserved)
		lt->meta_avail.flags |= cpu_to_le32(SCOUTFS_ALLOC_FLAG_LOW);
	else
		lt->meta_avail.flags &= ~cpu_to_le32(SCOUTFS_ALLOC_FLAG_LOW);

	data_total = le64_to_cpu(lt->data_avail.total_len);
	if (data_total < server_data_fill_lo(super)) {
		err = alloc_ext_move(&txn, &lt->data_avail, &super->data_alloc,
				     server_data_fill_target(super) - data_total, &moved);
		if (err < 0 && err != -ENOSPC)
			return err;
		err = 0;
	}
	if (le64_to_cpu(lt->data_avail.total_len) < server_data_fill_lo(super))
		lt->data_avail.flags |= cpu_to_le32(SCOUTFS_ALLOC_FLAG_LOW);
	else
		lt->data_avail.flags &= ~cpu_to_le32(SCOUTFS_ALLOC_FLAG_LOW);
	return 0;
}

int server_return_log_tree_allocs(struct server *srv, struct scoutfs_log_trees *lt)
{
	struct scoutfs_super_block *super = srv->dirty;
	struct btree_txn txn = server_txn(srv);
	u64 moved;
	int err;

	err = alloc_splice_list(&srv->alloc, &super->server_meta_freed[!srv->cur], &lt->meta_avail);
	if (err == 0)
		err = alloc_splice_list(&srv->alloc, &super->server_meta_freed[!srv->cur],
					&lt->meta_freed);
	if (err == 0 && le64_to_cpu(lt->data_avail.total_len))
		err = alloc_ext_move(&txn, &super->data_alloc, &lt->data_avail,
				     le64_to_cpu(lt->data_avail.total_len), &moved);
	if (err == 0 && le64_to_cpu(lt->data_freed.total_len))
		err = alloc_ext_move(&txn, &super->data_alloc, &lt->data_freed,
				     le64_to_cpu(lt->data_freed.total_len), &moved);
	return err;
}

/* ---- request handlers ---- */

static int respond(struct net_conn *conn, u8 cmd, u64 id, int err, const void *data,
		   unsigned int len)
{
	return net_response(conn, cmd, id, err, err ? NULL : data, err ? 0 : len);
}

static int handle_greeting(void *arg, struct net_conn *conn, const struct scoutfs_net_greeting *gr,
			   struct scoutfs_net_greeting *reply)
{
	struct server *srv = arg;
	struct scoutfs_mounted_client_btree_val mcv;
	struct scoutfs_key key;
	struct btree_txn txn;
	struct sockaddr_in sin;
	u64 rid = le64_to_cpu(gr->rid);
	int err = 0;

	counter_inc(server_greeting);
	if (le64_to_cpu(gr->fsid) != srv->cfg.fsid) {
		log_warn("greeting from rid %016llx has fsid %016llx, ours is %016llx",
			 (unsigned long long)rid, (unsigned long long)le64_to_cpu(gr->fsid),
			 (unsigned long long)srv->cfg.fsid);
		return -EINVAL;
	}
	if (le64_to_cpu(gr->fmt_vers) != le64_to_cpu(srv->stable.fmt_vers)) {
		log_warn("greeting from rid %016llx has format version %llu, ours is %llu",
			 (unsigned long long)rid, (unsigned long long)le64_to_cpu(gr->fmt_vers),
			 (unsigned long long)le64_to_cpu(srv->stable.fmt_vers));
		return -EINVAL;
	}
	if (rid == 0 || rid == ~0ULL || (le64_to_cpu(gr->flags) & SCOUTFS_NET_GREETING_FLAG_INVALID))
		return -EINVAL;

	if (le64_to_cpu(gr->server_term) == 0) {
		/* first contact with any server: the mount is now mounted */
		net_conn_peer(conn, &sin);
		memset(&mcv, 0, sizeof(mcv));
		mcv.addr.family = cpu_to_le16(SCOUTFS_INET_FAMILY_V4);
		mcv.addr.port = cpu_to_le16(ntohs(sin.sin_port));
		mcv.addr.addr = cpu_to_le32(ntohl(sin.sin_addr.s_addr));
		if (le64_to_cpu(gr->flags) & SCOUTFS_NET_GREETING_FLAG_QUORUM)
			mcv.flags = SCOUTFS_MOUNTED_CLIENT_QUORUM;

		server_hold(srv);
		txn = server_txn(srv);
		key = server_mc_key(rid);
		err = btree_insert(&txn, &srv->dirty->mounted_clients, &key, &mcv, sizeof(mcv));
		if (err == -EEXIST)
			err = 0; /* a previous server inserted it before dying */
		err = server_apply(srv, err);
		if (err < 0)
			return err;
		workq_queue(srv->wq, &srv->farewell_work);
	}

	recov_finish(srv, rid, RECOV_GREETING);

	memset(reply, 0, sizeof(*reply));
	reply->fsid = cpu_to_le64(srv->cfg.fsid);
	reply->fmt_vers = srv->stable.fmt_vers;
	reply->server_term = cpu_to_le64(srv->term);
	reply->rid = gr->rid;
	return 0;
}

static void client_up(void *arg, u64 rid)
{
	struct server *srv = arg;
	int err;

	err = lock_server_greeting(srv->ls, rid, recov_pending(srv, rid, RECOV_LOCKS));
	if (err < 0)
		log_warn("starting lock recovery of rid %016llx failed: %s", (unsigned long long)rid,
			 strerror(-err));
}

static void client_down(void *arg, u64 rid)
{
	struct server *srv = arg;
	struct farewell_req **pos, *fw;

	/* queued farewells of a connection that is gone will be resent if it comes back */
	pthread_mutex_lock(&srv->farewell_mutex);
	for (pos = &srv->farewells; (fw = *pos);) {
		if (fw->rid == rid) {
			*pos = fw->next;
			free(fw);
		} else {
			pos = &fw->next;
		}
	}
	pthread_mutex_unlock(&srv->farewell_mutex);
}

static void reconnect_timeout(void *arg, u64 rid, const struct sockaddr_in *peer)
{
	struct server *srv = arg;
	char addr[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &peer->sin_addr, addr, sizeof(addr));
	log_warn("client rid %016llx at %s:%u did not reconnect in time, fencing it",
		 (unsigned long long)rid, addr, ntohs(peer->sin_port));
	if (fence_start(srv, rid, peer, "client_reconnect") < 0)
		server_fail(srv, "starting a fence", -EIO);
}

static void listener_error(void *arg, int error)
{
	server_fail(arg, "the listening socket", error);
}

static int handle_alloc_inodes(struct net_conn *conn, u8 cmd, u64 id, const void *data,
			       unsigned int len)
{
	struct server *srv = net_conn_arg(conn);
	struct scoutfs_net_inode_alloc ial;
	u64 count, ino;
	int err;

	if (len != sizeof(le64))
		return respond(conn, cmd, id, -EINVAL, NULL, 0);
	count = le64_to_cpu(*(const le64 *)data);

	server_hold(srv);
	ino = le64_to_cpu(srv->dirty->next_ino);
	count = min_t(u64, count, ~0ULL - ino);
	srv->dirty->next_ino = cpu_to_le64(ino + count);
	err = server_apply(srv, 0);

	ial.ino = cpu_to_le64(ino);
	ial.nr = cpu_to_le64(count);
	counter_inc(server_alloc_inodes);
	return respond(conn, cmd, id, err, &ial, sizeof(ial));
}

/*
 * Open rid's next transaction: finalize trees and start a merge if it's time (which may
 * wait for other mounts), then give the rid's latest tree a new transaction seq and refilled
 * allocators, and commit.  Idempotent: a transaction already open (a resend after failover)
 * is returned as it is.
 */
static int open_log_trees(struct server *srv, u64 rid, struct scoutfs_log_trees *lt)
{
	u64 nr = 0;
	int err;

	err = merge_finalize_for_client(srv, rid);
	if (err < 0)
		return err;

	server_hold(srv);
	err = server_latest_log_trees(srv, rid, lt);
	if (err == 0 && !(le64_to_cpu(lt->flags) & SCOUTFS_LOG_TREES_FINALIZED)) {
		if (le64_to_cpu(lt->get_trans_seq) < le64_to_cpu(lt->commit_trans_seq)) {
			err = -EINVAL;
			goto out;
		}
		if (le64_to_cpu(lt->get_trans_seq) > le64_to_cpu(lt->commit_trans_seq)) {
			/* already open: a resend after failover (committed, maybe not yet) */
			counter_inc(server_get_log_trees_resend);
			return server_apply(srv, 0);
		}
	} else if (err == 0 || err == -ENOENT) {
		/* start the rid's next tree */
		nr = err == 0 ? le64_to_cpu(lt->nr) + 1 : 1;
		memset(lt, 0, sizeof(*lt));
		lt->rid = cpu_to_le64(rid);
		lt->nr = cpu_to_le64(nr);
		err = 0;
	}
	if (err < 0)
		goto out;

	err = fill_client_allocs(srv, lt);
	if (err < 0)
		goto out;
	lt->get_trans_seq = cpu_to_le64(server_next_seq(srv));
	err = server_update_log_trees(srv, lt);
out:
	return server_apply(srv, err);
}

static int handle_get_log_trees(struct net_conn *conn, u8 cmd, u64 id, const void *data,
				unsigned int len)
{
	struct server *srv = net_conn_arg(conn);
	struct scoutfs_log_trees lt;
	int err;

	if (len != 0)
		return respond(conn, cmd, id, -EINVAL, NULL, 0);
	counter_inc(server_get_log_trees);
	err = open_log_trees(srv, net_conn_rid(conn), &lt);
	return respond(conn, cmd, id, err, &lt, sizeof(lt));
}

/*
 * Commit a mount's transaction and open its next one, answered with the next one's log trees
 * once both are durable in one server commit.  (Two requests would cost two server commits,
 * each writing blocks and the super with two device flushes, for every commit of every
 * mount.)  Idempotent: the commit of a transaction already committed (and perhaps already
 * followed by its next one) is skipped, and opening returns a transaction already open.
 */
static int handle_commit_log_trees(struct net_conn *conn, u8 cmd, u64 id, const void *data,
				   unsigned int len)
{
	struct server *srv = net_conn_arg(conn);
	u64 rid = net_conn_rid(conn);
	struct scoutfs_log_trees lt;
	struct scoutfs_log_trees cur;
	struct scoutfs_key key;
	int err;

	if (len != sizeof(lt))
		return respond(conn, cmd, id, -EINVAL, NULL, 0);
	memcpy(&lt, data, sizeof(lt));
	if (le64_to_cpu(lt.rid) != rid)
		return respond(conn, cmd, id, -EIO, NULL, 0);
	counter_inc(server_commit_log_trees);

	server_hold(srv);
	key = server_lt_key(rid, le64_to_cpu(lt.nr));
	err = lookup_val(srv->bc, &srv->dirty->logs_root, &key, &cur, sizeof(cur));
	if (err < 0) {
		log_err("rid %016llx committed log tree nr %llu that does not exist: %s",
			(unsigned long long)rid, (unsigned long long)le64_to_cpu(lt.nr),
			strerror(-err));
		err = -EIO;
	} else if (cur.get_trans_seq == lt.get_trans_seq && cur.commit_trans_seq != cur.get_trans_seq) {
		/* the client owns its roots and allocators; the server owns identity and state */
		lt.commit_trans_seq = lt.get_trans_seq;
		lt.flags = cur.flags;
		lt.finalize_seq = cur.finalize_seq;
		err = server_update_log_trees(srv, &lt);
	} else if (le64_to_cpu(cur.commit_trans_seq) >= le64_to_cpu(lt.get_trans_seq)) {
		/* committed already (and perhaps the next one opened): a resend */
		counter_inc(server_commit_log_trees_resend);
	} else {
		err = -EIO;
	}
	if (err < 0) {
		err = server_apply(srv, err);
		return respond(conn, cmd, id, err, NULL, 0);
	}
	/* made durable by the commit that opening the next transaction waits for */
	server_release(srv);

	err = open_log_trees(srv, rid, &lt);
	return respond(conn, cmd, id, err, &lt, sizeof(lt));
}

static int handle_get_roots(struct net_conn *conn, u8 cmd, u64 id, const void *data,
			    unsigned int len)
{
	struct server *srv = net_conn_arg(conn);
	struct scoutfs_net_roots roots;

	if (len != 0)
		return respond(conn, cmd, id, -EINVAL, NULL, 0);
	pthread_mutex_lock(&srv->stable_mutex);
	roots.fs_root = srv->stable.fs_root;
	roots.logs_root = srv->stable.logs_root;
	roots.srch_root = srv->stable.srch_root;
	pthread_mutex_unlock(&srv->stable_mutex);
	return respond(conn, cmd, id, 0, &roots, sizeof(roots));
}

struct last_seq_ctx {
	struct server *srv;
	u64 last;
};

static int last_seq_cb(void *arg, const struct scoutfs_log_trees *lt)
{
	struct last_seq_ctx *ctx = arg;
	struct scoutfs_mounted_client_btree_val mcv;
	u64 get = le64_to_cpu(lt->get_trans_seq);

	if (get > le64_to_cpu(lt->commit_trans_seq) && get <= ctx->last &&
	    server_mounted_client(ctx->srv, le64_to_cpu(lt->rid), &mcv) == 0)
		ctx->last = get - 1;
	return 0;
}

static int handle_get_last_seq(struct net_conn *conn, u8 cmd, u64 id, const void *data,
			       unsigned int len)
{
	struct server *srv = net_conn_arg(conn);
	struct last_seq_ctx ctx = { .srv = srv };
	le64 last;
	int err;

	if (len != 0)
		return respond(conn, cmd, id, -EINVAL, NULL, 0);
	/*
	 * Every seq at or below the answer is durable and no open transaction can still
	 * produce one: the oldest open transaction of a mounted client bounds it.
	 */
	pthread_mutex_lock(&srv->mutex);
	ctx.last = atomic_load(&srv->seq) - 1;
	err = forest_for_each_log_tree(srv->bc, &srv->dirty->logs_root, last_seq_cb, &ctx);
	pthread_mutex_unlock(&srv->mutex);
	last = cpu_to_le64(ctx.last);
	return respond(conn, cmd, id, err, &last, sizeof(last));
}

struct statfs_ctx {
	u64 free_meta;
	u64 free_data;
	s64 inodes;
};

static int statfs_cb(void *arg, const struct scoutfs_log_trees *lt)
{
	struct statfs_ctx *ctx = arg;

	ctx->free_meta += le64_to_cpu(lt->meta_avail.total_nr) + le64_to_cpu(lt->meta_freed.total_nr);
	ctx->free_data += le64_to_cpu(lt->data_avail.total_len) +
			  le64_to_cpu(lt->data_freed.total_len);
	ctx->inodes += (s64)le64_to_cpu(lt->inode_count_delta);
	return 0;
}

static int handle_statfs(struct net_conn *conn, u8 cmd, u64 id, const void *data,
			 unsigned int len)
{
	struct server *srv = net_conn_arg(conn);
	struct scoutfs_super_block super;
	struct scoutfs_net_statfs nst;
	struct statfs_ctx ctx;
	int tries = 0;
	int err;

	if (len != 0)
		return respond(conn, cmd, id, -EINVAL, NULL, 0);
	do {
		pthread_mutex_lock(&srv->stable_mutex);
		super = srv->stable;
		pthread_mutex_unlock(&srv->stable_mutex);
		memset(&ctx, 0, sizeof(ctx));
		ctx.free_meta = le64_to_cpu(super.meta_alloc[0].total_len) +
				le64_to_cpu(super.meta_alloc[1].total_len);
		for (int i = 0; i < 2; i++)
			ctx.free_meta += le64_to_cpu(super.server_meta_avail[i].total_nr) +
					 le64_to_cpu(super.server_meta_freed[i].total_nr);
		ctx.free_data = le64_to_cpu(super.data_alloc.total_len);
		ctx.inodes = (s64)le64_to_cpu(super.inode_count);
		err = forest_for_each_log_tree(srv->bc, &super.logs_root, statfs_cb, &ctx);
	} while (err == -ESTALE && ++tries < 100);

	memset(&nst, 0, sizeof(nst));
	memcpy(nst.uuid, super.uuid, sizeof(nst.uuid));
	nst.free_meta_blocks = cpu_to_le64(ctx.free_meta);
	nst.total_meta_blocks = super.total_meta_blocks;
	nst.free_data_blocks = cpu_to_le64(ctx.free_data);
	nst.total_data_blocks = super.total_data_blocks;
	nst.inode_count = cpu_to_le64(ctx.inodes < 0 ? 0 : (u64)ctx.inodes);
	return respond(conn, cmd, id, err, &nst, sizeof(nst));
}

static int handle_lock(struct net_conn *conn, u8 cmd, u64 id, const void *data,
		       unsigned int len)
{
	struct server *srv = net_conn_arg(conn);

	if (len != sizeof(struct scoutfs_net_lock))
		return -EINVAL;
	return lock_server_request(srv->ls, net_conn_rid(conn), id, data);
}

static int handle_farewell(struct net_conn *conn, u8 cmd, u64 id, const void *data,
			   unsigned int len)
{
	struct server *srv = net_conn_arg(conn);
	struct farewell_req *fw;

	if (len != 0)
		return respond(conn, cmd, id, -EINVAL, NULL, 0);
	fw = calloc(1, sizeof(*fw));
	if (!fw)
		return respond(conn, cmd, id, -ENOMEM, NULL, 0);
	fw->rid = net_conn_rid(conn);
	fw->net_id = id;
	counter_inc(server_farewell);

	pthread_mutex_lock(&srv->farewell_mutex);
	fw->next = srv->farewells;
	srv->farewells = fw;
	pthread_mutex_unlock(&srv->farewell_mutex);
	workq_queue(srv->wq, &srv->farewell_work);
	return 0;
}

static int handle_open_ino_map(struct net_conn *conn, u8 cmd, u64 id, const void *data,
			       unsigned int len)
{
	struct server *srv = net_conn_arg(conn);
	const struct scoutfs_open_ino_map_args *args = data;
	int err;

	if (len != sizeof(*args))
		return respond(conn, cmd, id, -EINVAL, NULL, 0);
	/* answered once every other mount has answered */
	err = omap_request(srv, net_conn_rid(conn), id, le64_to_cpu(args->group_nr));
	return err < 0 ? respond(conn, cmd, id, err, NULL, 0) : 0;
}

static const struct net_handler server_handlers[SCOUTFS_NET_CMD_UNKNOWN] = {
	[SCOUTFS_NET_CMD_ALLOC_INODES] = { .fn = handle_alloc_inodes },
	[SCOUTFS_NET_CMD_GET_LOG_TREES] = { .fn = handle_get_log_trees },
	[SCOUTFS_NET_CMD_COMMIT_LOG_TREES] = { .fn = handle_commit_log_trees },
	[SCOUTFS_NET_CMD_GET_ROOTS] = { .fn = handle_get_roots },
	[SCOUTFS_NET_CMD_GET_LAST_SEQ] = { .fn = handle_get_last_seq },
	[SCOUTFS_NET_CMD_LOCK] = { .fn = handle_lock },
	[SCOUTFS_NET_CMD_STATFS] = { .fn = handle_statfs },
	[SCOUTFS_NET_CMD_FAREWELL] = { .fn = handle_farewell },
	[SCOUTFS_NET_CMD_OPEN_INO_MAP] = { .fn = handle_open_ino_map },
};

static const struct net_server_ops server_net_ops = {
	.greeting = handle_greeting,
	.client_up = client_up,
	.client_down = client_down,
	.reconnect_timeout = reconnect_timeout,
	.listener_error = listener_error,
};

/* ---- the lock server's transport ---- */

static void lock_invalidate_response(struct net_conn *conn, const void *data, unsigned int len,
				     int error, void *arg)
{
	struct server *srv = net_conn_arg(conn);

	if (error == 0 && len == sizeof(struct scoutfs_net_lock))
		lock_server_invalidate_response(srv->ls, net_conn_rid(conn), data);
}

static void lock_recover_response(struct net_conn *conn, const void *data, unsigned int len,
				  int error, void *arg)
{
	struct server *srv = net_conn_arg(conn);

	if (error == 0)
		lock_server_recover_response(srv->ls, net_conn_rid(conn), data, len);
}

static int ls_send_grant(void *arg, u64 rid, u64 net_id, const struct scoutfs_net_lock *nl)
{
	struct server *srv = arg;

	return net_server_response(srv->net, rid, SCOUTFS_NET_CMD_LOCK, net_id, 0, nl, sizeof(*nl));
}

static int ls_send_invalidate(void *arg, u64 rid, const struct scoutfs_net_lock *nl)
{
	struct server *srv = arg;

	return net_server_submit_request(srv->net, rid, SCOUTFS_NET_CMD_LOCK, nl, sizeof(*nl),
					 lock_invalidate_response, NULL);
}

static int ls_send_recover(void *arg, u64 rid, const struct scoutfs_key *key)
{
	struct server *srv = arg;

	return net_server_submit_request(srv->net, rid, SCOUTFS_NET_CMD_LOCK_RECOVER, key,
					 sizeof(*key), lock_recover_response, NULL);
}

static u64 ls_next_seq(void *arg)
{
	return server_next_seq(arg);
}

static void ls_raise_seq(void *arg, u64 seq)
{
	server_raise_seq(arg, seq);
}

static bool ls_recovery_pending(void *arg)
{
	return recov_any_pending(arg, RECOV_LOCKS);
}

static void ls_recovery_finished(void *arg, u64 rid)
{
	struct server *srv = arg;

	recov_finish(srv, rid, RECOV_LOCKS);
	/* a farewell waiting for this rid's recovery can go now */
	workq_queue(srv->wq, &srv->farewell_work);
}

static const struct lock_server_ops server_lock_ops = {
	.send_grant = ls_send_grant,
	.send_invalidate = ls_send_invalidate,
	.send_recover = ls_send_recover,
	.next_seq = ls_next_seq,
	.raise_seq = ls_raise_seq,
	.recovery_pending = ls_recovery_pending,
	.recovery_finished = ls_recovery_finished,
};

/* ---- farewell ---- */

struct mc_count {
	int quorum;
	int other;
};

static int count_mc(void *arg, const struct scoutfs_key *key, u64 seq, u8 flags, const void *val,
		    unsigned int val_len)
{
	struct mc_count *cnt = arg;
	const struct scoutfs_mounted_client_btree_val *mcv = val;

	if (val_len != sizeof(*mcv))
		return -EIO;
	if (mcv->flags & SCOUTFS_MOUNTED_CLIENT_QUORUM)
		cnt->quorum++;
	else
		cnt->other++;
	return 0;
}

/*
 * Answer farewells.  Non-quorum mounts may always leave.  A quorum member may leave only
 * while enough members remain to elect a server, or when every remaining mount is a quorum
 * member asking to leave (the final unmount).  A mount still recovering its locks waits.
 */
static void farewell_work_fn(struct work *work)
{
	struct server *srv = container_of(work, struct server, farewell_work);
	struct btree_visit_ops ops = { .item = count_mc };
	struct scoutfs_mounted_client_btree_val mcv;
	struct farewell_req *pending, *fw, *next;
	struct farewell_req *reply = NULL, *hold = NULL, *quorum = NULL;
	struct mc_count cnt = { 0 };
	int votes = quorum_votes_needed(&srv->cfg.qconf);
	struct farewell_req **pos;
	bool all_leaving;
	int quo_reqs = 0;
	int err;

	pthread_mutex_lock(&srv->farewell_mutex);
	pending = srv->farewells;
	srv->farewells = NULL;
	pthread_mutex_unlock(&srv->farewell_mutex);
	if (!pending)
		return;

	pthread_mutex_lock(&srv->mutex);
	err = btree_visit(srv->bc, &srv->dirty->mounted_clients, &ops, &cnt);
	for (fw = pending; err == 0 && fw; fw = next) {
		next = fw->next;
		err = server_mounted_client(srv, fw->rid, &mcv);
		if (err == -ENOENT) {
			err = 0;
			fw->next = reply;
			reply = fw;
		} else if (err == 0 && !(mcv.flags & SCOUTFS_MOUNTED_CLIENT_QUORUM)) {
			cnt.other--;
			fw->next = reply;
			reply = fw;
		} else if (err == 0) {
			quo_reqs++;
			fw->next = quorum;
			quorum = fw;
		}
	}
	pthread_mutex_unlock(&srv->mutex);
	if (err < 0) {
		server_fail(srv, "counting mounted clients for farewell", err);
		/* keep the requests for the next server */
		for (fw = pending; fw; fw = next) {
			next = fw->next;
			free(fw);
		}
		return;
	}

	/* decided before counting them out: every remaining mount is a member that's leaving */
	all_leaving = quo_reqs == cnt.quorum && cnt.other == 0;
	for (fw = quorum; fw; fw = next) {
		next = fw->next;
		if (all_leaving || cnt.quorum > votes) {
			cnt.quorum--;
			fw->next = reply;
			reply = fw;
		} else {
			fw->next = hold;
			hold = fw;
		}
	}

	for (fw = reply, reply = NULL; fw; fw = next) {
		next = fw->next;
		if (recov_pending(srv, fw->rid, RECOV_LOCKS)) {
			fw->next = hold;
			hold = fw;
		} else {
			fw->next = reply;
			reply = fw;
		}
	}
	/* our own mount stops this server once answered: answer everyone else first */
	for (pos = &reply; *pos; pos = &(*pos)->next) {
		if ((*pos)->rid == srv->cfg.rid && (*pos)->next) {
			fw = *pos;
			*pos = fw->next;
			while (*pos)
				pos = &(*pos)->next;
			fw->next = NULL;
			*pos = fw;
			break;
		}
	}

	for (fw = reply; fw; fw = next) {
		next = fw->next;
		err = reclaim_rid(srv, fw->rid);
		if (err < 0) {
			server_fail(srv, "reclaiming a departing mount", err);
			fw->next = hold;
			hold = fw;
			continue;
		}
		net_server_set_saw_farewell(srv->net, fw->rid);
		net_server_response(srv->net, fw->rid, SCOUTFS_NET_CMD_FAREWELL, fw->net_id, 0, NULL, 0);
		log_info("mount rid %016llx said farewell", (unsigned long long)fw->rid);
		free(fw);
	}

	if (hold) {
		pthread_mutex_lock(&srv->farewell_mutex);
		for (fw = hold; fw; fw = next) {
			next = fw->next;
			fw->next = srv->farewells;
			srv->farewells = fw;
		}
		pthread_mutex_unlock(&srv->farewell_mutex);
	}
}

/* ---- lifecycle ---- */

static void set_status(struct server *srv, enum quorum_server_status status)
{
	pthread_mutex_lock(&srv->status_mutex);
	srv->status = status;
	pthread_cond_broadcast(&srv->status_cond);
	pthread_mutex_unlock(&srv->status_mutex);
}

static int read_super(struct server *srv)
{
	int err;

	err = block_sm_read(srv->cfg.meta_dev, SCOUTFS_SUPER_BLKNO, SCOUTFS_BLOCK_MAGIC_SUPER,
			    srv->cfg.fsid, srv->dirty);
	if (err < 0)
		return err;
	srv->stable = *srv->dirty;
	return 0;
}

struct max_seq_ctx {
	u64 seq;
};

static int max_seq_cb(void *arg, const struct scoutfs_log_trees *lt)
{
	struct max_seq_ctx *ctx = arg;

	ctx->seq = max_t(u64, ctx->seq, le64_to_cpu(lt->max_item_seq));
	ctx->seq = max_t(u64, ctx->seq, le64_to_cpu(lt->get_trans_seq));
	ctx->seq = max_t(u64, ctx->seq, le64_to_cpu(lt->finalize_seq));
	return 0;
}

static int start_persistent_state(struct server *srv)
{
	struct scoutfs_super_block *super = srv->dirty;
	struct max_seq_ctx ctx = { 0 };
	int err;

	err = read_super(srv);
	if (err < 0) {
		log_err("server could not read the super block: %s", strerror(-err));
		return err;
	}

	/* allocate from the server list pair with more blocks; larger extent tree fills lists */
	srv->cur = le32_to_cpu(super->server_meta_avail[1].first_nr) >
			   le32_to_cpu(super->server_meta_avail[0].first_nr) ?
			   1 :
			   0;
	srv->avail_idx = le64_to_cpu(super->meta_alloc[1].total_len) >
				 le64_to_cpu(super->meta_alloc[0].total_len) ?
				 1 :
				 0;
	alloc_init(&srv->alloc, srv->wri, &super->server_meta_avail[srv->cur],
		   &super->server_meta_freed[srv->cur]);
	srv->alloc_active = true;

	/* no seq may go backwards: items and grants already used seqs up to here */
	ctx.seq = le64_to_cpu(super->seq);
	err = forest_for_each_log_tree(srv->bc, &super->logs_root, max_seq_cb, &ctx);
	if (err < 0)
		return err;
	atomic_store(&srv->seq, ctx.seq);
	srv->change_gen = 1;
	srv->committed = 0;
	srv->commit_requested = 0;
	srv->commit_err = 0;
	return 0;
}

static int start_net(struct server *srv)
{
	struct sockaddr_in sin;
	char addr[INET_ADDRSTRLEN];
	int err;

	quorum_slot_sin(&srv->cfg.qconf, srv->cfg.slot_nr, &sin);
	inet_ntop(AF_INET, &sin.sin_addr, addr, sizeof(addr));
	err = net_server_create(&sin, srv->term, &server_net_ops, server_handlers, srv,
				srv->cfg.reconnect_timeout_ms, &srv->net);
	/* a client accepted in the instant before this keeps the default timeout */
	if (err == 0 && srv->cfg.keepalive_timeout_ms)
		err = net_server_set_keepalive_timeout_ms(srv->net,
							  srv->cfg.keepalive_timeout_ms);
	if (err < 0)
		log_err("server could not listen on %s:%u: %s", addr, ntohs(sin.sin_port),
			strerror(-err));
	else
		log_info("server ready at %s:%u in term %llu", addr, ntohs(sin.sin_port),
			 (unsigned long long)srv->term);
	return err;
}

static void teardown(struct server *srv)
{
	if (srv->net) {
		net_server_destroy(srv->net);
		srv->net = NULL;
	}
	if (srv->wq) {
		workq_cancel_sync(&srv->farewell_work);
		workq_cancel_sync(&srv->reclaim_work);
		workq_cancel_sync(&srv->merge_work);
		workq_cancel_sync(&srv->recov_work);
		workq_cancel_sync(&srv->recov_done_work);
		workq_destroy(srv->wq);
		srv->wq = NULL;
	}
	if (srv->commit_thread_running) {
		pthread_mutex_lock(&srv->commit_mutex);
		srv->commit_stop = true;
		pthread_cond_broadcast(&srv->commit_cond);
		pthread_mutex_unlock(&srv->commit_mutex);
		pthread_join(srv->commit_thread, NULL);
		srv->commit_thread_running = false;
	}
	/* whatever was not committed is lost; clients resend to the next server */
	if (srv->alloc_active) {
		alloc_finish(&srv->alloc, NULL, NULL);
		srv->alloc_active = false;
	}
	block_writer_forget(srv->wri);
	if (srv->ls) {
		lock_server_destroy(srv->ls);
		srv->ls = NULL;
	}
	recov_destroy(srv);
	fence_destroy(srv);
	omap_destroy(srv);
	pthread_mutex_lock(&srv->farewell_mutex);
	while (srv->farewells) {
		struct farewell_req *fw = srv->farewells;

		srv->farewells = fw->next;
		free(fw);
	}
	pthread_mutex_unlock(&srv->farewell_mutex);
	block_cache_drop_clean(srv->bc);
}

static void *server_thread(void *arg)
{
	struct server *srv = arg;
	int err;

	thread_set_name("server");
	counter_inc(server_start_count);
	log_info("server starting in term %llu", (unsigned long long)srv->term);

	srv->wq = workq_create("server-work", 3);
	if (!srv->wq) {
		err = -ENOMEM;
		goto out;
	}
	srv->commit_stop = false;
	err = -pthread_create(&srv->commit_thread, NULL, commit_thread, srv);
	if (err < 0)
		goto out;
	srv->commit_thread_running = true;

	/* two servers writing the super is the one failure nothing can repair */
	err = fence_old_leaders(srv);
	if (err < 0)
		goto out;

	err = start_persistent_state(srv);
	if (err < 0)
		goto out;
	err = lock_server_create(&server_lock_ops, srv, &srv->ls);
	if (err < 0)
		goto out;
	err = recov_prepare(srv);
	if (err < 0)
		goto out;
	err = start_net(srv);
	if (err < 0)
		goto out;
	recov_begin(srv);

	set_status(srv, QUORUM_SERVER_UP);
	workq_queue(srv->wq, &srv->reclaim_work);
	workq_queue(srv->wq, &srv->merge_work);

	pthread_mutex_lock(&srv->status_mutex);
	while (!srv->stop_requested)
		pthread_cond_wait(&srv->status_cond, &srv->status_mutex);
	pthread_mutex_unlock(&srv->status_mutex);
	err = 0;
out:
	set_status(srv, QUORUM_SERVER_STOPPING);
	if (err < 0)
		log_err("server startup failed: %s", strerror(-err));
	log_info("server shutting down");
	teardown(srv);
	counter_inc(server_stop_count);
	log_info("server stopped");
	set_status(srv, QUORUM_SERVER_DOWN);
	return NULL;
}

int server_create(const struct server_config *cfg, struct server **ret)
{
	struct server *srv;
	int err;

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->cfg = *cfg;
	srv->log_merge_wait_timeout_ms = cfg->log_merge_wait_timeout_ms;
	pthread_mutex_init(&srv->status_mutex, NULL);
	pthread_cond_init(&srv->status_cond, NULL);
	pthread_mutex_init(&srv->mutex, NULL);
	pthread_mutex_init(&srv->stable_mutex, NULL);
	pthread_mutex_init(&srv->commit_mutex, NULL);
	pthread_cond_init(&srv->commit_cond, NULL);
	pthread_mutex_init(&srv->recov_mutex, NULL);
	pthread_mutex_init(&srv->farewell_mutex, NULL);
	pthread_mutex_init(&srv->fence_mutex, NULL);
	pthread_mutex_init(&srv->omap_mutex, NULL);
	work_init(&srv->farewell_work, farewell_work_fn);
	work_init(&srv->reclaim_work, reclaim_work_fn);
	work_init(&srv->merge_work, merge_work_fn);
	work_init(&srv->recov_work, recov_work_fn);
	work_init(&srv->recov_done_work, recov_done_work_fn);
	srv->status = QUORUM_SERVER_DOWN;

	srv->dirty = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);
	if (!srv->dirty) {
		free(srv);
		return -ENOMEM;
	}
	err = block_cache_create(cfg->meta_dev, cfg->fsid, 0, &srv->bc);
	if (err == 0)
		err = block_writer_create(srv->bc, &srv->wri);
	if (err < 0) {
		block_cache_destroy(srv->bc);
		free(srv->dirty);
		free(srv);
		return err;
	}
	*ret = srv;
	return 0;
}

void server_destroy(struct server *srv)
{
	if (!srv)
		return;
	server_stop_wait(srv);
	block_writer_destroy(srv->wri);
	block_cache_destroy(srv->bc);
	free(srv->dirty);
	free(srv);
}

void server_start(struct server *srv, u64 term)
{
	pthread_mutex_lock(&srv->status_mutex);
	if (srv->status != QUORUM_SERVER_DOWN) {
		pthread_mutex_unlock(&srv->status_mutex);
		return;
	}
	if (srv->thread_joinable) {
		pthread_mutex_unlock(&srv->status_mutex);
		pthread_join(srv->thread, NULL);
		pthread_mutex_lock(&srv->status_mutex);
		srv->thread_joinable = false;
	}
	srv->term = term;
	srv->stop_requested = false;
	srv->status = QUORUM_SERVER_STARTING;
	if (pthread_create(&srv->thread, NULL, server_thread, srv) == 0)
		srv->thread_joinable = true;
	else
		srv->status = QUORUM_SERVER_DOWN;
	pthread_mutex_unlock(&srv->status_mutex);
}

void server_stop(struct server *srv)
{
	pthread_mutex_lock(&srv->status_mutex);
	if (srv->status == QUORUM_SERVER_STARTING || srv->status == QUORUM_SERVER_UP) {
		srv->stop_requested = true;
		pthread_cond_broadcast(&srv->status_cond);
	}
	pthread_mutex_unlock(&srv->status_mutex);
	/* wake handlers waiting on commits so teardown can proceed */
	pthread_mutex_lock(&srv->commit_mutex);
	pthread_cond_broadcast(&srv->commit_cond);
	pthread_mutex_unlock(&srv->commit_mutex);
}

enum quorum_server_status server_status(struct server *srv)
{
	enum quorum_server_status status;

	pthread_mutex_lock(&srv->status_mutex);
	status = srv->status;
	if (status == QUORUM_SERVER_UP && srv->stop_requested)
		status = QUORUM_SERVER_STOPPING;
	pthread_mutex_unlock(&srv->status_mutex);
	return status;
}

void server_stop_wait(struct server *srv)
{
	bool join;

	server_stop(srv);
	pthread_mutex_lock(&srv->status_mutex);
	join = srv->thread_joinable;
	srv->thread_joinable = false;
	pthread_mutex_unlock(&srv->status_mutex);
	if (join)
		pthread_join(srv->thread, NULL);
}

static void qops_start(void *arg, u64 term)
{
	server_start(arg, term);
}

static void qops_stop(void *arg)
{
	server_stop(arg);
}

static enum quorum_server_status qops_status(void *arg)
{
	return server_status(arg);
}

const struct quorum_server_ops server_quorum_ops = {
	.start = qops_start,
	.stop = qops_stop,
	.status = qops_status,
};

void server_set_log_merge_wait_timeout(struct server *srv, u64 ms)
{
	srv->log_merge_wait_timeout_ms = ms;
}

int server_describe_locks(struct server *srv, char *buf, unsigned int len)
{
	int ret;

	pthread_mutex_lock(&srv->status_mutex);
	if (srv->status != QUORUM_SERVER_UP || !srv->ls) {
		pthread_mutex_unlock(&srv->status_mutex);
		return -ENOTCONN;
	}
	ret = lock_server_describe(srv->ls, buf, len);
	pthread_mutex_unlock(&srv->status_mutex);
	return ret;
}

void server_force_merge(struct server *srv)
{
	atomic_store(&srv->force_merge, true);
}

u64 server_merges_done(struct server *srv)
{
	return atomic_load(&srv->merges_done);
}
