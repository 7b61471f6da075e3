/*
 * fuse_ops.c: the FUSE low-level operations, mapped onto the fs layer.
 *
 * Requests arrive on libfuse's worker threads and are translated almost one to one into fs
 * calls, with the caller's credentials and a way to notice a FUSE interrupt.
 *
 * The kernel caches attributes, directory entries and file pages for as long as we let it,
 * and we let it for a long time: cached answers cost no round trip.  What keeps them right
 * is that every cached answer is covered by a cluster lock; when the lock is given up, the
 * fs layer asks us (sfuse_invalidate_inodes) to drop what the kernel cached for the inodes
 * of the lock's range.  To do that we need to know which inodes the kernel holds and under
 * which names in which directories it cached them, so the node table records both:
 * lookup counts per inode, and a (parent, name) record for every entry we handed out.
 * Negative lookups are answered with ENOENT, which the kernel does not cache.
 *
 * Notifications run on their own thread.  A notification issued from a request handler for
 * the same inode or directory deadlocks in the kernel, and forgetting an inode (which may
 * delete a whole file) would hold up a request thread, so both are handed to threads of
 * their own.
 *
 * What we ask of the kernel at INIT: POSIX ACL enforcement with the acl option, no umask
 * applied by the kernel (the fs layer applies it, or a default ACL instead), and parallel
 * lookups in one directory, a flag libfuse 3.14 cannot send and we patch into its INIT reply
 * (fuse_init.c).
 */
#define FUSE_USE_VERSION 314

#include <errno.h>
#include <fuse_lowlevel.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
COUNTER_DEFINE(fuse_notify_inval_inode);
COUNTER_DEFINE(fuse_notify_inval_entry);
COUNTER_DEFINE(fuse_evict);
/* a LOOKUP began while another was being served: evidence that lookups run in parallel */
COUNTER_DEFINE(fuse_lookup_overlap);

/* kernel caches stay valid until a lock invalidation drops them */
#define CACHE_TIMEOUT_SECS 86400.0

struct dentry_rec;

struct node {
	RB_ENTRY(node) entry;
	u64 ino;
	u64 nlookup;
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

RB_HEAD(node_tree, node);
RB_HEAD(dentry_tree, dentry_rec);
RB_GENERATE_STATIC_UNUSED(node_tree, node, entry, node_cmp)
RB_GENERATE_STATIC_UNUSED(dentry_tree, dentry_rec, entry, dentry_cmp)

struct inval_job {
	struct inval_job *next;
	u64 first;
	u64 last;
	bool done;
};

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

	/* kernel notifications */
	pthread_mutex_t inval_mutex;
	pthread_cond_t inval_cond;
	struct inval_job *inval_head;
	bool inval_stop;
	pthread_t inval_thread;
	bool inval_running;

	/* forgotten inodes that may need deleting */
	pthread_mutex_t evict_mutex;
	pthread_cond_t evict_cond;
	struct evict_job *evict_head;
	struct evict_job **evict_tail;
	bool evict_stop;
	pthread_t evict_thread;
	bool evict_running;
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

/* ---- background threads ---- */

struct name_copy {
	u64 parent;
	size_t len;
	char name[SCOUTFS_NAME_LEN + 1];
};

static void run_inval_job(struct sfuse *sf, struct inval_job *job)
{
	struct node search = { .ino = job->first };
	struct dentry_rec dsearch = { .parent = job->first, .len = 0 };
	struct name_copy *names = NULL;
	size_t nr_names = 0, alloc_names = 0;
	u64 *inos = NULL;
	size_t nr_inos = 0, alloc_inos = 0;
	struct dentry_rec *dr;
	struct node *node;

	/* copy what to drop, then notify without the table lock (forgets take it) */
	pthread_mutex_lock(&sf->nodes_mutex);
	for (node = RB_NFIND(node_tree, &sf->nodes, &search); node && node->ino <= job->last;
	     node = RB_NEXT(node_tree, &sf->nodes, node)) {
		if (nr_inos == alloc_inos) {
			alloc_inos = alloc_inos ? alloc_inos * 2 : 64;
			inos = realloc(inos, alloc_inos * sizeof(*inos));
			if (!inos)
				break;
		}
		inos[nr_inos++] = node->ino;
	}
	for (dr = RB_NFIND(dentry_tree, &sf->dentries, &dsearch); dr && dr->parent <= job->last;
	     dr = RB_NEXT(dentry_tree, &sf->dentries, dr)) {
		if (nr_names == alloc_names) {
			alloc_names = alloc_names ? alloc_names * 2 : 64;
			names = realloc(names, alloc_names * sizeof(*names));
			if (!names)
				break;
		}
		names[nr_names].parent = dr->parent;
		names[nr_names].len = dr->len;
		memcpy(names[nr_names].name, dr->name, dr->len);
		names[nr_names].name[dr->len] = '\0';
		nr_names++;
	}
	pthread_mutex_unlock(&sf->nodes_mutex);

	for (size_t i = 0; names && i < nr_names; i++) {
		counter_inc(fuse_notify_inval_entry);
		fuse_lowlevel_notify_inval_entry(sf->se, names[i].parent, names[i].name,
						 names[i].len);
	}
	for (size_t i = 0; inos && i < nr_inos; i++) {
		counter_inc(fuse_notify_inval_inode);
		fuse_lowlevel_notify_inval_inode(sf->se, inos[i], 0, 0);
	}
	free(names);
	free(inos);
}

static void *inval_thread(void *arg)
{
	struct sfuse *sf = arg;
	struct inval_job *job;

	thread_set_name("fuse-notify");
	pthread_mutex_lock(&sf->inval_mutex);
	for (;;) {
		while (!sf->inval_head && !sf->inval_stop)
			pthread_cond_wait(&sf->inval_cond, &sf->inval_mutex);
		job = sf->inval_head;
		if (!job)
			break;
		sf->inval_head = job->next;
		pthread_mutex_unlock(&sf->inval_mutex);
		if (sf->mounted)
			run_inval_job(sf, job);
		pthread_mutex_lock(&sf->inval_mutex);
		job->done = true;
		pthread_cond_broadcast(&sf->inval_cond);
	}
	pthread_mutex_unlock(&sf->inval_mutex);
	return NULL;
}

void sfuse_invalidate_inodes(void *arg, uint64_t first, uint64_t last)
{
	struct sfuse *sf = arg;
	struct inval_job job = { .first = first, .last = last };
	struct inval_job **pos;

	pthread_mutex_lock(&sf->inval_mutex);
	if (sf->inval_stop) {
		pthread_mutex_unlock(&sf->inval_mutex);
		return;
	}
	for (pos = &sf->inval_head; *pos; pos = &(*pos)->next)
		;
	*pos = &job;
	pthread_cond_broadcast(&sf->inval_cond);
	while (!job.done)
		pthread_cond_wait(&sf->inval_cond, &sf->inval_mutex);
	pthread_mutex_unlock(&sf->inval_mutex);
}

static void *evict_thread(void *arg)
{
	struct sfuse *sf = arg;
	struct evict_job *job;

	thread_set_name("fuse-evict");
	pthread_mutex_lock(&sf->evict_mutex);
	for (;;) {
		while (!sf->evict_head && !sf->evict_stop)
			pthread_cond_wait(&sf->evict_cond, &sf->evict_mutex);
		job = sf->evict_head;
		if (!job)
			break;
		sf->evict_head = job->next;
		if (!sf->evict_head)
			sf->evict_tail = &sf->evict_head;
		pthread_mutex_unlock(&sf->evict_mutex);
		counter_inc(fuse_evict);
		fs_evict(sf->fs, job->ino);
		free(job);
		pthread_mutex_lock(&sf->evict_mutex);
	}
	pthread_mutex_unlock(&sf->evict_mutex);
	return NULL;
}

/* ---- request helpers ---- */

static struct sfuse *req_sf(fuse_req_t req)
{
	counter_inc(fuse_requests);
	return fuse_req_userdata(req);
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

static void reply_entry(fuse_req_t req, struct sfuse *sf, u64 parent, const char *name,
			const struct fs_attr *attr)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = attr->ino;
	e.generation = 1;
	attr_to_stat(attr, &e.attr);
	e.attr_timeout = CACHE_TIMEOUT_SECS;
	e.entry_timeout = CACHE_TIMEOUT_SECS;
	node_looked_up(sf, attr->ino, parent, name, name ? strlen(name) : 0);
	if (fuse_reply_entry(req, &e) != 0)
		node_forget(sf, attr->ino, 1); /* the kernel never got it (interrupted) */
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
	struct fs_attr attr;
	int err;

	if (atomic_fetch_add(&sf->lookups_in_flight, 1) > 0)
		counter_inc(fuse_lookup_overlap);
	err = fs_lookup(sf->fs, &cred, parent, name, strlen(name), &attr);
	atomic_fetch_sub(&sf->lookups_in_flight, 1);
	if (err < 0)
		reply_err(req, err);
	else
		reply_entry(req, sf, parent, name, &attr);
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
	struct fs_attr attr;
	int err;

	err = fs_mknod(sf->fs, &cred, parent, name, strlen(name), mode, (u32)rdev, &attr);
	if (err < 0)
		reply_err(req, err);
	else
		reply_entry(req, sf, parent, name, &attr);
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
	struct fs_attr attr;
	int err;

	err = fs_symlink(sf->fs, &cred, parent, name, strlen(name), target, &attr);
	if (err < 0)
		reply_err(req, err);
	else
		reply_entry(req, sf, parent, name, &attr);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	struct fs_attr attr;
	int err;

	err = fs_link(sf->fs, &cred, ino, newparent, newname, strlen(newname), &attr);
	if (err < 0)
		reply_err(req, err);
	else
		reply_entry(req, sf, newparent, newname, &attr);
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
	fi->keep_cache = 1;
	if (fi->flags & O_DIRECT)
		fi->direct_io = 1;
	fuse_reply_open(req, fi);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	struct fuse_entry_param e;
	struct fs_attr attr;
	int err;

	err = fs_mknod(sf->fs, &cred, parent, name, strlen(name), S_IFREG | (mode & ~S_IFMT), 0,
		       &attr);
	if (err < 0) {
		reply_err(req, err);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = attr.ino;
	e.generation = 1;
	attr_to_stat(&attr, &e.attr);
	e.attr_timeout = CACHE_TIMEOUT_SECS;
	e.entry_timeout = CACHE_TIMEOUT_SECS;
	fi->keep_cache = 1;
	if (fi->flags & O_DIRECT)
		fi->direct_io = 1;
	node_looked_up(sf, attr.ino, parent, name, strlen(name));
	if (fuse_reply_create(req, &e, fi) != 0)
		node_forget(sf, attr.ino, 1);
}

static struct thread_buf read_tb = THREAD_BUF_INIT(false);

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	void *read_buf = thread_buf_get(&read_tb, size ? size : 1);
	ssize_t ret;

	if (!read_buf) {
		reply_err(req, ENOMEM);
		return;
	}
	ret = fs_read(sf->fs, &cred, ino, (u64)off, read_buf, size);
	if (ret < 0)
		reply_err(req, (int)ret);
	else
		fuse_reply_buf(req, read_buf, (size_t)ret);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct sfuse *sf = req_sf(req);
	struct fs_cred cred = req_cred(req);
	ssize_t ret;

	ret = fs_write(sf->fs, &cred, ino, (u64)off, false, buf, size);
	if (ret < 0)
		reply_err(req, (int)ret);
	else
		fuse_reply_write(req, (size_t)ret);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct sfuse *sf = req_sf(req);

	reply_err(req, fs_sync(sf->fs));
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
	op_fsync(req, ino, datasync, fi);
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
};

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
	pthread_mutex_init(&sf->inval_mutex, NULL);
	pthread_cond_init(&sf->inval_cond, NULL);
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
	if (pthread_create(&sf->inval_thread, NULL, inval_thread, sf) == 0)
		sf->inval_running = true;
	if (pthread_create(&sf->evict_thread, NULL, evict_thread, sf) == 0)
		sf->evict_running = true;
	if (!sf->inval_running || !sf->evict_running) {
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
	struct dentry_rec *dr, *dtmp;
	struct node *node, *ntmp;

	if (!sf)
		return;
	if (sf->inval_running) {
		pthread_mutex_lock(&sf->inval_mutex);
		sf->inval_stop = true;
		pthread_cond_broadcast(&sf->inval_cond);
		pthread_mutex_unlock(&sf->inval_mutex);
		pthread_join(sf->inval_thread, NULL);
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
