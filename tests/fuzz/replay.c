/* The fuzz targets without libFuzzer: every seed of a corpus, then fixed-seed byte
 * mutations of each (flips, overwrites, cuts, duplications), through the target's
 * LLVMFuzzerTestOneInput. Built with the ordinary compiler under ASan+UBSan, it is
 * the short fuzz run of `make test` (`make fuzz-replay`); coverage-guided runs need
 * clang (`make fuzz`). A crash or sanitizer report fails the run.
 *
 * usage: replay MUTATIONS DIR_OR_FILE...   (ends "N inputs, M seeds") */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t next(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static long inputs;

/* One mutation of seed (n bytes) into out (room for 2n + 16); returns its size. */
static size_t mutate(const uint8_t *seed, size_t n, uint8_t *out)
{
    memcpy(out, seed, n);
    if (n == 0)
        return 0;
    size_t at = (size_t)(next() % n);
    switch (next() % 5) {
    case 0: /* flip one bit */
        out[at] ^= (uint8_t)(1u << (next() % 8));
        return n;
    case 1: /* a run of random bytes */
        for (size_t k = at; k < n && k < at + 1 + next() % 8; k++)
            out[k] = (uint8_t)next();
        return n;
    case 2: /* an interesting value */
        out[at] = (uint8_t[]){ 0x00, 0xFF, 0x7F, 0x80, 0x01 }[next() % 5];
        return n;
    case 3: /* cut short */
        return at;
    default: /* a slice repeated */
        memcpy(out + n, seed + at, n - at);
        return n + (n - at);
    }
}

static void run_file(const char *path, long mutations)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t n = len > 0 ? (size_t)len : 0;
    uint8_t *seed = malloc(n + 1), *buf = malloc(2 * n + 16);
    if (!seed || !buf || fread(seed, 1, n, f) != n) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    LLVMFuzzerTestOneInput(seed, n);
    inputs++;
    for (long m = 0; m < mutations; m++) {
        size_t k = mutate(seed, n, buf);
        LLVMFuzzerTestOneInput(buf, k);
        inputs++;
    }
    free(seed);
    free(buf);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: replay MUTATIONS DIR_OR_FILE...\n");
        return 2;
    }
    long mutations = strtol(argv[1], NULL, 10);
    long seeds = 0;
    for (int a = 2; a < argc; a++) {
        struct stat st;
        if (stat(argv[a], &st) != 0) {
            perror(argv[a]);
            return 2;
        }
        if (!S_ISDIR(st.st_mode)) {
            run_file(argv[a], mutations);
            seeds++;
            continue;
        }
        /* in name order, so that a run is the same run everywhere */
        DIR *d = opendir(argv[a]);
        char *names[4096];
        size_t n = 0;
        for (struct dirent *de; d && (de = readdir(d)) && n < 4096;)
            if (de->d_name[0] != '.')
                names[n++] = strdup(de->d_name);
        if (d)
            closedir(d);
        qsort(names, n, sizeof *names, cmp_names);
        for (size_t i = 0; i < n; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[a], names[i]);
            run_file(path, mutations);
            seeds++;
            free(names[i]);
        }
    }
    printf("%ld inputs, %ld seeds\n", inputs, seeds);
    return 0;
}
