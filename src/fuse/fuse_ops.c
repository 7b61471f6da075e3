/*
 * fuse_ops.c: the FUSE low-level operations, mapped onto the fs layer.
 *
 * Requests arrive on libfuse's worker threads and are translated almost one to one into fs
 * calls, with the caller's credentials and a way to notice a FUSE interrupt.
 *
 * The kernel caches attributes, directory entries and file pages for as long as we let it,
 * and we let it for a long time: cached answers cost no round trip.  What keeps them right
 * is that every cached answer is covered by a cluster lock; when the lock is given up, the
 * fs layer asks us to drop what the kernel cached for the inodes of the lock's range.
 *
 * The hard part is doing that without deadlocking against the kernel.  Requests reach us
 * while the kernel holds its own locks for them -- a READ or WRITE holds the locks of the
 * pages it fills or writes, a LOOKUP or CREATE holds its directory's lock -- and such a
 * request may be waiting in the fs layer for the very cluster lock being invalidated.  A
 * notification that needs those kernel locks would then wait for the request, which waits
 * for the invalidation, which waits for the notification.  So the invalidation only uses
 * notifications that take no such locks, and defers the one that does:
 *
 *  - attributes: notify_inval_inode(ino, -1, 0) takes no sleeping lock.  It also bumps the
 *    kernel's attribute version, so a reply read under the lock before the invalidation but
 *    delivered after it is not cached either -- for an inode the kernel has.  An entry reply
 *    (LOOKUP, CREATE, ...) can bring the kernel an inode it doesn't have yet, and it does
 *    so after our reply is written, so the notification can miss it.  Two rules close that:
 *    an entry reply whose request overlapped an invalidation (inval_epoch moved) is not
 *    cached at all, and a notification that finds no inode for a node we answered for is
 *    retried until the kernel has it (or has forgotten it).
 *  - names: notify_inval_entry needs the directory's lock, so instead we bump the
 *    connection's epoch (FUSE_NOTIFY_INC_EPOCH, Linux 6.16): every cached dentry, and every
 *    lookup that started before the bump, is revalidated with a LOOKUP on its next use.
 *    Without it (older kernels) names are cached for one second only.
 *  - pages: dropping them waits for page locks, so a separate thread drops them right
 *    after.  Until it has, a GETATTR of the inode waits for it, and since the kernel asks
 *    for fresh attributes before every read() (auto_inval_data), no read() can see a page
 *    cached under the old lock.  (A mapping that touches such a page in that window can:
 *    the window is as long as requests that hold page locks of the file wait for a lock.)
 *  - dirty pages: a file open for writing here may have pages dirtied through a shared
 *    mapping, which the kernel tells us about only when it writes them back.  They must be
 *    written back before the commit that precedes giving up a lock that could write, so
 *    they are flushed synchronously, inside a lock flush window (lock_flush_begin) in which
 *    requests that hold page locks may still use the lock.  For the same reason reads of a
 *    file open for writing here take the inode's lock for writing, and files opened for
 *    writing drop the pages cached before (no keep_cache): every page that can be dirtied
 *    behind our back was read under a lock that can write, and is flushed before that lock
 *    goes.
 *
 * To know what to drop, the node table records which inodes the kernel holds (lookup
 * counts), under which names in which directories it cached them, and how many of their
 * open files can write.  Negative lookups are answered with ENOENT, which the kernel does
 * not cache.  Forgetting an inode (which may delete a whole file) is handed to a thread of
 * its own so that it never holds up a request thread.
 *
 * What we ask of the kernel at INIT: POSIX ACL enforcement with the acl option, no umask
 * applied by the kernel (the fs layer applies it, or a default ACL instead), and parallel
 * lookups in one directory, a flag libfuse 3.14 cannot send and we patch into its INIT reply
 * (fuse_init.c).
 */
#define FUSE_USE_VERSION 314

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs/fs.h"
#include "fuse/fuse_init.h"
#include "fuse/fuse_ops.h"
#include "util/counters.h"
#include "util/log.h"
#include "util/rbtree.h"
#include "util/util.h"

COUNTER_DEFINE(fuse_requests);
COUNTER_DEFINE(fuse_forget);
COUNTER_DEFINE(fuse_notify_attrs);
COUNTER_DEFINE(fuse_notify_attrs_retry);
COUNTER_DEFINE(fuse_entry_uncached);
COUNTER_DEFINE(fuse_notify_pages);
COUNTER_DEFINE(fuse_notify_flush);
COUNTER_DEFINE(fuse_notify_epoch);
COUNTER_DEFINE(fuse_notify_entry);
COUNTER_DEFINE(fuse_getattr_drop_wait);
COUNTER_DEFINE(fuse_evict);
/* a LOOKUP began while another was being served: evidence that lookups run in parallel */
COUNTER_DEFINE(fuse_lookup_overlap);

/* kernel caches stay valid until a lock invalidation drops them */
#define CACHE_TIMEOUT_SECS 86400.0
/* names, when the kernel can't have them all dropped at once (no FUSE_NOTIFY_INC_EPOCH) */
#define SHORT_ENTRY_TIMEOUT_SECS 1.0
/* how long an attribute notification waits for the kernel to instantiate an inode */
#define NOTIFY_RETRY_US 200
#define NOTIFY_RETRY_MAX_MS 2000
/* the FUSE notification code that expires every cached dentry (protocol 7.44) */
#define SFUSE_NOTIFY_INC_EPOCH 8

struct dentry_rec;

struct node {
	RB_ENTRY(node) entry;
	u64 ino;
	u64 nlookup;
	/* open files that can write: the kernel may hold pages dirtied through mappings */
	u32 writers;
	/* the names under which this inode is cached */
	struct dentry_rec *names;
};

struct dentry_rec {
	RB_ENTRY(dentry_rec) entry;
	u64 parent;
	u64 child;
	struct dentry_rec *next_name; /* in the child's names list */
	size_t len;
	char name[];
};

/* an inode whose pages are to be dropped by the drop thread */
struct drop_job {
	struct drop_job *next;
	u64 ino;
};

/* a cached name to drop, so that the kernel lets go of inodes it no longer needs */
struct name_job {
	struct name_job *next;
	u64 parent;
	size_t len;
	char name[];
};

/* inodes with queued page drops, which their GETATTRs wait for */
struct drop_pending {
	RB_ENTRY(drop_pending) entry;
	u64 ino;
	u32 nr;
};

static int node_cmp(struct node *a, struct node *b)
{
	return a->ino < b->ino ? -1 : a->ino > b->ino ? 1 : 0;
}

static int dentry_cmp(struct dentry_rec *a, struct dentry_rec *b)
{
	size_t n = min_t(size_t, a->len, b->len);
	int c;

	if (a->parent != b->parent)
		return a->parent < b->parent ? -1 : 1;
	c = memcmp(a->name, b->name, n);
	if (c)
		return c;
	return a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
}

static int drop_pending_cmp(struct drop_pending *a, struct drop_pending *b)
{
	return a->ino < b->ino ? -1 : a->ino > b->ino ? 1 : 0;
}

RB_HEAD(node_tree, node);
RB_HEAD(dentry_tree, dentry_rec);
RB_HEAD(drop_pending_tree, drop_pending);
RB_GENERATE_STATIC_UNUSED(node_tree, node, entry, node_cmp)
RB_GENERATE_STATIC_UNUSED(dentry_tree, dentry_rec, entry, dentry_cmp)
RB_GENERATE_STATIC_UNUSED(drop_pending_tree, drop_pending, entry, drop_pending_cmp)


struct evict_job {
	struct evict_job *next;
	u64 ino;
};

struct sfuse {
	struct sfuse_config cfg;
	struct fs_info *fs;
	struct fuse_session *se;
	bool mounted;
	bool init_patched;
	atomic_int lookups_in_flight;

	pthread_mutex_t nodes_mutex;
	struct node_tree nodes;
	struct dentry_tree dentries;

	/* page drops queued by lock invalidations */
	pthread_mutex_t drop_mutex;
	pthread_cond_t drop_cond;
	struct drop_job *drop_head;
	struct drop_job **drop_tail;
	struct drop_pending_tree drop_pending;
	bool drop_stop;
	pthread_t drop_thread;
	bool drop_running;

	/* cached names to drop (they are already stale: this only lets the kernel forget) */
	pthread_mutex_t name_mutex;
	pthread_cond_t name_cond;
	struct name_job *name_head;
	bool name_stop;
	pthread_t name_thread;
	bool name_running;

	/*
	 * Moved by every invalidation before it looks at the node table; an entry reply whose
	 * request began before the move is not cached.  Replies hold reply_lock for reading,
	 * the move holds it for writing.
	 */
	pthread_rwlock_t reply_lock;
	u64 inval_epoch;

	/* the kernel takes FUSE_NOTIFY_INC_EPOCH; else names are cached briefly */
	bool epoch_notify;
	double entry_timeout;

	/* forgotten inodes that may need deleting */
	pthread_mutex_t evict_mutex;
	pthread_cond_t evict_cond;
	struct evict_job *evict_head;
	struct evict_job **evict_tail;
	bool evict_stop;
	pthread_t evict_thread;
	bool evict_running;

	/* the mount's readahead, set by the first request after INIT */
	uint64_t ra_dev;
	unsigned int ra_kb;
	atomic_bool ra_pending;
};

/* ---- the node table ---- */

static struct node *node_find(struct sfuse *sf, u64 ino)
{
	struct node search = { .ino = ino };

	return RB_FIND(node_tree, &sf->nodes, &search);
}

static struct dentry_rec *dentry_find(struct sfuse *sf, u64 parent, const char *name, size_t len)
{
	struct dentry_rec *search;
	struct dentry_rec *found;

	search = alloca(sizeof(*search) + len);
	search->parent = parent;
	search->len = len;
	memcpy(search->name, name, len);
	found = RB_FIND(dentry_tree, &sf->dentries, search);
	return found;
}

static void dentry_unlink_from_child(struct sfuse *sf, struct dentry_rec *dr)
{
	struct node *child = node_find(sf, dr->child);
	struct dentry_rec **pos;

	if (!child)
		return;
	for (pos = &child->names; *pos; pos = &(*pos)->next_name) {
		if (*pos == dr) {
			*pos = dr->next_name;
			return;
		}
	}
}

static void dentry_remove(struct sfuse *sf, struct dentry_rec *dr)
{
	RB_REMOVE(dentry_tree, &sf->dentries, dr);
	dentry_unlink_from_child(sf, dr);
	free(dr);
}

/* the kernel now holds one more lookup of ino, reached by (parent, name) if given */
static void node_looked_up(struct sfuse *sf, u64 ino, u64 parent, const char *name, size_t len)
{
	struct dentry_rec *dr;
	struct node *node;

	pthread_mutex_lock(&sf->nodes_mutex);
	node = node_find(sf, ino);
	if (!node) {
		node = calloc(1, sizeof(*node));
		if (!node)
			goto out;
		node->ino = ino;
		RB_INSERT(node_tree, &sf->nodes, node);
	}
	node->nlookup++;
	if (!name)
		goto out;
	dr = dentry_find(sf, parent, name, len);
	if (dr && dr->child == ino)
		goto out;
	if (dr)
		dentry_remove(sf, dr);
	dr = malloc(sizeof(*dr) + len);
	if (!dr)
		goto out;
	dr->parent = parent;
	dr->child = ino;
	dr->len = len;
	memcpy(dr->name, name, len);
	RB_INSERT(dentry_tree, &sf->dentries, dr);
	dr->next_name = node->names;
	node->names = dr;
out:
	pthread_mutex_unlock(&sf->nodes_mutex);
}

static void name_gone(struct sfuse *sf, u64 parent, const char *name, size_t len)
{
	struct dentry_rec *dr;

	pthread_mutex_lock(&sf->nodes_mutex);
	dr = dentry_find(sf, parent, name, len);
	if (dr)
		dentry_remove(sf, dr);
	pthread_mutex_unlock(&sf->nodes_mutex);
}

static void queue_evict(struct sfuse *sf, u64 ino)
{
	struct evict_job *job = malloc(sizeof(*job));

	if (!job)
		return;
	job->ino = ino;
	job->next = NULL;
	pthread_mutex_lock(&sf->evict_mutex);
	*sf->evict_tail = job;
	sf->evict_tail = &job->next;
	pthread_cond_signal(&sf->evict_cond);
	pthread_mutex_unlock(&sf->evict_mutex);
}

static void node_forget(struct sfuse *sf, u64 ino, u64 nlookup)
{
	struct dentry_rec *dr;
	struct node *node;
	bool evict = false;

	counter_inc(fuse_forget);
	pthread_mutex_lock(&sf->nodes_mutex);
	node = node_find(sf, ino);
	if (node) {
		node->nlookup -= min_t(u64, nlookup, node->nlookup);
		if (node->nlookup == 0 && ino != FUSE_ROOT_ID) {
			while ((dr = node->names)) {
				node->names = dr->next_name;
				RB_REMOVE(dentry_tree, &sf->dentries, dr);
				free(dr);
			}
			RB_REMOVE(node_tree, &sf->nodes, node);
			free(node);
			evict = true;
		}
	}
	pthread_mutex_unlock(&sf->nodes_mutex);
	if (evict)
		queue_evict(sf, ino);
}

bool sfuse_inode_in_use(void *arg, uint64_t ino)
{
	struct sfuse *sf = arg;
	bool used;

	pthread_mutex_lock(&sf->nodes_mutex);
	used = node_find(sf, ino) != NULL;
	pthread_mutex_unlock(&sf->nodes_mutex);
	return used;
}

/* how many open files of ino can write */
static u32 node_writers(struct sfuse *sf, u64 ino)
{
	struct node *node;
	u32 writers;

	pthread_mutex_lock(&sf->nodes_mutex);
	node = node_find(sf, ino);
	writers = node ? node->writers : 0;
	pthread_mutex_unlock(&sf->nodes_mutex);
	return writers;
}

static void node_add_writer(struct sfuse *sf, u64 ino, int delta)
{
	struct node *node;

	pthread_mutex_lock(&sf->nodes_mutex);
	node = node_find(sf, ino);
	if (node && (delta > 0 || node->writers > 0))
		node->writers += delta;
	pthread_mutex_unlock(&sf->nodes_mutex);
}

void sfuse_inodes_in_use(void *arg, uint64_t first, le64 *bits)
{
	struct sfuse *sf = arg;
	struct node search = { .ino = first };
	struct node *node;
	u64 bit;

	pthread_mutex_lock(&sf->nodes_mutex);
	for (node = RB_NFIND(node_tree, &sf->nodes, &search);
	     node && node->ino < first + SCOUTFS_OPEN_INO_MAP_BITS;
	     node = RB_NEXT(node_tree, &sf->nodes, node)) {
		bit = node->ino - first;
		bits[bit / 64] |= cpu_to_le64(1ULL << (bit % 64));
	}
	pthread_mutex_unlock(&sf->nodes_mutex);
}

/* ---- dropping what the kernel cached ---- */

struct ino_list {
	u64 *inos;
	size_t nr;
	size_t alloc;
};

static int ino_list_add(struct ino_list *il, u64 ino)
{
	u64 *inos;

	if (il->nr == il->alloc) {
		inos = realloc(il->inos, (il->alloc ? il->alloc * 2 : 64) * sizeof(*inos));
		if (!inos)
			return -ENOMEM;
		il->inos = inos;
		il->alloc = il->alloc ? il->alloc * 2 : 64;
	}
	il->inos[il->nr++] = ino;
	return 0;
}

/*
 * The inodes in [first, last] the kernel knows (only those open for writing with
 * writers_only), and whether it cached any name in those directories or of those inodes.
 */
static void collect_inodes(struct sfuse *sf, u64 first, u64 last, bool writers_only,
			   struct ino_list *il, bool *names)
{
	struct node search = { .ino = first };
	struct dentry_rec dsearch = { .parent = first, .len = 0 };
	struct dentry_rec *dr;
	struct node *node;

	*names = false;
	pthread_mutex_lock(&sf->nodes_mutex);
	for (node = RB_NFIND(node_tree, &sf->nodes, &search); node && node->ino <= last;
	     node = RB_NEXT(node_tree, &sf->nodes, node)) {
		if (writers_only && node->writers == 0)
			continue;
		if (node->names)
			*names = true;
		/* on failure the rest is dropped when the kernel forgets or asks again */
		if (ino_list_add(il, node->ino) < 0)
			break;
	}
	dr = RB_NFIND(dentry_tree, &sf->dentries, &dsearch);
	if (dr && dr->parent <= last)
		*names = true;
	pthread_mutex_unlock(&sf->nodes_mutex);
}

/* expire every dentry the kernel cached: it revalidates each with a LOOKUP on next use */
static int notify_inc_epoch(struct sfuse *sf)
{
	struct {
		uint32_t len;
		int32_t error; /* the notification code */
		uint64_t unique;
	} oh = { sizeof(oh), SFUSE_NOTIFY_INC_EPOCH, 0 };
	ssize_t n;

	n = write(fuse_session_fd(sf->se), &oh, sizeof(oh));
	if (n < 0)
		return -errno;
	return n == sizeof(oh) ? 0 : -EIO;
}

static void queue_page_drops(struct sfuse *sf, const struct ino_list *il)
{
	struct drop_pending search;
	struct drop_pending *dp;
	struct drop_job *job;

	pthread_mutex_lock(&sf->drop_mutex);
	for (size_t i = 0; i < il->nr && !sf->drop_stop; i++) {
		job = malloc(sizeof(*job));
		search.ino = il->inos[i];
		dp = RB_FIND(drop_pending_tree, &sf->drop_pending, &search);
		if (!dp && job) {
			dp = calloc(1, sizeof(*dp));
			if (dp) {
				dp->ino = il->inos[i];
				RB_INSERT(drop_pending_tree, &sf->drop_pending, dp);
			}
		}
		if (!job || !dp) {
			free(job);
			break; /* out of memory: the pages stay until the next open drops them */
		}
		dp->nr++;
		job->ino = il->inos[i];
		job->next = NULL;
		*sf->drop_tail = job;
		sf->drop_tail = &job->next;
	}
	pthread_cond_broadcast(&sf->drop_cond);
	pthread_mutex_unlock(&sf->drop_mutex);
}

/*
 * Queue the names cached in the directories of [first, last] and of the inodes of that
 * range.  They are stale already (the epoch bump made sure of that); dropping them lets the
 * kernel forget inodes nobody uses, which clears their bits in the open map, so that an inode
 * unlinked on another mount is deleted soon after it is closed here.
 */
static struct name_job *name_job_new(const struct dentry_rec *dr, struct name_job *next)
{
	struct name_job *job = malloc(sizeof(*job) + dr->len + 1);

	if (job) {
		job->parent = dr->parent;
		job->len = dr->len;
		memcpy(job->name, dr->name, dr->len);
		job->name[dr->len] = '\0';
		job->next = next;
	}
	return job;
}

static void queue_name_drops(struct sfuse *sf, u64 first, u64 last)
{
	struct dentry_rec dsearch = { .parent = first, .len = 0 };
	struct node search = { .ino = first };
	struct name_job *head = NULL, *job;
	struct dentry_rec *dr;
	struct node *node;

	pthread_mutex_lock(&sf->nodes_mutex);
	/* names in the directories of the range (a name of the range's inodes may repeat) */
	for (dr = RB_NFIND(dentry_tree, &sf->dentries, &dsearch); dr && dr->parent <= last;
	     dr = RB_NEXT(dentry_tree, &sf->dentries, dr)) {
		if ((job = name_job_new(dr, head)))
			head = job;
	}
	/* names of the range's inodes */
	for (node = RB_NFIND(node_tree, &sf->nodes, &search); node && node->ino <= last;
	     node = RB_NEXT(node_tree, &sf->nodes, node)) {
		for (dr = node->names; dr; dr = dr->next_name) {
			if ((job = name_job_new(dr, head)))
				head = job;
		}
	}
	pthread_mutex_unlock(&sf->nodes_mutex);

	pthread_mutex_lock(&sf->name_mutex);
	while ((job = head)) {
		head = job->next;
		if (sf->name_stop) {
			free(job);
			continue;
		}
		job->next = sf->name_head;
		sf->name_head = job;
	}
	pthread_cond_broadcast(&sf->name_cond);
	pthread_mutex_unlock(&sf->name_mutex);
}

static void *name_thread(void *arg)
{
	struct sfuse *sf = arg;
	struct name_job *job;

	thread_set_name("fuse-names");
	pthread_mutex_lock(&sf->name_mutex);
	for (;;) {
		while (!sf->name_head && !sf->name_stop)
			pthread_cond_wait(&sf->name_cond, &sf->name_mutex);
		job = sf->name_head;
		if (!job || sf->name_stop)
			break;
		sf->name_head = job->next;
		pthread_mutex_unlock(&sf->name_mutex);
		/* waits for the directory's lock: never on the lock worker */
		if (sf->mounted) {
			counter_inc(fuse_notify_entry);
			fuse_lowlevel_notify_inval_entry(sf->se, job->parent, job->name, job->len);
		}
		free(job);
		pthread_mutex_lock(&sf->name_mutex);
	}
	pthread_mutex_unlock(&sf->name_mutex);
	return NULL;
}

static bool node_known(struct sfuse *sf, u64 ino)
{
	struct node *node;
	bool known;

	pthread_mutex_lock(&sf->nodes_mutex);
	node = node_find(sf, ino);
	known = node && node->nlookup > 0;
	pthread_mutex_unlock(&sf->nodes_mutex);
	return known;
}

/*
 * Drop the kernel's attributes of ino.  If it has no such inode although we answered a
 * lookup of it, its requester is instantiating it from our reply right now (or evicting it):
 * wait until it has, so that the attributes it takes from that reply are dropped too.
 */
static void notify_attrs(struct sfuse *sf, u64 ino)
{
	u64 deadline = now_mono_ns() + NOTIFY_RETRY_MAX_MS * NSEC_PER_MSEC;
	int ret;

	counter_inc(fuse_notify_attrs);
	while ((ret = fuse_lowlevel_notify_inval_inode(sf->se, ino, -1, 0)) == -ENOENT &&
	       node_known(sf, ino)) {
		if (now_mono_ns() > deadline) {
			log_warn("the kernel did not take inode %llu from our reply within %u ms",
				 (unsigned long long)ino, NOTIFY_RETRY_MAX_MS);
			break;
		}
		counter_inc(fuse_notify_attrs_retry);
		usleep(NOTIFY_RETRY_US);
	}
}

static void drop_pages_later(struct sfuse *sf, u64 ino)
{
	struct ino_list il = { .inos = &ino, .nr = 1, .alloc = 1 };

	queue_page_drops(sf, &il);
}

void sfuse_flush_inodes(void *arg, uint64_t first, uint64_t last)
{
	struct sfuse *sf = arg;
	struct ino_list il = { 0 };
	bool names;

	if (!sf->mounted)
		return;
	collect_inodes(sf, first, last, true, &il, &names);
	for (size_t i = 0; i < il.nr; i++) {
		/* writes dirty pages back (through the flush window) and drops them */
		counter_inc(fuse_notify_flush);
		fuse_lowlevel_notify_inval_inode(sf->se, il.inos[i], 0, 0);
	}
	free(il.inos);
}

void sfuse_invalidate_inodes(void *arg, uint64_t first, uint64_t last, bool writers_only)
{
	struct sfuse *sf = arg;
	struct ino_list il = { 0 };
	bool names;

	if (!sf->mounted)
		return;
	if (!writers_only) {
		/* entry replies from now on, of requests that began before, aren't cached */
		pthread_rwlock_wrlock(&sf->reply_lock);
		sf->inval_epoch++;
		pthread_rwlock_unlock(&sf->reply_lock);
	}
	collect_inodes(sf, first, last, writers_only, &il, &names);
	if (!writers_only) {
		for (size_t i = 0; i < il.nr; i++)
			notify_attrs(sf, il.inos[i]);
		if (names && sf->epoch_notify) {
			counter_inc(fuse_notify_epoch);
			notify_inc_epoch(sf);
		}
		if (names)
			queue_name_drops(sf, first, last);
	}
	queue_page_drops(sf, &il);
	free(il.inos);
}

/* a GETATTR is answered only once the inode's queued page drops are done */
static void wait_for_page_drops(struct sfuse *sf, u64 ino)
{
	struct drop_pending search = { .ino = ino };
	bool waited = false;

	pthread_mutex_lock(&sf->drop_mutex);
	while (!sf->drop_stop && RB_FIND(drop_pending_tree, &sf->drop_pending, &search)) {
		waited = true;
		pthread_cond_wait(&sf->drop_cond, &sf->drop_mutex);
	}
	pthread_mutex_unlock(&sf->drop_mutex);
	if (waited)
		counter_inc(fuse_getattr_drop_wait);
}

static void *drop_thread(void *arg)
{
	struct sfuse *sf = arg;
	struct drop_pending search;
	struct drop_pending *dp;
	struct drop_job *job;

	thread_set_name("fuse-drop");
	pthread_mutex_lock(&sf->drop_mutex);
	for (;;) {
		while (!sf->drop_head && !sf->drop_stop)
			pthread_cond_wait(&sf->drop_cond, &sf->drop_mutex);
		job = sf->drop_head;
		if (!job || sf->drop_stop)
			break;
		sf->drop_head = job->next;
		if (!sf->drop_head)
			sf->drop_tail = &sf->drop_head;
		pthread_mutex_unlock(&sf->drop_mutex);

		/* may wait for page locks of requests that wait for a lock: never on the worker */
		if (sf->mounted) {
			counter_inc(fuse_notify_pages);
			fuse_lowlevel_notify_inval_inode(sf->se, job->ino, 0, 0);
		}

		pthread_mutex_lock(&sf->drop_mutex);
		search.ino = job->ino;
		dp = RB_FIND(drop_pending_tree, &sf->drop_pending, &search);
		if (dp && --dp->nr == 0) {
			RB_REMOVE(drop_pending_tree, &sf->drop_pending, dp);
			free(dp);
		}
		free(job);
		pthread_cond_broadcast(&sf->drop_cond);
	}
	pthread_mutex_unlock(&sf->drop_mutex);
	return NULL;
}

/* ---- forgotten inodes ---- */

static void *evict_thread(void *arg)
{
	struct sfuse *sf = arg;
	u64 inos[FS_EVICT_BATCH];
	struct evict_job *job;
	int nr;

	thread_set_name("fuse-evict");
	pthread_mutex_lock(&sf->evict_mutex);
	for (;;) {
		while (!sf->evict_head && !sf->evict_stop)
			pthread_cond_wait(&sf->evict_cond, &sf->evict_mutex);
		if (!sf->evict_head)
			break;
		/*
		 * What queued up meanwhile goes in one batch (one question to the server per
		 * inode group).  Never waiting for more: a write that found the device full
		 * retries once after a commit, and must find the unlinked files freed by then.
		 */
		for (nr = 0; nr < FS_EVICT_BATCH && (job = sf->evict_head); nr++) {
			sf->evict_head = job->next;
			inos[nr] = job->ino;
			free(job);
		}
		if (!sf->evict_head)
			sf->evict_tail = &sf->evict_head;
		pthread_mutex_unlock(&sf->evict_mutex);
		counter_add(fuse_evict, (u64)nr);
		fs_evict_many(sf->fs, inos, nr);
		pthread_mutex_lock(&sf->evict_mutex);
	}
	pthread_mutex_unlock(&sf->evict_mutex);
	return NULL;
}

/* ---- request helpers ---- */

static void apply_readahead(struct sfuse *sf);

static struct sfuse *req_sf(fuse_req_t req)
{
	struct sfuse *sf = fuse_req_userdata(req);

	counter_inc(fuse_requests);
	if (atomic_load_explicit(&sf->ra_pending, memory_order_relaxed))
		apply_readahead(sf);
	return sf;
}

static bool req_interrupted(void *arg)
{
	return fuse_req_interrupted(arg) != 0;
}

/*
 * The caller's effective capabilities, from /proc: FUSE passes only its fsuid, fsgid and
 * thread id.  If the caller is gone, only root counts as capable.
 */
static bool req_capable(void *arg, int cap)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(arg);
	unsigned long long caps = 0;
	bool found = false;
	char path[64];
	char line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)ctx->pid);
	f = fopen(path, "re");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "CapEff: %llx", &caps) == 1) {
				found = true;
				break;
			}
		}
		fclose(f);
	}
	if (!found)
		return ctx->uid == 0;
	return cap >= 0 && cap < 64 && (caps & (1ULL << cap));
}

static bool req_in_group(void *arg, gid_t gid)
{
	gid_t groups[256];
	int nr;

	nr = fuse_req_getgroups(arg, ARRAY_SIZE(groups), groups);
	for (int i = 0; i < nr && i < (int)ARRAY_SIZE(groups); i++) {
		if (groups[i] == gid)
			return true;
	}
	if (nr > (int)ARRAY_SIZE(groups)) {
		gid_t *all = calloc((size_t)nr, sizeof(*all));
		bool found = false;

		if (all && fuse_req_getgroups(arg, nr, all) == nr) {
			for (int i = 0; i < nr && !found; i++)
				found = all[i] == gid;
		}
		free(all);
		return found;
	}
	return false;
}

static struct fs_cred req_cred(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fs_cred cred = {
		.uid = ctx->uid,
		.gid = ctx->gid,
		.pid = ctx->pid,
		.umask = ctx->umask,
		.interrupted = req_interrupted,
		.interrupted_arg = req,
		.capable = req_capable,
		.in_group = req_in_group,
		.caller_arg = req,
	};

	return cred;
}

static void attr_to_stat(const struct fs_attr *attr, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = attr->ino;
	st->st_mode = attr->mode;
	st->st_nlink = attr->nlink;
	st->st_uid = attr->uid;
	st->st_gid = attr->gid;
	st->st_rdev = attr->rdev;
	st->st_size = (off_t)attr->size;
	st->st_blksize = SCOUTFS_BLOCK_SM_SIZE;
	st->st_blocks = (blkcnt_t)attr->blocks;
	st->st_atim = attr->atime;
	st->st_mtim = attr->mtime;
	st->st_ctim = attr->ctime;
}

/* where the invalidations were when a request began: see struct sfuse inval_epoch */
static u64 inval_epoch(struct sfuse *sf)
{
	return __atomic_load_n(&sf->inval_epoch, __ATOMIC_ACQUIRE);
}

/*
 * Fill in an entry reply, held under reply_lock until it is sent: cached for long unless an
 * invalidation began since the request did (epoch), and recorded in the node table.
 */
static void entry_begin(struct sfuse *sf, u64 epoch, struct fuse_entry_param *e, u64 parent,
			const char *name, const struct fs_attr *attr)
{
	memset(e, 0, sizeof(*e));
	e->ino = attr->ino;
	e->generation = 1;
	attr_to_stat(attr, &e->attr);
	pthread_rwlock_rdlock(&sf->reply_lock);
	if (epoch == sf->inval_epoch) {
		e->attr_timeout = CACHE_TIMEOUT_SECS;
		e->entry_timeout = sf->entry_timeout;
	} else {
		counter_inc(fuse_entry_uncached);
	}
	node_looked_up(sf, attr->ino, parent, name, name ? strlen(name) : 0);
}

static void entry_end(struct sfuse *sf, int reply_ret, u64 ino)
{
	pthread_rwlock_unlock(&sf->reply_lock);
	if (reply_ret != 0)
		node_forget(sf, ino, 1); /* the kernel never got it (interrupted) */
}

static void reply_entry(fuse_req_t req, struct sfuse *sf, u64 epoch, u64 parent, const char *name,
			const struct fs_attr *attr)
{
	struct fuse_entry_param e;

	entry_begin(sf, epoch, &e, parent, name, attr);
	entry_end(sf, fuse_reply_entry(req, &e), attr->ino);
}

static void reply_err(fuse_req_t req, int err)
{
	fuse_reply_err(req, err < 0 ? -err : err);
}

/* ---- operations ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct sfuse *sf = userdata;

	conn->max_write = 1 << 20;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_SPLICE_READ)
		conn->want &= ~FUSE_CAP_SPLICE_READ;
	conn->time_gran = 1;
	/* the fs layer applies the umask, or a default ACL instead of it */
	if (conn->capable & FUSE_CAP_DONT_MASK)
		conn->want |= FUSE_CAP_DONT_MASK;
	/* the kernel enforces ACLs and leaves storing and inheriting them to us */
	if (sf->cfg.acl) {
		if (conn->capable & FUSE_CAP_POSIX_ACL)
			conn->want |= FUSE_CAP_POSIX_ACL;
		else
			log_warn("the kernel does not support POSIX ACLs over FUSE");
	}
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	u64 epoch = inval_epoch(sf);
	struct fs_attr attr;
	int err;

	if (atomic_fetch_add(&sf->lookups_in_flight, 1) > 0)
		counter_inc(fuse_lookup_overlap);
	err = fs_lookup(sf->fs, &cred, parent, name, strlen(name), &attr);
	atomic_fetch_sub(&sf->lookups_in_flight, 1);
	if (err < 0)
		reply_err(req, err);
	else
		reply_entry(req, sf, epoch, parent, name, &attr);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct sfuse *sf = req_sf(req);

	node_forget(sf, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct sfuse *sf = req_sf(req);

	for (size_t i = 0; i < count; i++)
		node_forget(sf, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	struct fs_attr attr;
	struct stat st;
	int err;

	/* the kernel asks before it reads: pages cached under an older lock must be gone */
	wait_for_page_drops(sf, ino);
	err = fs_getattr(sf->fs, &cred, ino, &attr);
	if (err < 0) {
		reply_err(req, err);
		return;
	}
	attr_to_stat(&attr, &st);
	fuse_reply_attr(req, &st, CACHE_TIMEOUT_SECS);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *st, int to_set,
		       struct fuse_file_info *fi)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	struct fs_setattr sa = { 0 };
	struct fs_attr attr;
	struct stat out;
	int err;

	if (to_set & FUSE_SET_ATTR_MODE) {
		sa.valid |= FS_SET_MODE;
		sa.mode = st->st_mode;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		sa.valid |= FS_SET_UID;
		sa.uid = st->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		sa.valid |= FS_SET_GID;
		sa.gid = st->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		sa.valid |= FS_SET_SIZE;
		sa.size = (u64)st->st_size;
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		sa.valid |= FS_SET_ATIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		sa.valid |= FS_SET_ATIME;
		sa.atime = st->st_atim;
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		sa.valid |= FS_SET_MTIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		sa.valid |= FS_SET_MTIME;
		sa.mtime = st->st_mtim;
	}
	if (to_set & FUSE_SET_ATTR_CTIME) {
		sa.valid |= FS_SET_CTIME;
		sa.ctime = st->st_ctim;
	}
	err = fs_setattr(sf->fs, &cred, ino, &sa, &attr);
	if (err < 0) {
		reply_err(req, err);
		return;
	}
	attr_to_stat(&attr, &out);
	fuse_reply_attr(req, &out, CACHE_TIMEOUT_SECS);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	char buf[SCOUTFS_SYMLINK_MAX_SIZE + 1];
	int ret;

	ret = fs_readlink(sf->fs, &cred, ino, buf, sizeof(buf) - 1);
	if (ret < 0) {
		reply_err(req, ret);
		return;
	}
	buf[ret] = '\0';
	fuse_reply_readlink(req, buf);
}

static void do_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	u64 epoch = inval_epoch(sf);
	struct fs_attr attr;
	int err;

	err = fs_mknod(sf->fs, &cred, parent, name, strlen(name), mode, (u32)rdev, &attr);
	if (err < 0)
		reply_err(req, err);
	else
		reply_entry(req, sf, epoch, parent, name, &attr);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	do_mknod(req, parent, name, mode, rdev);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	do_mknod(req, parent, name, S_IFDIR | (mode & ~S_IFMT), 0);
}

static void op_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	u64 epoch = inval_epoch(sf);
	struct fs_attr attr;
	int err;

	err = fs_symlink(sf->fs, &cred, parent, name, strlen(name), target, &attr);
	if (err < 0)
		reply_err(req, err);
	else
		reply_entry(req, sf, epoch, parent, name, &attr);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	u64 epoch = inval_epoch(sf);
	struct fs_attr attr;
	int err;

	err = fs_link(sf->fs, &cred, ino, newparent, newname, strlen(newname), &attr);
	if (err < 0)
		reply_err(req, err);
	else
		reply_entry(req, sf, epoch, newparent, newname, &attr);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	int err;

	err = fs_unlink(sf->fs, &cred, parent, name, strlen(name));
	if (err == 0)
		name_gone(sf, parent, name, strlen(name));
	reply_err(req, err);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	int err;

	err = fs_rmdir(sf->fs, &cred, parent, name, strlen(name));
	if (err == 0)
		name_gone(sf, parent, name, strlen(name));
	reply_err(req, err);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	struct dentry_rec *dr;
	int fsflags = 0;
	u64 child = 0;
	u64 other = 0;
	int err;

	if (flags & RENAME_NOREPLACE)
		fsflags |= FS_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE)
		fsflags |= FS_RENAME_EXCHANGE;
	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		reply_err(req, EINVAL);
		return;
	}
	err = fs_rename(sf->fs, &cred, parent, name, strlen(name), newparent, newname,
			strlen(newname), fsflags);
	if (err == 0) {
		/* the kernel moved its dentries (swapped them, for an exchange): so do we */
		pthread_mutex_lock(&sf->nodes_mutex);
		dr = dentry_find(sf, parent, name, strlen(name));
		if (dr) {
			child = dr->child;
			dentry_remove(sf, dr);
		}
		dr = dentry_find(sf, newparent, newname, strlen(newname));
		if (dr) {
			other = dr->child;
			dentry_remove(sf, dr);
		}
		pthread_mutex_unlock(&sf->nodes_mutex);
		if (child) {
			node_looked_up(sf, child, newparent, newname, strlen(newname));
			node_forget(sf, child, 1); /* the record, not a lookup */
		}
		if (other && (flags & RENAME_EXCHANGE)) {
			node_looked_up(sf, other, parent, name, strlen(name));
			node_forget(sf, other, 1);
		}
	}
	reply_err(req, err);
}

static bool open_can_write(const struct fuse_file_info *fi)
{
	return (fi->flags & O_ACCMODE) != O_RDONLY;
}

/*
 * An open file that can write may dirty pages through a shared mapping, so the pages cached
 * before it was opened (under a lock that could only read) are dropped, and reads from now
 * on take the lock for writing (see the top of this file).
 *
 * O_DIRECT opens get no direct_io reply: the kernel then runs its generic direct I/O path,
 * which writes back and drops the cached pages of the range around each transfer and sends
 * it to us uncached, so direct and buffered I/O and mmap on this mount stay coherent (a
 * direct_io file handle bypasses the page cache without flushing it, and cannot be mmapped
 * shared).  Unaligned direct I/O works too, as buffered I/O would (the original fell back
 * to buffered I/O for it).
 */
static void set_open_flags(struct sfuse *sf, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (open_can_write(fi)) {
		node_add_writer(sf, ino, 1);
		fi->keep_cache = 0;
	} else {
		fi->keep_cache = 1;
	}
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	struct fs_setattr sa = { .valid = FS_SET_SIZE, .size = 0 };
	struct fs_attr attr;
	int err;

	/* with atomic O_TRUNC (libfuse's default) the kernel leaves the truncate to the open */
	if (fi->flags & O_TRUNC) {
		err = fs_setattr(sf->fs, &cred, ino, &sa, &attr);
		if (err < 0) {
			reply_err(req, err);
			return;
		}
	}
	set_open_flags(sf, ino, fi);
	if (fuse_reply_open(req, fi) != 0 && open_can_write(fi))
		node_add_writer(sf, ino, -1); /* interrupted: no release will come */
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct sfuse *sf = req_sf(req);

	if (open_can_write(fi))
		node_add_writer(sf, ino, -1);
	reply_err(req, 0);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	u64 epoch = inval_epoch(sf);
	struct fuse_entry_param e;
	struct fs_attr attr;
	int err;

	err = fs_mknod(sf->fs, &cred, parent, name, strlen(name), S_IFREG | (mode & ~S_IFMT), 0,
		       &attr);
	if (err < 0) {
		reply_err(req, err);
		return;
	}
	entry_begin(sf, epoch, &e, parent, name, &attr);
	set_open_flags(sf, attr.ino, fi);
	err = fuse_reply_create(req, &e, fi);
	if (err != 0 && open_can_write(fi))
		node_add_writer(sf, attr.ino, -1);
	entry_end(sf, err, attr.ino);
}

/* aligned, so that the data device's blocks are read straight into the reply */
static struct thread_buf read_tb = THREAD_BUF_INIT(true);

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	void *read_buf = thread_buf_get(&read_tb, fs_read_buf_size((u64)off, size));
	const void *data;
	ssize_t ret;

	if (!read_buf) {
		reply_err(req, ENOMEM);
		return;
	}
	/* the kernel holds the locks of the pages this read fills */
	cred.holds_pages = true;
	cred.open_for_write = node_writers(sf, ino) > 0;
	ret = fs_read(sf->fs, &cred, ino, (u64)off, size, read_buf, &data);
	if (ret < 0)
		reply_err(req, (int)ret);
	else
		fuse_reply_buf(req, data, (size_t)ret);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	/*
	 * The kernel placed an appending write at its cached size, which another mount may
	 * have grown since: the end of the file is decided here, under the inode's lock.
	 */
	bool append = (fi->flags & O_APPEND) && !fi->writepage;
	ssize_t ret;

	/* the kernel holds the pages written (or, for writeback, waits on them) */
	cred.holds_pages = true;
	ret = fs_write(sf->fs, &cred, ino, (u64)off, append, buf, size);
	if (ret < 0) {
		reply_err(req, (int)ret);
		return;
	}
	fuse_reply_write(req, (size_t)ret);
	/* ... so the pages it wrote may sit at the wrong offset: drop them once it's done */
	if (append)
		drop_pages_later(sf, ino);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct sfuse *sf = req_sf(req);

	reply_err(req, fs_fsync(sf->fs, ino, datasync != 0));
}

struct readdir_ctx {
	fuse_req_t req;
	char *buf;
	size_t size;
	size_t used;
};

static int readdir_emit(void *arg, const char *name, size_t len, u64 ino, u32 dtype, u64 next_pos)
{
	struct readdir_ctx *rc = arg;
	char nbuf[SCOUTFS_NAME_LEN + 1];
	struct stat st;
	size_t need;

	memcpy(nbuf, name, len);
	nbuf[len] = '\0';
	memset(&st, 0, sizeof(st));
	st.st_ino = ino;
	st.st_mode = dtype << 12;
	need = fuse_add_direntry(rc->req, rc->buf + rc->used, rc->size - rc->used, nbuf, &st,
				 (off_t)next_pos);
	if (need > rc->size - rc->used)
		return 1; /* full: this entry is returned by the next call */
	rc->used += need;
	return 0;
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	struct readdir_ctx rc = { .req = req, .size = size };
	int err;

	rc.buf = malloc(size ? size : 1);
	if (!rc.buf) {
		reply_err(req, ENOMEM);
		return;
	}
	err = fs_readdir(sf->fs, &cred, ino, (u64)off, readdir_emit, &rc);
	if (err < 0)
		reply_err(req, err);
	else
		fuse_reply_buf(req, rc.buf, rc.used);
	free(rc.buf);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct sfuse *sf = req_sf(req);

	reply_err(req, fs_sync(sf->fs));
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct sfuse *sf = req_sf(req);
	struct statvfs st;
	int err;

	err = fs_statfs(sf->fs, &st);
	if (err < 0)
		reply_err(req, err);
	else
		fuse_reply_statfs(req, &st);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	int fsflags = 0;

	if (flags & XATTR_CREATE)
		fsflags |= FS_XATTR_CREATE;
	if (flags & XATTR_REPLACE)
		fsflags |= FS_XATTR_REPLACE;
	if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) {
		reply_err(req, EINVAL);
		return;
	}
	reply_err(req, fs_setxattr(sf->fs, &cred, ino, name, value, size, fsflags));
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	char *buf = NULL;
	ssize_t ret;

	if (size) {
		buf = malloc(size);
		if (!buf) {
			reply_err(req, ENOMEM);
			return;
		}
	}
	ret = fs_getxattr(sf->fs, &cred, ino, name, buf, size);
	if (ret < 0)
		reply_err(req, (int)ret);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)ret);
	else
		fuse_reply_buf(req, buf, (size_t)ret);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	char *buf = NULL;
	ssize_t ret;

	if (size) {
		buf = malloc(size);
		if (!buf) {
			reply_err(req, ENOMEM);
			return;
		}
	}
	ret = fs_listxattr(sf->fs, &cred, ino, buf, size);
	if (ret < 0)
		reply_err(req, (int)ret);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)ret);
	else
		fuse_reply_buf(req, buf, (size_t)ret);
	free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);

	reply_err(req, fs_removexattr(sf->fs, &cred, ino, name));
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	int fsmode = 0;

	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		log_warn("fallocate mode 0x%x is not supported (only KEEP_SIZE, PUNCH_HOLE, "
			 "ZERO_RANGE)",
			 mode);
		reply_err(req, EOPNOTSUPP);
		return;
	}
	if (offset < 0 || length <= 0) {
		reply_err(req, EINVAL);
		return;
	}
	if (mode & FALLOC_FL_KEEP_SIZE)
		fsmode |= FS_FALLOC_KEEP_SIZE;
	if (mode & FALLOC_FL_PUNCH_HOLE)
		fsmode |= FS_FALLOC_PUNCH_HOLE;
	if (mode & FALLOC_FL_ZERO_RANGE)
		fsmode |= FS_FALLOC_ZERO_RANGE;
	reply_err(req, fs_fallocate(sf->fs, &cred, ino, fsmode, (u64)offset, (u64)length));
}

/* only SEEK_DATA and SEEK_HOLE reach us: the kernel does the others itself */
static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	u64 pos;
	int err;

	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		reply_err(req, EINVAL);
		return;
	}
	if (off < 0) {
		reply_err(req, ENXIO);
		return;
	}
	err = fs_seek_data_hole(sf->fs, &cred, ino, (u64)off, whence == SEEK_DATA, &pos);
	if (err < 0)
		reply_err(req, err);
	else
		fuse_reply_lseek(req, (off_t)pos);
}

static void op_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
		     struct fuse_file_info *fi, unsigned flags, const void *in_buf,
		     size_t in_bufsz, size_t out_bufsz)
{
	/* archive operations go through the control socket (scoutfs CLI), not ioctls */
	req_sf(req);
	reply_err(req, ENOTTY);
}

static const struct fuse_lowlevel_ops sfuse_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.open = op_open,
	.release = op_release,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.fsync = op_fsync,
	.readdir = op_readdir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
	.ioctl = op_ioctl,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
};

/* ---- readahead ---- */

void sfuse_set_readahead(struct sfuse *sf, uint64_t dev, unsigned int kb)
{
	sf->ra_dev = dev;
	sf->ra_kb = kb;
	atomic_store(&sf->ra_pending, kb > 0);
}

static void apply_readahead(struct sfuse *sf)
{
	char path[96];
	FILE *f;
	int err = 0;

	if (!atomic_exchange(&sf->ra_pending, false))
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major(sf->ra_dev),
		 minor(sf->ra_dev));
	f = fopen(path, "w");
	if (!f) {
		err = errno;
	} else {
		if (fprintf(f, "%u\n", sf->ra_kb) < 0)
			err = errno;
		if (fclose(f) != 0 && !err)
			err = errno;
	}
	if (err)
		log_warn("setting the readahead in %s failed: %s (buffered reads stay small)",
			 path, strerror(err));
}

/* ---- lifecycle ---- */

static ssize_t patching_read(int fd, void *buf, size_t len, void *userdata)
{
	return read(fd, buf, len);
}

/* the first reply is INIT's: add the flags libfuse 3.14 drops (fuse_init.c) */
static ssize_t patching_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct sfuse *sf = userdata;

	if (!sf->init_patched) {
		sf->init_patched = true;
		if (!sfuse_patch_init_reply(iov, count, sfuse_init_parallel_dirops_flag()))
			log_warn("the first FUSE reply was not INIT's; directory operations stay "
				 "serialized");
	}
	return writev(fd, iov, count);
}

static const struct fuse_custom_io patching_io = {
	.read = patching_read,
	.writev = patching_writev,
};

int sfuse_create(const struct sfuse_config *cfg, struct sfuse **ret)
{
	struct sfuse *sf;
	struct node *root;

	sf = calloc(1, sizeof(*sf));
	if (!sf)
		return -ENOMEM;
	sf->cfg = *cfg;
	sf->fs = cfg->fs;
	pthread_mutex_init(&sf->nodes_mutex, NULL);
	pthread_rwlock_init(&sf->reply_lock, NULL);
	pthread_mutex_init(&sf->name_mutex, NULL);
	pthread_cond_init(&sf->name_cond, NULL);
	pthread_mutex_init(&sf->drop_mutex, NULL);
	pthread_cond_init(&sf->drop_cond, NULL);
	sf->drop_tail = &sf->drop_head;
	RB_INIT(&sf->drop_pending);
	sf->entry_timeout = CACHE_TIMEOUT_SECS;
	pthread_mutex_init(&sf->evict_mutex, NULL);
	pthread_cond_init(&sf->evict_cond, NULL);
	sf->evict_tail = &sf->evict_head;
	RB_INIT(&sf->nodes);
	RB_INIT(&sf->dentries);

	/* the kernel knows the root without looking it up */
	root = calloc(1, sizeof(*root));
	if (!root) {
		free(sf);
		return -ENOMEM;
	}
	root->ino = FUSE_ROOT_ID;
	root->nlookup = 1;
	RB_INSERT(node_tree, &sf->nodes, root);
	*ret = sf;
	return 0;
}

int sfuse_mount(struct sfuse *sf)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	char opts[1024];
	int err = -ENOMEM;

	snprintf(opts, sizeof(opts), "fsname=%s,subtype=scoutfs,default_permissions%s%s%s%s",
		 sf->cfg.fsname, sf->cfg.allow_other ? ",allow_other" : "",
		 sf->cfg.nosuid ? ",nosuid" : ",suid", sf->cfg.nodev ? ",nodev" : ",dev",
		 sf->cfg.noexec ? ",noexec" : "");
	if (fuse_opt_add_arg(&args, "scoutfsd") || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, opts))
		goto out;

	sf->se = fuse_session_new(&args, &sfuse_ops, sizeof(sfuse_ops), sf);
	if (!sf->se) {
		err = -EINVAL;
		goto out;
	}
	if (pthread_create(&sf->drop_thread, NULL, drop_thread, sf) == 0)
		sf->drop_running = true;
	if (pthread_create(&sf->name_thread, NULL, name_thread, sf) == 0)
		sf->name_running = true;
	if (pthread_create(&sf->evict_thread, NULL, evict_thread, sf) == 0)
		sf->evict_running = true;
	if (!sf->drop_running || !sf->name_running || !sf->evict_running) {
		err = -ENOMEM;
		goto out;
	}
	if (fuse_session_mount(sf->se, sf->cfg.mountpoint) != 0) {
		log_err("mounting FUSE at %s failed", sf->cfg.mountpoint);
		err = -EIO;
		goto out;
	}
	sf->mounted = true;
	if (fuse_session_custom_io(sf->se, &patching_io, fuse_session_fd(sf->se)) != 0) {
		log_err("setting the FUSE session's I/O failed");
		err = -EIO;
		goto out;
	}
	/* a first epoch bump expires nothing yet and tells whether the kernel has it */
	err = notify_inc_epoch(sf);
	sf->epoch_notify = err == 0;
	if (err < 0) {
		sf->entry_timeout = SHORT_ENTRY_TIMEOUT_SECS;
		log_warn("the kernel cannot expire cached names on request (FUSE_NOTIFY_INC_EPOCH: "
			 "%s): names are cached for %.0f s, so another mount's rename or unlink "
			 "can go unseen for that long",
			 strerror(-err), SHORT_ENTRY_TIMEOUT_SECS);
	}
	err = 0;
out:
	fuse_opt_free_args(&args);
	return err;
}

int sfuse_loop(struct sfuse *sf)
{
	struct fuse_loop_config *cfg;
	int ret;

	cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_max_threads(cfg, sf->cfg.max_threads ? sf->cfg.max_threads : 32);
	ret = fuse_session_loop_mt(sf->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return ret < 0 ? ret : 0;
}

void sfuse_exit(struct sfuse *sf)
{
	if (sf->se)
		fuse_session_exit(sf->se);
}

void sfuse_destroy(struct sfuse *sf)
{
	struct drop_pending *dp, *dptmp;
	struct dentry_rec *dr, *dtmp;
	struct node *node, *ntmp;
	struct drop_job *job;
	struct name_job *njob;

	if (!sf)
		return;
	if (sf->drop_running) {
		pthread_mutex_lock(&sf->drop_mutex);
		sf->drop_stop = true;
		pthread_cond_broadcast(&sf->drop_cond);
		pthread_mutex_unlock(&sf->drop_mutex);
		pthread_join(sf->drop_thread, NULL);
	}
	while ((job = sf->drop_head)) {
		sf->drop_head = job->next;
		free(job);
	}
	if (sf->name_running) {
		pthread_mutex_lock(&sf->name_mutex);
		sf->name_stop = true;
		pthread_cond_broadcast(&sf->name_cond);
		pthread_mutex_unlock(&sf->name_mutex);
		pthread_join(sf->name_thread, NULL);
	}
	while ((njob = sf->name_head)) {
		sf->name_head = njob->next;
		free(njob);
	}
	RB_FOREACH_SAFE(dp, drop_pending_tree, &sf->drop_pending, dptmp)
	{
		RB_REMOVE(drop_pending_tree, &sf->drop_pending, dp);
		free(dp);
	}
	if (sf->evict_running) {
		pthread_mutex_lock(&sf->evict_mutex);
		sf->evict_stop = true;
		pthread_cond_broadcast(&sf->evict_cond);
		pthread_mutex_unlock(&sf->evict_mutex);
		pthread_join(sf->evict_thread, NULL);
	}
	if (sf->se) {
		if (sf->mounted)
			fuse_session_unmount(sf->se);
		fuse_session_destroy(sf->se);
	}
	RB_FOREACH_SAFE(dr, dentry_tree, &sf->dentries, dtmp)
	{
		RB_REMOVE(dentry_tree, &sf->dentries, dr);
		free(dr);
	}
	RB_FOREACH_SAFE(node, node_tree, &sf->nodes, ntmp)
	{
		RB_REMOVE(node_tree, &sf->nodes, node);
		free(node);
	}
	free(sf);
}
