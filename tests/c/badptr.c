/* Bad pointers handed to delegated syscalls: each call must fail with EFAULT
 * (never crash the program or the interceptor) and the program goes on.
 * Prints one line per case, "name: EFAULT" or "name: <what happened>", and
 * exits 0 when every case gave EFAULT. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

static int failures;

static void check(const char *name, long ret) {
    int err = errno;
    if (ret == -1 && err == EFAULT) {
        printf("%s: EFAULT\n", name);
    } else {
        printf("%s: ret=%ld errno=%s\n", name, ret, ret == -1 ? strerror(err) : "-");
        failures++;
    }
    fflush(stdout);
}

int main(void) {
    /* raw syscalls: glibc wrappers may look at the buffers themselves */
    check("open", syscall(SYS_open, (char *)1, O_RDONLY));
    check("openat", syscall(SYS_openat, AT_FDCWD, (char *)1, O_RDONLY));
    int fd = open("/etc/passwd", O_RDONLY);
    if (fd < 0) { perror("open /etc/passwd"); return 2; }
    check("read", syscall(SYS_read, fd, (void *)1, 10));
    check("stat", syscall(SYS_stat, "/etc/passwd", (void *)1));
    check("fstat", syscall(SYS_fstat, fd, (void *)1));
    check("newfstatat", syscall(SYS_newfstatat, AT_FDCWD, "/etc/passwd", (void *)1, 0));
    check("readv", syscall(SYS_readv, fd, (void *)1, 1));
    check("pipe", syscall(SYS_pipe, (void *)1));
    check("getcwd", syscall(SYS_getcwd, (void *)1, 100));
    check("chdir", syscall(SYS_chdir, (char *)1));
    check("statx", syscall(SYS_statx, AT_FDCWD, "/etc/passwd", 0, 0x7ff, (void *)1));
    check("access", syscall(SYS_access, (char *)1, F_OK));
    char small[16];
    check("readlink", syscall(SYS_readlink, (char *)1, small, sizeof small));
    check("execve", syscall(SYS_execve, (char *)1, (char **)0, (char **)0));
    int dir = open("/", O_RDONLY | O_DIRECTORY);
    check("getdents64", syscall(SYS_getdents64, dir, (void *)1, 4096));
    close(dir);
    int out = open("badptr.out", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (out < 0) { perror("open badptr.out"); return 2; }
    check("write", syscall(SYS_write, out, (void *)1, 10));
    check("pwrite64", syscall(SYS_pwrite64, out, (void *)1, 10, 0));
    check("mkdir", syscall(SYS_mkdir, (char *)1, 0755));
    check("rename", syscall(SYS_rename, "badptr.out", (char *)1));
    check("symlink", syscall(SYS_symlink, (char *)1, "badptr.link"));
    check("utimensat", syscall(SYS_utimensat, out, NULL, (void *)1, 0));
    check("poll", syscall(SYS_poll, (void *)1, 1, 0));
    if (symlink("target", "badptr.link") == 0)
        check("readlink buf", syscall(SYS_readlink, "badptr.link", (char *)1, 10));
    close(out);
    unlink("badptr.out");
    unlink("badptr.link");
    close(fd);
    /* and the program goes on: the process still works */
    fd = open("/etc/passwd", O_RDONLY);
    char buf[5];
    if (fd < 0 || read(fd, buf, 5) != 5 || memcmp(buf, "root:", 5) != 0) {
        printf("after: broken\n");
        return 3;
    }
    close(fd);
    printf("after: ok, %d failures\n", failures);
    return failures ? 1 : 0;
}
