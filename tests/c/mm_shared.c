/* A ramfs file mapped MAP_SHARED, changed through the map and msynced, reads
 * back changed through a second open+read. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/tmp/shared.txt";
    char buf[8192];
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); return 1; }
    memset(buf, '.', sizeof buf);
    memcpy(buf, "original", 8);
    if (write(fd, buf, 6000) != 6000) { perror("write"); return 2; }
    char *m = mmap(NULL, 6000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) { perror("mmap"); return 3; }
    if (memcmp(m, "original", 8) != 0 || m[5999] != '.') { puts("map lacks the file"); return 4; }
    memcpy(m, "CHANGED!", 8);
    memcpy(m + 5000, "second-page", 11);
    if (msync(m, 6000, MS_SYNC) != 0) { perror("msync"); return 5; }
    int fd2 = open(path, O_RDONLY);
    if (fd2 < 0) { perror("open again"); return 6; }
    ssize_t n = read(fd2, buf, sizeof buf);
    if (n != 6000) { printf("read %zd bytes, file grew or shrank\n", n); return 7; }
    if (memcmp(buf, "CHANGED!", 8) != 0 || memcmp(buf + 5000, "second-page", 11) != 0) {
        printf("read back: %.8s / %.11s\n", buf, buf + 5000);
        return 8;
    }
    close(fd2);
    /* a change after msync, written back by munmap */
    memcpy(m + 100, "unmapped", 8);
    if (munmap(m, 6000) != 0) { perror("munmap"); return 9; }
    if (pread(fd, buf, 8, 100) != 8 || memcmp(buf, "unmapped", 8) != 0) {
        printf("munmap did not write back: %.8s\n", buf);
        return 10;
    }
    /* and one left for exit to write back */
    m = mmap(NULL, 6000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) { perror("mmap 2"); return 11; }
    close(fd);
    memcpy(m + 200, "at-exit", 7);
    printf("shared ok\n");
    fflush(stdout);
    return 0;
}
