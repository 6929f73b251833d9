/* select/pselect6 over more fds than one message holds: 700+ open fds (RLIMIT_NOFILE
 * raised), a pipe with data at fd > 600, an empty one, EBADF for a set bit on a closed
 * fd, nfds beyond FD_SETSIZE, the fd_sets rewritten and the timeout written back.
 * Raw syscalls with our own bit arrays (glibc's FD_SET stops at 1024).  Prints only
 * what is the same natively and under xinim-run. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/time.h>
#include <unistd.h>

#define BITS 4096
typedef struct { unsigned long w[BITS / 64]; } set_t;
static void S(set_t *s, int fd) { s->w[fd / 64] |= 1UL << (fd % 64); }
static int T(const set_t *s, int fd) { return (s->w[fd / 64] >> (fd % 64)) & 1; }

static void show(const char *name, long r, set_t *rd, set_t *wr, int nfds) {
    printf("%s: %ld", name, r);
    if (r < 0) printf(" %s", strerror(errno));
    else {
        printf(" r=");
        for (int fd = 0; fd < nfds; fd++) if (T(rd, fd)) printf("%d,", fd);
        printf(" w=");
        for (int fd = 0; fd < nfds; fd++) if (T(wr, fd)) printf("%d,", fd);
    }
    printf("\n");
}

static void must(int ok, const char *what) { if (!ok) { perror(what); exit(1); } }

int main(void) {
    struct rlimit rl;
    must(getrlimit(RLIMIT_NOFILE, &rl) == 0, "getrlimit");
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2048) { printf("hard limit low\n"); return 0; }
    rl.rlim_cur = 2048;
    must(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit");
    int full[2], empty[2];
    must(pipe(full) == 0 && pipe(empty) == 0, "pipe");
    must(write(full[1], "x", 1) == 1, "write");
    must(dup2(full[0], 650) == 650 && dup2(full[1], 651) == 651, "dup2 full");
    must(dup2(empty[0], 700) == 700, "dup2 empty");
    int opened = 0;                         /* fill 10..720 */
    for (int fd = 10; fd <= 720; fd++)
        if (fcntl(fd, F_GETFD) < 0) { must(dup2(empty[1], fd) == fd, "dup2 fill"); opened++; }
    printf("filled %d\n", opened > 600);

    set_t rd, wr;
    struct timeval tv;
    long r;

    /* data at 650, nothing at 700, 651 writable, many other fds asked about */
    memset(&rd, 0, sizeof rd); memset(&wr, 0, sizeof wr);
    S(&rd, 650); S(&rd, 700); S(&wr, 651);
    for (int fd = 100; fd < 600; fd += 3) S(&rd, empty[0] == fd ? 101 : fd);
    tv.tv_sec = 5; tv.tv_usec = 0;
    r = syscall(SYS_select, 701, &rd, &wr, NULL, &tv);
    show("select 701", r, &rd, &wr, 701);
    printf("timeout left in (4s,5s]: %d\n", tv.tv_sec == 4 || (tv.tv_sec == 5 && tv.tv_usec == 0));

    /* nfds far beyond FD_SETSIZE (cut to the fd table), all 1000+ filled fds writable */
    memset(&rd, 0, sizeof rd); memset(&wr, 0, sizeof wr);
    for (int fd = 10; fd <= 720; fd++) if (fd != 650 && fd != 700) S(&wr, fd);
    S(&rd, 650);
    r = syscall(SYS_select, 4000, &rd, &wr, NULL, NULL);
    printf("select 4000 wide: %ld r650=%d w651=%d w720=%d w700=%d\n", r, T(&rd, 650),
           T(&wr, 651), T(&wr, 720), T(&wr, 700));

    /* a set bit on a closed fd inside the table: EBADF, sets untouched */
    must(close(690) == 0, "close");
    memset(&rd, 0, sizeof rd); memset(&wr, 0, sizeof wr);
    S(&rd, 650); S(&rd, 690);
    r = syscall(SYS_select, 1024, &rd, &wr, NULL, NULL);
    show("select closed 690", r, &rd, &wr, 1024);
    printf("rd bits kept: %d %d\n", T(&rd, 650), T(&rd, 690));

    /* a timeout that runs out: nothing ready, sets cleared, timeout written back 0 */
    memset(&rd, 0, sizeof rd); memset(&wr, 0, sizeof wr);
    S(&rd, 700); S(&rd, 10 == empty[0] ? 11 : 700);
    tv.tv_sec = 0; tv.tv_usec = 30000;
    r = syscall(SYS_select, 1024, &rd, &wr, NULL, &tv);
    show("select timeout", r, &rd, &wr, 1024);
    printf("timeout left: %ld %ld\n", (long)tv.tv_sec, (long)tv.tv_usec);

    /* pselect6 with an fd beyond 1024 */
    must(dup2(full[0], 1500) == 1500, "dup2 1500");
    memset(&rd, 0, sizeof rd); memset(&wr, 0, sizeof wr);
    S(&rd, 1500); S(&rd, 700); S(&wr, 651);
    struct timespec ts = {3, 0};
    r = syscall(SYS_pselect6, 1501, &rd, &wr, NULL, &ts, NULL);
    show("pselect6 1501", r, &rd, &wr, 1501);
    printf("timespec left in (2s,3s]: %d\n", ts.tv_sec == 2 || (ts.tv_sec == 3 && ts.tv_nsec == 0));
    memset(&rd, 0, sizeof rd); memset(&wr, 0, sizeof wr);
    S(&rd, 1500); S(&rd, 1499);
    r = syscall(SYS_pselect6, 2048, &rd, &wr, NULL, NULL, NULL);
    show("pselect6 closed 1499", r, &rd, &wr, 2048);
    printf("done\n");
    return 0;
}
