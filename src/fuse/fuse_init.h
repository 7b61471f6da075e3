/*
 * fuse_init.h: adding INIT reply flags that libfuse 3.14 drops (see fuse_init.c).
 */
#ifndef SCOUTFS_FUSE_INIT_H
#define SCOUTFS_FUSE_INIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

/* OR add_flags into the INIT reply in iov; false if iov is not a successful INIT reply */
bool sfuse_patch_init_reply(struct iovec *iov, int count, uint32_t add_flags);
uint32_t sfuse_init_parallel_dirops_flag(void);

#endif
