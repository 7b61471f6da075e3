/*
 * block.h: the block layer -- 64 KiB metadata blocks, verified references, copy-on-write.
 *
 * Owns: the cache of large metadata blocks of one device, reading blocks through
 * {blkno, seq} references with full verification, dirtying blocks by copy-on-write into
 * newly allocated locations, and writers (the dirty blocks of one transaction) that write
 * their blocks and a durability barrier in one step.  Also the small (4 KiB) super and
 * quorum blocks, which are the only blocks overwritten in place.
 *
 * Invariants:
 *  - A block reachable from a committed root is never modified: dirtying always moves the
 *    contents to a block number from the caller's allocator and frees the old number to it.
 *  - A read whose block does not match its reference (crc, magic, fsid, blkno, seq) returns
 *    -ESTALE: the reference may simply be out of date because the block was freed and reused
 *    after the root that led to it was read.  Callers fetch fresh roots and retry; the same
 *    roots failing twice is corruption (block_check_stale()).
 *  - A dirty block belongs to exactly one writer and is never evicted until written or
 *    forgotten.
 */
#ifndef SCOUTFS_BLOCK_H
#define SCOUTFS_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format/format.h"

struct dev;
struct block_cache;
struct block_writer;

struct block {
	u64 blkno;
	void *data; /* SCOUTFS_BLOCK_LG_SIZE bytes, starts with struct scoutfs_block_header */
	/* private to block.c */
	int refcount;
	unsigned int flags;
	struct block_writer *writer;
	struct block *hash_next;
	struct block *lru_prev;
	struct block *lru_next;
	struct block *dirty_next;
};

static inline struct scoutfs_block_header *block_hdr(struct block *bl)
{
	return bl->data;
}

/*
 * How the block layer gets and frees metadata block numbers while dirtying.  The alloc
 * layer provides these; the block layer only calls them.
 */
struct block_allocator {
	int (*alloc_meta)(void *arg, u64 *blkno);
	int (*free_meta)(void *arg, u64 blkno);
	void *arg;
};

/* max_blocks bounds the clean cached blocks; 0 picks a default */
int block_cache_create(struct dev *dev, u64 fsid, size_t max_blocks, struct block_cache **ret);
void block_cache_destroy(struct block_cache *bc);
struct dev *block_cache_dev(struct block_cache *bc);
u64 block_cache_fsid(struct block_cache *bc);
/* drop every clean unreferenced block (tests, and tools re-reading a device) */
void block_cache_drop_clean(struct block_cache *bc);

/* read and verify the block a ref points to; -ESTALE if it does not match the ref */
int block_read_ref(struct block_cache *bc, const struct scoutfs_block_ref *ref, u32 magic,
		   struct block **ret);
void block_get(struct block *bl);
void block_put(struct block_cache *bc, struct block *bl);

/*
 * If roots did not change since the last -ESTALE, the stale block is corruption: turn the
 * error into -EIO.  prev holds the roots used by the previous attempt (len bytes) and
 * have_prev says whether there was one; both are updated for the next attempt.
 */
int block_check_stale(void *prev, bool *have_prev, const void *cur, size_t len, int ret);

/* -------------------------------------------------------------------------------------- */
/* writers: the dirty blocks of one transaction */

int block_writer_create(struct block_cache *bc, struct block_writer **ret);
void block_writer_destroy(struct block_writer *wri); /* forgets any dirty blocks */
struct block_cache *block_writer_cache(struct block_writer *wri);
u64 block_writer_dirty_count(struct block_writer *wri);
bool block_writer_has_dirty(struct block_writer *wri);
bool block_is_dirty_in(struct block_writer *wri, struct block *bl);

/*
 * Make the block a ref points to writable in this writer.  If it is already dirty in the
 * writer it is returned as is.  Otherwise a new block number comes from alloc, the contents
 * are copied (or zeroed with a fresh header when the ref is empty), the old number is freed
 * to alloc, and the ref is updated to the new {blkno, seq}.
 */
int block_dirty_ref(struct block_writer *wri, const struct block_allocator *alloc,
		    struct scoutfs_block_ref *ref, u32 magic, struct block **ret);

/*
 * The same, with the new block number chosen by the caller and the old one handed back
 * instead of freed (the alloc layer dirties its own list blocks this way).  *used says
 * whether new_blkno was consumed; *old_blkno is 0 when nothing needs freeing.
 */
int block_dirty_ref_at(struct block_writer *wri, struct scoutfs_block_ref *ref, u32 magic,
		       u64 new_blkno, bool *used, u64 *old_blkno, struct block **ret);

/* a new zeroed block at a number the caller already owns (mkfs) */
int block_dirty_new(struct block_writer *wri, u64 blkno, u32 magic, struct scoutfs_block_ref *ref,
		    struct block **ret);

/* checksum and write every dirty block, then flush the device; on error all stay dirty */
int block_writer_write(struct block_writer *wri);
/* drop every dirty block without writing it */
void block_writer_forget(struct block_writer *wri);

/* -------------------------------------------------------------------------------------- */
/* small blocks overwritten in place: the super and the quorum blocks */

/* read and verify a small block; fsid 0 skips the fsid check */
int block_sm_read(struct dev *dev, u64 blkno, u32 magic, u64 fsid, void *buf);
/* set magic, fsid and blkno, zero the rest past len, checksum and write (no flush) */
int block_sm_write(struct dev *dev, u64 blkno, u32 magic, u64 fsid, void *buf, size_t len);

/* fill in a large block's crc (tools that write blocks directly) */
void block_set_crc(void *data, size_t size);
/* does the crc of a block of this size match? */
bool block_crc_ok(const void *data, size_t size);

#endif
