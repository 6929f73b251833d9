/* Bad arguments to common syscalls: each case prints one line, "name: <result>",
 * where the result is the return value (a count, 0, "fd" for a new descriptor)
 * or the errno's name.  Run natively and under xinim-run in an empty scratch
 * directory (argv[1]); the two outputs must be the same line for line.
 *
 * Only what does not depend on where it ran is printed: no inode numbers, no
 * descriptor numbers, no pids, no times.  Raw syscall(2) everywhere: glibc's
 * wrappers look at some arguments themselves. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KADDR ((void *)0xffff800000000000UL)
#define BAD ((void *)1)

static int cases;

static void show(const char *name, long ret, int is_fd) {
    int err = errno;
    cases++;
    if (ret < 0)
        printf("%s: %s\n", name, strerrorname_np(err) ? strerrorname_np(err) : "E?");
    else if (is_fd) {
        printf("%s: fd\n", name);
        if (ret > 2)
            close((int)ret);
    } else
        printf("%s: %ld\n", name, ret);
    fflush(stdout);
}

#define T(name, expr) do { errno = 0; show(name, (long)(expr), 0); } while (0)
#define TFD(name, expr) do { errno = 0; show(name, (long)(expr), 1); } while (0)
#define S(...) syscall(__VA_ARGS__)
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

static char buf[8192];
static char longname[300];
static char longpath[5000];

int main(int argc, char **argv) {
    if (argc > 1)
        mkdir(argv[1], 0755);           /* a fresh one: the probe makes its files there */
    if (argc > 1 && chdir(argv[1]) != 0) { perror("chdir"); return 2; }
    umask(022);
    memset(longname, 'n', sizeof longname - 1);
    for (size_t i = 0; i < sizeof longpath - 1; i++)
        longpath[i] = i % 100 == 99 ? '/' : 'p';
    char *page = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(page + 2 * 4096, 4096);
    char *hole = page + 2 * 4096;                 /* unmapped */
    char *ro = page + 4096;                       /* read-only */
    memset(page, 'x', 2 * 4096);
    mprotect(ro, 4096, PROT_READ);

    int fd = open("f", O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0) { perror("open f"); return 2; }
    memset(buf, 'a', 100);
    if (write(fd, buf, 100) != 100) { perror("write f"); return 2; }
    int rdonly = open("f", O_RDONLY);
    int wronly = open("f", O_WRONLY);
    mkdir("d", 0755);
    mkdir("full", 0755);
    close(open("full/x", O_CREAT | O_WRONLY, 0644));
    symlink("f", "l");
    int dir = open("d", O_RDONLY | O_DIRECTORY);
    int path = open("f", O_PATH);
    int pfd[2];
    if (pipe(pfd)) { perror("pipe"); return 2; }
    if (write(pfd[1], "p", 1) != 1) return 2;     /* the read end is ready */

    /* --- read -------------------------------------------------------------- */
    T("read badfd", S(SYS_read, -1, buf, 10));
    T("read fd 9999", S(SYS_read, 9999, buf, 10));
    T("read NULL", S(SYS_read, rdonly, NULL, 10));
    T("read ptr 1", S(SYS_read, rdonly, BAD, 10));
    T("read kaddr", S(SYS_read, rdonly, KADDR, 10));
    T("read hole", S(SYS_read, rdonly, hole, 10));
    T("read ro page", S(SYS_read, rdonly, ro, 10));
    T("read NULL count 0", S(SYS_read, rdonly, NULL, 0));
    T("read SIZE_MAX", S(SYS_read, rdonly, buf, SIZE_MAX));
    T("read SSIZE_MAX+1", S(SYS_read, rdonly, buf, (size_t)SSIZE_MAX + 1));
    lseek(rdonly, 0, SEEK_SET);
    T("read count 1<<40", S(SYS_read, rdonly, buf, 1UL << 40));
    lseek(rdonly, 0, SEEK_SET);
    T("read into edge", S(SYS_read, rdonly, hole - 10, 100));
    T("read wronly", S(SYS_read, wronly, buf, 10));
    T("read dir", S(SYS_read, dir, buf, 10));
    T("read O_PATH", S(SYS_read, path, buf, 10));

    /* --- write ------------------------------------------------------------- */
    T("write badfd", S(SYS_write, -1, buf, 10));
    T("write NULL", S(SYS_write, wronly, NULL, 10));
    T("write ptr 1", S(SYS_write, wronly, BAD, 10));
    T("write kaddr", S(SYS_write, wronly, KADDR, 10));
    T("write hole", S(SYS_write, wronly, hole, 10));
    T("write NULL count 0", S(SYS_write, wronly, NULL, 0));
    T("write SIZE_MAX", S(SYS_write, wronly, buf, SIZE_MAX));
    T("write SSIZE_MAX+1", S(SYS_write, wronly, buf, (size_t)SSIZE_MAX + 1));
    T("write 1<<46 from stack", S(SYS_write, wronly, (char *)&argc, 1UL << 46));
    T("write from edge", S(SYS_write, wronly, hole - 10, 100));
    T("write rdonly", S(SYS_write, rdonly, buf, 10));
    T("write dir", S(SYS_write, dir, buf, 10));
    T("write O_PATH", S(SYS_write, path, buf, 10));

    /* --- pread / pwrite ---------------------------------------------------- */
    T("pread SIZE_MAX", S(SYS_pread64, rdonly, buf, SIZE_MAX, 0));
    T("pread neg offset", S(SYS_pread64, rdonly, buf, 10, -1L));
    T("pread badfd neg offset", S(SYS_pread64, -1, buf, 10, -1L));
    T("pread count 0 neg offset", S(SYS_pread64, rdonly, buf, 0, -5L));
    T("pread NULL", S(SYS_pread64, rdonly, NULL, 10, 0));
    T("pread pipe", S(SYS_pread64, pfd[0], buf, 10, 0));
    T("pread past end", S(SYS_pread64, rdonly, buf, 10, 1L << 40));
    T("pread dir", S(SYS_pread64, dir, buf, 10, 0));
    T("pread into edge", S(SYS_pread64, rdonly, hole - 7, 50, 0));
    T("pwrite SIZE_MAX", S(SYS_pwrite64, wronly, buf, SIZE_MAX, 0));
    T("pwrite neg offset", S(SYS_pwrite64, wronly, buf, 10, -1L));
    T("pwrite pipe", S(SYS_pwrite64, pfd[1], buf, 1, 0));
    T("pwrite NULL", S(SYS_pwrite64, wronly, NULL, 10, 0));
    T("pwrite rdonly", S(SYS_pwrite64, rdonly, buf, 10, 0));

    /* --- readv / writev ---------------------------------------------------- */
    struct iovec iov[4];
    iov[0].iov_base = buf; iov[0].iov_len = 10;
    iov[1].iov_base = NULL; iov[1].iov_len = 10;
    T("readv cnt -1", S(SYS_readv, rdonly, iov, -1));
    T("readv cnt 1025", S(SYS_readv, rdonly, iov, 1025));
    T("readv cnt 0", S(SYS_readv, rdonly, iov, 0));
    T("readv iov NULL", S(SYS_readv, rdonly, NULL, 1));
    T("readv iov hole", S(SYS_readv, rdonly, hole, 1));
    T("readv badfd", S(SYS_readv, -1, iov, 1));
    lseek(rdonly, 0, SEEK_SET);
    T("readv 2nd base NULL", S(SYS_readv, rdonly, iov, 2));
    lseek(rdonly, 0, SEEK_SET);
    iov[0].iov_base = NULL;
    T("readv base NULL", S(SYS_readv, rdonly, iov, 1));
    iov[0].iov_base = buf; iov[0].iov_len = SIZE_MAX;
    T("readv len SIZE_MAX", S(SYS_readv, rdonly, iov, 1));
    iov[0].iov_len = (size_t)SSIZE_MAX / 2 + 1; iov[1].iov_base = buf;
    iov[1].iov_len = (size_t)SSIZE_MAX / 2 + 1;
    T("readv total > SSIZE_MAX", S(SYS_readv, rdonly, iov, 2));
    iov[0].iov_len = 10; iov[1].iov_len = 10; iov[1].iov_base = NULL;
    T("writev 2nd base NULL", S(SYS_writev, wronly, iov, 2));
    T("writev cnt -1", S(SYS_writev, wronly, iov, -1));
    T("writev cnt 1025", S(SYS_writev, wronly, iov, 1025));
    T("writev iov NULL", S(SYS_writev, wronly, NULL, 1));
    iov[0].iov_len = SIZE_MAX;
    T("writev len SIZE_MAX", S(SYS_writev, wronly, iov, 1));
    iov[0].iov_len = 10;
    T("writev rdonly", S(SYS_writev, rdonly, iov, 1));
    T("preadv neg offset", S(SYS_preadv, rdonly, iov, 1, -1L, 0));
    T("pwritev neg offset", S(SYS_pwritev, wronly, iov, 1, -1L, 0));
    T("preadv cnt 1025", S(SYS_preadv, rdonly, iov, 1025, 0, 0));

    /* --- lseek ------------------------------------------------------------- */
    T("lseek whence 5", S(SYS_lseek, rdonly, 0, 5));
    T("lseek whence -1", S(SYS_lseek, rdonly, 0, -1));
    T("lseek whence 100", S(SYS_lseek, rdonly, 0, 100));
    T("lseek set -1", S(SYS_lseek, rdonly, -1L, SEEK_SET));
    T("lseek cur -1000", S(SYS_lseek, rdonly, -1000L, SEEK_CUR));
    T("lseek end 0", S(SYS_lseek, rdonly, 0, SEEK_END));
    T("lseek end -200", S(SYS_lseek, rdonly, -200L, SEEK_END));
    T("lseek pipe", S(SYS_lseek, pfd[0], 0, SEEK_SET));
    T("lseek badfd", S(SYS_lseek, -1, 0, SEEK_SET));
    T("lseek dir", S(SYS_lseek, dir, 0, SEEK_SET));
    lseek(rdonly, 0, SEEK_SET);

    /* --- the stat family --------------------------------------------------- */
    struct stat st;
    char stx[512];
    T("stat NULL path", S(SYS_stat, NULL, &st));
    T("stat empty", S(SYS_stat, "", &st));
    T("stat missing", S(SYS_stat, "missing", &st));
    T("stat file/x", S(SYS_stat, "f/x", &st));
    T("stat long name", S(SYS_stat, longname, &st));
    T("stat long path", S(SYS_stat, longpath, &st));
    T("stat buf NULL", S(SYS_stat, "f", NULL));
    T("stat buf ro", S(SYS_stat, "f", ro));
    T("lstat buf NULL", S(SYS_lstat, "l", NULL));
    T("fstat badfd", S(SYS_fstat, -1, &st));
    T("fstat buf NULL", S(SYS_fstat, fd, NULL));
    T("newfstatat flag 1", S(SYS_newfstatat, AT_FDCWD, "f", &st, 1));
    T("newfstatat flag 0x80000000", S(SYS_newfstatat, AT_FDCWD, "f", &st, 0x80000000));
    T("newfstatat flag 0x2000", S(SYS_newfstatat, AT_FDCWD, "f", &st, 0x2000));
    T("newfstatat flag 0x800", S(SYS_newfstatat, AT_FDCWD, "f", &st, AT_NO_AUTOMOUNT));
    T("newfstatat empty no flag", S(SYS_newfstatat, fd, "", &st, 0));
    T("newfstatat empty path", S(SYS_newfstatat, fd, "", &st, AT_EMPTY_PATH));
    T("newfstatat empty cwd", S(SYS_newfstatat, AT_FDCWD, "", &st, AT_EMPTY_PATH));
    T("newfstatat bad dirfd", S(SYS_newfstatat, 999, "f", &st, 0));
    T("newfstatat neg dirfd", S(SYS_newfstatat, -5, "f", &st, 0));
    T("newfstatat bad dirfd abs", S(SYS_newfstatat, 999, "/", &st, 0));
    T("newfstatat file dirfd", S(SYS_newfstatat, fd, "x", &st, 0));
    T("newfstatat NULL path", S(SYS_newfstatat, AT_FDCWD, NULL, &st, 0));
    T("statx flag 1", S(SYS_statx, AT_FDCWD, "f", 1, 0x7ff, stx));
    T("statx flag 0x80000000", S(SYS_statx, AT_FDCWD, "f", 0x80000000, 0x7ff, stx));
    T("statx sync both", S(SYS_statx, AT_FDCWD, "f", 0x6000, 0x7ff, stx));
    T("statx sync force", S(SYS_statx, AT_FDCWD, "f", 0x2000, 0x7ff, stx));
    T("statx mask reserved", S(SYS_statx, AT_FDCWD, "f", 0, 0x80000000U, stx));
    T("statx buf NULL", S(SYS_statx, AT_FDCWD, "f", 0, 0x7ff, NULL));
    T("statx bad dirfd", S(SYS_statx, 999, "f", 0, 0x7ff, stx));
    T("statx missing", S(SYS_statx, AT_FDCWD, "missing", 0, 0x7ff, stx));
    T("statx empty path", S(SYS_statx, fd, "", AT_EMPTY_PATH, 0x7ff, stx));
    T("statx NULL path", S(SYS_statx, AT_FDCWD, NULL, 0, 0x7ff, stx));

    /* --- open -------------------------------------------------------------- */
    TFD("open flags -1 missing", S(SYS_open, "missing", -1, 0644));
    TFD("open flags -1 existing", S(SYS_open, "f", -1, 0644));
    TFD("open flags -1 dir", S(SYS_open, "d", -1, 0644));
    TFD("open accmode 3", S(SYS_open, "f", 3));
    TFD("open creat|directory", S(SYS_open, "newdir", O_CREAT | O_DIRECTORY, 0644));
    TFD("open tmpfile rdonly", S(SYS_open, "d", O_TMPFILE | O_RDONLY, 0644));
    TFD("open NULL", S(SYS_open, NULL, O_RDONLY));
    TFD("open empty", S(SYS_open, "", O_RDONLY));
    TFD("open long name", S(SYS_open, longname, O_RDONLY));
    TFD("open dir wronly", S(SYS_open, "d", O_WRONLY));
    TFD("open file O_DIRECTORY", S(SYS_open, "f", O_RDONLY | O_DIRECTORY));
    TFD("open f/", S(SYS_open, "f/", O_RDONLY));
    TFD("open excl existing", S(SYS_open, "f", O_CREAT | O_EXCL | O_WRONLY, 0644));
    TFD("open nofollow link", S(SYS_open, "l", O_RDONLY | O_NOFOLLOW));
    TFD("open mode -1", S(SYS_open, "m1", O_CREAT | O_WRONLY, -1));
    TFD("openat bad dirfd", S(SYS_openat, 999, "f", O_RDONLY));
    TFD("openat neg dirfd", S(SYS_openat, -5, "f", O_RDONLY));
    TFD("openat file dirfd", S(SYS_openat, fd, "x", O_RDONLY));
    TFD("openat bad dirfd abs", S(SYS_openat, 999, "/", O_RDONLY));
    TFD("openat flags -1 missing", S(SYS_openat, AT_FDCWD, "missing", -1, 0));
    TFD("creat dir", S(SYS_creat, "d", 0644));

    /* --- access ------------------------------------------------------------ */
    T("access mode 8", S(SYS_access, "f", 8));
    T("access mode -1", S(SYS_access, "f", -1));
    T("access NULL", S(SYS_access, NULL, F_OK));
    T("access missing", S(SYS_access, "missing", F_OK));
    T("access rwx", S(SYS_access, "f", 7));
    T("faccessat bad dirfd", S(SYS_faccessat, 999, "f", F_OK));
    T("faccessat mode 8", S(SYS_faccessat, AT_FDCWD, "f", 8));
    T("faccessat2 flag 1", S(SYS_faccessat2, AT_FDCWD, "f", F_OK, 1));
    T("faccessat2 flag 0x8000", S(SYS_faccessat2, AT_FDCWD, "f", F_OK, 0x8000));
    T("faccessat2 empty path", S(SYS_faccessat2, fd, "", F_OK, AT_EMPTY_PATH));

    /* --- fcntl ------------------------------------------------------------- */
    T("fcntl cmd 9999", S(SYS_fcntl, fd, 9999, 0));
    T("fcntl cmd -1", S(SYS_fcntl, fd, -1, 0));
    T("fcntl badfd", S(SYS_fcntl, -1, F_GETFD));
    T("fcntl dupfd -1", S(SYS_fcntl, fd, F_DUPFD, -1));
    T("fcntl dupfd 1<<20", S(SYS_fcntl, fd, F_DUPFD, 1 << 20));
    T("fcntl dupfd_cloexec -1", S(SYS_fcntl, fd, F_DUPFD_CLOEXEC, -1));
    T("fcntl getlk NULL", S(SYS_fcntl, fd, F_GETLK, NULL));
    struct flock fl = {.l_type = 99, .l_whence = SEEK_SET};
    T("fcntl setlk bad type", S(SYS_fcntl, fd, F_SETLK, &fl));
    fl.l_type = F_RDLCK; fl.l_whence = 7;
    T("fcntl setlk bad whence", S(SYS_fcntl, fd, F_SETLK, &fl));
    fl.l_type = F_WRLCK; fl.l_whence = SEEK_SET;
    T("fcntl setlk wrlck rdonly", S(SYS_fcntl, rdonly, F_SETLK, &fl));
    T("fcntl getfl", S(SYS_fcntl, rdonly, F_GETFL));
    T("fcntl getfd", S(SYS_fcntl, rdonly, F_GETFD));
    T("fcntl setfd 0xff", S(SYS_fcntl, rdonly, F_SETFD, 0xff));
    T("fcntl getpipe_sz file", S(SYS_fcntl, fd, F_GETPIPE_SZ));
    T("fcntl get_seals file", S(SYS_fcntl, fd, F_GET_SEALS));
    T("fcntl getown", S(SYS_fcntl, fd, F_GETOWN));

    /* --- dup, dup2, dup3, pipe2 ------------------------------------------- */
    TFD("dup -1", S(SYS_dup, -1));
    TFD("dup 9999", S(SYS_dup, 9999));
    TFD("dup2 newfd -1", S(SYS_dup2, fd, -1));
    TFD("dup2 newfd 1<<20", S(SYS_dup2, fd, 1 << 20));
    T("dup2 same fd", S(SYS_dup2, fd, fd) == fd);
    TFD("dup2 bad oldfd", S(SYS_dup2, -1, 50));
    TFD("dup2 bad oldfd same", S(SYS_dup2, 60, 60));
    TFD("dup3 flag 1", S(SYS_dup3, fd, 50, 1));
    TFD("dup3 same fd", S(SYS_dup3, fd, fd, 0));
    TFD("dup3 cloexec", S(SYS_dup3, fd, 50, O_CLOEXEC));
    TFD("dup3 newfd -1", S(SYS_dup3, fd, -1, 0));
    int p2[2];
    T("pipe2 flag 1", S(SYS_pipe2, p2, 1));
    T("pipe2 flag -1", S(SYS_pipe2, p2, -1));
    T("pipe2 NULL", S(SYS_pipe2, NULL, 0));
    T("pipe2 ptr 1", S(SYS_pipe2, BAD, 0));
    T("pipe2 ro", S(SYS_pipe2, ro, 0));
    if (S(SYS_pipe2, p2, O_NONBLOCK | O_CLOEXEC) == 0) {
        T("pipe2 nonblock read empty", S(SYS_read, p2[0], buf, 10));
        close(p2[0]);
        close(p2[1]);
    }
    T("pipe NULL", S(SYS_pipe, NULL));

    /* --- getcwd (at /), readlink ------------------------------------------ */
    S(SYS_chdir, "/");
    T("getcwd size 0", S(SYS_getcwd, buf, 0));
    T("getcwd size 1", S(SYS_getcwd, buf, 1));
    T("getcwd size 2", S(SYS_getcwd, buf, 2));
    T("getcwd NULL", S(SYS_getcwd, NULL, 100));
    T("getcwd SIZE_MAX", S(SYS_getcwd, buf, SIZE_MAX));
    T("getcwd ro", S(SYS_getcwd, ro, 100));
    S(SYS_fchdir, dir);
    S(SYS_chdir, "..");
    T("readlink size 0", S(SYS_readlink, "l", buf, 0));
    T("readlink size -1", S(SYS_readlink, "l", buf, -1));
    T("readlink size 1<<32", S(SYS_readlink, "l", buf, 1UL << 32));
    T("readlink size 1", S(SYS_readlink, "l", buf, 1));
    T("readlink not link", S(SYS_readlink, "f", buf, 100));
    T("readlink NULL path", S(SYS_readlink, NULL, buf, 100));
    T("readlink NULL buf", S(SYS_readlink, "l", NULL, 100));
    T("readlink missing", S(SYS_readlink, "missing", buf, 100));
    T("readlink empty", S(SYS_readlink, "", buf, 100));
    T("readlinkat bad dirfd", S(SYS_readlinkat, 999, "l", buf, 100));
    T("readlinkat empty path fd", S(SYS_readlinkat, fd, "", buf, 100));

    /* --- time, uname ------------------------------------------------------ */
    struct timespec ts;
    T("uname NULL", S(SYS_uname, NULL));
    T("uname ptr 1", S(SYS_uname, BAD));
    T("uname ro", S(SYS_uname, ro));
    T("clock_gettime id 99", S(SYS_clock_gettime, 99, &ts));
    T("clock_gettime id -1", S(SYS_clock_gettime, -1, &ts));
    T("clock_gettime NULL", S(SYS_clock_gettime, CLOCK_REALTIME, NULL));
    T("clock_gettime ptr 1", S(SYS_clock_gettime, CLOCK_MONOTONIC, BAD));
    T("clock_getres NULL", S(SYS_clock_getres, CLOCK_REALTIME, NULL));
    T("clock_getres id 99", S(SYS_clock_getres, 99, &ts));
    T("gettimeofday ptr 1", S(SYS_gettimeofday, BAD, NULL));
    T("time ptr 1", S(SYS_time, BAD) == -1 ? -1 : 0);

    /* --- nanosleep --------------------------------------------------------- */
    struct timespec bad_ns = {0, -1}, big_ns = {0, 1000000000}, neg_s = {-1, 0}, zero = {0, 0};
    T("nanosleep nsec -1", S(SYS_nanosleep, &bad_ns, NULL));
    T("nanosleep nsec 1e9", S(SYS_nanosleep, &big_ns, NULL));
    T("nanosleep sec -1", S(SYS_nanosleep, &neg_s, NULL));
    T("nanosleep NULL", S(SYS_nanosleep, NULL, NULL));
    T("nanosleep ptr 1", S(SYS_nanosleep, BAD, NULL));
    T("nanosleep zero", S(SYS_nanosleep, &zero, NULL));
    T("nanosleep zero rem bad", S(SYS_nanosleep, &zero, BAD));
    T("clock_nanosleep id 99", S(SYS_clock_nanosleep, 99, 0, &zero, NULL));
    T("clock_nanosleep thread cpu", S(SYS_clock_nanosleep, CLOCK_THREAD_CPUTIME_ID, 0, &zero, NULL));
    T("clock_nanosleep nsec -1", S(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &bad_ns, NULL));
    T("clock_nanosleep abs past", S(SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, &zero, NULL));
    T("clock_nanosleep NULL", S(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, NULL, NULL));

    /* --- signals ----------------------------------------------------------- */
    T("kill sig 65", S(SYS_kill, getpid(), 65));
    T("kill sig -1", S(SYS_kill, getpid(), -1));
    T("kill sig 0 self", S(SYS_kill, getpid(), 0));
    T("kill no such pid", S(SYS_kill, 999999, 0));
    T("kill INT_MIN", S(SYS_kill, INT_MIN, 0));
    T("tkill tid 0", S(SYS_tkill, 0, 0));
    T("tkill tid -1", S(SYS_tkill, -1, 0));
    T("tkill sig 65", S(SYS_tkill, S(SYS_gettid), 65));
    T("tgkill tgid 0", S(SYS_tgkill, 0, S(SYS_gettid), 0));
    T("tgkill no such tid", S(SYS_tgkill, getpid(), 999999, 0));
    T("rt_sigaction sig 0", S(SYS_rt_sigaction, 0, NULL, NULL, 8));
    T("rt_sigaction SIGKILL", S(SYS_rt_sigaction, SIGKILL, &zero, NULL, 8));
    T("rt_sigaction sig 65", S(SYS_rt_sigaction, 65, NULL, NULL, 8));
    T("rt_sigaction setsize 4", S(SYS_rt_sigaction, SIGUSR1, NULL, NULL, 4));
    T("rt_sigaction act ptr 1", S(SYS_rt_sigaction, SIGUSR1, BAD, NULL, 8));
    T("rt_sigaction old ptr 1", S(SYS_rt_sigaction, SIGUSR1, NULL, BAD, 8));
    T("rt_sigprocmask how 5", S(SYS_rt_sigprocmask, 5, &zero, NULL, 8));
    T("rt_sigprocmask setsize 4", S(SYS_rt_sigprocmask, SIG_BLOCK, &zero, NULL, 4));
    T("rt_sigprocmask set ptr 1", S(SYS_rt_sigprocmask, SIG_BLOCK, BAD, NULL, 8));
    T("rt_sigprocmask how 5 no set", S(SYS_rt_sigprocmask, 5, NULL, NULL, 8));
    T("rt_sigpending setsize 100", S(SYS_rt_sigpending, buf, 100));

    /* --- wait -------------------------------------------------------------- */
    int status;
    T("wait4 no child", S(SYS_wait4, -1, &status, 0, NULL));
    T("wait4 bad options", S(SYS_wait4, -1, &status, 0x12345678, NULL));
    T("waitid bad idtype", S(SYS_waitid, 99, 0, buf, WEXITED, NULL));
    T("waitid options 0", S(SYS_waitid, P_ALL, 0, buf, 0, NULL));
    pid_t child = fork();
    if (child == 0)
        _exit(7);
    T("wait4 status ptr 1", S(SYS_wait4, child, BAD, 0, NULL) == child);
    T("wait4 after bad status", S(SYS_wait4, child, &status, WNOHANG, NULL));
    child = fork();
    if (child == 0)
        _exit(8);
    T("wait4 rusage ptr 1", S(SYS_wait4, child, &status, 0, BAD) == child);
    T("wait4 after bad rusage", S(SYS_wait4, child, &status, WNOHANG, NULL));

    /* --- getdents ---------------------------------------------------------- */
    int dfd = open(".", O_RDONLY | O_DIRECTORY);
    T("getdents64 size 10", S(SYS_getdents64, dfd, buf, 10));
    T("getdents64 size 0", S(SYS_getdents64, dfd, buf, 0));
    T("getdents64 badfd", S(SYS_getdents64, -1, buf, 4096));
    T("getdents64 file", S(SYS_getdents64, fd, buf, 4096));
    T("getdents64 NULL", S(SYS_getdents64, dfd, NULL, 4096));
    T("getdents size 10", S(SYS_getdents, dfd, buf, 10));
    T("getdents size 0", S(SYS_getdents, dfd, buf, 0));
    T("getdents file", S(SYS_getdents, fd, buf, 4096));
    close(dfd);

    /* --- xattrs: the arguments are checked before the filesystem is asked ---- */
    T("setxattr NULL path", S(SYS_setxattr, NULL, "user.x", "v", 1, 0));
    T("setxattr NULL name", S(SYS_setxattr, "f", NULL, "v", 1, 0));
    T("setxattr name ptr 1", S(SYS_setxattr, "f", BAD, "v", 1, 0));
    T("setxattr value ptr 1", S(SYS_setxattr, "f", "user.x", BAD, 10, 0));
    T("setxattr flag 4", S(SYS_setxattr, "f", "user.x", "v", 1, 4));
    T("setxattr size 1<<20", S(SYS_setxattr, "f", "user.x", buf, 1 << 20, 0));
    T("setxattr empty name", S(SYS_setxattr, "f", "", "v", 1, 0));
    T("setxattr long name", S(SYS_setxattr, "f", longname, "v", 1, 0));
    T("setxattr NULL name missing", S(SYS_setxattr, "missing", NULL, "v", 1, 0));
    T("getxattr NULL name", S(SYS_getxattr, "f", NULL, buf, 10));
    T("getxattr name ptr 1", S(SYS_getxattr, "f", BAD, buf, 10));
    T("getxattr NULL path", S(SYS_getxattr, NULL, "user.x", buf, 10));
    T("getxattr empty name", S(SYS_getxattr, "f", "", buf, 10));
    T("getxattr long name", S(SYS_getxattr, "f", longname, buf, 10));
    T("lgetxattr NULL name", S(SYS_lgetxattr, "l", NULL, buf, 10));
    T("fgetxattr NULL name", S(SYS_fgetxattr, fd, NULL, buf, 10));
    T("fgetxattr badfd", S(SYS_fgetxattr, -1, "user.x", buf, 10));
    T("fsetxattr value ptr 1", S(SYS_fsetxattr, fd, "user.x", BAD, 10, 0));
    T("lsetxattr flag 4", S(SYS_lsetxattr, "l", "user.x", "v", 1, 4));
    T("listxattr NULL path", S(SYS_listxattr, NULL, buf, 10));

    /* --- names: mkdir, rmdir, unlink, rename, link, symlink, chdir -------- */
    T("mkdir NULL", S(SYS_mkdir, NULL, 0755));
    T("mkdir empty", S(SYS_mkdir, "", 0755));
    T("mkdir existing", S(SYS_mkdir, "d", 0755));
    T("mkdir long name", S(SYS_mkdir, longname, 0755));
    T("mkdirat bad dirfd", S(SYS_mkdirat, 999, "x", 0755));
    T("rmdir dot", S(SYS_rmdir, "d/."));
    T("rmdir dotdot", S(SYS_rmdir, "d/.."));
    T("rmdir file", S(SYS_rmdir, "f"));
    T("rmdir nonempty", S(SYS_rmdir, "full"));
    T("rmdir missing", S(SYS_rmdir, "missing"));
    T("unlink dir", S(SYS_unlink, "d"));
    T("unlink empty", S(SYS_unlink, ""));
    T("unlink NULL", S(SYS_unlink, NULL));
    T("unlinkat bad dirfd", S(SYS_unlinkat, 999, "x", 0));
    T("unlinkat flag 1", S(SYS_unlinkat, AT_FDCWD, "x", 1));
    T("unlinkat removedir file", S(SYS_unlinkat, AT_FDCWD, "f", AT_REMOVEDIR));
    T("rename into itself", S(SYS_rename, "d", "d/sub"));
    T("rename empty", S(SYS_rename, "", "x"));
    T("rename missing", S(SYS_rename, "missing", "x"));
    T("rename dir over file", S(SYS_rename, "d", "f"));
    T("rename file over dir", S(SYS_rename, "f", "d"));
    T("renameat bad dirfd", S(SYS_renameat, 999, "f", AT_FDCWD, "g"));
    T("renameat2 flag 0x100", S(SYS_renameat2, AT_FDCWD, "f", AT_FDCWD, "g", 0x100));
    T("renameat2 noreplace|exchange", S(SYS_renameat2, AT_FDCWD, "f", AT_FDCWD, "g", 3));
    T("renameat2 noreplace existing", S(SYS_renameat2, AT_FDCWD, "f", AT_FDCWD, "l", 1));
    T("link dir", S(SYS_link, "d", "d2"));
    T("link existing", S(SYS_link, "f", "l"));
    T("linkat flag 1", S(SYS_linkat, AT_FDCWD, "f", AT_FDCWD, "g", 1));
    T("symlink empty target", S(SYS_symlink, "", "s"));
    T("symlink existing", S(SYS_symlink, "x", "f"));
    T("symlinkat bad dirfd", S(SYS_symlinkat, "x", 999, "s"));
    T("chdir file", S(SYS_chdir, "f"));
    T("chdir empty", S(SYS_chdir, ""));
    T("fchdir file", S(SYS_fchdir, fd));
    T("fchdir badfd", S(SYS_fchdir, -1));
    T("mknod bad type", S(SYS_mknod, "n", 0130644, 0));
    T("mknod existing", S(SYS_mknod, "f", S_IFREG | 0644, 0));
    T("mknodat bad dirfd", S(SYS_mknodat, 999, "n", S_IFIFO | 0644, 0));

    /* --- truncate, chmod, chown, utimes, umask ----------------------------- */
    T("truncate neg", S(SYS_truncate, "f", -1L));
    T("truncate dir", S(SYS_truncate, "d", 0));
    T("truncate NULL", S(SYS_truncate, NULL, 0));
    T("ftruncate neg", S(SYS_ftruncate, fd, -1L));
    T("ftruncate rdonly", S(SYS_ftruncate, rdonly, 0));
    T("ftruncate dir", S(SYS_ftruncate, dir, 0));
    T("ftruncate pipe", S(SYS_ftruncate, pfd[1], 0));
    T("ftruncate badfd", S(SYS_ftruncate, -1, 0));
    T("chmod NULL", S(SYS_chmod, NULL, 0644));
    T("chmod missing", S(SYS_chmod, "missing", 0644));
    T("fchmod badfd", S(SYS_fchmod, -1, 0644));
    T("fchmodat2 flag 1", S(SYS_fchmodat2, AT_FDCWD, "f", 0644, 1));
    T("chown missing", S(SYS_chown, "missing", 0, 0));
    T("fchownat flag 1", S(SYS_fchownat, AT_FDCWD, "f", 0, 0, 1));
    T("fchownat bad dirfd", S(SYS_fchownat, 999, "f", 0, 0, 0));
    struct timespec tsv[2] = {{0, -5}, {0, 0}};
    T("utimensat bad nsec", S(SYS_utimensat, AT_FDCWD, "f", tsv, 0));
    T("utimensat flag 1", S(SYS_utimensat, AT_FDCWD, "f", NULL, 1));
    T("utimensat times ptr 1", S(SYS_utimensat, AT_FDCWD, "f", BAD, 0));
    struct timespec far[2] = {{LONG_MAX / 2, 0}, {-(LONG_MAX / 2), 0}};
    T("utimensat far times", S(SYS_utimensat, AT_FDCWD, "f", far, 0));
    T("utimensat bad dirfd", S(SYS_utimensat, 999, "f", NULL, 0));
    T("umask 0777777", S(SYS_umask, 0777777));
    T("umask again", S(SYS_umask, 022));

    /* --- ioctl, flock, fadvise, close -------------------------------------- */
    T("ioctl bad request", S(SYS_ioctl, fd, 0x12345678, 0));
    T("ioctl badfd", S(SYS_ioctl, -1, FIONREAD, buf));
    T("ioctl fionread ptr 1", S(SYS_ioctl, pfd[0], FIONREAD, BAD));
    T("ioctl tcgets file", S(SYS_ioctl, fd, 0x5401, buf));
    T("flock bad op", S(SYS_flock, fd, 0x40));
    T("flock badfd", S(SYS_flock, -1, LOCK_SH));
    T("fadvise bad advice", S(SYS_fadvise64, fd, 0, 0, 99));
    T("fadvise neg len", S(SYS_fadvise64, fd, 0L, -1L, 0));
    T("fadvise pipe", S(SYS_fadvise64, pfd[0], 0, 0, 0));
    T("close_range first > last", S(SYS_close_range, 10, 5, 0));
    T("close_range bad flags", S(SYS_close_range, 500, 600, 0x80));
    T("close -1", S(SYS_close, -1));
    T("close 9999", S(SYS_close, 9999));

    /* --- poll family ------------------------------------------------------- */
    struct pollfd pf[2] = {{pfd[0], POLLIN, 0}, {-1, POLLIN, 0}};
    T("poll nfds 1<<20", S(SYS_poll, pf, 1 << 20, 0));
    T("poll nfds 1<<31", S(SYS_poll, pf, 1UL << 31, 0));
    T("poll NULL 0", S(SYS_poll, NULL, 0, 0));
    T("poll NULL 1", S(SYS_poll, NULL, 1, 0));
    T("poll ready, neg fd", S(SYS_poll, pf, 2, -1));
    T("poll ready, timeout INT_MIN", S(SYS_poll, pf, 1, INT_MIN));
    struct pollfd nv = {999, POLLIN, 0};
    T("poll fd 999", S(SYS_poll, &nv, 1, 0));
    T("poll fd 999 revents", nv.revents);
    struct pollfd allbits = {pfd[0], (short)0xffff, 0};
    T("poll all event bits", S(SYS_poll, &allbits, 1, 0));
    T("poll all event bits revents", (unsigned short)allbits.revents);
    struct timespec huge = {3000000, 0}, lmax = {LONG_MAX, 999999999}, nneg = {0, -1};
    T("ppoll 3e6 s ready", S(SYS_ppoll, pf, 1, &huge, NULL, 8));
    T("ppoll LONG_MAX ready", S(SYS_ppoll, pf, 1, &lmax, NULL, 8));
    T("ppoll nsec -1", S(SYS_ppoll, pf, 1, &nneg, NULL, 8));
    T("ppoll nsec 1e9", S(SYS_ppoll, pf, 1, &big_ns, NULL, 8));
    T("ppoll sec -1", S(SYS_ppoll, pf, 1, &neg_s, NULL, 8));
    T("ppoll timeout ptr 1", S(SYS_ppoll, pf, 1, BAD, NULL, 8));
    T("ppoll sigsetsize 4", S(SYS_ppoll, pf, 1, &zero, &zero, 4));
    T("ppoll nfds 1<<20", S(SYS_ppoll, pf, 1 << 20, &zero, NULL, 8));
    fd_set rs;
    struct timeval tv_huge = {LONG_MAX, 0}, tv_neg = {0, -1}, tv_big = {0, 1000000},
                   tv_3e6 = {3000000, 0};
    FD_ZERO(&rs); FD_SET(pfd[0], &rs);
    T("select nfds -1", S(SYS_select, -1, &rs, NULL, NULL, &tv_3e6));
    T("select 3e6 s ready", S(SYS_select, pfd[0] + 1, &rs, NULL, NULL, &tv_3e6));
    FD_ZERO(&rs); FD_SET(pfd[0], &rs);
    T("select LONG_MAX ready", S(SYS_select, pfd[0] + 1, &rs, NULL, NULL, &tv_huge));
    FD_ZERO(&rs); FD_SET(pfd[0], &rs);
    T("select usec -1", S(SYS_select, pfd[0] + 1, &rs, NULL, NULL, &tv_neg));
    T("select usec 1e6", S(SYS_select, pfd[0] + 1, &rs, NULL, NULL, &tv_big));
    T("select set ptr 1", S(SYS_select, pfd[0] + 1, BAD, NULL, NULL, &tv_3e6));
    T("select timeout ptr 1", S(SYS_select, pfd[0] + 1, &rs, NULL, NULL, BAD));
    FD_ZERO(&rs); FD_SET(1000, &rs);
    struct timeval tv_zero = {0, 0};
    T("select fd 1000", S(SYS_select, 1001, &rs, NULL, NULL, &tv_zero));
    FD_ZERO(&rs); FD_SET(pfd[0], &rs);
    T("pselect6 3e6 s ready", S(SYS_pselect6, pfd[0] + 1, &rs, NULL, NULL, &huge, NULL));
    FD_ZERO(&rs); FD_SET(pfd[0], &rs);
    T("pselect6 nsec -1", S(SYS_pselect6, pfd[0] + 1, &rs, NULL, NULL, &nneg, NULL));
    T("pselect6 nfds -1", S(SYS_pselect6, -1, &rs, NULL, NULL, &zero, NULL));

    /* --- memory ------------------------------------------------------------ */
    T("mmap len 0", S(SYS_mmap, NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == -1 ? -1 : 0);
    T("mmap no type", S(SYS_mmap, NULL, 4096, PROT_READ, MAP_ANONYMOUS, -1, 0) == -1 ? -1 : 0);
    T("mmap badfd", S(SYS_mmap, NULL, 4096, PROT_READ, MAP_PRIVATE, -1, 0) == -1 ? -1 : 0);
    T("mmap unaligned off", S(SYS_mmap, NULL, 4096, PROT_READ, MAP_PRIVATE, rdonly, 5) == -1 ? -1 : 0);
    T("mmap len SIZE_MAX", S(SYS_mmap, NULL, SIZE_MAX, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == -1 ? -1 : 0);
    T("munmap unaligned", S(SYS_munmap, page + 1, 4096));
    T("munmap len 0", S(SYS_munmap, page, 0));
    T("mprotect unaligned", S(SYS_mprotect, page + 1, 4096, PROT_READ));
    T("mprotect bad prot", S(SYS_mprotect, page, 4096, 0x100));
    T("madvise bad advice", S(SYS_madvise, page, 4096, 999));
    T("msync unaligned", S(SYS_msync, page + 1, 4096, MS_SYNC));
    T("msync bad flags", S(SYS_msync, page, 4096, MS_SYNC | MS_ASYNC));

    /* --- process and limits ----------------------------------------------- */
    struct rlimit rl;
    T("getrlimit bad resource", S(SYS_getrlimit, 99, &rl));
    T("getrlimit ptr 1", S(SYS_getrlimit, RLIMIT_NOFILE, BAD));
    T("prlimit64 bad resource", S(SYS_prlimit64, 0, 99, NULL, &rl));
    T("getpriority bad which", S(SYS_getpriority, 99, 0));
    T("setpgid -1", S(SYS_setpgid, 0, -1));
    T("getpgid no such pid", S(SYS_getpgid, 999999));
    T("getsid no such pid", S(SYS_getsid, 999999));
    T("getgroups -1", S(SYS_getgroups, -1, buf));
    T("setgroups huge", S(SYS_setgroups, 1 << 20, buf));
    T("sysinfo ptr 1", S(SYS_sysinfo, BAD));
    T("times ptr 1", S(SYS_times, BAD) == -1 ? -1 : 0);
    T("getrusage bad who", S(SYS_getrusage, 99, buf));
    T("getrusage ptr 1", S(SYS_getrusage, RUSAGE_SELF, BAD));
    T("prctl bad option", S(SYS_prctl, 0x7fff1234, 0, 0, 0, 0));
    T("prctl set_name ptr 1", S(SYS_prctl, PR_SET_NAME, BAD, 0, 0, 0));
    T("prctl get_name ptr 1", S(SYS_prctl, PR_GET_NAME, BAD, 0, 0, 0));
    T("sched_getaffinity size 0", S(SYS_sched_getaffinity, 0, 0, buf));
    T("getrandom bad flags", S(SYS_getrandom, buf, 10, 0x100));
    T("getrandom ptr 1", S(SYS_getrandom, BAD, 10, 0));
    char *args[] = {"x", NULL};
    T("execve NULL", S(SYS_execve, NULL, args, NULL));
    T("execve empty", S(SYS_execve, "", args, NULL));
    T("execve missing", S(SYS_execve, "missing", args, NULL));
    T("execve dir", S(SYS_execve, "d", args, NULL));
    T("execve not executable", S(SYS_execve, "f", args, NULL));
    T("execve argv ptr 1", S(SYS_execve, "/bin/true", BAD, NULL));
    T("statfs NULL", S(SYS_statfs, NULL, buf));
    T("fstatfs badfd", S(SYS_fstatfs, -1, buf));

    printf("cases: %d\n", cases);
    return 0;
}
