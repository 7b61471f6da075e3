/*
 * dir.c: directories and names.
 *
 * Every directory entry is stored three times, each item holding the full entry
 * {ino, hash, pos, type, name}:
 *  - a DIRENT item keyed by the directory, a hash of the name and the entry's position,
 *    for lookup by name (colliding hashes are told apart by comparing names);
 *  - a READDIR item keyed by the directory and the position, so readdir lists entries in
 *    creation order and can resume at any position, whatever happens to the directory;
 *  - a LINK_BACKREF item keyed by the target inode, the directory and the position, so an
 *    inode's names can be found from the inode (paths, ancestry checks of renames).
 * Positions come from the directory's next_readdir_pos and are never reused; a renamed entry
 * gets a new position.  A directory's size is the sum of its entries' name lengths.
 *
 * All three items of an entry live under the directory's or the target's inode group lock;
 * operations lock every inode they touch in inode order (and the global rename lock first
 * for renames between directories, whose ancestry checks must not race).
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_int.h"
#include "util/counters.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/util.h"

COUNTER_DEFINE(dir_lookup);
COUNTER_DEFINE(dir_create);
COUNTER_DEFINE(dir_unlink);
COUNTER_DEFINE(dir_rename);
COUNTER_DEFINE(dir_readdir);

#define DIRENT_BUF_BYTES (sizeof(struct scoutfs_dirent) + SCOUTFS_NAME_LEN)

/*
 * The name hash: FNV-1a in the low 32 bits; the first bytes of the name in the high bits
 * so entries of a directory are stored roughly in name order.
 */
static u64 name_hash(const char *name, size_t len)
{
	u32 prefix = 0;

	for (size_t i = 0; i < 4; i++)
		prefix = (prefix << 8) | (i < len ? (u8)name[i] : 0);
	return ((u64)prefix << 32) | fnv1a32(name, len);
}

static int check_name(const char *name, size_t len)
{
	if (len == 0)
		return -ENOENT;
	if (len > SCOUTFS_NAME_LEN)
		return -ENAMETOOLONG;
	if (memchr(name, '/', len) || memchr(name, '\0', len))
		return -EINVAL;
	return 0;
}

static bool is_dot(const char *name, size_t len)
{
	return (len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.');
}

/* find a name in a directory: the entry's dirent (with pos and ino) */
static int find_entry(struct fs_info *fs, struct lock *lock, u64 dir, const char *name,
		      size_t len, struct scoutfs_dirent *found)
{
	u64 hash = name_hash(name, len);
	struct scoutfs_key key = dirent_key(dir, hash, 0);
	struct scoutfs_key last = dirent_key(dir, hash, ~0ULL);
	union {
		struct scoutfs_dirent d;
		u8 buf[DIRENT_BUF_BYTES];
	} u;
	int ret;

	counter_inc(dir_lookup);
	for (;;) {
		ret = item_next(fs->ic, lock, &key, &last, &u, sizeof(u));
		if (ret < 0)
			return ret;
		if ((size_t)ret < sizeof(struct scoutfs_dirent) || (size_t)ret > sizeof(u))
			return -EIO;
		if ((size_t)ret - sizeof(struct scoutfs_dirent) == len &&
		    memcmp(u.d.name, name, len) == 0) {
			*found = u.d;
			return 0;
		}
		if (key_third(&key) == ~0ULL)
			return -ENOENT;
		key._sk_third = cpu_to_le64(key_third(&key) + 1);
	}
}

/* the three items of a new entry at the directory's next position */
static int add_entry(struct fs_info *fs, struct fs_inode *dir, const char *name, size_t len,
		     u64 ino, u32 mode, struct lock *target_lock, u64 *pos_ret)
{
	union {
		struct scoutfs_dirent d;
		u8 buf[DIRENT_BUF_BYTES];
	} u;
	u64 pos = le64_to_cpu(dir->si.next_readdir_pos);
	u64 hash = name_hash(name, len);
	unsigned int bytes = sizeof(struct scoutfs_dirent) + len;
	struct scoutfs_key key;
	int err;

	if (pos > SCOUTFS_DIRENT_LAST_POS)
		return -ENOSPC;
	memset(&u, 0, sizeof(u));
	u.d.ino = cpu_to_le64(ino);
	u.d.hash = cpu_to_le64(hash);
	u.d.pos = cpu_to_le64(pos);
	u.d.type = (u8)fs_mode_dtype(mode);
	memcpy(u.d.name, name, len);

	key = dirent_key(dir->ino, hash, pos);
	err = item_create(fs->ic, dir->lock, &key, &u, bytes);
	if (err < 0)
		return err == -EEXIST ? -EIO : err;
	key = readdir_key(dir->ino, pos);
	err = item_create(fs->ic, dir->lock, &key, &u, bytes);
	if (err < 0)
		return err == -EEXIST ? -EIO : err;
	key = backref_key(ino, dir->ino, pos);
	err = item_create(fs->ic, target_lock, &key, &u, bytes);
	if (err < 0)
		return err == -EEXIST ? -EIO : err;

	dir->si.next_readdir_pos = cpu_to_le64(pos + 1);
	le64_add_cpu(&dir->si.size, (s64)len);
	dir->dirty = true;
	if (pos_ret)
		*pos_ret = pos;
	return 0;
}

static int del_entry(struct fs_info *fs, struct fs_inode *dir, const struct scoutfs_dirent *d,
		     size_t len, struct lock *target_lock)
{
	struct scoutfs_key key;
	int err;

	key = dirent_key(dir->ino, le64_to_cpu(d->hash), le64_to_cpu(d->pos));
	err = item_delete(fs->ic, dir->lock, &key);
	if (err < 0)
		return err == -ENOENT ? -EIO : err;
	key = readdir_key(dir->ino, le64_to_cpu(d->pos));
	err = item_delete(fs->ic, dir->lock, &key);
	if (err < 0)
		return err == -ENOENT ? -EIO : err;
	key = backref_key(le64_to_cpu(d->ino), dir->ino, le64_to_cpu(d->pos));
	err = item_delete(fs->ic, target_lock, &key);
	if (err < 0)
		return err == -ENOENT ? -EIO : err;
	le64_add_cpu(&dir->si.size, -(s64)len);
	dir->dirty = true;
	return 0;
}

static void touch_times(struct scoutfs_inode *si, struct timespec now, bool mtime)
{
	fs_set_ts(&si->ctime, now);
	if (mtime)
		fs_set_ts(&si->mtime, now);
}

/* read a directory inode under its lock and check that it is a live directory */
static int read_dir(struct fs_info *fs, struct fs_inode *dir)
{
	int err = fs_inode_read(fs, dir->lock, dir->ino, &dir->si);

	if (err == -ENOENT)
		return -ESTALE;
	if (err < 0)
		return err;
	if (!S_ISDIR(le32_to_cpu(dir->si.mode)))
		return -ENOTDIR;
	if (le32_to_cpu(dir->si.nlink) == 0)
		return -ENOENT; /* removed while we looked */
	return 0;
}

int fs_lookup(struct fs_info *fs, const struct fs_cred *cred, u64 dir, const char *name,
	      size_t len, struct fs_attr *attr)
{
	struct lock_waiter w = fs_waiter(cred);
	struct fs_inode di = { .ino = dir };
	struct scoutfs_dirent d;
	struct scoutfs_inode si;
	struct lock *locks[2];
	u64 inos[2] = { dir, 0 };
	int tries = 0;
	int err;

	err = check_name(name, len);
	if (err < 0)
		return err;
	err = lock_inode(fs->li, dir, SCOUTFS_LOCK_READ, 0, w.interrupted ? &w : NULL, &di.lock);
	if (err < 0)
		return err;
	err = read_dir(fs, &di);
	if (err == 0)
		err = find_entry(fs, di.lock, dir, name, len, &d);
	lock_unlock(fs->li, di.lock, SCOUTFS_LOCK_READ);
	if (err < 0)
		return err;

	/*
	 * The entry and its inode under both locks at once: between two separate lock holds
	 * another mount can replace the entry and delete the inode it named, and the name would
	 * seem not to exist at all.  Locks are taken in inode order, so the entry found first
	 * is looked at again.
	 */
	for (;;) {
		inos[1] = le64_to_cpu(d.ino);
		err = lock_inodes(fs->li, inos, 2, SCOUTFS_LOCK_READ, w.interrupted ? &w : NULL,
				  locks);
		if (err < 0)
			return err;
		di.lock = locks[0];
		err = read_dir(fs, &di);
		if (err == 0)
			err = find_entry(fs, di.lock, dir, name, len, &d);
		if (err == 0 && le64_to_cpu(d.ino) != inos[1] && ++tries < 100) {
			/* replaced meanwhile: lock the inode it names now */
			lock_unlock_inodes(fs->li, locks, 2, SCOUTFS_LOCK_READ);
			continue;
		}
		if (err == 0 && le64_to_cpu(d.ino) != inos[1])
			err = -EAGAIN;
		if (err == 0) {
			err = fs_inode_read(fs, locks[1], inos[1], &si);
			/* an entry whose inode is missing under both locks is damage */
			if (err == -ENOENT)
				err = -EIO;
		}
		if (err == 0)
			fs_inode_attr(&si, inos[1], attr);
		lock_unlock_inodes(fs->li, locks, 2, SCOUTFS_LOCK_READ);
		return err;
	}
}

/* ---- creating ---- */

static void init_new_inode(struct fs_inode *fi, const struct fs_cred *cred,
			   const struct fs_inode *dir, u32 mode, u32 rdev, struct timespec now)
{
	struct scoutfs_inode *si = &fi->si;
	u32 dmode = le32_to_cpu(dir->si.mode);

	memset(si, 0, sizeof(*si));
	si->nlink = cpu_to_le32(S_ISDIR(mode) ? 2 : 1);
	si->uid = cpu_to_le32(cred->uid);
	if (dmode & S_ISGID) {
		/* setgid directories give their group, and their setgid bit to subdirectories */
		si->gid = dir->si.gid;
		if (S_ISDIR(mode))
			mode |= S_ISGID;
	} else {
		si->gid = cpu_to_le32(cred->gid);
	}
	si->mode = cpu_to_le32(mode);
	si->rdev = cpu_to_le32(rdev);
	if (S_ISDIR(mode))
		si->next_readdir_pos = cpu_to_le64(SCOUTFS_DIRENT_FIRST_POS);
	fs_set_ts(&si->atime, now);
	fs_set_ts(&si->mtime, now);
	fs_set_ts(&si->ctime, now);
	fs_set_ts(&si->crtime, now);
	si->proj = dir->si.proj;
	fi->created = true;
	fi->dirty = true;
}

static int write_symlink(struct fs_info *fs, struct fs_inode *fi, const char *target, size_t len)
{
	size_t total = len + 1; /* stored with its NUL */
	struct scoutfs_key key;
	char chunk[SCOUTFS_SYMLINK_CHUNK_BYTES];
	size_t off = 0;
	u64 nr = 0;
	int err;

	while (off < total) {
		size_t bytes = min_t(size_t, total - off, sizeof(chunk));

		memset(chunk, 0, sizeof(chunk));
		memcpy(chunk, target + off, min_t(size_t, bytes, len > off ? len - off : 0));
		key = symlink_key(fi->ino, nr++);
		err = item_create(fs->ic, fi->lock, &key, chunk, bytes);
		if (err < 0)
			return err;
		off += bytes;
	}
	fi->si.size = cpu_to_le64(total);
	return 0;
}

static int create_common(struct fs_info *fs, const struct fs_cred *cred, u64 dir, const char *name,
			 size_t len, u32 mode, u32 rdev, const char *target,
			 struct fs_attr *attr)
{
	struct lock_waiter w = fs_waiter(cred);
	struct fs_inode di = { .ino = dir };
	struct fs_inode ni = { 0 };
	struct timespec now = fs_now();
	struct fs_acl_inherit inh = { 0 };
	struct scoutfs_dirent d;
	struct fs_change chg;
	struct lock *locks[2];
	u64 inos[2];
	int err;

	err = check_name(name, len);
	if (err < 0)
		return err;
	if (is_dot(name, len))
		return -EEXIST;
	err = fs_alloc_ino(fs, S_ISDIR(mode), &ni.ino);
	if (err < 0)
		return err;

	inos[0] = dir;
	inos[1] = ni.ino;
	err = lock_inodes(fs->li, inos, 2, SCOUTFS_LOCK_WRITE, w.interrupted ? &w : NULL, locks);
	if (err < 0)
		return err;
	di.lock = locks[0];
	ni.lock = locks[1];

	err = read_dir(fs, &di);
	if (err < 0)
		goto unlock;
	err = find_entry(fs, di.lock, dir, name, len, &d);
	if (err == 0) {
		err = -EEXIST;
		goto unlock;
	}
	if (err != -ENOENT)
		goto unlock;
	if (S_ISDIR(mode) && le32_to_cpu(di.si.nlink) >= SCOUTFS_LINK_MAX) {
		err = -EMLINK;
		goto unlock;
	}
	err = fs_acl_inherit_prepare(fs, cred, &di, mode, &inh);
	if (err < 0)
		goto unlock;

	fs_change_init(&chg, fs);
	init_new_inode(&ni, cred, &di, inh.mode, rdev, now);
	fs_change_add(&chg, &di);
	fs_change_add(&chg, &ni);
	err = fs_change_begin(&chg, cred, TRANS_HOLD_ALLOC);
	if (err < 0)
		goto unlock;

	err = fs_acl_inherit_store(fs, &ni, &inh);
	if (err < 0)
		goto end;
	if (target) {
		err = write_symlink(fs, &ni, target, strlen(target));
		if (err < 0)
			goto end;
	}
	err = add_entry(fs, &di, name, len, ni.ino, mode, ni.lock, NULL);
	if (err < 0)
		goto end;
	if (S_ISDIR(mode))
		di.si.nlink = cpu_to_le32(le32_to_cpu(di.si.nlink) + 1);
	touch_times(&di.si, now, true);
	err = fs_change_write_inodes(&chg);
	if (err < 0)
		goto end;
	trans_add_inode_count(fs->ti, 1);
	fs_inode_attr(&ni.si, ni.ino, attr);
	counter_inc(dir_create);
end:
	fs_change_end(&chg);
unlock:
	lock_unlock_inodes(fs->li, locks, 2, SCOUTFS_LOCK_WRITE);
	fs_acl_inherit_free(&inh);
	return err;
}

int fs_mknod(struct fs_info *fs, const struct fs_cred *cred, u64 dir, const char *name,
	     size_t len, u32 mode, u32 rdev, struct fs_attr *attr)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
	case S_IFSOCK:
		break;
	case 0:
		mode |= S_IFREG;
		break;
	default:
		return -EINVAL;
	}
	if (!S_ISCHR(mode) && !S_ISBLK(mode))
		rdev = 0;
	return create_common(fs, cred, dir, name, len, mode, rdev, NULL, attr);
}

int fs_symlink(struct fs_info *fs, const struct fs_cred *cred, u64 dir, const char *name,
	       size_t len, const char *target, struct fs_attr *attr)
{
	size_t tlen = strlen(target);

	if (tlen == 0)
		return -ENOENT;
	if (tlen + 1 > SCOUTFS_SYMLINK_MAX_SIZE)
		return -ENAMETOOLONG;
	return create_common(fs, cred, dir, name, len, S_IFLNK | 0777, 0, target, attr);
}

int fs_readlink(struct fs_info *fs, const struct fs_cred *cred, u64 ino, char *buf, size_t size)
{
	struct lock_waiter w = fs_waiter(cred);
	char chunk[SCOUTFS_SYMLINK_CHUNK_BYTES];
	struct scoutfs_inode si;
	struct scoutfs_key key;
	struct lock *lock;
	size_t total, off = 0;
	u64 nr = 0;
	int ret;

	ret = lock_inode(fs->li, ino, SCOUTFS_LOCK_READ, 0, w.interrupted ? &w : NULL, &lock);
	if (ret < 0)
		return ret;
	ret = fs_inode_read(fs, lock, ino, &si);
	if (ret < 0)
		goto out;
	if (!S_ISLNK(le32_to_cpu(si.mode))) {
		ret = -EINVAL;
		goto out;
	}
	total = le64_to_cpu(si.size);
	if (total < 2 || total > SCOUTFS_SYMLINK_MAX_SIZE) {
		ret = -EIO;
		goto out;
	}
	while (off < total) {
		key = symlink_key(ino, nr++);
		ret = item_lookup(fs->ic, lock, &key, chunk, sizeof(chunk));
		if (ret < 0) {
			ret = ret == -ENOENT ? -EIO : ret;
			goto out;
		}
		if ((size_t)ret != min_t(size_t, total - off, sizeof(chunk))) {
			ret = -EIO;
			goto out;
		}
		if (off < size)
			memcpy(buf + off, chunk, min_t(size_t, (size_t)ret, size - off));
		off += ret;
	}
	ret = (int)min_t(size_t, total - 1, size);
out:
	lock_unlock(fs->li, lock, SCOUTFS_LOCK_READ);
	return ret;
}

int fs_link(struct fs_info *fs, const struct fs_cred *cred, u64 ino, u64 dir, const char *name,
	    size_t len, struct fs_attr *attr)
{
	struct lock_waiter w = fs_waiter(cred);
	struct fs_inode di = { .ino = dir };
	struct fs_inode fi = { .ino = ino };
	struct timespec now = fs_now();
	struct scoutfs_dirent d;
	struct fs_change chg;
	struct lock *locks[2];
	u64 inos[2] = { dir, ino };
	u32 nlink;
	int err;

	err = check_name(name, len);
	if (err < 0)
		return err;
	if (is_dot(name, len))
		return -EEXIST;
	err = lock_inodes(fs->li, inos, 2, SCOUTFS_LOCK_WRITE, w.interrupted ? &w : NULL, locks);
	if (err < 0)
		return err;
	di.lock = locks[0];
	fi.lock = locks[1];
	err = fs_data_lock_inodes(fs, &ino, 1);
	if (err < 0) {
		lock_unlock_inodes(fs->li, locks, 2, SCOUTFS_LOCK_WRITE);
		return err;
	}

	err = read_dir(fs, &di);
	if (err < 0)
		goto unlock;
	err = fs_inode_read(fs, fi.lock, ino, &fi.si);
	if (err < 0) {
		err = err == -ENOENT ? -ESTALE : err;
		goto unlock;
	}
	if (S_ISDIR(le32_to_cpu(fi.si.mode))) {
		err = -EPERM;
		goto unlock;
	}
	nlink = le32_to_cpu(fi.si.nlink);
	/*
	 * The kernel looked the source up before we locked it, and its last name may have gone
	 * since, here or on another mount (whose unlink the kernel's cached nlink doesn't show):
	 * as the VFS does for an unlinked inode, refuse, rather than bring back an inode that is
	 * being deleted.  (O_TMPFILE, the one way to link an inode without links, does not
	 * reach us: libfuse 3.14 has no tmpfile operation.)
	 */
	if (nlink == 0) {
		err = -ENOENT;
		goto unlock;
	}
	if (nlink >= SCOUTFS_LINK_MAX) {
		err = -EMLINK;
		goto unlock;
	}
	err = find_entry(fs, di.lock, dir, name, len, &d);
	if (err == 0) {
		err = -EEXIST;
		goto unlock;
	}
	if (err != -ENOENT)
		goto unlock;

	fs_change_init(&chg, fs);
	fs_change_add(&chg, &di);
	fs_change_add(&chg, &fi);
	err = fs_change_begin(&chg, cred, TRANS_HOLD_ALLOC);
	if (err < 0)
		goto unlock;
	err = add_entry(fs, &di, name, len, ino, le32_to_cpu(fi.si.mode), fi.lock, NULL);
	if (err < 0)
		goto end;
	fi.si.nlink = cpu_to_le32(nlink + 1);
	touch_times(&fi.si, now, false);
	fi.dirty = true;
	touch_times(&di.si, now, true);
	err = fs_change_write_inodes(&chg);
	if (err == 0)
		fs_inode_attr(&fi.si, ino, attr);
end:
	fs_change_end(&chg);
unlock:
	fs_data_unlock_inodes(fs, &ino, 1);
	lock_unlock_inodes(fs->li, locks, 2, SCOUTFS_LOCK_WRITE);
	return err;
}

/* ---- removing ---- */

/* drop one link of an inode; the last one makes it an orphan */
static int drop_link(struct fs_change *chg, struct fs_inode *fi, struct timespec now)
{
	u32 nlink = le32_to_cpu(fi->si.nlink);
	bool dir = S_ISDIR(le32_to_cpu(fi->si.mode));
	int err = 0;

	if (dir || nlink <= 1) {
		fi->si.nlink = 0;
		err = fs_orphan_add(chg, fi->ino);
	} else {
		fi->si.nlink = cpu_to_le32(nlink - 1);
	}
	touch_times(&fi->si, now, false);
	fi->dirty = true;
	return err;
}

static int remove_common(struct fs_info *fs, const struct fs_cred *cred, u64 dir,
			 const char *name, size_t len, bool rmdir)
{
	struct lock_waiter w = fs_waiter(cred);
	struct fs_inode di = { .ino = dir };
	struct fs_inode fi = { 0 };
	struct timespec now = fs_now();
	struct scoutfs_dirent d;
	struct fs_change chg;
	struct lock *locks[2];
	struct lock *lock;
	u64 inos[2];
	int err;

	err = check_name(name, len);
	if (err < 0)
		return err;
	if (is_dot(name, len))
		return rmdir ? (len == 1 ? -EINVAL : -ENOTEMPTY) : -EISDIR;

	/* find the target, then lock both and check again */
	err = lock_inode(fs->li, dir, SCOUTFS_LOCK_READ, 0, w.interrupted ? &w : NULL, &lock);
	if (err < 0)
		return err;
	di.lock = lock;
	err = read_dir(fs, &di);
	if (err == 0)
		err = find_entry(fs, lock, dir, name, len, &d);
	lock_unlock(fs->li, lock, SCOUTFS_LOCK_READ);
	if (err < 0)
		return err;

	inos[0] = dir;
	inos[1] = le64_to_cpu(d.ino);
	err = lock_inodes(fs->li, inos, 2, SCOUTFS_LOCK_WRITE, w.interrupted ? &w : NULL, locks);
	if (err < 0)
		return err;
	di.lock = locks[0];
	fi.lock = locks[1];
	fi.ino = inos[1];
	err = fs_data_lock_inodes(fs, &fi.ino, 1);
	if (err < 0) {
		lock_unlock_inodes(fs->li, locks, 2, SCOUTFS_LOCK_WRITE);
		return err;
	}

	err = read_dir(fs, &di);
	if (err == 0)
		err = find_entry(fs, di.lock, dir, name, len, &d);
	if (err == 0 && le64_to_cpu(d.ino) != fi.ino)
		err = -EAGAIN; /* replaced meanwhile: look again */
	if (err == 0)
		err = fs_inode_read(fs, fi.lock, fi.ino, &fi.si);
	if (err < 0)
		goto unlock;

	if (rmdir) {
		if (!S_ISDIR(le32_to_cpu(fi.si.mode)))
			err = -ENOTDIR;
		else if (le64_to_cpu(fi.si.size) != 0)
			err = -ENOTEMPTY;
	} else if (S_ISDIR(le32_to_cpu(fi.si.mode))) {
		err = -EISDIR;
	}
	if (err < 0)
		goto unlock;

	fs_change_init(&chg, fs);
	fs_change_add(&chg, &di);
	fs_change_add(&chg, &fi);
	chg.want_orphan = true;
	err = fs_change_begin(&chg, cred, 0);
	if (err < 0)
		goto unlock;
	err = del_entry(fs, &di, &d, len, fi.lock);
	if (err == 0)
		err = drop_link(&chg, &fi, now);
	if (err == 0 && rmdir)
		di.si.nlink = cpu_to_le32(le32_to_cpu(di.si.nlink) - 1);
	touch_times(&di.si, now, true);
	if (err == 0)
		err = fs_change_write_inodes(&chg);
	if (err == 0)
		counter_inc(dir_unlink);
	fs_change_end(&chg);
unlock:
	fs_data_unlock_inodes(fs, &fi.ino, 1);
	lock_unlock_inodes(fs->li, locks, 2, SCOUTFS_LOCK_WRITE);
	if (err == -EAGAIN)
		return remove_common(fs, cred, dir, name, len, rmdir);
	return err;
}

int fs_unlink(struct fs_info *fs, const struct fs_cred *cred, u64 dir, const char *name,
	      size_t len)
{
	return remove_common(fs, cred, dir, name, len, false);
}

int fs_rmdir(struct fs_info *fs, const struct fs_cred *cred, u64 dir, const char *name,
	     size_t len)
{
	return remove_common(fs, cred, dir, name, len, true);
}

/* ---- rename ---- */

/* the parent of a directory: the directory of its first backref (the root is its own) */
static int dir_parent(struct fs_info *fs, struct lock *lock, u64 dir, u64 *parent)
{
	struct scoutfs_key key = backref_key(dir, 0, 0);
	struct scoutfs_key last = backref_key(dir, ~0ULL, ~0ULL);
	u8 buf[DIRENT_BUF_BYTES];
	int ret;

	if (dir == SCOUTFS_ROOT_INO) {
		*parent = dir;
		return 0;
	}
	ret = item_next(fs->ic, lock, &key, &last, buf, sizeof(buf));
	if (ret == -ENOENT)
		return -ENOENT;
	if (ret < 0)
		return ret;
	*parent = key_second(&key);
	return 0;
}

/*
 * Is ino an ancestor of dir (or dir itself)?  Walks up from dir under read locks; the
 * rename lock held by the caller keeps directories from moving meanwhile.
 */
static int is_ancestor(struct fs_info *fs, const struct fs_cred *cred, u64 ino, u64 dir,
		       bool *ancestor)
{
	struct lock_waiter w = fs_waiter(cred);
	struct lock *lock;
	u64 cur = dir, parent;
	int limit = 1 << 20;
	int err;

	*ancestor = false;
	while (limit--) {
		if (cur == ino) {
			*ancestor = true;
			return 0;
		}
		if (cur == SCOUTFS_ROOT_INO)
			return 0;
		err = lock_inode(fs->li, cur, SCOUTFS_LOCK_READ, 0, w.interrupted ? &w : NULL, &lock);
		if (err < 0)
			return err;
		err = dir_parent(fs, lock, cur, &parent);
		lock_unlock(fs->li, lock, SCOUTFS_LOCK_READ);
		if (err < 0)
			return err;
		cur = parent;
	}
	return -ELOOP;
}

struct rename_ctx {
	struct fs_inode od, nd, src, tgt;
	struct scoutfs_dirent old_d, new_d;
	bool have_tgt;
};

/*
 * RENAME_EXCHANGE: the two names swap inodes.  Each entry is deleted and added again with the
 * other inode (and a new position, as every renamed entry gets); a directory that changes
 * parent moves a link from its old parent to its new one.  Neither directory may end up
 * below the other directory it moves into.
 */
static int exchange_locked(struct fs_info *fs, const struct fs_cred *cred, struct rename_ctx *rc,
			   struct fs_inode *nd, const char *old_name, size_t old_len,
			   const char *new_name, size_t new_len)
{
	struct timespec now = fs_now();
	bool src_dir = S_ISDIR(le32_to_cpu(rc->src.si.mode));
	bool tgt_dir;
	bool ancestor;
	struct fs_change chg;
	int err;

	if (!rc->have_tgt)
		return -ENOENT;
	if (rc->tgt.ino == rc->src.ino)
		return 0;
	tgt_dir = S_ISDIR(le32_to_cpu(rc->tgt.si.mode));
	if (nd != &rc->od) {
		if (src_dir) {
			err = is_ancestor(fs, cred, rc->src.ino, nd->ino, &ancestor);
			if (err < 0)
				return err;
			if (ancestor)
				return -EINVAL;
		}
		if (tgt_dir) {
			err = is_ancestor(fs, cred, rc->tgt.ino, rc->od.ino, &ancestor);
			if (err < 0)
				return err;
			if (ancestor)
				return -EINVAL;
		}
	}

	fs_change_init(&chg, fs);
	fs_change_add(&chg, &rc->od);
	fs_change_add(&chg, nd);
	fs_change_add(&chg, &rc->src);
	fs_change_add(&chg, &rc->tgt);
	err = fs_change_begin(&chg, cred, TRANS_HOLD_ALLOC);
	if (err < 0)
		return err;
	err = del_entry(fs, &rc->od, &rc->old_d, old_len, rc->src.lock);
	if (err == 0)
		err = del_entry(fs, nd, &rc->new_d, new_len, rc->tgt.lock);
	if (err == 0)
		err = add_entry(fs, &rc->od, old_name, old_len, rc->tgt.ino,
				le32_to_cpu(rc->tgt.si.mode), rc->tgt.lock, NULL);
	if (err == 0)
		err = add_entry(fs, nd, new_name, new_len, rc->src.ino,
				le32_to_cpu(rc->src.si.mode), rc->src.lock, NULL);
	if (err < 0)
		goto end;
	if (nd != &rc->od && src_dir != tgt_dir) {
		/* one directory changes parent without the other moving back */
		s32 delta = src_dir ? 1 : -1;

		rc->od.si.nlink = cpu_to_le32(le32_to_cpu(rc->od.si.nlink) - delta);
		nd->si.nlink = cpu_to_le32(le32_to_cpu(nd->si.nlink) + delta);
	}
	touch_times(&rc->od.si, now, true);
	touch_times(&nd->si, now, true);
	touch_times(&rc->src.si, now, false);
	touch_times(&rc->tgt.si, now, false);
	rc->od.dirty = nd->dirty = rc->src.dirty = rc->tgt.dirty = true;
	err = fs_change_write_inodes(&chg);
	if (err == 0)
		counter_inc(dir_rename);
end:
	fs_change_end(&chg);
	return err;
}

static int rename_locked(struct fs_info *fs, const struct fs_cred *cred, struct rename_ctx *rc,
			 const char *old_name, size_t old_len, const char *new_name,
			 size_t new_len, int flags)
{
	struct timespec now = fs_now();
	struct fs_inode *nd = rc->od.ino == rc->nd.ino ? &rc->od : &rc->nd;
	bool src_dir;
	bool ancestor;
	struct fs_change chg;
	u64 new_pos;
	int err;

	err = read_dir(fs, &rc->od);
	if (err == 0 && nd != &rc->od)
		err = read_dir(fs, nd);
	if (err < 0)
		return err;
	err = find_entry(fs, rc->od.lock, rc->od.ino, old_name, old_len, &rc->old_d);
	if (err < 0)
		return err;
	if (le64_to_cpu(rc->old_d.ino) != rc->src.ino)
		return -EAGAIN;
	err = find_entry(fs, nd->lock, nd->ino, new_name, new_len, &rc->new_d);
	if (err < 0 && err != -ENOENT)
		return err;
	if ((err == 0) != rc->have_tgt ||
	    (rc->have_tgt && le64_to_cpu(rc->new_d.ino) != rc->tgt.ino))
		return -EAGAIN;

	err = fs_inode_read(fs, rc->src.lock, rc->src.ino, &rc->src.si);
	if (err == 0 && rc->have_tgt)
		err = fs_inode_read(fs, rc->tgt.lock, rc->tgt.ino, &rc->tgt.si);
	if (err < 0)
		return err == -ENOENT ? -EAGAIN : err;
	src_dir = S_ISDIR(le32_to_cpu(rc->src.si.mode));

	if (flags & FS_RENAME_EXCHANGE)
		return exchange_locked(fs, cred, rc, nd, old_name, old_len, new_name, new_len);
	if (rc->have_tgt) {
		if (flags & FS_RENAME_NOREPLACE)
			return -EEXIST;
		if (rc->tgt.ino == rc->src.ino)
			return 0; /* two names of one inode: nothing to do */
		if (src_dir && !S_ISDIR(le32_to_cpu(rc->tgt.si.mode)))
			return -ENOTDIR;
		if (!src_dir && S_ISDIR(le32_to_cpu(rc->tgt.si.mode)))
			return -EISDIR;
		if (S_ISDIR(le32_to_cpu(rc->tgt.si.mode)) && le64_to_cpu(rc->tgt.si.size) != 0)
			return -ENOTEMPTY;
	}
	if (src_dir && nd != &rc->od) {
		/* a directory may not move below itself */
		err = is_ancestor(fs, cred, rc->src.ino, nd->ino, &ancestor);
		if (err < 0)
			return err;
		if (ancestor)
			return -EINVAL;
		if (le32_to_cpu(nd->si.nlink) >= SCOUTFS_LINK_MAX && !rc->have_tgt)
			return -EMLINK;
	}

	fs_change_init(&chg, fs);
	fs_change_add(&chg, &rc->od);
	fs_change_add(&chg, nd);
	fs_change_add(&chg, &rc->src);
	if (rc->have_tgt)
		fs_change_add(&chg, &rc->tgt);
	chg.want_orphan = rc->have_tgt;
	err = fs_change_begin(&chg, cred, TRANS_HOLD_ALLOC);
	if (err < 0)
		return err;

	err = del_entry(fs, &rc->od, &rc->old_d, old_len, rc->src.lock);
	if (err < 0)
		goto end;
	if (rc->have_tgt) {
		err = del_entry(fs, nd, &rc->new_d, new_len, rc->tgt.lock);
		if (err == 0)
			err = drop_link(&chg, &rc->tgt, now);
		if (err < 0)
			goto end;
		if (S_ISDIR(le32_to_cpu(rc->tgt.si.mode)))
			nd->si.nlink = cpu_to_le32(le32_to_cpu(nd->si.nlink) - 1);
	}
	err = add_entry(fs, nd, new_name, new_len, rc->src.ino, le32_to_cpu(rc->src.si.mode),
			rc->src.lock, &new_pos);
	if (err < 0)
		goto end;
	if (src_dir && nd != &rc->od) {
		/* ".." moves with the directory */
		rc->od.si.nlink = cpu_to_le32(le32_to_cpu(rc->od.si.nlink) - 1);
		nd->si.nlink = cpu_to_le32(le32_to_cpu(nd->si.nlink) + 1);
	}
	touch_times(&rc->od.si, now, true);
	touch_times(&nd->si, now, true);
	touch_times(&rc->src.si, now, false);
	rc->od.dirty = nd->dirty = rc->src.dirty = true;
	err = fs_change_write_inodes(&chg);
	if (err == 0)
		counter_inc(dir_rename);
end:
	fs_change_end(&chg);
	return err;
}

int fs_rename(struct fs_info *fs, const struct fs_cred *cred, u64 old_dir, const char *old_name,
	      size_t old_len, u64 new_dir, const char *new_name, size_t new_len, int flags)
{
	struct lock_waiter w = fs_waiter(cred);
	struct rename_ctx rc;
	struct scoutfs_key start, end;
	struct lock *rename_lock = NULL;
	struct lock *locks[4];
	struct lock *lock;
	u64 inos[4];
	int nr, err, tries = 0;

	if ((flags & ~(FS_RENAME_NOREPLACE | FS_RENAME_EXCHANGE)) ||
	    ((flags & FS_RENAME_NOREPLACE) && (flags & FS_RENAME_EXCHANGE)))
		return -EINVAL;
	err = check_name(old_name, old_len);
	if (err == 0)
		err = check_name(new_name, new_len);
	if (err < 0)
		return err;
	if (is_dot(old_name, old_len) || is_dot(new_name, new_len))
		return -EBUSY;

retry:
	memset(&rc, 0, sizeof(rc));
	rc.od.ino = old_dir;
	rc.nd.ino = new_dir;

	/* a rename between directories holds the global rename lock for its ancestry check */
	if (old_dir != new_dir) {
		lock_rename_range(&start, &end);
		err = lock_key_range(fs->li, SCOUTFS_LOCK_WRITE, 0, &start, &end,
				     w.interrupted ? &w : NULL, &rename_lock);
		if (err < 0)
			return err;
	}

	/* find the inodes involved without holding their locks */
	err = lock_inode(fs->li, old_dir, SCOUTFS_LOCK_READ, 0, w.interrupted ? &w : NULL, &lock);
	if (err < 0)
		goto out;
	rc.od.lock = lock;
	err = read_dir(fs, &rc.od);
	if (err == 0)
		err = find_entry(fs, lock, old_dir, old_name, old_len, &rc.old_d);
	lock_unlock(fs->li, lock, SCOUTFS_LOCK_READ);
	if (err < 0)
		goto out;
	rc.src.ino = le64_to_cpu(rc.old_d.ino);
	err = lock_inode(fs->li, new_dir, SCOUTFS_LOCK_READ, 0, w.interrupted ? &w : NULL, &lock);
	if (err < 0)
		goto out;
	rc.nd.lock = lock;
	err = read_dir(fs, &rc.nd);
	if (err == 0)
		err = find_entry(fs, lock, new_dir, new_name, new_len, &rc.new_d);
	lock_unlock(fs->li, lock, SCOUTFS_LOCK_READ);
	if (err < 0 && err != -ENOENT)
		goto out;
	rc.have_tgt = err == 0;
	rc.tgt.ino = rc.have_tgt ? le64_to_cpu(rc.new_d.ino) : 0;

	nr = 0;
	inos[nr++] = old_dir;
	inos[nr++] = new_dir;
	inos[nr++] = rc.src.ino;
	if (rc.have_tgt)
		inos[nr++] = rc.tgt.ino;
	err = lock_inodes(fs->li, inos, nr, SCOUTFS_LOCK_WRITE, w.interrupted ? &w : NULL, locks);
	if (err < 0)
		goto out;
	rc.od.lock = locks[0];
	rc.nd.lock = locks[1];
	rc.src.lock = locks[2];
	rc.tgt.lock = rc.have_tgt ? locks[3] : NULL;

	/* the renamed inode and a replaced target get new ctimes (and nlink) */
	err = fs_data_lock_inodes(fs, inos + 2, nr - 2);
	if (err == 0) {
		err = rename_locked(fs, cred, &rc, old_name, old_len, new_name, new_len, flags);
		fs_data_unlock_inodes(fs, inos + 2, nr - 2);
	}
	lock_unlock_inodes(fs->li, locks, nr, SCOUTFS_LOCK_WRITE);
out:
	if (rename_lock)
		lock_unlock(fs->li, rename_lock, SCOUTFS_LOCK_WRITE);
	if (err == -EAGAIN && ++tries < 100)
		goto retry;
	return err;
}

/* ---- readdir ---- */

static u32 dt_from_scoutfs(u8 type)
{
	static const u32 map[] = {
		[SCOUTFS_DT_FIFO] = DT_FIFO, [SCOUTFS_DT_CHR] = DT_CHR,	 [SCOUTFS_DT_DIR] = DT_DIR,
		[SCOUTFS_DT_BLK] = DT_BLK,   [SCOUTFS_DT_REG] = DT_REG,	 [SCOUTFS_DT_LNK] = DT_LNK,
		[SCOUTFS_DT_SOCK] = DT_SOCK, [SCOUTFS_DT_WHT] = DT_WHT,
	};

	return type < ARRAY_SIZE(map) ? map[type] : DT_UNKNOWN;
}

int fs_readdir(struct fs_info *fs, const struct fs_cred *cred, u64 dir, u64 pos, fs_dirent_fn emit,
	       void *arg)
{
	struct lock_waiter w = fs_waiter(cred);
	struct fs_inode di = { .ino = dir };
	union {
		struct scoutfs_dirent d;
		u8 buf[DIRENT_BUF_BYTES];
	} cur, next;
	struct scoutfs_key key, last;
	bool have_cur = false;
	int cur_len = 0;
	u64 parent;
	int ret;

	counter_inc(dir_readdir);
	ret = lock_inode(fs->li, dir, SCOUTFS_LOCK_READ, 0, w.interrupted ? &w : NULL, &di.lock);
	if (ret < 0)
		return ret;
	ret = read_dir(fs, &di);
	if (ret < 0)
		goto out;

	if (pos == 0) {
		ret = emit(arg, ".", 1, dir, DT_DIR, 1);
		if (ret)
			goto stop;
		pos = 1;
	}
	if (pos == 1) {
		ret = dir_parent(fs, di.lock, dir, &parent);
		if (ret < 0)
			goto out;
		ret = emit(arg, "..", 2, parent, DT_DIR, SCOUTFS_DIRENT_FIRST_POS);
		if (ret)
			goto stop;
		pos = SCOUTFS_DIRENT_FIRST_POS;
	}

	/*
	 * Each entry's resume offset is the position of the entry after it, so emitting an
	 * entry needs the next one: keep one entry in hand.
	 */
	key = readdir_key(dir, pos);
	last = readdir_key(dir, ~0ULL);
	for (;;) {
		int next_len;

		ret = item_next(fs->ic, di.lock, &key, &last, &next, sizeof(next));
		if (ret == -ENOENT)
			break;
		if (ret < 0)
			goto out;
		if ((size_t)ret < sizeof(struct scoutfs_dirent) || (size_t)ret > sizeof(next)) {
			ret = -EIO;
			goto out;
		}
		next_len = ret;
		if (have_cur) {
			ret = emit(arg, (char *)cur.d.name, cur_len - sizeof(struct scoutfs_dirent),
				   le64_to_cpu(cur.d.ino), dt_from_scoutfs(cur.d.type),
				   le64_to_cpu(next.d.pos));
			if (ret)
				goto stop;
		}
		cur = next;
		cur_len = next_len;
		have_cur = true;
		if (key_second(&key) == ~0ULL)
			break;
		key._sk_second = cpu_to_le64(key_second(&key) + 1);
	}
	if (have_cur) {
		ret = emit(arg, (char *)cur.d.name, cur_len - sizeof(struct scoutfs_dirent),
			   le64_to_cpu(cur.d.ino), dt_from_scoutfs(cur.d.type),
			   le64_to_cpu(cur.d.pos) + 1);
		if (ret)
			goto stop;
	}
stop:
	ret = 0;
out:
	lock_unlock(fs->li, di.lock, SCOUTFS_LOCK_READ);
	return ret;
}
