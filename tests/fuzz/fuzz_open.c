/* libFuzzer target: sako_init() and sako_verify() on arbitrary bytes as a database
 * file (seeded with real small databases, so the mutations are mostly of valid SQLite
 * pages). Whatever the bytes, both must return a documented status, and a file that
 * opens must take a read, a write, a retrain and a close. */
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_path();
    fuzz_remove(path);
    fuzz_write(path, data, size);
    fuzz_use_file(path);
    fuzz_remove(path);
    return 0;
}
