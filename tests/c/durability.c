/* Writes and syncs files forever (or N rounds); prints "ok I" once round I is
 * on disk by the promise of the call it used.  tests/test_durability.py kills
 * the system under it at random moments and checks what survived.
 *
 *   durability DIR FIRST [ROUNDS]
 *
 * Round I:  DIR/fI  new file, pattern(I), size 1..20000; fsync / fdatasync /
 *                   syncfs / sync by I % 4
 *           DIR/log "line I\n" appended, fdatasync
 *           DIR/cur complete pattern(I) by write cur.tmp, fsync, rename, fsync(DIR)
 *           DIR/m   (every 4th round) both pages = pattern(I) through a shared
 *                   map and msync(MS_SYNC)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned char buf[20000];

static void pattern(long i, unsigned char *b, size_t n) {
    for (size_t j = 0; j < n; j++)
        b[j] = (unsigned char)(i * 31 + j * 7 + (j >> 8));
}

static size_t fsize(long i) { return (size_t)((i * 1237) % 20000) + 1; }

static void die(const char *what) {
    dprintf(2, "durability: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void write_all(int fd, const unsigned char *b, size_t n) {
    while (n) {
        ssize_t k = write(fd, b, n);
        if (k < 0) die("write");
        b += k;
        n -= (size_t)k;
    }
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *dir = argv[1];
    long first = atol(argv[2]);
    long rounds = argc > 3 ? atol(argv[3]) : 1L << 40;
    char path[512], tmp[512];
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) die("mkdir");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0) die("open dir");
    snprintf(path, sizeof path, "%s/log", dir);
    int logfd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (logfd < 0) die("open log");
    for (long i = first; i < first + rounds; i++) {
        size_t n = fsize(i);
        pattern(i, buf, n);
        snprintf(path, sizeof path, "%s/f%ld", dir, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) die("open f");
        write_all(fd, buf, n);
        int r;
        switch (i % 4) {
        case 0: r = fsync(fd); break;
        case 1: r = fdatasync(fd); break;
        case 2: r = syncfs(fd); break;
        default: sync(); r = 0; break;
        }
        if (r < 0) die("sync f");
        close(fd);

        char line[64];
        int len = snprintf(line, sizeof line, "line %ld\n", i);
        write_all(logfd, (unsigned char *)line, (size_t)len);
        if (fdatasync(logfd) < 0) die("fdatasync log");

        snprintf(tmp, sizeof tmp, "%s/cur.tmp", dir);
        snprintf(path, sizeof path, "%s/cur", dir);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) die("open cur.tmp");
        write_all(fd, buf, n);
        if (fsync(fd) < 0) die("fsync cur.tmp");
        close(fd);
        if (rename(tmp, path) < 0) die("rename");
        if (fsync(dfd) < 0) die("fsync dir");

        if (i % 4 == 0) {
            snprintf(path, sizeof path, "%s/m", dir);
            fd = open(path, O_RDWR | O_CREAT, 0644);
            if (fd < 0 || ftruncate(fd, 8192) < 0) die("open m");
            unsigned char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (m == MAP_FAILED) die("mmap");
            pattern(i, m, 4096);
            pattern(i, m + 4096, 4096);
            if (msync(m, 8192, MS_SYNC) < 0) die("msync");
            munmap(m, 8192);
            close(fd);
        }
        len = snprintf(line, sizeof line, "ok %ld\n", i);
        write_all(1, (unsigned char *)line, (size_t)len);
    }
    return 0;
}
