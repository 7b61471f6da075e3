/*
 * check_fs.c: the filesystem's invariants, checked on the merged view of its items.
 *
 * One pass streams every live item in key order (check_mview.c).  The key schema puts all
 * the items of an inode together -- its inode item first, then its xattrs, the entries of a
 * directory (DIRENT and READDIR items), the LINK_BACKREF items that name it, symlink chunks
 * and data extents -- so almost everything is checked one inode at a time, with memory for
 * one inode: sizes, link counts, directory sizes, readdir positions, xattr parts, symlink
 * chunks, extents and their block counts.  Orphan items come before every inode (their zone
 * sorts first) and are kept in a sorted array to be matched as the inodes go by.
 *
 * Two relations join items of different inodes: an entry's READDIR item (in its directory)
 * with its LINK_BACKREF item (at its target), and an inode with its seq index items (in their
 * own zone, ordered by seq).  Holding either side in memory would grow with the filesystem,
 * so each side adds a hash of every member to a sum instead, like a checksum of a multiset,
 * and the sums must match.  They match unless something is wrong, and then a second pass
 * looks every member up on the other side to say exactly what is missing or different.  The
 * DIRENT and READDIR items of one directory are matched the same way, per directory.
 *
 * Given matching twins, "every entry names an existing inode of its type" is checked at the
 * target (its backrefs against its inode item), and the link counts come out of the counts
 * of each inode's backrefs and each directory's subdirectory entries.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/check.h"
#include "util/crc32c.h"
#include "util/hash.h"
#include "util/util.h"

#define DIRENT_HDR sizeof(struct scoutfs_dirent)
#define XATTR_HDR  sizeof(struct scoutfs_xattr)
#define PART_SIZE  SCOUTFS_XATTR_PART_SIZE

/* ---------------------------------------------------------------------------------------- */
/* hashes for the multiset sums */

static u64 hash3(u64 a, u64 b, u64 c)
{
	return check_mix64(a ^ check_mix64(b ^ check_mix64(c + 0x9e3779b97f4a7c15ULL)));
}

static u64 hash_bytes(const void *p, size_t len)
{
	return check_mix64(fnv1a64(p, len));
}

/* the directory entry name hash of dir.c: the first 4 bytes above an FNV-1a of the name */
static u64 name_hash(const u8 *name, size_t len)
{
	u32 prefix = 0;

	for (size_t i = 0; i < 4; i++)
		prefix = (prefix << 8) | (i < len ? name[i] : 0);
	return ((u64)prefix << 32) | fnv1a32(name, len);
}

static bool mode_valid(u32 mode)
{
	switch (mode & S_IFMT) {
	case S_IFIFO:
	case S_IFCHR:
	case S_IFDIR:
	case S_IFBLK:
	case S_IFREG:
	case S_IFLNK:
	case S_IFSOCK:
		return true;
	default:
		return false;
	}
}

static const char *type_name(u8 type)
{
	switch (type) {
	case SCOUTFS_INODE_TYPE:
		return "inode";
	case SCOUTFS_XATTR_TYPE:
		return "xattr";
	case SCOUTFS_DIRENT_TYPE:
		return "dirent";
	case SCOUTFS_READDIR_TYPE:
		return "readdir";
	case SCOUTFS_LINK_BACKREF_TYPE:
		return "link backref";
	case SCOUTFS_SYMLINK_TYPE:
		return "symlink";
	case SCOUTFS_DATA_EXTENT_TYPE:
		return "data extent";
	default:
		return "unknown";
	}
}

/* a printable copy of a name, with unprintable bytes escaped */
static const char *pname(const u8 *name, size_t len, char *buf, size_t buf_len)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 5 < buf_len; i++) {
		if (name[i] >= 0x20 && name[i] < 0x7f && name[i] != '\\')
			buf[o++] = (char)name[i];
		else
			o += (size_t)snprintf(buf + o, buf_len - o, "\\x%02x", name[i]);
	}
	buf[o < buf_len ? o : buf_len - 1] = '\0';
	return buf;
}

/* the header and printable name of a dirent, readdir or link backref value, if it has one */
static bool item_dirent(const struct mview_item *item, struct scoutfs_dirent *d, char *nb,
                        size_t nb_len)
{
	if (item->val_len < DIRENT_HDR)
		return false;
	memcpy(d, item->val, sizeof(*d));
	pname(item->val + DIRENT_HDR, item->val_len - DIRENT_HDR, nb, nb_len);
	return true;
}

#define NAME_BUF (SCOUTFS_NAME_LEN * 4 + 8)

/* ---------------------------------------------------------------------------------------- */
/* the state of the pass */

struct xattr_state {
	bool active;
	u64 hash;
	u64 id;
	unsigned int nparts; /* from part 0 */
	unsigned int next_part;
	u64 total; /* header + name + value bytes */
	bool bad;
};

/* the names of the xattrs of one inode with one name hash, to find duplicates */
struct xattr_names {
	u8 (*names)[SCOUTFS_XATTR_MAX_NAME_LEN + 1];
	unsigned int nr;
	unsigned int alloced;
	bool valid;
	u64 hash;
};

struct inode_group {
	u64 ino;
	bool have_inode;
	struct scoutfs_inode si;
	u32 mode;
	u64 nr_items[8]; /* per type / 4 */

	/* directory */
	u64 nr_dirents;
	u64 nr_readdir;
	u64 fp_dirent;
	u64 fp_readdir;
	u64 name_bytes;
	u64 nr_subdirs;
	/* targets */
	u64 nr_backrefs;
	u64 parent; /* the directory of the last backref */
	/* symlink */
	u64 next_chunk;
	u64 link_bytes;
	bool link_bad;
	bool nul_early;
	u8 last_byte;
	/* extents */
	bool have_ext;
	u64 prev_ext_end;
	u64 online;
	u64 offline;

	struct xattr_state xs;
};

struct fs_check {
	struct check *chk;
	struct inode_group g;
	bool in_group;

	/* the seq indexes: from index items and from inodes */
	u64 nr_index;
	u64 fp_index;
	u64 nr_inode_index;
	u64 fp_inode_index;
	/* entries: READDIR items and LINK_BACKREF items */
	u64 nr_readdir;
	u64 fp_readdir;
	u64 nr_backref;
	u64 fp_backref;

	/* orphan items, sorted by inode number */
	u64 *orphans;
	size_t nr_orphans;
	size_t alloced_orphans;
	size_t orphan_pos;

	struct xattr_names xn;
	bool have_root;

	/* every named directory and its parent, sorted by inode number */
	struct dir_parent {
		u64 ino;
		u64 parent;
		u8 state;
	} * dirs;
	size_t nr_dirs;
	size_t alloced_dirs;

	u64 nr_totl;
	u64 nr_indx;
	u64 nr_quota;
};

static void gproblem(struct fs_check *fc, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void gproblem(struct fs_check *fc, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	check_problem(fc->chk, "inode %llu: %s", (unsigned long long)fc->g.ino, why);
}

/* ---------------------------------------------------------------------------------------- */
/* directory entries */

/* check a dirent value against its key fields; returns the name length or -1 */
static int dirent_check(struct fs_check *fc, const char *what, const struct mview_item *item,
                        const struct scoutfs_dirent *d, u64 key_pos, const u64 *key_hash)
{
	char nb[NAME_BUF];
	const u8 *name;
	size_t len;
	u64 pos;

	if (item->val_len < DIRENT_HDR + 1 || item->val_len > DIRENT_HDR + SCOUTFS_NAME_LEN) {
		gproblem(fc, "%s item at pos %llu has a %u byte value (an entry has %zu to %zu)",
		         what, (unsigned long long)key_pos, item->val_len, DIRENT_HDR + 1,
		         DIRENT_HDR + SCOUTFS_NAME_LEN);
		return -1;
	}
	name = item->val + DIRENT_HDR;
	len = item->val_len - DIRENT_HDR;
	pname(name, len, nb, sizeof(nb));
	pos = le64_to_cpu(d->pos);
	if (pos != key_pos)
		gproblem(fc, "%s item '%s' at pos %llu records pos %llu", what, nb,
		         (unsigned long long)key_pos, (unsigned long long)pos);
	if (key_pos < SCOUTFS_DIRENT_FIRST_POS || key_pos > SCOUTFS_DIRENT_LAST_POS)
		gproblem(fc, "%s item '%s' has invalid pos %llu", what, nb,
		         (unsigned long long)key_pos);
	if (le64_to_cpu(d->hash) != name_hash(name, len))
		gproblem(fc,
		         "%s item '%s' at pos %llu records name hash %016llx, the name hashes to "
		         "%016llx",
		         what, nb, (unsigned long long)key_pos,
		         (unsigned long long)le64_to_cpu(d->hash),
		         (unsigned long long)name_hash(name, len));
	if (key_hash && *key_hash != le64_to_cpu(d->hash))
		gproblem(fc,
		         "%s item '%s' at pos %llu is keyed by hash %016llx but records %016llx",
		         what, nb, (unsigned long long)key_pos, (unsigned long long)*key_hash,
		         (unsigned long long)le64_to_cpu(d->hash));
	if (d->type > SCOUTFS_DT_SOCK)
		gproblem(fc, "%s item '%s' at pos %llu has invalid type %u", what, nb,
		         (unsigned long long)key_pos, d->type);
	if (le64_to_cpu(d->ino) == 0)
		gproblem(fc, "%s item '%s' at pos %llu names inode 0", what, nb,
		         (unsigned long long)key_pos);
	for (size_t i = 0; i < sizeof(d->__pad); i++) {
		if (d->__pad[i]) {
			gproblem(fc, "%s item '%s' at pos %llu has nonzero padding", what, nb,
			         (unsigned long long)key_pos);
			break;
		}
	}
	if (memchr(name, '/', len) || memchr(name, '\0', len) || (len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		gproblem(fc, "%s item at pos %llu has an invalid name '%s'", what,
		         (unsigned long long)key_pos, nb);
	return (int)len;
}

static void dir_item(struct fs_check *fc, const struct mview_item *item, bool readdir)
{
	struct inode_group *g = &fc->g;
	const struct scoutfs_key *key = &item->key;
	struct scoutfs_dirent d;
	u64 pos, hash;
	int len;

	if (g->have_inode && !S_ISDIR(g->mode)) {
		gproblem(fc, "is not a directory but has a %s item at pos %llu",
		         readdir ? "readdir" : "dirent",
		         (unsigned long long)(readdir ? key_second(key) : key_third(key)));
		return;
	}
	if (item->val_len < DIRENT_HDR) {
		gproblem(fc, "%s item %llu.%llu has a %u byte value",
		         readdir ? "readdir" : "dirent", (unsigned long long)key_second(key),
		         (unsigned long long)key_third(key), item->val_len);
		return;
	}
	memcpy(&d, item->val, sizeof(d));
	if (readdir) {
		pos = key_second(key);
		if (key_third(key) || key_fourth(key))
			gproblem(fc, "readdir item at pos %llu has unused key fields set",
			         (unsigned long long)pos);
		len = dirent_check(fc, "readdir", item, &d, pos, NULL);
	} else {
		pos = key_third(key);
		hash = key_second(key);
		if (key_fourth(key))
			gproblem(fc, "dirent item at pos %llu has unused key fields set",
			         (unsigned long long)pos);
		len = dirent_check(fc, "dirent", item, &d, pos, &hash);
	}
	if (len < 0)
		return;
	if (g->have_inode && pos >= le64_to_cpu(g->si.next_readdir_pos))
		gproblem(fc,
		         "%s item at pos %llu is not below the directory's next_readdir_pos %llu",
		         readdir ? "readdir" : "dirent", (unsigned long long)pos,
		         (unsigned long long)le64_to_cpu(g->si.next_readdir_pos));

	if (readdir) {
		g->nr_readdir++;
		g->fp_readdir += hash3(pos, hash_bytes(item->val, item->val_len), 1);
		g->name_bytes += (u64)len;
		if (d.type == SCOUTFS_DT_DIR)
			g->nr_subdirs++;
		fc->nr_readdir++;
		fc->fp_readdir += hash3(g->ino, pos, hash_bytes(item->val, item->val_len));
		fc->chk->nr_entries++;
	} else {
		g->nr_dirents++;
		g->fp_dirent += hash3(pos, hash_bytes(item->val, item->val_len), 1);
	}
}

static void backref_item(struct fs_check *fc, const struct mview_item *item)
{
	struct inode_group *g = &fc->g;
	const struct scoutfs_key *key = &item->key;
	u64 dir = key_second(key), pos = key_third(key);
	char nb[NAME_BUF];
	struct scoutfs_dirent d;
	int len;

	if (item->val_len < DIRENT_HDR) {
		gproblem(fc, "link backref item (dir %llu pos %llu) has a %u byte value",
		         (unsigned long long)dir, (unsigned long long)pos, item->val_len);
		return;
	}
	memcpy(&d, item->val, sizeof(d));
	if (key_fourth(key))
		gproblem(fc, "link backref item (dir %llu pos %llu) has unused key fields set",
		         (unsigned long long)dir, (unsigned long long)pos);
	len = dirent_check(fc, "link backref", item, &d, pos, NULL);
	if (len < 0)
		return;
	pname(item->val + DIRENT_HDR, (size_t)len, nb, sizeof(nb));
	if (le64_to_cpu(d.ino) != g->ino)
		gproblem(fc, "link backref item '%s' (dir %llu pos %llu) records inode %llu", nb,
		         (unsigned long long)dir, (unsigned long long)pos,
		         (unsigned long long)le64_to_cpu(d.ino));
	/* the inode item sorts before its backrefs: its absence is known here */
	if (!g->have_inode)
		check_problem(fc->chk,
		              "directory %llu: entry '%s' at pos %llu names inode %llu, which "
		              "doesn't exist",
		              (unsigned long long)dir, nb, (unsigned long long)pos,
		              (unsigned long long)g->ino);
	if (g->have_inode && d.type != scoutfs_mode_dtype(g->mode))
		gproblem(fc,
		         "the entry '%s' in directory %llu (pos %llu) has type %u but the inode's "
		         "mode 0%o is type %u",
		         nb, (unsigned long long)dir, (unsigned long long)pos, d.type, g->mode,
		         scoutfs_mode_dtype(g->mode));
	if (dir == g->ino)
		gproblem(fc, "the entry '%s' at pos %llu names its own directory", nb,
		         (unsigned long long)pos);
	g->nr_backrefs++;
	g->parent = dir;
	fc->nr_backref++;
	fc->fp_backref += hash3(dir, pos, hash_bytes(item->val, item->val_len));
}

/* ---------------------------------------------------------------------------------------- */
/* xattrs */

static void xattr_finish(struct fs_check *fc)
{
	struct xattr_state *xs = &fc->g.xs;

	if (!xs->active)
		return;
	if (xs->nparts && !xs->bad && xs->next_part != xs->nparts)
		gproblem(fc, "xattr id %llu has %u of its %u parts", (unsigned long long)xs->id,
		         xs->next_part, xs->nparts);
	xs->active = false;
}

static void xattr_name_seen(struct fs_check *fc, const u8 *name, unsigned int len,
                            const char *printable)
{
	struct xattr_names *xn = &fc->xn;

	for (unsigned int i = 0; i < xn->nr; i++) {
		if (strlen((char *)xn->names[i]) == len && memcmp(xn->names[i], name, len) == 0) {
			gproblem(fc, "two xattrs are named '%s'", printable);
			return;
		}
	}
	if (xn->nr == xn->alloced) {
		unsigned int nr = xn->alloced ? xn->alloced * 2 : 4;
		void *p = realloc(xn->names, nr * sizeof(xn->names[0]));

		if (!p)
			return;
		xn->names = p;
		xn->alloced = nr;
	}
	memcpy(xn->names[xn->nr], name, len);
	xn->names[xn->nr][len] = '\0';
	xn->nr++;
}

static void xattr_item(struct fs_check *fc, const struct mview_item *item)
{
	struct inode_group *g = &fc->g;
	struct xattr_state *xs = &g->xs;
	const struct scoutfs_key *key = &item->key;
	u64 hash = key_second(key), id = key_third(key);
	unsigned int part = key_fourth(key);
	struct scoutfs_xattr x;
	char nb[NAME_BUF];
	unsigned int expect;
	const u8 *name;

	if (!xs->active || xs->hash != hash || xs->id != id) {
		xattr_finish(fc);
		if (!fc->xn.valid || fc->xn.hash != hash) {
			fc->xn.nr = 0;
			fc->xn.hash = hash;
			fc->xn.valid = true;
		}
		memset(xs, 0, sizeof(*xs));
		xs->active = true;
		xs->hash = hash;
		xs->id = id;
		if (g->have_inode && id >= le64_to_cpu(g->si.next_xattr_id))
			gproblem(fc, "xattr id %llu is not below the inode's next_xattr_id %llu",
			         (unsigned long long)id,
			         (unsigned long long)le64_to_cpu(g->si.next_xattr_id));
		if (part != 0) {
			gproblem(fc, "xattr id %llu has no part 0 (its first item is part %u)",
			         (unsigned long long)id, part);
			xs->bad = true;
			return;
		}
	}
	if (xs->bad)
		return;

	if (part != xs->next_part) {
		gproblem(fc, "xattr id %llu is missing part %u", (unsigned long long)id,
		         xs->next_part);
		xs->bad = true;
		return;
	}
	if (part == 0) {
		fc->chk->nr_xattrs++;
		if (item->val_len < XATTR_HDR + 1) {
			gproblem(fc, "xattr id %llu part 0 has only %u bytes",
			         (unsigned long long)id, item->val_len);
			xs->bad = true;
			return;
		}
		memcpy(&x, item->val, sizeof(x));
		if (x.name_len == 0 || XATTR_HDR + x.name_len > item->val_len) {
			gproblem(fc, "xattr id %llu has name length %u in a %u byte part",
			         (unsigned long long)id, x.name_len, item->val_len);
			xs->bad = true;
			return;
		}
		name = item->val + XATTR_HDR;
		pname(name, x.name_len, nb, sizeof(nb));
		for (size_t i = 0; i < sizeof(x.__pad); i++) {
			if (x.__pad[i]) {
				gproblem(fc, "xattr '%s' has nonzero header padding", nb);
				break;
			}
		}
		if (memchr(name, '\0', x.name_len))
			gproblem(fc, "xattr name '%s' contains a NUL byte", nb);
		if ((u64)crc32c(name, x.name_len) != hash)
			gproblem(fc,
			         "xattr '%s' is keyed by hash %016llx but its name hashes to "
			         "%016llx",
			         nb, (unsigned long long)hash,
			         (unsigned long long)crc32c(name, x.name_len));
		xs->total = XATTR_HDR + x.name_len + le16_to_cpu(x.val_len);
		xs->nparts = (unsigned int)DIV_ROUND_UP(xs->total, PART_SIZE);
		xattr_name_seen(fc, name, x.name_len, nb);
	}
	if (part >= xs->nparts) {
		gproblem(fc, "xattr id %llu has an extra part %u (it needs %u)",
		         (unsigned long long)id, part, xs->nparts);
		xs->bad = true;
		return;
	}
	expect = part + 1 < xs->nparts ? PART_SIZE
	                               : (unsigned int)(xs->total - (u64)PART_SIZE * part);
	if (item->val_len != expect) {
		gproblem(fc, "xattr id %llu part %u has %u bytes, expected %u",
		         (unsigned long long)id, part, item->val_len, expect);
		xs->bad = true;
		return;
	}
	xs->next_part++;
}

/* ---------------------------------------------------------------------------------------- */
/* symlinks and extents */

static void symlink_item(struct fs_check *fc, const struct mview_item *item)
{
	struct inode_group *g = &fc->g;
	u64 nr = key_second(&item->key);

	if (g->have_inode && !S_ISLNK(g->mode)) {
		gproblem(fc, "is not a symlink but has symlink chunk %llu", (unsigned long long)nr);
		return;
	}
	if (key_third(&item->key) || key_fourth(&item->key))
		gproblem(fc, "symlink chunk %llu has unused key fields set",
		         (unsigned long long)nr);
	if (g->link_bad)
		return;
	if (nr != g->next_chunk) {
		gproblem(fc, "symlink chunk %llu is missing", (unsigned long long)g->next_chunk);
		g->link_bad = true;
		return;
	}
	if (item->val_len == 0 || item->val_len > SCOUTFS_SYMLINK_CHUNK_BYTES ||
	    (g->next_chunk > 0 && g->link_bytes % SCOUTFS_SYMLINK_CHUNK_BYTES)) {
		gproblem(fc, "symlink chunk %llu has %u bytes after %llu bytes",
		         (unsigned long long)nr, item->val_len, (unsigned long long)g->link_bytes);
		g->link_bad = true;
		return;
	}
	if (g->link_bytes && g->last_byte == 0)
		g->nul_early = true;
	if (memchr(item->val, '\0', item->val_len - 1))
		g->nul_early = true;
	g->last_byte = item->val[item->val_len - 1];
	g->link_bytes += item->val_len;
	g->next_chunk++;
}

static void extent_item(struct fs_check *fc, const struct mview_item *item)
{
	struct check *chk = fc->chk;
	struct inode_group *g = &fc->g;
	u64 last = key_second(&item->key), len = key_third(&item->key), start;
	struct scoutfs_data_extent_val dv;
	char owner[128];
	u64 blkno;

	chk->nr_extents++;
	if (g->have_inode && !S_ISREG(g->mode))
		gproblem(fc,
		         "is not a regular file but has a data extent ending at file block %llu",
		         (unsigned long long)last);
	if (key_fourth(&item->key))
		gproblem(fc, "data extent ending at %llu has unused key fields set",
		         (unsigned long long)last);
	if (len == 0 || last < len - 1) {
		gproblem(fc, "data extent ending at file block %llu has invalid length %llu",
		         (unsigned long long)last, (unsigned long long)len);
		return;
	}
	start = last - len + 1;
	if (item->val_len != sizeof(dv)) {
		gproblem(fc, "data extent %llu-%llu has a %u byte value, not %zu",
		         (unsigned long long)start, (unsigned long long)last, item->val_len,
		         sizeof(dv));
		return;
	}
	memcpy(&dv, item->val, sizeof(dv));
	blkno = le64_to_cpu(dv.blkno);
	if (g->have_ext && start <= g->prev_ext_end)
		gproblem(fc,
		         "data extent of file blocks %llu-%llu overlaps the previous one, which "
		         "ends at %llu",
		         (unsigned long long)start, (unsigned long long)last,
		         (unsigned long long)g->prev_ext_end);
	g->have_ext = true;
	g->prev_ext_end = last;
	if (dv.flags & ~(SCOUTFS_EXTENT_FLAG_OFFLINE | SCOUTFS_EXTENT_FLAG_UNWRITTEN))
		gproblem(fc, "data extent of file blocks %llu-%llu has unknown flags 0x%x",
		         (unsigned long long)start, (unsigned long long)last, dv.flags);
	for (size_t i = 0; i < sizeof(dv.__pad); i++) {
		if (dv.__pad[i]) {
			gproblem(fc, "data extent of file blocks %llu-%llu has nonzero padding",
			         (unsigned long long)start, (unsigned long long)last);
			break;
		}
	}
	if (g->have_inode && S_ISREG(g->mode) && blkno &&
	    !(dv.flags & (SCOUTFS_EXTENT_FLAG_OFFLINE | SCOUTFS_EXTENT_FLAG_UNWRITTEN)) &&
	    !(le32_to_cpu(g->si.flags) & SCOUTFS_INO_FLAG_TRUNCATE) &&
	    start >= DIV_ROUND_UP(le64_to_cpu(g->si.size), SCOUTFS_BLOCK_SM_SIZE))
		gproblem(fc,
		         "data extent of file blocks %llu-%llu holds data past the end of the file "
		         "(size %llu) and no truncate is in progress",
		         (unsigned long long)start, (unsigned long long)last,
		         (unsigned long long)le64_to_cpu(g->si.size));
	if (dv.flags & SCOUTFS_EXTENT_FLAG_OFFLINE)
		g->offline += len;
	else if (blkno && !(dv.flags & SCOUTFS_EXTENT_FLAG_UNWRITTEN))
		g->online += len;
	if (!blkno)
		return;
	if (blkno < SCOUTFS_DATA_DEV_START_BLKNO || blkno > chk->total_data ||
	    len > chk->total_data - blkno) {
		gproblem(fc,
		         "data extent of file blocks %llu-%llu maps data blocks %llu-%llu, outside "
		         "the data device's blocks %u-%llu",
		         (unsigned long long)start, (unsigned long long)last,
		         (unsigned long long)blkno, (unsigned long long)(blkno + len - 1),
		         SCOUTFS_DATA_DEV_START_BLKNO, (unsigned long long)(chk->total_data - 1));
		return;
	}
	snprintf(owner, sizeof(owner), "inode %llu (file blocks %llu-%llu)",
	         (unsigned long long)g->ino, (unsigned long long)start, (unsigned long long)last);
	check_mark_data(chk, blkno, len, true, owner);
}

/* ---------------------------------------------------------------------------------------- */
/* inodes */

static void diagnose_dir_entries(struct fs_check *fc, u64 dir);

static void inode_item(struct fs_check *fc, const struct mview_item *item)
{
	struct check *chk = fc->chk;
	struct inode_group *g = &fc->g;
	u64 ino = g->ino;
	u64 fmt = le64_to_cpu(chk->super->fmt_vers);
	u32 mode, flags;

	if (key_second(&item->key) || key_third(&item->key) || key_fourth(&item->key))
		gproblem(fc, "the inode item key has unused fields set");
	if (item->val_len != SCOUTFS_INODE_FMT_V1_BYTES &&
	    !(item->val_len == SCOUTFS_INODE_FMT_V2_BYTES && fmt >= 2)) {
		gproblem(fc, "the inode item has %u bytes; format version %llu inodes have %u%s",
		         item->val_len, (unsigned long long)fmt, SCOUTFS_INODE_FMT_V1_BYTES,
		         fmt >= 2 ? " or 168" : "");
		return;
	}
	memset(&g->si, 0, sizeof(g->si));
	memcpy(&g->si, item->val, item->val_len);
	g->have_inode = true;
	mode = g->mode = le32_to_cpu(g->si.mode);
	chk->nr_inodes++;

	if (ino != SCOUTFS_ROOT_INO &&
	    (ino < SCOUTFS_FIRST_INO || ino >= le64_to_cpu(chk->super->next_ino)))
		gproblem(fc, "the inode number is outside the allocated inode numbers %llu-%llu",
		         SCOUTFS_FIRST_INO,
		         (unsigned long long)le64_to_cpu(chk->super->next_ino) - 1);
	if (!mode_valid(mode))
		gproblem(fc, "invalid mode 0%o", mode);
	if (ino == SCOUTFS_ROOT_INO && !S_ISDIR(mode))
		gproblem(fc, "the root inode is not a directory (mode 0%o)", mode);
	if (ino == SCOUTFS_ROOT_INO)
		fc->have_root = true;
	if (S_ISDIR(mode))
		chk->nr_dirs++;
	if (S_ISREG(mode))
		chk->nr_regular++;
	if (le32_to_cpu(g->si.nlink) > SCOUTFS_LINK_MAX)
		gproblem(fc, "nlink %u is above the maximum %u", le32_to_cpu(g->si.nlink),
		         SCOUTFS_LINK_MAX);
	flags = le32_to_cpu(g->si.flags);
	if (flags & ~(SCOUTFS_INO_FLAG_TRUNCATE | SCOUTFS_INO_FLAG_RETENTION))
		gproblem(fc, "unknown inode flags 0x%x", flags);
	if ((flags & SCOUTFS_INO_FLAG_TRUNCATE) && !S_ISREG(mode))
		gproblem(
		        fc,
		        "a truncate is recorded in progress on an inode that isn't a regular file");
	if (S_ISDIR(mode) && le64_to_cpu(g->si.next_readdir_pos) < SCOUTFS_DIRENT_FIRST_POS)
		gproblem(fc, "directory next_readdir_pos %llu is below the first position %d",
		         (unsigned long long)le64_to_cpu(g->si.next_readdir_pos),
		         SCOUTFS_DIRENT_FIRST_POS);
	if (le32_to_cpu(g->si.atime.nsec) >= NSEC_PER_SEC ||
	    le32_to_cpu(g->si.ctime.nsec) >= NSEC_PER_SEC ||
	    le32_to_cpu(g->si.mtime.nsec) >= NSEC_PER_SEC ||
	    le32_to_cpu(g->si.crtime.nsec) >= NSEC_PER_SEC)
		gproblem(fc, "a timestamp has nanoseconds above one second");

	fc->nr_inode_index++;
	fc->fp_inode_index +=
	        hash3(SCOUTFS_INODE_INDEX_META_SEQ_TYPE, le64_to_cpu(g->si.meta_seq), ino);
	if (S_ISREG(mode)) {
		fc->nr_inode_index++;
		fc->fp_inode_index +=
		        hash3(SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE, le64_to_cpu(g->si.data_seq), ino);
	}
}

/* ---------------------------------------------------------------------------------------- */
/* reachability of directories */

enum { DIR_UNKNOWN = 0, DIR_WALKING, DIR_REACHABLE, DIR_UNREACHABLE };

static void add_dir_parent(struct fs_check *fc, u64 ino, u64 parent)
{
	if (fc->nr_dirs == fc->alloced_dirs) {
		size_t nr = fc->alloced_dirs ? fc->alloced_dirs * 2 : 256;
		void *p = realloc(fc->dirs, nr * sizeof(fc->dirs[0]));

		if (!p) {
			check_problem(
			        fc->chk,
			        "out of memory for the directory tree; reachability not checked");
			return;
		}
		fc->dirs = p;
		fc->alloced_dirs = nr;
	}
	fc->dirs[fc->nr_dirs].ino = ino;
	fc->dirs[fc->nr_dirs].parent = parent;
	fc->dirs[fc->nr_dirs].state = DIR_UNKNOWN;
	fc->nr_dirs++;
}

static ssize_t find_dir(struct fs_check *fc, u64 ino)
{
	size_t a = 0, b = fc->nr_dirs, mid;

	while (a < b) {
		mid = a + (b - a) / 2;
		if (fc->dirs[mid].ino < ino)
			a = mid + 1;
		else
			b = mid;
	}
	return a < fc->nr_dirs && fc->dirs[a].ino == ino ? (ssize_t)a : -1;
}

/* a directory the root can't reach: its walk came back to itself (loop) or left the tree */
static u8 dir_unreachable(struct fs_check *fc, const struct dir_parent *dp, bool loop)
{
	unsigned long long ino = dp->ino, parent = dp->parent;

	if (loop)
		check_problem(fc->chk,
		              "directory %llu is in a loop of directories that can't be reached "
		              "from the root (its parent is %llu)",
		              ino, parent);
	else
		check_problem(fc->chk,
		              "directory %llu can't be reached from the root: its parent %llu is "
		              "not a directory with a name",
		              ino, parent);
	return DIR_UNREACHABLE;
}

/*
 * Every directory but the root has exactly one name (checked per inode), so following the
 * names up from any directory must reach the root.  Each walk stops at a directory already
 * decided; a walk that comes back to itself found a loop cut off from the root.
 */
static void check_reachable(struct fs_check *fc)
{
	size_t *path;
	size_t nr, i;
	ssize_t j;
	u8 result;

	path = malloc((fc->nr_dirs + 1) * sizeof(size_t));
	if (!path) {
		check_problem(fc->chk,
		              "out of memory for the directory tree; reachability not checked");
		return;
	}
	for (i = 0; i < fc->nr_dirs; i++) {
		size_t cur = i;

		nr = 0;
		for (;;) {
			struct dir_parent *dp = &fc->dirs[cur];

			if (dp->state == DIR_REACHABLE || dp->state == DIR_UNREACHABLE) {
				result = dp->state;
				break;
			}
			if (dp->state == DIR_WALKING) {
				result = dir_unreachable(fc, dp, true);
				break;
			}
			dp->state = DIR_WALKING;
			path[nr++] = cur;
			if (dp->parent == SCOUTFS_ROOT_INO) {
				result = DIR_REACHABLE;
				break;
			}
			j = find_dir(fc, dp->parent);
			if (j < 0) {
				result = dir_unreachable(fc, dp, false);
				break;
			}
			cur = (size_t)j;
		}
		while (nr)
			fc->dirs[path[--nr]].state = result;
	}
	free(path);
}

/* everything of an inode has gone by: the checks of the whole inode */
static void finish_group(struct fs_check *fc)
{
	struct inode_group *g = &fc->g;
	u64 ino = g->ino;
	u32 nlink;
	bool orphan = false;

	if (!fc->in_group)
		return;
	xattr_finish(fc);
	fc->in_group = false;

	/* orphan items of inodes before this one name inodes that don't exist */
	while (fc->orphan_pos < fc->nr_orphans && fc->orphans[fc->orphan_pos] < ino) {
		check_problem(fc->chk, "orphan item of inode %llu: the inode doesn't exist",
		              (unsigned long long)fc->orphans[fc->orphan_pos]);
		fc->orphan_pos++;
	}
	if (fc->orphan_pos < fc->nr_orphans && fc->orphans[fc->orphan_pos] == ino) {
		orphan = true;
		fc->orphan_pos++;
	}

	if (!g->have_inode) {
		char counts[256];
		size_t o = 0;

		for (int t = 1; t < 8; t++) {
			if (g->nr_items[t])
				o += (size_t)snprintf(
				        counts + o, sizeof(counts) - o, "%s%llu %s", o ? ", " : "",
				        (unsigned long long)g->nr_items[t], type_name((u8)(t * 4)));
			if (o >= sizeof(counts))
				break;
		}
		if (g->nr_items[1] + g->nr_items[2] + g->nr_items[3] + g->nr_items[4] +
		    g->nr_items[5] + g->nr_items[6] + g->nr_items[7])
			gproblem(fc, "has items (%s) but no inode item", counts);
		if (orphan)
			gproblem(fc, "has an orphan item but no inode item");
		return;
	}

	nlink = le32_to_cpu(g->si.nlink);
	if (S_ISDIR(g->mode)) {
		if (g->nr_dirents != g->nr_readdir || g->fp_dirent != g->fp_readdir) {
			if (g->nr_dirents != g->nr_readdir)
				gproblem(fc,
				         "the directory has %llu dirent items but %llu readdir "
				         "items",
				         (unsigned long long)g->nr_dirents,
				         (unsigned long long)g->nr_readdir);
			diagnose_dir_entries(fc, ino);
		}
		if (le64_to_cpu(g->si.size) != g->name_bytes)
			gproblem(fc,
			         "directory size %llu differs from the %llu bytes of its %llu "
			         "entry names",
			         (unsigned long long)le64_to_cpu(g->si.size),
			         (unsigned long long)g->name_bytes,
			         (unsigned long long)g->nr_readdir);
		if (nlink == 0) {
			if (g->nr_readdir)
				gproblem(fc, "the directory has nlink 0 but %llu entries",
				         (unsigned long long)g->nr_readdir);
			if (g->nr_backrefs)
				gproblem(fc, "the directory has nlink 0 but %llu names",
				         (unsigned long long)g->nr_backrefs);
		} else {
			if ((u64)nlink != 2 + g->nr_subdirs)
				gproblem(fc,
				         "directory nlink %u, expected %llu (2 + %llu "
				         "subdirectories)",
				         nlink, (unsigned long long)(2 + g->nr_subdirs),
				         (unsigned long long)g->nr_subdirs);
			if (ino == SCOUTFS_ROOT_INO && g->nr_backrefs)
				gproblem(fc, "the root directory is named by %llu entries",
				         (unsigned long long)g->nr_backrefs);
			if (ino != SCOUTFS_ROOT_INO && g->nr_backrefs != 1)
				gproblem(fc, "the directory is named by %llu entries, not 1",
				         (unsigned long long)g->nr_backrefs);
			if (ino != SCOUTFS_ROOT_INO && g->nr_backrefs == 1)
				add_dir_parent(fc, ino, g->parent);
		}
	} else if ((u64)nlink != g->nr_backrefs) {
		gproblem(fc, "nlink %u but %llu entries name the inode", nlink,
		         (unsigned long long)g->nr_backrefs);
	}

	if (nlink == 0 && !orphan)
		gproblem(fc, "nlink is 0 but there is no orphan item: it would never be deleted");
	if (nlink != 0 && orphan)
		gproblem(fc, "has an orphan item but nlink %u", nlink);

	if (S_ISLNK(g->mode)) {
		u64 size = le64_to_cpu(g->si.size);

		if (size < 2 || size > SCOUTFS_SYMLINK_MAX_SIZE)
			gproblem(fc, "symlink size %llu is outside 2-%u", (unsigned long long)size,
			         SCOUTFS_SYMLINK_MAX_SIZE);
		else if (!g->link_bad && g->link_bytes != size)
			gproblem(fc, "symlink size %llu but its chunks hold %llu bytes",
			         (unsigned long long)size, (unsigned long long)g->link_bytes);
		else if (!g->link_bad && (g->last_byte != 0 || g->nul_early))
			gproblem(fc, "symlink target is not one NUL terminated string");
	}
	if (S_ISREG(g->mode)) {
		if (le64_to_cpu(g->si.online_blocks) != g->online)
			gproblem(fc, "online_blocks %llu but its extents map %llu online blocks",
			         (unsigned long long)le64_to_cpu(g->si.online_blocks),
			         (unsigned long long)g->online);
		if (le64_to_cpu(g->si.offline_blocks) != g->offline)
			gproblem(fc, "offline_blocks %llu but its extents have %llu offline blocks",
			         (unsigned long long)le64_to_cpu(g->si.offline_blocks),
			         (unsigned long long)g->offline);
	}
}

static void start_group(struct fs_check *fc, u64 ino)
{
	memset(&fc->g, 0, sizeof(fc->g));
	fc->g.ino = ino;
	fc->xn.valid = false;
	fc->in_group = true;
}

static void fs_zone_item(struct fs_check *fc, const struct mview_item *item)
{
	struct inode_group *g = &fc->g;
	u64 ino = key_first(&item->key);
	u8 type = item->key.sk_type;

	if (!fc->in_group || g->ino != ino) {
		finish_group(fc);
		start_group(fc, ino);
	}
	if (type % 4 == 0 && type / 4 < 8)
		g->nr_items[type / 4]++;

	if (type != SCOUTFS_XATTR_TYPE)
		xattr_finish(fc);

	switch (type) {
	case SCOUTFS_INODE_TYPE:
		inode_item(fc, item);
		break;
	case SCOUTFS_XATTR_TYPE:
		xattr_item(fc, item);
		break;
	case SCOUTFS_DIRENT_TYPE:
		dir_item(fc, item, false);
		break;
	case SCOUTFS_READDIR_TYPE:
		dir_item(fc, item, true);
		break;
	case SCOUTFS_LINK_BACKREF_TYPE:
		backref_item(fc, item);
		break;
	case SCOUTFS_SYMLINK_TYPE:
		symlink_item(fc, item);
		break;
	case SCOUTFS_DATA_EXTENT_TYPE:
		extent_item(fc, item);
		break;
	default:
		gproblem(fc, "item of unknown type %u", type);
		break;
	}
}

/* ---------------------------------------------------------------------------------------- */
/* the other zones */

static void index_item(struct fs_check *fc, const struct mview_item *item)
{
	const struct scoutfs_key *key = &item->key;
	char k[KEY_STR_LEN];

	if ((key->sk_type != SCOUTFS_INODE_INDEX_META_SEQ_TYPE &&
	     key->sk_type != SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE) ||
	    key_first(key) || key_fourth(key)) {
		check_problem(fc->chk, "inode index item %s: not a meta_seq or data_seq index key",
		              key_str(key, k));
		return;
	}
	if (item->val_len)
		check_problem(fc->chk, "inode index item %s: has a %u byte value", key_str(key, k),
		              item->val_len);
	fc->nr_index++;
	fc->fp_index += hash3(key->sk_type, key_second(key), key_third(key));
}

static void orphan_item(struct fs_check *fc, const struct mview_item *item)
{
	const struct scoutfs_key *key = &item->key;
	char k[KEY_STR_LEN];

	if (key->sk_type != SCOUTFS_ORPHAN_TYPE || key_first(key) || key_third(key) ||
	    key_fourth(key)) {
		check_problem(fc->chk, "orphan item %s: not an orphan key", key_str(key, k));
		return;
	}
	if (item->val_len)
		check_problem(fc->chk, "orphan item of inode %llu has a %u byte value",
		              (unsigned long long)key_second(key), item->val_len);
	if (fc->nr_orphans == fc->alloced_orphans) {
		size_t nr = fc->alloced_orphans ? fc->alloced_orphans * 2 : 64;
		void *p = realloc(fc->orphans, nr * sizeof(u64));

		if (!p) {
			check_problem(fc->chk, "out of memory for orphan items");
			return;
		}
		fc->orphans = p;
		fc->alloced_orphans = nr;
	}
	fc->orphans[fc->nr_orphans++] = key_second(key);
}

static void view_item(struct fs_check *fc, const struct mview_item *item)
{
	struct check *chk = fc->chk;
	char k[KEY_STR_LEN], tn[64];

	chk->nr_items++;
	if ((item->flags & SCOUTFS_ITEM_FLAG_DELTA) && item->key.sk_zone != SCOUTFS_XATTR_TOTL_ZONE)
		check_problem(chk, "item %s (from %s) is a delta item outside the totl zone",
		              key_str(&item->key, k),
		              mview_tree_name(chk, item->tree, tn, sizeof(tn)));

	switch (item->key.sk_zone) {
	case SCOUTFS_INODE_INDEX_ZONE:
		index_item(fc, item);
		break;
	case SCOUTFS_ORPHAN_ZONE:
		orphan_item(fc, item);
		break;
	case SCOUTFS_QUOTA_ZONE:
		fc->nr_quota++;
		chk->nr_unchecked_items++;
		break;
	case SCOUTFS_XATTR_TOTL_ZONE:
		fc->nr_totl++;
		chk->nr_unchecked_items++;
		break;
	case SCOUTFS_XATTR_INDX_ZONE:
		fc->nr_indx++;
		chk->nr_unchecked_items++;
		break;
	case SCOUTFS_FS_ZONE:
		fs_zone_item(fc, item);
		break;
	default:
		check_problem(chk,
		              "item %s (from %s) is in zone %u, which holds no filesystem items",
		              key_str(&item->key, k),
		              mview_tree_name(chk, item->tree, tn, sizeof(tn)), item->key.sk_zone);
		break;
	}
}

/* ---------------------------------------------------------------------------------------- */
/* second passes that name what the sums found missing */

/* the DIRENT and READDIR items of one directory, looked up in each other */
static void diagnose_dir_entries(struct fs_check *fc, u64 dir)
{
	struct check *chk = fc->chk;
	struct scoutfs_key start = key_make(SCOUTFS_FS_ZONE, dir, SCOUTFS_DIRENT_TYPE, 0, 0, 0);
	struct scoutfs_key end =
	        key_make(SCOUTFS_FS_ZONE, dir, SCOUTFS_READDIR_TYPE, ~0ULL, ~0ULL, 0xff);
	u8 val[SCOUTFS_BTREE_MAX_VAL_LEN];
	struct scoutfs_dirent d;
	struct mview_item item;
	struct scoutfs_key key;
	char nb[NAME_BUF];
	struct mview *mv;
	unsigned int len;
	u64 pos;
	int ret;

	ret = mview_open(chk, &start, &end, &mv);
	if (ret < 0)
		return;
	while (mview_next(mv, &item) == 0) {
		if (!item_dirent(&item, &d, nb, sizeof(nb)))
			continue;
		if (item.key.sk_type == SCOUTFS_DIRENT_TYPE) {
			pos = key_third(&item.key);
			key = key_make(SCOUTFS_FS_ZONE, dir, SCOUTFS_READDIR_TYPE, pos, 0, 0);
			ret = mview_lookup(chk, &key, val, &len);
			if (ret == -ENOENT)
				check_problem(chk,
				              "directory %llu: entry '%s' at pos %llu has a dirent "
				              "item but no readdir item",
				              (unsigned long long)dir, nb, (unsigned long long)pos);
			else if (ret == 0 && (len != item.val_len || memcmp(val, item.val, len)))
				check_problem(chk,
				              "directory %llu: entry '%s' at pos %llu: the dirent "
				              "and readdir items differ",
				              (unsigned long long)dir, nb, (unsigned long long)pos);
		} else if (item.key.sk_type == SCOUTFS_READDIR_TYPE) {
			pos = key_second(&item.key);
			key = key_make(SCOUTFS_FS_ZONE, dir, SCOUTFS_DIRENT_TYPE,
			               le64_to_cpu(d.hash), pos, 0);
			ret = mview_lookup(chk, &key, val, &len);
			if (ret == -ENOENT)
				check_problem(chk,
				              "directory %llu: entry '%s' at pos %llu has a "
				              "readdir item but no dirent item",
				              (unsigned long long)dir, nb, (unsigned long long)pos);
		}
	}
	mview_close(mv);
}

/* every READDIR item with its LINK_BACKREF and back */
static int diagnose_entries(struct check *chk)
{
	struct scoutfs_key start = key_make(SCOUTFS_FS_ZONE, 0, 0, 0, 0, 0);
	struct scoutfs_key end = key_make(SCOUTFS_FS_ZONE, ~0ULL, 0xff, ~0ULL, ~0ULL, 0xff);
	u8 val[SCOUTFS_BTREE_MAX_VAL_LEN];
	struct scoutfs_dirent d;
	struct mview_item item;
	struct scoutfs_key key;
	char nb[NAME_BUF];
	struct mview *mv;
	unsigned int len;
	u64 dir, pos, ino;
	int ret;

	ret = mview_open(chk, &start, &end, &mv);
	if (ret < 0)
		return ret;
	while ((ret = mview_next(mv, &item)) == 0) {
		if ((item.key.sk_type != SCOUTFS_READDIR_TYPE &&
		     item.key.sk_type != SCOUTFS_LINK_BACKREF_TYPE) ||
		    !item_dirent(&item, &d, nb, sizeof(nb)))
			continue;
		if (item.key.sk_type == SCOUTFS_READDIR_TYPE) {
			dir = key_first(&item.key);
			pos = key_second(&item.key);
			ino = le64_to_cpu(d.ino);
			key = key_make(SCOUTFS_FS_ZONE, ino, SCOUTFS_LINK_BACKREF_TYPE, dir, pos,
			               0);
			ret = mview_lookup(chk, &key, val, &len);
			if (ret == -ENOENT) {
				key = key_make(SCOUTFS_FS_ZONE, ino, SCOUTFS_INODE_TYPE, 0, 0, 0);
				ret = mview_lookup(chk, &key, val, &len);
				check_problem(chk,
				              "directory %llu: entry '%s' at pos %llu names inode "
				              "%llu, %s",
				              (unsigned long long)dir, nb, (unsigned long long)pos,
				              (unsigned long long)ino,
				              ret == -ENOENT
				                      ? "which doesn't exist"
				                      : "which has no link backref item for it");
			} else if (ret == 0 && (len != item.val_len || memcmp(val, item.val, len)))
				check_problem(chk,
				              "directory %llu: entry '%s' at pos %llu: its readdir "
				              "item and the link backref item of inode %llu differ",
				              (unsigned long long)dir, nb, (unsigned long long)pos,
				              (unsigned long long)ino);
		} else {
			ino = key_first(&item.key);
			dir = key_second(&item.key);
			pos = key_third(&item.key);
			key = key_make(SCOUTFS_FS_ZONE, dir, SCOUTFS_READDIR_TYPE, pos, 0, 0);
			ret = mview_lookup(chk, &key, val, &len);
			if (ret == -ENOENT)
				check_problem(
				        chk,
				        "inode %llu: link backref item names entry '%s' at pos "
				        "%llu of directory %llu, which has no readdir item there",
				        (unsigned long long)ino, nb, (unsigned long long)pos,
				        (unsigned long long)dir);
		}
		if (ret == -ENOMEM)
			break;
		ret = 0;
	}
	mview_close(mv);
	return ret == -ENOENT ? 0 : ret;
}

/* every index item with its inode and every inode with its index items */
static int diagnose_index(struct check *chk)
{
	struct scoutfs_key start = key_make(SCOUTFS_INODE_INDEX_ZONE, 0, 0, 0, 0, 0);
	struct scoutfs_key end =
	        key_make(SCOUTFS_INODE_INDEX_ZONE, ~0ULL, 0xff, ~0ULL, ~0ULL, 0xff);
	u8 val[SCOUTFS_BTREE_MAX_VAL_LEN];
	struct scoutfs_inode si;
	struct mview_item item;
	struct scoutfs_key key;
	struct mview *mv;
	unsigned int len;
	const char *name;
	u64 seq, ino, iseq;
	u8 type;
	int ret;

	ret = mview_open(chk, &start, &end, &mv);
	if (ret < 0)
		return ret;
	while ((ret = mview_next(mv, &item)) == 0) {
		type = item.key.sk_type;
		if (type != SCOUTFS_INODE_INDEX_META_SEQ_TYPE &&
		    type != SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE)
			continue;
		name = type == SCOUTFS_INODE_INDEX_META_SEQ_TYPE ? "meta_seq" : "data_seq";
		seq = key_second(&item.key);
		ino = key_third(&item.key);
		key = key_make(SCOUTFS_FS_ZONE, ino, SCOUTFS_INODE_TYPE, 0, 0, 0);
		ret = mview_lookup(chk, &key, val, &len);
		if (ret == -ENOMEM)
			break;
		if (ret == -ENOENT) {
			check_problem(
			        chk,
			        "%s index item (seq %llu, inode %llu): the inode doesn't exist",
			        name, (unsigned long long)seq, (unsigned long long)ino);
			continue;
		}
		memset(&si, 0, sizeof(si));
		memcpy(&si, val, min_t(unsigned int, len, sizeof(si)));
		iseq = le64_to_cpu(type == SCOUTFS_INODE_INDEX_META_SEQ_TYPE ? si.meta_seq
		                                                             : si.data_seq);
		if (type == SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE && !S_ISREG(le32_to_cpu(si.mode)))
			check_problem(chk,
			              "data_seq index item (seq %llu, inode %llu): the inode is "
			              "not a regular file",
			              (unsigned long long)seq, (unsigned long long)ino);
		else if (iseq != seq)
			check_problem(
			        chk, "%s index item (seq %llu, inode %llu): the inode's %s is %llu",
			        name, (unsigned long long)seq, (unsigned long long)ino, name,
			        (unsigned long long)iseq);
	}
	mview_close(mv);
	if (ret != -ENOENT)
		return ret;

	start = key_make(SCOUTFS_FS_ZONE, 0, 0, 0, 0, 0);
	end = key_make(SCOUTFS_FS_ZONE, ~0ULL, 0xff, ~0ULL, ~0ULL, 0xff);
	ret = mview_open(chk, &start, &end, &mv);
	if (ret < 0)
		return ret;
	while ((ret = mview_next(mv, &item)) == 0) {
		if (item.key.sk_type != SCOUTFS_INODE_TYPE ||
		    item.val_len < SCOUTFS_INODE_FMT_V1_BYTES)
			continue;
		memset(&si, 0, sizeof(si));
		memcpy(&si, item.val, min_t(unsigned int, item.val_len, sizeof(si)));
		ino = key_first(&item.key);
		for (int i = 0; i < 2; i++) {
			type = i == 0 ? SCOUTFS_INODE_INDEX_META_SEQ_TYPE
			              : SCOUTFS_INODE_INDEX_DATA_SEQ_TYPE;
			if (i == 1 && !S_ISREG(le32_to_cpu(si.mode)))
				break;
			seq = le64_to_cpu(i == 0 ? si.meta_seq : si.data_seq);
			key = key_make(SCOUTFS_INODE_INDEX_ZONE, 0, type, seq, ino, 0);
			ret = mview_lookup(chk, &key, val, &len);
			if (ret == -ENOMEM)
				break;
			if (ret == -ENOENT)
				check_problem(
				        chk, "inode %llu: no %s index item at its %s %llu",
				        (unsigned long long)ino, i == 0 ? "meta_seq" : "data_seq",
				        i == 0 ? "meta_seq" : "data_seq", (unsigned long long)seq);
		}
		if (ret == -ENOMEM)
			break;
	}
	mview_close(mv);
	return ret == -ENOENT ? 0 : ret;
}

/*
 * The two sides of a relation, summed as multisets: nr_a and nr_b members, and whether the
 * sums of their hashes differ.  When the sides differ, report the counts if they do
 * (counts_fmt takes nr_a and nr_b), then run diagnose: the second pass that looks up every
 * member (what) on the other side to name each difference.
 */
static int compare_sums(struct check *chk, u64 nr_a, u64 nr_b, bool sums_differ,
                        const char *counts_fmt, const char *what,
                        int (*diagnose)(struct check *chk)) __attribute__((format(printf, 5, 0)));

static int compare_sums(struct check *chk, u64 nr_a, u64 nr_b, bool sums_differ,
                        const char *counts_fmt, const char *what,
                        int (*diagnose)(struct check *chk))
{
	if (nr_a == nr_b && !sums_differ)
		return 0;
	if (nr_a != nr_b)
		check_problem(chk, counts_fmt, (unsigned long long)nr_a, (unsigned long long)nr_b);
	check_note(chk, "looking up every %s to find the difference", what);
	return diagnose(chk);
}

/* ---------------------------------------------------------------------------------------- */

int check_fs_items(struct check *chk)
{
	struct scoutfs_key start = key_zeros();
	struct scoutfs_key end = key_ones();
	struct fs_check fc = { .chk = chk };
	struct mview_item item;
	struct mview *mv;
	s64 expect_inodes;
	int ret;

	ret = mview_open(chk, &start, &end, &mv);
	if (ret < 0)
		return ret;
	while ((ret = mview_next(mv, &item)) == 0) {
		view_item(&fc, &item);
		if (check_progress_due(chk))
			check_note(chk,
			           "progress: %llu items, %llu inodes, %llu entries, %llu extents",
			           (unsigned long long)chk->nr_items,
			           (unsigned long long)chk->nr_inodes,
			           (unsigned long long)chk->nr_entries,
			           (unsigned long long)chk->nr_extents);
	}
	mview_close(mv);
	if (ret != -ENOENT)
		goto out;
	ret = 0;
	finish_group(&fc);
	for (; fc.orphan_pos < fc.nr_orphans; fc.orphan_pos++)
		check_problem(chk, "orphan item of inode %llu: the inode doesn't exist",
		              (unsigned long long)fc.orphans[fc.orphan_pos]);

	if (!fc.have_root)
		check_problem(chk, "the root directory (inode %llu) doesn't exist",
		              SCOUTFS_ROOT_INO);
	check_reachable(&fc);

	expect_inodes = (s64)le64_to_cpu(chk->super->inode_count) + chk->inode_count_deltas;
	if (!chk->logs_incomplete && expect_inodes != (s64)chk->nr_inodes)
		check_problem(chk,
		              "the super's inode_count %llu plus the log trees' deltas %lld is "
		              "%lld, but %llu inodes exist",
		              (unsigned long long)le64_to_cpu(chk->super->inode_count),
		              (long long)chk->inode_count_deltas, (long long)expect_inodes,
		              (unsigned long long)chk->nr_inodes);

	ret = compare_sums(chk, fc.nr_index, fc.nr_inode_index, fc.fp_index != fc.fp_inode_index,
	                   "there are %llu inode index items but the inodes need %llu",
	                   "inode index item and inode", diagnose_index);
	if (ret < 0)
		goto out;
	ret = compare_sums(chk, fc.nr_readdir, fc.nr_backref, fc.fp_readdir != fc.fp_backref,
	                   "there are %llu readdir items but %llu link backref items",
	                   "entry's readdir and link backref items", diagnose_entries);
	if (ret < 0)
		goto out;
	if (fc.nr_quota || fc.nr_totl || fc.nr_indx)
		check_note(chk, "%llu quota, %llu .totl. and %llu .indx. items are not checked",
		           (unsigned long long)fc.nr_quota, (unsigned long long)fc.nr_totl,
		           (unsigned long long)fc.nr_indx);
out:
	free(fc.orphans);
	free(fc.xn.names);
	free(fc.dirs);
	return ret;
}

/* ---------------------------------------------------------------------------------------- */
/* data blocks */

/* name the files whose extents hold data blocks that were marked twice */
int check_data_owners(struct check *chk)
{
	struct scoutfs_key start = key_make(SCOUTFS_FS_ZONE, 0, 0, 0, 0, 0);
	struct scoutfs_key end = key_make(SCOUTFS_FS_ZONE, ~0ULL, 0xff, ~0ULL, ~0ULL, 0xff);
	struct scoutfs_data_extent_val dv;
	struct mview_item item;
	struct mview *mv;
	char owner[128];
	u64 last, len, blkno;
	int ret;

	ret = mview_open(chk, &start, &end, &mv);
	if (ret < 0)
		return ret;
	chk->owner_mode = true;
	while ((ret = mview_next(mv, &item)) == 0) {
		if (item.key.sk_type != SCOUTFS_DATA_EXTENT_TYPE || item.val_len != sizeof(dv))
			continue;
		memcpy(&dv, item.val, sizeof(dv));
		last = key_second(&item.key);
		len = key_third(&item.key);
		blkno = le64_to_cpu(dv.blkno);
		if (!blkno || len == 0 || last < len - 1)
			continue;
		snprintf(owner, sizeof(owner), "inode %llu (file blocks %llu-%llu)",
		         (unsigned long long)key_first(&item.key),
		         (unsigned long long)(last - len + 1), (unsigned long long)last);
		check_mark_data(chk, blkno, len, true, owner);
	}
	chk->owner_mode = false;
	mview_close(mv);
	return ret == -ENOENT ? 0 : ret;
}
