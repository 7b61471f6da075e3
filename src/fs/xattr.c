/*
 * xattr.c: extended attributes.
 *
 * An xattr is stored in one or more items keyed by (ino, hash of the name, xattr id, part).
 * Part 0 starts with a small header {value length, name length}, then the name, then as
 * much of the value as fits in an item; later parts carry the rest in item-sized pieces.
 * The id comes from the inode's next_xattr_id when the xattr is created and is kept when its
 * value is replaced, so an xattr keeps its place.  Lookups walk the items with the name's
 * hash and compare names, so hash collisions are harmless.
 *
 * Names live in namespaces: user., trusted., security., system.posix_acl_{access,default}
 * and scoutfs.; any other prefix is EOPNOTSUPP.  The kernel's VFS checks the caller's rights
 * for user. and trusted. names (and refuses user. xattrs on anything but files and
 * directories); what it leaves to us is hiding trusted. names from unprivileged listers,
 * the ACL names (acl.c), and the scoutfs. tags: only CAP_SYS_ADMIN may set or remove a
 * tagged name, hide. keeps a name out of listxattr, and the indexing tags srch., totl. and
 * indx. are refused with EOPNOTSUPP until the archival indexes are built, rather than
 * silently storing an xattr that indexes nothing.
 */
#include <errno.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_int.h"
#include "util/counters.h"
#include "util/crc32c.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(xattr_set);
COUNTER_DEFINE(xattr_get);
/* lookups of names an inode doesn't have (the kernel asks for security.capability per write) */
COUNTER_DEFINE(xattr_get_missing);
COUNTER_DEFINE(xattr_remove);

#define PART_SIZE SCOUTFS_XATTR_PART_SIZE
#define HDR_SIZE sizeof(struct scoutfs_xattr)

struct xattr_tags {
	bool hide;
	bool srch;
	bool totl;
	bool indx;
};

static u64 xattr_hash(const char *name, size_t len)
{
	return crc32c(name, len);
}

static unsigned int nr_parts(size_t name_len, size_t val_len)
{
	return (unsigned int)DIV_ROUND_UP(HDR_SIZE + name_len + val_len, PART_SIZE);
}

/*
 * Check the name's namespace and parse scoutfs. tags.  Tags are five characters each
 * ("hide." ...) right after "scoutfs.", in any order; the rest is the free-form name.
 */
static int parse_name(const char *name, size_t len, struct xattr_tags *tags, int *acl_type)
{
	static const char *const prefixes[] = { "user.", "trusted.", "security." };
	const char *p;
	size_t rest;

	memset(tags, 0, sizeof(*tags));
	*acl_type = fs_acl_type(name, len);
	if (len == 0)
		return -EINVAL;
	if (len > SCOUTFS_XATTR_MAX_NAME_LEN)
		return -ERANGE;
	if (*acl_type)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(prefixes); i++) {
		size_t plen = strlen(prefixes[i]);

		if (len > plen && strncmp(name, prefixes[i], plen) == 0)
			return 0;
	}
	if (len <= 8 || strncmp(name, "scoutfs.", 8) != 0)
		return -EOPNOTSUPP; /* other system. names and unknown namespaces */

	p = name + 8;
	rest = len - 8;
	while (rest > 5 && p[4] == '.') {
		bool *tag = NULL;

		if (strncmp(p, "hide", 4) == 0)
			tag = &tags->hide;
		else if (strncmp(p, "srch", 4) == 0)
			tag = &tags->srch;
		else if (strncmp(p, "totl", 4) == 0)
			tag = &tags->totl;
		else if (strncmp(p, "indx", 4) == 0)
			tag = &tags->indx;
		if (!tag)
			break;
		if (*tag)
			return -EINVAL; /* a tag given twice */
		*tag = true;
		p += 5;
		rest -= 5;
	}
	if (!(tags->hide || tags->srch || tags->totl || tags->indx)) {
		/* the only reason for the scoutfs. namespace is tags (short names slip through) */
		if (len >= 14)
			return -EINVAL;
		return 0;
	}
	if (tags->totl && tags->indx)
		return -EINVAL;
	return 0;
}

/*
 * May the caller set or remove this name?  Tagged scoutfs. names need CAP_SYS_ADMIN; the
 * indexing tags are not implemented yet.
 */
static int check_tags_change(const struct fs_cred *cred, const char *name,
			     const struct xattr_tags *tags)
{
	if ((tags->hide || tags->srch || tags->totl || tags->indx) &&
	    !fs_capable(cred, CAP_SYS_ADMIN))
		return -EPERM;
	if (tags->srch || tags->totl || tags->indx) {
		log_info("xattr %s: the srch., totl. and indx. tags are not supported yet", name);
		return -EOPNOTSUPP;
	}
	return 0;
}

struct found_xattr {
	u64 id;
	unsigned int val_len;
	unsigned int parts;
};

/* find an xattr by name: its id, value length and number of parts */
static int find_xattr(struct fs_info *fs, struct lock *lock, u64 ino, const char *name, size_t len,
		      struct found_xattr *fx)
{
	u64 hash = xattr_hash(name, len);
	struct scoutfs_key key = xattr_key(ino, hash, 0, 0);
	struct scoutfs_key last = xattr_key(ino, hash, ~0ULL, 0xff);
	union {
		struct scoutfs_xattr x;
		u8 buf[PART_SIZE];
	} u;
	int ret;

	for (;;) {
		ret = item_next(fs->ic, lock, &key, &last, &u, sizeof(u));
		if (ret < 0)
			return ret;
		if (key_fourth(&key) == 0) {
			if ((size_t)ret < HDR_SIZE || HDR_SIZE + u.x.name_len > (size_t)ret)
				return -EIO;
			if (u.x.name_len == len && memcmp(u.x.name, name, len) == 0) {
				fx->id = key_third(&key);
				fx->val_len = le16_to_cpu(u.x.val_len);
				fx->parts = nr_parts(len, fx->val_len);
				return 0;
			}
		}
		/* on to the next xattr with this hash */
		if (key_third(&key) == ~0ULL)
			return -ENOENT;
		key = xattr_key(ino, hash, key_third(&key) + 1, 0);
	}
}

static int delete_parts(struct fs_info *fs, struct lock *lock, u64 ino, u64 hash,
			const struct found_xattr *fx)
{
	struct scoutfs_key key;
	int err;

	for (unsigned int p = 0; p < fx->parts; p++) {
		key = xattr_key(ino, hash, fx->id, (u8)p);
		err = item_delete(fs->ic, lock, &key);
		if (err < 0)
			return err == -ENOENT ? -EIO : err;
	}
	return 0;
}

static int write_parts(struct fs_info *fs, struct lock *lock, u64 ino, const char *name,
		       size_t len, u64 id, const void *val, size_t size)
{
	u64 hash = xattr_hash(name, len);
	size_t total = HDR_SIZE + len + size;
	u8 part[PART_SIZE];
	struct scoutfs_xattr *x = (void *)part;
	const u8 *v = val;
	struct scoutfs_key key;
	size_t off = 0, bytes, vdone = 0;
	unsigned int p = 0;
	int err;

	while (off < total) {
		bytes = min_t(size_t, total - off, PART_SIZE);
		memset(part, 0, sizeof(part));
		if (p == 0) {
			x->val_len = cpu_to_le16((u16)size);
			x->name_len = (u8)len;
			memcpy(x->name, name, len);
			if (bytes > HDR_SIZE + len)
				memcpy(part + HDR_SIZE + len, v, bytes - HDR_SIZE - len);
			vdone = bytes - HDR_SIZE - len;
		} else {
			memcpy(part, v + vdone, bytes);
			vdone += bytes;
		}
		key = xattr_key(ino, hash, id, (u8)p++);
		err = item_create(fs->ic, lock, &key, part, bytes);
		if (err < 0)
			return err;
		off += bytes;
	}
	return 0;
}

/* read a value of up to size bytes (size 0: just its length) */
static ssize_t read_value(struct fs_info *fs, struct lock *lock, u64 ino, const char *name,
			  size_t len, const struct found_xattr *fx, void *val, size_t size)
{
	u64 hash = xattr_hash(name, len);
	u8 part[PART_SIZE];
	struct scoutfs_key key;
	size_t off = 0, bytes;
	u8 *v = val;
	int ret;

	if (size == 0)
		return fx->val_len;
	if (size < fx->val_len)
		return -ERANGE;
	for (unsigned int p = 0; p < fx->parts; p++) {
		key = xattr_key(ino, hash, fx->id, (u8)p);
		ret = item_lookup(fs->ic, lock, &key, part, sizeof(part));
		if (ret < 0)
			return ret == -ENOENT ? -EIO : ret;
		if (p == 0) {
			if ((size_t)ret < HDR_SIZE + len)
				return -EIO;
			bytes = (size_t)ret - HDR_SIZE - len;
			if (bytes > fx->val_len)
				return -EIO;
			memcpy(v, part + HDR_SIZE + len, bytes);
		} else {
			bytes = (size_t)ret;
			if (off + bytes > fx->val_len)
				return -EIO;
			memcpy(v + off, part, bytes);
		}
		off += bytes;
	}
	if (off != fx->val_len)
		return -EIO;
	return fx->val_len;
}

ssize_t fs_xattr_read(struct fs_info *fs, struct lock *lock, u64 ino, const char *name,
		      void *val, size_t size)
{
	size_t len = strlen(name);
	struct found_xattr fx;
	int err;

	err = find_xattr(fs, lock, ino, name, len, &fx);
	if (err < 0)
		return err == -ENOENT ? -ENODATA : err;
	return read_value(fs, lock, ino, name, len, &fx, val, size);
}

int fs_xattr_store(struct fs_info *fs, struct fs_inode *fi, const char *name, const void *val,
		   size_t size)
{
	size_t len = strlen(name);
	struct found_xattr fx;
	u64 id;
	int err;

	err = find_xattr(fs, fi->lock, fi->ino, name, len, &fx);
	if (err == 0) {
		err = delete_parts(fs, fi->lock, fi->ino, xattr_hash(name, len), &fx);
		id = fx.id;
	} else if (err == -ENOENT) {
		id = le64_to_cpu(fi->si.next_xattr_id);
		fi->si.next_xattr_id = cpu_to_le64(id + 1);
		fi->dirty = true;
		err = 0;
	}
	if (err == 0)
		err = write_parts(fs, fi->lock, fi->ino, name, len, id, val, size);
	return err;
}

int fs_xattr_remove(struct fs_info *fs, struct fs_inode *fi, const char *name)
{
	size_t len = strlen(name);
	struct found_xattr fx;
	int err;

	err = find_xattr(fs, fi->lock, fi->ino, name, len, &fx);
	if (err < 0)
		return err == -ENOENT ? -ENODATA : err;
	return delete_parts(fs, fi->lock, fi->ino, xattr_hash(name, len), &fx);
}

int fs_setxattr(struct fs_info *fs, const struct fs_cred *cred, u64 ino, const char *name,
		const void *val, size_t size, int flags)
{
	struct lock_waiter w = fs_waiter(cred);
	struct fs_inode fi = { .ino = ino };
	size_t len = strlen(name);
	struct xattr_tags tags;
	struct found_xattr fx;
	struct fs_change chg;
	bool store = true;
	int acl_type;
	bool exists;
	int err;

	if ((flags & (FS_XATTR_CREATE | FS_XATTR_REPLACE)) == (FS_XATTR_CREATE | FS_XATTR_REPLACE) ||
	    (flags & ~(FS_XATTR_CREATE | FS_XATTR_REPLACE)))
		return -EINVAL;
	err = parse_name(name, len, &tags, &acl_type);
	if (err < 0)
		return err;
	if (size > SCOUTFS_XATTR_MAX_VAL_LEN)
		return -E2BIG;
	err = check_tags_change(cred, name, &tags);
	if (err < 0)
		return err;

	err = lock_inode(fs->li, ino, SCOUTFS_LOCK_WRITE, 0, w.interrupted ? &w : NULL, &fi.lock);
	if (err < 0)
		return err;
	/* the inode item's ctime changes: not while the kernel writes the file back */
	err = fs_data_lock(fs, ino, true);
	if (err < 0) {
		lock_unlock(fs->li, fi.lock, SCOUTFS_LOCK_WRITE);
		return err;
	}
	pthread_rwlock_wrlock(fs_xattr_lock(fs, ino));
	err = fs_inode_read(fs, fi.lock, ino, &fi.si);
	if (err < 0)
		goto unlock;
	if (acl_type) {
		/* may change the mode, and decide that an ACL is only a mode */
		err = fs_acl_prepare_set(fs, cred, &fi, acl_type, val, size, &store);
		if (err < 0)
			goto unlock;
	}
	err = find_xattr(fs, fi.lock, ino, name, len, &fx);
	if (err < 0 && err != -ENOENT)
		goto unlock;
	exists = err == 0;
	if (exists && (flags & FS_XATTR_CREATE)) {
		err = -EEXIST;
		goto unlock;
	}
	if (!exists && (flags & FS_XATTR_REPLACE)) {
		err = -ENODATA;
		goto unlock;
	}

	fs_change_init(&chg, fs);
	fs_change_add(&chg, &fi);
	err = fs_change_begin(&chg, cred, TRANS_HOLD_ALLOC);
	if (err < 0)
		goto unlock;
	if (store)
		err = fs_xattr_store(fs, &fi, name, val, size);
	else if (exists)
		err = fs_xattr_remove(fs, &fi, name);
	if (err == 0) {
		fs_set_ts(&fi.si.ctime, fs_now());
		fi.dirty = true;
		err = fs_change_write_inodes(&chg);
	}
	if (err == 0)
		counter_inc(xattr_set);
	fs_change_end(&chg);
unlock:
	pthread_rwlock_unlock(fs_xattr_lock(fs, ino));
	fs_data_unlock(fs, ino);
	lock_unlock(fs->li, fi.lock, SCOUTFS_LOCK_WRITE);
	return err;
}

ssize_t fs_getxattr(struct fs_info *fs, const struct fs_cred *cred, u64 ino, const char *name,
		    void *val, size_t size)
{
	struct lock_waiter w = fs_waiter(cred);
	size_t len = strlen(name);
	struct xattr_tags tags;
	struct lock *lock;
	int acl_type;
	ssize_t ret;

	ret = parse_name(name, len, &tags, &acl_type);
	if (ret == -ERANGE)
		return -ENODATA;
	if (ret < 0)
		return ret;
	if (acl_type && !fs_acl_enabled(fs))
		return -EOPNOTSUPP;
	ret = lock_inode(fs->li, ino, SCOUTFS_LOCK_READ, 0, w.interrupted ? &w : NULL, &lock);
	if (ret < 0)
		return ret;
	pthread_rwlock_rdlock(fs_xattr_lock(fs, ino));
	ret = fs_xattr_read(fs, lock, ino, name, val, size);
	pthread_rwlock_unlock(fs_xattr_lock(fs, ino));
	if (ret >= 0)
		counter_inc(xattr_get);
	else if (ret == -ENODATA)
		counter_inc(xattr_get_missing);
	lock_unlock(fs->li, lock, SCOUTFS_LOCK_READ);
	return ret;
}

/*
 * Which stored names the caller sees: not hidden ones, and trusted. ones only with
 * CAP_SYS_ADMIN, as local filesystems list them.
 */
static bool listed(const struct fs_cred *cred, const char *name, size_t len, int *may_trusted)
{
	struct xattr_tags tags;
	int acl_type;

	if (len > 8 && strncmp(name, "trusted.", 8) == 0) {
		if (*may_trusted < 0)
			*may_trusted = fs_capable(cred, CAP_SYS_ADMIN);
		return *may_trusted;
	}
	if (len > 8 && strncmp(name, "scoutfs.", 8) == 0) {
		parse_name(name, len, &tags, &acl_type);
		return !tags.hide;
	}
	return true;
}

ssize_t fs_listxattr(struct fs_info *fs, const struct fs_cred *cred, u64 ino, char *buf,
		     size_t size)
{
	struct lock_waiter w = fs_waiter(cred);
	struct scoutfs_key key = xattr_key(ino, 0, 0, 0);
	struct scoutfs_key last = xattr_key(ino, ~0ULL, ~0ULL, 0xff);
	union {
		struct scoutfs_xattr x;
		u8 buf[PART_SIZE];
	} u;
	int may_trusted = -1;
	struct lock *lock;
	size_t total = 0;
	ssize_t ret;

	ret = lock_inode(fs->li, ino, SCOUTFS_LOCK_READ, 0, w.interrupted ? &w : NULL, &lock);
	if (ret < 0)
		return ret;
	pthread_rwlock_rdlock(fs_xattr_lock(fs, ino));
	for (;;) {
		ret = item_next(fs->ic, lock, &key, &last, &u, sizeof(u));
		if (ret == -ENOENT)
			break;
		if (ret < 0)
			goto out;
		if (key_fourth(&key) == 0) {
			if ((size_t)ret < HDR_SIZE + u.x.name_len) {
				ret = -EIO;
				goto out;
			}
			if (listed(cred, (char *)u.x.name, u.x.name_len, &may_trusted)) {
				if (size) {
					if (total + u.x.name_len + 1 > size) {
						ret = -ERANGE;
						goto out;
					}
					memcpy(buf + total, u.x.name, u.x.name_len);
					buf[total + u.x.name_len] = '\0';
				}
				total += u.x.name_len + 1;
			}
		}
		/* skip the rest of this xattr's parts */
		if (key_third(&key) == ~0ULL)
			break;
		key = xattr_key(ino, key_second(&key), key_third(&key) + 1, 0);
	}
	ret = (ssize_t)total;
out:
	pthread_rwlock_unlock(fs_xattr_lock(fs, ino));
	lock_unlock(fs->li, lock, SCOUTFS_LOCK_READ);
	return ret;
}

int fs_removexattr(struct fs_info *fs, const struct fs_cred *cred, u64 ino, const char *name)
{
	struct lock_waiter w = fs_waiter(cred);
	struct fs_inode fi = { .ino = ino };
	size_t len = strlen(name);
	struct xattr_tags tags;
	struct found_xattr fx;
	struct fs_change chg;
	int acl_type;
	int err;

	err = parse_name(name, len, &tags, &acl_type);
	if (err == -ERANGE)
		return -ENODATA;
	if (err < 0)
		return err;
	err = check_tags_change(cred, name, &tags);
	if (err < 0)
		return err;
	err = lock_inode(fs->li, ino, SCOUTFS_LOCK_WRITE, 0, w.interrupted ? &w : NULL, &fi.lock);
	if (err < 0)
		return err;
	/* the inode item's ctime changes: not while the kernel writes the file back */
	err = fs_data_lock(fs, ino, true);
	if (err < 0) {
		lock_unlock(fs->li, fi.lock, SCOUTFS_LOCK_WRITE);
		return err;
	}
	pthread_rwlock_wrlock(fs_xattr_lock(fs, ino));
	err = fs_inode_read(fs, fi.lock, ino, &fi.si);
	if (err == 0 && acl_type)
		err = fs_acl_prepare_remove(fs, cred, &fi, acl_type);
	if (err == 0)
		err = find_xattr(fs, fi.lock, ino, name, len, &fx);
	if (err == -ENOENT)
		err = -ENODATA;
	if (err < 0)
		goto unlock;

	fs_change_init(&chg, fs);
	fs_change_add(&chg, &fi);
	err = fs_change_begin(&chg, cred, 0);
	if (err < 0)
		goto unlock;
	err = delete_parts(fs, fi.lock, ino, xattr_hash(name, len), &fx);
	if (err == 0) {
		fs_set_ts(&fi.si.ctime, fs_now());
		fi.dirty = true;
		err = fs_change_write_inodes(&chg);
	}
	if (err == 0)
		counter_inc(xattr_remove);
	fs_change_end(&chg);
unlock:
	pthread_rwlock_unlock(fs_xattr_lock(fs, ino));
	fs_data_unlock(fs, ino);
	lock_unlock(fs->li, fi.lock, SCOUTFS_LOCK_WRITE);
	return err;
}

/* delete up to max xattr items of an inode; 1 if more remain */
int fs_xattr_delete_all(struct fs_info *fs, struct lock *lock, u64 ino, int max, int *nr)
{
	struct scoutfs_key key = xattr_key(ino, 0, 0, 0);
	struct scoutfs_key last = xattr_key(ino, ~0ULL, ~0ULL, 0xff);
	u8 buf[PART_SIZE];
	int ret;

	while (*nr < max) {
		ret = item_next(fs->ic, lock, &key, &last, buf, sizeof(buf));
		if (ret == -ENOENT)
			return 0;
		if (ret < 0)
			return ret;
		ret = item_delete(fs->ic, lock, &key);
		if (ret < 0)
			return ret;
		(*nr)++;
	}
	return 1;
}
