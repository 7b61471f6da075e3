/*
 * fs_int.h: what the files of the fs layer share: the mount's fs_info, item keys, inode
 * items with their seq indexes, and the lock-then-hold sequence every change goes through.
 */
#ifndef SCOUTFS_FS_INT_H
#define SCOUTFS_FS_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "format/key.h"
#include "fs/fs.h"
#include "item/item.h"
#include "lock/lock.h"
#include "trans/trans.h"

struct block_cache;

/* inode numbers asked of the server at a time */
#define FS_INO_BATCH (SCOUTFS_LOCK_INODE_GROUP_NR * 10ULL)
#define FS_MAX_FILE_SIZE ((u64)INT64_MAX)
#define FS_BLOCK_SIZE SCOUTFS_BLOCK_SM_SIZE
#define FS_BLOCK_SHIFT SCOUTFS_BLOCK_SM_SHIFT
/* the data locks (and fdatasync's records) are hashed over this many (log2) buckets */
#define FS_DATA_LOCK_BITS 8

struct data_lock;

/* the data locks of the inodes whose number hashes to this bucket (data.c) */
struct fs_data_lock_bucket {
	pthread_mutex_t mutex;
	struct data_lock *head;
};

struct ino_pool {
	u64 next;
	u64 end;
};

#define FS_XATTR_LOCKS 64

struct fs_info {
	struct item_cache *ic;
	struct lock_info *li;
	struct trans_info *ti;
	struct client *cl;
	struct dev *data_dev;
	struct block_cache *bc;
	u64 fsid;
	u64 rid;
	u64 fmt_vers;
	u64 total_data_blocks;

	pthread_mutex_t opts_mutex;
	struct fs_options opts;

	/*
	 * The upcalls into the FUSE layer, and how many threads are inside one: clearing them
	 * waits until none is, so the FUSE layer can be freed right after.
	 */
	pthread_mutex_t up_mutex;
	pthread_cond_t up_cond;
	unsigned int up_users;
	const struct fs_upcalls *up;
	void *up_arg;

	/*
	 * Changing an xattr rewrites several items (delete the old parts, write the new), and
	 * cluster locks don't order threads of one mount that share a lock's mode: these order
	 * the xattr readers and writers of an inode within the mount (taken after the cluster
	 * lock), so a reader never sees an xattr half replaced.
	 */
	pthread_rwlock_t xattr_locks[FS_XATTR_LOCKS];
	/*
	 * Deleting an unlinked inode's items: the evict thread and the orphan scan may both
	 * try the same inode, and cluster locks don't keep a mount's own threads apart.
	 */
	pthread_mutex_t delete_mutex;

	pthread_mutex_t ino_mutex;
	struct ino_pool dir_pool;
	struct ino_pool file_pool;

	/* serializes changes of a file's extents and inode item with each other and with reads */
	struct fs_data_lock_bucket data_locks[1 << FS_DATA_LOCK_BITS];
	/*
	 * Per hash bucket of inodes, the latest transaction seq that changed the extents or size
	 * of one of them: fdatasync needs a commit only if that transaction is still open.
	 */
	_Atomic u64 layout_seqs[1 << FS_DATA_LOCK_BITS];

	/* the background orphan scan */
	pthread_t orphan_thread;
	bool orphan_running;
	pthread_mutex_t orphan_mutex;
	pthread_cond_t orphan_cond;
	bool orphan_stop;
	u64 orphan_scan_delay_ms;
};

static inline pthread_rwlock_t *fs_xattr_lock(struct fs_info *fs, u64 ino)
{
	return &fs->xattr_locks[ino % FS_XATTR_LOCKS];
}

/* ---- keys ---- */

static inline struct scoutfs_key inode_key(u64 ino)
{
	return key_make(SCOUTFS_FS_ZONE, ino, SCOUTFS_INODE_TYPE, 0, 0, 0);
}

static inline struct scoutfs_key dirent_key(u64 dir, u64 hash, u64 pos)
{
	return key_make(SCOUTFS_FS_ZONE, dir, SCOUTFS_DIRENT_TYPE, hash, pos, 0);
}

static inline struct scoutfs_key readdir_key(u64 dir, u64 pos)
{
	return key_make(SCOUTFS_FS_ZONE, dir, SCOUTFS_READDIR_TYPE, pos, 0, 0);
}

static inline struct scoutfs_key backref_key(u64 ino, u64 dir, u64 pos)
{
	return key_make(SCOUTFS_FS_ZONE, ino, SCOUTFS_LINK_BACKREF_TYPE, dir, pos, 0);
}

static inline struct scoutfs_key symlink_key(u64 ino, u64 nr)
{
	return key_make(SCOUTFS_FS_ZONE, ino, SCOUTFS_SYMLINK_TYPE, nr, 0, 0);
}

static inline struct scoutfs_key extent_key(u64 ino, u64 last, u64 len)
{
	return key_make(SCOUTFS_FS_ZONE, ino, SCOUTFS_DATA_EXTENT_TYPE, last, len, 0);
}

static inline struct scoutfs_key xattr_key(u64 ino, u64 hash, u64 id, u8 part)
{
	return key_make(SCOUTFS_FS_ZONE, ino, SCOUTFS_XATTR_TYPE, hash, id, part);
}

static inline struct scoutfs_key index_key(u8 type, u64 seq, u64 ino)
{
	return key_make(SCOUTFS_INODE_INDEX_ZONE, 0, type, seq, ino, 0);
}

static inline struct scoutfs_key orphan_key(u64 ino)
{
	return key_make(SCOUTFS_ORPHAN_ZONE, 0, SCOUTFS_ORPHAN_TYPE, ino, 0, 0);
}

/* ---- inodes (inode.c) ---- */

/* an inode being changed by an operation: its item and the lock that covers it */
struct fs_inode {
	u64 ino;
	struct lock *lock;
	struct scoutfs_inode si;
	bool data_changed; /* update data_seq too */
	bool dirty;	   /* write the item at the end */
	bool created;	   /* the item does not exist yet */
	bool deleted;	   /* the item was deleted by the operation */
	bool layout_changed; /* extents or size changed (fdatasync must commit) */
};

unsigned int fs_inode_bytes(struct fs_info *fs);
int fs_inode_read(struct fs_info *fs, struct lock *lock, u64 ino, struct scoutfs_inode *si);
void fs_inode_attr(const struct scoutfs_inode *si, u64 ino, struct fs_attr *attr);
struct timespec fs_now(void);
void fs_set_ts(struct scoutfs_timespec *dst, struct timespec ts);
u32 fs_mode_dtype(u32 mode);

/*
 * The change of one or more inodes: locks of the seq index groups their old and new seqs
 * fall in (WRITE_ONLY), the orphan lock if needed, and the held transaction.
 */
#define FS_MAX_CHANGE_INODES 5
#define FS_MAX_INDEX_LOCKS (FS_MAX_CHANGE_INODES * 4)

struct fs_change {
	struct fs_info *fs;
	struct fs_inode *inodes[FS_MAX_CHANGE_INODES];
	int nr_inodes;
	struct lock *index_locks[FS_MAX_INDEX_LOCKS];
	u8 index_types[FS_MAX_INDEX_LOCKS];
	u64 index_groups[FS_MAX_INDEX_LOCKS];
	int nr_index;
	struct lock *orphan_lock;
	bool want_orphan;
	bool held;
	u64 seq;
};

void fs_change_init(struct fs_change *chg, struct fs_info *fs);
void fs_change_add(struct fs_change *chg, struct fs_inode *fi);
/* lock the index groups (and the orphan zone if want_orphan) and hold the transaction */
int fs_change_begin(struct fs_change *chg, const struct fs_cred *cred, int hold_flags);
/* write every dirty inode item with its seq index items */
int fs_change_write_inodes(struct fs_change *chg);
/* release the transaction and the index/orphan locks */
void fs_change_end(struct fs_change *chg);

int fs_orphan_add(struct fs_change *chg, u64 ino);
int fs_orphan_del(struct fs_change *chg, u64 ino);

/* allocate a new inode number for a directory or another kind of inode */
int fs_alloc_ino(struct fs_info *fs, bool dir, u64 *ino);
/* delete every item of an inode whose last link is gone (its lock is held in WRITE) */
int fs_delete_inode_items(struct fs_info *fs, struct lock *lock, u64 ino);
struct lock_waiter fs_waiter(const struct fs_cred *cred);
/* does any mount still use the unlinked ino?  (under its WRITE lock; errors say yes) */
bool fs_inode_used_anywhere(struct fs_info *fs, u64 ino);
/* the kernel still references ino (false once the FUSE layer is gone) */
bool fs_inode_in_kernel(struct fs_info *fs, u64 ino);
/* lock flags for a request: LOCK_KERNEL_PAGES if it holds kernel page locks */
int fs_lock_flags(const struct fs_cred *cred);
bool fs_inode_owner_or_capable(const struct fs_cred *cred, const struct scoutfs_inode *si);
/* clear the set-id bits a write by cred removes; true if the mode changed */
bool fs_inode_kill_suid(const struct fs_cred *cred, struct scoutfs_inode *si);

/* ---- data (data.c) ---- */

int fs_data_init(struct fs_info *fs);
void fs_data_destroy(struct fs_info *fs);
/*
 * The inode's data lock: taken after its cluster lock and before the transaction, shared by
 * reads of its data, exclusive for anything that changes its extents or its inode item
 * (write, truncate, fallocate, setattr).  -ENOMEM is the only error.
 */
int fs_data_lock(struct fs_info *fs, u64 ino, bool write);
void fs_data_unlock(struct fs_info *fs, u64 ino);
/*
 * The data locks of up to 4 inodes, for writing, in inode order (after their cluster
 * locks): what namespace and xattr changes take so that their rewrite of an inode item
 * doesn't race the kernel's writeback of the same file, which the kernel doesn't serialize.
 */
int fs_data_lock_inodes(struct fs_info *fs, const u64 *inos, int nr);
void fs_data_unlock_inodes(struct fs_info *fs, const u64 *inos, int nr);

/* free the file's extents from block first on (truncate, deletion); batched transactions */
int fs_data_truncate_blocks(struct fs_info *fs, struct fs_change *chg, struct fs_inode *fi,
			    u64 first_blk);
/*
 * Set the size of a regular file whose cluster lock and data lock the caller holds; mtime and
 * ctime become now (even for the same size), data_version moves if the size changes.
 */
int fs_data_truncate(struct fs_info *fs, const struct fs_cred *cred, struct fs_inode *fi,
		     u64 new_size, struct timespec now);

/* ---- xattrs (xattr.c) ---- */

int fs_xattr_delete_all(struct fs_info *fs, struct lock *lock, u64 ino, int max, int *nr);
/* a value by name under the inode's lock: its length, -ENODATA, -ERANGE (size 0: length) */
ssize_t fs_xattr_read(struct fs_info *fs, struct lock *lock, u64 ino, const char *name,
		      void *val, size_t size);
/* create or replace an xattr of a locked inode inside a begun change */
int fs_xattr_store(struct fs_info *fs, struct fs_inode *fi, const char *name, const void *val,
		   size_t size);
/* remove an xattr of a locked inode inside a begun change; -ENODATA if it has none */
int fs_xattr_remove(struct fs_info *fs, struct fs_inode *fi, const char *name);

/* ---- POSIX ACLs (acl.c) ---- */

enum fs_acl_type {
	FS_ACL_ACCESS = 1,
	FS_ACL_DEFAULT = 2,
};

#define FS_ACL_ACCESS_NAME "system.posix_acl_access"
#define FS_ACL_DEFAULT_NAME "system.posix_acl_default"

bool fs_acl_enabled(struct fs_info *fs);
/* FS_ACL_ACCESS or FS_ACL_DEFAULT for the ACL xattr names, else 0 */
int fs_acl_type(const char *name, size_t len);
/*
 * Before setting an ACL xattr of a locked inode: check the caller may, validate the value,
 * and apply an access ACL to the mode (in fi->si).  *store is false when the ACL is only a
 * mode and any stored access ACL must go instead.
 */
int fs_acl_prepare_set(struct fs_info *fs, const struct fs_cred *cred, struct fs_inode *fi,
		       int type, const void *val, size_t size, bool *store);
int fs_acl_prepare_remove(struct fs_info *fs, const struct fs_cred *cred, struct fs_inode *fi,
			  int type);
/* chmod of a locked inode inside a begun change: keep its access ACL in step with the mode */
int fs_acl_chmod(struct fs_info *fs, struct fs_inode *fi);

/* what a new inode inherits from its directory: the mode and the ACLs to store */
struct fs_acl_inherit {
	u32 mode;
	void *access;
	size_t access_size;
	void *def;
	size_t def_size;
};

/*
 * Apply the directory's default ACL (or else the umask) to the mode of a new inode; the
 * directory is locked.  Free with fs_acl_inherit_free.
 */
int fs_acl_inherit_prepare(struct fs_info *fs, const struct fs_cred *cred,
			   const struct fs_inode *dir, u32 mode, struct fs_acl_inherit *inh);
/* store the inherited ACLs of a new inode inside its creating change */
int fs_acl_inherit_store(struct fs_info *fs, struct fs_inode *fi,
			 const struct fs_acl_inherit *inh);
void fs_acl_inherit_free(struct fs_acl_inherit *inh);

#endif
