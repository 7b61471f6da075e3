/*
 * cmd_check.c: `scoutfs check`, verifying an unmounted filesystem.
 *
 * The check runs in phases, each over one kind of structure, and a problem in one never
 * stops the others: every problem is one line on stdout, starting with "PROBLEM:", that says
 * what is wrong, where (block numbers, inode numbers, keys) and why, and the check goes on
 * with whatever can still be read.  Nothing on the devices is trusted (check.h) and nothing
 * is written.  The phases:
 *
 *   1. the super blocks of both devices;
 *   2. the quorum blocks;
 *   3. every metadata structure reachable from the super (check_meta.c), marking each
 *      metadata block used or free and each free data block;
 *   4. the metadata block accounting: no block both used and free, used twice, free twice,
 *      or neither (leaked);
 *   5. the filesystem items, merged from fs_root and every log tree as a mount sees them
 *      (check_fs.c), marking the data blocks files reference;
 *   6. the data block accounting.
 * Blocks found twice are reported when found; a last pass names all of their owners.
 *
 * This file also holds what the phases share: the report, the marking of blocks, and the
 * leaks the marks leave (phases 4 and 6).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/check.h"
#include "cli/cli.h"
#include "dev/dev.h"
#include "util/log.h"
#include "util/util.h"

#define PROGRESS_INTERVAL_MS 5000

static const char check_usage[] =
        "Usage: scoutfs check [-q] META_DEVICE DATA_DEVICE\n"
        "\n"
        "Check an unmounted scoutfs filesystem for consistency.  The devices are only read;\n"
        "nothing is changed or repaired.  The filesystem must not be mounted anywhere while\n"
        "it is checked: the structures of a mounted filesystem change under the check and\n"
        "would be reported as damaged.\n"
        "\n"
        "What is checked:\n"
        "  Super blocks   both supers: checksums, the device pair (same filesystem, format\n"
        "                 version, metadata and data devices not swapped), sizes that fit\n"
        "                 the devices, the quorum configuration and volume options.\n"
        "  Quorum blocks  the 15 quorum blocks: checksum, magic, filesystem id, block number.\n"
        "  Metadata       every block reachable from the super -- fs_root, logs_root and\n"
        "                 every mount's log btree, bloom blocks, log_merge with the trees it\n"
        "                 is still freeing, mounted_clients, srch_root, the free extent trees\n"
        "                 of both devices and the alloc lists -- is read through its reference\n"
        "                 (checksum, block type, filesystem id, block number and seq must all\n"
        "                 match) and verified: btree blocks are well formed, keys sorted and\n"
        "                 inside the range their parent gives them; free extents don't overlap\n"
        "                 and are indexed twice; allocator and list counts are right; log\n"
        "                 trees are well formed.\n"
        "  Metadata accounting\n"
        "                 every metadata block is exactly one of: used by one structure, or\n"
        "                 free in one allocator.  Blocks used twice, both used and free, free\n"
        "                 twice, or neither (leaked) are reported, with their owners.\n"
        "  Filesystem items\n"
        "                 the items of fs_root and all log trees merged as a mount reads them\n"
        "                 (the newest version of each key; deletions hide keys):\n"
        "                 - inode items are well formed, numbered below next_ino, and counted\n"
        "                   by the super's inode count and the log trees' deltas;\n"
        "                 - every entry has its three items (dirent, readdir, link backref)\n"
        "                   with identical values, a valid name and name hash, a position\n"
        "                   below the directory's next_readdir_pos, and names an existing inode\n"
        "                   of its type;\n"
        "                 - link counts: a file's nlink is the number of entries naming it, a\n"
        "                   directory's is 2 plus its subdirectories, every directory but the\n"
        "                   root has one name and can be reached from the root; a\n"
        "                   directory's size is the sum of its entries' name lengths;\n"
        "                 - inodes with no links have an orphan item, and orphan items name\n"
        "                   such inodes;\n"
        "                 - every inode has one meta_seq index item at its meta_seq, every\n"
        "                   regular file one data_seq item at its data_seq, and no index item\n"
        "                   names a missing inode or another seq;\n"
        "                 - xattrs have all their parts, with consistent lengths, name hashes\n"
        "                   and ids, and no two share a name; symlinks have chunks holding\n"
        "                   their whole target;\n"
        "                 - data extents don't overlap, map blocks inside the data device,\n"
        "                   add up to the inode's online and offline block counts, and hold\n"
        "                   no data past the end of the file unless a truncate is underway.\n"
        "  Data accounting\n"
        "                 every data block is exactly one of: referenced by one file extent,\n"
        "                 or free in one allocator (data_alloc, and every log tree's data_avail\n"
        "                 and data_freed).  Blocks referenced twice, referenced and free, free\n"
        "                 twice, or neither (leaked) are reported.\n"
        "\n"
        "Not checked: srch files (reported if present), quota rules, .totl. and .indx. items\n"
        "(they are counted), the contents of bloom blocks beyond their bit count, the data\n"
        "allocation zones of log trees, inode times and ownership, and file contents.\n"
        "\n"
        "Output:\n"
        "  The name of each phase and what it found, a progress line every few seconds on\n"
        "  large filesystems, one line per problem starting with `PROBLEM:', then a summary.\n"
        "\n"
        "Options:\n"
        "  -q, --quiet      print only problems and the summary\n"
        "      --help       show this help and exit\n";

static const char check_exit_status[] =
        "Exit status:\n"
        "  0   the filesystem is consistent\n"
        "  1   problems were found (or the check could not be completed)\n"
        "  64  invalid arguments\n";

static const struct option check_longopts[] = {
	{ "quiet", no_argument, NULL, 'q' },
	{ NULL, 0, NULL, 0 },
};

/* ---------------------------------------------------------------------------------------- */
/* the report */

void check_problem(struct check *chk, const char *fmt, ...)
{
	va_list ap;

	if (chk->owner_mode)
		return;
	chk->nr_problems++;
	fputs("PROBLEM: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

void check_note(struct check *chk, const char *fmt, ...)
{
	va_list ap;

	if (chk->quiet || chk->owner_mode)
		return;
	fputs("  ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

bool check_progress_due(struct check *chk)
{
	u64 now = now_mono_ms();

	if (chk->owner_mode || chk->quiet)
		return false;
	if (chk->next_progress_ms == 0) {
		chk->next_progress_ms = now + PROGRESS_INTERVAL_MS;
		return false;
	}
	if (now < chk->next_progress_ms)
		return false;
	chk->next_progress_ms = now + PROGRESS_INTERVAL_MS;
	return true;
}

const char *check_range_str(u64 start, u64 len, char *buf, size_t buf_len)
{
	if (len == 1)
		snprintf(buf, buf_len, "block %llu", (unsigned long long)start);
	else
		snprintf(buf, buf_len, "blocks %llu-%llu (%llu blocks)", (unsigned long long)start,
		         (unsigned long long)(start + len - 1), (unsigned long long)len);
	return buf;
}

/* ---------------------------------------------------------------------------------------- */
/* ranges */

void check_ranges_add(struct check_ranges *cr, u64 start, u64 len)
{
	if (cr->nr == cr->alloced) {
		size_t nr = cr->alloced ? cr->alloced * 2 : 16;
		void *p = realloc(cr->r, nr * sizeof(cr->r[0]));

		if (!p)
			return; /* only the naming of owners suffers */
		cr->r = p;
		cr->alloced = nr;
	}
	cr->r[cr->nr].start = start;
	cr->r[cr->nr].len = len;
	cr->nr++;
}

static int cmp_range(const void *a, const void *b)
{
	const struct check_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start ? 1 : 0;
}

void check_ranges_sort(struct check_ranges *cr)
{
	size_t o = 0;

	if (cr->nr == 0)
		return;
	qsort(cr->r, cr->nr, sizeof(cr->r[0]), cmp_range);
	for (size_t i = 1; i < cr->nr; i++) {
		struct check_range *last = &cr->r[o];
		u64 end = last->start + last->len;

		if (cr->r[i].start <= end) {
			if (cr->r[i].start + cr->r[i].len > end)
				last->len = cr->r[i].start + cr->r[i].len - last->start;
		} else {
			cr->r[++o] = cr->r[i];
		}
	}
	cr->nr = o + 1;
}

void check_ranges_overlaps(const struct check_ranges *cr, u64 start, u64 len, cbm_run_fn fn,
                           void *arg)
{
	u64 end = start + len;
	size_t a = 0, b = cr->nr, mid;

	/* the first range that ends after start */
	while (a < b) {
		mid = a + (b - a) / 2;
		if (cr->r[mid].start + cr->r[mid].len <= start)
			a = mid + 1;
		else
			b = mid;
	}
	for (; a < cr->nr && cr->r[a].start < end; a++) {
		u64 s = max_t(u64, start, cr->r[a].start);
		u64 e = min_t(u64, end, cr->r[a].start + cr->r[a].len);

		if (s < e)
			fn(arg, s, e - s);
	}
}

void check_ranges_free(struct check_ranges *cr)
{
	free(cr->r);
	memset(cr, 0, sizeof(*cr));
}

/* ---------------------------------------------------------------------------------------- */
/* marking blocks */

struct mark {
	struct check *chk;
	bool meta;
	bool used;
	const char *owner;
};

static const char *dev_word(const struct mark *mk)
{
	return mk->meta ? "metadata" : "data";
}

static const char *use_words(const struct mark *mk)
{
	return mk->used ? (mk->meta ? "used by" : "referenced by") : "free in";
}

/* the blocks were already marked the same way */
static void marked_again(void *arg, u64 start, u64 len)
{
	struct mark *mk = arg;
	char r[96];

	check_problem(mk->chk, "%s %s %s %s %s, but %s already %s", dev_word(mk),
	              check_range_str(start, len, r, sizeof(r)), len == 1 ? "is" : "are",
	              use_words(mk), mk->owner, len == 1 ? "was" : "were",
	              mk->used ? (mk->meta ? "used by another structure"
	                                   : "referenced by another file extent")
	                       : "free in another allocator");
	check_ranges_add(mk->meta ? &mk->chk->meta_conflicts : &mk->chk->data_conflicts, start,
	                 len);
}

/* the blocks were already marked the other way */
static void marked_both(void *arg, u64 start, u64 len)
{
	struct mark *mk = arg;
	char r[96];

	check_problem(mk->chk, "%s %s %s %s %s, but %s", dev_word(mk),
	              check_range_str(start, len, r, sizeof(r)), len == 1 ? "is" : "are",
	              use_words(mk), mk->owner,
	              mk->used ? "free in an allocator"
	                       : (mk->meta ? "in use" : "referenced by a file"));
	check_ranges_add(mk->meta ? &mk->chk->meta_conflicts : &mk->chk->data_conflicts, start,
	                 len);
}

static void owner_line(void *arg, u64 start, u64 len)
{
	struct mark *mk = arg;
	char r[96];

	printf("  owner: %s %s %s %s\n", dev_word(mk), check_range_str(start, len, r, sizeof(r)),
	       use_words(mk), mk->owner);
}

static void mark_blocks(struct check *chk, bool meta, u64 start, u64 len, bool used,
                        const char *owner)
{
	struct mark mk = { .chk = chk, .meta = meta, .used = used, .owner = owner };
	u64 lo = meta ? SCOUTFS_META_DEV_START_BLKNO : SCOUTFS_DATA_DEV_START_BLKNO;
	u64 hi = meta ? chk->total_meta : chk->total_data;
	struct cbitmap *same = meta ? (used ? chk->meta_used : chk->meta_free)
	                            : (used ? chk->data_used : chk->data_free);
	struct cbitmap *other = meta ? (used ? chk->meta_free : chk->meta_used)
	                             : (used ? chk->data_free : chk->data_used);
	char r[96];
	u64 end;

	if (len == 0)
		return;
	end = start + len < start ? ~0ULL : start + len;
	if (chk->owner_mode) {
		check_ranges_overlaps(meta ? &chk->meta_conflicts : &chk->data_conflicts, start,
		                      end - start, owner_line, &mk);
		return;
	}
	if (start < lo || end > hi) {
		check_problem(chk, "%s %s %s %s %s outside the device's %s blocks %llu-%llu",
		              dev_word(&mk), check_range_str(start, end - start, r, sizeof(r)),
		              use_words(&mk), owner, len == 1 ? "is" : "are", dev_word(&mk),
		              (unsigned long long)lo, (unsigned long long)(hi ? hi - 1 : 0));
		start = max_t(u64, start, lo);
		end = min_t(u64, end, hi);
		if (start >= end)
			return;
	}
	if (cbm_set(same, start, end - start, marked_again, &mk) < 0)
		check_problem(chk, "out of memory marking %s blocks", dev_word(&mk));
	cbm_runs(other, start, end - start, true, marked_both, &mk);
}

void check_mark_meta(struct check *chk, u64 start, u64 len, bool used, const char *owner)
{
	mark_blocks(chk, true, start, len, used, owner);
}

void check_mark_data(struct check *chk, u64 start, u64 len, bool used, const char *owner)
{
	mark_blocks(chk, false, start, len, used, owner);
}

/* blocks that are neither used nor free */
static void leaked(void *arg, u64 start, u64 len)
{
	struct mark *mk = arg;
	char r[96];

	check_problem(mk->chk, "%s %s neither %s nor free: leaked", dev_word(mk),
	              check_range_str(start, len, r, sizeof(r)),
	              mk->meta ? "used" : "referenced by a file");
}

/* blocks that are not used: leaked unless they are free */
static void not_used(void *arg, u64 start, u64 len)
{
	struct mark *mk = arg;

	cbm_runs(mk->meta ? mk->chk->meta_free : mk->chk->data_free, start, len, false, leaked, mk);
}

/* once everything is marked: every block of the device must be used or free */
static void check_leaks(struct check *chk, bool meta)
{
	struct mark mk = { .chk = chk, .meta = meta };
	u64 lo = meta ? SCOUTFS_META_DEV_START_BLKNO : SCOUTFS_DATA_DEV_START_BLKNO;
	u64 hi = meta ? chk->total_meta : chk->total_data;

	if (hi <= lo)
		return;
	cbm_runs(meta ? chk->meta_used : chk->data_used, lo, hi - lo, false, not_used, &mk);
}

/* ---------------------------------------------------------------------------------------- */

static void phase(struct check *chk, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void phase(struct check *chk, const char *fmt, ...)
{
	va_list ap;

	if (chk->quiet)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

static void could_not_finish(struct check *chk, const char *what, int err)
{
	check_problem(chk, "the check of %s could not finish: %s", what, strerror(-err));
}

static int check_main(int argc, char **argv)
{
	const char *cmd = "check";
	struct check chk;
	u64 used, free_blocks;
	int c, ret;

	memset(&chk, 0, sizeof(chk));
	/* the library's warnings (no O_DIRECT on a file, ...) are no news for a checker */
	log_set_level(LOG_LVL_ERR);
	while ((c = cli_getopt(cmd, argc, argv, "q", check_longopts)) != -1) {
		switch (c) {
		case 'q':
			chk.quiet = true;
			break;
		default:
			return CLI_EX_USAGE;
		}
	}
	if (argc - optind != 2)
		return cli_usage_error(cmd, "a metadata device and a data device are required");
	chk.meta_path = argv[optind];
	chk.data_path = argv[optind + 1];

	phase(&chk, "Checking the scoutfs filesystem on %s (metadata) and %s (data)", chk.meta_path,
	      chk.data_path);

	phase(&chk, "Phase 1: super blocks");
	ret = check_supers(&chk);
	if (ret < 0) {
		if (!chk.super || le32_to_cpu(chk.super->hdr.magic) != SCOUTFS_BLOCK_MAGIC_SUPER ||
		    ret == -ENOMEM || ret == -EINVAL)
			check_problem(&chk,
			              "nothing more can be checked without a metadata super block");
		else
			could_not_finish(&chk, "the super blocks", ret);
		goto summary;
	}
	check_note(&chk,
	           "filesystem %016llx, format version %llu, seq %llu, %llu metadata blocks, %llu "
	           "data blocks",
	           (unsigned long long)chk.fsid,
	           (unsigned long long)le64_to_cpu(chk.super->fmt_vers),
	           (unsigned long long)le64_to_cpu(chk.super->seq),
	           (unsigned long long)chk.total_meta, (unsigned long long)chk.total_data);

	phase(&chk, "Phase 2: quorum blocks");
	check_quorum(&chk);

	phase(&chk, "Phase 3: metadata structures");
	ret = check_meta_structures(&chk);
	if (ret < 0)
		could_not_finish(&chk, "the metadata structures", ret);
	check_note(&chk,
	           "%llu btree blocks, %llu alloc list blocks, %llu other blocks, %llu log trees",
	           (unsigned long long)chk.nr_btree_blocks, (unsigned long long)chk.nr_list_blocks,
	           (unsigned long long)chk.nr_other_blocks, (unsigned long long)chk.nr_lts);

	phase(&chk, "Phase 4: metadata block accounting");
	check_leaks(&chk, true);
	used = cbm_weight(chk.meta_used);
	free_blocks = cbm_weight(chk.meta_free);
	check_note(&chk, "%llu metadata blocks used, %llu free, of %llu", (unsigned long long)used,
	           (unsigned long long)free_blocks,
	           (unsigned long long)(chk.total_meta > SCOUTFS_META_DEV_START_BLKNO
	                                        ? chk.total_meta - SCOUTFS_META_DEV_START_BLKNO
	                                        : 0));

	phase(&chk, "Phase 5: filesystem items (fs_root merged with %llu log trees)",
	      (unsigned long long)chk.nr_lts);
	ret = check_fs_items(&chk);
	if (ret < 0)
		could_not_finish(&chk, "the filesystem items", ret);
	check_note(&chk,
	           "%llu items: %llu inodes (%llu directories, %llu regular files), %llu entries, "
	           "%llu xattrs, %llu extents",
	           (unsigned long long)chk.nr_items, (unsigned long long)chk.nr_inodes,
	           (unsigned long long)chk.nr_dirs, (unsigned long long)chk.nr_regular,
	           (unsigned long long)chk.nr_entries, (unsigned long long)chk.nr_xattrs,
	           (unsigned long long)chk.nr_extents);

	phase(&chk, "Phase 6: data block accounting");
	check_leaks(&chk, false);
	check_note(&chk, "%llu data blocks referenced by files, %llu free, of %llu",
	           (unsigned long long)cbm_weight(chk.data_used),
	           (unsigned long long)cbm_weight(chk.data_free),
	           (unsigned long long)(chk.total_data > SCOUTFS_DATA_DEV_START_BLKNO
	                                        ? chk.total_data - SCOUTFS_DATA_DEV_START_BLKNO
	                                        : 0));

	if (chk.meta_conflicts.nr || chk.data_conflicts.nr) {
		printf("The owners of the blocks found more than once:\n");
		ret = check_meta_owners(&chk);
		if (ret == 0 && chk.data_conflicts.nr)
			ret = check_data_owners(&chk);
		if (ret < 0)
			could_not_finish(&chk, "naming the owners of blocks", ret);
	}

summary:
	if (chk.nr_problems)
		printf("%llu problem%s found.\n", (unsigned long long)chk.nr_problems,
		       chk.nr_problems == 1 ? "" : "s");
	else
		printf("No problems found.\n");

	check_ranges_free(&chk.meta_conflicts);
	check_ranges_free(&chk.data_conflicts);
	cbm_destroy(chk.meta_used);
	cbm_destroy(chk.meta_free);
	cbm_destroy(chk.data_used);
	cbm_destroy(chk.data_free);
	free(chk.lts);
	block_cache_destroy(chk.bc);
	dev_close(chk.meta_dev);
	free(chk.super);
	return chk.nr_problems ? CLI_EX_FAIL : CLI_EX_OK;
}

const struct cli_cmd cli_cmd_check = {
	.name = "check",
	.group = CLI_GROUP_CORE,
	.summary = "check an unmounted filesystem for consistency",
	.usage = check_usage,
	.exit_status = check_exit_status,
	.fn = check_main,
};
