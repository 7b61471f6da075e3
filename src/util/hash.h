/*
 * hash.h: the small non-cryptographic hashes the format depends on (FNV-1a in 32 and 64
 * bits).  Changing any of these changes where items live on disk.
 */
#ifndef SCOUTFS_HASH_H
#define SCOUTFS_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint32_t fnv1a32(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint32_t h = 0x811c9dc5U;

	while (len--) {
		h ^= *p++;
		h *= 0x01000193U;
	}
	return h;
}

static inline uint64_t fnv1a64(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL;

	while (len--) {
		h ^= *p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

#endif
