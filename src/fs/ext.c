/*
 * ext.c: setting ranges of an extent map, keeping it canonical.
 *
 * Every change to a file's block map -- a write filling a hole, a write converting part of
 * a preallocated (unwritten) extent, truncate, punching a hole, zeroing a range, releasing
 * to an archive -- is "give blocks [start, end] this mapping".  Doing that in one place keeps
 * the two invariants readers and tools rely on: extents never overlap, and extents that
 * could be one are one.  The second matters beyond tidiness: a file written sequentially
 * stays a handful of items however large it grows, and the extent lists that users see
 * (get-fiemap) are the same whatever order the blocks were written in.
 *
 * fs_ext_set() works in two steps.  First it removes every extent that intersects the range,
 * putting back the parts that stick out on either side (physical blocks shift with the
 * logical ones).  Then, unless the range becomes a hole, it inserts the new extent, first
 * absorbing the extents that end just before it and start just after it when they can
 * merge.  The parts put back in the first step cannot merge with anything: they keep the
 * neighbours they had, and nothing sits next to them in the range any more.
 *
 * A failure part way (out of memory in the caller's store) can leave the range partly
 * changed; callers run in a transaction that the failure aborts or that they complete.
 */
#include <errno.h>

#include "fs/ext.h"

bool fs_ext_can_merge(const struct fs_ext *left, const struct fs_ext *right)
{
	if (fs_ext_end(left) + 1 != right->start || left->flags != right->flags)
		return false;
	if (!left->map && !right->map)
		return true;
	return left->map && right->map && left->map + left->len == right->map;
}

int fs_ext_next(const struct fs_ext_ops *ops, void *arg, u64 blk, struct fs_ext *ext)
{
	int err = ops->next(arg, blk, ext);

	if (err < 0)
		return err;
	if (ext->len == 0 || ext->start + ext->len - 1 < ext->start || fs_ext_end(ext) < blk ||
	    (ext->map && ext->map + ext->len - 1 < ext->map))
		return -EIO;
	return 0;
}

/* the part of ext in [start, end] (which must intersect it) */
static struct fs_ext ext_part(const struct fs_ext *ext, u64 start, u64 end)
{
	struct fs_ext part = *ext;

	if (start < ext->start)
		start = ext->start;
	if (end > fs_ext_end(ext))
		end = fs_ext_end(ext);
	part.start = start;
	part.len = end - start + 1;
	if (ext->map)
		part.map = ext->map + (start - ext->start);
	return part;
}

/* remove every extent intersecting [start, end], keeping the parts outside it */
static int clear_range(const struct fs_ext_ops *ops, void *arg, u64 start, u64 end)
{
	struct fs_ext ext, part;
	int err;

	for (;;) {
		err = fs_ext_next(ops, arg, start, &ext);
		if (err == -ENOENT)
			return 0;
		if (err < 0)
			return err;
		if (ext.start > end)
			return 0;
		err = ops->remove(arg, &ext);
		if (err < 0)
			return err;
		if (ext.start < start) {
			part = ext_part(&ext, ext.start, start - 1);
			err = ops->insert(arg, &part);
			if (err < 0)
				return err;
		}
		if (fs_ext_end(&ext) > end) {
			part = ext_part(&ext, end + 1, fs_ext_end(&ext));
			return ops->insert(arg, &part);
		}
	}
}

int fs_ext_set(const struct fs_ext_ops *ops, void *arg, u64 start, u64 len, u64 map, u8 flags)
{
	struct fs_ext ext = { .start = start, .len = len, .map = map, .flags = flags };
	struct fs_ext nb;
	u64 end;
	int err;

	if (len == 0 || start + len - 1 < start || (map && map + len - 1 < map))
		return -EINVAL;
	end = start + len - 1;

	err = clear_range(ops, arg, start, end);
	if (err < 0 || (!map && !flags))
		return err;

	if (start > 0) {
		err = fs_ext_next(ops, arg, start - 1, &nb);
		if (err < 0 && err != -ENOENT)
			return err;
		if (err == 0 && fs_ext_end(&nb) == start - 1 && fs_ext_can_merge(&nb, &ext)) {
			err = ops->remove(arg, &nb);
			if (err < 0)
				return err;
			ext.start = nb.start;
			ext.map = nb.map;
			ext.len += nb.len;
		}
	}
	if (end < ~0ULL) {
		err = fs_ext_next(ops, arg, end + 1, &nb);
		if (err < 0 && err != -ENOENT)
			return err;
		if (err == 0 && nb.start == end + 1 && fs_ext_can_merge(&ext, &nb)) {
			err = ops->remove(arg, &nb);
			if (err < 0)
				return err;
			ext.len += nb.len;
		}
	}
	return ops->insert(arg, &ext);
}
