/*
 * item.h: the mount's cache of filesystem items.
 *
 * Owns: every item this mount has read or written, the key ranges it knows completely (a
 * key inside a cached range that has no item does not exist), which items are dirty in the
 * open transaction, and writing those dirty items into the mount's log btree at commit.
 *
 * Rules:
 *  - Every access names the cluster lock that covers the key.  Reads need a mode that can
 *    read (READ, WRITE); writes need one that can write (WRITE, WRITE_ONLY) and a held
 *    transaction.  Under WRITE_ONLY nothing is read: force_create/force_delete write blindly
 *    and always leave a deletion item for a delete; create/update/delete, which must know
 *    whether the key exists, need WRITE.  A violation is a caller bug and aborts.
 *  - A missing range is read from the forest (fs_root and every log btree) with roots fetched
 *    after the lock was granted, so another mount's committed changes are always seen.
 *  - Results of a read never replace what is already cached: local changes and earlier reads
 *    of the same keys are at least as new.
 *  - Each modified item's seq is max(transaction seq, lock write_seq[, primary write_seq]).
 *  - An item that might exist in any persistent tree is deleted by writing a deletion item;
 *    one that was only ever in this transaction is simply forgotten.
 */
#ifndef SCOUTFS_ITEM_H
#define SCOUTFS_ITEM_H

#include <stdbool.h>
#include <stdint.h>

#include "block/block.h"
#include "btree/btree.h"
#include "format/format.h"

struct item_cache;
struct lock;

struct item_cache_ops {
	/* the server's current committed roots (GET_ROOTS) */
	int (*get_roots)(void *arg, struct scoutfs_net_roots *roots);
};

int item_cache_create(struct block_cache *bc, const struct item_cache_ops *ops, void *arg,
		      struct item_cache **ret);
void item_cache_destroy(struct item_cache *ic);

/* the open transaction's seq: the floor of every item seq written from now on */
void item_set_trans_seq(struct item_cache *ic, u64 seq);
/* a lock was granted or this mount committed: cached roots may predate what must be seen */
void item_roots_changed(struct item_cache *ic);

/*
 * Copy the value of key into val (at most val_len bytes) and return the item's full value
 * length, or -ENOENT.
 */
int item_lookup(struct item_cache *ic, struct lock *lock, const struct scoutfs_key *key, void *val,
		unsigned int val_len);
/* like item_lookup but the value must be exactly val_len bytes (-EIO otherwise) */
int item_lookup_exact(struct item_cache *ic, struct lock *lock, const struct scoutfs_key *key,
		      void *val, unsigned int val_len);
/*
 * The first item with key >= *key and <= last (both within the lock): *key is set to its
 * key, its value copied; returns its value length, or -ENOENT if there is none.
 */
int item_next(struct item_cache *ic, struct lock *lock, struct scoutfs_key *key,
	      const struct scoutfs_key *last, void *val, unsigned int val_len);
/* the last item with key <= *key and >= first */
int item_prev(struct item_cache *ic, struct lock *lock, struct scoutfs_key *key,
	      const struct scoutfs_key *first, void *val, unsigned int val_len);

/* -EEXIST if the key exists */
int item_create(struct item_cache *ic, struct lock *lock, const struct scoutfs_key *key,
		const void *val, unsigned int val_len);
/* -ENOENT if the key does not exist */
int item_update(struct item_cache *ic, struct lock *lock, const struct scoutfs_key *key,
		const void *val, unsigned int val_len);
/* -ENOENT if the key does not exist */
int item_delete(struct item_cache *ic, struct lock *lock, const struct scoutfs_key *key);
/* write without reading, under WRITE_ONLY (or WRITE); primary may be NULL (see item seqs) */
int item_create_force(struct item_cache *ic, struct lock *lock, struct lock *primary,
		      const struct scoutfs_key *key, const void *val, unsigned int val_len);
int item_delete_force(struct item_cache *ic, struct lock *lock, struct lock *primary,
		      const struct scoutfs_key *key);

/* ---- transactions ---- */

u64 item_dirty_count(struct item_cache *ic);
u64 item_dirty_bytes(struct item_cache *ic);
/* write every dirty item, in key order, into the log btree; *max_seq: the greatest seq */
int item_write_dirty(struct item_cache *ic, const struct btree_txn *txn,
		     struct scoutfs_btree_root *root, u64 *max_seq);
/* the commit is durable: dirty items become clean, deletions and blind writes are dropped */
void item_commit_done(struct item_cache *ic);

/* ---- lock invalidation ---- */

/* does the range hold dirty items (must be committed before the lock is given up)? */
bool item_range_dirty(struct item_cache *ic, const struct scoutfs_key *start,
		      const struct scoutfs_key *end);
/* forget every cached item and range in [start, end]; -EBUSY if any is dirty */
int item_invalidate(struct item_cache *ic, const struct scoutfs_key *start,
		    const struct scoutfs_key *end);
/* drop clean cached data to bound memory (keeps dirty items) */
void item_shrink(struct item_cache *ic, u64 target_bytes);
u64 item_cached_bytes(struct item_cache *ic);

#endif
