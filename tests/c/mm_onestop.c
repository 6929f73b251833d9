/* mm_onestop: the memory calls the kernel answers in one tracer stop (the
 * trapped call turned into MM's host call, no exit stop: anonymous maps,
 * mprotect to read-only or none) next to ones the host refuses (RLIMIT_AS,
 * which makes the kernel wait for the host's answer again).  Prints the same
 * lines natively and under xinim-run; /proc/self/maps is MM's record there. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define PG 4096

/* perms of the map holding addr in /proc/self/maps, "" if none */
static const char *perms_at(void *addr, char out[5]) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    out[0] = 0;
    if (!f) return out;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char p[5];
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) == 3 &&
            lo <= (unsigned long)addr && (unsigned long)addr < hi) {
            memcpy(out, p, 5);
            break;
        }
    }
    fclose(f);
    return out;
}

int main(void) {
    char perms[5];
    long fine = 0;
    for (int i = 0; i < 200; i++) {
        char *p = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) { perror("mmap"); return 1; }
        memset(p, 'x', 4 * PG);
        if (mprotect(p + PG, PG, PROT_READ) || mprotect(p + 2 * PG, PG, PROT_NONE)) {
            perror("mprotect"); return 1;
        }
        fine += p[PG] == 'x' && p[3 * PG] == 'x';
        if (i == 0) {
            char none[5];
            perms_at(p + PG, perms);
            printf("perms %s %s\n", perms, perms_at(p + 2 * PG, none));
        }
        if (munmap(p, 4 * PG)) { perror("munmap"); return 1; }
    }
    printf("maps %ld\n", fine);
    char *s = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    printf("shared %d %s\n", s != MAP_FAILED, perms_at(s, perms));

    /* unmapped inside the range: ENOMEM, nothing changed */
    char *h = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(h + PG, PG);
    errno = 0;
    int r = mprotect(h, 3 * PG, PROT_READ);
    int e = errno;
    /* (Linux has changed the first page by then; MM changes nothing: not compared) */
    printf("hole %d %s %s\n", r, strerror(e), perms_at(h + 2 * PG, perms));

    /* the host refuses (address-space limit): the program sees ENOMEM and the
     * record has no such map (the same address is free again afterwards) */
    struct rlimit old, tight;
    getrlimit(RLIMIT_AS, &old);
    tight.rlim_cur = 1UL << 30;
    tight.rlim_max = old.rlim_max;
    if (setrlimit(RLIMIT_AS, &tight)) { perror("setrlimit"); return 1; }
    errno = 0;
    char *big = mmap(NULL, 2UL << 30, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    e = errno;
    printf("over the limit %d %s\n", big == MAP_FAILED, strerror(e));
    setrlimit(RLIMIT_AS, &old);
    char *after = mmap(NULL, 2UL << 30, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    printf("then %d %s\n", after != MAP_FAILED, perms_at(after, perms));
    return 0;
}
