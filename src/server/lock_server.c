/*
 * lock_server.c: the server side of cluster locks.
 *
 * The server decides who may hold which mode of every lock.  It knows a lock only by its
 * start key; ranges are a convention of the clients.  For each lock it keeps the clients'
 * entries on three lists: granted (the mode each client holds), requested (in arrival order)
 * and invalidated (clients we have asked to give something up and whose answer we await).
 *
 * The invariants the protocol rests on:
 *
 *  - Requests are granted strictly in arrival order.  The head request is compared with
 *    every granted entry; each incompatible holder is sent one invalidation and its entry
 *    moves to invalidated, where it stays until the client answers.  Nothing is granted while
 *    any invalidation is outstanding, and no later request overtakes the head even when it
 *    is compatible with the holders, so writers are not starved by a stream of readers.
 *    Several compatible requests at the head are granted in one pass.
 *
 *  - A client has at most one request in flight per lock, so its old mode in a request is
 *    informational: the grant's old mode comes from our own table.  A request of a client
 *    that we are still invalidating simply waits on requested until the answer arrives, so
 *    the order in which concurrent handlers process one client's messages does not matter.
 *
 *  - Compatibility: the same mode when it is READ or WRITE_ONLY; READ -> WRITE by the same
 *    client (an upgrade that keeps its cache); NULL with anything of another client.  A NULL
 *    request therefore conflicts only with the requester's own grant, which is how a client
 *    gives a lock back: we invalidate its grant to NULL, then grant NULL and forget it.  An
 *    invalidation of a WRITE for a READ request downgrades to READ, all others go to NULL.
 *
 *  - Every WRITE and WRITE_ONLY grant carries a fresh seq from the server's counter, so a new
 *    exclusive holder always writes items with greater versions than every earlier holder.
 *
 *  - Nothing is persistent.  A new server asks every client that was mounted for its locks
 *    (LOCK_RECOVER, from the zero key, 22 at a time) and installs them as grants; nothing is
 *    granted while any client is still recovering.  A client reports the old mode of a lock
 *    it is still invalidating, so we may send it a duplicate invalidation, which it handles.
 *
 *  - A client that is gone is not an error: sends to it fail with -ENOTCONN and its entries
 *    stay until it is fenced and reclaimed (or says farewell), which removes them all and
 *    lets the locks it blocked move on.
 *
 * Locking: a mutex over the tree of locks and each lock's reference count; a mutex per lock
 * over its lists.  A handler finds the lock and takes a reference under the tree mutex, then
 * takes the lock's mutex.  Dropping the last reference and freeing an empty lock happen under
 * the tree mutex too, so a concurrent lookup can never take a reference to a lock that is
 * being freed, nor add a request to it (the original lost requests that way).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/sys/queue.h>
#include <bsd/sys/tree.h>

#include "format/key.h"
#include "server/lock_server.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(lock_server_request);
COUNTER_DEFINE(lock_server_grant);
COUNTER_DEFINE(lock_server_invalidate);
COUNTER_DEFINE(lock_server_invalidate_response);
COUNTER_DEFINE(lock_server_invalidate_response_unknown);
COUNTER_DEFINE(lock_server_enotconn);
COUNTER_DEFINE(lock_server_recover_request);
COUNTER_DEFINE(lock_server_recover_entry);
COUNTER_DEFINE(lock_server_recover_finished);
COUNTER_DEFINE(lock_server_farewell);
COUNTER_DEFINE(lock_server_invalid_message);

enum entry_list {
	LIST_GRANTED = 0,
	LIST_REQUESTED,
	LIST_INVALIDATED,
	NR_LISTS,
};

static const char *list_names[NR_LISTS] = { "granted", "requested", "invalidated" };

struct client_entry {
	TAILQ_ENTRY(client_entry) entry;
	u64 rid;
	u64 net_id; /* the client's request id for the grant; 0 for recovered grants */
	enum scoutfs_lock_mode mode;
	enum scoutfs_lock_mode inv_mode; /* on invalidated: the mode we asked for */
	enum entry_list list;
};

TAILQ_HEAD(entry_head, client_entry);

struct server_lock {
	RB_ENTRY(server_lock) node;
	struct scoutfs_key key;
	pthread_mutex_t mutex;
	unsigned int refs; /* under the tree mutex */
	struct entry_head lists[NR_LISTS];
};

static int server_lock_cmp(const struct server_lock *a, const struct server_lock *b)
{
	return key_compare(&a->key, &b->key);
}

RB_HEAD(server_lock_tree, server_lock);
/* libbsd leaves __unused undefined, so spell out RB_GENERATE_STATIC */
RB_GENERATE_INTERNAL(server_lock_tree, server_lock, node, server_lock_cmp,
                     __attribute__((unused)) static)

struct lock_server {
	struct lock_server_ops ops;
	void *arg;
	pthread_mutex_t tree_mutex;
	struct server_lock_tree tree;
	u64 nr_locks;
};

static bool mode_valid(int mode)
{
	return mode >= SCOUTFS_LOCK_NULL && mode < SCOUTFS_LOCK_INVALID;
}

static bool mode_writes(enum scoutfs_lock_mode mode)
{
	return mode == SCOUTFS_LOCK_WRITE || mode == SCOUTFS_LOCK_WRITE_ONLY;
}

static const char *mode_name(enum scoutfs_lock_mode mode)
{
	static const char *names[] = { "null", "read", "write", "write_only" };

	return mode_valid(mode) ? names[mode] : "invalid";
}

static bool lists_empty(struct server_lock *sl)
{
	for (int i = 0; i < NR_LISTS; i++) {
		if (!TAILQ_EMPTY(&sl->lists[i]))
			return false;
	}
	return true;
}

/* ---- finding and releasing locks (R5: references are decided under the tree mutex) ---- */

static struct server_lock *tree_lookup(struct lock_server *ls, const struct scoutfs_key *key)
{
	struct server_lock *sl = RB_ROOT(&ls->tree);
	int cmp;

	while (sl) {
		cmp = key_compare(key, &sl->key);
		if (cmp < 0)
			sl = RB_LEFT(sl, node);
		else if (cmp > 0)
			sl = RB_RIGHT(sl, node);
		else
			return sl;
	}
	return NULL;
}

/* a referenced lock with its mutex held, created if asked; NULL if absent or no memory */
static struct server_lock *get_lock(struct lock_server *ls, const struct scoutfs_key *key,
                                    bool create)
{
	struct server_lock *sl;

	pthread_mutex_lock(&ls->tree_mutex);
	sl = tree_lookup(ls, key);
	if (!sl && create) {
		sl = calloc(1, sizeof(*sl));
		if (sl) {
			sl->key = *key;
			pthread_mutex_init(&sl->mutex, NULL);
			for (int i = 0; i < NR_LISTS; i++)
				TAILQ_INIT(&sl->lists[i]);
			RB_INSERT(server_lock_tree, &ls->tree, sl);
			ls->nr_locks++;
		}
	}
	if (sl)
		sl->refs++;
	pthread_mutex_unlock(&ls->tree_mutex);

	if (sl)
		pthread_mutex_lock(&sl->mutex);
	return sl;
}

static void free_lock(struct server_lock *sl)
{
	struct client_entry *ce;

	for (int i = 0; i < NR_LISTS; i++) {
		while ((ce = TAILQ_FIRST(&sl->lists[i]))) {
			TAILQ_REMOVE(&sl->lists[i], ce, entry);
			free(ce);
		}
	}
	pthread_mutex_destroy(&sl->mutex);
	free(sl);
}

static void put_lock(struct lock_server *ls, struct server_lock *sl)
{
	pthread_mutex_unlock(&sl->mutex);

	pthread_mutex_lock(&ls->tree_mutex);
	/* only reference holders change the lists, so with none left they are stable */
	if (--sl->refs == 0 && lists_empty(sl)) {
		RB_REMOVE(server_lock_tree, &ls->tree, sl);
		ls->nr_locks--;
		free_lock(sl);
	}
	pthread_mutex_unlock(&ls->tree_mutex);
}

/* references to every lock, to visit each without holding the tree mutex */
static int get_all_locks(struct lock_server *ls, struct server_lock ***ret, u64 *nr_ret)
{
	struct server_lock **sls;
	struct server_lock *sl;
	u64 nr = 0;

	pthread_mutex_lock(&ls->tree_mutex);
	sls = calloc(ls->nr_locks ? ls->nr_locks : 1, sizeof(*sls));
	if (!sls) {
		pthread_mutex_unlock(&ls->tree_mutex);
		return -ENOMEM;
	}
	for (sl = RB_MIN(server_lock_tree, &ls->tree); sl;
	     sl = RB_NEXT(server_lock_tree, &ls->tree, sl)) {
		sl->refs++;
		sls[nr++] = sl;
	}
	pthread_mutex_unlock(&ls->tree_mutex);

	*ret = sls;
	*nr_ret = nr;
	return 0;
}

/* ---- entries ---- */

static struct client_entry *alloc_entry(u64 rid, u64 net_id, enum scoutfs_lock_mode mode)
{
	struct client_entry *ce = calloc(1, sizeof(*ce));

	if (ce) {
		ce->rid = rid;
		ce->net_id = net_id;
		ce->mode = mode;
	}
	return ce;
}

static void add_entry(struct server_lock *sl, struct client_entry *ce, enum entry_list list)
{
	ce->list = list;
	TAILQ_INSERT_TAIL(&sl->lists[list], ce, entry);
}

static void del_entry(struct server_lock *sl, struct client_entry *ce)
{
	TAILQ_REMOVE(&sl->lists[ce->list], ce, entry);
}

static void move_entry(struct server_lock *sl, struct client_entry *ce, enum entry_list list)
{
	del_entry(sl, ce);
	add_entry(sl, ce, list);
}

static struct client_entry *find_entry(struct server_lock *sl, enum entry_list list, u64 rid)
{
	struct client_entry *ce;

	for (ce = TAILQ_FIRST(&sl->lists[list]); ce; ce = TAILQ_NEXT(ce, entry)) {
		if (ce->rid == rid)
			return ce;
	}
	return NULL;
}

/* may granted entry gr stay while req is granted? */
static bool entries_compatible(struct client_entry *gr, struct client_entry *req)
{
	if (gr->mode == req->mode &&
	    (req->mode == SCOUTFS_LOCK_READ || req->mode == SCOUTFS_LOCK_WRITE_ONLY))
		return true;
	if (gr->rid == req->rid)
		return gr->mode == SCOUTFS_LOCK_READ && req->mode == SCOUTFS_LOCK_WRITE;
	return gr->mode == SCOUTFS_LOCK_NULL || req->mode == SCOUTFS_LOCK_NULL;
}

static enum scoutfs_lock_mode invalidation_mode(enum scoutfs_lock_mode granted,
                                                enum scoutfs_lock_mode requested)
{
	if (granted == SCOUTFS_LOCK_WRITE && requested == SCOUTFS_LOCK_READ)
		return SCOUTFS_LOCK_READ;
	return SCOUTFS_LOCK_NULL;
}

/* a client that is gone will be fenced and reclaimed: not our error */
static int send_result(int ret)
{
	if (ret == -ENOTCONN) {
		counter_inc(lock_server_enotconn);
		return 0;
	}
	return ret;
}

/*
 * Grant what can be granted, in arrival order, and start the one round of invalidations
 * that the head request needs.  Called with the lock's mutex held.
 */
static int process_waiting_requests(struct lock_server *ls, struct server_lock *sl)
{
	struct scoutfs_net_lock nl;
	struct client_entry *req;
	struct client_entry *gr;
	struct client_entry *tmp;
	int ret;

	if (!TAILQ_EMPTY(&sl->lists[LIST_INVALIDATED]) || ls->ops.recovery_pending(ls->arg))
		return 0;

	while ((req = TAILQ_FIRST(&sl->lists[LIST_REQUESTED]))) {
		for (gr = TAILQ_FIRST(&sl->lists[LIST_GRANTED]); gr; gr = tmp) {
			tmp = TAILQ_NEXT(gr, entry);
			if (entries_compatible(gr, req))
				continue;

			memset(&nl, 0, sizeof(nl));
			nl.key = sl->key;
			nl.old_mode = gr->mode;
			nl.new_mode = invalidation_mode(gr->mode, req->mode);
			counter_inc(lock_server_invalidate);
			ret = send_result(ls->ops.send_invalidate(ls->arg, gr->rid, &nl));
			if (ret < 0)
				return ret;
			gr->inv_mode = nl.new_mode;
			move_entry(sl, gr, LIST_INVALIDATED);
		}
		/* strict FIFO: nobody passes the head while its invalidations are out */
		if (!TAILQ_EMPTY(&sl->lists[LIST_INVALIDATED]))
			return 0;

		gr = find_entry(sl, LIST_GRANTED, req->rid);
		memset(&nl, 0, sizeof(nl));
		nl.key = sl->key;
		nl.old_mode = gr ? gr->mode : SCOUTFS_LOCK_NULL;
		nl.new_mode = req->mode;
		if (mode_writes(req->mode))
			nl.write_seq = cpu_to_le64(ls->ops.next_seq(ls->arg));
		counter_inc(lock_server_grant);
		ret = send_result(ls->ops.send_grant(ls->arg, req->rid, req->net_id, &nl));
		if (ret < 0)
			return ret;

		if (gr) {
			del_entry(sl, gr);
			free(gr);
		}
		if (req->mode == SCOUTFS_LOCK_NULL) {
			/* NULL grants are not tracked: the client forgets the lock */
			del_entry(sl, req);
			free(req);
		} else {
			move_entry(sl, req, LIST_GRANTED);
		}
	}
	return 0;
}

/* ---- entry points ---- */

int lock_server_create(const struct lock_server_ops *ops, void *arg, struct lock_server **ret)
{
	struct lock_server *ls;

	*ret = NULL;
	if (!ops || !ops->send_grant || !ops->send_invalidate || !ops->send_recover ||
	    !ops->next_seq || !ops->raise_seq || !ops->recovery_pending || !ops->recovery_finished)
		return -EINVAL;

	ls = calloc(1, sizeof(*ls));
	if (!ls)
		return -ENOMEM;
	ls->ops = *ops;
	ls->arg = arg;
	pthread_mutex_init(&ls->tree_mutex, NULL);
	RB_INIT(&ls->tree);
	*ret = ls;
	return 0;
}

/* no entry point may be running or called again */
void lock_server_destroy(struct lock_server *ls)
{
	struct server_lock *sl;

	if (!ls)
		return;
	while ((sl = RB_MIN(server_lock_tree, &ls->tree))) {
		RB_REMOVE(server_lock_tree, &ls->tree, sl);
		free_lock(sl);
	}
	pthread_mutex_destroy(&ls->tree_mutex);
	free(ls);
}

int lock_server_request(struct lock_server *ls, u64 rid, u64 net_id,
                        const struct scoutfs_net_lock *nl)
{
	struct client_entry *ce;
	struct server_lock *sl;
	int ret;

	if (!mode_valid(nl->old_mode) || !mode_valid(nl->new_mode)) {
		counter_inc(lock_server_invalid_message);
		return -EINVAL;
	}
	counter_inc(lock_server_request);

	ce = alloc_entry(rid, net_id, nl->new_mode);
	if (!ce)
		return -ENOMEM;
	sl = get_lock(ls, &nl->key, true);
	if (!sl) {
		free(ce);
		return -ENOMEM;
	}
	add_entry(sl, ce, LIST_REQUESTED);
	ret = process_waiting_requests(ls, sl);
	put_lock(ls, sl);
	return ret;
}

int lock_server_invalidate_response(struct lock_server *ls, u64 rid,
                                    const struct scoutfs_net_lock *nl)
{
	struct client_entry *ce = NULL;
	struct server_lock *sl;
	char kbuf[KEY_STR_LEN];
	int ret = 0;

	if (!mode_valid(nl->old_mode) || !mode_valid(nl->new_mode)) {
		counter_inc(lock_server_invalid_message);
		return -EINVAL;
	}
	counter_inc(lock_server_invalidate_response);

	sl = get_lock(ls, &nl->key, false);
	if (sl)
		ce = find_entry(sl, LIST_INVALIDATED, rid);
	if (!ce) {
		/* a farewell or reclaim of the rid may have removed the entry meanwhile */
		counter_inc(lock_server_invalidate_response_unknown);
		log_warn("lock server: invalidation response for %s from rid %016llx without an "
		         "invalidation",
		         key_str(&nl->key, kbuf), (unsigned long long)rid);
		goto out;
	}

	/* we asked for ce->inv_mode; the client echoes it */
	if (ce->inv_mode == SCOUTFS_LOCK_NULL) {
		del_entry(sl, ce);
		free(ce);
	} else {
		ce->mode = ce->inv_mode;
		move_entry(sl, ce, LIST_GRANTED);
	}
	ret = process_waiting_requests(ls, sl);
out:
	if (sl)
		put_lock(ls, sl);
	return ret;
}

int lock_server_greeting(struct lock_server *ls, u64 rid, bool recovering)
{
	struct scoutfs_key zeros = key_zeros();

	if (!recovering)
		return 0;
	counter_inc(lock_server_recover_request);
	return send_result(ls->ops.send_recover(ls->arg, rid, &zeros));
}

int lock_server_recover_response(struct lock_server *ls, u64 rid,
                                 const struct scoutfs_net_lock_recover *nlr, unsigned int len)
{
	const struct scoutfs_net_lock *nl;
	struct client_entry *ce;
	struct server_lock *sl;
	struct scoutfs_key next;
	char kbuf[KEY_STR_LEN];
	unsigned int nr;
	unsigned int i;
	int ret;

	if (len < sizeof(*nlr))
		goto invalid;
	nr = le16_to_cpu(nlr->nr);
	if (nr > SCOUTFS_NET_LOCK_MAX_RECOVER_NR || len < sizeof(*nlr) + nr * sizeof(*nl))
		goto invalid;
	for (i = 0; i < nr; i++) {
		if (!mode_valid(nlr->locks[i].old_mode) || !mode_valid(nlr->locks[i].new_mode))
			goto invalid;
	}

	if (nr == 0) {
		counter_inc(lock_server_recover_finished);
		ls->ops.recovery_finished(ls->arg, rid);
		return 0;
	}

	for (i = 0; i < nr; i++) {
		nl = &nlr->locks[i];
		counter_inc(lock_server_recover_entry);
		ls->ops.raise_seq(ls->arg, le64_to_cpu(nl->write_seq));
		/* a NULL lock is one the client is still requesting: its request is resent */
		if (nl->new_mode == SCOUTFS_LOCK_NULL)
			continue;

		ce = alloc_entry(rid, 0, nl->new_mode);
		if (!ce)
			return -ENOMEM;
		sl = get_lock(ls, &nl->key, true);
		if (!sl) {
			free(ce);
			return -ENOMEM;
		}
		if (find_entry(sl, LIST_GRANTED, rid) || find_entry(sl, LIST_INVALIDATED, rid)) {
			log_err("lock server: rid %016llx recovered %s twice",
			        (unsigned long long)rid, key_str(&nl->key, kbuf));
			free(ce);
			put_lock(ls, sl);
			return -EEXIST;
		}
		add_entry(sl, ce, LIST_GRANTED);
		/* nothing to process: grants wait while recovery is pending */
		put_lock(ls, sl);
	}

	next = nlr->locks[nr - 1].key;
	if (key_is_ones(&next)) {
		/* nothing can sort after it */
		counter_inc(lock_server_recover_finished);
		ls->ops.recovery_finished(ls->arg, rid);
		return 0;
	}
	key_inc(&next);
	counter_inc(lock_server_recover_request);
	ret = ls->ops.send_recover(ls->arg, rid, &next);
	return send_result(ret);

invalid:
	counter_inc(lock_server_invalid_message);
	return -EINVAL;
}

/* process every lock, after removing rid's entries if rid is non-zero; the first error */
static int process_all(struct lock_server *ls, bool farewell, u64 rid)
{
	struct server_lock **sls;
	struct client_entry *ce;
	struct client_entry *tmp;
	struct server_lock *sl;
	bool removed;
	u64 nr;
	u64 i;
	int ret;
	int err;

	ret = get_all_locks(ls, &sls, &nr);
	if (ret < 0)
		return ret;

	for (i = 0; i < nr; i++) {
		sl = sls[i];
		pthread_mutex_lock(&sl->mutex);
		removed = false;
		if (farewell) {
			for (int l = 0; l < NR_LISTS; l++) {
				for (ce = TAILQ_FIRST(&sl->lists[l]); ce; ce = tmp) {
					tmp = TAILQ_NEXT(ce, entry);
					if (ce->rid == rid) {
						del_entry(sl, ce);
						free(ce);
						removed = true;
					}
				}
			}
		}
		if ((!farewell || removed) && !TAILQ_EMPTY(&sl->lists[LIST_REQUESTED])) {
			err = process_waiting_requests(ls, sl);
			if (err < 0 && ret == 0)
				ret = err;
		}
		put_lock(ls, sl);
	}
	free(sls);
	return ret;
}

int lock_server_recovery_done(struct lock_server *ls)
{
	return process_all(ls, false, 0);
}

int lock_server_farewell(struct lock_server *ls, u64 rid)
{
	counter_inc(lock_server_farewell);
	return process_all(ls, true, rid);
}

int lock_server_describe(struct lock_server *ls, char *buf, unsigned int len)
{
	struct server_lock **sls;
	struct client_entry *ce;
	char kbuf[KEY_STR_LEN];
	char line[256];
	unsigned int off = 0;
	bool full = false;
	u64 nr;
	u64 i;
	int n;

	if (len > 0)
		buf[0] = '\0';
	if (get_all_locks(ls, &sls, &nr) < 0)
		return 0;

	for (i = 0; i < nr; i++) {
		pthread_mutex_lock(&sls[i]->mutex);
		for (int l = 0; l < NR_LISTS && !full; l++) {
			for (ce = TAILQ_FIRST(&sls[i]->lists[l]); ce; ce = TAILQ_NEXT(ce, entry)) {
				n = snprintf(line, sizeof(line), "%s %s %s rid %016llx %llu\n",
				             key_str(&sls[i]->key, kbuf), mode_name(ce->mode),
				             list_names[l], (unsigned long long)ce->rid,
				             (unsigned long long)ce->net_id);
				/* whole lines only */
				if (n < 0 || off + (unsigned int)n >= len) {
					full = true;
					break;
				}
				memcpy(buf + off, line, n + 1);
				off += n;
			}
		}
		put_lock(ls, sls[i]);
	}
	free(sls);
	return off;
}

int lock_server_rid_entries(struct lock_server *ls, u64 rid)
{
	struct server_lock **sls;
	struct client_entry *ce;
	int count = 0;
	u64 nr;
	u64 i;
	int ret;

	ret = get_all_locks(ls, &sls, &nr);
	if (ret < 0)
		return ret;
	for (i = 0; i < nr; i++) {
		pthread_mutex_lock(&sls[i]->mutex);
		for (int l = 0; l < NR_LISTS; l++) {
			for (ce = TAILQ_FIRST(&sls[i]->lists[l]); ce; ce = TAILQ_NEXT(ce, entry))
				count += ce->rid == rid;
		}
		put_lock(ls, sls[i]);
	}
	free(sls);
	return count;
}
