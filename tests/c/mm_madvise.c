/* madvise advice XINIM must judge itself: MADV_WIPEONFORK of a private file map
 * (EINVAL on Linux; the host's map of it may be anonymous and take it) and of
 * anonymous memory (allowed, and the child sees zeros), MADV_MERGEABLE (EINVAL
 * where the system shows no /sys/kernel/mm/ksm, as a kernel without CONFIG_KSM).
 * The file is argv[1] (created), in a directory of the system under test. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

static const char *res(int r) { return r == 0 ? "ok" : strerror(errno); }

int main(int argc, char **argv) {
    long pg = sysconf(_SC_PAGESIZE);
    if (argc < 2)
        return 2;
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, 2 * pg) < 0) {
        perror("file");
        return 1;
    }
    char *file = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    char *anon = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *shared = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (file == MAP_FAILED || anon == MAP_FAILED || shared == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    printf("wipeonfork private file: %s\n", res(madvise(file, 2 * pg, MADV_WIPEONFORK)));
    printf("wipeonfork shared anon: %s\n", res(madvise(shared, pg, MADV_WIPEONFORK)));
    anon[0] = 5;
    printf("wipeonfork private anon: %s\n", res(madvise(anon, pg, MADV_WIPEONFORK)));
    pid_t child = fork();
    if (child == 0)
        _exit(anon[0]);
    int st = 0;
    waitpid(child, &st, 0);
    printf("child saw %d, parent %d\n", WEXITSTATUS(st), anon[0]);
    int ksm = access("/sys/kernel/mm/ksm", F_OK) == 0;
    int r = madvise(anon, pg, MADV_MERGEABLE);
    /* with KSM either answer is the kernel's; without it Linux says EINVAL */
    printf("mergeable: %s\n", ksm ? "ksm" : res(r));
    r = madvise(anon, pg, MADV_UNMERGEABLE);
    printf("unmergeable: %s\n", ksm ? "ksm" : res(r));
    unlink(argv[1]);
    return 0;
}
