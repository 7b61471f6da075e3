/*
 * check.h: what `scoutfs check` is made of, and the careful readers it shares with
 * `scoutfs print`.
 *
 * Nothing read from a device is trusted here.  Blocks are read through block_read_ref() and
 * verified before any field is used; when a read fails, the raw block is read again to say
 * exactly what is wrong with it.  Btrees are walked by our own walker, which knows the key
 * range every block must cover and never visits a block twice, so a corrupt tree can neither
 * send a reader out of bounds nor into an endless walk.
 *
 * The pieces:
 *  - check_bitmap.c: large sparse bitmaps (one bit per metadata or data block) that report
 *    the runs of bits that were already set when a range is set again;
 *  - check_walk.c: reading verified blocks, walking btrees and alloc lists (print uses these);
 *  - check_meta.c: the supers, quorum blocks and every metadata structure reachable from the
 *    super, marking the metadata blocks they use and the free blocks of both devices;
 *  - check_mview.c: the merged view of the items of fs_root and every log btree;
 *  - check_fs.c: the filesystem invariants checked on the merged view;
 *  - cmd_check.c: the command, its report and summary, and the block marks: blocks marked
 *    twice, and blocks of either device neither used nor free (leaked).
 */
#ifndef SCOUTFS_CLI_CHECK_H
#define SCOUTFS_CLI_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "block/block.h"
#include "format/key.h"

struct dev;

/* ---------------------------------------------------------------------------------------- */
/* sparse bitmaps (check_bitmap.c) */

struct cbitmap;

/* one run of bits: [start, start + len) */
typedef void (*cbm_run_fn)(void *arg, u64 start, u64 len);

int cbm_create(u64 nr_bits, struct cbitmap **ret);
void cbm_destroy(struct cbitmap *bm);
u64 cbm_nr_bits(const struct cbitmap *bm);
/*
 * Set the bits [start, start + len) (clipped to the bitmap), calling was_set (if not NULL)
 * for every run of them that was already set, adjacent runs coalesced.  -ENOMEM only.
 */
int cbm_set(struct cbitmap *bm, u64 start, u64 len, cbm_run_fn was_set, void *arg);
/* call fn for every run of set (set true) or clear bits within [start, start + len) */
void cbm_runs(const struct cbitmap *bm, u64 start, u64 len, bool set, cbm_run_fn fn, void *arg);
bool cbm_test(const struct cbitmap *bm, u64 bit);
/* the number of set bits */
u64 cbm_weight(const struct cbitmap *bm);

/* ---------------------------------------------------------------------------------------- */
/* verified reads and walks (check_walk.c) */

#define CHECK_WHY_LEN 256

/*
 * Read the block a ref points to with block_read_ref().  On failure, *bl is NULL and why
 * says precisely what is wrong: a block number outside the device, a read error, a bad
 * checksum, another block type, another filesystem, another block number or seq (a stale
 * or overwritten reference).
 */
int walk_read_ref(struct block_cache *bc, const struct scoutfs_block_ref *ref, u32 magic,
                  struct block **bl, char *why, size_t why_len);

/* a name for a block magic ("btree", "alloc list", ...) */
const char *walk_magic_name(u32 magic);

struct walk_btree_ops {
	/*
	 * Every block reached, parents before their children: ref, the level it must have,
	 * and the verified block, or NULL with why.  Return 0 to go on into the block's
	 * children or items, 1 to skip them (a block already seen), <0 to stop the walk.
	 */
	int (*block)(void *arg, const struct scoutfs_block_ref *ref, int level,
	             const struct scoutfs_btree_block *bt, const char *why);
	/* a structural problem found in a readable block (keys outside its range, ...) */
	void (*problem)(void *arg, u64 blkno, const char *why);
	/* every item of every usable leaf, in key order; <0 stops the walk */
	int (*item)(void *arg, const struct scoutfs_btree_item *item, const void *val,
	            unsigned int val_len);
};

/*
 * Walk every block and item of a btree.  Blocks that fail to read or verify are reported to
 * ops->block and not descended into; the rest of the tree is still walked.  When skip_below
 * is given, blocks whose whole key range is below it are not visited (a tree that is being
 * freed from its start, log_merge FREEING items); an all-ones skip_below visits nothing.
 * Returns 0 or the first negative return of a callback.
 */
int walk_btree(struct block_cache *bc, const struct scoutfs_btree_root *root,
               const struct scoutfs_key *skip_below, const struct walk_btree_ops *ops, void *arg);

/*
 * Find the leaf of a tree that covers key.  Returns 0 with the leaf held and the key range
 * it covers (*lo exclusive when *have_lo, *hi inclusive), -ENOENT for an empty tree, or -EIO
 * with why and the key range of the block that couldn't be used.
 */
int walk_descend(struct block_cache *bc, const struct scoutfs_btree_root *root,
                 const struct scoutfs_key *key, struct block **leaf, struct scoutfs_key *lo,
                 bool *have_lo, struct scoutfs_key *hi, char *why, size_t why_len);

/*
 * Look a key up in one tree: 0 with a copy of its item header and its value copied to val
 * (if not NULL; up to SCOUTFS_BTREE_MAX_VAL_LEN bytes), -ENOENT, or -EIO with why.
 */
int walk_lookup(struct block_cache *bc, const struct scoutfs_btree_root *root,
                const struct scoutfs_key *key, struct scoutfs_btree_item *item, void *val,
                char *why, size_t why_len);

struct walk_list_ops {
	/* each block of the list, or NULL with why; return 1 to stop here (seen), <0 to stop */
	int (*block)(void *arg, const struct scoutfs_block_ref *ref,
	             const struct scoutfs_alloc_list_block *lb, const char *why);
	/* every entry of a usable block */
	int (*entry)(void *arg, u64 blkno);
};

/*
 * Walk the blocks of an alloc list.  *nr_blocks and *nr_entries count what was found and
 * *first_nr is the entry count of the first block, for comparing with the head.
 */
int walk_list(struct block_cache *bc, const struct scoutfs_alloc_list_head *head,
              const struct walk_list_ops *ops, void *arg, u64 *nr_blocks, u64 *nr_entries,
              u64 *first_nr);

/* ---------------------------------------------------------------------------------------- */
/* the checker */

/* a list of block ranges [start, start + len) */
struct check_ranges {
	struct check_range {
		u64 start;
		u64 len;
	} * r;
	size_t nr;
	size_t alloced;
};

void check_ranges_add(struct check_ranges *cr, u64 start, u64 len);
/* sort and coalesce, for check_ranges_overlaps() */
void check_ranges_sort(struct check_ranges *cr);
/* call fn for each part of [start, start + len) inside a range of a sorted list */
void check_ranges_overlaps(const struct check_ranges *cr, u64 start, u64 len, cbm_run_fn fn,
                           void *arg);
void check_ranges_free(struct check_ranges *cr);

struct check {
	const char *meta_path;
	const char *data_path;
	struct dev *meta_dev;
	struct block_cache *bc;
	struct scoutfs_super_block *super; /* the metadata device's super */
	u64 fsid;
	u64 total_meta;
	u64 total_data;
	bool quiet;

	u64 nr_problems;
	u64 next_progress_ms;
	/*
	 * Walking again only to name the owners of blocks that were marked twice: problems
	 * and progress are not printed again, and nothing is marked.
	 */
	bool owner_mode;

	/* metadata blocks found used and free; data blocks referenced by files and free */
	struct cbitmap *meta_used;
	struct cbitmap *meta_free;
	struct cbitmap *data_used;
	struct cbitmap *data_free;
	/* blocks that were marked more than once, whose owners are named at the end */
	struct check_ranges meta_conflicts;
	struct check_ranges data_conflicts;

	/* the log trees, in (rid, nr) order, as found in logs_root */
	struct scoutfs_log_trees *lts;
	u64 nr_lts;
	u64 alloced_lts;
	bool logs_incomplete; /* logs_root could not be read entirely */
	s64 inode_count_deltas;

	/* counts for the summary */
	u64 nr_btree_blocks;
	u64 nr_list_blocks;
	u64 nr_other_blocks;
	u64 nr_items;
	u64 nr_inodes;
	u64 nr_dirs;
	u64 nr_regular;
	u64 nr_entries;
	u64 nr_extents;
	u64 nr_xattrs;
	u64 nr_unchecked_items;
};

/* report one problem: one line that says what, where and why */
void check_problem(struct check *chk, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* an informational line of the report (not a problem), unless quiet */
void check_note(struct check *chk, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* true every few seconds: time to print a periodic progress line */
bool check_progress_due(struct check *chk);

/* splitmix64's finalizer: every input bit flips every output bit, for hashing set members */
static inline u64 check_mix64(u64 x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* "blocks 10-19 (10 blocks)" or "block 10" */
const char *check_range_str(u64 start, u64 len, char *buf, size_t buf_len);

/*
 * Mark metadata or data blocks used or free for owner (a description of the structure that
 * holds them), reporting blocks outside the device and blocks marked twice.
 */
void check_mark_meta(struct check *chk, u64 start, u64 len, bool used, const char *owner);
void check_mark_data(struct check *chk, u64 start, u64 len, bool used, const char *owner);

/* check_meta.c: the supers, quorum blocks and every metadata structure */
int check_supers(struct check *chk);
void check_quorum(struct check *chk);
int check_meta_structures(struct check *chk);
/* walk the metadata structures again, naming the owners of blocks marked twice */
int check_meta_owners(struct check *chk);

/* check_fs.c: the filesystem items of the merged view */
int check_fs_items(struct check *chk);
int check_data_owners(struct check *chk);

/* ---------------------------------------------------------------------------------------- */
/* the merged view of fs items (check_mview.c) */

struct mview;

struct mview_item {
	struct scoutfs_key key;
	u64 seq;
	u8 flags;
	unsigned int val_len;
	const u8 *val; /* valid until the next mview_next() */
	int tree;      /* which tree the version came from: 0 is fs_root, then log trees */
};

/*
 * Stream the live items of [start, end] of fs_root and every log tree in key order: for each
 * key the version with the greatest seq (ties go to the earlier tree), and none for keys
 * whose winner is a deletion.  Trees or blocks that can't be read are reported (once) and
 * skipped, so the view may be incomplete but is always in order.
 */
int mview_open(struct check *chk, const struct scoutfs_key *start, const struct scoutfs_key *end,
               struct mview **ret);
/* 0 and the next item, -ENOENT at the end, or -ENOMEM */
int mview_next(struct mview *mv, struct mview_item *item);
void mview_close(struct mview *mv);
/* the name of tree i of the view ("fs_root", "log tree RID.NR") */
const char *mview_tree_name(struct check *chk, int tree, char *buf, size_t len);

/*
 * Look a key up in the merged view: 0 with its value copied into val (at most
 * SCOUTFS_BTREE_MAX_VAL_LEN bytes) and *val_len, -ENOENT if it doesn't exist.
 */
int mview_lookup(struct check *chk, const struct scoutfs_key *key, void *val,
                 unsigned int *val_len);

#endif
