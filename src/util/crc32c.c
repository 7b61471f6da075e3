/*
 * crc32c.c: CRC32C with the SSE4.2 crc32 instruction, falling back to a byte table on CPUs
 * without it.  The choice is made once, the first time a checksum is computed.
 */
#include <pthread.h>
#include <string.h>

#include "util/crc32c.h"

#define CRC32C_POLY_REFLECTED 0x82f63b78U

static uint32_t crc_table[256];
static uint32_t (*crc_update)(uint32_t crc, const unsigned char *p, size_t len);
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static uint32_t crc_update_table(uint32_t crc, const unsigned char *p, size_t len)
{
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

__attribute__((target("sse4.2"))) static uint32_t crc_update_sse42(uint32_t crc,
								    const unsigned char *p,
								    size_t len)
{
	uint64_t c = crc;
	uint64_t v;

	while (len >= 8) {
		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	crc = (uint32_t)c;
	while (len--)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return crc;
}

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY_REFLECTED : c >> 1;
		crc_table[i] = c;
	}
	__builtin_cpu_init();
	crc_update = __builtin_cpu_supports("sse4.2") ? crc_update_sse42 : crc_update_table;
}

uint32_t crc32c(const void *data, size_t len)
{
	pthread_once(&crc_once, crc_init);
	return ~crc_update(~0U, data, len);
}
