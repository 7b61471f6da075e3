/*
 * check_bitmap.c: one bit per block for devices of any size.
 *
 * check marks every metadata block it finds used or free, and every data block referenced
 * or free, and must notice the second time a block is marked.  A plain bitmap of a large
 * data device would be gigabytes, yet most of it is covered by a few huge free extents or
 * big files.  So the bitmap is cut into chunks of 64 Ki bits, and a chunk is either empty, full
 * (neither needs memory), or a real 8 KiB bitmap with a count of its set bits; setting a
 * whole chunk at once just marks it full, and a chunk whose bits all become set gives its
 * memory back.  Memory then follows the fragmentation of what is marked, not the device size.
 *
 * Setting a range reports the runs that were already set, and runs are always reported
 * coalesced, so a large overlap is one report, not one per block.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/check.h"
#include "util/util.h"

#define CHUNK_SHIFT 16
#define CHUNK_BITS  (1ULL << CHUNK_SHIFT)
#define CHUNK_WORDS (CHUNK_BITS / 64)

/* a chunk whose bits are all set: its address is only a marker */
static u64 full_marker;
#define CHUNK_FULL (&full_marker)

struct cbitmap {
	u64 nr_bits;
	u64 nr_chunks;
	u64 **chunks; /* NULL: empty, CHUNK_FULL: full, else CHUNK_WORDS words */
	u32 *counts;  /* set bits of each chunk */
};

/* collects runs and hands them on coalesced */
struct run_acc {
	cbm_run_fn fn;
	void *arg;
	u64 start;
	u64 len;
};

static void run_add(struct run_acc *ra, u64 start, u64 len)
{
	if (!ra->fn || len == 0)
		return;
	if (ra->len && ra->start + ra->len == start) {
		ra->len += len;
		return;
	}
	if (ra->len)
		ra->fn(ra->arg, ra->start, ra->len);
	ra->start = start;
	ra->len = len;
}

static void run_flush(struct run_acc *ra)
{
	if (ra->fn && ra->len)
		ra->fn(ra->arg, ra->start, ra->len);
	ra->len = 0;
}

/* hand on the runs of set bits in word, whose bit 0 is block base */
static void word_runs(struct run_acc *ra, u64 word, u64 base)
{
	while (word) {
		unsigned int first = (unsigned int)__builtin_ctzll(word);
		u64 rest = word >> first;
		unsigned int len = ~rest ? (unsigned int)__builtin_ctzll(~rest) : 64 - first;

		run_add(ra, base + first, len);
		if (first + len >= 64)
			break;
		word &= ~0ULL << (first + len);
	}
}

int cbm_create(u64 nr_bits, struct cbitmap **ret)
{
	struct cbitmap *bm;

	*ret = NULL;
	bm = calloc(1, sizeof(*bm));
	if (!bm)
		return -ENOMEM;
	bm->nr_bits = nr_bits;
	bm->nr_chunks = DIV_ROUND_UP(nr_bits, CHUNK_BITS);
	bm->chunks = calloc(bm->nr_chunks ? bm->nr_chunks : 1, sizeof(bm->chunks[0]));
	bm->counts = calloc(bm->nr_chunks ? bm->nr_chunks : 1, sizeof(bm->counts[0]));
	if (!bm->chunks || !bm->counts) {
		cbm_destroy(bm);
		return -ENOMEM;
	}
	*ret = bm;
	return 0;
}

void cbm_destroy(struct cbitmap *bm)
{
	if (!bm)
		return;
	for (u64 i = 0; bm->chunks && i < bm->nr_chunks; i++) {
		if (bm->chunks[i] != CHUNK_FULL)
			free(bm->chunks[i]);
	}
	free(bm->chunks);
	free(bm->counts);
	free(bm);
}

u64 cbm_nr_bits(const struct cbitmap *bm)
{
	return bm->nr_bits;
}

static u64 chunk_len(const struct cbitmap *bm, u64 ci)
{
	u64 base = ci << CHUNK_SHIFT;

	return min_t(u64, CHUNK_BITS, bm->nr_bits - base);
}

/* the mask of bits [lo, hi) of a word, 0 <= lo < hi <= 64 */
static u64 word_mask(unsigned int lo, unsigned int hi)
{
	u64 m = hi >= 64 ? ~0ULL : (1ULL << hi) - 1;

	return m & (~0ULL << lo);
}

int cbm_set(struct cbitmap *bm, u64 start, u64 len, cbm_run_fn was_set, void *arg)
{
	struct run_acc ra = { .fn = was_set, .arg = arg };
	u64 end, ci;

	if (start >= bm->nr_bits || len == 0)
		return 0;
	if (len > bm->nr_bits - start)
		len = bm->nr_bits - start;
	end = start + len;

	for (ci = start >> CHUNK_SHIFT; ci <= (end - 1) >> CHUNK_SHIFT; ci++) {
		u64 base = ci << CHUNK_SHIFT;
		u64 cs = max_t(u64, start, base) - base;
		u64 ce = min_t(u64, end, base + CHUNK_BITS) - base;
		u64 clen = chunk_len(bm, ci);
		u64 *words = bm->chunks[ci];

		if (words == CHUNK_FULL) {
			run_add(&ra, base + cs, ce - cs);
			continue;
		}
		if (!words && cs == 0 && ce == clen) {
			bm->chunks[ci] = CHUNK_FULL;
			bm->counts[ci] = (u32)clen;
			continue;
		}
		if (!words) {
			words = calloc(CHUNK_WORDS, sizeof(u64));
			if (!words) {
				run_flush(&ra);
				return -ENOMEM;
			}
			bm->chunks[ci] = words;
		}
		for (u64 w = cs / 64; w <= (ce - 1) / 64; w++) {
			unsigned int lo = w == cs / 64 ? (unsigned int)(cs % 64) : 0;
			unsigned int hi =
			        w == (ce - 1) / 64 ? (unsigned int)((ce - 1) % 64) + 1 : 64;
			u64 m = word_mask(lo, hi);

			word_runs(&ra, words[w] & m, base + w * 64);
			bm->counts[ci] += (u32)__builtin_popcountll(m & ~words[w]);
			words[w] |= m;
		}
		if (bm->counts[ci] == clen) {
			free(words);
			bm->chunks[ci] = CHUNK_FULL;
		}
	}
	run_flush(&ra);
	return 0;
}

void cbm_runs(const struct cbitmap *bm, u64 start, u64 len, bool set, cbm_run_fn fn, void *arg)
{
	struct run_acc ra = { .fn = fn, .arg = arg };
	u64 end, ci;

	if (start >= bm->nr_bits || len == 0)
		return;
	if (len > bm->nr_bits - start)
		len = bm->nr_bits - start;
	end = start + len;

	for (ci = start >> CHUNK_SHIFT; ci <= (end - 1) >> CHUNK_SHIFT; ci++) {
		u64 base = ci << CHUNK_SHIFT;
		u64 cs = max_t(u64, start, base) - base;
		u64 ce = min_t(u64, end, base + CHUNK_BITS) - base;
		const u64 *words = bm->chunks[ci];

		if (words == CHUNK_FULL || !words) {
			if ((words == CHUNK_FULL) == set)
				run_add(&ra, base + cs, ce - cs);
			continue;
		}
		for (u64 w = cs / 64; w <= (ce - 1) / 64; w++) {
			unsigned int lo = w == cs / 64 ? (unsigned int)(cs % 64) : 0;
			unsigned int hi =
			        w == (ce - 1) / 64 ? (unsigned int)((ce - 1) % 64) + 1 : 64;
			u64 word = set ? words[w] : ~words[w];

			word_runs(&ra, word & word_mask(lo, hi), base + w * 64);
		}
	}
	run_flush(&ra);
}

bool cbm_test(const struct cbitmap *bm, u64 bit)
{
	const u64 *words;

	if (bit >= bm->nr_bits)
		return false;
	words = bm->chunks[bit >> CHUNK_SHIFT];
	if (words == CHUNK_FULL)
		return true;
	if (!words)
		return false;
	bit &= CHUNK_BITS - 1;
	return (words[bit / 64] >> (bit % 64)) & 1;
}

u64 cbm_weight(const struct cbitmap *bm)
{
	u64 total = 0;

	for (u64 i = 0; i < bm->nr_chunks; i++)
		total += bm->counts[i];
	return total;
}
