/* Issue 19: opening /proc/self/fd/N, /dev/fd/N and /dev/stdin|stdout|stderr
 * reopens that very object, with the access mode asked for: pipes (either end,
 * either mode), FIFOs, pty masters and slaves, and the program's own stdout;
 * sockets and anonymous inodes (eventfd, epoll, timerfd, signalfd, inotify)
 * say ENXIO.  argv[1]: a writable directory (for the FIFO).  One line
 * per check; run natively and under xinim-run, the lines must agree. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/stat.h>
#include <unistd.h>

static char link_path[64];

static const char *fd_link(const char *base, int fd) {
    snprintf(link_path, sizeof link_path, "%s/%d", base, fd);
    return link_path;
}

static void report(const char *what, int ok) {
    printf("%-40s %s\n", what, ok ? "ok" : strerror(errno));
}

/* reopen `fd` through `base`/N with `flags`; -1 and errno on failure */
static int reopen(const char *base, int fd, int flags) {
    return open(fd_link(base, fd), flags);
}

static int moved(int from, int to, const char *data) {
    size_t n = strlen(data);
    char buf[64] = {0};
    if (write(from, data, n) != (ssize_t)n) return 0;
    if (read(to, buf, sizeof buf - 1) != (ssize_t)n) return 0;
    return memcmp(buf, data, n) == 0;
}

static void pipes(const char *base) {
    int p[2], r, w;
    char what[80];
    if (pipe(p)) { perror("pipe"); exit(2); }
    snprintf(what, sizeof what, "pipe read end %s O_RDONLY", base);
    r = reopen(base, p[0], O_RDONLY);
    report(what, r >= 0 && moved(p[1], r, "a"));
    snprintf(what, sizeof what, "pipe write end %s O_WRONLY", base);
    w = reopen(base, p[1], O_WRONLY);
    report(what, w >= 0 && moved(w, p[0], "bb"));
    if (w >= 0) close(w);
    /* the mode asked for, not the end's own: the read end opened for writing */
    snprintf(what, sizeof what, "pipe read end %s O_WRONLY", base);
    w = reopen(base, p[0], O_WRONLY);
    report(what, w >= 0 && moved(w, r >= 0 ? r : p[0], "ccc"));
    if (w >= 0) close(w);
    if (r >= 0) close(r);
    /* no partner wait for a pipe: the write end alone opens for reading at once
     * and reads EOF once every writer is gone */
    close(p[1]);
    snprintf(what, sizeof what, "pipe without writers %s O_RDONLY", base);
    r = reopen(base, p[0], O_RDONLY);
    char c;
    report(what, r >= 0 && read(r, &c, 1) == 0);
    if (r >= 0) close(r);
    close(p[0]);
    /* a writer opened on a pipe without readers: EPIPE at the write, not at open */
    if (pipe(p)) exit(2);
    close(p[0]);
    signal(SIGPIPE, SIG_IGN);
    snprintf(what, sizeof what, "pipe without readers %s O_WRONLY", base);
    w = reopen(base, p[1], O_WRONLY | O_NONBLOCK);
    report(what, w >= 0);
    if (w >= 0) {
        report("  ...its write", write(w, "x", 1) == 1);
        close(w);
    }
    close(p[1]);
}

static void fifo(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/fifo", dir);
    unlink(path);
    if (mkfifo(path, 0600)) { perror("mkfifo"); exit(2); }
    int f = open(path, O_RDWR);
    int r = reopen("/proc/self/fd", f, O_RDONLY | O_NONBLOCK);
    report("fifo /proc/self/fd O_RDONLY", r >= 0 && moved(f, r, "fifo"));
    int w = reopen("/dev/fd", f, O_WRONLY);
    report("fifo /dev/fd O_WRONLY", w >= 0 && moved(w, r >= 0 ? r : f, "ff"));
    close(f); if (r >= 0) close(r); if (w >= 0) close(w);
    unlink(path);
}

static void ptys(void) {
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) || unlockpt(m)) { perror("pty"); exit(2); }
    int s = open(ptsname(m), O_RDWR | O_NOCTTY);
    if (s < 0) { perror("slave"); exit(2); }
    int s2 = open(fd_link("/proc/self/fd", s), O_WRONLY | O_NOCTTY);
    char buf[64] = {0};
    int ok = s2 >= 0 && write(s2, "hi\n", 3) == 3 && read(m, buf, sizeof buf) == 4
             && memcmp(buf, "hi\r\n", 4) == 0;
    report("pty slave /proc/self/fd O_WRONLY", ok);
    int m2 = open(fd_link("/dev/fd", m), O_RDWR | O_NOCTTY);
    /* Linux: the master's inode is /dev/ptmx (a new pty) -- say which it is */
    unsigned n1 = 0, n2 = 0;
    ioctl(m, TIOCGPTN, &n1);
    int same = m2 >= 0 && ioctl(m2, TIOCGPTN, &n2) == 0 && n1 == n2;
    report(m2 >= 0 ? (same ? "pty master /dev/fd: same pty" : "pty master /dev/fd: a new pty")
                   : "pty master /dev/fd", m2 >= 0);
    if (s2 >= 0) close(s2);
    if (m2 >= 0) close(m2);
    close(s); close(m);
}

static void stdio_names(void) {
    int fd = open("/dev/stdout", O_WRONLY);
    report("/dev/stdout O_WRONLY", fd >= 0 && write(fd, "via /dev/stdout\n", 16) == 16);
    if (fd >= 0) close(fd);
    fd = open("/dev/stderr", O_WRONLY);
    report("/dev/stderr O_WRONLY", fd >= 0);
    if (fd >= 0) close(fd);
}

/* anonymous inodes have no open: ENXIO */
static void anon(const char *what, int fd) {
    char line[80];
    snprintf(line, sizeof line, "%s /proc/self/fd O_RDONLY", what);
    if (fd < 0) { printf("%-40s %s\n", what, "unsupported"); return; }
    int r = open(fd_link("/proc/self/fd", fd), O_RDONLY);
    report(line, r >= 0);
    if (r >= 0) close(r);
    close(fd);
}

static void sockets(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) {
        printf("%-40s %s\n", "socket", "unsupported");
        return;
    }
    int fd = open(fd_link("/proc/self/fd", sv[0]), O_RDWR);
    report("socket /proc/self/fd O_RDWR", fd >= 0);
    if (fd >= 0) close(fd);
    close(sv[0]); close(sv[1]);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pipes("/proc/self/fd");
    pipes("/dev/fd");
    fifo(argc > 1 ? argv[1] : "/tmp");
    ptys();
    stdio_names();
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    anon("eventfd", eventfd(0, 0));
    anon("epoll", epoll_create1(0));
    anon("timerfd", timerfd_create(CLOCK_MONOTONIC, 0));
    anon("signalfd", signalfd(-1, &set, 0));
    anon("inotify", inotify_init1(0));
    sockets();
    return 0;
}
