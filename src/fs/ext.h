/*
 * ext.h: maps of logical blocks to physical blocks, kept as merged extents.
 *
 * Owns: the rules that keep a file's extents canonical -- extents never overlap, and two
 * extents that are logically adjacent, carry the same flags and are either both unmapped or
 * physically contiguous are always merged into one -- and the one operation that changes a
 * map, fs_ext_set(), which gives a range of blocks a new mapping whatever extents covered
 * it before (splitting them at its edges) and merges the result with its neighbours.
 *
 * Where extents are stored is the caller's business: it passes a small table of operations
 * (look up, insert, remove), so the data layer keeps them as items and the unit tests in
 * memory.  An extent is {start, len, map, flags}: logical blocks [start, start + len) map
 * to physical blocks [map, map + len), or to nothing when map is 0.  Setting a range to map
 * 0 without flags removes it (a hole).
 */
#ifndef SCOUTFS_FS_EXT_H
#define SCOUTFS_FS_EXT_H

#include <stdbool.h>

#include "format/format.h"

struct fs_ext {
	u64 start; /* first logical block */
	u64 len;   /* blocks, at least 1 */
	u64 map;   /* physical block of start, 0 if unmapped */
	u8 flags;  /* SCOUTFS_EXTENT_FLAG_* */
};

struct fs_ext_ops {
	/* the stored extent with the lowest end >= blk; -ENOENT if there is none */
	int (*next)(void *arg, u64 blk, struct fs_ext *ext);
	/* store an extent (the range is free of extents) */
	int (*insert)(void *arg, const struct fs_ext *ext);
	/* remove a stored extent exactly as next() returned it */
	int (*remove)(void *arg, const struct fs_ext *ext);
};

static inline u64 fs_ext_end(const struct fs_ext *ext)
{
	return ext->start + ext->len - 1;
}

/* holds data written to its blocks (reads return them) */
static inline bool fs_ext_written(const struct fs_ext *ext)
{
	return ext->map &&
	       !(ext->flags & (SCOUTFS_EXTENT_FLAG_UNWRITTEN | SCOUTFS_EXTENT_FLAG_OFFLINE));
}

/* may ext and the extent right after it be one extent? */
bool fs_ext_can_merge(const struct fs_ext *left, const struct fs_ext *right);

/*
 * The extent that contains blk or else the first one after it; -ENOENT if none.  A wrapper
 * of ops->next that also checks what the store returned (-EIO for an impossible extent).
 */
int fs_ext_next(const struct fs_ext_ops *ops, void *arg, u64 blk, struct fs_ext *ext);

/*
 * Map logical blocks [start, start + len) to physical blocks from map (0: unmapped) with
 * flags, replacing whatever mapped them, and merge with the neighbours.  map 0 and flags 0
 * leaves a hole.  len must be at least 1 and the range must not wrap.
 */
int fs_ext_set(const struct fs_ext_ops *ops, void *arg, u64 start, u64 len, u64 map, u8 flags);

#endif
