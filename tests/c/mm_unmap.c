/* mm_unmap: munmaps of whole mappings (MM answers them in one tracer stop, the
 * trapped call itself) mixed with splits, then checks that what is gone is free
 * (MAP_FIXED_NOREPLACE gets it back) and what stays holds its data.  Prints the
 * same lines natively and under xinim-run. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096

/* mm_unmap edges N: only N rounds of the edge cuts below (6 calls a round); the
 * mapping is rwx, so that it merges with no neighbour and both cuts are at its
 * edges in MM's record too */
static int edges_only(long n) {
    long ok = 0;
    for (long i = 0; i < n; i++) {
        char *p = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE | PROT_EXEC,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { perror("mmap"); return 1; }
        p[PG] = 'x';
        if (munmap(p, PG) || munmap(p + 3 * PG, PG)) { perror("munmap edge"); return 1; }
        char *h = mmap(p, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        char *t = mmap(p + 3 * PG, PG, PROT_READ,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        ok += h == p && t == p + 3 * PG && p[PG] == 'x';
        if (munmap(p, 4 * PG)) { perror("munmap all"); return 1; }
    }
    printf("edges only %ld\n", ok);
    return 0;
}

/* mm_unmap middle N: N rounds of a munmap inside one mapping (a split in two),
 * 4 calls a round; the maps are rwx, which never take the one-stop path, so
 * their stops do not depend on the host's limits */
static int middle_only(long n) {
    long ok = 0;
    int rwx = PROT_READ | PROT_WRITE | PROT_EXEC;
    for (long i = 0; i < n; i++) {
        char *p = mmap(NULL, 3 * PG, rwx, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { perror("mmap"); return 1; }
        p[0] = 'a'; p[2 * PG] = 'b';
        if (munmap(p + PG, PG)) { perror("munmap middle"); return 1; }
        char *m = mmap(p + PG, PG, rwx, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        ok += m == p + PG && p[0] == 'a' && p[2 * PG] == 'b' && m[0] == 0;
        if (munmap(p, 3 * PG)) { perror("munmap all"); return 1; }
    }
    printf("middle only %ld\n", ok);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "edges") == 0)
        return edges_only(atol(argv[2]));
    if (argc > 2 && strcmp(argv[1], "middle") == 0)
        return middle_only(atol(argv[2]));
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
    /* cuts at a mapping's edge (one stop too: the host cannot fail them), among
     * neighbours MM merged: each loop maps next to the last, cuts the head and
     * the tail off, checks the rest kept its data and the cut pages are free */
    long edges = 0;
    char *keep[50];
    for (int i = 0; i < 50; i++) {
        char *p = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { perror("mmap edges"); return 1; }
        memset(p, 'a' + i % 26, 4 * PG);
        if (munmap(p, PG) || munmap(p + 3 * PG, PG)) { perror("munmap edge"); return 1; }
        char *h = mmap(p, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        char *t = mmap(p + 3 * PG, PG, PROT_READ,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        edges += h == p && t == p + 3 * PG && p[PG] == 'a' + i % 26 && p[3 * PG - 1] == 'a' + i % 26
                 && h[0] == 0 && t[0] == 0;
        if (munmap(h, PG) || munmap(t, PG)) { perror("munmap h/t"); return 1; }
        keep[i] = p + PG;
    }
    /* and across two kept ranges: the end of one, all of a gap, the start of
     * the next (an edge of each) */
    long across = 0;
    for (int i = 0; i + 1 < 50; i += 2) {
        char *lo = keep[i] < keep[i + 1] ? keep[i] : keep[i + 1];
        char *hi = lo == keep[i] ? keep[i + 1] : keep[i];
        across += munmap(lo + PG, (size_t)(hi - lo)) == 0 && lo[0] != 0 && hi[PG] != 0;
        char *f = mmap(lo + PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
                       -1, 0);
        across += f == lo + PG;
        munmap(lo, 2 * PG);
        munmap(hi, 2 * PG);
    }
    printf("edges %ld across %ld\n", edges, across);
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
