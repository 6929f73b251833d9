/* mlock2 (host-run as mlock is): plain, MLOCK_ONFAULT, an unknown flag (EINVAL),
 * an unmapped range (ENOMEM); then a map next to the locked page still works. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *res(long r) { return r == 0 ? "ok" : strerror(errno); }

int main(void) {
    long pg = sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 1;
    printf("mlock2 0: %s\n", res(syscall(SYS_mlock2, p, pg, 0)));
    printf("mlock2 onfault: %s\n", res(syscall(SYS_mlock2, p + pg, 2 * pg, 1)));
    printf("mlock2 bad flag: %s\n", res(syscall(SYS_mlock2, p, pg, 0x100)));
    munmap(p + 3 * pg, pg);
    printf("mlock2 unmapped: %s\n", res(syscall(SYS_mlock2, p + 3 * pg, pg, 0)));
    p[0] = p[pg] = 1;
    printf("munlock: %s\n", res(munlock(p, 3 * pg)));
    char *q = mmap(p + 3 * pg, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("map after: %s\n", q == p + 3 * pg ? "ok" : strerror(errno));
    return 0;
}
