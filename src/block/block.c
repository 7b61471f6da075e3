/*
 * block.c: the metadata block cache and copy-on-write.
 *
 * Every large metadata block is read through a reference {blkno, seq}.  The seq is a random
 * number chosen each time a block is written to a new location, so when a block number is
 * freed and reused, references to its previous life no longer match.  That is what lets a
 * mount walk btrees that other mounts are rewriting without any block-level locking: it
 * either reads exactly the block its root led to, or notices that the block moved on and
 * fetches newer roots.
 *
 * The cache maps block numbers to buffers.  Clean blocks with no users sit on an LRU and are
 * evicted beyond the size limit.  Dirty blocks belong to one writer -- the set of blocks a
 * transaction is building -- and stay pinned until the writer writes or forgets them.
 * A dirty block and a clean cached block can never share a number at the same time in a
 * correct filesystem: a number is dirtied only after it was allocated, which happens only
 * after the commit that freed it.  When it does happen (a reader holding a ref into an old
 * root), the newer block replaces the older one in the cache and readers of the old ref see
 * a mismatch, i.e. -ESTALE.
 *
 * One mutex protects the hash, the LRU, flags, refcounts and the writers' dirty lists.  Device
 * reads happen without it; two threads missing the same block both read, and the first to
 * insert wins.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "block/block.h"
#include "dev/dev.h"
#include "util/counters.h"
#include "util/crc32c.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(block_cache_hit);
COUNTER_DEFINE(block_cache_miss);
COUNTER_DEFINE(block_cache_evict);
COUNTER_DEFINE(block_cache_remove_stale);
COUNTER_DEFINE(block_read_stale);
COUNTER_DEFINE(block_dirty_cow);
COUNTER_DEFINE(block_write_blocks);
COUNTER_DEFINE(block_stale_corruption);

#define BLOCK_IN_CACHE (1U << 0)
#define BLOCK_DIRTY (1U << 1)
#define BLOCK_CRC_VALID (1U << 2)

#define HASH_BITS 14
#define HASH_SIZE (1U << HASH_BITS)
#define DEFAULT_MAX_BLOCKS 4096 /* 256 MiB of clean blocks */

struct block_cache {
	struct dev *dev;
	u64 fsid;
	size_t max_blocks;
	pthread_mutex_t mutex;
	struct block *hash[HASH_SIZE];
	size_t nr_cached;
	/* clean blocks with no users, oldest first */
	struct block *lru_head;
	struct block *lru_tail;
};

struct block_writer {
	struct block_cache *bc;
	struct block *dirty_head;
	u64 nr_dirty;
};

static inline unsigned int hash_blkno(u64 blkno)
{
	return (unsigned int)((blkno * 0x9e3779b97f4a7c15ULL) >> (64 - HASH_BITS));
}

int block_cache_create(struct dev *dev, u64 fsid, size_t max_blocks, struct block_cache **ret)
{
	struct block_cache *bc;

	bc = calloc(1, sizeof(*bc));
	if (!bc)
		return -ENOMEM;
	bc->dev = dev;
	bc->fsid = fsid;
	bc->max_blocks = max_blocks ? max_blocks : DEFAULT_MAX_BLOCKS;
	pthread_mutex_init(&bc->mutex, NULL);
	*ret = bc;
	return 0;
}

struct dev *block_cache_dev(struct block_cache *bc)
{
	return bc->dev;
}

u64 block_cache_fsid(struct block_cache *bc)
{
	return bc->fsid;
}

static struct block *block_alloc(u64 blkno)
{
	struct block *bl;

	bl = calloc(1, sizeof(*bl));
	if (!bl)
		return NULL;
	bl->data = dev_alloc_buf(SCOUTFS_BLOCK_LG_SIZE);
	if (!bl->data) {
		free(bl);
		return NULL;
	}
	bl->blkno = blkno;
	return bl;
}

static void block_free(struct block *bl)
{
	free(bl->data);
	free(bl);
}

/* ---- lru and hash, all under bc->mutex ---- */

static void lru_remove(struct block_cache *bc, struct block *bl)
{
	if (!bl->lru_prev && bc->lru_head != bl)
		return; /* not on the lru */
	if (bl->lru_prev)
		bl->lru_prev->lru_next = bl->lru_next;
	else
		bc->lru_head = bl->lru_next;
	if (bl->lru_next)
		bl->lru_next->lru_prev = bl->lru_prev;
	else
		bc->lru_tail = bl->lru_prev;
	bl->lru_prev = bl->lru_next = NULL;
}

static void lru_add_tail(struct block_cache *bc, struct block *bl)
{
	bl->lru_next = NULL;
	bl->lru_prev = bc->lru_tail;
	if (bc->lru_tail)
		bc->lru_tail->lru_next = bl;
	else
		bc->lru_head = bl;
	bc->lru_tail = bl;
}

static struct block *hash_find(struct block_cache *bc, u64 blkno)
{
	struct block *bl;

	for (bl = bc->hash[hash_blkno(blkno)]; bl; bl = bl->hash_next) {
		if (bl->blkno == blkno)
			return bl;
	}
	return NULL;
}

static void hash_remove(struct block_cache *bc, struct block *bl)
{
	struct block **pos;

	for (pos = &bc->hash[hash_blkno(bl->blkno)]; *pos; pos = &(*pos)->hash_next) {
		if (*pos == bl) {
			*pos = bl->hash_next;
			bl->hash_next = NULL;
			bl->flags &= ~BLOCK_IN_CACHE;
			bc->nr_cached--;
			lru_remove(bc, bl);
			return;
		}
	}
}

/* remove a block from the cache; it is freed now or when its last user puts it */
static void cache_remove(struct block_cache *bc, struct block *bl)
{
	hash_remove(bc, bl);
	if (__atomic_load_n(&bl->refcount, __ATOMIC_SEQ_CST) == 0)
		block_free(bl);
}

static void evict_excess(struct block_cache *bc)
{
	struct block *bl;

	while (bc->nr_cached > bc->max_blocks && (bl = bc->lru_head)) {
		counter_inc(block_cache_evict);
		cache_remove(bc, bl);
	}
}

/* insert a new block, replacing whatever older block had the number */
static void cache_insert(struct block_cache *bc, struct block *bl)
{
	struct block *old = hash_find(bc, bl->blkno);
	unsigned int h = hash_blkno(bl->blkno);

	if (old)
		cache_remove(bc, old);
	bl->hash_next = bc->hash[h];
	bc->hash[h] = bl;
	bl->flags |= BLOCK_IN_CACHE;
	bc->nr_cached++;
	evict_excess(bc);
}

void block_cache_drop_clean(struct block_cache *bc)
{
	struct block *bl;

	pthread_mutex_lock(&bc->mutex);
	while ((bl = bc->lru_head))
		cache_remove(bc, bl);
	pthread_mutex_unlock(&bc->mutex);
}

void block_cache_destroy(struct block_cache *bc)
{
	struct block *bl;
	unsigned int i;

	if (!bc)
		return;
	for (i = 0; i < HASH_SIZE; i++) {
		while ((bl = bc->hash[i])) {
			bc->hash[i] = bl->hash_next;
			block_free(bl);
		}
	}
	pthread_mutex_destroy(&bc->mutex);
	free(bc);
}

void block_get(struct block *bl)
{
	/* callers already hold a reference, so the count can't race to zero */
	__atomic_add_fetch(&bl->refcount, 1, __ATOMIC_SEQ_CST);
}

void block_put(struct block_cache *bc, struct block *bl)
{
	if (!bl)
		return;
	pthread_mutex_lock(&bc->mutex);
	if (__atomic_sub_fetch(&bl->refcount, 1, __ATOMIC_SEQ_CST) == 0) {
		if (!(bl->flags & BLOCK_IN_CACHE))
			block_free(bl);
		else if (!(bl->flags & BLOCK_DIRTY))
			lru_add_tail(bc, bl);
	}
	pthread_mutex_unlock(&bc->mutex);
}

/* ---- checksums ---- */

static u32 block_crc(const void *data, size_t size)
{
	return crc32c((const char *)data + sizeof(le32), size - sizeof(le32));
}

void block_set_crc(void *data, size_t size)
{
	struct scoutfs_block_header *hdr = data;

	hdr->crc = cpu_to_le32(block_crc(data, size));
}

bool block_crc_ok(const void *data, size_t size)
{
	const struct scoutfs_block_header *hdr = data;

	return le32_to_cpu(hdr->crc) == block_crc(data, size);
}

/* ---- reading ---- */

static bool block_matches(struct block_cache *bc, struct block *bl,
			  const struct scoutfs_block_ref *ref, u32 magic)
{
	struct scoutfs_block_header *hdr = bl->data;

	return le32_to_cpu(hdr->magic) == magic && le64_to_cpu(hdr->fsid) == bc->fsid &&
	       hdr->seq == ref->seq && hdr->blkno == ref->blkno;
}

static int read_from_dev(struct block_cache *bc, u64 blkno, struct block **ret)
{
	struct block *bl;
	int err;

	bl = block_alloc(blkno);
	if (!bl)
		return -ENOMEM;
	err = dev_read(bc->dev, bl->data, SCOUTFS_BLOCK_LG_SIZE, blkno << SCOUTFS_BLOCK_LG_SHIFT);
	if (err < 0) {
		block_free(bl);
		return err;
	}
	if (block_crc_ok(bl->data, SCOUTFS_BLOCK_LG_SIZE))
		bl->flags |= BLOCK_CRC_VALID;
	*ret = bl;
	return 0;
}

int block_read_ref(struct block_cache *bc, const struct scoutfs_block_ref *ref, u32 magic,
		   struct block **ret)
{
	u64 blkno = le64_to_cpu(ref->blkno);
	struct block *bl = NULL;
	struct block *found;
	int err;

	*ret = NULL;
	if (blkno < SCOUTFS_META_DEV_START_BLKNO ||
	    blkno >= (dev_size(bc->dev) >> SCOUTFS_BLOCK_LG_SHIFT)) {
		counter_inc(block_read_stale);
		return -ESTALE;
	}

	pthread_mutex_lock(&bc->mutex);
	found = hash_find(bc, blkno);
	if (found) {
		/* a dirty block has no crc yet; it is this process's own current version */
		if ((found->flags & (BLOCK_CRC_VALID | BLOCK_DIRTY)) &&
		    block_matches(bc, found, ref, magic)) {
			if (__atomic_fetch_add(&found->refcount, 1, __ATOMIC_SEQ_CST) == 0)
				lru_remove(bc, found);
			pthread_mutex_unlock(&bc->mutex);
			counter_inc(block_cache_hit);
			*ret = found;
			return 0;
		}
		/*
		 * A cached block that doesn't match: if it's clean it may be an old copy of a
		 * block another mount rewrote, so drop it and read the device once more.  A
		 * dirty block is this process's own newer use of the number: the ref is stale.
		 */
		if (found->flags & BLOCK_DIRTY) {
			pthread_mutex_unlock(&bc->mutex);
			counter_inc(block_read_stale);
			return -ESTALE;
		}
		counter_inc(block_cache_remove_stale);
		cache_remove(bc, found);
	}
	pthread_mutex_unlock(&bc->mutex);

	counter_inc(block_cache_miss);
	err = read_from_dev(bc, blkno, &bl);
	if (err < 0)
		return err;

	pthread_mutex_lock(&bc->mutex);
	found = hash_find(bc, blkno);
	if (found && (found->flags & BLOCK_DIRTY)) {
		/* raced with this process dirtying the number: our ref is stale */
		pthread_mutex_unlock(&bc->mutex);
		block_free(bl);
		counter_inc(block_read_stale);
		return -ESTALE;
	}
	cache_insert(bc, bl);
	if (!((bl->flags & BLOCK_CRC_VALID) && block_matches(bc, bl, ref, magic))) {
		/*
		 * The device's copy doesn't match either: the ref is stale.  The block stays
		 * cached (a newer ref may match it) but, clean and unused, it must be on the
		 * lru so it can be evicted or dropped like any other.
		 */
		lru_add_tail(bc, bl);
		pthread_mutex_unlock(&bc->mutex);
		counter_inc(block_read_stale);
		return -ESTALE;
	}
	__atomic_store_n(&bl->refcount, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&bc->mutex);
	*ret = bl;
	return 0;
}

int block_check_stale(void *prev, bool *have_prev, const void *cur, size_t len, int ret)
{
	if (ret != -ESTALE) {
		*have_prev = false;
		return ret;
	}
	if (*have_prev && memcmp(prev, cur, len) == 0) {
		counter_inc(block_stale_corruption);
		log_err("metadata block read through unchanged roots is still stale: corruption");
		*have_prev = false;
		return -EIO;
	}
	memcpy(prev, cur, len);
	*have_prev = true;
	return ret;
}

/* ---- writers ---- */

int block_writer_create(struct block_cache *bc, struct block_writer **ret)
{
	struct block_writer *wri;

	wri = calloc(1, sizeof(*wri));
	if (!wri)
		return -ENOMEM;
	wri->bc = bc;
	*ret = wri;
	return 0;
}

void block_writer_destroy(struct block_writer *wri)
{
	if (!wri)
		return;
	block_writer_forget(wri);
	free(wri);
}

struct block_cache *block_writer_cache(struct block_writer *wri)
{
	return wri->bc;
}

u64 block_writer_dirty_count(struct block_writer *wri)
{
	return __atomic_load_n(&wri->nr_dirty, __ATOMIC_RELAXED);
}

bool block_writer_has_dirty(struct block_writer *wri)
{
	return block_writer_dirty_count(wri) > 0;
}

bool block_is_dirty_in(struct block_writer *wri, struct block *bl)
{
	return (bl->flags & BLOCK_DIRTY) && bl->writer == wri;
}

static u64 fresh_seq(void)
{
	u64 seq;

	do {
		seq = random_u64();
	} while (seq == 0);
	return seq;
}

/* make a new dirty block at blkno owned by the writer, returned with a user reference */
static void add_dirty(struct block_writer *wri, struct block *bl, u32 magic)
{
	struct block_cache *bc = wri->bc;
	struct scoutfs_block_header *hdr = bl->data;

	hdr->magic = cpu_to_le32(magic);
	hdr->fsid = cpu_to_le64(bc->fsid);
	hdr->blkno = cpu_to_le64(bl->blkno);
	hdr->seq = cpu_to_le64(fresh_seq());

	pthread_mutex_lock(&bc->mutex);
	bl->flags = BLOCK_DIRTY;
	bl->writer = wri;
	bl->refcount = 2; /* the writer's and the caller's */
	bl->dirty_next = wri->dirty_head;
	wri->dirty_head = bl;
	__atomic_add_fetch(&wri->nr_dirty, 1, __ATOMIC_RELAXED);
	cache_insert(bc, bl);
	pthread_mutex_unlock(&bc->mutex);
}

int block_dirty_new(struct block_writer *wri, u64 blkno, u32 magic, struct scoutfs_block_ref *ref,
		    struct block **ret)
{
	struct block *bl;

	bl = block_alloc(blkno);
	if (!bl)
		return -ENOMEM;
	memset(bl->data, 0, SCOUTFS_BLOCK_LG_SIZE);
	add_dirty(wri, bl, magic);
	ref->blkno = block_hdr(bl)->blkno;
	ref->seq = block_hdr(bl)->seq;
	*ret = bl;
	return 0;
}

/* if the ref points at a block already dirty in this writer, return it */
static struct block *find_own_dirty(struct block_writer *wri, const struct scoutfs_block_ref *ref)
{
	struct block_cache *bc = wri->bc;
	struct block *bl;

	if (ref->blkno == 0)
		return NULL;
	pthread_mutex_lock(&bc->mutex);
	bl = hash_find(bc, le64_to_cpu(ref->blkno));
	if (bl && block_is_dirty_in(wri, bl) && block_hdr(bl)->seq == ref->seq)
		__atomic_add_fetch(&bl->refcount, 1, __ATOMIC_SEQ_CST);
	else
		bl = NULL;
	pthread_mutex_unlock(&bc->mutex);
	return bl;
}

int block_dirty_ref_at(struct block_writer *wri, struct scoutfs_block_ref *ref, u32 magic,
		       u64 new_blkno, bool *used, u64 *old_blkno, struct block **ret)
{
	struct block *old = NULL;
	struct block *bl;
	int err;

	*used = false;
	*old_blkno = 0;
	*ret = NULL;

	bl = find_own_dirty(wri, ref);
	if (bl) {
		*ret = bl;
		return 0;
	}

	if (ref->blkno) {
		err = block_read_ref(wri->bc, ref, magic, &old);
		if (err < 0)
			return err;
	}

	bl = block_alloc(new_blkno);
	if (!bl) {
		block_put(wri->bc, old);
		return -ENOMEM;
	}
	if (old) {
		memcpy(bl->data, old->data, SCOUTFS_BLOCK_LG_SIZE);
		*old_blkno = old->blkno;
		block_put(wri->bc, old);
		counter_inc(block_dirty_cow);
	} else {
		memset(bl->data, 0, SCOUTFS_BLOCK_LG_SIZE);
	}
	add_dirty(wri, bl, magic);
	ref->blkno = block_hdr(bl)->blkno;
	ref->seq = block_hdr(bl)->seq;
	*used = true;
	*ret = bl;
	return 0;
}

int block_dirty_ref(struct block_writer *wri, const struct block_allocator *alloc,
		    struct scoutfs_block_ref *ref, u32 magic, struct block **ret)
{
	u64 new_blkno;
	u64 old_blkno;
	bool used;
	int err;

	*ret = find_own_dirty(wri, ref);
	if (*ret)
		return 0;

	err = alloc->alloc_meta(alloc->arg, &new_blkno);
	if (err < 0)
		return err;

	err = block_dirty_ref_at(wri, ref, magic, new_blkno, &used, &old_blkno, ret);
	if (err < 0 || !used) {
		/* give the unused number back; it was never written */
		int ferr = alloc->free_meta(alloc->arg, new_blkno);

		return err < 0 ? err : ferr;
	}
	if (old_blkno) {
		err = alloc->free_meta(alloc->arg, old_blkno);
		if (err < 0) {
			block_put(wri->bc, *ret);
			*ret = NULL;
			return err;
		}
	}
	return 0;
}

static int cmp_block_ptr(const void *a, const void *b)
{
	const struct block *x = *(struct block *const *)a;
	const struct block *y = *(struct block *const *)b;

	return x->blkno < y->blkno ? -1 : x->blkno > y->blkno ? 1 : 0;
}

int block_writer_write(struct block_writer *wri)
{
	struct block_cache *bc = wri->bc;
	struct block **sorted;
	struct block *bl;
	u64 nr = wri->nr_dirty;
	u64 i;
	int err = 0;

	if (nr == 0)
		return 0;

	sorted = malloc(nr * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	i = 0;
	for (bl = wri->dirty_head; bl; bl = bl->dirty_next)
		sorted[i++] = bl;
	qsort(sorted, nr, sizeof(*sorted), cmp_block_ptr);

	for (i = 0; i < nr; i++) {
		bl = sorted[i];
		block_set_crc(bl->data, SCOUTFS_BLOCK_LG_SIZE);
		err = dev_write(bc->dev, bl->data, SCOUTFS_BLOCK_LG_SIZE,
				bl->blkno << SCOUTFS_BLOCK_LG_SHIFT);
		if (err < 0)
			goto out;
	}
	err = dev_flush(bc->dev);
	if (err < 0)
		goto out;
	counter_add(block_write_blocks, nr);

	/* written: the blocks become clean cached copies */
	pthread_mutex_lock(&bc->mutex);
	while ((bl = wri->dirty_head)) {
		wri->dirty_head = bl->dirty_next;
		bl->dirty_next = NULL;
		bl->writer = NULL;
		bl->flags = (bl->flags & BLOCK_IN_CACHE) | BLOCK_CRC_VALID;
		if (__atomic_sub_fetch(&bl->refcount, 1, __ATOMIC_SEQ_CST) == 0) {
			if (bl->flags & BLOCK_IN_CACHE)
				lru_add_tail(bc, bl);
			else
				block_free(bl);
		}
	}
	wri->nr_dirty = 0;
	evict_excess(bc);
	pthread_mutex_unlock(&bc->mutex);
out:
	free(sorted);
	return err;
}

void block_writer_forget(struct block_writer *wri)
{
	struct block_cache *bc = wri->bc;
	struct block *bl;

	pthread_mutex_lock(&bc->mutex);
	while ((bl = wri->dirty_head)) {
		wri->dirty_head = bl->dirty_next;
		bl->dirty_next = NULL;
		bl->writer = NULL;
		bl->flags &= ~BLOCK_DIRTY;
		if (bl->flags & BLOCK_IN_CACHE)
			hash_remove(bc, bl);
		if (__atomic_sub_fetch(&bl->refcount, 1, __ATOMIC_SEQ_CST) == 0)
			block_free(bl);
	}
	wri->nr_dirty = 0;
	pthread_mutex_unlock(&bc->mutex);
}

/* ---- small blocks ---- */

int block_sm_read(struct dev *dev, u64 blkno, u32 magic, u64 fsid, void *buf)
{
	struct scoutfs_block_header *hdr = buf;
	int err;

	err = dev_read(dev, buf, SCOUTFS_BLOCK_SM_SIZE, blkno << SCOUTFS_BLOCK_SM_SHIFT);
	if (err < 0)
		return err;
	if (!block_crc_ok(buf, SCOUTFS_BLOCK_SM_SIZE) || le32_to_cpu(hdr->magic) != magic ||
	    le64_to_cpu(hdr->blkno) != blkno || (fsid && le64_to_cpu(hdr->fsid) != fsid))
		return -EIO;
	return 0;
}

int block_sm_write(struct dev *dev, u64 blkno, u32 magic, u64 fsid, void *buf, size_t len)
{
	struct scoutfs_block_header *hdr = buf;

	if (len < SCOUTFS_BLOCK_SM_SIZE)
		memset((char *)buf + len, 0, SCOUTFS_BLOCK_SM_SIZE - len);
	hdr->magic = cpu_to_le32(magic);
	hdr->fsid = cpu_to_le64(fsid);
	hdr->blkno = cpu_to_le64(blkno);
	block_set_crc(buf, SCOUTFS_BLOCK_SM_SIZE);
	return dev_write(dev, buf, SCOUTFS_BLOCK_SM_SIZE, blkno << SCOUTFS_BLOCK_SM_SHIFT);
}
