/*
 * rbtree.h: red-black trees from libbsd's <bsd/sys/tree.h> (header-only macros).
 *
 * libbsd leaves __unused undefined, which its RB_GENERATE_STATIC needs, so generate static
 * tree functions through this wrapper instead.
 */
#ifndef SCOUTFS_RBTREE_H
#define SCOUTFS_RBTREE_H

#include <bsd/sys/tree.h>

#define RB_GENERATE_STATIC_UNUSED(name, type, field, cmp)                                  \
	RB_GENERATE_INTERNAL(name, type, field, cmp, __attribute__((unused)) static)

#endif
