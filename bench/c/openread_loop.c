/* openread_loop N PATH: N times open(PATH), read 64 bytes, close -- three
 * delegated syscalls (VFS under XINIM).  Prints the loop's time in ns. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10000;
    const char *path = argc > 2 ? argv[2] : "/etc/passwd";
    char buf[64];
    long long t0 = now_ns();
    for (long i = 0; i < n; i++) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) { perror(path); return 1; }
        if (read(fd, buf, sizeof buf) < 0) { perror("read"); return 1; }
        close(fd);
    }
    long long t1 = now_ns();
    printf("%lld\n", t1 - t0);
    return 0;
}
