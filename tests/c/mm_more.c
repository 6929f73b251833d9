/* More of issue 6 under XINIM: fork sharing MAP_SHARED anonymous memory and
 * copying private memory, mremap grow/move, madvise(DONTNEED), threads that map
 * and unmap concurrently, a child writing a shared file map, brk shrink; with
 * argument "exec": a shared file map written back when the program execs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(cond, ...) do { if (!(cond)) { printf("FAIL %d: ", __LINE__); printf(__VA_ARGS__); \
    printf("\n"); fflush(stdout); exit(1); } } while (0)

static void *worker(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < 200; i++) {
        size_t len = 4096 * (1 + (i + id) % 7);
        char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return (void *)1;
        memset(m, (int)id, len);
        for (size_t j = 0; j < len; j += 4096) if (m[j] != (char)id) return (void *)2;
        if (munmap(m, len) != 0) return (void *)3;
    }
    return NULL;
}

int main(int argc, char **argv) {
    int do_exec = argc > 1 && strcmp(argv[1], "exec") == 0;
    /* fork: shared anonymous memory is shared, private memory is copied */
    int *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int *priv = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(shared != MAP_FAILED && priv != MAP_FAILED, "maps");
    *shared = 1; *priv = 1;
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) { *shared = 42; *priv = 42; _exit(0); }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status), "wait");
    CHECK(*shared == 42, "shared anon after fork: %d", *shared);
    CHECK(*priv == 1, "private after fork: %d", *priv);

    /* mremap: grow in place or move, contents kept */
    size_t len = 16 * 4096;
    char *r = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(r != MAP_FAILED, "mmap r");
    for (size_t i = 0; i < len; i += 4096) r[i] = (char)(i / 4096);
    char *blocker = mmap(r + len, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    char *r2 = mremap(r, len, 64 * 4096, MREMAP_MAYMOVE);
    CHECK(r2 != MAP_FAILED, "mremap: %s", strerror(errno));
    for (size_t i = 0; i < len; i += 4096) CHECK(r2[i] == (char)(i / 4096), "mremap content at %zu", i);
    r2[63 * 4096] = 7;
    CHECK(mremap(r2, 64 * 4096, 8 * 4096, 0) == r2, "shrink");
    if (blocker != MAP_FAILED) munmap(blocker, 4096);
    munmap(r2, 8 * 4096);

    /* madvise(DONTNEED) on private anonymous memory reads back zero */
    char *d = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(d, 9, 8192);
    CHECK(madvise(d, 8192, MADV_DONTNEED) == 0, "madvise");
    CHECK(d[0] == 0 && d[8191] == 0, "DONTNEED kept data");
    munmap(d, 8192);

    /* threads mapping and unmapping at once */
    pthread_t t[4];
    for (long i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, worker, (void *)(i + 1)) == 0, "thread");
    for (int i = 0; i < 4; i++) { void *ret; pthread_join(t[i], &ret); CHECK(ret == NULL, "worker %d: %ld", i, (long)ret); }

    /* a child writes a shared file map; it is written back when the child exits */
    int fd = open("/tmp/child.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0, "open");
    CHECK(ftruncate(fd, 4096) == 0, "ftruncate");
    char *fm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(fm != MAP_FAILED, "file map");
    pid = fork();
    if (pid == 0) { memcpy(fm, "from-child", 10); _exit(0); }
    CHECK(waitpid(pid, &status, 0) == pid, "wait 2");
    CHECK(memcmp(fm, "from-child", 10) == 0, "shared file map not shared with the child");
    char buf[16] = {0};
    CHECK(pread(fd, buf, 10, 0) == 10 && memcmp(buf, "from-child", 10) == 0,
          "child's shared map not written back: '%s'", buf);
    munmap(fm, 4096);
    close(fd);

    /* brk grows and shrinks */
    char *b0 = sbrk(0);
    CHECK(sbrk(1 << 20) == b0, "sbrk grow");
    memset(b0, 1, 1 << 20);
    CHECK(sbrk(-(1 << 20)) != (void *)-1 && sbrk(0) == b0, "sbrk shrink");

    if (!do_exec) { printf("more ok\n"); return 0; }
    /* exec keeps nothing: a shared file map made just before exec reaches the file */
    fd = open("/tmp/exec.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && ftruncate(fd, 4096) == 0, "exec file");
    fm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(fm != MAP_FAILED, "exec map");
    memcpy(fm, "before-exec", 11);
    printf("exec now\n");
    fflush(stdout);
    execl("/bin/sh", "sh", "-c", "head -c 11 /tmp/exec.txt; echo", (char *)NULL);
    printf("exec failed: %s\n", strerror(errno));
    return 1;
}
