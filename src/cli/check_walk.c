/*
 * check_walk.c: careful readers of metadata blocks for the offline tools.
 *
 * block_read_ref() verifies everything a reference promises (checksum, magic, fsid, block
 * number, seq) but only says -ESTALE when something doesn't match, which is all a mount
 * needs: it fetches newer roots and retries.  A tool reading a device at rest has no newer
 * roots, so a failed reference is damage, and the admin needs to know which kind; we read
 * the raw block again and compare it with the reference field by field.
 *
 * The btree walker is our own rather than btree_visit() because a checker needs more than
 * the blocks: it knows the key range each block must cover (its parent's key and the key
 * before it), checks the keys against it, can skip the part of a tree that is being freed,
 * and lets its caller refuse to enter a block already seen, so a corrupt tree whose parents
 * point at the same child many times is walked once instead of exponentially often.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "btree/btree.h"
#include "cli/check.h"
#include "dev/dev.h"
#include "util/crc32c.h"
#include "util/util.h"

const char *walk_magic_name(u32 magic)
{
	switch (magic) {
	case SCOUTFS_BLOCK_MAGIC_SUPER:
		return "super";
	case SCOUTFS_BLOCK_MAGIC_BTREE:
		return "btree";
	case SCOUTFS_BLOCK_MAGIC_BLOOM:
		return "bloom";
	case SCOUTFS_BLOCK_MAGIC_SRCH_BLOCK:
		return "srch";
	case SCOUTFS_BLOCK_MAGIC_SRCH_PARENT:
		return "srch parent";
	case SCOUTFS_BLOCK_MAGIC_ALLOC_LIST:
		return "alloc list";
	case SCOUTFS_BLOCK_MAGIC_QUORUM:
		return "quorum";
	default:
		return NULL;
	}
}

static bool all_zeros(const void *data, size_t len)
{
	const u64 *p = data;

	for (size_t i = 0; i < len / sizeof(u64); i++) {
		if (p[i])
			return false;
	}
	return true;
}

/* why a block doesn't match its reference, from a fresh read of the raw block */
static void diagnose_ref(struct block_cache *bc, const struct scoutfs_block_ref *ref, u32 magic,
                         int err, char *why, size_t why_len)
{
	struct dev *dev = block_cache_dev(bc);
	u64 blkno = le64_to_cpu(ref->blkno);
	u64 nr_blocks = dev_size(dev) >> SCOUTFS_BLOCK_LG_SHIFT;
	struct scoutfs_block_header *hdr;
	const char *name;
	void *buf;
	int ret;

	if (blkno < SCOUTFS_META_DEV_START_BLKNO || blkno >= nr_blocks) {
		snprintf(why, why_len, "block number %llu is outside the device's blocks %u-%llu",
		         (unsigned long long)blkno, SCOUTFS_META_DEV_START_BLKNO,
		         (unsigned long long)(nr_blocks ? nr_blocks - 1 : 0));
		return;
	}
	buf = dev_alloc_buf(SCOUTFS_BLOCK_LG_SIZE);
	if (!buf) {
		snprintf(why, why_len, "reading failed: %s", strerror(-err));
		return;
	}
	ret = dev_read(dev, buf, SCOUTFS_BLOCK_LG_SIZE, blkno << SCOUTFS_BLOCK_LG_SHIFT);
	hdr = buf;
	if (ret < 0) {
		snprintf(why, why_len, "read error: %s", strerror(-ret));
	} else if (all_zeros(buf, SCOUTFS_BLOCK_LG_SIZE)) {
		snprintf(why, why_len, "the block is all zeros (never written)");
	} else if (!block_crc_ok(buf, SCOUTFS_BLOCK_LG_SIZE)) {
		snprintf(why, why_len,
		         "bad checksum: the header has crc 0x%08x, the contents 0x%08x",
		         le32_to_cpu(hdr->crc),
		         crc32c((char *)buf + sizeof(le32), SCOUTFS_BLOCK_LG_SIZE - sizeof(le32)));
	} else if (le32_to_cpu(hdr->magic) != magic) {
		name = walk_magic_name(le32_to_cpu(hdr->magic));
		if (name)
			snprintf(why, why_len, "it is a %s block, not a %s block", name,
			         walk_magic_name(magic));
		else
			snprintf(why, why_len, "unknown magic 0x%08x, expected a %s block (0x%08x)",
			         le32_to_cpu(hdr->magic), walk_magic_name(magic), magic);
	} else if (le64_to_cpu(hdr->fsid) != block_cache_fsid(bc)) {
		snprintf(why, why_len, "it belongs to filesystem %016llx, not %016llx",
		         (unsigned long long)le64_to_cpu(hdr->fsid),
		         (unsigned long long)block_cache_fsid(bc));
	} else if (hdr->blkno != ref->blkno) {
		snprintf(why, why_len, "its header records block number %llu",
		         (unsigned long long)le64_to_cpu(hdr->blkno));
	} else if (hdr->seq != ref->seq) {
		snprintf(why, why_len,
		         "its seq is %016llx, the reference expects %016llx (stale reference: the "
		         "block was rewritten)",
		         (unsigned long long)le64_to_cpu(hdr->seq),
		         (unsigned long long)le64_to_cpu(ref->seq));
	} else {
		snprintf(why, why_len, "reading failed: %s", strerror(-err));
	}
	free(buf);
}

int walk_read_ref(struct block_cache *bc, const struct scoutfs_block_ref *ref, u32 magic,
                  struct block **bl, char *why, size_t why_len)
{
	int err;

	*bl = NULL;
	err = block_read_ref(bc, ref, magic, bl);
	if (err == -ENOMEM)
		return err;
	if (err < 0) {
		*bl = NULL;
		diagnose_ref(bc, ref, magic, err, why, why_len);
		return -EIO;
	}
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* btrees */

struct btree_walk {
	struct block_cache *bc;
	const struct walk_btree_ops *ops;
	void *arg;
	const struct scoutfs_key *skip_below;
};

static void walk_problem(struct btree_walk *bw, u64 blkno, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void walk_problem(struct btree_walk *bw, u64 blkno, const char *fmt, ...)
{
	char why[CHECK_WHY_LEN];
	va_list ap;

	if (!bw->ops->problem)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	bw->ops->problem(bw->arg, blkno, why);
}

static bool nonzero(const void *p, size_t len)
{
	const u8 *b = p;

	for (size_t i = 0; i < len; i++) {
		if (b[i])
			return true;
	}
	return false;
}

struct val_span {
	unsigned int off;
	unsigned int end;
	unsigned int item;
};

static int cmp_span(const void *a, const void *b)
{
	const struct val_span *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off ? 1 : 0;
}

/*
 * What btree_block_verify() leaves out: padding that must be zero (keys are hashed as raw
 * bytes), and values that overlap each other, which it can't see one item at a time.
 */
static void check_block_bytes(struct btree_walk *bw, u64 blkno,
                              const struct scoutfs_btree_block *bt)
{
	unsigned int nr = le16_to_cpu(bt->nr_items);
	struct val_span *spans;
	unsigned int nr_spans = 0;
	char ka[KEY_STR_LEN];

	if (nonzero(bt->__pad, sizeof(bt->__pad)))
		walk_problem(bw, blkno, "the block header's padding is not zero");
	for (unsigned int i = 0; i < nr; i++) {
		const struct scoutfs_btree_item *it = &bt->items[i];

		if (nonzero(it->key.__pad, sizeof(it->key.__pad)))
			walk_problem(bw, blkno, "item %u key %s has nonzero key padding", i,
			             key_str(&it->key, ka));
		if (!it->val_len && it->val_off)
			walk_problem(bw, blkno, "item %u key %s has no value but a value offset %u",
			             i, key_str(&it->key, ka), le16_to_cpu(it->val_off));
		if (nonzero(it->__pad, sizeof(it->__pad)))
			walk_problem(bw, blkno, "item %u key %s has nonzero item padding", i,
			             key_str(&it->key, ka));
	}

	spans = malloc(nr * sizeof(*spans) + 1);
	if (!spans)
		return;
	for (unsigned int i = 0; i < nr; i++) {
		unsigned int len = le16_to_cpu(bt->items[i].val_len);

		if (len) {
			spans[nr_spans].off = le16_to_cpu(bt->items[i].val_off);
			spans[nr_spans].end = spans[nr_spans].off + len;
			spans[nr_spans].item = i;
			nr_spans++;
		}
	}
	qsort(spans, nr_spans, sizeof(*spans), cmp_span);
	for (unsigned int i = 1; i < nr_spans; i++) {
		if (spans[i].off < spans[i - 1].end)
			walk_problem(bw, blkno, "the values of items %u and %u overlap",
			             spans[i - 1].item, spans[i].item);
	}
	free(spans);
}

/* lo is exclusive (NULL: no lower bound), hi inclusive */
static int walk_block(struct btree_walk *bw, const struct scoutfs_block_ref *ref, int level,
                      const struct scoutfs_key *lo, const struct scoutfs_key *hi)
{
	char why[CHECK_WHY_LEN];
	char vwhy[CHECK_WHY_LEN - 32];
	char ka[KEY_STR_LEN], kb[KEY_STR_LEN], kc[KEY_STR_LEN];
	const struct scoutfs_btree_block *bt;
	const struct scoutfs_btree_item *it;
	u64 blkno = le64_to_cpu(ref->blkno);
	struct block *bl;
	unsigned int nr, i;
	int ret;

	if (bw->skip_below && key_compare(hi, bw->skip_below) < 0)
		return 0;

	ret = walk_read_ref(bw->bc, ref, SCOUTFS_BLOCK_MAGIC_BTREE, &bl, why, sizeof(why));
	if (ret == -ENOMEM)
		return ret;
	if (ret == 0) {
		bt = bl->data;
		if (btree_block_verify(bt, vwhy, sizeof(vwhy)) < 0) {
			snprintf(why, sizeof(why), "invalid btree block: %s", vwhy);
			ret = -EIO;
		} else if (bt->level != level) {
			snprintf(why, sizeof(why),
			         "btree block has level %u, its parent expects %d", bt->level,
			         level);
			ret = -EIO;
		}
	}
	if (ret < 0) {
		block_put(bw->bc, bl);
		ret = bw->ops->block ? bw->ops->block(bw->arg, ref, level, NULL, why) : 0;
		return ret < 0 ? ret : 0;
	}

	ret = bw->ops->block ? bw->ops->block(bw->arg, ref, level, bt, NULL) : 0;
	if (ret != 0) {
		block_put(bw->bc, bl);
		return ret < 0 ? ret : 0;
	}

	nr = le16_to_cpu(bt->nr_items);
	for (i = 0; i < nr; i++) {
		it = &bt->items[i];
		if ((lo && key_compare(&it->key, lo) <= 0) || key_compare(&it->key, hi) > 0) {
			walk_problem(bw, blkno,
			             "item %u key %s is outside the block's key range (%s, %s]", i,
			             key_str(&it->key, ka), lo ? key_str(lo, kb) : "start",
			             key_str(hi, kc));
		}
	}
	check_block_bytes(bw, blkno, bt);
	if (level > 0 && nr > 0 && key_compare(&bt->items[nr - 1].key, hi) != 0) {
		walk_problem(bw, blkno,
		             "the last key %s of the parent block is not the end %s of its range",
		             key_str(&bt->items[nr - 1].key, ka), key_str(hi, kb));
	}

	ret = 0;
	for (i = 0; i < nr && ret >= 0; i++) {
		it = &bt->items[i];
		if (level > 0) {
			struct scoutfs_block_ref child;

			memcpy(&child, (const char *)bt + le16_to_cpu(it->val_off), sizeof(child));
			ret = walk_block(bw, &child, level - 1, i ? &bt->items[i - 1].key : lo,
			                 &it->key);
		} else if (bw->ops->item) {
			unsigned int len = le16_to_cpu(it->val_len);

			ret = bw->ops->item(
			        bw->arg, it,
			        len ? (const char *)bt + le16_to_cpu(it->val_off) : NULL, len);
		}
	}
	block_put(bw->bc, bl);
	return ret < 0 ? ret : 0;
}

int walk_btree(struct block_cache *bc, const struct scoutfs_btree_root *root,
               const struct scoutfs_key *skip_below, const struct walk_btree_ops *ops, void *arg)
{
	struct btree_walk bw = { .bc = bc, .ops = ops, .arg = arg, .skip_below = skip_below };
	struct scoutfs_key ones = key_ones();
	char why[CHECK_WHY_LEN];
	int ret;

	if (root->height == 0)
		return 0;
	if (skip_below && key_is_ones(skip_below))
		return 0;
	if (root->height > SCOUTFS_BTREE_MAX_HEIGHT) {
		snprintf(why, sizeof(why), "the root's height %u is above the maximum %u",
		         root->height, SCOUTFS_BTREE_MAX_HEIGHT);
		ret = ops->block ? ops->block(arg, &root->ref, root->height - 1, NULL, why) : 0;
		return ret < 0 ? ret : 0;
	}
	return walk_block(&bw, &root->ref, root->height - 1, NULL, &ones);
}

/*
 * Find the leaf of a tree that covers key.  Returns 0 with the leaf held and its key range
 * (*lo exclusive when *have_lo, *hi inclusive), or -EIO with why and the range of the block
 * that couldn't be used, or -ENOENT for an empty tree.
 */
int walk_descend(struct block_cache *bc, const struct scoutfs_btree_root *root,
                 const struct scoutfs_key *key, struct block **leaf, struct scoutfs_key *lo,
                 bool *have_lo, struct scoutfs_key *hi, char *why, size_t why_len)
{
	struct scoutfs_block_ref ref = root->ref;
	const struct scoutfs_btree_block *bt;
	char vwhy[CHECK_WHY_LEN];
	unsigned int nr, a, b, mid;
	struct block *bl;
	int level;
	int ret;

	*leaf = NULL;
	*have_lo = false;
	key_set_zeros(lo);
	key_set_ones(hi);
	if (root->height == 0)
		return -ENOENT;
	if (root->height > SCOUTFS_BTREE_MAX_HEIGHT) {
		snprintf(why, why_len, "the root's height %u is too large", root->height);
		return -EIO;
	}

	for (level = root->height - 1;; level--) {
		ret = walk_read_ref(bc, &ref, SCOUTFS_BLOCK_MAGIC_BTREE, &bl, why, why_len);
		if (ret < 0)
			return ret;
		bt = bl->data;
		if (btree_block_verify(bt, vwhy, sizeof(vwhy)) < 0) {
			snprintf(why, why_len, "block %llu: %s", (unsigned long long)bl->blkno,
			         vwhy);
			block_put(bc, bl);
			return -EIO;
		}
		if (bt->level != level) {
			snprintf(why, why_len, "block %llu has level %u, expected %d",
			         (unsigned long long)bl->blkno, bt->level, level);
			block_put(bc, bl);
			return -EIO;
		}
		if (level == 0) {
			*leaf = bl;
			return 0;
		}

		/* the first child whose key is >= key */
		nr = le16_to_cpu(bt->nr_items);
		a = 0;
		b = nr;
		while (a < b) {
			mid = a + (b - a) / 2;
			if (key_compare(&bt->items[mid].key, key) < 0)
				a = mid + 1;
			else
				b = mid;
		}
		if (a == nr) {
			snprintf(why, why_len, "no child of parent block %llu covers key",
			         (unsigned long long)bl->blkno);
			block_put(bc, bl);
			return -EIO;
		}
		/* keep the child's range inside the parent's, whatever the keys say */
		if (a > 0 && (!*have_lo || key_compare(&bt->items[a - 1].key, lo) > 0)) {
			*lo = bt->items[a - 1].key;
			*have_lo = true;
		}
		if (key_compare(&bt->items[a].key, hi) < 0)
			*hi = bt->items[a].key;
		memcpy(&ref, (const char *)bt + le16_to_cpu(bt->items[a].val_off), sizeof(ref));
		block_put(bc, bl);
	}
}

int walk_lookup(struct block_cache *bc, const struct scoutfs_btree_root *root,
                const struct scoutfs_key *key, struct scoutfs_btree_item *item, void *val,
                char *why, size_t why_len)
{
	const struct scoutfs_btree_block *bt;
	struct scoutfs_key lo, hi;
	struct block *bl;
	unsigned int a, b, mid, nr;
	bool have_lo;
	int ret;

	ret = walk_descend(bc, root, key, &bl, &lo, &have_lo, &hi, why, why_len);
	if (ret < 0)
		return ret;
	bt = bl->data;
	nr = le16_to_cpu(bt->nr_items);
	a = 0;
	b = nr;
	while (a < b) {
		mid = a + (b - a) / 2;
		if (key_compare(&bt->items[mid].key, key) < 0)
			a = mid + 1;
		else
			b = mid;
	}
	if (a < nr && key_compare(&bt->items[a].key, key) == 0) {
		*item = bt->items[a];
		if (val)
			memcpy(val, (const char *)bt + le16_to_cpu(item->val_off),
			       le16_to_cpu(item->val_len));
		ret = 0;
	} else {
		ret = -ENOENT;
	}
	block_put(bc, bl);
	return ret;
}

/* ---------------------------------------------------------------------------------------- */
/* alloc lists */

int walk_list(struct block_cache *bc, const struct scoutfs_alloc_list_head *head,
              const struct walk_list_ops *ops, void *arg, u64 *nr_blocks, u64 *nr_entries,
              u64 *first_nr)
{
	struct scoutfs_block_ref ref = head->ref;
	const struct scoutfs_alloc_list_block *lb;
	char why[CHECK_WHY_LEN];
	u64 limit = dev_size(block_cache_dev(bc)) >> SCOUTFS_BLOCK_LG_SHIFT;
	struct block *bl;
	u32 start, nr;
	int ret = 0;

	*nr_blocks = 0;
	*nr_entries = 0;
	*first_nr = 0;
	while (ref.blkno && limit--) {
		ret = walk_read_ref(bc, &ref, SCOUTFS_BLOCK_MAGIC_ALLOC_LIST, &bl, why,
		                    sizeof(why));
		if (ret == -ENOMEM)
			return ret;
		if (ret == 0) {
			lb = bl->data;
			start = le32_to_cpu(lb->start);
			nr = le32_to_cpu(lb->nr);
			if (start > SCOUTFS_ALLOC_LIST_MAX_BLOCKS ||
			    nr > SCOUTFS_ALLOC_LIST_MAX_BLOCKS ||
			    start + nr > SCOUTFS_ALLOC_LIST_MAX_BLOCKS) {
				snprintf(why, sizeof(why),
				         "list block entries start %u nr %u exceed its %zu slots",
				         start, nr, (size_t)SCOUTFS_ALLOC_LIST_MAX_BLOCKS);
				block_put(bc, bl);
				ret = -EIO;
			}
		}
		if (ret < 0) {
			ret = ops->block ? ops->block(arg, &ref, NULL, why) : 0;
			return ret < 0 ? ret : 0;
		}
		ret = ops->block ? ops->block(arg, &ref, lb, NULL) : 0;
		if (ret != 0) {
			block_put(bc, bl);
			return ret < 0 ? ret : 0;
		}
		if (*nr_blocks == 0)
			*first_nr = nr;
		(*nr_blocks)++;
		*nr_entries += nr;
		for (u32 i = 0; i < nr && ret >= 0 && ops->entry; i++)
			ret = ops->entry(arg, le64_to_cpu(lb->blknos[start + i]));
		ref = lb->next;
		block_put(bc, bl);
		if (ret < 0)
			return ret;
	}
	return 0;
}
