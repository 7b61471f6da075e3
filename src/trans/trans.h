/*
 * trans.h: the mount's transaction.
 *
 * Owns: the one open transaction of the mount -- its seq (from the server), its log_trees
 * (log btree root, metadata and data allocators, inode count delta), holding it while
 * filesystem operations change items, and committing it: file data made durable first, then
 * dirty items written into the log btree, every dirty metadata block written and flushed,
 * and finally the new log_trees sent to the server, which publishes it atomically.
 *
 * Rules:
 *  - Take cluster locks before holding the transaction, never while holding it: a lock
 *    invalidation may need a commit, and a commit waits for every holder to release.
 *  - Holders are excluded while a commit runs.  A commit step that fails is retried until it
 *    succeeds; nothing the failed attempt wrote is reachable from a committed root, so a
 *    failed or torn write never corrupts the filesystem.
 *  - Data blocks freed by a transaction are not reused until the server returns them after
 *    the commit; metadata blocks likewise (see alloc.h).
 */
#ifndef SCOUTFS_TRANS_H
#define SCOUTFS_TRANS_H

#include <stdbool.h>
#include <stdint.h>

#include "alloc/alloc.h"
#include "format/format.h"

struct trans_info;
struct client;
struct item_cache;
struct block_cache;
struct dev;

int trans_create(struct client *cl, struct item_cache *ic, struct block_cache *bc,
		 struct dev *data_dev, struct trans_info **ret);
/* open the first transaction (GET_LOG_TREES) and start the commit thread */
int trans_start(struct trans_info *ti);
/* commit what's dirty and stop: later holds fail with -ESHUTDOWN */
int trans_shutdown(struct trans_info *ti);
/* stop without writing anything (forced unmount) */
void trans_shutdown_forced(struct trans_info *ti);
void trans_destroy(struct trans_info *ti);

enum trans_hold_flags {
	/* the operation allocates (creates): refused with -ENOSPC when metadata is LOW */
	TRANS_HOLD_ALLOC = 1 << 0,
};

int trans_hold(struct trans_info *ti, int flags);
void trans_release(struct trans_info *ti);
/* the seq of the open transaction */
u64 trans_seq(struct trans_info *ti);

/* commit the open transaction if anything is dirty, and wait until it is durable */
int trans_sync(struct trans_info *ti);
/* commit soon without waiting */
void trans_sync_async(struct trans_info *ti);
/* if seq is the open transaction, commit it and wait (lock invalidation) */
int trans_sync_seq(struct trans_info *ti, u64 seq);

/* ---- data blocks, under a hold ---- */

/*
 * Allocate up to count contiguous data blocks, starting at goal if it is free.  -ENOSPC when
 * the device is full.
 */
int trans_alloc_data(struct trans_info *ti, u64 goal, u64 count, struct alloc_extent *ext);
/* free data blocks (reusable after this transaction commits and the server returns them) */
int trans_free_data(struct trans_info *ti, u64 start, u64 len);

/*
 * Free data blocks the open transaction has gained (freed) minus those it has used: what the
 * server's statfs, which sees the committed transaction, does not know yet.
 */
s64 trans_data_free_delta(struct trans_info *ti);

/* created minus deleted inodes, summed into the super by the server */
void trans_add_inode_count(struct trans_info *ti, s64 delta);

/* ---- tools ---- */

/* number of commits done and the last commit error (0 if it succeeded) */
u64 trans_commit_count(struct trans_info *ti);
int trans_last_error(struct trans_info *ti);

#endif
