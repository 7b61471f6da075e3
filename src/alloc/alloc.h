/*
 * alloc.h: the allocators of both devices.
 *
 * Owns: free-extent btrees (struct scoutfs_alloc_root: every free extent indexed by its end
 * block and by its size class), lists of free metadata block numbers (struct
 * scoutfs_alloc_list_head), and the per-transaction metadata allocator that copy-on-write
 * draws from.
 *
 * Invariants:
 *  - A transaction allocates metadata blocks only from its avail list and records frees
 *    only in its freed list, so dirtying a block never has to modify an extent btree (which
 *    would need more blocks, recursively).  The list blocks themselves are dirtied into
 *    blocks taken from the list they describe.
 *  - A block freed by a transaction is never allocated again by that transaction: freed
 *    lists become allocatable only after the server has moved them into an extent tree in a
 *    later commit.
 *  - Extent trees never hold overlapping extents; inserting an overlap is -EINVAL.
 */
#ifndef SCOUTFS_ALLOC_H
#define SCOUTFS_ALLOC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "block/block.h"
#include "btree/btree.h"
#include "format/format.h"

/* ------------------------------------------------------------------------------------- */
/* free-extent btrees */

struct alloc_extent {
	u64 start;
	u64 len;
};

/*
 * Allocate up to count contiguous blocks: the front of the largest free extent (so the
 * rest of a big extent stays big and recently freed small extents get time to coalesce).
 * -ENOSPC when the tree is empty.
 */
int alloc_ext_alloc(const struct btree_txn *txn, struct scoutfs_alloc_root *root, u64 count,
		    struct alloc_extent *ext);
/*
 * Allocate up to count blocks starting exactly at goal if goal is free (so a file's next
 * blocks follow its last ones), else like alloc_ext_alloc.
 */
int alloc_ext_alloc_goal(const struct btree_txn *txn, struct scoutfs_alloc_root *root, u64 goal,
			 u64 count, struct alloc_extent *ext);
/* free an extent, merging with its neighbours; -EINVAL if any block is already free */
int alloc_ext_insert(const struct btree_txn *txn, struct scoutfs_alloc_root *root, u64 start,
		     u64 len);
/* remove an exact range that must be entirely free (-ENOENT otherwise) */
int alloc_ext_remove(const struct btree_txn *txn, struct scoutfs_alloc_root *root, u64 start,
		     u64 len);
/*
 * Move up to total blocks from src to dst (largest extents first).  *moved returns how many
 * moved; -ENOSPC only if nothing could be moved and total > 0.
 */
int alloc_ext_move(const struct btree_txn *txn, struct scoutfs_alloc_root *dst,
		   struct scoutfs_alloc_root *src, u64 total, u64 *moved);
/* the free extent that contains or follows start; -ENOENT past the last */
int alloc_ext_next(struct block_cache *bc, const struct scoutfs_alloc_root *root, u64 start,
		   struct alloc_extent *ext);
/* size class used by the ORDER index: floor(log8(len)) */
int alloc_ext_order(u64 len);

/* ------------------------------------------------------------------------------------- */
/* the per-transaction metadata allocator */

struct alloc {
	pthread_mutex_t mutex;
	struct block_writer *wri;
	struct scoutfs_alloc_list_head avail;
	struct scoutfs_alloc_list_head freed;
	bool heads_dirty;	/* both head blocks are dirty in wri */
	struct block *avail_bl; /* the dirty head block of avail */
	struct block *freed_bl; /* the dirty head block of freed */
	u64 nr_alloced;
	u64 nr_freed;
	struct block_allocator ba; /* what the block and btree layers call */
};

/* start a transaction's allocator from persistent list heads */
void alloc_init(struct alloc *alloc, struct block_writer *wri,
		const struct scoutfs_alloc_list_head *avail,
		const struct scoutfs_alloc_list_head *freed);
/* drop block references and copy out the heads to store in the commit */
void alloc_finish(struct alloc *alloc, struct scoutfs_alloc_list_head *avail,
		  struct scoutfs_alloc_list_head *freed);

int alloc_meta(struct alloc *alloc, u64 *blkno);
int alloc_free_meta(struct alloc *alloc, u64 blkno);
/* fewer than nr blocks left to allocate, or room for fewer than nr more frees */
bool alloc_meta_low(struct alloc *alloc, u32 nr);
/* entries left in the avail list's first block (two become the list heads at first use) */
u32 alloc_meta_avail_nr(struct alloc *alloc);

static inline struct btree_txn alloc_txn(struct alloc *alloc)
{
	struct btree_txn txn = { .wri = alloc->wri, .alloc = &alloc->ba };

	return txn;
}

/* ------------------------------------------------------------------------------------- */
/* moving blocks between lists and extent trees (the server, with its own allocator) */

/* top up the list's first block from the tree until it holds target entries */
int alloc_fill_list(struct alloc *alloc, struct scoutfs_alloc_list_head *lhead,
		    struct scoutfs_alloc_root *root, u64 target);
/*
 * Move every entry of a list, and the list's own blocks, into an extent tree, leaving the
 * list empty.  At most max_blocks numbers (entries and list blocks) move per call; a list
 * block the budget ends in is rewritten (copy-on-write through alloc) without the moved
 * entries.  *done says whether the list is empty.
 */
int alloc_empty_list(struct alloc *alloc, struct scoutfs_alloc_root *root,
		     struct scoutfs_alloc_list_head *lhead, u64 max_blocks, bool *done);
/* append every block of src to dst and empty src */
int alloc_splice_list(struct alloc *alloc, struct scoutfs_alloc_list_head *dst,
		      struct scoutfs_alloc_list_head *src);

/* visit every block number in a list and the list's own blocks (tools, check) */
int alloc_list_visit(struct block_cache *bc, const struct scoutfs_alloc_list_head *lhead,
		     int (*list_block)(void *arg, u64 blkno, int err),
		     int (*entry)(void *arg, u64 blkno), void *arg);

#endif
