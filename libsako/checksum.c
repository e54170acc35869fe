/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) over the event log's batches.
 *
 * SQLite checks its own page structure (integrity_check) but not the bytes of a blob:
 * a flipped bit inside a logged batch is a valid row holding a different event. The
 * checksum is written with each batch and recomputed whenever a batch is read. CRC-32C
 * detects every burst of up to 32 flipped bits and every odd number of flipped bits,
 * and misses other damage with probability 2^-32. Slicing by 8: eight 256-entry tables
 * (8 KiB), built once, consume eight bytes per step. */
#include <pthread.h>

#include "checksum_internal.h"

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[0][i] = c;
    }
    /* table[j][i]: the CRC of byte i followed by j zero bytes. */
    for (uint32_t i = 0; i < 256; i++)
        for (int j = 1; j < 8; j++)
            table[j][i] = (table[j - 1][i] >> 8) ^ table[0][table[j - 1][i] & 0xFF];
}

uint32_t sako__checksum_update(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&table_once, build_table);
    const unsigned char *p = data;
    uint32_t c = ~crc;
    while (n >= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                           (uint32_t)p[3] << 24);
        c = table[7][lo & 0xFF] ^ table[6][(lo >> 8) & 0xFF] ^ table[5][(lo >> 16) & 0xFF] ^
            table[4][lo >> 24] ^ table[3][p[4]] ^ table[2][p[5]] ^ table[1][p[6]] ^
            table[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ table[0][(c ^ *p++) & 0xFF];
    return ~c;
}
