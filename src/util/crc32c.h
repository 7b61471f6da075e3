/*
 * crc32c.h: the Castagnoli CRC that checksums blocks and quorum messages.
 *
 * The standard CRC32C (initial value ~0, final inversion; "123456789" gives 0xe3069283),
 * using the SSE4.2 instruction when the CPU has it and a table otherwise.
 */
#ifndef SCOUTFS_CRC32C_H
#define SCOUTFS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(const void *data, size_t len);

#endif
