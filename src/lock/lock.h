/*
 * lock.h: the client side of cluster locks.
 *
 * Owns: the locks this mount holds -- fixed key ranges every mount computes identically,
 * granted by the server in modes NULL, READ, WRITE and WRITE_ONLY -- local users of each
 * mode, requests to the server (at most one in flight per lock), invalidation requests from
 * the server (queued per lock in arrival order and handled by one worker), recovery answers
 * for a new server, and the idle-lock limit.
 *
 * Rules callers rely on:
 *  - Items may be read only under a lock whose mode can read (READ, WRITE) and written only
 *    under one that can write (WRITE, WRITE_ONLY); WRITE_ONLY holders cannot read.
 *  - Locks are taken before a transaction is held, in this order: rename lock, inode locks
 *    by ascending inode number, orphan lock, index locks.  (lock_inodes sorts for you.)
 *  - Before a write-capable lock is given up or downgraded, the invalidate callback commits
 *    the transaction holding its dirty items; unless it is a WRITE->READ downgrade, it also
 *    drops every cached item and kernel cache under the range.  The answer to the server is
 *    sent only after the callback returns.
 *  - Incoming grants and invalidations for a lock are processed in the order the server sent
 *    them (the net layer delivers them in order on its receive thread; these entry points
 *    never block).  Any number of invalidations may queue behind one another, including a
 *    second one arriving right after the answer to the first, and duplicates after failover.
 */
#ifndef SCOUTFS_LOCK_H
#define SCOUTFS_LOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "format/format.h"
#include "format/key.h"

struct lock_info;

struct lock {
	struct scoutfs_key start;
	struct scoutfs_key end;
	/* the mode local users may use now */
	enum scoutfs_lock_mode mode;
	/* the previously granted mode while an invalidation runs, else NULL */
	enum scoutfs_lock_mode invalidating_mode;
	/* while the invalidation flushes kernel pages: the mode LOCK_KERNEL_PAGES users have */
	enum scoutfs_lock_mode flush_mode;
	/* a fresh server seq with every WRITE/WRITE_ONLY grant: a floor for item seqs */
	u64 write_seq;
	/* bumped every time the lock becomes readable again: cached state from older gens is stale */
	u64 refresh_gen;
	/* the transaction seq when a write-capable user last unlocked */
	u64 dirty_trans_seq;
	/* for upper layers: state they hang off the lock (item cache ranges, ...) */
	void *item_private;
	/* private to lock.c */
	struct lock_private *priv;
};

/* what lock.c needs from the rest of the mount */
struct lock_ops {
	/* send a LOCK request to the server; the grant arrives through lock_grant_response() */
	int (*send_request)(void *arg, const struct scoutfs_net_lock *nl);
	/* answer the server's invalidation request net_id with nl */
	int (*send_invalidate_response)(void *arg, u64 net_id, const struct scoutfs_net_lock *nl);
	/* answer the server's LOCK_RECOVER request net_id */
	int (*send_recover_response)(void *arg, u64 net_id, const struct scoutfs_net_lock_recover *nlr,
				     unsigned int len);
	/*
	 * Make the lock's range safe to give up: commit dirty items if the old mode could write
	 * and the lock dirtied the current transaction; unless old WRITE -> new READ, drop cached
	 * items and kernel caches in the range.  Runs on the invalidation worker; may block.
	 */
	int (*invalidate)(void *arg, struct lock *lock, enum scoutfs_lock_mode old_mode,
			  enum scoutfs_lock_mode new_mode);
	/* the seq of the open transaction (recorded at unlock of write-capable modes) */
	u64 (*trans_seq)(void *arg);
};

enum lock_flags {
	LOCK_NONBLOCK = 1 << 0, /* -EAGAIN unless already granted in a mode that satisfies */
	/*
	 * The caller holds kernel page locks (a page-cache read or write, or the writeback of
	 * dirty pages).  While the lock's invalidation flushes the kernel's pages (between
	 * lock_flush_begin and lock_flush_end) such a caller may use the mode being given up:
	 * the flush waits for its pages, so making it wait for the lock would deadlock.
	 */
	LOCK_KERNEL_PAGES = 1 << 1,
};

/* an optional way for a blocked lock wait to notice that its caller gave up (a signal) */
struct lock_waiter {
	bool (*interrupted)(void *arg);
	void *arg;
};

int lock_info_create(const struct lock_ops *ops, void *arg, u32 idle_count,
		     struct lock_info **ret);
/*
 * Stop: new lock calls fail with -ESHUTDOWN, waiters wake with it; invalidations keep being
 * answered (without calling invalidate) so other mounts can make progress.
 */
void lock_shutdown(struct lock_info *li);
/* free everything (after the connection to the server is gone) */
void lock_info_destroy(struct lock_info *li);
void lock_set_idle_count(struct lock_info *li, u32 idle_count);

/*
 * Get a lock on [start, end] in mode.  Ranges are fixed partitions (see the helpers below);
 * start identifies the lock.  Returns 0 with *ret held in mode until lock_unlock, -EAGAIN
 * with LOCK_NONBLOCK, -EINTR if the waiter was interrupted, -ESHUTDOWN after shutdown.
 */
int lock_key_range(struct lock_info *li, enum scoutfs_lock_mode mode, int flags,
		   const struct scoutfs_key *start, const struct scoutfs_key *end,
		   const struct lock_waiter *waiter, struct lock **ret);
void lock_unlock(struct lock_info *li, struct lock *lock, enum scoutfs_lock_mode mode);

/*
 * Bracket the invalidate callback's flush of the kernel's pages under the lock: meanwhile
 * LOCK_KERNEL_PAGES callers may use the mode being given up, and lock_flush_end waits until
 * they are done, so nothing they dirtied escapes the commit that follows.
 */
void lock_flush_begin(struct lock_info *li, struct lock *lock);
void lock_flush_end(struct lock_info *li, struct lock *lock);

/* does the lock's currently usable mode allow reading / writing items in its range? */
bool lock_can_read(enum scoutfs_lock_mode mode);
bool lock_can_write(enum scoutfs_lock_mode mode);
bool lock_covers(const struct lock *lock, const struct scoutfs_key *key);
/* is the lock held by the caller in a mode that allows the access (for item asserts) */
bool lock_mode_allows_read(const struct lock *lock);
bool lock_mode_allows_write(const struct lock *lock);

/* ---- entry points for messages from the server (net receive thread; never block) ---- */

/* the response to our LOCK request */
void lock_grant_response(struct lock_info *li, const struct scoutfs_net_lock *nl, int error);
/* a LOCK request from the server: invalidate to nl->new_mode, then answer net_id */
int lock_invalidate_request(struct lock_info *li, u64 net_id, const struct scoutfs_net_lock *nl);
/* LOCK_RECOVER from a new server: answer with our locks at or after start */
int lock_recover_request(struct lock_info *li, u64 net_id, const struct scoutfs_key *start);
/* the connection moved to a new server: resent requests must not be counted twice */
void lock_new_server(struct lock_info *li);

/* ---- the fixed lock ranges ---- */

/* FS zone items of 1024 consecutive inodes (inode, xattrs, dirents, extents, ...) */
void lock_inode_range(u64 ino, struct scoutfs_key *start, struct scoutfs_key *end);
/* 1024 consecutive seq values of one inode index type */
void lock_index_range(u8 type, u64 seq, struct scoutfs_key *start, struct scoutfs_key *end);
/* the whole orphan zone */
void lock_orphan_range(struct scoutfs_key *start, struct scoutfs_key *end);
/* the global lock that serializes cross-directory renames */
void lock_rename_range(struct scoutfs_key *start, struct scoutfs_key *end);
/* whole zones of the xattr tags and quota rules */
void lock_zone_range(u8 zone, struct scoutfs_key *start, struct scoutfs_key *end);

/* convenience wrappers */
int lock_inode(struct lock_info *li, u64 ino, enum scoutfs_lock_mode mode, int flags,
	       const struct lock_waiter *waiter, struct lock **ret);
/*
 * Lock up to 4 inodes in ascending order (duplicates and zeros skipped); rets[i] matches
 * inos[i] (the same lock for inodes in one group).  On error nothing is held.
 */
int lock_inodes(struct lock_info *li, const u64 *inos, int nr, enum scoutfs_lock_mode mode,
		const struct lock_waiter *waiter, struct lock **rets);
void lock_unlock_inodes(struct lock_info *li, struct lock **locks, int nr,
			enum scoutfs_lock_mode mode);

/* debugging: one line per lock ("start mode users..."), into buf; returns bytes */
int lock_describe(struct lock_info *li, char *buf, unsigned int len);
/* ask for every idle lock to be given up (tests: force lock traffic) */
void lock_purge_idle(struct lock_info *li);

#endif
