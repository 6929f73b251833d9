/* mm_mdwe: under prctl(PR_SET_MDWE) (memory-deny-write-execute, a host-run call
 * MM does not see) the host refuses a writable+executable mmap with EACCES; the
 * range must then be free again (MAP_FIXED_NOREPLACE maps it), as natively.
 * Prints the same lines natively and under xinim-run. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif
#define PG 4096UL

int main(void) {
    char *probe = mmap(NULL, 16 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (probe == MAP_FAILED) { perror("mmap"); return 1; }
    munmap(probe, 16 * PG);                       /* a free range to aim at */
    if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0)) {
        printf("no mdwe: %s\n", strerror(errno));
        return 0;
    }
    for (int i = 0; i < 3; i++) {
        void *p = mmap(probe + 4 * PG * i, 4 * PG, PROT_READ | PROT_WRITE | PROT_EXEC,
                       MAP_PRIVATE | MAP_ANONYMOUS | (i ? MAP_FIXED : 0), -1, 0);
        printf("rwx %d: %s\n", i, p == MAP_FAILED ? strerror(errno) : "mapped");
        void *q = mmap(probe + 4 * PG * i, 4 * PG, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        printf("free again %d: %s\n", i, q == probe + 4 * PG * i ? "yes" : strerror(errno));
        void *x = mmap(NULL, 4 * PG, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        printf("rx %d: %s\n", i, x == MAP_FAILED ? strerror(errno) : "mapped");
        printf("mprotect rw->rwx %d: %s\n", i,
               mprotect(q, 4 * PG, PROT_READ | PROT_WRITE | PROT_EXEC) ? strerror(errno) : "ok");
        munmap(x, 4 * PG);
        munmap(q, 4 * PG);
    }
    return 0;
}
