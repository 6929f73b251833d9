/* utime/utimes/futimesat/utimensat: which error wins (Linux fs/utimes.c).
 * The times are copied in first (EFAULT), then a NULL path with a dirfd is that
 * fd's file (flags: EINVAL), a NULL path otherwise EFAULT, "" ENOENT unless
 * AT_EMPTY_PATH; a non-owner may set "now" with write access (else EACCES) but
 * never explicit times (EPERM).
 *
 *   utimes_order DIR      -- works in DIR (chdir there; runs as root, then as nobody)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>
#include <utime.h>

static const char *err(long r) {
    if (r == 0) return "OK";
    switch (errno) {
    case EFAULT: return "EFAULT";
    case ENOENT: return "ENOENT";
    case EINVAL: return "EINVAL";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EBADF: return "EBADF";
    default: return strerror(errno);
    }
}

#define SHOW(what, call) printf("%s: %s\n", what, err(call))

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2 || chdir(argv[1]))
        return 2;
    void *bad = (void *)16;                          /* never mapped */
    struct timespec ts[2] = {{1000, 0}, {2000, 0}};
    struct timespec omit[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    struct timeval tv[2] = {{1000, 0}, {2000, 0}};
    int fd = open("mine", O_CREAT | O_WRONLY, 0644);
    if (fd < 0)
        return 3;
    close(open("roots", O_CREAT | O_WRONLY, 0644));

    SHOW("utimensat(AT_FDCWD, NULL, ts)", syscall(SYS_utimensat, AT_FDCWD, NULL, ts, 0));
    SHOW("utimensat(AT_FDCWD, \"\", NULL)", syscall(SYS_utimensat, AT_FDCWD, "", NULL, 0));
    SHOW("utimensat(AT_FDCWD, \"\", AT_EMPTY_PATH)",
         syscall(SYS_utimensat, AT_FDCWD, "", NULL, AT_EMPTY_PATH));
    SHOW("utimensat(fd, NULL, NOFOLLOW)",
         syscall(SYS_utimensat, fd, NULL, NULL, AT_SYMLINK_NOFOLLOW));
    SHOW("utimensat(fd, NULL, ts)", syscall(SYS_utimensat, fd, NULL, ts, 0));
    SHOW("utimensat(fd, \"\", ts)", syscall(SYS_utimensat, fd, "", ts, 0));
    SHOW("utimensat(bad path, omit, bad flags)",
         syscall(SYS_utimensat, AT_FDCWD, bad, omit, 0x7fff));
    SHOW("utimensat(bad path, bad times)", syscall(SYS_utimensat, AT_FDCWD, bad, bad, 0));
    SHOW("futimesat(fd, NULL, tv)", syscall(SYS_futimesat, fd, NULL, tv));
    SHOW("futimesat(AT_FDCWD, NULL, tv)", syscall(SYS_futimesat, AT_FDCWD, NULL, tv));
    SHOW("utimes(NULL, tv)", syscall(SYS_utimes, NULL, tv));
    SHOW("utimes(\"\", tv)", syscall(SYS_utimes, "", tv));
    SHOW("utime(\"\", NULL)", syscall(SYS_utime, "", NULL));
    SHOW("utime(bad path, bad times)", syscall(SYS_utime, bad, bad));
    SHOW("utime(NULL, NULL)", syscall(SYS_utime, NULL, NULL));
    struct stat st;
    fstat(fd, &st);
    printf("mine mtime %ld\n", (long)st.st_mtime);

    if (seteuid(65534))
        return 4;
    SHOW("nobody utime(roots, NULL)", syscall(SYS_utime, "roots", NULL));
    struct utimbuf ub = {1, 2};
    SHOW("nobody utime(roots, times)", syscall(SYS_utime, "roots", &ub));
    SHOW("nobody utime(roots, bad)", syscall(SYS_utime, "roots", bad));
    SHOW("nobody utimes(roots, bad)", syscall(SYS_utimes, "roots", bad));
    SHOW("nobody utimes(roots, tv)", syscall(SYS_utimes, "roots", tv));
    SHOW("nobody utimensat(roots, now)", syscall(SYS_utimensat, AT_FDCWD, "roots", NULL, 0));
    SHOW("nobody utime(\"\", NULL)", syscall(SYS_utime, "", NULL));
    return 0;
}
