/*
 * btree.h: copy-on-write btrees of (key, value) items in 64 KiB metadata blocks.
 *
 * Owns: the layout of btree blocks (format.h struct scoutfs_btree_block), searching,
 * inserting, updating and deleting items, splitting and joining blocks, and bulk operations
 * used by commits (insert_list), forest reads (read_items), merges and tools (visit,
 * free_blocks).
 *
 * Every modification dirties the whole path from the root down with block_dirty_ref(), so a
 * modified tree never touches a block reachable from a committed root.  Roots are passed by
 * pointer and updated in place.  Callers serialize modifications of a given root; reads of
 * committed roots need no locking and may return -ESTALE (see block.h).
 *
 * Values are at most SCOUTFS_BTREE_MAX_VAL_LEN bytes.  Each item also carries a seq and
 * flags (DELETION, DELTA), used by log btrees and fs_root; other trees leave them zero.
 */
#ifndef SCOUTFS_BTREE_H
#define SCOUTFS_BTREE_H

#include <stdbool.h>
#include <stdint.h>

#include "block/block.h"
#include "format/format.h"

/* a found item; val points into a cached block that the ref keeps referenced */
struct btree_item_ref {
	struct scoutfs_key key;
	u64 seq;
	u8 flags;
	const void *val;
	unsigned int val_len;
	/* private */
	struct block_cache *bc;
	struct block *bl;
};

void btree_iref_put(struct btree_item_ref *iref);

/* -ENOENT if the key is not present */
int btree_lookup(struct block_cache *bc, const struct scoutfs_btree_root *root,
		 const struct scoutfs_key *key, struct btree_item_ref *iref);
/* the first item with a key >= key; -ENOENT past the last */
int btree_next(struct block_cache *bc, const struct scoutfs_btree_root *root,
	       const struct scoutfs_key *key, struct btree_item_ref *iref);
/* the last item with a key <= key; -ENOENT before the first */
int btree_prev(struct block_cache *bc, const struct scoutfs_btree_root *root,
	       const struct scoutfs_key *key, struct btree_item_ref *iref);

/* the writer and allocator every modification needs */
struct btree_txn {
	struct block_writer *wri;
	const struct block_allocator *alloc;
};

/* -EEXIST if present */
int btree_insert(const struct btree_txn *txn, struct scoutfs_btree_root *root,
		 const struct scoutfs_key *key, const void *val, unsigned int val_len);
/* -ENOENT if absent */
int btree_update(const struct btree_txn *txn, struct scoutfs_btree_root *root,
		 const struct scoutfs_key *key, const void *val, unsigned int val_len);
/* insert or update */
int btree_force(const struct btree_txn *txn, struct scoutfs_btree_root *root,
		const struct scoutfs_key *key, const void *val, unsigned int val_len);
/* -ENOENT if absent; deleting the last item frees the last block and zeroes the root */
int btree_delete(const struct btree_txn *txn, struct scoutfs_btree_root *root,
		 const struct scoutfs_key *key);
/* dirty the path to key so that a later update of a same-sized value cannot fail */
int btree_dirty(const struct btree_txn *txn, struct scoutfs_btree_root *root,
		const struct scoutfs_key *key);

/*
 * Combines two delta items that meet (an existing item and a new one with the DELTA flag).
 * Writes the combined value into dst (at most SCOUTFS_BTREE_MAX_VAL_LEN) and its length
 * into *dst_len; returns 0 to store it, 1 if the combination is null and the item should be
 * removed, or a negative errno.
 */
typedef int (*btree_delta_fn)(const void *old_val, unsigned int old_len, const void *new_val,
			      unsigned int new_len, void *dst, unsigned int *dst_len);

/* one item of a sorted list written into a log btree at commit */
struct btree_item_list {
	struct btree_item_list *next;
	struct scoutfs_key key;
	u64 seq;
	u8 flags;
	unsigned int val_len;
	u8 val[];
};

/*
 * Write every item of a key-sorted list into the tree, replacing any existing item with
 * the list item's value, seq and flags (deletion items are stored, not applied).  When both
 * items are deltas, delta_fn combines them.  Consecutive items in one leaf share a walk.
 */
int btree_insert_list(const struct btree_txn *txn, struct scoutfs_btree_root *root,
		      const struct btree_item_list *list, btree_delta_fn delta_fn);

typedef int (*btree_item_cb)(const struct scoutfs_key *key, u64 seq, u8 flags,
			     const void *val, unsigned int val_len, void *arg);

/*
 * Call cb for every item of the leaf that holds key whose key is within [*start, *end], in
 * key order, then narrow *start and *end to the part of that range the leaf covers: keys in
 * the narrowed range that cb did not see are not in the tree.  An empty tree calls nothing
 * and leaves the range whole.  A cb return other than 0 stops and is returned.
 */
int btree_read_items(struct block_cache *bc, const struct scoutfs_btree_root *root,
		     const struct scoutfs_key *key, struct scoutfs_key *start,
		     struct scoutfs_key *end, btree_item_cb cb, void *arg);

/*
 * Free the blocks of a tree that is no longer referenced, without reading its leaves.  The
 * work is bounded: it frees at most max_blocks and records where it stopped in *cursor
 * (start with zeros); the tree is entirely freed once *cursor is all ones (later calls
 * return 0).  Every call makes progress, so a budget smaller than the tree's height can be
 * exceeded by the parents freed together with a leaf.  The root must not be used
 * afterwards.  Returns the number of blocks freed.
 */
int btree_free_blocks(const struct btree_txn *txn, const struct scoutfs_btree_root *root,
		      struct scoutfs_key *cursor, u64 max_blocks);

/*
 * Visit every block and item of a tree for tools: block() for each block, parents before
 * their children, then item() for each leaf item.  Errors stop the walk unless the visitor
 * returns 0 (check reports and carries on).  Either callback may be NULL.
 */
struct btree_visit_ops {
	int (*block)(void *arg, const struct scoutfs_block_ref *ref, int level,
		     const struct scoutfs_btree_block *bt, int read_err);
	int (*item)(void *arg, const struct scoutfs_key *key, u64 seq, u8 flags, const void *val,
		    unsigned int val_len);
};

int btree_visit(struct block_cache *bc, const struct scoutfs_btree_root *root,
		const struct btree_visit_ops *ops, void *arg);

/*
 * The number of blocks in a tree, counted from its parents without reading leaves: how many
 * blocks rewriting all of it would take.
 */
int btree_count_blocks(struct block_cache *bc, const struct scoutfs_btree_root *root, u64 *nr);

/* verify the structure of one block read from disk: sorted keys, offsets in bounds */
int btree_block_verify(const struct scoutfs_btree_block *bt, char *why, size_t why_len);

#endif
