/*
 * forest.h: reading items from the forest of btrees -- fs_root plus every mount's log btree.
 *
 * Owns: the merge rule that turns many trees into one view of the items: for each key the
 * version with the greatest item seq wins (ties go to the tree read first, fs_root), and a
 * winning deletion item means the key does not exist.  Reads are narrowed to the key range
 * every tree's visited leaf covers, so a caller knows exactly which keys it has seen.
 */
#ifndef SCOUTFS_FOREST_H
#define SCOUTFS_FOREST_H

#include "block/block.h"
#include "btree/btree.h"
#include "format/format.h"

/*
 * Read the items around key in [*start, *end] from every tree in roots.  *start and *end
 * are narrowed to the range every visited leaf covers; cb is then called, in key order, for
 * each live (non-deleted) winning item inside the narrowed range.  Keys in the narrowed
 * range that cb does not see do not exist.  -ESTALE means a block changed under us: fetch
 * newer roots and retry.
 */
int forest_read_items(struct block_cache *bc, const struct scoutfs_net_roots *roots,
		      const struct scoutfs_key *key, struct scoutfs_key *start,
		      struct scoutfs_key *end, btree_item_cb cb, void *arg);

/* call cb for every log_trees item in logs_root, in (rid, nr) order */
int forest_for_each_log_tree(struct block_cache *bc, const struct scoutfs_btree_root *logs_root,
			     int (*cb)(void *arg, const struct scoutfs_log_trees *lt), void *arg);

#endif
