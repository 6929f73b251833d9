/* getppid_loop N: N getppid() calls, one delegated syscall each (PM under XINIM).
 * Prints the loop's own time in ns, measured inside the program. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);   /* vDSO: no syscall */
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    long sum = 0;
    long long t0 = now_ns();
    for (long i = 0; i < n; i++)
        sum += syscall(SYS_getppid);      /* no glibc caching */
    long long t1 = now_ns();
    printf("%lld %d\n", t1 - t0, sum > 0);
    return 0;
}
