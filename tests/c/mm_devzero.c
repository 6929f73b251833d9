/* mmap of /dev/zero through fds of each access mode, and mprotect to PROT_WRITE
 * after: Linux checks the fd's mode as for a file (a shared writable map needs
 * O_RDWR, every map needs read) and clears VM_MAYWRITE of a shared map of a fd
 * not open for writing (mprotect PROT_WRITE: EACCES, LTP mprotect01).  Prints one
 * line per case: the result or errno. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void one(const char *name, int mode, int type, int prot) {
    int fd = open("/dev/zero", mode);
    if (fd < 0) { printf("%s: open %s\n", name, strerror(errno)); return; }
    long pg = sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, pg, prot, type, fd, 0);
    if (p == MAP_FAILED) {
        printf("%s: mmap %s\n", name, strerror(errno));
        close(fd);
        return;
    }
    printf("%s: mmap ok", name);
    int r = mprotect(p, pg, PROT_READ | PROT_WRITE);
    printf(", mprotect rw %s", r == 0 ? "ok" : strerror(errno));
    if (r == 0) {
        p[0] = 7;
        printf(", wrote %d", p[0]);
    }
    r = mprotect(p, pg, PROT_READ);
    printf(", mprotect r %s\n", r == 0 ? "ok" : strerror(errno));
    munmap(p, pg);
    close(fd);
}

int main(void) {
    static const struct { const char *n; int mode; } modes[] = {
        {"rdonly", O_RDONLY}, {"wronly", O_WRONLY}, {"rdwr", O_RDWR}};
    for (unsigned i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s shared r", modes[i].n);
        one(name, modes[i].mode, MAP_SHARED, PROT_READ);
        snprintf(name, sizeof name, "%s shared rw", modes[i].n);
        one(name, modes[i].mode, MAP_SHARED, PROT_READ | PROT_WRITE);
        snprintf(name, sizeof name, "%s private r", modes[i].n);
        one(name, modes[i].mode, MAP_PRIVATE, PROT_READ);
        snprintf(name, sizeof name, "%s private rw", modes[i].n);
        one(name, modes[i].mode, MAP_PRIVATE, PROT_READ | PROT_WRITE);
    }
    return 0;
}
