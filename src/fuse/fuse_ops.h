/*
 * fuse_ops.h: the FUSE layer -- the kernel's requests mapped onto the fs layer.
 *
 * Owns: the libfuse low-level session of the mount, the table of inodes the kernel knows
 * (lookup counts, the names under which it cached them, open files that can write), and
 * dropping what the kernel cached when a cluster lock is given up.  Kernel notifications are
 * never made from a request handler (one for the same inode or directory deadlocks in the
 * kernel), and the lock invalidation worker only makes those that take no kernel lock a
 * request may hold; page drops run on a thread of their own (see fuse_ops.c).
 *
 * Inode numbers are FUSE node ids (the root is 1 in both).  The mount uses
 * default_permissions, so the kernel checks permissions from the attributes we return (and
 * the ACLs, with the acl option); the caller's capabilities and groups, which the kernel
 * does not pass, are read from /proc for the checks the fs layer makes.
 */
#ifndef SCOUTFS_FUSE_OPS_H
#define SCOUTFS_FUSE_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "format/format.h"

struct fs_info;
struct sfuse;

struct sfuse_config {
	struct fs_info *fs;
	const char *mountpoint;
	const char *fsname; /* shown as the mount's source: the data device */
	bool allow_other;
	int max_threads;
	bool acl;     /* POSIX ACLs: the kernel enforces them, we store them */
	bool nosuid;  /* otherwise set-id bits take effect, as on a local filesystem */
	bool nodev;   /* otherwise device nodes open their devices */
	bool noexec;
};

int sfuse_create(const struct sfuse_config *cfg, struct sfuse **ret);
/* mount; after this the mount point shows the filesystem */
int sfuse_mount(struct sfuse *sf);
/* serve requests until the filesystem is unmounted or sfuse_exit is called */
int sfuse_loop(struct sfuse *sf);
/* make the loop return (a signal, a forced shutdown) */
void sfuse_exit(struct sfuse *sf);
/* detach the mount if it is still there, and free everything */
void sfuse_destroy(struct sfuse *sf);

/*
 * Once the kernel has initialized the mount (whose device number is dev), set its
 * readahead to kb KiB so that buffered reads arrive as large requests.  The kernel lowers a
 * bdi's readahead to what the FUSE INIT reply allows (128 KiB), so this is applied when the
 * first request after INIT arrives.
 */
void sfuse_set_readahead(struct sfuse *sf, uint64_t dev, unsigned int kb);

/* the fs layer's upcalls (see fs.h) */
void sfuse_flush_inodes(void *arg, uint64_t first, uint64_t last);
void sfuse_invalidate_inodes(void *arg, uint64_t first, uint64_t last, bool writers_only);
bool sfuse_inode_in_use(void *arg, uint64_t ino);
void sfuse_inodes_in_use(void *arg, uint64_t first, le64 *bits);

#endif
