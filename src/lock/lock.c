/*
 * lock.c: the client side of cluster locks.
 *
 * Every mount caches items, and the kernel caches attributes, names and pages, under cluster
 * locks.  A lock covers a fixed range of keys that every mount computes the same way, and it
 * is named on the wire by its start key alone.  The server grants locks in modes (NULL, READ,
 * WRITE, WRITE_ONLY) and takes them back with invalidation requests; this file is the state
 * machine that sits between the mount's many request threads and that message stream.
 *
 * The argument, in the order things happen to a lock:
 *
 *  - A task asks for a mode.  If the mode granted to this mount satisfies it (the same mode,
 *    or READ under WRITE -- WRITE does not satisfy WRITE_ONLY, whose holders never read) the
 *    task becomes a user at once.  Otherwise the first task to notice sends one request to
 *    the server; at most one request per lock is ever in flight, and every other task that
 *    wants something waits and re-evaluates after each grant.  That one-request rule is what
 *    lets the server ignore the client's idea of its old mode and lets both sides reason
 *    about a single pending change.
 *
 *  - Grants and invalidations arrive on the net receive thread in the order the server sent
 *    them.  Neither may block there.  A grant just sets the mode.  An invalidation is put on
 *    the lock's FIFO of requests, any number of them, because the server may send a second
 *    one the moment it has our answer to the first (the original had three bugs in a row
 *    around exactly this window), and a new server after failover resends duplicates.
 *
 *  - One worker thread runs invalidations.  The head request of a lock runs once no active
 *    user would be left holding a mode the target does not satisfy (WRITE users for a
 *    WRITE->READ downgrade, all users for ->NULL).  The worker lowers the mode first, so no
 *    incompatible user can start, keeps the old mode in invalidating_mode, calls the mount's
 *    invalidate callback (commit dirty items, drop caches), answers the server and only then
 *    pops the request.  Anything that arrived meanwhile is still queued and the worker loops
 *    over the lock again.  An invalidation for a lock we do not have is answered at once.
 *
 *  - The callback may have to flush the kernel's dirty pages (written through mmap) into
 *    items before it commits.  The kernel writes them back through requests that need the
 *    very lock being given up, and a request already holding page locks may be waiting for
 *    it too; the flush waits for those pages.  So between lock_flush_begin and
 *    lock_flush_end, callers that hold kernel pages (LOCK_KERNEL_PAGES) may still use the
 *    old mode, and lock_flush_end waits for them before the callback commits.
 *
 *  - While an invalidation waits for users to drain, new users whose mode the target would
 *    not satisfy wait too, so a steady stream of local users cannot starve the rest of the
 *    cluster.  A thread that already holds the lock is let through: upper layers may take the
 *    same lock twice (two index items in one seq group) and blocking the second acquisition
 *    would wait on itself.
 *
 *  - A lock with no users, waiters, request or invalidation is idle.  Idle granted locks sit
 *    on an LRU; idle NULL locks are freed.  Every lock call gives back the oldest idle lock
 *    once there are more locks than the idle limit, by requesting NULL for it: the server
 *    answers by invalidating our own grant (which waits for anyone who grabbed the lock in
 *    the meantime) and then grants NULL, and the NULL grant frees the lock.
 *
 *  - A new server rebuilds its table from us.  We report the mode we still might be using:
 *    during an invalidation that is the old mode, because caches are being written back and
 *    dropped until the answer is sent; reporting the new mode early would let the server grant
 *    a conflicting mode while we are still flushing.
 *
 * One mutex per mount protects everything here; each lock has a condition variable for the
 * tasks waiting on it.  Callbacks into the rest of the mount (sends, invalidate, trans_seq)
 * are always made without the mutex.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bsd/sys/queue.h>
#include <bsd/sys/tree.h>

#include "lock/lock.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/util.h"
#include "util/workq.h"

#define NR_MODES SCOUTFS_LOCK_INVALID
/* how often a blocked wait asks its waiter whether it was interrupted */
#define WAIT_POLL_MS 50
/* how long a failed invalidate callback waits before it is tried again */
#define INV_RETRY_MS 100

COUNTER_DEFINE(lock_lock);
COUNTER_DEFINE(lock_unlock);
COUNTER_DEFINE(lock_alloc);
COUNTER_DEFINE(lock_free);
COUNTER_DEFINE(lock_request);
COUNTER_DEFINE(lock_request_error);
COUNTER_DEFINE(lock_grant);
COUNTER_DEFINE(lock_grant_error);
COUNTER_DEFINE(lock_grant_unexpected);
COUNTER_DEFINE(lock_grant_deferred);
COUNTER_DEFINE(lock_wait);
COUNTER_DEFINE(lock_wait_invalidation);
COUNTER_DEFINE(lock_nonblock_eagain);
COUNTER_DEFINE(lock_interrupted);
COUNTER_DEFINE(lock_shutdown_error);
COUNTER_DEFINE(lock_invalidate);
COUNTER_DEFINE(lock_invalidate_unknown);
COUNTER_DEFINE(lock_invalidate_chained);
COUNTER_DEFINE(lock_invalidate_callback);
COUNTER_DEFINE(lock_invalidate_callback_error);
COUNTER_DEFINE(lock_invalidate_retry);
COUNTER_DEFINE(lock_invalidate_noop);
COUNTER_DEFINE(lock_invalidate_response);
COUNTER_DEFINE(lock_invalidate_response_error);
COUNTER_DEFINE(lock_invalidate_worker);
COUNTER_DEFINE(lock_shrink_request);
COUNTER_DEFINE(lock_shrink_aborted);
COUNTER_DEFINE(lock_recover_request);
COUNTER_DEFINE(lock_new_server);
COUNTER_DEFINE(lock_nested_user);
COUNTER_DEFINE(lock_flush_user);

/*
 * A task waiting in lock_key_range.  A grant that satisfies its mode entitles it: the grant
 * was sent for the tasks waiting then, so they use it before an invalidation that the server
 * sent right after the grant may take it away (the invalidation waits for them as for users).
 */
struct lock_waitent {
	TAILQ_ENTRY(lock_waitent) entry;
	enum scoutfs_lock_mode mode;
	bool entitled;
};

/* one invalidation request from the server, answered with an echo of nl to net_id */
struct inv_req {
	STAILQ_ENTRY(inv_req) entry;
	u64 net_id;
	struct scoutfs_net_lock nl;
};

struct lock_private {
	struct lock lock; /* the public part; lock.priv points back here */
	RB_ENTRY(lock_private) node;
	TAILQ_ENTRY(lock_private) lru_entry;
	/* on li->inv_list while requests wait, on the worker's private list while running */
	TAILQ_ENTRY(lock_private) inv_entry;
	STAILQ_HEAD(, inv_req) inv_fifo;
	TAILQ_HEAD(, lock_waitent) wait_list;
	pthread_cond_t cond;
	unsigned int users[NR_MODES];
	unsigned int waiters[NR_MODES];
	unsigned int entitled[NR_MODES];
	/* numbers requests so a waiter can tell whether the error is about the one it saw */
	u64 req_seq;
	u64 err_seq;
	int err;
	/* the worker's view of the running invalidation */
	enum scoutfs_lock_mode inv_old;
	enum scoutfs_lock_mode inv_new;
	/* the callback failed: not answered, tried again at inv_retry_ns */
	bool inv_failed;
	u64 inv_retry_ns;
	/* a grant that arrived while an invalidation ran, applied when it is done */
	struct scoutfs_net_lock deferred_grant;
	bool grant_deferred;
	bool request_pending;
	bool on_lru;
	bool inv_listed;
	bool inv_running;
	/* the running invalidation flushes kernel pages: page holders may use the old mode */
	bool flushing;
};

static int lock_private_cmp(const struct lock_private *a, const struct lock_private *b)
{
	return key_compare(&a->lock.start, &b->lock.start);
}

RB_HEAD(lock_tree, lock_private);
/* libbsd leaves __unused undefined, so spell out RB_GENERATE_STATIC */
RB_GENERATE_INTERNAL(lock_tree, lock_private, node, lock_private_cmp,
                     __attribute__((unused)) static)

struct lock_info {
	struct lock_ops ops;
	void *arg;
	pthread_mutex_t mutex;
	pthread_condattr_t condattr;
	struct lock_tree tree;
	TAILQ_HEAD(, lock_private) lru;
	TAILQ_HEAD(, lock_private) inv_list;
	u64 nr_locks;
	u64 nr_lru;
	u32 idle_count;
	u64 last_refresh_gen;
	bool shutdown;
	struct workq *inv_wq;
	struct work inv_work;
};

/* ---- modes ---- */

static bool mode_valid(int mode)
{
	return mode >= SCOUTFS_LOCK_NULL && mode < SCOUTFS_LOCK_INVALID;
}

static bool user_mode_valid(int mode)
{
	return mode == SCOUTFS_LOCK_READ || mode == SCOUTFS_LOCK_WRITE ||
	       mode == SCOUTFS_LOCK_WRITE_ONLY;
}

bool lock_can_read(enum scoutfs_lock_mode mode)
{
	return mode == SCOUTFS_LOCK_READ || mode == SCOUTFS_LOCK_WRITE;
}

bool lock_can_write(enum scoutfs_lock_mode mode)
{
	return mode == SCOUTFS_LOCK_WRITE || mode == SCOUTFS_LOCK_WRITE_ONLY;
}

/* may a user of mode wanted proceed under granted? */
static bool mode_satisfies(enum scoutfs_lock_mode granted, enum scoutfs_lock_mode wanted)
{
	return granted == wanted || (granted == SCOUTFS_LOCK_WRITE && wanted == SCOUTFS_LOCK_READ);
}

/*
 * The mode an invalidation leaves us in.  It only ever lowers: a duplicate from a new server
 * can ask for WRITE->READ while we are already at NULL, and must not hand us READ.
 */
static enum scoutfs_lock_mode inv_target(enum scoutfs_lock_mode cur, enum scoutfs_lock_mode want)
{
	if (want == SCOUTFS_LOCK_NULL)
		return SCOUTFS_LOCK_NULL;
	if (cur == want)
		return cur;
	if (cur == SCOUTFS_LOCK_WRITE && want == SCOUTFS_LOCK_READ)
		return SCOUTFS_LOCK_READ;
	return SCOUTFS_LOCK_NULL;
}

static const char *mode_name(enum scoutfs_lock_mode mode)
{
	static const char *names[] = { "null", "read", "write", "write_only" };

	return mode_valid(mode) ? names[mode] : "invalid";
}

/* lock->mode is also read without the mutex by the lock_mode_allows_* asserts */
static void set_mode(struct lock *lock, enum scoutfs_lock_mode mode)
{
	__atomic_store_n(&lock->mode, mode, __ATOMIC_RELEASE);
}

/* ---- the locks a thread holds (to let nested acquisitions past a pending invalidation) ---- */

#define HELD_SLOTS 16

struct held_lock {
	struct lock_private *lp;
	unsigned int nr;
};

static __thread struct held_lock held_locks[HELD_SLOTS];

static bool thread_holds(struct lock_private *lp)
{
	for (int i = 0; i < HELD_SLOTS; i++) {
		if (held_locks[i].lp == lp && held_locks[i].nr > 0)
			return true;
	}
	return false;
}

static void thread_hold(struct lock_private *lp)
{
	struct held_lock *empty = NULL;

	for (int i = 0; i < HELD_SLOTS; i++) {
		if (held_locks[i].lp == lp) {
			held_locks[i].nr++;
			return;
		}
		if (!empty && held_locks[i].nr == 0)
			empty = &held_locks[i];
	}
	/* a thread holding more than HELD_SLOTS locks just isn't tracked for the others */
	if (empty) {
		empty->lp = lp;
		empty->nr = 1;
	}
}

static void thread_release(struct lock_private *lp)
{
	for (int i = 0; i < HELD_SLOTS; i++) {
		if (held_locks[i].lp == lp && held_locks[i].nr > 0) {
			if (--held_locks[i].nr == 0)
				held_locks[i].lp = NULL;
			return;
		}
	}
}

/* ---- lock state, all under li->mutex ---- */

static struct lock_private *lock_lookup(struct lock_info *li, const struct scoutfs_key *key)
{
	struct lock_private *lp = RB_ROOT(&li->tree);
	int cmp;

	while (lp) {
		cmp = key_compare(key, &lp->lock.start);
		if (cmp < 0)
			lp = RB_LEFT(lp, node);
		else if (cmp > 0)
			lp = RB_RIGHT(lp, node);
		else
			return lp;
	}
	return NULL;
}

/* the first lock whose start is at or after key */
static struct lock_private *lock_lookup_next(struct lock_info *li, const struct scoutfs_key *key)
{
	struct lock_private *lp = RB_ROOT(&li->tree);
	struct lock_private *best = NULL;
	int cmp;

	while (lp) {
		cmp = key_compare(key, &lp->lock.start);
		if (cmp < 0) {
			best = lp;
			lp = RB_LEFT(lp, node);
		} else if (cmp > 0) {
			lp = RB_RIGHT(lp, node);
		} else {
			return lp;
		}
	}
	return best;
}

static unsigned int count_modes(const unsigned int *counts)
{
	unsigned int nr = 0;

	for (int m = 0; m < NR_MODES; m++)
		nr += counts[m];
	return nr;
}

static bool lock_idle(struct lock_private *lp)
{
	return !lp->request_pending && !lp->inv_running && STAILQ_EMPTY(&lp->inv_fifo) &&
	       count_modes(lp->users) == 0 && count_modes(lp->waiters) == 0;
}

/* would every active user, and every waiter entitled by a grant, be allowed under target? */
static bool users_fit(struct lock_private *lp, enum scoutfs_lock_mode target)
{
	for (int m = SCOUTFS_LOCK_READ; m < NR_MODES; m++) {
		if ((lp->users[m] || lp->entitled[m]) && !mode_satisfies(target, m))
			return false;
	}
	return true;
}

/* does a queued (not yet running) invalidation keep a new user of mode from starting? */
static bool invalidation_blocks(struct lock_private *lp, enum scoutfs_lock_mode mode)
{
	struct inv_req *req = STAILQ_FIRST(&lp->inv_fifo);

	if (!req || lp->inv_running)
		return false;
	return !mode_satisfies(inv_target(lp->lock.mode, req->nl.new_mode), mode);
}

static void lru_del(struct lock_info *li, struct lock_private *lp)
{
	if (lp->on_lru) {
		TAILQ_REMOVE(&li->lru, lp, lru_entry);
		lp->on_lru = false;
		li->nr_lru--;
	}
}

static void lock_free(struct lock_info *li, struct lock_private *lp)
{
	struct inv_req *req;

	while ((req = STAILQ_FIRST(&lp->inv_fifo))) {
		STAILQ_REMOVE_HEAD(&lp->inv_fifo, entry);
		free(req);
	}
	pthread_cond_destroy(&lp->cond);
	free(lp);
	counter_inc(lock_free);
}

/*
 * Re-test a lock after anything that could have made it idle: an idle granted lock goes to
 * the tail of the LRU, an idle NULL lock is freed, a busy lock is not on the LRU.
 */
static void lock_put(struct lock_info *li, struct lock_private *lp)
{
	if (!lock_idle(lp)) {
		lru_del(li, lp);
		return;
	}
	if (lp->lock.mode == SCOUTFS_LOCK_NULL) {
		lru_del(li, lp);
		RB_REMOVE(lock_tree, &li->tree, lp);
		li->nr_locks--;
		lock_free(li, lp);
	} else if (!lp->on_lru) {
		TAILQ_INSERT_TAIL(&li->lru, lp, lru_entry);
		lp->on_lru = true;
		li->nr_lru++;
	}
}

static int lock_find_or_create(struct lock_info *li, const struct scoutfs_key *start,
                               const struct scoutfs_key *end, struct lock_private **ret)
{
	struct lock_private *lp;
	char sbuf[KEY_STR_LEN];
	char ebuf[KEY_STR_LEN];
	char lbuf[KEY_STR_LEN];

	lp = lock_lookup(li, start);
	if (lp) {
		if (key_compare(&lp->lock.end, end) != 0) {
			log_err("lock %s requested with end %s but has end %s",
			        key_str(start, sbuf), key_str(end, ebuf),
			        key_str(&lp->lock.end, lbuf));
			return -EINVAL;
		}
		*ret = lp;
		return 0;
	}

	lp = calloc(1, sizeof(*lp));
	if (!lp)
		return -ENOMEM;
	lp->lock.start = *start;
	lp->lock.end = *end;
	lp->lock.mode = SCOUTFS_LOCK_NULL;
	lp->lock.invalidating_mode = SCOUTFS_LOCK_NULL;
	lp->lock.priv = lp;
	STAILQ_INIT(&lp->inv_fifo);
	TAILQ_INIT(&lp->wait_list);
	pthread_cond_init(&lp->cond, &li->condattr);
	RB_INSERT(lock_tree, &li->tree, lp);
	li->nr_locks++;
	counter_inc(lock_alloc);
	*ret = lp;
	return 0;
}

static void kick_invalidation(struct lock_info *li)
{
	workq_queue(li->inv_wq, &li->inv_work);
}

/*
 * Send the request for new_mode that the caller marked pending.  Drops the mutex around the
 * send: the grant may be processed before the send returns, request_pending keeps the lock.
 */
static int send_request_locked(struct lock_info *li, struct lock_private *lp,
                               enum scoutfs_lock_mode new_mode)
{
	struct scoutfs_net_lock nl;
	int ret;

	memset(&nl, 0, sizeof(nl));
	nl.key = lp->lock.start;
	nl.old_mode = lp->lock.mode;
	nl.new_mode = new_mode;

	pthread_mutex_unlock(&li->mutex);
	ret = li->ops.send_request(li->arg, &nl);
	pthread_mutex_lock(&li->mutex);

	if (ret < 0) {
		counter_inc(lock_request_error);
		lp->request_pending = false;
		pthread_cond_broadcast(&lp->cond);
	}
	return ret;
}

/* give back idle locks with NULL requests; all of them, or one if over the idle limit */
static void shrink_idle(struct lock_info *li, bool all)
{
	struct lock_private **lps = NULL;
	struct scoutfs_net_lock *nls = NULL;
	struct lock_private *lp;
	u64 nr = 0;
	u64 i;
	int ret;

	pthread_mutex_lock(&li->mutex);
	if (li->shutdown || TAILQ_EMPTY(&li->lru) || (!all && li->nr_locks <= li->idle_count))
		goto out;

	nr = all ? li->nr_lru : 1;
	lps = calloc(nr, sizeof(*lps));
	nls = calloc(nr, sizeof(*nls));
	if (!lps || !nls) {
		nr = 0;
		goto out;
	}
	for (i = 0; i < nr; i++) {
		lp = TAILQ_FIRST(&li->lru);
		lru_del(li, lp);
		lp->request_pending = true;
		lp->req_seq++;
		lps[i] = lp;
		nls[i].key = lp->lock.start;
		nls[i].old_mode = lp->lock.mode;
		nls[i].new_mode = SCOUTFS_LOCK_NULL;
	}
out:
	pthread_mutex_unlock(&li->mutex);

	for (i = 0; i < nr; i++) {
		counter_inc(lock_shrink_request);
		ret = li->ops.send_request(li->arg, &nls[i]);
		if (ret == 0)
			continue;

		/* not freeing it after all: back to the head of the LRU if nobody took it */
		counter_inc(lock_shrink_aborted);
		pthread_mutex_lock(&li->mutex);
		lp = lps[i];
		lp->request_pending = false;
		pthread_cond_broadcast(&lp->cond);
		if (lock_idle(lp) && lp->lock.mode != SCOUTFS_LOCK_NULL && !lp->on_lru) {
			TAILQ_INSERT_HEAD(&li->lru, lp, lru_entry);
			lp->on_lru = true;
			li->nr_lru++;
		} else {
			lock_put(li, lp);
		}
		pthread_mutex_unlock(&li->mutex);
	}
	free(lps);
	free(nls);
}

/* ---- create, shutdown, destroy ---- */

static void invalidate_worker(struct work *work);

int lock_info_create(const struct lock_ops *ops, void *arg, u32 idle_count, struct lock_info **ret)
{
	struct lock_info *li;

	*ret = NULL;
	if (!ops || !ops->send_request || !ops->send_invalidate_response ||
	    !ops->send_recover_response)
		return -EINVAL;

	li = calloc(1, sizeof(*li));
	if (!li)
		return -ENOMEM;
	li->ops = *ops;
	li->arg = arg;
	li->idle_count = idle_count;
	pthread_mutex_init(&li->mutex, NULL);
	pthread_condattr_init(&li->condattr);
	pthread_condattr_setclock(&li->condattr, CLOCK_MONOTONIC);
	RB_INIT(&li->tree);
	TAILQ_INIT(&li->lru);
	TAILQ_INIT(&li->inv_list);
	work_init(&li->inv_work, invalidate_worker);
	/* one thread: invalidations of a lock run strictly in arrival order */
	li->inv_wq = workq_create("lock_inval", 1);
	if (!li->inv_wq) {
		pthread_condattr_destroy(&li->condattr);
		pthread_mutex_destroy(&li->mutex);
		free(li);
		return -ENOMEM;
	}
	*ret = li;
	return 0;
}

void lock_shutdown(struct lock_info *li)
{
	struct lock_private *lp;

	if (!li)
		return;
	pthread_mutex_lock(&li->mutex);
	li->shutdown = true;
	for (lp = RB_MIN(lock_tree, &li->tree); lp; lp = RB_NEXT(lock_tree, &li->tree, lp))
		pthread_cond_broadcast(&lp->cond);
	/* failed invalidations are answered now, without the callback */
	if (!TAILQ_EMPTY(&li->inv_list))
		kick_invalidation(li);
	pthread_mutex_unlock(&li->mutex);
}

void lock_info_destroy(struct lock_info *li)
{
	struct lock_private *lp;

	if (!li)
		return;

	lock_shutdown(li);
	/* waits for a running invalidation; nothing can call in any more */
	workq_destroy(li->inv_wq);

	while ((lp = RB_MIN(lock_tree, &li->tree))) {
		if (count_modes(lp->users) || count_modes(lp->waiters))
			log_warn("lock destroy: lock still has users or waiters");
		RB_REMOVE(lock_tree, &li->tree, lp);
		lock_free(li, lp);
	}
	pthread_condattr_destroy(&li->condattr);
	pthread_mutex_destroy(&li->mutex);
	free(li);
}

void lock_set_idle_count(struct lock_info *li, u32 idle_count)
{
	pthread_mutex_lock(&li->mutex);
	li->idle_count = idle_count;
	pthread_mutex_unlock(&li->mutex);
}

/* ---- acquire and release ---- */

/* wait for a change on the lock; -EINTR once the waiter says it was interrupted */
static int wait_locked(struct lock_info *li, struct lock_private *lp,
                       const struct lock_waiter *waiter)
{
	struct timespec ts;
	bool intr;

	if (!waiter || !waiter->interrupted) {
		pthread_cond_wait(&lp->cond, &li->mutex);
		return 0;
	}

	ts = mono_deadline_ms(WAIT_POLL_MS);
	pthread_cond_timedwait(&lp->cond, &li->mutex, &ts);

	pthread_mutex_unlock(&li->mutex);
	intr = waiter->interrupted(waiter->arg);
	pthread_mutex_lock(&li->mutex);

	return intr ? -EINTR : 0;
}

int lock_key_range(struct lock_info *li, enum scoutfs_lock_mode mode, int flags,
                   const struct scoutfs_key *start, const struct scoutfs_key *end,
                   const struct lock_waiter *waiter, struct lock **ret_lock)
{
	struct lock_waitent we = { .mode = mode };
	struct lock_private *lp;
	u64 seen_req = 0;
	int ret;

	if (!ret_lock)
		return -EINVAL;
	*ret_lock = NULL;
	if (!li || !start || !end || !user_mode_valid(mode) ||
	    (flags & ~(LOCK_NONBLOCK | LOCK_KERNEL_PAGES)) ||
	    key_compare(start, end) > 0)
		return -EINVAL;

	counter_inc(lock_lock);
	shrink_idle(li, false);

	pthread_mutex_lock(&li->mutex);
	if (li->shutdown) {
		counter_inc(lock_shutdown_error);
		ret = -ESHUTDOWN;
		goto out_unlock;
	}

	ret = lock_find_or_create(li, start, end, &lp);
	if (ret < 0)
		goto out_unlock;

	lru_del(li, lp);
	lp->waiters[mode]++;
	TAILQ_INSERT_TAIL(&lp->wait_list, &we, entry);

	for (;;) {
		if (li->shutdown) {
			counter_inc(lock_shutdown_error);
			ret = -ESHUTDOWN;
			break;
		}

		if ((flags & LOCK_KERNEL_PAGES) && lp->flushing &&
		    mode_satisfies(lp->lock.invalidating_mode, mode)) {
			counter_inc(lock_flush_user);
			lp->users[mode]++;
			ret = 0;
			break;
		}

		if (mode_satisfies(lp->lock.mode, mode)) {
			if (we.entitled || !invalidation_blocks(lp, mode)) {
				lp->users[mode]++;
				ret = 0;
				break;
			}
			if (thread_holds(lp)) {
				counter_inc(lock_nested_user);
				lp->users[mode]++;
				ret = 0;
				break;
			}
		}

		if (flags & LOCK_NONBLOCK) {
			counter_inc(lock_nonblock_eagain);
			ret = -EAGAIN;
			break;
		}

		/* the request we were waiting on failed at the server */
		if (seen_req && !lp->request_pending && lp->err_seq == seen_req) {
			ret = lp->err;
			break;
		}

		if (!mode_satisfies(lp->lock.mode, mode) && !lp->request_pending) {
			lp->request_pending = true;
			seen_req = ++lp->req_seq;
			counter_inc(lock_request);
			ret = send_request_locked(li, lp, mode);
			if (ret < 0)
				break;
			continue;
		}

		if (lp->request_pending) {
			seen_req = lp->req_seq;
			counter_inc(lock_wait);
		} else {
			/* granted a satisfying mode but an invalidation is queued ahead of us */
			counter_inc(lock_wait_invalidation);
		}

		ret = wait_locked(li, lp, waiter);
		if (ret < 0) {
			counter_inc(lock_interrupted);
			break;
		}
	}

	lp->waiters[mode]--;
	TAILQ_REMOVE(&lp->wait_list, &we, entry);
	if (we.entitled) {
		lp->entitled[mode]--;
		/* an invalidation may have been waiting for us to become a user (or leave) */
		if (!STAILQ_EMPTY(&lp->inv_fifo))
			kick_invalidation(li);
	}
	if (ret == 0) {
		thread_hold(lp);
		*ret_lock = &lp->lock;
	}
	lock_put(li, lp);
out_unlock:
	pthread_mutex_unlock(&li->mutex);
	return ret;
}

void lock_unlock(struct lock_info *li, struct lock *lock, enum scoutfs_lock_mode mode)
{
	struct lock_private *lp;
	u64 seq = 0;

	if (!li || !lock)
		return;
	lp = lock->priv;
	counter_inc(lock_unlock);

	/* sampled after the user's changes were made, before anyone can invalidate */
	if (lock_can_write(mode) && li->ops.trans_seq)
		seq = li->ops.trans_seq(li->arg);

	pthread_mutex_lock(&li->mutex);
	if (!user_mode_valid(mode) || lp->users[mode] == 0) {
		log_err("lock unlock of mode %d without a user", mode);
		pthread_mutex_unlock(&li->mutex);
		return;
	}
	lp->users[mode]--;
	if (lock_can_write(mode) && seq > lp->lock.dirty_trans_seq)
		lp->lock.dirty_trans_seq = seq;
	thread_release(lp);

	/* an invalidation may have been waiting for this user to drain */
	if (!STAILQ_EMPTY(&lp->inv_fifo))
		kick_invalidation(li);
	/* ... or a flush, for the users it let in */
	if (lp->inv_running)
		pthread_cond_broadcast(&lp->cond);
	lock_put(li, lp);
	pthread_mutex_unlock(&li->mutex);
}

void lock_flush_begin(struct lock_info *li, struct lock *lock)
{
	struct lock_private *lp = lock->priv;

	pthread_mutex_lock(&li->mutex);
	lp->flushing = true;
	__atomic_store_n(&lock->flush_mode, lock->invalidating_mode, __ATOMIC_RELEASE);
	/* page holders already waiting may go now */
	pthread_cond_broadcast(&lp->cond);
	pthread_mutex_unlock(&li->mutex);
}

void lock_flush_end(struct lock_info *li, struct lock *lock)
{
	struct lock_private *lp = lock->priv;

	pthread_mutex_lock(&li->mutex);
	lp->flushing = false;
	/* before the flush only users the target allows were left (users_fit) */
	while (!users_fit(lp, lp->lock.mode))
		pthread_cond_wait(&lp->cond, &li->mutex);
	__atomic_store_n(&lock->flush_mode, SCOUTFS_LOCK_NULL, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&li->mutex);
}

bool lock_covers(const struct lock *lock, const struct scoutfs_key *key)
{
	return lock && key_in_range(key, &lock->start, &lock->end);
}

/* a flush lets page holders use the old mode (flush_mode) while mode is the target */
bool lock_mode_allows_read(const struct lock *lock)
{
	return lock && (lock_can_read(__atomic_load_n(&lock->mode, __ATOMIC_ACQUIRE)) ||
			lock_can_read(__atomic_load_n(&lock->flush_mode, __ATOMIC_ACQUIRE)));
}

bool lock_mode_allows_write(const struct lock *lock)
{
	return lock && (lock_can_write(__atomic_load_n(&lock->mode, __ATOMIC_ACQUIRE)) ||
			lock_can_write(__atomic_load_n(&lock->flush_mode, __ATOMIC_ACQUIRE)));
}

/* ---- messages from the server ---- */

/*
 * A successful grant: the new mode, and the waiting tasks it satisfies are entitled to it.
 * write_seq changes only under READ users (an upgrade in place): the server takes a
 * write-capable mode away through an invalidation, which waits for its users.
 */
static void apply_grant(struct lock_info *li, struct lock_private *lp,
                        const struct scoutfs_net_lock *nl)
{
	struct lock_waitent *we;

	counter_inc(lock_grant);
	lp->request_pending = false;
	if (!lock_can_read(lp->lock.mode) && lock_can_read(nl->new_mode))
		lp->lock.refresh_gen = ++li->last_refresh_gen;
	lp->lock.write_seq = le64_to_cpu(nl->write_seq);
	set_mode(&lp->lock, nl->new_mode);
	for (we = TAILQ_FIRST(&lp->wait_list); we; we = TAILQ_NEXT(we, entry)) {
		if (!we->entitled && mode_satisfies(nl->new_mode, we->mode)) {
			we->entitled = true;
			lp->entitled[we->mode]++;
		}
	}
	pthread_cond_broadcast(&lp->cond);
	if (!STAILQ_EMPTY(&lp->inv_fifo))
		kick_invalidation(li);
}

void lock_grant_response(struct lock_info *li, const struct scoutfs_net_lock *nl, int error)
{
	struct lock_private *lp;
	char kbuf[KEY_STR_LEN];

	if (error == 0 && !mode_valid(nl->new_mode)) {
		log_err("lock grant for %s with invalid mode %u", key_str(&nl->key, kbuf),
		        nl->new_mode);
		error = -EINVAL;
	}

	pthread_mutex_lock(&li->mutex);
	lp = lock_lookup(li, &nl->key);
	if (!lp || !lp->request_pending || lp->grant_deferred) {
		counter_inc(lock_grant_unexpected);
		log_warn("lock grant for %s without a pending request", key_str(&nl->key, kbuf));
		goto out;
	}

	if (error) {
		counter_inc(lock_grant_error);
		lp->request_pending = false;
		lp->err = error < 0 ? error : -error;
		lp->err_seq = lp->req_seq;
		pthread_cond_broadcast(&lp->cond);
	} else if (lp->inv_running) {
		/*
		 * Our answer to the running invalidation went out and the server acted on it.
		 * Within one server the callback is done by now, but a new server can grant a
		 * request it considers compatible with the old mode we reported while the
		 * callback still drops the range: nobody may use the new mode before it's done.
		 */
		counter_inc(lock_grant_deferred);
		lp->deferred_grant = *nl;
		lp->grant_deferred = true;
	} else {
		apply_grant(li, lp, nl);
	}
	lock_put(li, lp);
out:
	pthread_mutex_unlock(&li->mutex);
}

int lock_invalidate_request(struct lock_info *li, u64 net_id, const struct scoutfs_net_lock *nl)
{
	struct lock_private *lp;
	struct inv_req *req;
	int ret;

	if (!mode_valid(nl->old_mode) || !mode_valid(nl->new_mode))
		return -EINVAL;
	counter_inc(lock_invalidate);

	req = malloc(sizeof(*req));
	if (!req)
		return -ENOMEM;
	req->net_id = net_id;
	req->nl = *nl;

	pthread_mutex_lock(&li->mutex);
	lp = lock_lookup(li, &nl->key);
	if (!lp) {
		/* "we don't hold it" satisfies the request: legitimate after failover */
		pthread_mutex_unlock(&li->mutex);
		free(req);
		counter_inc(lock_invalidate_unknown);
		ret = li->ops.send_invalidate_response(li->arg, net_id, nl);
		if (ret == -ENOTCONN)
			ret = 0;
		return ret;
	}

	if (!STAILQ_EMPTY(&lp->inv_fifo))
		counter_inc(lock_invalidate_chained);
	STAILQ_INSERT_TAIL(&lp->inv_fifo, req, entry);
	lru_del(li, lp);
	if (!lp->inv_running && !lp->inv_listed) {
		TAILQ_INSERT_TAIL(&li->inv_list, lp, inv_entry);
		lp->inv_listed = true;
	}
	kick_invalidation(li);
	pthread_mutex_unlock(&li->mutex);
	return 0;
}

/*
 * The single invalidation worker.  Each pass starts every listed lock whose head request can
 * run, then without the mutex makes each range safe and answers, then pops the requests.  A
 * lock with more requests goes back on the list and the loop goes round again; a lock that
 * must wait for users stays listed and unlock kicks the worker.
 *
 * If the callback fails (its commit failed) the range is not safe to give up, so nothing is
 * answered: the invalidation stays running, with the mode already lowered, and is tried
 * again a little later -- until it works or the mount shuts down and answers without it.
 */
static void invalidate_worker(struct work *work)
{
	struct lock_info *li = container_of(work, struct lock_info, inv_work);
	TAILQ_HEAD(, lock_private) running;
	struct lock_private *lp;
	struct lock_private *tmp;
	enum scoutfs_lock_mode target;
	struct inv_req *req;
	u64 retry_ns;
	u64 now;
	bool shutdown;
	int ret;

	counter_inc(lock_invalidate_worker);
	TAILQ_INIT(&running);

	pthread_mutex_lock(&li->mutex);
	for (;;) {
		now = now_mono_ns();
		retry_ns = 0;
		for (lp = TAILQ_FIRST(&li->inv_list); lp; lp = tmp) {
			tmp = TAILQ_NEXT(lp, inv_entry);

			if (lp->inv_running) {
				/* a failed callback: only users of the target could start */
				if (lp->inv_retry_ns > now && !li->shutdown) {
					if (!retry_ns || lp->inv_retry_ns < retry_ns)
						retry_ns = lp->inv_retry_ns;
					continue;
				}
				counter_inc(lock_invalidate_retry);
			} else {
				req = STAILQ_FIRST(&lp->inv_fifo);
				target = inv_target(lp->lock.mode, req->nl.new_mode);
				if (!users_fit(lp, target))
					continue;

				lp->inv_running = true;
				lp->inv_old = lp->lock.mode;
				lp->inv_new = target;
				/* from now on only users compatible with the target can start */
				lp->lock.invalidating_mode = lp->lock.mode;
				set_mode(&lp->lock, target);
			}
			TAILQ_REMOVE(&li->inv_list, lp, inv_entry);
			lp->inv_listed = false;
			TAILQ_INSERT_TAIL(&running, lp, inv_entry);
		}
		if (TAILQ_EMPTY(&running))
			break;
		shutdown = li->shutdown;
		pthread_mutex_unlock(&li->mutex);

		/* the head request of a running lock stays put: receive only appends */
		for (lp = TAILQ_FIRST(&running); lp; lp = TAILQ_NEXT(lp, inv_entry)) {
			req = STAILQ_FIRST(&lp->inv_fifo);
			ret = 0;
			if (lp->inv_old == lp->inv_new) {
				counter_inc(lock_invalidate_noop);
			} else if (!shutdown && li->ops.invalidate) {
				counter_inc(lock_invalidate_callback);
				ret = li->ops.invalidate(li->arg, &lp->lock, lp->inv_old,
				                         lp->inv_new);
			}
			if (ret < 0) {
				counter_inc(lock_invalidate_callback_error);
				log_err("lock invalidate callback failed: %d, trying again", ret);
				lp->inv_failed = true;
				continue;
			}

			counter_inc(lock_invalidate_response);
			ret = li->ops.send_invalidate_response(li->arg, req->net_id, &req->nl);
			if (ret < 0 && ret != -ENOTCONN) {
				counter_inc(lock_invalidate_response_error);
				log_err("lock invalidate response failed: %d", ret);
			}
		}

		/* the server may already have acted on the answers; later requests are queued */
		pthread_mutex_lock(&li->mutex);
		while ((lp = TAILQ_FIRST(&running))) {
			TAILQ_REMOVE(&running, lp, inv_entry);
			if (lp->inv_failed) {
				lp->inv_failed = false;
				lp->inv_retry_ns = now_mono_ns() + INV_RETRY_MS * NSEC_PER_MSEC;
				TAILQ_INSERT_TAIL(&li->inv_list, lp, inv_entry);
				lp->inv_listed = true;
				continue;
			}
			req = STAILQ_FIRST(&lp->inv_fifo);
			STAILQ_REMOVE_HEAD(&lp->inv_fifo, entry);
			free(req);
			lp->inv_running = false;
			lp->lock.invalidating_mode = SCOUTFS_LOCK_NULL;
			if (lp->grant_deferred) {
				lp->grant_deferred = false;
				apply_grant(li, lp, &lp->deferred_grant);
			}
			if (!STAILQ_EMPTY(&lp->inv_fifo)) {
				TAILQ_INSERT_TAIL(&li->inv_list, lp, inv_entry);
				lp->inv_listed = true;
			}
			pthread_cond_broadcast(&lp->cond);
			lock_put(li, lp);
		}
	}
	if (retry_ns)
		workq_queue_delayed(li->inv_wq, &li->inv_work,
		                    DIV_ROUND_UP(retry_ns - now, NSEC_PER_MSEC));
	pthread_mutex_unlock(&li->mutex);
}

int lock_recover_request(struct lock_info *li, u64 net_id, const struct scoutfs_key *start)
{
	struct scoutfs_net_lock_recover *nlr;
	struct scoutfs_net_lock *nl;
	struct lock_private *lp;
	enum scoutfs_lock_mode mode;
	unsigned int nr = 0;
	size_t len;
	int ret;

	counter_inc(lock_recover_request);
	len = sizeof(*nlr) + SCOUTFS_NET_LOCK_MAX_RECOVER_NR * sizeof(nlr->locks[0]);
	nlr = calloc(1, len);
	if (!nlr)
		return -ENOMEM;

	pthread_mutex_lock(&li->mutex);
	for (lp = lock_lookup_next(li, start); lp && nr < SCOUTFS_NET_LOCK_MAX_RECOVER_NR;
	     lp = RB_NEXT(lock_tree, &li->tree, lp)) {
		/*
		 * Still flushing for the old mode until the invalidation is done.  A grant
		 * deferred meanwhile was for a request compatible with that old mode (or after
		 * its answer), so its mode covers the old one and is what we'll hold.
		 */
		if (lp->inv_running)
			mode = lp->grant_deferred ? lp->deferred_grant.new_mode
			                          : lp->lock.invalidating_mode;
		else
			mode = lp->lock.mode;
		nl = &nlr->locks[nr++];
		nl->key = lp->lock.start;
		nl->write_seq = lp->grant_deferred ? lp->deferred_grant.write_seq
		                                   : cpu_to_le64(lp->lock.write_seq);
		nl->old_mode = mode;
		nl->new_mode = mode;
	}
	pthread_mutex_unlock(&li->mutex);

	nlr->nr = cpu_to_le16(nr);
	ret = li->ops.send_recover_response(li->arg, net_id, nlr,
	                                    sizeof(*nlr) + nr * sizeof(nlr->locks[0]));
	free(nlr);
	if (ret == -ENOTCONN)
		ret = 0;
	return ret;
}

/*
 * Requests in flight stay pending: the net layer resends them to the new server, whose grant
 * completes them as usual, so nothing here is sent (or counted) a second time.  Grants from
 * the old server that were not delivered are dropped by the net layer.
 */
void lock_new_server(struct lock_info *li)
{
	counter_inc(lock_new_server);
	log_debug("lock client: connected to a new server");
}

/* ---- the fixed lock ranges ---- */

void lock_inode_range(u64 ino, struct scoutfs_key *start, struct scoutfs_key *end)
{
	*start = key_make(SCOUTFS_FS_ZONE, ino & ~(u64)SCOUTFS_LOCK_INODE_GROUP_MASK, 0, 0, 0, 0);
	*end = key_make(SCOUTFS_FS_ZONE, ino | SCOUTFS_LOCK_INODE_GROUP_MASK, 0xff, ~0ULL, ~0ULL,
	                0xff);
}

void lock_index_range(u8 type, u64 seq, struct scoutfs_key *start, struct scoutfs_key *end)
{
	*start = key_make(SCOUTFS_INODE_INDEX_ZONE, 0, type, seq & ~SCOUTFS_LOCK_SEQ_GROUP_MASK, 0,
	                  0);
	*end = key_make(SCOUTFS_INODE_INDEX_ZONE, 0, type, seq | SCOUTFS_LOCK_SEQ_GROUP_MASK, ~0ULL,
	                0xff);
}

void lock_orphan_range(struct scoutfs_key *start, struct scoutfs_key *end)
{
	*start = key_make(SCOUTFS_ORPHAN_ZONE, 0, SCOUTFS_ORPHAN_TYPE, 0, 0, 0);
	*end = key_make(SCOUTFS_ORPHAN_ZONE, ~0ULL, 0xff, ~0ULL, ~0ULL, 0xff);
}

void lock_rename_range(struct scoutfs_key *start, struct scoutfs_key *end)
{
	*start = key_make(SCOUTFS_LOCK_ZONE, 0, SCOUTFS_RENAME_TYPE, 0, 0, 0);
	*end = *start;
}

void lock_zone_range(u8 zone, struct scoutfs_key *start, struct scoutfs_key *end)
{
	*start = key_make(zone, 0, 0, 0, 0, 0);
	*end = key_make(zone, ~0ULL, 0xff, ~0ULL, ~0ULL, 0xff);
}

/* ---- convenience wrappers ---- */

int lock_inode(struct lock_info *li, u64 ino, enum scoutfs_lock_mode mode, int flags,
               const struct lock_waiter *waiter, struct lock **ret)
{
	struct scoutfs_key start;
	struct scoutfs_key end;

	lock_inode_range(ino, &start, &end);
	return lock_key_range(li, mode, flags, &start, &end, waiter, ret);
}

#define LOCK_INODES_MAX 4

int lock_inodes(struct lock_info *li, const u64 *inos, int nr, enum scoutfs_lock_mode mode,
                const struct lock_waiter *waiter, struct lock **rets)
{
	u64 groups[LOCK_INODES_MAX];
	struct lock *locks[LOCK_INODES_MAX];
	int nr_groups = 0;
	u64 group;
	u64 tmp;
	int ret = 0;
	int i;
	int j;

	if (!inos || !rets || nr < 0 || nr > LOCK_INODES_MAX)
		return -EINVAL;

	/* unique groups in ascending order: the order every caller locks inodes in */
	for (i = 0; i < nr; i++) {
		rets[i] = NULL;
		if (inos[i] == 0)
			continue;
		group = inos[i] & ~(u64)SCOUTFS_LOCK_INODE_GROUP_MASK;
		for (j = 0; j < nr_groups && groups[j] != group; j++)
			;
		if (j == nr_groups)
			groups[nr_groups++] = group;
	}
	for (i = 1; i < nr_groups; i++) {
		for (j = i; j > 0 && groups[j - 1] > groups[j]; j--) {
			tmp = groups[j];
			groups[j] = groups[j - 1];
			groups[j - 1] = tmp;
		}
	}

	for (i = 0; i < nr_groups; i++) {
		ret = lock_inode(li, groups[i], mode, 0, waiter, &locks[i]);
		if (ret < 0) {
			while (--i >= 0)
				lock_unlock(li, locks[i], mode);
			return ret;
		}
	}

	for (i = 0; i < nr; i++) {
		if (inos[i] == 0)
			continue;
		group = inos[i] & ~(u64)SCOUTFS_LOCK_INODE_GROUP_MASK;
		for (j = 0; groups[j] != group; j++)
			;
		rets[i] = locks[j];
	}
	return 0;
}

void lock_unlock_inodes(struct lock_info *li, struct lock **locks, int nr,
                        enum scoutfs_lock_mode mode)
{
	int i;
	int j;

	/* inodes in one group share one lock held once */
	for (i = 0; i < nr; i++) {
		if (!locks[i])
			continue;
		for (j = 0; j < i && locks[j] != locks[i]; j++)
			;
		if (j == i)
			lock_unlock(li, locks[i], mode);
	}
	for (i = 0; i < nr; i++)
		locks[i] = NULL;
}

/* ---- debugging ---- */

int lock_describe(struct lock_info *li, char *buf, unsigned int len)
{
	struct lock_private *lp;
	char kbuf[KEY_STR_LEN];
	char line[512];
	unsigned int off = 0;
	unsigned int nr_inv;
	struct inv_req *req;
	int n;

	if (len > 0)
		buf[0] = '\0';

	pthread_mutex_lock(&li->mutex);
	for (lp = RB_MIN(lock_tree, &li->tree); lp; lp = RB_NEXT(lock_tree, &li->tree, lp)) {
		nr_inv = 0;
		for (req = STAILQ_FIRST(&lp->inv_fifo); req; req = STAILQ_NEXT(req, entry))
			nr_inv++;
		n = snprintf(line, sizeof(line),
		             "%s mode %s inv_mode %s users %u %u %u waiters %u %u %u request %d "
		             "invalidate %u%s refresh_gen %llu write_seq %llu\n",
		             key_str(&lp->lock.start, kbuf), mode_name(lp->lock.mode),
		             mode_name(lp->lock.invalidating_mode), lp->users[SCOUTFS_LOCK_READ],
		             lp->users[SCOUTFS_LOCK_WRITE], lp->users[SCOUTFS_LOCK_WRITE_ONLY],
		             lp->waiters[SCOUTFS_LOCK_READ], lp->waiters[SCOUTFS_LOCK_WRITE],
		             lp->waiters[SCOUTFS_LOCK_WRITE_ONLY], lp->request_pending ? 1 : 0,
		             nr_inv, lp->flushing ? " flushing" : "",
		             (unsigned long long)lp->lock.refresh_gen,
		             (unsigned long long)lp->lock.write_seq);
		/* whole lines only */
		if (n < 0 || off + (unsigned int)n >= len)
			break;
		memcpy(buf + off, line, n + 1);
		off += n;
	}
	pthread_mutex_unlock(&li->mutex);
	return off;
}

void lock_purge_idle(struct lock_info *li)
{
	shrink_idle(li, true);
}
