/* mm_special: the kernel's special mappings ([vvar], [vdso]) refuse to be split:
 * MAP_FIXED over a part, munmap or mprotect of a part, a partial mremap all fail
 * with EINVAL and leave them whole -- afterwards MAP_FIXED_NOREPLACE still finds
 * them in use (EEXIST), and no mmap lands inside.  Prints the same lines natively
 * and under xinim-run. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096UL

static const char *err(long r) { return r ? strerror(errno) : "ok"; }

static int find(const char *name, unsigned long *lo, unsigned long *hi) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int found = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *n = strchr(line, '[');
        if (n && strncmp(n, name, strlen(name)) == 0) {
            sscanf(line, "%lx-%lx", lo, hi);
            found = 1;
        }
    }
    if (f) fclose(f);
    return found;
}

static void probe(const char *name) {
    unsigned long lo, hi;
    char want[32];
    snprintf(want, sizeof want, "[%s]", name);
    if (!find(want, &lo, &hi) || hi - lo < 2 * PG) {
        printf("%s: not there or one page\n", name);
        return;
    }
    void *p = mmap((void *)lo, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("%s fixed over head: %s\n", name, p == MAP_FAILED ? strerror(errno) : "mapped");
    printf("%s munmap tail: %s\n", name, err(munmap((void *)(hi - PG), PG)));
    printf("%s munmap head: %s\n", name, err(munmap((void *)lo, PG)));
    printf("%s mprotect head: %s\n", name, err(mprotect((void *)lo, PG, PROT_NONE)));
    void *q = mremap((void *)lo, PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(lo - 16 * PG));
    printf("%s mremap head away: %s\n", name, q == MAP_FAILED ? strerror(errno) : "moved");
    for (unsigned long a = lo; a < hi; a += PG) {
        void *n = mmap((void *)a, PG, PROT_READ,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        printf("%s page %lu noreplace: %s\n", name, (a - lo) / PG,
               n == MAP_FAILED ? strerror(errno) : "mapped");
        if (n != MAP_FAILED) munmap(n, PG);
    }
    unsigned long lo2, hi2;
    printf("%s whole: %d\n", name, find(want, &lo2, &hi2) && lo2 == lo && hi2 == hi);
}

int main(void) {
    probe("vvar");
    probe("vdso");
    long inside = 0;
    for (int i = 0; i < 200; i++) {         /* many maps: none inside a special one */
        char *p = mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        unsigned long lo, hi;
        if (find("[vvar]", &lo, &hi) && (unsigned long)p < hi && (unsigned long)p + 64 * PG > lo)
            inside++;
        if (find("[vdso]", &lo, &hi) && (unsigned long)p < hi && (unsigned long)p + 64 * PG > lo)
            inside++;
    }
    printf("inside %ld\n", inside);
    return 0;
}
