/*
 * fs.h: the filesystem -- inodes, directories, file data, xattrs and the archival metadata.
 *
 * Owns: the meaning of the items in the FS zone (inode, dirent, readdir, link backref,
 * symlink, data extent, xattr), the inode indexes by meta_seq and data_seq, inode number
 * allocation, orphans, and every filesystem operation the FUSE layer maps requests onto.
 *
 * Each operation takes its cluster locks first (rename lock, inode locks in inode order,
 * index locks), then holds the transaction, then reads and writes items through the item
 * cache.  Inode numbers are FUSE node ids; the root directory is inode 1.
 *
 * Errors are negative errno values with the meaning POSIX gives them.  Access checks are
 * made by the kernel (the mount uses default_permissions, and POSIX ACLs with the acl option)
 * from the attributes and ACLs returned here; the fs layer makes the checks the kernel leaves
 * to filesystems: who may set ACLs and tagged xattrs, which xattr names a caller may list,
 * and the set-id bits that writes and ACL changes clear.
 */
#ifndef SCOUTFS_FS_H
#define SCOUTFS_FS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include "format/format.h"

struct fs_info;
struct item_cache;
struct lock_info;
struct lock;
struct trans_info;
struct client;
struct dev;
struct block_cache;

/* the caller of an operation (fsuid and fsgid) */
struct fs_cred {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	mode_t umask;
	/* a blocked lock wait asks this whether the caller gave up (FUSE interrupt) */
	bool (*interrupted)(void *arg);
	void *interrupted_arg;
	/*
	 * The request holds kernel page locks (a page-cache read or write, or writeback): it
	 * may use a lock while the lock's invalidation flushes the kernel's pages.
	 */
	bool holds_pages;
	/*
	 * The file is open for writing on this mount, so what a read brings into the kernel's
	 * page cache may be dirtied through a shared mapping without telling us: such reads
	 * take the inode's lock for writing, so that those pages are flushed before another
	 * mount can read the file.
	 */
	bool open_for_write;
	/* does the caller hold capability cap (CAP_*)?  NULL: only uid 0 does */
	bool (*capable)(void *arg, int cap);
	/* is gid the caller's fsgid or one of its supplementary groups?  NULL: fsgid only */
	bool (*in_group)(void *arg, gid_t gid);
	void *caller_arg;
};

/* a NULL cred is the filesystem itself, which may do anything */
bool fs_capable(const struct fs_cred *cred, int cap);
bool fs_in_group(const struct fs_cred *cred, gid_t gid);

/* attributes of an inode as stat(2) and the archival commands show them */
struct fs_attr {
	u64 ino;
	u32 mode;
	u32 nlink;
	u32 uid;
	u32 gid;
	u32 rdev;
	u64 size;
	u64 blocks; /* 512-byte units */
	struct timespec atime;
	struct timespec mtime;
	struct timespec ctime;
	struct timespec crtime;
	u64 meta_seq;
	u64 data_seq;
	u64 data_version;
	u64 online_blocks;
	u64 offline_blocks;
};

/* which fields of fs_setattr are set */
enum fs_setattr_valid {
	FS_SET_MODE = 1 << 0,
	FS_SET_UID = 1 << 1,
	FS_SET_GID = 1 << 2,
	FS_SET_SIZE = 1 << 3,
	FS_SET_ATIME = 1 << 4,
	FS_SET_MTIME = 1 << 5,
	FS_SET_ATIME_NOW = 1 << 6,
	FS_SET_MTIME_NOW = 1 << 7,
	FS_SET_CTIME = 1 << 8,
};

struct fs_setattr {
	int valid;
	u32 mode;
	u32 uid;
	u32 gid;
	u64 size;
	struct timespec atime;
	struct timespec mtime;
	struct timespec ctime;
};

/* mount options the filesystem uses (validated by the daemon) */
struct fs_options {
	u64 data_prealloc_blocks;
	bool data_prealloc_contig_only;
	u32 ino_alloc_per_lock;
	/* POSIX ACLs: stored, inherited and kept in step with the mode (else EOPNOTSUPP) */
	bool acl;
};

/*
 * What the filesystem needs from the layer above it (the FUSE layer).  Both invalidation
 * upcalls are made by the lock invalidation worker before a lock over inodes [first, last]
 * is given up or downgraded.
 */
struct fs_upcalls {
	/*
	 * Write back, and drop, the kernel's pages of the inodes in the range that are open for
	 * writing (only those can hold pages dirtied through a shared mapping).  Synchronous;
	 * made between lock_flush_begin and lock_flush_end, so the writeback can use the lock.
	 */
	void (*flush_inodes)(void *arg, u64 first, u64 last);
	/*
	 * Drop what the kernel cached for the inodes in the range: their attributes and every
	 * cached name at once, their pages soon after (without waiting for requests that may be
	 * waiting for this very lock).  With writers_only (a WRITE to READ downgrade, after
	 * which cached attributes and names stay true) only the pages of inodes open for
	 * writing are dropped, so that a later write through a mapping reads them again under
	 * a lock that can write.
	 */
	void (*invalidate_inodes)(void *arg, u64 first, u64 last, bool writers_only);
	/* is the inode still referenced by the kernel (open, cached)? */
	bool (*inode_in_use)(void *arg, u64 ino);
	/* set bit (ino - first) of bits for every inode of [first, first + 1023] in use */
	void (*inodes_in_use)(void *arg, u64 first, le64 *bits);
};

struct fs_config {
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
	struct fs_options opts;
};

int fs_create(const struct fs_config *cfg, struct fs_info **ret);
void fs_set_upcalls(struct fs_info *fs, const struct fs_upcalls *up, void *arg);
void fs_destroy(struct fs_info *fs);
/* start background work (the orphan scan); after the mount is ready */
int fs_start(struct fs_info *fs);
/* stop background work before unmount */
void fs_stop(struct fs_info *fs);
void fs_set_options(struct fs_info *fs, const struct fs_options *opts);
void fs_set_orphan_scan_delay(struct fs_info *fs, u64 ms);

/* the lock layer's invalidate callback (see lock_ops) */
int fs_lock_invalidate(void *arg, struct lock *lock, enum scoutfs_lock_mode old_mode,
		       enum scoutfs_lock_mode new_mode);

/* ---- namespace ---- */

int fs_lookup(struct fs_info *fs, const struct fs_cred *cred, u64 dir, const char *name,
	      size_t len, struct fs_attr *attr);
int fs_getattr(struct fs_info *fs, const struct fs_cred *cred, u64 ino, struct fs_attr *attr);
int fs_setattr(struct fs_info *fs, const struct fs_cred *cred, u64 ino, const struct fs_setattr *sa,
	       struct fs_attr *attr);
/*
 * Create a regular file, directory, device, fifo or socket (mode includes the type).  The
 * caller's umask applies unless the directory has a default ACL, which is inherited instead.
 */
int fs_mknod(struct fs_info *fs, const struct fs_cred *cred, u64 dir, const char *name,
	     size_t len, u32 mode, u32 rdev, struct fs_attr *attr);
int fs_symlink(struct fs_info *fs, const struct fs_cred *cred, u64 dir, const char *name,
	       size_t len, const char *target, struct fs_attr *attr);
/* copy the target (not NUL terminated) and return its length */
int fs_readlink(struct fs_info *fs, const struct fs_cred *cred, u64 ino, char *buf, size_t size);
int fs_link(struct fs_info *fs, const struct fs_cred *cred, u64 ino, u64 dir, const char *name,
	    size_t len, struct fs_attr *attr);
int fs_unlink(struct fs_info *fs, const struct fs_cred *cred, u64 dir, const char *name,
	      size_t len);
int fs_rmdir(struct fs_info *fs, const struct fs_cred *cred, u64 dir, const char *name,
	     size_t len);
/*
 * NOREPLACE: EEXIST if the new name exists.  EXCHANGE: the two existing names swap inodes
 * (of any types, across directories); ENOENT if the new name does not exist.
 */
enum fs_rename_flags {
	FS_RENAME_NOREPLACE = 1 << 0,
	FS_RENAME_EXCHANGE = 1 << 1,
};
int fs_rename(struct fs_info *fs, const struct fs_cred *cred, u64 old_dir, const char *old_name,
	      size_t old_len, u64 new_dir, const char *new_name, size_t new_len, int flags);

/*
 * Read directory entries from position pos: ".", ".." then entries in creation order.
 * emit() gets each entry and the offset to resume after it; returning nonzero stops.
 */
typedef int (*fs_dirent_fn)(void *arg, const char *name, size_t len, u64 ino, u32 dtype,
			    u64 next_pos);
int fs_readdir(struct fs_info *fs, const struct fs_cred *cred, u64 dir, u64 pos, fs_dirent_fn emit,
	       void *arg);

/* ---- data ---- */

/*
 * Read up to len bytes at off (holes read as zeros; nothing past EOF).  buf must be aligned
 * to FS_IO_ALIGN and hold fs_read_buf_size(off, len) bytes: whole blocks are read straight
 * into it, and *data points at the first byte asked for.  Returns the number of bytes.
 */
#define FS_IO_ALIGN 4096
size_t fs_read_buf_size(u64 off, size_t len);
ssize_t fs_read(struct fs_info *fs, const struct fs_cred *cred, u64 ino, u64 off, size_t len,
		void *buf, const void **data);
/* write len bytes at off (append: at EOF); bytes written (short only when space ran out) */
ssize_t fs_write(struct fs_info *fs, const struct fs_cred *cred, u64 ino, u64 off, bool append,
		 const void *buf, size_t len);

/* fallocate(2) modes: the FALLOC_FL_ flags that scoutfs supports */
enum fs_falloc_mode {
	FS_FALLOC_KEEP_SIZE = 1 << 0,
	FS_FALLOC_PUNCH_HOLE = 1 << 1, /* only with KEEP_SIZE */
	FS_FALLOC_ZERO_RANGE = 1 << 2,
};
/* -EOPNOTSUPP for other modes, -EFBIG past the largest file size, -ENOSPC when full */
int fs_fallocate(struct fs_info *fs, const struct fs_cred *cred, u64 ino, int mode, u64 off,
		 u64 len);

/*
 * lseek SEEK_DATA (data true) or SEEK_HOLE from off: data is written or offline blocks,
 * unwritten (preallocated) blocks are holes.  -ENXIO at or past EOF, and for SEEK_DATA when
 * no data follows off; SEEK_HOLE finds EOF when no hole does.
 */
int fs_seek_data_hole(struct fs_info *fs, const struct fs_cred *cred, u64 ino, u64 off,
		      bool data, u64 *pos);

/* one extent of a file, in 4 KiB blocks (get-fiemap) */
enum fs_extent_flags {
	FS_EXTENT_OFFLINE = 1 << 0,   /* in an archive; physical is 0 */
	FS_EXTENT_UNWRITTEN = 1 << 1, /* allocated, reads as zeros */
	FS_EXTENT_LAST = 1 << 2,      /* the file's last extent */
};

struct fs_extent_info {
	u64 logical;
	u64 physical; /* 0 if unmapped */
	u64 len;
	u32 flags;
};

/* up to nr of a file's extents that end at or after start_blk; returns how many */
int fs_get_extents(struct fs_info *fs, const struct fs_cred *cred, u64 ino, u64 start_blk,
		   struct fs_extent_info *exts, int nr);

/* make everything this mount changed durable */
int fs_sync(struct fs_info *fs);
/*
 * fsync(2) of a file: everything (a commit); with datasync only what reading its data back
 * needs -- just a flush of the data device when its extents and size are already committed.
 */
int fs_fsync(struct fs_info *fs, u64 ino, bool datasync);
int fs_statfs(struct fs_info *fs, struct statvfs *st);

/* ---- xattrs ---- */

enum fs_xattr_flags {
	FS_XATTR_CREATE = 1 << 0,
	FS_XATTR_REPLACE = 1 << 1,
};
int fs_setxattr(struct fs_info *fs, const struct fs_cred *cred, u64 ino, const char *name,
		const void *val, size_t size, int flags);
/* size 0 returns the value's length; -ERANGE if the buffer is too small */
ssize_t fs_getxattr(struct fs_info *fs, const struct fs_cred *cred, u64 ino, const char *name,
		    void *val, size_t size);
ssize_t fs_listxattr(struct fs_info *fs, const struct fs_cred *cred, u64 ino, char *buf,
		     size_t size);
int fs_removexattr(struct fs_info *fs, const struct fs_cred *cred, u64 ino, const char *name);

/* ---- inode lifetime ---- */

/*
 * The kernel forgot these inodes: delete those with no links left that no mount uses.  Up to
 * FS_EVICT_BATCH at a time share one question to the server per inode group.
 */
#define FS_EVICT_BATCH 64
void fs_evict_many(struct fs_info *fs, const u64 *inos, int nr);
/* this mount's part of the open map: the inodes of group_nr its kernel holds */
void fs_open_ino_map(struct fs_info *fs, u64 group_nr, le64 *bits);

/* ---- archival ---- */

struct fs_walk_entry {
	u64 major; /* the seq */
	u32 minor;
	u64 ino;
};

/* the greatest seq whose inode index entries are durable and final */
int fs_committed_seq(struct fs_info *fs, u64 *seq);
/*
 * Inode index entries of type (SCOUTFS_INODE_INDEX_META_SEQ_TYPE or _DATA_SEQ_TYPE) from
 * first to last (inclusive), at most nr; clamped to the committed seq.  Returns the count.
 */
int fs_walk_inodes(struct fs_info *fs, u8 type, const struct fs_walk_entry *first,
		   const struct fs_walk_entry *last, struct fs_walk_entry *ents, int nr);

#endif
