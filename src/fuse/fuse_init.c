/*
 * fuse_init.c: INIT reply flags that Debian's libfuse 3.14 cannot send.
 *
 * libfuse 3.14 speaks protocol 7.31 and never puts FUSE_PARALLEL_DIROPS into its INIT reply,
 * even when the filesystem wants it (fixed upstream in 3.17).  Without it the kernel runs
 * one LOOKUP or READDIR at a time per directory.  Our directory operations are safe in
 * parallel -- each takes its own cluster locks, and the kernel still serializes everything
 * that changes a directory -- so the session's writes go through a custom I/O hook that
 * ORs the flag into the INIT reply, the first reply the session sends.
 *
 * Only flags that change no request or reply layout may be added this way.
 */
#include <linux/fuse.h>
#include <stddef.h>
#include <string.h>

#include "fuse/fuse_init.h"

bool sfuse_patch_init_reply(struct iovec *iov, int count, uint32_t add_flags)
{
	struct fuse_out_header *oh;
	uint32_t flags;
	size_t off = offsetof(struct fuse_init_out, flags);

	if (count < 2 || iov[0].iov_len < sizeof(*oh) || iov[1].iov_len < off + sizeof(flags))
		return false;
	oh = iov[0].iov_base;
	if (oh->error != 0)
		return false;
	memcpy(&flags, (char *)iov[1].iov_base + off, sizeof(flags));
	flags |= add_flags;
	memcpy((char *)iov[1].iov_base + off, &flags, sizeof(flags));
	return true;
}

uint32_t sfuse_init_parallel_dirops_flag(void)
{
	return FUSE_PARALLEL_DIROPS;
}
