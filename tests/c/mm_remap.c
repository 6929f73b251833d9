/* mm_remap: mremap growing private anonymous memory (moved, or in place), with
 * the data kept, and a source MM merged from two host VMAs (separately faulted
 * memory the host keeps apart): there Linux says EFAULT and everything stays.
 * Prints the same lines natively and under xinim-run.
 * mm_remap grow N: only N rounds of grow (moved or in place) + shrink. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define PG 4096UL

static int grow_only(long n) {
    char *p = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    long ok = 0;
    for (long i = 0; i < n; i++) {
        p[0] = (char)i;
        char *q = mremap(p, 4 * PG, 8 * PG, MREMAP_MAYMOVE);
        if (q == MAP_FAILED) { perror("mremap grow"); return 1; }
        q[7 * PG] = 1;
        p = mremap(q, 8 * PG, 4 * PG, 0);
        if (p == MAP_FAILED) { perror("mremap shrink"); return 1; }
        ok += p[0] == (char)i;
    }
    printf("grow only %ld\n", ok);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "grow") == 0)
        return grow_only(atol(argv[2]));
    long kept = 0, moved = 0;
    for (int i = 0; i < 200; i++) {             /* Python's receive-buffer pattern */
        char *p = mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { perror("mmap"); return 1; }
        memset(p, 'a' + i % 26, 64 * PG);
        char *q = mremap(p, 64 * PG, 128 * PG, MREMAP_MAYMOVE);
        if (q == MAP_FAILED) { perror("mremap"); return 1; }
        moved += q != p;
        kept += q[0] == 'a' + i % 26 && q[64 * PG - 1] == 'a' + i % 26 && q[128 * PG - 1] == 0;
        if (munmap(q, 128 * PG)) { perror("munmap"); return 1; }
    }
    printf("kept %ld\n", kept);
    /* in place: the pages after are free */
    char *r = mmap(NULL, 16 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(r, 16 * PG);
    char *a = mmap(r, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    a[0] = 'x';
    char *b = mremap(a, 4 * PG, 8 * PG, 0);
    printf("in place %d %c\n", b == a, b == MAP_FAILED ? '-' : b[0]);
    char *c = mremap(a, 8 * PG, 32 * PG, 0);            /* past the free pages: no */
    printf("in place too far: %s\n", c == MAP_FAILED ? strerror(errno) : "grown");
    munmap(a, 8 * PG);
    /* two host VMAs MM sees as one: A faulted, B faulted elsewhere, then moved
     * right after A -- the host keeps them apart (other anon_vma) */
    char *s = mmap(NULL, 32 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(s, 32 * PG);
    char *A = mmap(s, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    char *B = mmap(s + 16 * PG, 2 * PG, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    A[0] = 'A'; B[0] = 'B';
    char *B2 = mremap(B, 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, A + 2 * PG);
    printf("B next to A: %d\n", B2 == A + 2 * PG);
    char *AB = mremap(A, 4 * PG, 8 * PG, 0);
    printf("grow across both in place: %s\n", AB == MAP_FAILED ? strerror(errno) : "grown");
    char *W = mmap(A + 4 * PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("wall: %d\n", W == A + 4 * PG);              /* now only a move could grow it */
    AB = mremap(A, 4 * PG, 8 * PG, MREMAP_MAYMOVE);
    printf("grow across both: %s\n", AB == MAP_FAILED ? strerror(errno) : "moved");
    char *t = mmap(A, 4 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    printf("still there: %s %c %c\n", t == MAP_FAILED ? strerror(errno) : "free", A[0], A[2 * PG]);
    char *A2 = mremap(A, 2 * PG, 6 * PG, MREMAP_MAYMOVE);     /* A alone: fine */
    printf("grow A alone: %s %c\n", A2 == MAP_FAILED ? strerror(errno) : "moved",
           A2 == MAP_FAILED ? '-' : A2[0]);
    /* shrinks (one stop under XINIM): the end of a mapping, then a tail inside
     * it -- the host splits it in two; the data around stays */
    char *h = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(h, 'h', 8 * PG);
    h[5 * PG] = 'k';
    char *h1 = mremap(h, 8 * PG, 6 * PG, 0);
    char *h2 = mremap(h, 4 * PG, 2 * PG, MREMAP_MAYMOVE);
    char *end = mmap(h + 6 * PG, 2 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    char *mid = mmap(h + 2 * PG, 2 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    char *stay = mmap(h + 4 * PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    printf("shrinks: %d %d end %s mid %s kept %s %c %c\n", h1 == h, h2 == h,
           end == MAP_FAILED ? strerror(errno) : "free", mid == MAP_FAILED ? "taken" : "free",
           stay == MAP_FAILED ? "taken" : "free", h[PG], h[5 * PG]);
    return 0;
}
