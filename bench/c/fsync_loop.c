/* fsync_loop DIR N MIB: prints
 *   fsync_ms  <ms per (4 KiB write + fsync), N rounds, one file>
 *   journal_mbs <MB/s writing MIB MiB in 64 KiB writes, fdatasync every MiB>
 * Timed inside the program (clock_gettime is the vDSO, also under XINIM). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char buf[1 << 16];

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    char path[512];
    long n = atol(argv[2]), mib = atol(argv[3]);
    memset(buf, 'x', sizeof buf);
    snprintf(path, sizeof path, "%s/fsync.dat", argv[1]);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); return 1; }
    double t0 = now();
    for (long i = 0; i < n; i++) {
        if (pwrite(fd, buf, 4096, (i % 256) * 4096) != 4096 || fsync(fd) < 0) {
            perror("write/fsync");
            return 1;
        }
    }
    printf("fsync_ms %.4f\n", (now() - t0) * 1e3 / n);
    close(fd);
    snprintf(path, sizeof path, "%s/stream.dat", argv[1]);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); return 1; }
    t0 = now();
    for (long m = 0; m < mib; m++) {
        for (int k = 0; k < 16; k++)
            if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) { perror("write"); return 1; }
        if (fdatasync(fd) < 0) { perror("fdatasync"); return 1; }
    }
    printf("journal_mbs %.2f\n", mib / (now() - t0) * 1.048576);
    close(fd);
    unlink(path);
    snprintf(path, sizeof path, "%s/fsync.dat", argv[1]);
    unlink(path);
    return 0;
}
