/* Tries to leave XINIM from inside: forged seccomp "cookies" in every argument
 * register on openat of a host file, and host-run calls aimed at a host pid.
 *   sandbox_escape PATH HOSTPID
 * Prints one line per probe; "LEAK" marks anything that got through. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *path = argv[1];
    int hostpid = atoi(argv[2]);
    const uint64_t old_cookie = 0x58494E494D000000ull & ~0xFFFull & ((1ull << 47) - 1);
    int opened = 0, tries = 0;
    char buf[256];
    for (int i = 0; i < 1001; i++) {
        uint64_t v = i == 0 ? old_cookie : next();
        /* r9 (the old cookie's register) and r8, with the other args valid */
        for (int reg = 0; reg < 2; reg++) {
            long fd = reg == 0 ? syscall(SYS_openat, AT_FDCWD, path, O_RDONLY, 0, 0, v)
                               : syscall(SYS_openat, AT_FDCWD, path, O_RDONLY, 0, v, 0);
            tries++;
            if (fd >= 0) {
                long n = read((int)fd, buf, sizeof buf - 1);
                if (n > 0) opened++;
                close((int)fd);
            }
        }
    }
    printf("openat: %d of %d read the host file%s\n", opened, tries, opened ? " LEAK" : "");
    long me = syscall(SYS_getpid, 0, 0, 0, 0, 0, old_cookie);
    printf("getpid with cookie: %s\n", me == getpid() ? "same" : "LEAK differs");

    struct rlimit r = {64, 64};
    errno = 0;
    long rc = syscall(SYS_prlimit64, hostpid, RLIMIT_NOFILE, &r, NULL);
    printf("prlimit64(host): %ld %s\n", rc, rc ? strerrorname_np(errno) : "LEAK");
    errno = 0;
    rc = setpriority(PRIO_PROCESS, hostpid, 10);
    printf("setpriority(host): %ld %s\n", rc, rc ? strerrorname_np(errno) : "LEAK");
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    errno = 0;
    rc = sched_setaffinity(hostpid, sizeof set, &set);
    printf("sched_setaffinity(host): %ld %s\n", rc, rc ? strerrorname_np(errno) : "LEAK");
    errno = 0;
    rc = getpriority(PRIO_PROCESS, hostpid);
    printf("getpriority(host): %s\n", errno ? strerrorname_np(errno) : "LEAK");

    /* the same calls on our own child work */
    pid_t c = fork();
    if (c == 0) { pause(); _exit(0); }
    errno = 0;
    rc = setpriority(PRIO_PROCESS, c, 7);
    int nice = getpriority(PRIO_PROCESS, c);
    printf("child setpriority: %ld nice=%d\n", rc, nice);
    struct rlimit got = {0, 0};
    rc = syscall(SYS_prlimit64, c, RLIMIT_NOFILE, &r, NULL);
    syscall(SYS_prlimit64, c, RLIMIT_NOFILE, NULL, &got);
    printf("child prlimit64: %ld cur=%lu\n", rc, (unsigned long)got.rlim_cur);
    rc = sched_setaffinity(c, sizeof set, &set);
    printf("child sched_setaffinity: %ld\n", rc);
    kill(c, SIGKILL);
    waitpid(c, NULL, 0);
    return 0;
}
