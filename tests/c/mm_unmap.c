/* mm_unmap: munmaps of whole mappings (MM answers them in one tracer stop, the
 * trapped call itself) mixed with splits, then checks that what is gone is free
 * (MAP_FIXED_NOREPLACE gets it back) and what stays holds its data.  Prints the
 * same lines natively and under xinim-run. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096

int main(void) {
    int prots[3] = {PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC};
    long fine = 0;
    for (int i = 0; i < 300; i++) {          /* whole mappings, neighbours differ */
        int prot = prots[i % 3];
        char *p = mmap(NULL, 3 * PG, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { perror("mmap"); return 1; }
        fine += p[PG] == 0;
        if (munmap(p, 3 * PG)) { perror("munmap"); return 1; }
        char *q = mmap(p, 3 * PG, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (q != p) { printf("not free again: %s\n", strerror(errno)); return 1; }
        q[0] = 7;
        if (munmap(q, 3 * PG)) { perror("munmap 2"); return 1; }
    }
    printf("whole %ld\n", fine);
    /* a split: the middle page goes, both ends stay with their data */
    char *r = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(r, 'a', 3 * PG);
    printf("middle %d\n", munmap(r + PG, PG));
    printf("ends %c %c\n", r[0], r[2 * PG]);
    char *m = mmap(r + PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    printf("middle free %d\n", m == r + PG);
    printf("head %d tail %d\n", munmap(r, PG), munmap(r + 2 * PG, PG));
    printf("all %d\n", munmap(r, 3 * PG));
    char *s = mmap(r, 3 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    printf("range free %d\n", s == r);
    int bad = munmap(s + 1, PG);
    printf("unaligned %d %s\n", bad, strerror(errno));
    return 0;
}
