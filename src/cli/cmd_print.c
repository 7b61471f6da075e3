/*
 * cmd_print.c: `scoutfs print`, dumping the metadata structures of a device readably.
 *
 * A debugging tool: it prints the super with every field, the quorum blocks, and then every
 * btree reachable from the super with each block's header and each item decoded by its zone
 * and type (inodes, entries, extents, xattrs, index items, orphans, log trees with their
 * nested roots, merge state, mounted clients, free extents), followed by each log tree's own
 * trees, and the alloc lists.
 *
 * It reads with the careful readers that check uses (check_walk.c), so a damaged device is
 * printed as far as it can be: a block that can't be read or verified is printed as an ERROR
 * line saying why, and the walk goes on with the rest.  A block reached twice is printed
 * once.  Exit status 1 says that something could not be read.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "block/super.h"
#include "cli/check.h"
#include "cli/cli.h"
#include "dev/dev.h"
#include "util/log.h"
#include "util/util.h"

static const char print_usage[] =
        "Usage: scoutfs print [-S] [-v] META_DEVICE\n"
        "\n"
        "Print the metadata structures of a scoutfs metadata device, for debugging.  The\n"
        "device is only read.  Print a filesystem that is not mounted: the structures of a\n"
        "mounted filesystem change while they are read.\n"
        "\n"
        "What is printed, in order:\n"
        "  - the super block, every field: format version, sequence numbers, sizes, the\n"
        "    quorum configuration, the roots of every btree and allocator, volume options;\n"
        "  - the 15 quorum blocks with their events (BEGIN, TERM, ELECT, FENCE, STOP, END);\n"
        "  - every btree reachable from the super, block by block (number, seq, level, item\n"
        "    count), each item with its key (zone.first.type.second.third.fourth), seq, flags\n"
        "    and its value decoded: inodes with all their fields, directory entries with their\n"
        "    names, data extents, xattr parts, inode index and orphan items, log trees with\n"
        "    their nested roots, mounted clients, log merge status and freeing items, free\n"
        "    extents;\n"
        "  - then for each log tree: its item btree, bloom block, data_avail and data_freed\n"
        "    extent trees, and meta_avail and meta_freed lists;\n"
        "  - the trees being freed after a log merge, the free extent trees of both devices,\n"
        "    and the server's alloc lists (their blocks and entry counts).\n"
        "\n"
        "Blocks that can't be read or are damaged are printed as `ERROR:' lines saying why,\n"
        "and printing goes on with the rest.\n"
        "\n"
        "Options:\n"
        "  -S, --skip-alloc  don't print the items of the free extent trees (they can be\n"
        "                    huge); their roots are still printed\n"
        "  -v, --verbose     print the entries of alloc lists, not only their counts\n"
        "      --help        show this help and exit\n";

static const char print_exit_status[] =
        "Exit status:\n"
        "  0   everything was printed\n"
        "  1   something could not be read (see the ERROR lines), or the device is not a\n"
        "      scoutfs metadata device\n"
        "  64  invalid arguments\n";

static const struct option print_longopts[] = {
	{ "skip-alloc", no_argument, NULL, 'S' },
	{ "verbose", no_argument, NULL, 'v' },
	{ NULL, 0, NULL, 0 },
};

enum print_kind {
	PK_FS = 0,
	PK_LOGS,
	PK_LOG_MERGE,
	PK_CLIENTS,
	PK_SRCH,
	PK_EXTENTS,
};

struct printer {
	struct block_cache *bc;
	struct scoutfs_super_block *super;
	struct cbitmap *seen;
	bool skip_alloc;
	bool verbose;
	u64 nr_errors;
	enum print_kind kind;
	/* log_merge FREEING items, printed after log_merge */
	struct scoutfs_log_merge_freeing *freeing;
	size_t nr_freeing;
	/* logs_root items, printed after logs_root */
	struct scoutfs_log_trees *lts;
	size_t nr_lts;
};

static void perror_line(struct printer *pr, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void perror_line(struct printer *pr, const char *fmt, ...)
{
	va_list ap;

	pr->nr_errors++;
	fputs("ERROR: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

/* ---------------------------------------------------------------------------------------- */
/* small formatters */

static const char *esc(const u8 *p, size_t len, char *buf, size_t buf_len)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < buf_len; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' && p[i] != '\'')
			buf[o++] = (char)p[i];
		else
			o += (size_t)snprintf(buf + o, buf_len - o, "\\x%02x", p[i]);
	}
	buf[o < buf_len ? o : buf_len - 1] = '\0';
	return buf;
}

static void hexdump(const u8 *p, unsigned int len)
{
	unsigned int n = min_t(unsigned int, len, 64);

	printf("%u bytes:", len);
	for (unsigned int i = 0; i < n; i++)
		printf(" %02x", p[i]);
	if (n < len)
		printf(" ...");
	printf("\n");
}

static const char *ts_str(const struct scoutfs_timespec *ts, char *buf, size_t len)
{
	snprintf(buf, len, "%llu.%09u", (unsigned long long)le64_to_cpu(ts->sec),
	         le32_to_cpu(ts->nsec));
	return buf;
}

static const char *addr_str(const struct scoutfs_inet_addr *ia, char *buf, size_t len)
{
	struct in_addr in;
	char a[INET_ADDRSTRLEN];

	if (le16_to_cpu(ia->family) == SCOUTFS_INET_FAMILY_NONE) {
		snprintf(buf, len, "none");
		return buf;
	}
	in.s_addr = htonl(le32_to_cpu(ia->addr));
	inet_ntop(AF_INET, &in, a, sizeof(a));
	if (le16_to_cpu(ia->family) == SCOUTFS_INET_FAMILY_V4)
		snprintf(buf, len, "%s:%u", a, le16_to_cpu(ia->port));
	else
		snprintf(buf, len, "family %u %s:%u", le16_to_cpu(ia->family), a,
		         le16_to_cpu(ia->port));
	return buf;
}

static void print_ref(const char *name, const struct scoutfs_block_ref *ref)
{
	printf("%s blkno %llu seq %016llx", name, (unsigned long long)le64_to_cpu(ref->blkno),
	       (unsigned long long)le64_to_cpu(ref->seq));
}

static void print_root(const char *indent, const char *name, const struct scoutfs_btree_root *root)
{
	printf("%s%s: height %u, ", indent, name, root->height);
	print_ref("root", &root->ref);
	printf("\n");
}

static void print_alloc_root(const char *indent, const char *name,
                             const struct scoutfs_alloc_root *ar)
{
	printf("%s%s: total_len %llu flags 0x%x, height %u, ", indent, name,
	       (unsigned long long)le64_to_cpu(ar->total_len), le32_to_cpu(ar->flags),
	       ar->root.height);
	print_ref("root", &ar->root.ref);
	printf("\n");
}

static void print_list_head(const char *indent, const char *name,
                            const struct scoutfs_alloc_list_head *lh)
{
	printf("%s%s: total_nr %llu first_nr %u flags 0x%x, ", indent, name,
	       (unsigned long long)le64_to_cpu(lh->total_nr), le32_to_cpu(lh->first_nr),
	       le32_to_cpu(lh->flags));
	print_ref("first", &lh->ref);
	printf("\n");
}

/* ---------------------------------------------------------------------------------------- */
/* items */

#define IND "      "

static void print_inode(const u8 *val, unsigned int len)
{
	struct scoutfs_inode si;
	char a[40], c[40], m[40], r[40];

	if (len != SCOUTFS_INODE_FMT_V1_BYTES && len != SCOUTFS_INODE_FMT_V2_BYTES) {
		printf("inode: ");
		hexdump(val, len);
		return;
	}
	memset(&si, 0, sizeof(si));
	memcpy(&si, val, len);
	printf("inode: mode 0%o nlink %u uid %u gid %u rdev 0x%x size %llu flags 0x%x\n" IND
	       "meta_seq %llu data_seq %llu data_version %llu version %llu\n" IND
	       "online_blocks %llu offline_blocks %llu next_readdir_pos %llu next_xattr_id %llu",
	       le32_to_cpu(si.mode), le32_to_cpu(si.nlink), le32_to_cpu(si.uid),
	       le32_to_cpu(si.gid), le32_to_cpu(si.rdev), (unsigned long long)le64_to_cpu(si.size),
	       le32_to_cpu(si.flags), (unsigned long long)le64_to_cpu(si.meta_seq),
	       (unsigned long long)le64_to_cpu(si.data_seq),
	       (unsigned long long)le64_to_cpu(si.data_version),
	       (unsigned long long)le64_to_cpu(si.version),
	       (unsigned long long)le64_to_cpu(si.online_blocks),
	       (unsigned long long)le64_to_cpu(si.offline_blocks),
	       (unsigned long long)le64_to_cpu(si.next_readdir_pos),
	       (unsigned long long)le64_to_cpu(si.next_xattr_id));
	if (len == SCOUTFS_INODE_FMT_V2_BYTES)
		printf(" proj %llu", (unsigned long long)le64_to_cpu(si.proj));
	printf("\n" IND "atime %s ctime %s mtime %s crtime %s\n", ts_str(&si.atime, a, sizeof(a)),
	       ts_str(&si.ctime, c, sizeof(c)), ts_str(&si.mtime, m, sizeof(m)),
	       ts_str(&si.crtime, r, sizeof(r)));
}

static void print_dirent(const char *what, const u8 *val, unsigned int len)
{
	char nb[SCOUTFS_NAME_LEN * 4 + 8];
	struct scoutfs_dirent d;

	if (len < sizeof(d)) {
		printf("%s: ", what);
		hexdump(val, len);
		return;
	}
	memcpy(&d, val, sizeof(d));
	printf("%s: ino %llu hash %016llx pos %llu type %u name '%s'\n", what,
	       (unsigned long long)le64_to_cpu(d.ino), (unsigned long long)le64_to_cpu(d.hash),
	       (unsigned long long)le64_to_cpu(d.pos), d.type,
	       esc(val + sizeof(d), len - sizeof(d), nb, sizeof(nb)));
}

static void print_fs_item(const struct scoutfs_key *key, const u8 *val, unsigned int len)
{
	char buf[SCOUTFS_BTREE_MAX_VAL_LEN * 4 + 8];
	struct scoutfs_data_extent_val dv;
	struct scoutfs_xattr x;
	u64 last, elen;

	switch (key->sk_zone) {
	case SCOUTFS_INODE_INDEX_ZONE:
		printf("%s index: seq %llu ino %llu\n",
		       key->sk_type == SCOUTFS_INODE_INDEX_META_SEQ_TYPE   ? "meta_seq"
		       : key->sk_type == SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE ? "data_seq"
		                                                           : "unknown",
		       (unsigned long long)key_second(key), (unsigned long long)key_third(key));
		return;
	case SCOUTFS_ORPHAN_ZONE:
		printf("orphan: ino %llu\n", (unsigned long long)key_second(key));
		return;
	case SCOUTFS_XATTR_TOTL_ZONE:
		if (len == sizeof(struct scoutfs_xattr_totl_val)) {
			struct scoutfs_xattr_totl_val tv;

			memcpy(&tv, val, sizeof(tv));
			printf("totl: total %llu count %llu\n",
			       (unsigned long long)le64_to_cpu(tv.total),
			       (unsigned long long)le64_to_cpu(tv.count));
			return;
		}
		break;
	case SCOUTFS_FS_ZONE:
		switch (key->sk_type) {
		case SCOUTFS_INODE_TYPE:
			print_inode(val, len);
			return;
		case SCOUTFS_XATTR_TYPE:
			if (key_fourth(key) == 0 && len >= sizeof(x)) {
				memcpy(&x, val, sizeof(x));
				printf("xattr id %llu part 0: val_len %u name_len %u name '%s', %u "
				       "bytes\n",
				       (unsigned long long)key_third(key), le16_to_cpu(x.val_len),
				       x.name_len,
				       esc(val + sizeof(x),
				           min_t(unsigned int, x.name_len, len - sizeof(x)), buf,
				           sizeof(buf)),
				       len);
			} else {
				printf("xattr id %llu part %u: %u bytes\n",
				       (unsigned long long)key_third(key), key_fourth(key), len);
			}
			return;
		case SCOUTFS_DIRENT_TYPE:
			print_dirent("dirent", val, len);
			return;
		case SCOUTFS_READDIR_TYPE:
			print_dirent("readdir", val, len);
			return;
		case SCOUTFS_LINK_BACKREF_TYPE:
			print_dirent("link backref", val, len);
			return;
		case SCOUTFS_SYMLINK_TYPE:
			printf("symlink chunk %llu: '%s'\n", (unsigned long long)key_second(key),
			       esc(val, len, buf, sizeof(buf)));
			return;
		case SCOUTFS_DATA_EXTENT_TYPE:
			last = key_second(key);
			elen = key_third(key);
			if (len == sizeof(dv) && elen && last >= elen - 1) {
				memcpy(&dv, val, sizeof(dv));
				printf("extent: file blocks %llu-%llu (%llu) -> data blkno %llu "
				       "flags 0x%x%s%s\n",
				       (unsigned long long)(last - elen + 1),
				       (unsigned long long)last, (unsigned long long)elen,
				       (unsigned long long)le64_to_cpu(dv.blkno), dv.flags,
				       dv.flags & SCOUTFS_EXTENT_FLAG_OFFLINE ? " offline" : "",
				       dv.flags & SCOUTFS_EXTENT_FLAG_UNWRITTEN ? " unwritten"
				                                                : "");
				return;
			}
			break;
		}
		break;
	}
	if (len)
		hexdump(val, len);
	else
		printf("(no value)\n");
}

static void print_log_trees(const struct scoutfs_log_trees *lt)
{
	printf("log trees rid %016llx nr %llu flags 0x%llx%s\n",
	       (unsigned long long)le64_to_cpu(lt->rid), (unsigned long long)le64_to_cpu(lt->nr),
	       (unsigned long long)le64_to_cpu(lt->flags),
	       le64_to_cpu(lt->flags) & SCOUTFS_LOG_TREES_FINALIZED ? " (finalized)" : "");
	printf(IND "get_trans_seq %llu commit_trans_seq %llu max_item_seq %llu finalize_seq %llu "
	           "inode_count_delta %lld\n",
	       (unsigned long long)le64_to_cpu(lt->get_trans_seq),
	       (unsigned long long)le64_to_cpu(lt->commit_trans_seq),
	       (unsigned long long)le64_to_cpu(lt->max_item_seq),
	       (unsigned long long)le64_to_cpu(lt->finalize_seq),
	       (long long)le64_to_cpu(lt->inode_count_delta));
	print_list_head(IND, "meta_avail", &lt->meta_avail);
	print_list_head(IND, "meta_freed", &lt->meta_freed);
	print_root(IND, "item_root", &lt->item_root);
	printf(IND);
	print_ref("bloom", &lt->bloom_ref);
	printf("\n");
	print_alloc_root(IND, "data_avail", &lt->data_avail);
	print_alloc_root(IND, "data_freed", &lt->data_freed);
	printf(IND "srch_file: blocks %llu entries %llu height %u, ",
	       (unsigned long long)le64_to_cpu(lt->srch_file.blocks),
	       (unsigned long long)le64_to_cpu(lt->srch_file.entries), lt->srch_file.height);
	print_ref("root", &lt->srch_file.ref);
	printf("\n" IND "data_alloc_zone_blocks %llu zones:",
	       (unsigned long long)le64_to_cpu(lt->data_alloc_zone_blocks));
	for (int i = 0; i < SCOUTFS_DATA_ALLOC_ZONE_LE64S; i++)
		printf(" %llx", (unsigned long long)le64_to_cpu(lt->data_alloc_zones[i]));
	printf("\n");
}

static void print_item_value(struct printer *pr, const struct scoutfs_btree_item *it, const u8 *val,
                             unsigned int len)
{
	const struct scoutfs_key *key = &it->key;
	char k[KEY_STR_LEN];

	switch (pr->kind) {
	case PK_FS:
		print_fs_item(key, val, len);
		return;
	case PK_LOGS:
		if (len == sizeof(struct scoutfs_log_trees)) {
			struct scoutfs_log_trees lt;
			void *p;

			memcpy(&lt, val, sizeof(lt));
			print_log_trees(&lt);
			p = realloc(pr->lts, (pr->nr_lts + 1) * sizeof(lt));
			if (p) {
				pr->lts = p;
				pr->lts[pr->nr_lts++] = lt;
			}
			return;
		}
		break;
	case PK_LOG_MERGE:
		if (key->sk_zone == SCOUTFS_LOG_MERGE_STATUS_ZONE &&
		    len == sizeof(struct scoutfs_log_merge_status)) {
			struct scoutfs_log_merge_status st;

			memcpy(&st, val, sizeof(st));
			printf("merge status: seq %llu nr_inputs %llu next_key %s\n",
			       (unsigned long long)le64_to_cpu(st.seq),
			       (unsigned long long)le64_to_cpu(st.nr_inputs),
			       key_str(&st.next_key, k));
			return;
		}
		if (key->sk_zone == SCOUTFS_LOG_MERGE_FREEING_ZONE &&
		    len == sizeof(struct scoutfs_log_merge_freeing)) {
			struct scoutfs_log_merge_freeing fr;
			void *p;

			memcpy(&fr, val, sizeof(fr));
			printf("freeing: seq %llu cursor %s, height %u, ",
			       (unsigned long long)le64_to_cpu(fr.seq), key_str(&fr.key, k),
			       fr.root.height);
			print_ref("root", &fr.root.ref);
			printf("\n");
			p = realloc(pr->freeing, (pr->nr_freeing + 1) * sizeof(fr));
			if (p) {
				pr->freeing = p;
				pr->freeing[pr->nr_freeing++] = fr;
			}
			return;
		}
		break;
	case PK_CLIENTS:
		if (len == sizeof(struct scoutfs_mounted_client_btree_val)) {
			struct scoutfs_mounted_client_btree_val mcv;
			char a[64];

			memcpy(&mcv, val, sizeof(mcv));
			printf("mounted client rid %016llx: addr %s flags 0x%x%s\n",
			       (unsigned long long)key_first(key),
			       addr_str(&mcv.addr, a, sizeof(a)), mcv.flags,
			       mcv.flags & SCOUTFS_MOUNTED_CLIENT_QUORUM ? " (quorum)" : "");
			return;
		}
		break;
	case PK_SRCH:
		if ((key->sk_type == SCOUTFS_SRCH_LOG_TYPE ||
		     key->sk_type == SCOUTFS_SRCH_BLOCKS_TYPE) &&
		    len == sizeof(struct scoutfs_srch_file)) {
			struct scoutfs_srch_file sf;

			memcpy(&sf, val, sizeof(sf));
			printf("srch %s file: blocks %llu entries %llu height %u, ",
			       key->sk_type == SCOUTFS_SRCH_LOG_TYPE ? "log" : "sorted",
			       (unsigned long long)le64_to_cpu(sf.blocks),
			       (unsigned long long)le64_to_cpu(sf.entries), sf.height);
			print_ref("root", &sf.ref);
			printf("\n");
			return;
		}
		break;
	case PK_EXTENTS:
		if (key->sk_zone == SCOUTFS_FREE_EXTENT_BLKNO_ZONE && key_second(key) &&
		    key_first(key) >= key_second(key) - 1) {
			printf("free extent %llu-%llu (%llu)\n",
			       (unsigned long long)(key_first(key) - key_second(key) + 1),
			       (unsigned long long)key_first(key),
			       (unsigned long long)key_second(key));
			return;
		}
		if (key->sk_zone == SCOUTFS_FREE_EXTENT_ORDER_ZONE && key_third(key) &&
		    key_second(key) >= key_third(key) - 1) {
			printf("free extent by size class %llu: %llu-%llu (%llu)\n",
			       (unsigned long long)~key_first(key),
			       (unsigned long long)(key_second(key) - key_third(key) + 1),
			       (unsigned long long)key_second(key),
			       (unsigned long long)key_third(key));
			return;
		}
		break;
	}
	if (len)
		hexdump(val, len);
	else
		printf("(no value)\n");
}

/* ---------------------------------------------------------------------------------------- */
/* walking */

static int pr_block(void *arg, const struct scoutfs_block_ref *ref, int level,
                    const struct scoutfs_btree_block *bt, const char *why)
{
	struct printer *pr = arg;
	u64 blkno = le64_to_cpu(ref->blkno);

	if (!bt) {
		perror_line(pr, "btree block %llu (level %d): %s", (unsigned long long)blkno, level,
		            why);
		return 1;
	}
	printf("  block %llu seq %016llx level %u items %u\n", (unsigned long long)blkno,
	       (unsigned long long)le64_to_cpu(bt->hdr.seq), bt->level, le16_to_cpu(bt->nr_items));
	if (blkno < cbm_nr_bits(pr->seen)) {
		if (cbm_test(pr->seen, blkno)) {
			printf("    (already printed)\n");
			return 1;
		}
		cbm_set(pr->seen, blkno, 1, NULL, NULL);
	}
	if (level > 0) {
		for (unsigned int i = 0; i < le16_to_cpu(bt->nr_items); i++) {
			struct scoutfs_block_ref child;
			char k[KEY_STR_LEN];

			memcpy(&child, (const char *)bt + le16_to_cpu(bt->items[i].val_off),
			       sizeof(child));
			printf("    child up to %s: ", key_str(&bt->items[i].key, k));
			print_ref("", &child);
			printf("\n");
		}
	}
	return 0;
}

static void pr_problem(void *arg, u64 blkno, const char *why)
{
	perror_line(arg, "btree block %llu: %s", (unsigned long long)blkno, why);
}

static int pr_item(void *arg, const struct scoutfs_btree_item *it, const void *val,
                   unsigned int val_len)
{
	struct printer *pr = arg;
	char k[KEY_STR_LEN];

	printf("    %s seq %llu", key_str(&it->key, k), (unsigned long long)le64_to_cpu(it->seq));
	if (it->flags & SCOUTFS_ITEM_FLAG_DELETION)
		printf(" deletion");
	if (it->flags & SCOUTFS_ITEM_FLAG_DELTA)
		printf(" delta");
	if (it->flags & ~(SCOUTFS_ITEM_FLAG_DELETION | SCOUTFS_ITEM_FLAG_DELTA))
		printf(" flags 0x%x", it->flags);
	printf(": ");
	print_item_value(pr, it, val, val_len);
	return 0;
}

static const struct walk_btree_ops pr_ops = {
	.block = pr_block,
	.problem = pr_problem,
	.item = pr_item,
};

static int print_tree(struct printer *pr, const char *name, enum print_kind kind,
                      const struct scoutfs_btree_root *root, const struct scoutfs_key *skip_below)
{
	printf("\n%s: height %u, ", name, root->height);
	print_ref("root", &root->ref);
	printf("\n");
	if (root->height == 0)
		return 0;
	pr->kind = kind;
	return walk_btree(pr->bc, root, skip_below, &pr_ops, pr);
}

static int print_extents(struct printer *pr, const char *name, const struct scoutfs_alloc_root *ar)
{
	printf("\n");
	print_alloc_root("", name, ar);
	if (pr->skip_alloc) {
		if (ar->root.height)
			printf("  (items not printed: -S)\n");
		return 0;
	}
	if (ar->root.height == 0)
		return 0;
	pr->kind = PK_EXTENTS;
	return walk_btree(pr->bc, &ar->root, NULL, &pr_ops, pr);
}

struct list_print {
	struct printer *pr;
	unsigned int col;
};

static int lp_block(void *arg, const struct scoutfs_block_ref *ref,
                    const struct scoutfs_alloc_list_block *lb, const char *why)
{
	struct list_print *lp = arg;
	struct printer *pr = lp->pr;
	u64 blkno = le64_to_cpu(ref->blkno);

	if (lp->col) {
		printf("\n");
		lp->col = 0;
	}
	if (!lb) {
		perror_line(pr, "alloc list block %llu: %s", (unsigned long long)blkno, why);
		return 1;
	}
	printf("  list block %llu seq %016llx start %u nr %u, ", (unsigned long long)blkno,
	       (unsigned long long)le64_to_cpu(lb->hdr.seq), le32_to_cpu(lb->start),
	       le32_to_cpu(lb->nr));
	print_ref("next", &lb->next);
	printf("\n");
	if (blkno < cbm_nr_bits(pr->seen)) {
		if (cbm_test(pr->seen, blkno)) {
			printf("    (already printed: the list stops here)\n");
			return 1;
		}
		cbm_set(pr->seen, blkno, 1, NULL, NULL);
	}
	return 0;
}

static int lp_entry(void *arg, u64 blkno)
{
	struct list_print *lp = arg;

	if (!lp->pr->verbose)
		return 0;
	printf("%s%llu", lp->col == 0 ? "    " : " ", (unsigned long long)blkno);
	if (++lp->col == 8) {
		printf("\n");
		lp->col = 0;
	}
	return 0;
}

static int print_list(struct printer *pr, const char *name,
                      const struct scoutfs_alloc_list_head *lh)
{
	static const struct walk_list_ops ops = { .block = lp_block, .entry = lp_entry };
	struct list_print lp = { .pr = pr };
	u64 nr_blocks, nr_entries, first_nr;
	int ret;

	printf("\n");
	print_list_head("", name, lh);
	ret = walk_list(pr->bc, lh, &ops, &lp, &nr_blocks, &nr_entries, &first_nr);
	if (lp.col)
		printf("\n");
	if (ret == 0 && lh->ref.blkno)
		printf("  %llu list blocks hold %llu entries\n", (unsigned long long)nr_blocks,
		       (unsigned long long)nr_entries);
	return ret;
}

static void print_bloom(struct printer *pr, const char *name, const struct scoutfs_block_ref *ref)
{
	const struct scoutfs_bloom_block *bb;
	char why[CHECK_WHY_LEN];
	struct block *bl;
	u64 set = 0;

	printf("\n%s: ", name);
	print_ref("", ref);
	printf("\n");
	if (walk_read_ref(pr->bc, ref, SCOUTFS_BLOCK_MAGIC_BLOOM, &bl, why, sizeof(why)) < 0) {
		perror_line(pr, "bloom block %llu: %s", (unsigned long long)le64_to_cpu(ref->blkno),
		            why);
		return;
	}
	bb = bl->data;
	for (size_t i = 0; i < SCOUTFS_BLOOM_BITS / 64; i++)
		set += (u64)__builtin_popcountll(le64_to_cpu(bb->bits[i]));
	printf("  total_set %llu, %llu bits set\n", (unsigned long long)le64_to_cpu(bb->total_set),
	       (unsigned long long)set);
	block_put(pr->bc, bl);
}

/* ---------------------------------------------------------------------------------------- */
/* the super and quorum blocks */

static void print_super(const struct scoutfs_super_block *s)
{
	char a[64];
	u8 u[16];

	memcpy(u, s->uuid, sizeof(u));
	printf("super block (block %u):\n", SCOUTFS_SUPER_BLKNO);
	printf("  hdr: crc 0x%08x magic 0x%08x fsid %016llx seq %llu blkno %llu\n",
	       le32_to_cpu(s->hdr.crc), le32_to_cpu(s->hdr.magic),
	       (unsigned long long)le64_to_cpu(s->hdr.fsid),
	       (unsigned long long)le64_to_cpu(s->hdr.seq),
	       (unsigned long long)le64_to_cpu(s->hdr.blkno));
	printf("  fmt_vers %llu flags 0x%llx%s\n", (unsigned long long)le64_to_cpu(s->fmt_vers),
	       (unsigned long long)le64_to_cpu(s->flags),
	       le64_to_cpu(s->flags) & SCOUTFS_FLAG_IS_META_BDEV ? " (metadata device)" : "");
	printf("  uuid %02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x\n",
	       u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
	       u[13], u[14], u[15]);
	printf("  seq %llu next_ino %llu inode_count %llu\n",
	       (unsigned long long)le64_to_cpu(s->seq),
	       (unsigned long long)le64_to_cpu(s->next_ino),
	       (unsigned long long)le64_to_cpu(s->inode_count));
	printf("  total_meta_blocks %llu total_data_blocks %llu\n",
	       (unsigned long long)le64_to_cpu(s->total_meta_blocks),
	       (unsigned long long)le64_to_cpu(s->total_data_blocks));
	printf("  quorum config version %llu\n", (unsigned long long)le64_to_cpu(s->qconf.version));
	for (int i = 0; i < SCOUTFS_QUORUM_MAX_SLOTS; i++) {
		if (le16_to_cpu(s->qconf.slots[i].addr.family) == SCOUTFS_INET_FAMILY_NONE)
			continue;
		printf("    slot %d: %s\n", i, addr_str(&s->qconf.slots[i].addr, a, sizeof(a)));
	}
	print_alloc_root("  ", "meta_alloc[0]", &s->meta_alloc[0]);
	print_alloc_root("  ", "meta_alloc[1]", &s->meta_alloc[1]);
	print_alloc_root("  ", "data_alloc", &s->data_alloc);
	print_list_head("  ", "server_meta_avail[0]", &s->server_meta_avail[0]);
	print_list_head("  ", "server_meta_avail[1]", &s->server_meta_avail[1]);
	print_list_head("  ", "server_meta_freed[0]", &s->server_meta_freed[0]);
	print_list_head("  ", "server_meta_freed[1]", &s->server_meta_freed[1]);
	print_root("  ", "fs_root", &s->fs_root);
	print_root("  ", "logs_root", &s->logs_root);
	print_root("  ", "log_merge", &s->log_merge);
	print_root("  ", "mounted_clients", &s->mounted_clients);
	print_root("  ", "srch_root", &s->srch_root);
	printf("  volume options: set_bits 0x%llx data_alloc_zone_blocks %llu\n",
	       (unsigned long long)le64_to_cpu(s->volopt.set_bits),
	       (unsigned long long)le64_to_cpu(s->volopt.data_alloc_zone_blocks));
}

static void print_quorum(struct printer *pr, struct dev *dev, u64 fsid)
{
	static const char *const names[SCOUTFS_QUORUM_EVENT_NR] = {
		"begin", "term", "elect", "fence", "stop", "end",
	};
	struct scoutfs_quorum_block *qb;
	const char *why;
	u64 blkno;
	int ret;

	printf("\nquorum blocks:\n");
	qb = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);
	if (!qb) {
		perror_line(pr, "out of memory");
		return;
	}
	for (int i = 0; i < SCOUTFS_QUORUM_MAX_SLOTS; i++) {
		blkno = SCOUTFS_QUORUM_BLKNO + i;
		ret = dev_read(dev, qb, SCOUTFS_BLOCK_SM_SIZE, blkno << SCOUTFS_BLOCK_SM_SHIFT);
		why = NULL;
		if (ret < 0)
			why = "read error";
		else if (!block_crc_ok(qb, SCOUTFS_BLOCK_SM_SIZE))
			why = "bad checksum";
		else if (le32_to_cpu(qb->hdr.magic) != SCOUTFS_BLOCK_MAGIC_QUORUM)
			why = "not a quorum block (bad magic)";
		else if (le64_to_cpu(qb->hdr.fsid) != fsid)
			why = "belongs to another filesystem";
		else if (le64_to_cpu(qb->hdr.blkno) != blkno)
			why = "records another block number";
		if (why) {
			perror_line(pr, "quorum block of slot %d (block %llu): %s", i,
			            (unsigned long long)blkno, why);
			if (ret < 0)
				continue;
		}
		printf("  slot %d (block %llu): seq %llu write_nr %llu\n", i,
		       (unsigned long long)blkno, (unsigned long long)le64_to_cpu(qb->hdr.seq),
		       (unsigned long long)le64_to_cpu(qb->write_nr));
		for (int e = 0; e < SCOUTFS_QUORUM_EVENT_NR; e++) {
			const struct scoutfs_quorum_block_event *ev = &qb->events[e];

			if (!ev->write_nr && !ev->rid && !ev->term)
				continue;
			printf("    %-5s write_nr %llu rid %016llx term %llu time %llu.%09u\n",
			       names[e], (unsigned long long)le64_to_cpu(ev->write_nr),
			       (unsigned long long)le64_to_cpu(ev->rid),
			       (unsigned long long)le64_to_cpu(ev->term),
			       (unsigned long long)le64_to_cpu(ev->ts_sec),
			       le32_to_cpu(ev->ts_nsec));
		}
	}
	free(qb);
}

/* ---------------------------------------------------------------------------------------- */

static int print_all(struct printer *pr)
{
	struct scoutfs_super_block *s = pr->super;
	char name[96];
	int ret;

	ret = print_tree(pr, "fs_root", PK_FS, &s->fs_root, NULL);
	if (ret == 0)
		ret = print_tree(pr, "logs_root", PK_LOGS, &s->logs_root, NULL);
	for (size_t i = 0; ret == 0 && i < pr->nr_lts; i++) {
		const struct scoutfs_log_trees *lt = &pr->lts[i];
		char base[64];

		snprintf(base, sizeof(base), "log tree %016llx.%llu",
		         (unsigned long long)le64_to_cpu(lt->rid),
		         (unsigned long long)le64_to_cpu(lt->nr));
		snprintf(name, sizeof(name), "%s items", base);
		ret = print_tree(pr, name, PK_FS, &lt->item_root, NULL);
		if (ret == 0 && lt->bloom_ref.blkno) {
			snprintf(name, sizeof(name), "%s bloom block", base);
			print_bloom(pr, name, &lt->bloom_ref);
		}
		snprintf(name, sizeof(name), "%s data_avail", base);
		if (ret == 0)
			ret = print_extents(pr, name, &lt->data_avail);
		snprintf(name, sizeof(name), "%s data_freed", base);
		if (ret == 0)
			ret = print_extents(pr, name, &lt->data_freed);
		snprintf(name, sizeof(name), "%s meta_avail", base);
		if (ret == 0)
			ret = print_list(pr, name, &lt->meta_avail);
		snprintf(name, sizeof(name), "%s meta_freed", base);
		if (ret == 0)
			ret = print_list(pr, name, &lt->meta_freed);
	}
	if (ret == 0)
		ret = print_tree(pr, "log_merge", PK_LOG_MERGE, &s->log_merge, NULL);
	for (size_t i = 0; ret == 0 && i < pr->nr_freeing; i++) {
		snprintf(name, sizeof(name), "log_merge freeing seq %llu (the part not freed yet)",
		         (unsigned long long)le64_to_cpu(pr->freeing[i].seq));
		ret = print_tree(pr, name, PK_FS, &pr->freeing[i].root, &pr->freeing[i].key);
	}
	if (ret == 0)
		ret = print_tree(pr, "mounted_clients", PK_CLIENTS, &s->mounted_clients, NULL);
	if (ret == 0)
		ret = print_tree(pr, "srch_root", PK_SRCH, &s->srch_root, NULL);
	for (int i = 0; ret == 0 && i < 2; i++) {
		snprintf(name, sizeof(name), "meta_alloc[%d]", i);
		ret = print_extents(pr, name, &s->meta_alloc[i]);
	}
	if (ret == 0)
		ret = print_extents(pr, "data_alloc", &s->data_alloc);
	for (int i = 0; ret == 0 && i < 2; i++) {
		snprintf(name, sizeof(name), "server_meta_avail[%d]", i);
		ret = print_list(pr, name, &s->server_meta_avail[i]);
		snprintf(name, sizeof(name), "server_meta_freed[%d]", i);
		if (ret == 0)
			ret = print_list(pr, name, &s->server_meta_freed[i]);
	}
	return ret;
}

static int print_main(int argc, char **argv)
{
	const char *cmd = "print";
	struct scoutfs_super_block *super = NULL;
	struct printer pr = { 0 };
	struct dev *dev = NULL;
	char why[CHECK_WHY_LEN];
	u64 nr_blocks;
	int c, ret;

	log_set_level(LOG_LVL_ERR);
	while ((c = cli_getopt(cmd, argc, argv, "Sv", print_longopts)) != -1) {
		switch (c) {
		case 'S':
			pr.skip_alloc = true;
			break;
		case 'v':
			pr.verbose = true;
			break;
		default:
			return CLI_EX_USAGE;
		}
	}
	if (argc - optind != 1)
		return cli_usage_error(cmd, "one metadata device is required");

	ret = dev_open(argv[optind], DEV_RDONLY | DEV_BUFFERED, &dev);
	if (ret < 0)
		return cli_error(cmd, "cannot open %s: %s", argv[optind], strerror(-ret));
	super = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);
	if (!super) {
		ret = -ENOMEM;
		goto out;
	}
	memset(super, 0, SCOUTFS_BLOCK_SM_SIZE);
	ret = super_read(dev, 0, super, why, sizeof(why));
	if (ret < 0) {
		if (le32_to_cpu(super->hdr.magic) != SCOUTFS_BLOCK_MAGIC_SUPER) {
			ret = cli_error(cmd, "%s", why);
			goto out;
		}
		perror_line(&pr, "super block: %s; printing its contents anyway", why);
	}
	if (!(le64_to_cpu(super->flags) & SCOUTFS_FLAG_IS_META_BDEV))
		perror_line(&pr, "%s is a data device: it only holds a copy of the super block",
		            argv[optind]);
	pr.super = super;
	print_super(super);
	if (le64_to_cpu(super->flags) & SCOUTFS_FLAG_IS_META_BDEV)
		print_quorum(&pr, dev, le64_to_cpu(super->hdr.fsid));

	nr_blocks = dev_size(dev) >> SCOUTFS_BLOCK_LG_SHIFT;
	ret = block_cache_create(dev, le64_to_cpu(super->hdr.fsid), 1024, &pr.bc);
	if (ret == 0)
		ret = cbm_create(nr_blocks, &pr.seen);
	if (ret == 0 && (le64_to_cpu(super->flags) & SCOUTFS_FLAG_IS_META_BDEV))
		ret = print_all(&pr);
	if (ret < 0)
		perror_line(&pr, "printing stopped: %s", strerror(-ret));
	ret = pr.nr_errors ? CLI_EX_FAIL : 0;
	if (pr.nr_errors)
		printf("\n%llu error%s while printing.\n", (unsigned long long)pr.nr_errors,
		       pr.nr_errors == 1 ? "" : "s");
out:
	free(pr.lts);
	free(pr.freeing);
	cbm_destroy(pr.seen);
	block_cache_destroy(pr.bc);
	free(super);
	dev_close(dev);
	return ret;
}

const struct cli_cmd cli_cmd_print = {
	.name = "print",
	.group = CLI_GROUP_DEBUG,
	.summary = "print the metadata structures of a device",
	.usage = print_usage,
	.exit_status = print_exit_status,
	.fn = print_main,
};
