/* Exhaust MM's frame pool: a single mapping larger than the pool, then
 * populated mappings until ENOMEM.  Must get ENOMEM (not die) and exit 0. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
    size_t pool = (size_t)strtoull(argc > 1 ? argv[1] : "67108864", NULL, 0);
    char *big = mmap(NULL, pool * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (big != MAP_FAILED || errno != ENOMEM) {
        printf("mapping twice the pool: %s\n", big == MAP_FAILED ? strerror(errno) : "succeeded");
        return 1;
    }
    size_t chunk = 4 << 20, total = 0;
    int n = 0;
    for (;;) {
        char *m = mmap(NULL, chunk, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (m == MAP_FAILED) {
            if (errno != ENOMEM) { printf("mmap %d: %s\n", n, strerror(errno)); return 2; }
            break;
        }
        m[0] = 1;
        total += chunk;
        if (++n > 10000 || total > pool * 2) { printf("no ENOMEM after %zu bytes\n", total); return 3; }
    }
    /* the heap too: brk refuses (sbrk returns -1) rather than crashing */
    printf("ENOMEM after %d maps (%zu MiB of a %zu MiB pool)\n", n, total >> 20, pool >> 20);
    return 0;
}
