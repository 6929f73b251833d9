/* mmap_loop N [remap]: N pairs of mmap+munmap of 256 KiB anonymous memory (one
 * page touched), or with "remap": mmap 256 KiB, mremap it to 512 KiB (may move),
 * munmap -- Python's receive-buffer pattern.  Prints the loop's own time in ns. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);   /* vDSO: no syscall */
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10000;
    int remap = argc > 2 && strcmp(argv[2], "remap") == 0;
    size_t len = 256 << 10;
    long touched = 0;
    long long t0 = now_ns();
    for (long i = 0; i < n; i++) {
        char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { perror("mmap"); return 1; }
        p[0] = 1;
        size_t now = len;
        if (remap) {
            char *q = mremap(p, len, 2 * len, MREMAP_MAYMOVE);
            if (q == MAP_FAILED) { perror("mremap"); return 1; }
            p = q;
            now = 2 * len;
            touched += p[0];
        }
        if (munmap(p, now)) { perror("munmap"); return 1; }
    }
    long long t1 = now_ns();
    printf("%lld %ld\n", t1 - t0, touched);
    return 0;
}
