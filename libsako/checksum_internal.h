/* CRC-32C of byte ranges (checksum.c). */
#ifndef SAKO_CHECKSUM_INTERNAL_H
#define SAKO_CHECKSUM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* The CRC-32C of `data` continuing from `crc` (0 to start): update(update(0, a), b)
 * equals the CRC of a followed by b. Thread-safe. */
uint32_t sako__checksum_update(uint32_t crc, const void *data, size_t n);

#endif
