/*
 * check_meta.c: the super blocks, the quorum blocks, and every metadata structure reachable
 * from the super, with the accounting of metadata blocks and of free data blocks.
 *
 * Every metadata block past the reserved head of the device must be exactly one of:
 *  - used: a block of a btree (fs_root, logs_root, log_merge, mounted_clients, srch_root,
 *    the allocators' extent trees, every log tree's item btree and data allocator trees, the
 *    part of a merged log tree that log_merge still has to free), a bloom block, or a block
 *    of an alloc list;
 *  - free: inside an extent of meta_alloc[0] or [1], or an entry of an alloc list (the
 *    server's avail and freed lists, and every log tree's meta_avail and meta_freed).
 * The walk marks each block in one of two bitmaps and the bitmaps report every block marked a
 * second time; what is in neither at the end has leaked.  Free data blocks are marked the
 * same way from data_alloc and the log trees' data_avail and data_freed; check_fs.c adds the
 * blocks that files reference.
 *
 * A block marked twice is reported when it's found, with the structure that found it second;
 * once everything is walked, check_meta_owners() walks again to name every structure that
 * holds such a block.
 *
 * Free-extent trees index every extent twice (by end block and by size class).  Rather than
 * keeping every extent to match the two indexes, we add up a hash of each index's extents
 * and only look the twins up, item by item, when the sums differ.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/alloc.h"
#include "block/super.h"
#include "cli/check.h"
#include "dev/dev.h"
#include "quorum/quorum.h"
#include "util/util.h"

/* what a walk of one tree or list is for */
enum tree_kind {
	TREE_FS_ROOT = 0,
	TREE_LOG_ITEMS,
	TREE_LOGS,
	TREE_LOG_MERGE,
	TREE_FREEING,
	TREE_CLIENTS,
	TREE_SRCH,
	TREE_META_EXTENTS,
	TREE_DATA_EXTENTS,
};

struct tree_walk {
	struct check *chk;
	enum tree_kind kind;
	char name[96];
	const struct scoutfs_log_trees *lt; /* the log tree of TREE_LOG_ITEMS */
	bool broken;                        /* a block couldn't be used */
	u64 nr_items;

	/* free extent trees */
	u64 nr_blkno;
	u64 nr_order;
	u64 sum_len;
	u64 fp_blkno;
	u64 fp_order;
	bool have_prev;
	u64 prev_end;

	/* log_merge: the trees being freed */
	struct scoutfs_log_merge_freeing *freeing;
	size_t nr_freeing;
	/* srch_root */
	u64 nr_srch;
};

static u64 ext_hash(u64 end, u64 len)
{
	return check_mix64(end ^ check_mix64(len + 0x9e3779b97f4a7c15ULL));
}

static const char *kstr(const struct scoutfs_key *key, char *buf)
{
	return key_str(key, buf);
}

/* ---------------------------------------------------------------------------------------- */
/* supers and quorum blocks */

int check_supers(struct check *chk)
{
	struct scoutfs_super_block *super;
	struct super_pair sp;
	struct dev *data = NULL;
	char why[CHECK_WHY_LEN];
	u64 dev_blocks, set_bits;
	int ret;

	ret = super_open_pair(chk->meta_path, chk->data_path, true, &sp, why, sizeof(why));
	if (ret < 0)
		check_problem(chk, "super blocks: %s", why);
	else
		super_close_pair(&sp);

	ret = dev_open(chk->meta_path, DEV_RDONLY | DEV_BUFFERED, &chk->meta_dev);
	if (ret < 0) {
		check_problem(chk, "cannot open the metadata device %s: %s", chk->meta_path,
		              strerror(-ret));
		return ret;
	}
	chk->super = super = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);
	if (!super)
		return -ENOMEM;
	memset(super, 0, SCOUTFS_BLOCK_SM_SIZE);
	ret = super_read(chk->meta_dev, 0, super, why, sizeof(why));
	if (ret < 0) {
		/* a super with a bad checksum may still lead somewhere: go on if it's a super */
		if (le32_to_cpu(super->hdr.magic) != SCOUTFS_BLOCK_MAGIC_SUPER) {
			check_problem(chk, "metadata super block (block %u): %s",
			              SCOUTFS_SUPER_BLKNO, why);
			return ret;
		}
		check_problem(chk,
		              "metadata super block (block %u): %s; checking on with its contents",
		              SCOUTFS_SUPER_BLKNO, why);
	}
	if (!(le64_to_cpu(super->flags) & SCOUTFS_FLAG_IS_META_BDEV)) {
		check_problem(chk,
		              "%s is not a metadata device: its super block doesn't have the "
		              "metadata device flag",
		              chk->meta_path);
		return -EINVAL;
	}
	if (le64_to_cpu(super->flags) & ~SCOUTFS_FLAG_IS_META_BDEV)
		check_problem(chk, "metadata super block: unknown flags 0x%llx",
		              (unsigned long long)(le64_to_cpu(super->flags) &
		                                   ~SCOUTFS_FLAG_IS_META_BDEV));

	chk->fsid = le64_to_cpu(super->hdr.fsid);
	chk->total_meta = le64_to_cpu(super->total_meta_blocks);
	chk->total_data = le64_to_cpu(super->total_data_blocks);

	dev_blocks = dev_size(chk->meta_dev) >> SCOUTFS_BLOCK_LG_SHIFT;
	if (chk->total_meta > dev_blocks) {
		check_problem(chk,
		              "metadata super block: total_meta_blocks %llu exceeds the device's "
		              "%llu blocks",
		              (unsigned long long)chk->total_meta, (unsigned long long)dev_blocks);
		chk->total_meta = dev_blocks;
	}
	if (chk->total_meta <= SCOUTFS_META_DEV_START_BLKNO)
		check_problem(
		        chk,
		        "metadata super block: total_meta_blocks %llu leaves no metadata blocks",
		        (unsigned long long)chk->total_meta);

	ret = dev_open(chk->data_path, DEV_RDONLY | DEV_BUFFERED, &data);
	if (ret == 0) {
		dev_blocks = dev_size(data) >> SCOUTFS_BLOCK_SM_SHIFT;
		dev_close(data);
	} else {
		check_problem(chk, "cannot open the data device %s: %s", chk->data_path,
		              strerror(-ret));
		dev_blocks = 1ULL << 40;
	}
	if (chk->total_data > dev_blocks) {
		check_problem(chk,
		              "metadata super block: total_data_blocks %llu exceeds the data "
		              "device's %llu blocks",
		              (unsigned long long)chk->total_data, (unsigned long long)dev_blocks);
		chk->total_data = dev_blocks;
	}
	if (chk->total_data <= SCOUTFS_DATA_DEV_START_BLKNO)
		check_problem(chk,
		              "metadata super block: total_data_blocks %llu leaves no data blocks",
		              (unsigned long long)chk->total_data);

	if (le64_to_cpu(super->next_ino) < SCOUTFS_FIRST_INO)
		check_problem(
		        chk,
		        "metadata super block: next_ino %llu is below the first inode number %llu",
		        (unsigned long long)le64_to_cpu(super->next_ino), SCOUTFS_FIRST_INO);
	if (le64_to_cpu(super->seq) == 0)
		check_problem(chk, "metadata super block: seq is 0");
	if (quorum_config_verify(&super->qconf, why, sizeof(why)) < 0)
		check_problem(chk, "metadata super block: quorum config: %s", why);
	set_bits = le64_to_cpu(super->volopt.set_bits);
	if (set_bits & SCOUTFS_VOLOPT_EXPANSION_BITS)
		check_problem(chk, "metadata super block: unknown volume options are set (0x%llx)",
		              (unsigned long long)(set_bits & SCOUTFS_VOLOPT_EXPANSION_BITS));
	if ((set_bits & SCOUTFS_VOLOPT_DATA_ALLOC_ZONE_BLOCKS_BIT) &&
	    (le64_to_cpu(super->volopt.data_alloc_zone_blocks) == 0 ||
	     le64_to_cpu(super->volopt.data_alloc_zone_blocks) > chk->total_data))
		check_problem(
		        chk, "metadata super block: data_alloc_zone_blocks %llu is invalid",
		        (unsigned long long)le64_to_cpu(super->volopt.data_alloc_zone_blocks));

	ret = block_cache_create(chk->meta_dev, chk->fsid, 1024, &chk->bc);
	if (ret < 0)
		return ret;
	ret = cbm_create(chk->total_meta, &chk->meta_used);
	if (ret == 0)
		ret = cbm_create(chk->total_meta, &chk->meta_free);
	if (ret == 0)
		ret = cbm_create(chk->total_data, &chk->data_used);
	if (ret == 0)
		ret = cbm_create(chk->total_data, &chk->data_free);
	return ret;
}

void check_quorum(struct check *chk)
{
	struct scoutfs_quorum_block *qb;
	u64 blkno;
	int ret;

	qb = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);
	if (!qb) {
		check_problem(chk, "quorum blocks: out of memory");
		return;
	}
	for (int i = 0; i < SCOUTFS_QUORUM_MAX_SLOTS; i++) {
		blkno = SCOUTFS_QUORUM_BLKNO + i;
		ret = dev_read(chk->meta_dev, qb, SCOUTFS_BLOCK_SM_SIZE,
		               blkno << SCOUTFS_BLOCK_SM_SHIFT);
		if (ret < 0) {
			check_problem(chk, "quorum block of slot %d (block %llu): read error: %s",
			              i, (unsigned long long)blkno, strerror(-ret));
			continue;
		}
		if (!block_crc_ok(qb, SCOUTFS_BLOCK_SM_SIZE)) {
			check_problem(chk, "quorum block of slot %d (block %llu): bad checksum", i,
			              (unsigned long long)blkno);
			continue;
		}
		if (le32_to_cpu(qb->hdr.magic) != SCOUTFS_BLOCK_MAGIC_QUORUM)
			check_problem(chk,
			              "quorum block of slot %d (block %llu): magic 0x%08x is not a "
			              "quorum block's",
			              i, (unsigned long long)blkno, le32_to_cpu(qb->hdr.magic));
		if (le64_to_cpu(qb->hdr.fsid) != chk->fsid)
			check_problem(chk,
			              "quorum block of slot %d (block %llu): fsid %016llx is not "
			              "the filesystem's %016llx",
			              i, (unsigned long long)blkno,
			              (unsigned long long)le64_to_cpu(qb->hdr.fsid),
			              (unsigned long long)chk->fsid);
		if (le64_to_cpu(qb->hdr.blkno) != blkno)
			check_problem(chk,
			              "quorum block of slot %d (block %llu): its header records "
			              "block %llu",
			              i, (unsigned long long)blkno,
			              (unsigned long long)le64_to_cpu(qb->hdr.blkno));
		for (int e = 0; e < SCOUTFS_QUORUM_EVENT_NR; e++) {
			if (le64_to_cpu(qb->events[e].write_nr) > le64_to_cpu(qb->write_nr))
				check_problem(
				        chk,
				        "quorum block of slot %d (block %llu): event %d has "
				        "write_nr %llu, after the block's %llu",
				        i, (unsigned long long)blkno, e,
				        (unsigned long long)le64_to_cpu(qb->events[e].write_nr),
				        (unsigned long long)le64_to_cpu(qb->write_nr));
		}
	}
	free(qb);
}

/* ---------------------------------------------------------------------------------------- */
/* blocks */

/*
 * Is this the first time the walk reaches the block?  A block reached again (a loop, or
 * two structures sharing it) is not walked again.  The owner walk has its own record.
 */
static bool first_visit(struct check *chk, u64 blkno, struct cbitmap *owner_seen)
{
	if (blkno >= chk->total_meta)
		return true;
	if (chk->owner_mode) {
		bool seen = owner_seen && cbm_test(owner_seen, blkno);

		if (owner_seen)
			cbm_set(owner_seen, blkno, 1, NULL, NULL);
		return !seen;
	}
	return !cbm_test(chk->meta_used, blkno);
}

static struct cbitmap *owner_seen;

static int tree_block(void *arg, const struct scoutfs_block_ref *ref, int level,
                      const struct scoutfs_btree_block *bt, const char *why)
{
	struct tree_walk *tw = arg;
	struct check *chk = tw->chk;
	u64 blkno = le64_to_cpu(ref->blkno);
	char owner[160];
	bool first;

	snprintf(owner, sizeof(owner), "%s (btree level %d)", tw->name, level);
	if (!bt) {
		tw->broken = true;
		check_problem(chk, "%s: btree block %llu (level %d): %s", tw->name,
		              (unsigned long long)blkno, level, why);
		if (blkno >= SCOUTFS_META_DEV_START_BLKNO && blkno < chk->total_meta &&
		    first_visit(chk, blkno, owner_seen))
			check_mark_meta(chk, blkno, 1, true, owner);
		return 1;
	}
	first = first_visit(chk, blkno, owner_seen);
	check_mark_meta(chk, blkno, 1, true, owner);
	if (!first)
		return 1;
	if (!chk->owner_mode) {
		chk->nr_btree_blocks++;
		if (check_progress_due(chk))
			check_note(chk, "progress: %llu btree blocks, %llu list blocks walked",
			           (unsigned long long)chk->nr_btree_blocks,
			           (unsigned long long)chk->nr_list_blocks);
	}
	return 0;
}

static void tree_problem(void *arg, u64 blkno, const char *why)
{
	struct tree_walk *tw = arg;

	check_problem(tw->chk, "%s: btree block %llu: %s", tw->name, (unsigned long long)blkno,
	              why);
}

/* ---------------------------------------------------------------------------------------- */
/* items of the trees */

static void item_problem(struct tree_walk *tw, const struct scoutfs_btree_item *it, const char *fmt,
                         ...) __attribute__((format(printf, 3, 4)));

static void item_problem(struct tree_walk *tw, const struct scoutfs_btree_item *it, const char *fmt,
                         ...)
{
	char why[CHECK_WHY_LEN];
	char k[KEY_STR_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	check_problem(tw->chk, "%s: item %s: %s", tw->name, kstr(&it->key, k), why);
}

static bool server_item_plain(struct tree_walk *tw, const struct scoutfs_btree_item *it)
{
	if (it->seq || it->flags) {
		item_problem(tw, it, "seq %llu and flags 0x%x should be 0 in this tree",
		             (unsigned long long)le64_to_cpu(it->seq), it->flags);
		return false;
	}
	return true;
}

static void fs_item(struct tree_walk *tw, const struct scoutfs_btree_item *it)
{
	if (le64_to_cpu(it->seq) == 0)
		item_problem(tw, it, "the item's seq is 0");
	if (tw->kind == TREE_FS_ROOT && (it->flags & SCOUTFS_ITEM_FLAG_DELETION))
		item_problem(tw, it, "fs_root holds a deletion item (merges apply deletions)");
	if (it->flags & ~(SCOUTFS_ITEM_FLAG_DELETION | SCOUTFS_ITEM_FLAG_DELTA))
		item_problem(tw, it, "unknown item flags 0x%x", it->flags);
	if (le64_to_cpu(it->seq) > le64_to_cpu(tw->chk->super->seq))
		item_problem(tw, it, "the item's seq %llu is after the super's seq %llu",
		             (unsigned long long)le64_to_cpu(it->seq),
		             (unsigned long long)le64_to_cpu(tw->chk->super->seq));
	if (tw->kind == TREE_LOG_ITEMS && le64_to_cpu(it->seq) > le64_to_cpu(tw->lt->max_item_seq))
		item_problem(tw, it,
		             "the item's seq %llu is above the log tree's max_item_seq %llu",
		             (unsigned long long)le64_to_cpu(it->seq),
		             (unsigned long long)le64_to_cpu(tw->lt->max_item_seq));
}

static void log_trees_item(struct tree_walk *tw, const struct scoutfs_btree_item *it,
                           const void *val, unsigned int val_len)
{
	struct check *chk = tw->chk;
	struct scoutfs_log_trees lt;
	const struct scoutfs_key *key = &it->key;

	if (!server_item_plain(tw, it))
		return;
	if (key->sk_zone != SCOUTFS_LOG_TREES_ZONE || key->sk_type != 0 || key_third(key) ||
	    key_fourth(key)) {
		item_problem(tw, it, "not a log trees key (zone %u, first = rid, second = nr)",
		             SCOUTFS_LOG_TREES_ZONE);
		return;
	}
	if (val_len != sizeof(lt)) {
		item_problem(tw, it, "log trees value is %u bytes, not %zu", val_len, sizeof(lt));
		chk->logs_incomplete = true;
		return;
	}
	memcpy(&lt, val, sizeof(lt));
	if (le64_to_cpu(lt.rid) != key_first(key) || le64_to_cpu(lt.nr) != key_second(key))
		item_problem(tw, it, "the value's rid %016llx nr %llu differ from the key's",
		             (unsigned long long)le64_to_cpu(lt.rid),
		             (unsigned long long)le64_to_cpu(lt.nr));
	if (chk->owner_mode)
		return;
	if (chk->nr_lts == chk->alloced_lts) {
		u64 nr = chk->alloced_lts ? chk->alloced_lts * 2 : 16;
		void *p = realloc(chk->lts, nr * sizeof(lt));

		if (!p) {
			item_problem(tw, it, "out of memory");
			chk->logs_incomplete = true;
			return;
		}
		chk->lts = p;
		chk->alloced_lts = nr;
	}
	chk->lts[chk->nr_lts++] = lt;
}

static void log_merge_item(struct tree_walk *tw, const struct scoutfs_btree_item *it,
                           const void *val, unsigned int val_len)
{
	struct scoutfs_key key = it->key;
	struct scoutfs_log_merge_freeing fr;

	if (!server_item_plain(tw, it))
		return;
	if (key.sk_zone == SCOUTFS_LOG_MERGE_STATUS_ZONE) {
		key.sk_zone = 0;
		if (!key_is_zeros(&key))
			item_problem(tw, it, "the merge status key has fields set");
		if (val_len != sizeof(struct scoutfs_log_merge_status))
			item_problem(tw, it, "merge status value is %u bytes, not %zu", val_len,
			             sizeof(struct scoutfs_log_merge_status));
		return;
	}
	if (key.sk_zone != SCOUTFS_LOG_MERGE_FREEING_ZONE) {
		item_problem(tw, it, "unexpected zone %u in log_merge", key.sk_zone);
		return;
	}
	if (val_len != sizeof(fr)) {
		item_problem(tw, it, "freeing value is %u bytes, not %zu", val_len, sizeof(fr));
		return;
	}
	memcpy(&fr, val, sizeof(fr));
	if (le64_to_cpu(fr.seq) != key_first(&it->key))
		item_problem(tw, it, "freeing seq %llu differs from the key's",
		             (unsigned long long)le64_to_cpu(fr.seq));
	if (key.sk_type || key_second(&key) || key_third(&key) || key_fourth(&key))
		item_problem(tw, it, "freeing key has fields besides first set");
	if (fr.root.height > SCOUTFS_BTREE_MAX_HEIGHT) {
		item_problem(tw, it, "freeing root height %u is too large", fr.root.height);
		return;
	}
	{
		void *p = realloc(tw->freeing, (tw->nr_freeing + 1) * sizeof(fr));

		if (!p) {
			item_problem(tw, it, "out of memory");
			return;
		}
		tw->freeing = p;
		tw->freeing[tw->nr_freeing++] = fr;
	}
}

static void client_item(struct tree_walk *tw, const struct scoutfs_btree_item *it, const void *val,
                        unsigned int val_len)
{
	struct scoutfs_mounted_client_btree_val mcv;
	const struct scoutfs_key *key = &it->key;

	if (!server_item_plain(tw, it))
		return;
	if (key->sk_zone != SCOUTFS_MOUNTED_CLIENT_ZONE || key->sk_type || key_second(key) ||
	    key_third(key) || key_fourth(key)) {
		item_problem(tw, it, "not a mounted client key (zone %u, first = rid)",
		             SCOUTFS_MOUNTED_CLIENT_ZONE);
		return;
	}
	if (val_len != sizeof(mcv)) {
		item_problem(tw, it, "mounted client value is %u bytes, not %zu", val_len,
		             sizeof(mcv));
		return;
	}
	memcpy(&mcv, val, sizeof(mcv));
	if (le16_to_cpu(mcv.addr.family) != SCOUTFS_INET_FAMILY_V4)
		item_problem(tw, it, "mounted client address family %u is not IPv4",
		             le16_to_cpu(mcv.addr.family));
	if (mcv.flags & ~SCOUTFS_MOUNTED_CLIENT_QUORUM)
		item_problem(tw, it, "unknown mounted client flags 0x%x", mcv.flags);
}

/* one item of a free extent tree */
static void extent_item(struct tree_walk *tw, const struct scoutfs_btree_item *it,
                        unsigned int val_len)
{
	struct check *chk = tw->chk;
	const struct scoutfs_key *key = &it->key;
	u64 end, len, start;

	if (!server_item_plain(tw, it))
		return;
	if (val_len)
		item_problem(tw, it, "free extent items have no value, this one has %u bytes",
		             val_len);

	if (key->sk_zone == SCOUTFS_FREE_EXTENT_BLKNO_ZONE) {
		end = key_first(key);
		len = key_second(key);
		if (key->sk_type || key_third(key) || key_fourth(key))
			item_problem(tw, it, "free extent key has unused fields set");
		if (len == 0 || end < len - 1) {
			item_problem(tw, it, "free extent ending at %llu has invalid length %llu",
			             (unsigned long long)end, (unsigned long long)len);
			return;
		}
		start = end - len + 1;
		if (tw->have_prev && start <= tw->prev_end)
			item_problem(tw, it,
			             "free extent %llu-%llu overlaps the previous one, which ends "
			             "at %llu",
			             (unsigned long long)start, (unsigned long long)end,
			             (unsigned long long)tw->prev_end);
		tw->have_prev = true;
		tw->prev_end = end;
		tw->nr_blkno++;
		tw->sum_len += len;
		tw->fp_blkno += ext_hash(end, len);
		if (tw->kind == TREE_META_EXTENTS)
			check_mark_meta(chk, start, len, false, tw->name);
		else
			check_mark_data(chk, start, len, false, tw->name);
		return;
	}
	if (key->sk_zone == SCOUTFS_FREE_EXTENT_ORDER_ZONE) {
		end = key_second(key);
		len = key_third(key);
		if (key->sk_type || key_fourth(key))
			item_problem(tw, it, "free extent order key has unused fields set");
		if (len == 0 || ~key_first(key) != (u64)alloc_ext_order(len))
			item_problem(tw, it,
			             "free extent order index has size class %llu for length %llu",
			             (unsigned long long)~key_first(key), (unsigned long long)len);
		tw->nr_order++;
		tw->fp_order += ext_hash(end, len);
		return;
	}
	item_problem(tw, it, "unexpected zone %u in a free extent tree", key->sk_zone);
}

static int tree_item(void *arg, const struct scoutfs_btree_item *it, const void *val,
                     unsigned int val_len)
{
	struct tree_walk *tw = arg;

	tw->nr_items++;
	switch (tw->kind) {
	case TREE_FS_ROOT:
	case TREE_LOG_ITEMS:
		fs_item(tw, it);
		break;
	case TREE_LOGS:
		log_trees_item(tw, it, val, val_len);
		break;
	case TREE_LOG_MERGE:
		log_merge_item(tw, it, val, val_len);
		break;
	case TREE_CLIENTS:
		client_item(tw, it, val, val_len);
		break;
	case TREE_SRCH:
		tw->nr_srch++;
		break;
	case TREE_META_EXTENTS:
	case TREE_DATA_EXTENTS:
		extent_item(tw, it, val_len);
		break;
	case TREE_FREEING:
		break;
	}
	return 0;
}

static const struct walk_btree_ops tree_ops = {
	.block = tree_block,
	.problem = tree_problem,
	.item = tree_item,
};

static int walk_tree(struct tree_walk *tw, const struct scoutfs_btree_root *root,
                     const struct scoutfs_key *skip_below)
{
	if (root->height == 0 && (root->ref.blkno || root->ref.seq))
		check_problem(tw->chk, "%s: the root has height 0 but a reference to block %llu",
		              tw->name, (unsigned long long)le64_to_cpu(root->ref.blkno));
	if (root->height && !root->ref.blkno)
		check_problem(tw->chk, "%s: the root has height %u but no block", tw->name,
		              root->height);
	return walk_btree(tw->chk->bc, root, skip_below, &tree_ops, tw);
}

/* ---------------------------------------------------------------------------------------- */
/* free extent trees */

struct twin_check {
	struct tree_walk *tw;
	const struct scoutfs_alloc_root *root;
	struct cbitmap *seen;
};

static int twin_block(void *arg, const struct scoutfs_block_ref *ref, int level,
                      const struct scoutfs_btree_block *bt, const char *why)
{
	struct twin_check *tc = arg;
	u64 blkno = le64_to_cpu(ref->blkno);
	bool seen;

	if (!bt || blkno >= cbm_nr_bits(tc->seen))
		return 1;
	seen = cbm_test(tc->seen, blkno);
	cbm_set(tc->seen, blkno, 1, NULL, NULL);
	return seen ? 1 : 0;
}

static int twin_item(void *arg, const struct scoutfs_btree_item *it, const void *val,
                     unsigned int val_len)
{
	struct twin_check *tc = arg;
	struct tree_walk *tw = tc->tw;
	struct scoutfs_btree_item found;
	struct scoutfs_key twin;
	char why[CHECK_WHY_LEN];
	u64 end, len;
	int ret;

	if (it->key.sk_zone == SCOUTFS_FREE_EXTENT_BLKNO_ZONE) {
		end = key_first(&it->key);
		len = key_second(&it->key);
		twin = key_make(SCOUTFS_FREE_EXTENT_ORDER_ZONE, ~(u64)alloc_ext_order(len), 0, end,
		                len, 0);
	} else if (it->key.sk_zone == SCOUTFS_FREE_EXTENT_ORDER_ZONE) {
		end = key_second(&it->key);
		len = key_third(&it->key);
		twin = key_make(SCOUTFS_FREE_EXTENT_BLKNO_ZONE, end, 0, len, 0, 0);
	} else {
		return 0;
	}
	ret = walk_lookup(tw->chk->bc, &tc->root->root, &twin, &found, NULL, why, sizeof(why));
	if (ret == -ENOMEM)
		return ret;
	if (ret == -ENOENT)
		item_problem(tw, it, "free extent %llu-%llu has no %s index item",
		             (unsigned long long)(end - len + 1), (unsigned long long)end,
		             twin.sk_zone == SCOUTFS_FREE_EXTENT_BLKNO_ZONE ? "block number"
		                                                            : "size class");
	return 0;
}

static int walk_extents(struct check *chk, enum tree_kind kind, const char *name,
                        const struct scoutfs_alloc_root *root)
{
	struct tree_walk tw = { .chk = chk, .kind = kind };
	static const struct walk_btree_ops twin_ops = { .block = twin_block, .item = twin_item };
	struct twin_check tc = { .tw = &tw, .root = root };
	int ret;

	snprintf(tw.name, sizeof(tw.name), "%s", name);
	ret = walk_tree(&tw, &root->root, NULL);
	if (ret < 0 || chk->owner_mode)
		return ret;
	if (le32_to_cpu(root->flags) & ~SCOUTFS_ALLOC_FLAG_LOW)
		check_problem(chk, "%s: unknown allocator flags 0x%x", name,
		              le32_to_cpu(root->flags));
	if (tw.broken)
		return 0;
	if (tw.sum_len != le64_to_cpu(root->total_len))
		check_problem(chk,
		              "%s: total_len is %llu but its free extents add up to %llu blocks",
		              name, (unsigned long long)le64_to_cpu(root->total_len),
		              (unsigned long long)tw.sum_len);
	if (tw.nr_blkno != tw.nr_order || tw.fp_blkno != tw.fp_order) {
		if (tw.nr_blkno != tw.nr_order)
			check_problem(chk,
			              "%s: %llu extents are indexed by block number but %llu by "
			              "size class",
			              name, (unsigned long long)tw.nr_blkno,
			              (unsigned long long)tw.nr_order);
		ret = cbm_create(chk->total_meta, &tc.seen);
		if (ret < 0)
			return ret;
		ret = walk_btree(chk->bc, &root->root, NULL, &twin_ops, &tc);
		cbm_destroy(tc.seen);
	}
	return ret;
}

/* ---------------------------------------------------------------------------------------- */
/* alloc lists */

struct list_walk {
	struct check *chk;
	char name[96];
	bool broken;
};

static int list_block(void *arg, const struct scoutfs_block_ref *ref,
                      const struct scoutfs_alloc_list_block *lb, const char *why)
{
	struct list_walk *lw = arg;
	struct check *chk = lw->chk;
	u64 blkno = le64_to_cpu(ref->blkno);
	char owner[160];
	bool first;

	snprintf(owner, sizeof(owner), "%s (list block)", lw->name);
	if (!lb) {
		lw->broken = true;
		check_problem(chk, "%s: list block %llu: %s", lw->name, (unsigned long long)blkno,
		              why);
		if (blkno >= SCOUTFS_META_DEV_START_BLKNO && blkno < chk->total_meta &&
		    first_visit(chk, blkno, owner_seen))
			check_mark_meta(chk, blkno, 1, true, owner);
		return 1;
	}
	first = first_visit(chk, blkno, owner_seen);
	check_mark_meta(chk, blkno, 1, true, owner);
	if (!first) {
		lw->broken = true;
		if (!chk->owner_mode)
			check_problem(
			        chk, "%s: list block %llu was already reached: the list stops here",
			        lw->name, (unsigned long long)blkno);
		return 1;
	}
	if (!chk->owner_mode)
		chk->nr_list_blocks++;
	return 0;
}

static int list_entry(void *arg, u64 blkno)
{
	struct list_walk *lw = arg;

	check_mark_meta(lw->chk, blkno, 1, false, lw->name);
	return 0;
}

static int walk_alloc_list(struct check *chk, const char *name,
                           const struct scoutfs_alloc_list_head *head)
{
	static const struct walk_list_ops ops = { .block = list_block, .entry = list_entry };
	struct list_walk lw = { .chk = chk };
	u64 nr_blocks, nr_entries, first_nr;
	int ret;

	snprintf(lw.name, sizeof(lw.name), "%s", name);
	ret = walk_list(chk->bc, head, &ops, &lw, &nr_blocks, &nr_entries, &first_nr);
	if (ret < 0 || chk->owner_mode)
		return ret;
	if (le32_to_cpu(head->flags) & ~SCOUTFS_ALLOC_FLAG_LOW)
		check_problem(chk, "%s: unknown list flags 0x%x", name, le32_to_cpu(head->flags));
	if (!head->ref.blkno) {
		if (head->total_nr || head->first_nr)
			check_problem(
			        chk,
			        "%s: the list has no blocks but counts total_nr %llu first_nr %u",
			        name, (unsigned long long)le64_to_cpu(head->total_nr),
			        le32_to_cpu(head->first_nr));
		return 0;
	}
	if (lw.broken)
		return 0;
	if (le32_to_cpu(head->first_nr) != first_nr)
		check_problem(chk, "%s: first_nr is %u but the first list block holds %llu entries",
		              name, le32_to_cpu(head->first_nr), (unsigned long long)first_nr);
	if (le64_to_cpu(head->total_nr) != nr_entries)
		check_problem(chk,
		              "%s: total_nr is %llu but its %llu list blocks hold %llu entries",
		              name, (unsigned long long)le64_to_cpu(head->total_nr),
		              (unsigned long long)nr_blocks, (unsigned long long)nr_entries);
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* log trees */

static void check_bloom(struct check *chk, const char *name, const struct scoutfs_block_ref *ref)
{
	const struct scoutfs_bloom_block *bb;
	char why[CHECK_WHY_LEN];
	char owner[160];
	u64 blkno = le64_to_cpu(ref->blkno);
	struct block *bl;
	u64 set = 0;
	int ret;

	snprintf(owner, sizeof(owner), "%s bloom block", name);
	ret = walk_read_ref(chk->bc, ref, SCOUTFS_BLOCK_MAGIC_BLOOM, &bl, why, sizeof(why));
	if (ret < 0) {
		check_problem(chk, "%s: bloom block %llu: %s", name, (unsigned long long)blkno,
		              why);
	} else if (!chk->owner_mode) {
		bb = bl->data;
		for (size_t i = 0; i < SCOUTFS_BLOOM_BITS / 64; i++)
			set += (u64)__builtin_popcountll(le64_to_cpu(bb->bits[i]));
		if (set != le64_to_cpu(bb->total_set))
			check_problem(chk, "%s: bloom block %llu counts %llu set bits but has %llu",
			              name, (unsigned long long)blkno,
			              (unsigned long long)le64_to_cpu(bb->total_set),
			              (unsigned long long)set);
		chk->nr_other_blocks++;
	}
	block_put(chk->bc, bl);
	if (blkno >= SCOUTFS_META_DEV_START_BLKNO && blkno < chk->total_meta &&
	    first_visit(chk, blkno, owner_seen))
		check_mark_meta(chk, blkno, 1, true, owner);
}

static bool alloc_root_empty(const struct scoutfs_alloc_root *root)
{
	return root->total_len == 0 && root->root.height == 0;
}

static bool list_empty(const struct scoutfs_alloc_list_head *head)
{
	return head->ref.blkno == 0 && head->total_nr == 0;
}

/* the fields of one log_trees value, and the rule that only a rid's last tree is open */
static void check_lt_fields(struct check *chk, u64 i, const char *name)
{
	const struct scoutfs_log_trees *lt = &chk->lts[i];
	u64 flags = le64_to_cpu(lt->flags);
	bool finalized = flags & SCOUTFS_LOG_TREES_FINALIZED;

	if (le64_to_cpu(lt->rid) == 0 || le64_to_cpu(lt->rid) == ~0ULL)
		check_problem(chk, "%s: invalid rid", name);
	if (le64_to_cpu(lt->nr) == 0)
		check_problem(chk, "%s: nr is 0 (they start at 1)", name);
	if (flags & ~SCOUTFS_LOG_TREES_FINALIZED)
		check_problem(chk, "%s: unknown flags 0x%llx", name,
		              (unsigned long long)(flags & ~SCOUTFS_LOG_TREES_FINALIZED));
	if (le64_to_cpu(lt->commit_trans_seq) > le64_to_cpu(lt->get_trans_seq))
		check_problem(chk, "%s: commit_trans_seq %llu is after get_trans_seq %llu", name,
		              (unsigned long long)le64_to_cpu(lt->commit_trans_seq),
		              (unsigned long long)le64_to_cpu(lt->get_trans_seq));
	if (le64_to_cpu(lt->max_item_seq) > le64_to_cpu(chk->super->seq))
		check_problem(chk, "%s: max_item_seq %llu is after the super's seq %llu", name,
		              (unsigned long long)le64_to_cpu(lt->max_item_seq),
		              (unsigned long long)le64_to_cpu(chk->super->seq));
	if (finalized) {
		if (le64_to_cpu(lt->finalize_seq) == 0)
			check_problem(chk, "%s: finalized without a finalize_seq", name);
		if (!list_empty(&lt->meta_avail) || !list_empty(&lt->meta_freed) ||
		    !alloc_root_empty(&lt->data_avail) || !alloc_root_empty(&lt->data_freed))
			check_problem(chk,
			              "%s: finalized but still holds allocators (they would leak "
			              "when it is merged)",
			              name);
	}
	if (!finalized && i + 1 < chk->nr_lts && chk->lts[i + 1].rid == lt->rid)
		check_problem(chk, "%s: not finalized, but the mount has a later log tree nr %llu",
		              name, (unsigned long long)le64_to_cpu(chk->lts[i + 1].nr));
}

static int walk_log_tree(struct check *chk, u64 i)
{
	const struct scoutfs_log_trees *lt = &chk->lts[i];
	struct tree_walk tw = { .chk = chk, .kind = TREE_LOG_ITEMS, .lt = lt };
	char name[64], sub[128];
	int ret;

	snprintf(name, sizeof(name), "log tree %016llx.%llu",
	         (unsigned long long)le64_to_cpu(lt->rid), (unsigned long long)le64_to_cpu(lt->nr));
	if (!chk->owner_mode)
		check_lt_fields(chk, i, name);

	snprintf(tw.name, sizeof(tw.name), "%s items", name);
	ret = walk_tree(&tw, &lt->item_root, NULL);
	if (ret < 0)
		return ret;
	if (lt->bloom_ref.blkno)
		check_bloom(chk, name, &lt->bloom_ref);
	snprintf(sub, sizeof(sub), "%s data_avail", name);
	ret = walk_extents(chk, TREE_DATA_EXTENTS, sub, &lt->data_avail);
	if (ret < 0)
		return ret;
	snprintf(sub, sizeof(sub), "%s data_freed", name);
	ret = walk_extents(chk, TREE_DATA_EXTENTS, sub, &lt->data_freed);
	if (ret < 0)
		return ret;
	snprintf(sub, sizeof(sub), "%s meta_avail", name);
	ret = walk_alloc_list(chk, sub, &lt->meta_avail);
	if (ret < 0)
		return ret;
	snprintf(sub, sizeof(sub), "%s meta_freed", name);
	ret = walk_alloc_list(chk, sub, &lt->meta_freed);
	if (ret < 0)
		return ret;
	if (lt->srch_file.ref.blkno && !chk->owner_mode) {
		check_problem(chk,
		              "%s: has a srch file (root block %llu, %llu blocks); srch files are "
		              "not supported by this version and are not checked",
		              name, (unsigned long long)le64_to_cpu(lt->srch_file.ref.blkno),
		              (unsigned long long)le64_to_cpu(lt->srch_file.blocks));
	}
	if (!chk->owner_mode)
		chk->inode_count_deltas += (s64)le64_to_cpu(lt->inode_count_delta);
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* the whole walk */

static int walk_all(struct check *chk)
{
	struct scoutfs_super_block *super = chk->super;
	struct tree_walk tw;
	char name[64];
	int ret;

#define SIMPLE_TREE(k, nm, rootp)                                                                  \
	do {                                                                                       \
		memset(&tw, 0, sizeof(tw));                                                        \
		tw.chk = chk;                                                                      \
		tw.kind = (k);                                                                     \
		snprintf(tw.name, sizeof(tw.name), "%s", (nm));                                    \
		ret = walk_tree(&tw, (rootp), NULL);                                               \
		if (ret < 0)                                                                       \
			return ret;                                                                \
	} while (0)

	SIMPLE_TREE(TREE_FS_ROOT, "fs_root", &super->fs_root);

	SIMPLE_TREE(TREE_LOGS, "logs_root", &super->logs_root);
	if (tw.broken && !chk->owner_mode)
		chk->logs_incomplete = true;
	for (u64 i = 0; i < chk->nr_lts; i++) {
		ret = walk_log_tree(chk, i);
		if (ret < 0)
			return ret;
	}

	memset(&tw, 0, sizeof(tw));
	tw.chk = chk;
	tw.kind = TREE_LOG_MERGE;
	snprintf(tw.name, sizeof(tw.name), "log_merge");
	ret = walk_tree(&tw, &super->log_merge, NULL);
	for (size_t i = 0; ret == 0 && i < tw.nr_freeing; i++) {
		struct tree_walk fw = { .chk = chk, .kind = TREE_FREEING };
		struct scoutfs_log_merge_freeing *fr = &tw.freeing[i];

		snprintf(fw.name, sizeof(fw.name), "log_merge freeing seq %llu",
		         (unsigned long long)le64_to_cpu(fr->seq));
		ret = walk_tree(&fw, &fr->root, &fr->key);
	}
	free(tw.freeing);
	if (ret < 0)
		return ret;

	SIMPLE_TREE(TREE_CLIENTS, "mounted_clients", &super->mounted_clients);
	SIMPLE_TREE(TREE_SRCH, "srch_root", &super->srch_root);
	if (tw.nr_srch && !chk->owner_mode)
		check_problem(chk,
		              "srch_root holds %llu items; srch is not supported by this version "
		              "and its files are not checked",
		              (unsigned long long)tw.nr_srch);
#undef SIMPLE_TREE

	for (int i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "meta_alloc[%d]", i);
		ret = walk_extents(chk, TREE_META_EXTENTS, name, &super->meta_alloc[i]);
		if (ret < 0)
			return ret;
	}
	ret = walk_extents(chk, TREE_DATA_EXTENTS, "data_alloc", &super->data_alloc);
	if (ret < 0)
		return ret;
	for (int i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "server_meta_avail[%d]", i);
		ret = walk_alloc_list(chk, name, &super->server_meta_avail[i]);
		if (ret < 0)
			return ret;
		snprintf(name, sizeof(name), "server_meta_freed[%d]", i);
		ret = walk_alloc_list(chk, name, &super->server_meta_freed[i]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int check_meta_structures(struct check *chk)
{
	return walk_all(chk);
}

int check_meta_owners(struct check *chk)
{
	int ret;

	ret = cbm_create(chk->total_meta, &owner_seen);
	if (ret < 0)
		return ret;
	check_ranges_sort(&chk->meta_conflicts);
	check_ranges_sort(&chk->data_conflicts);
	chk->owner_mode = true;
	ret = walk_all(chk);
	chk->owner_mode = false;
	cbm_destroy(owner_seen);
	owner_seen = NULL;
	return ret;
}
