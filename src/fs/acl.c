/*
 * acl.c: POSIX ACLs -- stored as xattrs, inherited at creation, kept in step with the mode.
 *
 * An ACL is the value of the system.posix_acl_access or system.posix_acl_default xattr in
 * the kernel's xattr encoding: a version word, then entries {tag, perm, id}.  With the
 * mount's acl option (the default) the FUSE layer asks the kernel for POSIX ACL support:
 * the kernel then enforces ACLs in its own permission checks, reading them from us, and
 * hands us every ACL change.  What stays with the filesystem is the part a local
 * filesystem's ACL code does:
 *
 *  - only the owner (or CAP_FOWNER) may set an ACL; an access ACL sets the mode's permission
 *    bits (the group bits from the mask entry), and an ACL that says no more than the mode
 *    is not stored at all; setting one clears setgid unless the caller is in the file's
 *    group or holds CAP_FSETID;
 *  - chmod rewrites the owner, mask (or group) and other entries of the access ACL;
 *  - a new inode in a directory with a default ACL gets an access ACL made from it, masked
 *    by the mode it was created with, instead of the umask; a new directory also inherits
 *    the default ACL itself.  Symlinks take no part.
 *
 * With noacl the ACL names are EOPNOTSUPP, and the kernel checks the mode alone.
 */
#include <errno.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_int.h"
#include "util/counters.h"
#include "util/util.h"

COUNTER_DEFINE(acl_set);
COUNTER_DEFINE(acl_chmod);
COUNTER_DEFINE(acl_inherit);

#define ACL_XATTR_VERSION 2

enum {
	ACL_TAG_USER_OBJ = 0x01,
	ACL_TAG_USER = 0x02,
	ACL_TAG_GROUP_OBJ = 0x04,
	ACL_TAG_GROUP = 0x08,
	ACL_TAG_MASK = 0x10,
	ACL_TAG_OTHER = 0x20,
};

struct acl_entry {
	le16 tag;
	le16 perm;
	le32 id;
} __attribute__((packed));

struct acl_header {
	le32 version;
	struct acl_entry entries[];
} __attribute__((packed));

#define ACL_PERM_BITS 07

bool fs_acl_enabled(struct fs_info *fs)
{
	bool acl;

	pthread_mutex_lock(&fs->opts_mutex);
	acl = fs->opts.acl;
	pthread_mutex_unlock(&fs->opts_mutex);
	return acl;
}

int fs_acl_type(const char *name, size_t len)
{
	if (len == strlen(FS_ACL_ACCESS_NAME) && memcmp(name, FS_ACL_ACCESS_NAME, len) == 0)
		return FS_ACL_ACCESS;
	if (len == strlen(FS_ACL_DEFAULT_NAME) && memcmp(name, FS_ACL_DEFAULT_NAME, len) == 0)
		return FS_ACL_DEFAULT;
	return 0;
}

static unsigned int acl_count(size_t size)
{
	return (unsigned int)((size - sizeof(struct acl_header)) / sizeof(struct acl_entry));
}

/*
 * A well formed ACL: one owner entry, named users, one owning group entry, named groups, a
 * mask (required when there are named entries), one other entry, in that order.
 */
static int acl_validate(const void *val, size_t size)
{
	const struct acl_header *hdr = val;
	enum { WANT_USER_OBJ, IN_USERS, IN_GROUPS, WANT_OTHER, DONE } state = WANT_USER_OBJ;
	bool needs_mask = false;
	unsigned int count;

	if (!val || size < sizeof(*hdr) + sizeof(struct acl_entry) ||
	    (size - sizeof(*hdr)) % sizeof(struct acl_entry) ||
	    le32_to_cpu(hdr->version) != ACL_XATTR_VERSION)
		return -EINVAL;
	count = acl_count(size);
	for (unsigned int i = 0; i < count; i++) {
		const struct acl_entry *e = &hdr->entries[i];

		if (le16_to_cpu(e->perm) & ~ACL_PERM_BITS)
			return -EINVAL;
		switch (le16_to_cpu(e->tag)) {
		case ACL_TAG_USER_OBJ:
			if (state != WANT_USER_OBJ)
				return -EINVAL;
			state = IN_USERS;
			break;
		case ACL_TAG_USER:
			if (state != IN_USERS)
				return -EINVAL;
			needs_mask = true;
			break;
		case ACL_TAG_GROUP_OBJ:
			if (state != IN_USERS)
				return -EINVAL;
			state = IN_GROUPS;
			break;
		case ACL_TAG_GROUP:
			if (state != IN_GROUPS)
				return -EINVAL;
			needs_mask = true;
			break;
		case ACL_TAG_MASK:
			if (state != IN_GROUPS)
				return -EINVAL;
			state = WANT_OTHER;
			break;
		case ACL_TAG_OTHER:
			if (state != WANT_OTHER && !(state == IN_GROUPS && !needs_mask))
				return -EINVAL;
			state = DONE;
			break;
		default:
			return -EINVAL;
		}
	}
	return state == DONE ? 0 : -EINVAL;
}

/*
 * The permission bits an access ACL gives the mode; returns whether the ACL says more than
 * the mode can (named entries or a mask).
 */
static bool acl_mode_bits(const void *val, size_t size, u32 *bits)
{
	const struct acl_header *hdr = val;
	unsigned int count = acl_count(size);
	bool not_equiv = false;
	u32 mode = 0;

	for (unsigned int i = 0; i < count; i++) {
		u32 perm = le16_to_cpu(hdr->entries[i].perm) & ACL_PERM_BITS;

		switch (le16_to_cpu(hdr->entries[i].tag)) {
		case ACL_TAG_USER_OBJ:
			mode |= perm << 6;
			break;
		case ACL_TAG_GROUP_OBJ:
			mode |= perm << 3;
			break;
		case ACL_TAG_OTHER:
			mode |= perm;
			break;
		case ACL_TAG_MASK:
			/* the mask comes after the owning group: it is what the group bits show */
			mode = (mode & ~(u32)S_IRWXG) | (perm << 3);
			not_equiv = true;
			break;
		default:
			not_equiv = true;
			break;
		}
	}
	*bits = mode;
	return not_equiv;
}

static struct acl_entry *acl_find_tag(void *val, size_t size, u16 tag)
{
	struct acl_header *hdr = val;
	unsigned int count = acl_count(size);

	for (unsigned int i = 0; i < count; i++) {
		if (le16_to_cpu(hdr->entries[i].tag) == tag)
			return &hdr->entries[i];
	}
	return NULL;
}

static void set_perm(struct acl_entry *e, u32 perm)
{
	e->perm = cpu_to_le16((u16)(perm & ACL_PERM_BITS));
}

/* the owner, mask (or owning group) and other entries take the mode's permission bits */
static int acl_apply_mode(void *val, size_t size, u32 mode)
{
	struct acl_entry *user = acl_find_tag(val, size, ACL_TAG_USER_OBJ);
	struct acl_entry *group = acl_find_tag(val, size, ACL_TAG_GROUP_OBJ);
	struct acl_entry *mask = acl_find_tag(val, size, ACL_TAG_MASK);
	struct acl_entry *other = acl_find_tag(val, size, ACL_TAG_OTHER);

	if (!user || !group || !other)
		return -EIO;
	set_perm(user, mode >> 6);
	set_perm(mask ? mask : group, mode >> 3);
	set_perm(other, mode);
	return 0;
}

/*
 * Mask a default ACL by a new inode's creation mode, and the mode by the ACL; returns whether
 * the resulting access ACL says more than the mode.
 */
static bool acl_create_masq(void *val, size_t size, u32 *mode_ret)
{
	struct acl_header *hdr = val;
	unsigned int count = acl_count(size);
	struct acl_entry *group = NULL, *mask = NULL, *gm;
	u32 mode = *mode_ret;
	bool not_equiv = false;
	u32 perm;

	for (unsigned int i = 0; i < count; i++) {
		struct acl_entry *e = &hdr->entries[i];

		perm = le16_to_cpu(e->perm);
		switch (le16_to_cpu(e->tag)) {
		case ACL_TAG_USER_OBJ:
			perm &= (mode >> 6) & ACL_PERM_BITS;
			set_perm(e, perm);
			mode &= (perm << 6) | ~(u32)S_IRWXU;
			break;
		case ACL_TAG_OTHER:
			perm &= mode & ACL_PERM_BITS;
			set_perm(e, perm);
			mode &= perm | ~(u32)S_IRWXO;
			break;
		case ACL_TAG_GROUP_OBJ:
			group = e;
			break;
		case ACL_TAG_MASK:
			mask = e;
			not_equiv = true;
			break;
		default:
			not_equiv = true;
			break;
		}
	}
	gm = mask ? mask : group;
	if (gm) {
		perm = le16_to_cpu(gm->perm) & ((mode >> 3) & ACL_PERM_BITS);
		set_perm(gm, perm);
		mode &= (perm << 3) | ~(u32)S_IRWXG;
	}
	*mode_ret = (*mode_ret & ~(u32)(S_IRWXU | S_IRWXG | S_IRWXO)) | (mode & 0777);
	return not_equiv;
}

static int check_may_change_acl(struct fs_info *fs, const struct fs_cred *cred,
				const struct fs_inode *fi)
{
	if (!fs_acl_enabled(fs))
		return -EOPNOTSUPP;
	if (S_ISLNK(le32_to_cpu(fi->si.mode)))
		return -EOPNOTSUPP;
	if (!fs_inode_owner_or_capable(cred, &fi->si))
		return -EPERM;
	return 0;
}

int fs_acl_prepare_set(struct fs_info *fs, const struct fs_cred *cred, struct fs_inode *fi,
		       int type, const void *val, size_t size, bool *store)
{
	u32 mode = le32_to_cpu(fi->si.mode);
	u32 bits;
	int err;

	err = check_may_change_acl(fs, cred, fi);
	if (err < 0)
		return err;
	err = acl_validate(val, size);
	if (err < 0)
		return err;
	*store = true;
	if (type == FS_ACL_DEFAULT) {
		/* only directories have default ACLs (as the kernel answers for local ones) */
		if (!S_ISDIR(mode))
			return -EACCES;
		counter_inc(acl_set);
		return 0;
	}

	*store = acl_mode_bits(val, size, &bits);
	mode = (mode & ~(u32)(S_IRWXU | S_IRWXG | S_IRWXO)) | bits;
	if (!fs_in_group(cred, le32_to_cpu(fi->si.gid)) && !fs_capable(cred, CAP_FSETID))
		mode &= ~(u32)S_ISGID;
	fi->si.mode = cpu_to_le32(mode);
	fi->dirty = true;
	counter_inc(acl_set);
	return 0;
}

int fs_acl_prepare_remove(struct fs_info *fs, const struct fs_cred *cred, struct fs_inode *fi,
			  int type)
{
	return check_may_change_acl(fs, cred, fi);
}

static int acl_chmod_locked(struct fs_info *fs, struct fs_inode *fi)
{
	ssize_t size;
	void *val = NULL;
	int err;

	if (!fs_acl_enabled(fs) || S_ISLNK(le32_to_cpu(fi->si.mode)))
		return 0;
	size = fs_xattr_read(fs, fi->lock, fi->ino, FS_ACL_ACCESS_NAME, NULL, 0);
	if (size == -ENODATA)
		return 0;
	if (size < 0)
		return (int)size;
	val = malloc(size ? (size_t)size : 1);
	if (!val)
		return -ENOMEM;
	size = fs_xattr_read(fs, fi->lock, fi->ino, FS_ACL_ACCESS_NAME, val, (size_t)size);
	err = size < 0 ? (int)size : acl_validate(val, (size_t)size);
	if (err == -EINVAL)
		err = -EIO; /* we stored it, so it was valid */
	if (err == 0)
		err = acl_apply_mode(val, (size_t)size, le32_to_cpu(fi->si.mode));
	if (err == 0)
		err = fs_xattr_store(fs, fi, FS_ACL_ACCESS_NAME, val, (size_t)size);
	if (err == 0)
		counter_inc(acl_chmod);
	free(val);
	return err;
}

/* rewrite the access ACL's mask for the new mode, ordered with the inode's xattr readers */
int fs_acl_chmod(struct fs_info *fs, struct fs_inode *fi)
{
	int err;

	pthread_rwlock_wrlock(fs_xattr_lock(fs, fi->ino));
	err = acl_chmod_locked(fs, fi);
	pthread_rwlock_unlock(fs_xattr_lock(fs, fi->ino));
	return err;
}

static int acl_inherit_prepare_locked(struct fs_info *fs, const struct fs_cred *cred,
				      const struct fs_inode *dir, u32 mode,
				      struct fs_acl_inherit *inh)
{
	ssize_t size;
	void *def;
	int err;

	memset(inh, 0, sizeof(*inh));
	inh->mode = mode;
	if (S_ISLNK(mode))
		return 0;
	if (!fs_acl_enabled(fs))
		goto umask;
	size = fs_xattr_read(fs, dir->lock, dir->ino, FS_ACL_DEFAULT_NAME, NULL, 0);
	if (size == -ENODATA)
		goto umask;
	if (size < 0)
		return (int)size;
	def = malloc(size ? (size_t)size : 1);
	if (!def)
		return -ENOMEM;
	size = fs_xattr_read(fs, dir->lock, dir->ino, FS_ACL_DEFAULT_NAME, def, (size_t)size);
	err = size < 0 ? (int)size : acl_validate(def, (size_t)size);
	if (err < 0) {
		free(def);
		return err == -EINVAL ? -EIO : err;
	}
	if (S_ISDIR(mode)) {
		inh->def = def;
		inh->def_size = (size_t)size;
	}
	inh->access = malloc((size_t)size);
	if (!inh->access) {
		if (!inh->def)
			free(def);
		fs_acl_inherit_free(inh);
		return -ENOMEM;
	}
	memcpy(inh->access, def, (size_t)size);
	inh->access_size = (size_t)size;
	if (!inh->def)
		free(def);
	if (!acl_create_masq(inh->access, inh->access_size, &inh->mode)) {
		free(inh->access);
		inh->access = NULL;
		inh->access_size = 0;
	}
	counter_inc(acl_inherit);
	return 0;
umask:
	if (cred)
		inh->mode &= ~(u32)(cred->umask & 0777);
	return 0;
}

int fs_acl_inherit_prepare(struct fs_info *fs, const struct fs_cred *cred,
			   const struct fs_inode *dir, u32 mode, struct fs_acl_inherit *inh)
{
	int err;

	/* the directory's default ACL must not be read while a setxattr replaces it */
	pthread_rwlock_rdlock(fs_xattr_lock(fs, dir->ino));
	err = acl_inherit_prepare_locked(fs, cred, dir, mode, inh);
	pthread_rwlock_unlock(fs_xattr_lock(fs, dir->ino));
	return err;
}

int fs_acl_inherit_store(struct fs_info *fs, struct fs_inode *fi, const struct fs_acl_inherit *inh)
{
	int err = 0;

	if (inh->access)
		err = fs_xattr_store(fs, fi, FS_ACL_ACCESS_NAME, inh->access, inh->access_size);
	if (err == 0 && inh->def)
		err = fs_xattr_store(fs, fi, FS_ACL_DEFAULT_NAME, inh->def, inh->def_size);
	return err;
}

void fs_acl_inherit_free(struct fs_acl_inherit *inh)
{
	free(inh->access);
	free(inh->def);
	inh->access = NULL;
	inh->def = NULL;
}
