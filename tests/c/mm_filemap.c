/* File-backed private maps: a ramfs file the program wrote, a library loaded
 * with dlopen from a host mount and one from the ramfs (ld.so maps both). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int copy(const char *from, const char *to) {
    char buf[65536];
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    if (in < 0 || out < 0) return -1;
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n) return -1;
    close(in);
    close(out);
    return n < 0 ? -1 : 0;
}

static int call_lib(const char *path, const char *sym, int arg, int want) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) { printf("dlopen %s: %s\n", path, dlerror()); return -1; }
    int (*fn)(int) = (int (*)(int))dlsym(h, sym);
    if (!fn) { printf("dlsym %s: %s\n", sym, dlerror()); return -1; }
    int got = fn(arg);
    if (got != want) { printf("%s(%d) = %d, want %d\n", sym, arg, got, want); return -1; }
    dlclose(h);
    return 0;
}

int main(int argc, char **argv) {
    const char *libdir = argc > 1 ? argv[1] : "/t";
    char path[512], buf[3 * 4096 + 100];
    /* 1. a private map of a ramfs file */
    int fd = open("/tmp/data.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); return 1; }
    for (int i = 0; i < (int)sizeof buf; i++) buf[i] = (char)('a' + i % 26);
    if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) return 2;
    char *m = mmap(NULL, sizeof buf, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 4096);
    if (m == MAP_FAILED) { perror("mmap at offset 4096"); return 3; }
    if (memcmp(m, buf + 4096, sizeof buf - 4096) != 0) { puts("private map content"); return 4; }
    for (int i = sizeof buf - 4096; i < 3 * 4096; i++)
        if (m[i] != 0) { printf("past EOF not zero at %d\n", i); return 5; }
    m[0] = 'Z';                                /* private: the file keeps 'a'.. */
    char c;
    if (pread(fd, &c, 1, 4096) != 1 || c != buf[4096]) { puts("private write reached file"); return 6; }
    if (munmap(m, sizeof buf) != 0) return 7;
    close(fd);
    /* 2. a read-only private map of a host-mount file (this program itself) */
    fd = open(argv[0], O_RDONLY);
    if (fd < 0) { perror("open self"); return 8; }
    m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED || memcmp(m, "\177ELF", 4) != 0) { puts("self map"); return 9; }
    munmap(m, 4096);
    close(fd);
    /* 3. dlopen of a library on the host mount, and of a copy in the ramfs */
    snprintf(path, sizeof path, "%s/libmmtest.so", libdir);
    if (call_lib(path, "mmtest_triple", 14, 42) != 0) return 10;
    if (copy(path, "/tmp/libmmcopy.so") != 0) { puts("copy to ramfs"); return 11; }
    if (call_lib("/tmp/libmmcopy.so", "mmtest_triple", 5, 15) != 0) return 12;
    void *libm = dlopen("libm.so.6", RTLD_NOW);
    double (*cosine)(double) = libm ? (double (*)(double))dlsym(libm, "cos") : NULL;
    if (!cosine || cosine(0.0) != 1.0) { printf("libm: %s\n", dlerror()); return 13; }
    puts("filemap ok");
    return 0;
}
