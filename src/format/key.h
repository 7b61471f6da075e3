/*
 * key.h: operations on the generic scoutfs key.
 *
 * A key behaves like one big number whose digits are, most significant first, zone, first,
 * type, second, third and fourth.  Comparison, increment and decrement follow that order, so
 * "zeros" and "ones" are the smallest and largest keys.
 */
#ifndef SCOUTFS_KEY_H
#define SCOUTFS_KEY_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "format/format.h"

#define sk_ino _sk_first
#define sk_first _sk_first
#define sk_second _sk_second
#define sk_third _sk_third
#define sk_fourth _sk_fourth

static inline u64 key_first(const struct scoutfs_key *k)
{
	return le64_to_cpu(k->_sk_first);
}

static inline u64 key_second(const struct scoutfs_key *k)
{
	return le64_to_cpu(k->_sk_second);
}

static inline u64 key_third(const struct scoutfs_key *k)
{
	return le64_to_cpu(k->_sk_third);
}

static inline u8 key_fourth(const struct scoutfs_key *k)
{
	return k->_sk_fourth;
}

static inline struct scoutfs_key key_make(u8 zone, u64 first, u8 type, u64 second, u64 third,
					  u8 fourth)
{
	struct scoutfs_key k;

	memset(&k, 0, sizeof(k));
	k.sk_zone = zone;
	k._sk_first = cpu_to_le64(first);
	k.sk_type = type;
	k._sk_second = cpu_to_le64(second);
	k._sk_third = cpu_to_le64(third);
	k._sk_fourth = fourth;
	return k;
}

static inline void key_set_zeros(struct scoutfs_key *k)
{
	memset(k, 0, sizeof(*k));
}

static inline void key_set_ones(struct scoutfs_key *k)
{
	memset(k, 0, sizeof(*k));
	k->sk_zone = 0xff;
	k->_sk_first = ~0ULL;
	k->sk_type = 0xff;
	k->_sk_second = ~0ULL;
	k->_sk_third = ~0ULL;
	k->_sk_fourth = 0xff;
}

static inline struct scoutfs_key key_zeros(void)
{
	struct scoutfs_key k;

	key_set_zeros(&k);
	return k;
}

static inline struct scoutfs_key key_ones(void)
{
	struct scoutfs_key k;

	key_set_ones(&k);
	return k;
}

static inline bool key_is_ones(const struct scoutfs_key *k)
{
	struct scoutfs_key ones = key_ones();

	return memcmp(k, &ones, sizeof(ones)) == 0;
}

static inline bool key_is_zeros(const struct scoutfs_key *k)
{
	struct scoutfs_key zeros = key_zeros();

	return memcmp(k, &zeros, sizeof(zeros)) == 0;
}

static inline int cmp_u64(u64 a, u64 b)
{
	return a < b ? -1 : a > b ? 1 : 0;
}

static inline int key_compare(const struct scoutfs_key *a, const struct scoutfs_key *b)
{
	int c;

	if ((c = cmp_u64(a->sk_zone, b->sk_zone)) ||
	    (c = cmp_u64(le64_to_cpu(a->_sk_first), le64_to_cpu(b->_sk_first))) ||
	    (c = cmp_u64(a->sk_type, b->sk_type)) ||
	    (c = cmp_u64(le64_to_cpu(a->_sk_second), le64_to_cpu(b->_sk_second))) ||
	    (c = cmp_u64(le64_to_cpu(a->_sk_third), le64_to_cpu(b->_sk_third))))
		return c;
	return cmp_u64(a->_sk_fourth, b->_sk_fourth);
}

/* is key within [start, end]? */
static inline bool key_in_range(const struct scoutfs_key *k, const struct scoutfs_key *start,
				const struct scoutfs_key *end)
{
	return key_compare(k, start) >= 0 && key_compare(k, end) <= 0;
}

static inline const struct scoutfs_key *key_min(const struct scoutfs_key *a,
						const struct scoutfs_key *b)
{
	return key_compare(a, b) <= 0 ? a : b;
}

static inline const struct scoutfs_key *key_max(const struct scoutfs_key *a,
						const struct scoutfs_key *b)
{
	return key_compare(a, b) >= 0 ? a : b;
}

/* increment the key as one number, carrying from fourth up to zone; ones wraps to zeros */
static inline void key_inc(struct scoutfs_key *k)
{
	if (++k->_sk_fourth)
		return;
	k->_sk_third = cpu_to_le64(le64_to_cpu(k->_sk_third) + 1);
	if (k->_sk_third)
		return;
	k->_sk_second = cpu_to_le64(le64_to_cpu(k->_sk_second) + 1);
	if (k->_sk_second)
		return;
	if (++k->sk_type)
		return;
	k->_sk_first = cpu_to_le64(le64_to_cpu(k->_sk_first) + 1);
	if (k->_sk_first)
		return;
	k->sk_zone++;
}

static inline void key_dec(struct scoutfs_key *k)
{
	if (k->_sk_fourth--)
		return;
	if (le64_to_cpu(k->_sk_third) != 0) {
		k->_sk_third = cpu_to_le64(le64_to_cpu(k->_sk_third) - 1);
		return;
	}
	k->_sk_third = ~0ULL;
	if (le64_to_cpu(k->_sk_second) != 0) {
		k->_sk_second = cpu_to_le64(le64_to_cpu(k->_sk_second) - 1);
		return;
	}
	k->_sk_second = ~0ULL;
	if (k->sk_type--)
		return;
	if (le64_to_cpu(k->_sk_first) != 0) {
		k->_sk_first = cpu_to_le64(le64_to_cpu(k->_sk_first) - 1);
		return;
	}
	k->_sk_first = ~0ULL;
	k->sk_zone--;
}

/* a short printable form for logs and tools: "zone.first.type.second.third.fourth" */
#define KEY_STR_LEN 96
static inline char *key_str(const struct scoutfs_key *k, char *buf)
{
	snprintf(buf, KEY_STR_LEN, "%u.%llu.%u.%llu.%llu.%u", k->sk_zone,
		 (unsigned long long)key_first(k), k->sk_type, (unsigned long long)key_second(k),
		 (unsigned long long)key_third(k), key_fourth(k));
	return buf;
}

#endif
