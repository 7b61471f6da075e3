/*
 * test_check.c: `scoutfs check` finds what is wrong, and only what is wrong.
 *
 * Each test makes a filesystem on sparse temporary files with the real `scoutfs mkfs` (its
 * path is argv[1]), then edits it offline with the library the way a server commit would:
 * items are written into fs_root (and into a log tree) with copy-on-write, the blocks come
 * from a small allocator carved out of meta_alloc[0], blocks freed by copy-on-write go back
 * to meta_alloc[0], data blocks are taken out of data_alloc, and the new super is written
 * last.  A correct image must check clean (exit 0); then single faults are injected -- a
 * flipped byte, a missing item, a wrong count, blocks shared or leaked -- and check must exit
 * 1 and name the problem.  `scoutfs print` must print the same images without errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc/alloc.h"
#include "block/block.h"
#include "block/super.h"
#include "btree/btree.h"
#include "dev/dev.h"
#include "format/key.h"
#include "util/crc32c.h"
#include "util/hash.h"

#include "cli_support.h"

static const char *scoutfs_exe;
static char tmp_dir[PATH_MAX];
static char meta_path[PATH_MAX + 16];
static char data_path[PATH_MAX + 16];

/* ------------------------------------------------------------------------------------------ */
/* running the command */

struct result {
	int status;
	char *out; /* stdout and stderr */
};

static void free_result(struct result *r)
{
	free(r->out);
	free(r);
}

/* run scoutfs with the NULL-terminated arguments */
static struct result *run(const char *arg, ...)
{
	struct result *r = calloc(1, sizeof(*r));
	char out_path[PATH_MAX + 16];
	struct stat st;
	ssize_t n;
	va_list ap;
	int fd;

	assert_non_null(r);
	snprintf(out_path, sizeof(out_path), "%s/out", tmp_dir);
	va_start(ap, arg);
	r->status = cli_run(scoutfs_exe, out_path, NULL, arg, ap);
	va_end(ap);

	fd = open(out_path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	r->out = calloc(1, (size_t)st.st_size + 1);
	assert_non_null(r->out);
	n = read(fd, r->out, (size_t)st.st_size);
	assert_int_equal(n, st.st_size);
	close(fd);
	return r;
}

/* check must find problems, one of which contains what */
static void expect_problem(const char *what)
{
	struct result *r = run("check", meta_path, data_path, NULL);

	if (r->status != 1 || !strstr(r->out, what) || getenv("TEST_CHECK_VERBOSE"))
		fprintf(stderr, "expected a problem with '%s', got status %d:\n%s\n", what,
		        r->status, r->out);
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->out, what));
	assert_non_null(strstr(r->out, "PROBLEM: "));
	free_result(r);
}

static void expect_clean(void)
{
	struct result *r = run("check", meta_path, data_path, NULL);

	if (r->status != 0)
		fprintf(stderr, "expected a clean check, got status %d:\n%s\n", r->status, r->out);
	assert_int_equal(r->status, 0);
	assert_non_null(strstr(r->out, "No problems found."));
	assert_null(strstr(r->out, "PROBLEM"));
	free_result(r);
}

static void make_fs(void)
{
	struct result *r;
	int fd;

	unlink(meta_path);
	unlink(data_path);
	fd = open(meta_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 128ULL << 20), 0);
	close(fd);
	fd = open(data_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 64ULL << 20), 0);
	close(fd);
	r = run("mkfs", "-A", "-f", "-Q", "0,127.0.0.1,45999", meta_path, data_path, NULL);
	if (r->status != 0)
		fprintf(stderr, "mkfs failed:\n%s\n", r->out);
	assert_int_equal(r->status, 0);
	free_result(r);
}

/* ------------------------------------------------------------------------------------------ */
/* editing an image offline */

struct test_alloc {
	u64 next;
	u64 end;
	u64 freed[1024];
	int nr_freed;
};

static int ta_alloc(void *arg, u64 *blkno)
{
	struct test_alloc *ta = arg;

	if (ta->next >= ta->end)
		return -ENOSPC;
	*blkno = ta->next++;
	return 0;
}

static int ta_free(void *arg, u64 blkno)
{
	struct test_alloc *ta = arg;

	if (ta->nr_freed == (int)(sizeof(ta->freed) / sizeof(ta->freed[0])))
		return -ENOSPC;
	ta->freed[ta->nr_freed++] = blkno;
	return 0;
}

struct img {
	struct dev *dev;
	struct block_cache *bc;
	struct block_writer *wri;
	struct scoutfs_super_block *super;
	struct test_alloc ta;
	struct block_allocator ba;
	struct btree_txn txn;
	u64 seq; /* the item seq of everything written */
};

#define BATCH 256

static void img_open(struct img *im)
{
	struct alloc_extent ext;
	char why[256];

	memset(im, 0, sizeof(*im));
	assert_int_equal(dev_open(meta_path, DEV_RDWR | DEV_BUFFERED, &im->dev), 0);
	im->super = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);
	assert_non_null(im->super);
	assert_int_equal(super_read(im->dev, 0, im->super, why, sizeof(why)), 0);
	assert_int_equal(block_cache_create(im->dev, le64_to_cpu(im->super->hdr.fsid), 0, &im->bc),
	                 0);
	assert_int_equal(block_writer_create(im->bc, &im->wri), 0);
	im->ba.alloc_meta = ta_alloc;
	im->ba.free_meta = ta_free;
	im->ba.arg = &im->ta;
	im->txn.wri = im->wri;
	im->txn.alloc = &im->ba;
	im->seq = le64_to_cpu(im->super->seq) + 1;

	/* a batch of blocks from the front of the first free extent, removed with themselves */
	ext.start = 0;
	ext.len = 0;
	do {
		assert_int_equal(alloc_ext_next(im->bc, &im->super->meta_alloc[0],
		                                ext.start + ext.len, &ext),
		                 0);
	} while (ext.len < BATCH);
	im->ta.next = ext.start;
	im->ta.end = ext.start + BATCH;
	assert_int_equal(alloc_ext_remove(&im->txn, &im->super->meta_alloc[0], ext.start, BATCH),
	                 0);
}

/* give back what wasn't used and what was freed, write the blocks and then the super */
static void img_close(struct img *im)
{
	u64 start, len;

	while (im->ta.nr_freed) {
		u64 blkno = im->ta.freed[--im->ta.nr_freed];

		assert_int_equal(alloc_ext_insert(&im->txn, &im->super->meta_alloc[0], blkno, 1),
		                 0);
	}
	start = im->ta.next;
	len = im->ta.end - im->ta.next;
	im->ta.end = im->ta.next; /* the path is dirty: giving back needs no new blocks */
	if (len)
		assert_int_equal(alloc_ext_insert(&im->txn, &im->super->meta_alloc[0], start, len),
		                 0);
	assert_int_equal(im->ta.nr_freed, 0);

	assert_int_equal(block_writer_write(im->wri), 0);
	im->super->seq = cpu_to_le64(im->seq + 1);
	le64_add_cpu(&im->super->hdr.seq, 1);
	assert_int_equal(block_sm_write(im->dev, SCOUTFS_SUPER_BLKNO, SCOUTFS_BLOCK_MAGIC_SUPER,
	                                le64_to_cpu(im->super->hdr.fsid), im->super,
	                                sizeof(*im->super)),
	                 0);
	assert_int_equal(dev_flush(im->dev), 0);
	block_writer_destroy(im->wri);
	block_cache_destroy(im->bc);
	dev_close(im->dev);
	free(im->super);
}

static void put_flags(struct img *im, struct scoutfs_btree_root *root, struct scoutfs_key key,
                      const void *val, unsigned int len, u8 flags)
{
	struct btree_item_list *bil = calloc(1, sizeof(*bil) + len);

	assert_non_null(bil);
	bil->key = key;
	bil->seq = im->seq;
	bil->flags = flags;
	bil->val_len = len;
	if (len)
		memcpy(bil->val, val, len);
	assert_int_equal(btree_insert_list(&im->txn, root, bil, NULL), 0);
	free(bil);
}

static void put(struct img *im, struct scoutfs_key key, const void *val, unsigned int len)
{
	put_flags(im, &im->super->fs_root, key, val, len, 0);
}

static void del(struct img *im, struct scoutfs_key key)
{
	assert_int_equal(btree_delete(&im->txn, &im->super->fs_root, &key), 0);
}

static int get(struct img *im, struct scoutfs_key key, void *val, unsigned int len)
{
	struct btree_item_ref iref;
	int ret;

	ret = btree_lookup(im->bc, &im->super->fs_root, &key, &iref);
	if (ret < 0)
		return ret;
	assert_true(iref.val_len <= len);
	memcpy(val, iref.val, iref.val_len);
	ret = (int)iref.val_len;
	btree_iref_put(&iref);
	return ret;
}

/* ---- keys and values, as the fs layer writes them ---- */

static struct scoutfs_key inode_key(u64 ino)
{
	return key_make(SCOUTFS_FS_ZONE, ino, SCOUTFS_INODE_TYPE, 0, 0, 0);
}

static struct scoutfs_key index_key(u8 type, u64 seq, u64 ino)
{
	return key_make(SCOUTFS_INODE_INDEX_ZONE, 0, type, seq, ino, 0);
}

static u64 name_hash(const char *name, size_t len)
{
	u32 prefix = 0;

	for (size_t i = 0; i < 4; i++)
		prefix = (prefix << 8) | (i < len ? (u8)name[i] : 0);
	return ((u64)prefix << 32) | fnv1a32(name, len);
}

static struct scoutfs_inode get_inode(struct img *im, u64 ino)
{
	struct scoutfs_inode si;

	memset(&si, 0, sizeof(si));
	assert_int_equal(get(im, inode_key(ino), &si, sizeof(si)), sizeof(si));
	return si;
}

static void put_inode(struct img *im, u64 ino, const struct scoutfs_inode *si)
{
	put(im, inode_key(ino), si, sizeof(*si));
}

/* a new inode with its index items; the caller counts it in the super */
static void new_inode(struct img *im, u64 ino, u32 mode, u32 nlink)
{
	struct scoutfs_inode si;

	memset(&si, 0, sizeof(si));
	si.mode = cpu_to_le32(mode);
	si.nlink = cpu_to_le32(nlink);
	si.meta_seq = cpu_to_le64(im->seq);
	si.data_seq = cpu_to_le64(im->seq);
	si.atime.sec = si.ctime.sec = si.mtime.sec = si.crtime.sec = cpu_to_le64(1700000000);
	if (S_ISDIR(mode))
		si.next_readdir_pos = cpu_to_le64(SCOUTFS_DIRENT_FIRST_POS);
	put_inode(im, ino, &si);
	put(im, index_key(SCOUTFS_INODE_INDEX_META_SEQ_TYPE, im->seq, ino), NULL, 0);
	if (S_ISREG(mode))
		put(im, index_key(SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE, im->seq, ino), NULL, 0);
	le64_add_cpu(&im->super->inode_count, 1);
	if (ino >= le64_to_cpu(im->super->next_ino))
		im->super->next_ino = cpu_to_le64(ino + 1);
}

/* an entry's three items, and the directory's size and next position */
static u64 add_entry(struct img *im, u64 dir, const char *name, u64 ino, u8 type)
{
	struct scoutfs_inode di = get_inode(im, dir);
	size_t len = strlen(name);
	u8 buf[sizeof(struct scoutfs_dirent) + SCOUTFS_NAME_LEN];
	struct scoutfs_dirent *d = (void *)buf;
	u64 pos = le64_to_cpu(di.next_readdir_pos);
	u64 hash = name_hash(name, len);
	unsigned int bytes = (unsigned int)(sizeof(*d) + len);

	memset(buf, 0, sizeof(buf));
	d->ino = cpu_to_le64(ino);
	d->hash = cpu_to_le64(hash);
	d->pos = cpu_to_le64(pos);
	d->type = type;
	memcpy(d->name, name, len);
	put(im, key_make(SCOUTFS_FS_ZONE, dir, SCOUTFS_DIRENT_TYPE, hash, pos, 0), buf, bytes);
	put(im, key_make(SCOUTFS_FS_ZONE, dir, SCOUTFS_READDIR_TYPE, pos, 0, 0), buf, bytes);
	put(im, key_make(SCOUTFS_FS_ZONE, ino, SCOUTFS_LINK_BACKREF_TYPE, dir, pos, 0), buf, bytes);

	di = get_inode(im, dir);
	di.next_readdir_pos = cpu_to_le64(pos + 1);
	le64_add_cpu(&di.size, (s64)len);
	if (type == SCOUTFS_DT_DIR)
		di.nlink = cpu_to_le32(le32_to_cpu(di.nlink) + 1);
	put_inode(im, dir, &di);
	return pos;
}

static void add_xattr(struct img *im, u64 ino, const char *name, const char *val, size_t val_len)
{
	struct scoutfs_inode si = get_inode(im, ino);
	size_t nlen = strlen(name), total = sizeof(struct scoutfs_xattr) + nlen + val_len;
	u8 *buf = calloc(1, total);
	struct scoutfs_xattr *x = (void *)buf;
	u64 id = le64_to_cpu(si.next_xattr_id);
	u64 hash = crc32c(name, nlen);

	assert_non_null(buf);
	x->val_len = cpu_to_le16((u16)val_len);
	x->name_len = (u8)nlen;
	memcpy(x->name, name, nlen);
	memcpy(buf + sizeof(*x) + nlen, val, val_len);
	for (size_t off = 0, part = 0; off < total; off += SCOUTFS_XATTR_PART_SIZE, part++) {
		size_t n = total - off < SCOUTFS_XATTR_PART_SIZE ? total - off
		                                                 : SCOUTFS_XATTR_PART_SIZE;

		put(im, key_make(SCOUTFS_FS_ZONE, ino, SCOUTFS_XATTR_TYPE, hash, id, (u8)part),
		    buf + off, (unsigned int)n);
	}
	free(buf);
	si.next_xattr_id = cpu_to_le64(id + 1);
	put_inode(im, ino, &si);
}

/* map file blocks [0, nr) of ino to new data blocks; returns the first data block */
static u64 add_extent(struct img *im, u64 ino, u64 first, u64 nr)
{
	struct scoutfs_data_extent_val dv;
	struct scoutfs_inode si = get_inode(im, ino);
	struct alloc_extent ext;

	assert_int_equal(alloc_ext_alloc(&im->txn, &im->super->data_alloc, nr, &ext), 0);
	assert_int_equal(ext.len, nr);
	memset(&dv, 0, sizeof(dv));
	dv.blkno = cpu_to_le64(ext.start);
	put(im, key_make(SCOUTFS_FS_ZONE, ino, SCOUTFS_DATA_EXTENT_TYPE, first + nr - 1, nr, 0),
	    &dv, sizeof(dv));
	le64_add_cpu(&si.online_blocks, (s64)nr);
	if ((first + nr) * SCOUTFS_BLOCK_SM_SIZE > le64_to_cpu(si.size))
		si.size = cpu_to_le64((first + nr) * SCOUTFS_BLOCK_SM_SIZE);
	put_inode(im, ino, &si);
	return ext.start;
}

/*
 * The content every fault test starts from:
 *	/d			dir 1024
 *	/d/f, /d/link		file 1025 (two links), 4 blocks, xattrs user.a and user.big
 *	/d/g			file 1026, 1 block
 *	/d/s			symlink 1027 -> "target/of/the/link"
 */
#define DIR_INO 1024
#define F_INO   1025
#define G_INO   1026
#define S_INO   1027
static const char symlink_target[] = "target/of/the/link";

static u64 f_blkno;
static u64 f_pos;

static void make_content(void)
{
	char big[2000];
	struct img im;

	make_fs();
	img_open(&im);
	new_inode(&im, DIR_INO, S_IFDIR | 0755, 2);
	add_entry(&im, SCOUTFS_ROOT_INO, "d", DIR_INO, SCOUTFS_DT_DIR);

	new_inode(&im, F_INO, S_IFREG | 0644, 2);
	f_pos = add_entry(&im, DIR_INO, "f", F_INO, SCOUTFS_DT_REG);
	add_entry(&im, DIR_INO, "link", F_INO, SCOUTFS_DT_REG);
	f_blkno = add_extent(&im, F_INO, 0, 4);
	add_xattr(&im, F_INO, "user.a", "hello", 5);
	memset(big, 'v', sizeof(big));
	add_xattr(&im, F_INO, "user.big", big, sizeof(big));

	new_inode(&im, G_INO, S_IFREG | 0600, 1);
	add_entry(&im, DIR_INO, "g", G_INO, SCOUTFS_DT_REG);
	add_extent(&im, G_INO, 0, 1);

	new_inode(&im, S_INO, S_IFLNK | 0777, 1);
	add_entry(&im, DIR_INO, "s", S_INO, SCOUTFS_DT_LNK);
	{
		struct scoutfs_inode si = get_inode(&im, S_INO);

		put(&im, key_make(SCOUTFS_FS_ZONE, S_INO, SCOUTFS_SYMLINK_TYPE, 0, 0, 0),
		    symlink_target, sizeof(symlink_target));
		si.size = cpu_to_le64(sizeof(symlink_target));
		put_inode(&im, S_INO, &si);
	}
	img_close(&im);
}

/* ------------------------------------------------------------------------------------------ */
/* tests */

static void test_fresh_mkfs_is_clean(void **state)
{
	struct result *r;

	make_fs();
	expect_clean();
	r = run("print", meta_path, NULL);
	assert_int_equal(r->status, 0);
	assert_non_null(strstr(r->out, "super block (block 16)"));
	assert_non_null(strstr(r->out, "16.1.4.0.0.0 seq 1: inode: mode 040755 nlink 2"));
	assert_non_null(strstr(r->out, "meta_seq index: seq 1 ino 1"));
	assert_non_null(strstr(r->out, "quorum blocks:"));
	free_result(r);
}

static void test_content_is_clean(void **state)
{
	struct result *r;

	make_content();
	expect_clean();

	r = run("check", meta_path, data_path, NULL);
	assert_non_null(strstr(
	        r->out,
	        "5 inodes (2 directories, 2 regular files), 5 entries, 2 xattrs, 2 extents"));
	assert_non_null(strstr(r->out, "5 data blocks referenced by files"));
	free_result(r);

	r = run("print", meta_path, NULL);
	assert_int_equal(r->status, 0);
	assert_null(strstr(r->out, "ERROR"));
	assert_non_null(strstr(r->out, "readdir: ino 1025 hash"));
	assert_non_null(strstr(r->out, "name 'link'"));
	assert_non_null(strstr(r->out, "link backref: ino 1024"));
	assert_non_null(strstr(r->out, "inode: mode 0100644 nlink 2"));
	assert_non_null(strstr(r->out, "extent: file blocks 0-3 (4) -> data blkno"));
	assert_non_null(strstr(r->out, "xattr id 0 part 0: val_len 5 name_len 6 name 'user.a'"));
	assert_non_null(strstr(r->out, "xattr id 1 part 2: "));
	assert_non_null(strstr(r->out, "symlink chunk 0: 'target/of/the/link\\x00'"));
	assert_non_null(strstr(r->out, "data_seq index: seq"));
	assert_non_null(strstr(r->out, "free extent"));
	free_result(r);

	r = run("print", "-S", meta_path, NULL);
	assert_int_equal(r->status, 0);
	assert_non_null(strstr(r->out, "(items not printed: -S)"));
	free_result(r);
}

/*
 * Newer versions of items in a finalized log tree: a new entry and inode, an updated
 * directory, and a deletion item that hides an fs_root xattr.  The merged view is clean.
 */
static void test_log_tree_is_clean(void **state)
{
	struct scoutfs_log_trees lt;
	struct scoutfs_inode di, ni;
	struct scoutfs_key key;
	u8 buf[sizeof(struct scoutfs_dirent) + 8];
	struct scoutfs_dirent *d = (void *)buf;
	struct result *r;
	struct img im;
	u64 pos, ino = 1030;

	make_content();
	img_open(&im);
	memset(&lt, 0, sizeof(lt));
	lt.rid = cpu_to_le64(0x1234);
	lt.nr = cpu_to_le64(1);
	lt.flags = cpu_to_le64(SCOUTFS_LOG_TREES_FINALIZED);
	im.seq++;
	lt.get_trans_seq = lt.commit_trans_seq = cpu_to_le64(im.seq);
	lt.max_item_seq = cpu_to_le64(im.seq);
	lt.finalize_seq = cpu_to_le64(im.seq + 1);
	lt.inode_count_delta = cpu_to_le64(1);

	di = get_inode(&im, DIR_INO);
	pos = le64_to_cpu(di.next_readdir_pos);
	di.next_readdir_pos = cpu_to_le64(pos + 1);
	le64_add_cpu(&di.size, 4);
	put_flags(&im, &lt.item_root, inode_key(DIR_INO), &di, sizeof(di), 0);

	memset(&ni, 0, sizeof(ni));
	ni.mode = cpu_to_le32(S_IFREG | 0644);
	ni.nlink = cpu_to_le32(1);
	ni.meta_seq = ni.data_seq = cpu_to_le64(im.seq);
	put_flags(&im, &lt.item_root, inode_key(ino), &ni, sizeof(ni), 0);
	put_flags(&im, &lt.item_root, index_key(SCOUTFS_INODE_INDEX_META_SEQ_TYPE, im.seq, ino),
	          NULL, 0, 0);
	put_flags(&im, &lt.item_root, index_key(SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE, im.seq, ino),
	          NULL, 0, 0);
	memset(buf, 0, sizeof(buf));
	d->ino = cpu_to_le64(ino);
	d->hash = cpu_to_le64(name_hash("late", 4));
	d->pos = cpu_to_le64(pos);
	d->type = SCOUTFS_DT_REG;
	memcpy(d->name, "late", 4);
	put_flags(&im, &lt.item_root,
	          key_make(SCOUTFS_FS_ZONE, DIR_INO, SCOUTFS_DIRENT_TYPE, name_hash("late", 4), pos,
	                   0),
	          buf, sizeof(*d) + 4, 0);
	put_flags(&im, &lt.item_root,
	          key_make(SCOUTFS_FS_ZONE, DIR_INO, SCOUTFS_READDIR_TYPE, pos, 0, 0), buf,
	          sizeof(*d) + 4, 0);
	put_flags(&im, &lt.item_root,
	          key_make(SCOUTFS_FS_ZONE, ino, SCOUTFS_LINK_BACKREF_TYPE, DIR_INO, pos, 0), buf,
	          sizeof(*d) + 4, 0);
	/* user.a of f goes away */
	key = key_make(SCOUTFS_FS_ZONE, F_INO, SCOUTFS_XATTR_TYPE, crc32c("user.a", 6), 0, 0);
	put_flags(&im, &lt.item_root, key, NULL, 0, SCOUTFS_ITEM_FLAG_DELETION);

	key = key_make(SCOUTFS_LOG_TREES_ZONE, 0x1234, 0, 1, 0, 0);
	assert_int_equal(btree_insert(&im.txn, &im.super->logs_root, &key, &lt, sizeof(lt)), 0);
	im.super->next_ino = cpu_to_le64(ino + 1);
	img_close(&im);

	r = run("check", meta_path, data_path, NULL);
	if (r->status != 0)
		fprintf(stderr, "%s\n", r->out);
	assert_int_equal(r->status, 0);
	assert_non_null(strstr(r->out, "fs_root merged with 1 log trees"));
	assert_non_null(strstr(r->out, "6 inodes"));
	assert_non_null(strstr(r->out, "1 xattrs"));
	free_result(r);

	r = run("print", meta_path, NULL);
	assert_int_equal(r->status, 0);
	assert_non_null(
	        strstr(r->out, "log trees rid 0000000000001234 nr 1 flags 0x1 (finalized)"));
	assert_non_null(strstr(r->out, "log tree 0000000000001234.1 items"));
	assert_non_null(strstr(r->out, " deletion: xattr id 0 part 0"));
	assert_non_null(strstr(r->out, "name 'late'"));
	free_result(r);
}

static void test_bad_crc(void **state)
{
	struct scoutfs_super_block *super = malloc(SCOUTFS_BLOCK_SM_SIZE);
	struct result *r;
	u64 blkno;
	u8 byte;
	int fd;

	make_content();
	fd = open(meta_path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, super, SCOUTFS_BLOCK_SM_SIZE,
	                       (u64)SCOUTFS_SUPER_BLKNO << SCOUTFS_BLOCK_SM_SHIFT),
	                 SCOUTFS_BLOCK_SM_SIZE);
	blkno = le64_to_cpu(super->fs_root.ref.blkno);
	assert_int_equal(pread(fd, &byte, 1, (blkno << SCOUTFS_BLOCK_LG_SHIFT) + 40000), 1);
	byte ^= 0x10;
	assert_int_equal(pwrite(fd, &byte, 1, (blkno << SCOUTFS_BLOCK_LG_SHIFT) + 40000), 1);
	close(fd);
	free(super);

	expect_problem("bad checksum");
	expect_problem("fs_root: btree block");

	/* print shows the damage and goes on */
	r = run("print", meta_path, NULL);
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->out, "ERROR: btree block"));
	assert_non_null(strstr(r->out, "bad checksum"));
	assert_non_null(strstr(r->out, "data_alloc:"));
	free_result(r);
}

static void test_missing_readdir(void **state)
{
	struct img im;

	make_content();
	img_open(&im);
	del(&im, key_make(SCOUTFS_FS_ZONE, DIR_INO, SCOUTFS_READDIR_TYPE, f_pos, 0, 0));
	img_close(&im);
	{
		char want[128];

		snprintf(want, sizeof(want),
		         "directory 1024: entry 'f' at pos %llu has a dirent item but no readdir "
		         "item",
		         (unsigned long long)f_pos);
		expect_problem(want);
	}
	expect_problem("has no readdir item there");
}

static void test_wrong_nlink(void **state)
{
	struct scoutfs_inode si;
	struct img im;

	make_content();
	img_open(&im);
	si = get_inode(&im, F_INO);
	si.nlink = cpu_to_le32(3);
	put_inode(&im, F_INO, &si);
	img_close(&im);
	expect_problem("inode 1025: nlink 3 but 2 entries name the inode");
}

static void test_wrong_dir_nlink(void **state)
{
	struct scoutfs_inode si;
	struct img im;

	make_content();
	img_open(&im);
	si = get_inode(&im, SCOUTFS_ROOT_INO);
	si.nlink = cpu_to_le32(2);
	put_inode(&im, SCOUTFS_ROOT_INO, &si);
	img_close(&im);
	expect_problem("inode 1: directory nlink 2, expected 3 (2 + 1 subdirectories)");
}

static void test_wrong_dir_size(void **state)
{
	struct scoutfs_inode si;
	struct img im;

	make_content();
	img_open(&im);
	si = get_inode(&im, DIR_INO);
	le64_add_cpu(&si.size, 1);
	put_inode(&im, DIR_INO, &si);
	img_close(&im);
	expect_problem(
	        "inode 1024: directory size 8 differs from the 7 bytes of its 4 entry names");
}

static void test_extent_block_also_free(void **state)
{
	struct img im;

	make_content();
	img_open(&im);
	assert_int_equal(alloc_ext_insert(&im.txn, &im.super->data_alloc, f_blkno + 1, 2), 0);
	img_close(&im);
	expect_problem("are referenced by inode 1025 (file blocks 0-3), but free in an allocator");
	expect_problem("owner: data blocks");
}

static void test_extents_share_block(void **state)
{
	struct scoutfs_data_extent_val dv;
	struct img im;

	make_content();
	img_open(&im);
	memset(&dv, 0, sizeof(dv));
	dv.blkno = cpu_to_le64(f_blkno + 2);
	put(&im, key_make(SCOUTFS_FS_ZONE, G_INO, SCOUTFS_DATA_EXTENT_TYPE, 0, 1, 0), &dv,
	    sizeof(dv));
	img_close(&im);
	expect_problem("is referenced by inode 1026 (file blocks 0-0), but was already referenced "
	               "by another file extent");
	/* the owners pass names both files, and g's own block is now leaked */
	expect_problem("owner: data block");
	expect_problem("neither referenced by a file nor free: leaked");
}

static void test_leaked_meta_block(void **state)
{
	struct result *r;
	struct img im;
	u64 blkno = 0;

	make_content();
	img_open(&im);
	assert_int_equal(ta_alloc(&im.ta, &blkno), 0);
	img_close(&im);
	r = run("check", meta_path, data_path, NULL);
	assert_int_equal(r->status, 1);
	{
		char want[128];

		snprintf(want, sizeof(want),
		         "PROBLEM: metadata block %llu neither used nor free: leaked",
		         (unsigned long long)blkno);
		if (!strstr(r->out, want))
			fprintf(stderr, "wanted '%s' in:\n%s\n", want, r->out);
		assert_non_null(strstr(r->out, want));
	}
	assert_non_null(strstr(r->out, "1 problem found."));
	free_result(r);
}

static void test_meta_block_used_and_free(void **state)
{
	struct img im;

	make_content();
	img_open(&im);
	/* the root block of fs_root is also a free extent of meta_alloc[1] */
	assert_int_equal(alloc_ext_insert(&im.txn, &im.super->meta_alloc[1],
	                                  le64_to_cpu(im.super->fs_root.ref.blkno), 1),
	                 0);
	img_close(&im);
	expect_problem("is free in meta_alloc[1], but in use");
	expect_problem("owner: metadata block");
}

static void test_missing_meta_seq_index(void **state)
{
	struct scoutfs_inode si;
	struct img im;

	make_content();
	img_open(&im);
	si = get_inode(&im, G_INO);
	del(&im, index_key(SCOUTFS_INODE_INDEX_META_SEQ_TYPE, le64_to_cpu(si.meta_seq), G_INO));
	img_close(&im);
	expect_problem("there are 6 inode index items but the inodes need 7");
	expect_problem("inode 1026: no meta_seq index item at its meta_seq");
}

static void test_index_wrong_seq(void **state)
{
	struct scoutfs_inode si;
	struct img im;

	make_content();
	img_open(&im);
	si = get_inode(&im, G_INO);
	le64_add_cpu(&si.data_seq, 5);
	put_inode(&im, G_INO, &si);
	img_close(&im);
	expect_problem("data_seq index item (seq");
	expect_problem("inode 1026: no data_seq index item at its data_seq");
}

static void test_nlink0_without_orphan(void **state)
{
	struct result *r;
	struct img im;

	make_content();
	img_open(&im);
	new_inode(&im, 1100, S_IFREG | 0644, 0);
	img_close(&im);
	expect_problem("inode 1100: nlink is 0 but there is no orphan item");

	/* with its orphan item it's fine */
	img_open(&im);
	put(&im, key_make(SCOUTFS_ORPHAN_ZONE, 0, SCOUTFS_ORPHAN_TYPE, 1100, 0, 0), NULL, 0);
	img_close(&im);
	expect_clean();

	/* an orphan item of an inode that doesn't exist */
	img_open(&im);
	put(&im, key_make(SCOUTFS_ORPHAN_ZONE, 0, SCOUTFS_ORPHAN_TYPE, 1200, 0, 0), NULL, 0);
	img_close(&im);
	r = run("check", meta_path, data_path, NULL);
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->out, "orphan item of inode 1200: the inode doesn't exist"));
	free_result(r);
}

static void test_broken_xattr_and_symlink(void **state)
{
	struct scoutfs_inode si;
	struct img im;

	make_content();
	img_open(&im);
	del(&im, key_make(SCOUTFS_FS_ZONE, F_INO, SCOUTFS_XATTR_TYPE, crc32c("user.big", 8), 1, 1));
	si = get_inode(&im, S_INO);
	le64_add_cpu(&si.size, 1);
	put_inode(&im, S_INO, &si);
	img_close(&im);
	expect_problem("inode 1025: xattr id 1 is missing part 1");
	expect_problem("inode 1027: symlink size 20 but its chunks hold 19 bytes");
}

static void test_inode_count(void **state)
{
	struct img im;

	make_content();
	img_open(&im);
	le64_add_cpu(&im.super->inode_count, 1);
	img_close(&im);
	expect_problem(
	        "the super's inode_count 6 plus the log trees' deltas 0 is 6, but 5 inodes exist");
}

static void test_directory_loop(void **state)
{
	struct img im;

	make_content();
	img_open(&im);
	/* two directories that name each other, and nothing names them from the root */
	new_inode(&im, 1040, S_IFDIR | 0755, 2);
	new_inode(&im, 1041, S_IFDIR | 0755, 2);
	add_entry(&im, 1040, "b", 1041, SCOUTFS_DT_DIR);
	add_entry(&im, 1041, "a", 1040, SCOUTFS_DT_DIR);
	img_close(&im);
	expect_problem("is in a loop of directories that can't be reached from the root");
}

/*
 * A merged log tree that log_merge is half way through freeing: the blocks before its
 * cursor are free (and may be reused), the rest still belong to the tree.
 */
static void make_freeing(bool bad_cursor)
{
	struct scoutfs_log_merge_freeing fr;
	struct scoutfs_btree_root root;
	struct btree_item_list *head = NULL, **tail = &head, *bil;
	struct scoutfs_key cursor, key;
	u8 val[200];
	struct img im;
	int freed;

	make_content();
	img_open(&im);
	memset(&root, 0, sizeof(root));
	memset(val, 'i', sizeof(val));
	for (u64 i = 0; i < 3000; i++) {
		bil = calloc(1, sizeof(*bil) + sizeof(val));
		assert_non_null(bil);
		bil->key = key_make(SCOUTFS_FS_ZONE, 5000 + i, SCOUTFS_INODE_TYPE, 0, 0, 0);
		bil->seq = im.seq;
		bil->val_len = sizeof(val);
		memcpy(bil->val, val, sizeof(val));
		*tail = bil;
		tail = &bil->next;
	}
	assert_int_equal(btree_insert_list(&im.txn, &root, head, NULL), 0);
	while ((bil = head)) {
		head = bil->next;
		free(bil);
	}
	assert_int_equal(root.height, 2);
	img_close(&im);

	img_open(&im);
	key_set_zeros(&cursor);
	freed = btree_free_blocks(&im.txn, &root, &cursor, 4);
	assert_int_equal(freed, 4);
	assert_false(key_is_ones(&cursor));
	memset(&fr, 0, sizeof(fr));
	fr.root = root;
	fr.key = bad_cursor ? key_zeros() : cursor;
	fr.seq = cpu_to_le64(77);
	key = key_make(SCOUTFS_LOG_MERGE_FREEING_ZONE, 77, 0, 0, 0, 0);
	assert_int_equal(btree_insert(&im.txn, &im.super->log_merge, &key, &fr, sizeof(fr)), 0);
	img_close(&im);
}

static void test_freeing_tree_is_clean(void **state)
{
	struct result *r;

	make_freeing(false);
	expect_clean();
	r = run("print", meta_path, NULL);
	assert_int_equal(r->status, 0);
	assert_non_null(strstr(r->out, "freeing: seq 77 cursor 16."));
	assert_non_null(strstr(r->out, "log_merge freeing seq 77 (the part not freed yet)"));
	free_result(r);
}

static void test_freeing_tree_bad_cursor(void **state)
{
	/* with the cursor back at the start, the freed leaves are both free and in the tree */
	make_freeing(true);
	expect_problem("(4 blocks) are free in meta_alloc[0], but in use");
	expect_problem("used by log_merge freeing seq 77 (btree level 0)");
}

/* extent items of an inode that doesn't exist: their blocks belong to nobody */
static void test_orphan_data_extent(void **state)
{
	struct scoutfs_data_extent_val dv;
	struct alloc_extent ext;
	struct img im;

	make_content();
	img_open(&im);
	assert_int_equal(alloc_ext_alloc(&im.txn, &im.super->data_alloc, 3, &ext), 0);
	memset(&dv, 0, sizeof(dv));
	dv.blkno = cpu_to_le64(ext.start);
	put(&im, key_make(SCOUTFS_FS_ZONE, 1500, SCOUTFS_DATA_EXTENT_TYPE, 2, 3, 0), &dv,
	    sizeof(dv));
	img_close(&im);
	expect_problem("inode 1500: has items (1 data extent) but no inode item");
}

/* a file's extent item gone without its blocks being freed */
static void test_leaked_data_blocks(void **state)
{
	struct scoutfs_inode si;
	char want[160];
	struct img im;

	make_content();
	img_open(&im);
	del(&im, key_make(SCOUTFS_FS_ZONE, F_INO, SCOUTFS_DATA_EXTENT_TYPE, 3, 4, 0));
	si = get_inode(&im, F_INO);
	si.online_blocks = 0;
	put_inode(&im, F_INO, &si);
	img_close(&im);
	snprintf(want, sizeof(want), "data blocks %llu-%llu (4 blocks) neither referenced by a "
	         "file nor free: leaked",
	         (unsigned long long)f_blkno, (unsigned long long)f_blkno + 3);
	expect_problem(want);
}

static void test_online_blocks_mismatch(void **state)
{
	struct scoutfs_inode si;
	struct img im;

	make_content();
	img_open(&im);
	si = get_inode(&im, G_INO);
	le64_add_cpu(&si.online_blocks, 2);
	put_inode(&im, G_INO, &si);
	img_close(&im);
	expect_problem("inode 1026: online_blocks 3 but its extents map 1 online blocks");
}

static void test_extent_outside_the_data_device(void **state)
{
	struct scoutfs_data_extent_val dv;
	struct scoutfs_inode si;
	struct img im;
	u64 total;

	make_content();
	img_open(&im);
	total = le64_to_cpu(im.super->total_data_blocks);
	memset(&dv, 0, sizeof(dv));
	dv.blkno = cpu_to_le64(total + 10);
	put(&im, key_make(SCOUTFS_FS_ZONE, G_INO, SCOUTFS_DATA_EXTENT_TYPE, 1, 1, 0), &dv,
	    sizeof(dv));
	si = get_inode(&im, G_INO);
	le64_add_cpu(&si.online_blocks, 1);
	si.size = cpu_to_le64(2 * SCOUTFS_BLOCK_SM_SIZE);
	put_inode(&im, G_INO, &si);
	img_close(&im);
	expect_problem("inode 1026: data extent of file blocks 1-1 maps data blocks");
	expect_problem("outside the data device's blocks");
}

/* an entry whose inode was never created */
static void test_entry_names_missing_inode(void **state)
{
	struct img im;

	make_content();
	img_open(&im);
	add_entry(&im, DIR_INO, "ghost", 1600, SCOUTFS_DT_REG);
	img_close(&im);
	expect_problem("directory 1024: entry 'ghost' at pos 6 names inode 1600, which doesn't "
	               "exist");
	/* without its link backref too, the entry is found dangling from the directory */
	img_open(&im);
	del(&im, key_make(SCOUTFS_FS_ZONE, 1600, SCOUTFS_LINK_BACKREF_TYPE, DIR_INO, 6, 0));
	img_close(&im);
	expect_problem("directory 1024: entry 'ghost' at pos 6 names inode 1600, which doesn't "
	               "exist");
	expect_problem("there are 6 readdir items but 5 link backref items");
}

/* the link backref of one of f's two names is gone */
static void test_missing_link_backref(void **state)
{
	char want[160];
	struct img im;

	make_content();
	img_open(&im);
	del(&im, key_make(SCOUTFS_FS_ZONE, F_INO, SCOUTFS_LINK_BACKREF_TYPE, DIR_INO, f_pos, 0));
	img_close(&im);
	snprintf(want, sizeof(want), "directory 1024: entry 'f' at pos %llu names inode 1025, "
	         "which has no link backref item for it",
	         (unsigned long long)f_pos);
	expect_problem(want);
	expect_problem("inode 1025: nlink 2 but 1 entries name the inode");
}

/* the super's reference to fs_root names an older version of the block */
static void test_stale_block_reference(void **state)
{
	struct img im;

	make_content();
	img_open(&im);
	le64_add_cpu(&im.super->fs_root.ref.seq, 1);
	img_close(&im);
	expect_problem("fs_root: btree block");
	expect_problem("(stale reference: the block was rewritten)");
}

static void test_bad_quorum_block(void **state)
{
	u8 byte;
	int fd;

	make_content();
	fd = open(meta_path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &byte, 1, (SCOUTFS_QUORUM_BLKNO + 3) * 4096ULL + 300), 1);
	byte ^= 0x01;
	assert_int_equal(pwrite(fd, &byte, 1, (SCOUTFS_QUORUM_BLKNO + 3) * 4096ULL + 300), 1);
	close(fd);
	expect_problem("quorum block of slot 3 (block 20): bad checksum");
}

/* a data device whose super is intact but names another volume */
static void test_data_device_of_another_filesystem(void **state)
{
	struct scoutfs_super_block *super = dev_alloc_buf(SCOUTFS_BLOCK_SM_SIZE);
	struct dev *dev;
	char why[256];

	make_content();
	assert_non_null(super);
	assert_int_equal(dev_open(data_path, DEV_RDWR | DEV_BUFFERED, &dev), 0);
	assert_int_equal(super_read(dev, 0, super, why, sizeof(why)), 0);
	super->uuid[0] ^= 0xff;
	assert_int_equal(block_sm_write(dev, SCOUTFS_SUPER_BLKNO, SCOUTFS_BLOCK_MAGIC_SUPER,
	                                le64_to_cpu(super->hdr.fsid), super, sizeof(*super)),
	                 0);
	dev_close(dev);
	free(super);
	expect_problem("belong to different filesystems");
}

static void test_usage(void **state)
{
	struct result *r;

	r = run("check", meta_path, NULL);
	assert_int_equal(r->status, 64);
	free_result(r);
	r = run("check", "--bogus", meta_path, data_path, NULL);
	assert_int_equal(r->status, 64);
	free_result(r);
	r = run("print", NULL);
	assert_int_equal(r->status, 64);
	free_result(r);
	r = run("check", "--help", NULL);
	assert_int_equal(r->status, 0);
	assert_non_null(strstr(r->out, "Usage: scoutfs check"));
	assert_non_null(strstr(r->out, "Exit status:"));
	free_result(r);
	r = run("check", "/nonexistent/meta", "/nonexistent/data", NULL);
	assert_int_equal(r->status, 1);
	assert_non_null(strstr(r->out, "PROBLEM:"));
	free_result(r);
}

/* ------------------------------------------------------------------------------------------ */

static int setup(void **state)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmp_dir, sizeof(tmp_dir), "%s/test_check.XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(tmp_dir))
		return -1;
	snprintf(meta_path, sizeof(meta_path), "%s/meta", tmp_dir);
	snprintf(data_path, sizeof(data_path), "%s/data", tmp_dir);
	return 0;
}

static int teardown(void **state)
{
	char path[PATH_MAX + 16];

	unlink(meta_path);
	unlink(data_path);
	snprintf(path, sizeof(path), "%s/out", tmp_dir);
	unlink(path);
	rmdir(tmp_dir);
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fresh_mkfs_is_clean),
		cmocka_unit_test(test_content_is_clean),
		cmocka_unit_test(test_log_tree_is_clean),
		cmocka_unit_test(test_bad_crc),
		cmocka_unit_test(test_missing_readdir),
		cmocka_unit_test(test_wrong_nlink),
		cmocka_unit_test(test_wrong_dir_nlink),
		cmocka_unit_test(test_wrong_dir_size),
		cmocka_unit_test(test_extent_block_also_free),
		cmocka_unit_test(test_extents_share_block),
		cmocka_unit_test(test_leaked_meta_block),
		cmocka_unit_test(test_meta_block_used_and_free),
		cmocka_unit_test(test_missing_meta_seq_index),
		cmocka_unit_test(test_index_wrong_seq),
		cmocka_unit_test(test_nlink0_without_orphan),
		cmocka_unit_test(test_broken_xattr_and_symlink),
		cmocka_unit_test(test_inode_count),
		cmocka_unit_test(test_directory_loop),
		cmocka_unit_test(test_freeing_tree_is_clean),
		cmocka_unit_test(test_freeing_tree_bad_cursor),
		cmocka_unit_test(test_orphan_data_extent),
		cmocka_unit_test(test_leaked_data_blocks),
		cmocka_unit_test(test_online_blocks_mismatch),
		cmocka_unit_test(test_extent_outside_the_data_device),
		cmocka_unit_test(test_entry_names_missing_inode),
		cmocka_unit_test(test_missing_link_backref),
		cmocka_unit_test(test_stale_block_reference),
		cmocka_unit_test(test_bad_quorum_block),
		cmocka_unit_test(test_data_device_of_another_filesystem),
		cmocka_unit_test(test_usage),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH-OF-SCOUTFS\n", argv[0]);
		return 2;
	}
	scoutfs_exe = argv[1];
	return cmocka_run_group_tests(tests, setup, teardown);
}
