/* Issue 14 acceptance: a pipe, an eventfd, a timerfd, a signalfd and an inotify fd
 * in one epoll set.  epoll_wait times out with none ready, then reports each after
 * it is made ready, with the right data read back; then Linux's errnos for bad
 * input, EPOLLET / EPOLLONESHOT, nesting, fork, and /proc/self/fd names.
 *
 *   events DIR [PARTS]     DIR: a directory to watch; PARTS: letters of the fds to
 *                          use (p e t s i; default all)
 * Prints only what is the same natively and under xinim-run (differential test).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *names[] = {"pipe", "eventfd", "timerfd", "signalfd", "inotify", "nested"};

static volatile sig_atomic_t usr2;
static void on_usr2(int sig) { usr2 = sig; }

static void show(int ep, int ms) {
    struct epoll_event ev[8];
    int n = epoll_wait(ep, ev, 8, ms);
    printf("wait %d:", n);
    if (n < 0)
        printf(" %s", strerror(errno));
    for (int i = 0; i < n; i++)
        printf(" %s/%#x", names[ev[i].data.u32], ev[i].events);
    printf("\n");
    fflush(stdout);
}

static void err(const char *what, int rc) {
    printf("%s: %d %s\n", what, rc, rc < 0 ? strerror(errno) : "ok");
}

static void link_of(const char *what, int fd) {
    char path[64], target[128];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof target - 1);
    target[n < 0 ? 0 : n] = 0;
    printf("%s link: %s\n", what, target);
}

static void add(int ep, int fd, uint32_t events, uint32_t tag) {
    struct epoll_event ev = {.events = events, .data.u32 = tag};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        printf("add %s: %s\n", names[tag], strerror(errno));
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    const char *parts = argc > 2 ? argv[2] : "petsi";
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int p[2] = {-1, -1}, efd = -1, tfd = -1, sfd = -1, ifd = -1;
    uint64_t v;
    char buf[4096];

    if (strchr(parts, 'p')) {
        pipe2(p, O_NONBLOCK);
        add(ep, p[0], EPOLLIN, 0);
    }
    if (strchr(parts, 'e')) {
        efd = eventfd(0, EFD_NONBLOCK);
        add(ep, efd, EPOLLIN, 1);
        link_of("eventfd", efd);
    }
    if (strchr(parts, 't')) {
        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        add(ep, tfd, EPOLLIN, 2);
        link_of("timerfd", tfd);
    }
    if (strchr(parts, 's')) {
        sigset_t m;
        sigemptyset(&m);
        sigaddset(&m, SIGUSR1);
        sigprocmask(SIG_BLOCK, &m, NULL);
        sfd = signalfd(-1, &m, SFD_NONBLOCK);
        add(ep, sfd, EPOLLIN, 3);
        link_of("signalfd", sfd);
    }
    if (strchr(parts, 'i')) {
        ifd = inotify_init1(IN_NONBLOCK);
        int wd = inotify_add_watch(ifd, dir, IN_CREATE | IN_DELETE);
        printf("watch: %d\n", wd);
        add(ep, ifd, EPOLLIN, 4);
        link_of("inotify", ifd);
    }
    link_of("epoll", ep);

    show(ep, 50);                                 /* nothing is ready: times out */
    if (p[1] >= 0) {
        write(p[1], "hi", 2);
        show(ep, 1000);
        printf("pipe read: %zd\n", read(p[0], buf, sizeof buf));
    }
    if (efd >= 0) {
        v = 3;
        write(efd, &v, 8);
        write(efd, &v, 8);
        show(ep, 1000);
        v = 0;
        ssize_t n = read(efd, &v, 8);
        printf("eventfd read: %zd %llu\n", n, (unsigned long long)v);
        n = read(efd, &v, 8);
        printf("eventfd again: %zd %s\n", n, strerror(errno));
        err("eventfd short read", (int)read(efd, &v, 4));
    }
    if (tfd >= 0) {
        struct itimerspec its = {.it_value = {0, 20 * 1000 * 1000}}, old;
        timerfd_settime(tfd, 0, &its, NULL);
        timerfd_gettime(tfd, &old);
        printf("timer armed: %d\n", old.it_value.tv_sec == 0 && old.it_value.tv_nsec > 0);
        show(ep, 1000);
        v = 0;
        ssize_t n = read(tfd, &v, 8);
        printf("timerfd read: %zd %llu\n", n, (unsigned long long)v);
        timerfd_gettime(tfd, &old);
        printf("timer disarmed: %d\n", old.it_value.tv_sec == 0 && old.it_value.tv_nsec == 0);
        err("timerfd bad clock", timerfd_create(12345, 0));
        its.it_value.tv_nsec = 2000000000L;
        err("timerfd bad nsec", timerfd_settime(tfd, 0, &its, NULL));
    }
    if (sfd >= 0) {
        kill(getpid(), SIGUSR1);
        show(ep, 1000);
        struct signalfd_siginfo si;
        memset(&si, 0, sizeof si);
        ssize_t n = read(sfd, &si, sizeof si);
        printf("signalfd read: %zd signo %u code %d pid-ok %d uid-ok %d\n", n, si.ssi_signo,
               si.ssi_code, si.ssi_pid == (uint32_t)getpid(), si.ssi_uid == getuid());
        sigset_t pend;
        sigpending(&pend);
        printf("still pending: %d\n", sigismember(&pend, SIGUSR1));
        n = read(sfd, &si, sizeof si);
        printf("signalfd again: %zd %s\n", n, strerror(errno));
        /* a blocked signal outside the signalfd's mask is delivered when unblocked */
        sigset_t m2;
        sigemptyset(&m2);
        sigaddset(&m2, SIGUSR2);
        signal(SIGUSR2, on_usr2);
        sigprocmask(SIG_BLOCK, &m2, NULL);
        kill(getpid(), SIGUSR2);
        printf("usr2 before unblock: %d\n", (int)usr2);
        sigprocmask(SIG_UNBLOCK, &m2, NULL);
        printf("usr2 after unblock: %d\n", (int)usr2);
        /* sigtimedwait still takes a blocked signal no signalfd is for */
        sigprocmask(SIG_BLOCK, &m2, NULL);
        kill(getpid(), SIGUSR2);
        struct timespec second = {1, 0};
        printf("sigtimedwait: %d\n", sigtimedwait(&m2, NULL, &second));
        sigprocmask(SIG_UNBLOCK, &m2, NULL);
        /* a new mask for the same signalfd */
        sigaddset(&m2, SIGUSR1);
        printf("signalfd remask: %d\n", signalfd(sfd, &m2, 0) == sfd);
        err("signalfd not one", signalfd(p[0] >= 0 ? p[0] : 0, &m2, 0));
        err("signalfd size", (int)syscall(SYS_signalfd4, -1, &m2, 4, 0));
    }
    if (ifd >= 0) {
        char path[512];
        snprintf(path, sizeof path, "%s/created-file", dir);
        int fd = open(path, O_CREAT | O_WRONLY, 0644);
        close(fd);
        show(ep, 1000);
        ssize_t n = read(ifd, buf, sizeof buf);
        struct inotify_event *e = (struct inotify_event *)buf;
        printf("inotify read: %d mask %#x name %s\n", n > 0, e->mask, e->len ? e->name : "");
        unlink(path);
        show(ep, 1000);
        n = read(ifd, buf, sizeof buf);
        printf("inotify read: %d mask %#x name %s\n", n > 0, e->mask, e->len ? e->name : "");
    }
    show(ep, 0);

    /* Linux's errnos for bad input */
    struct epoll_event ev = {.events = EPOLLIN};
    int file = open("/proc/self/status", O_RDONLY);
    int reg = open(dir, O_RDONLY | O_DIRECTORY);
    int e2 = eventfd(0, 0);
    err("add twice", (add(ep, e2, EPOLLIN, 1), epoll_ctl(ep, EPOLL_CTL_ADD, e2, &ev)));
    err("mod", epoll_ctl(ep, EPOLL_CTL_MOD, e2, &ev));
    err("del", epoll_ctl(ep, EPOLL_CTL_DEL, e2, NULL));
    err("del again", epoll_ctl(ep, EPOLL_CTL_DEL, e2, NULL));
    err("mod absent", epoll_ctl(ep, EPOLL_CTL_MOD, e2, &ev));
    err("directory", epoll_ctl(ep, EPOLL_CTL_ADD, reg, &ev));
    err("itself", epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev));
    err("not epoll", epoll_ctl(e2, EPOLL_CTL_ADD, ep, &ev));
    err("bad fd", epoll_ctl(ep, EPOLL_CTL_ADD, 999, &ev));
    err("bad epfd", epoll_ctl(999, EPOLL_CTL_ADD, e2, &ev));
    err("bad op", epoll_ctl(ep, 7, e2, &ev));
    err("bad event", epoll_ctl(ep, EPOLL_CTL_ADD, e2, (void *)8));
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    err("exclusive add", epoll_ctl(ep, EPOLL_CTL_ADD, e2, &ev));
    err("exclusive mod", epoll_ctl(ep, EPOLL_CTL_MOD, e2, &ev));
    ev.events = EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT;
    err("exclusive oneshot", epoll_ctl(ep, EPOLL_CTL_ADD, efd >= 0 ? efd : e2, &ev));
    err("maxevents 0", epoll_wait(ep, &ev, 0, 0));
    err("wait not epoll", epoll_wait(e2, &ev, 1, 0));
    struct epoll_event *nowhere = (struct epoll_event *)(uintptr_t)argc;   /* (quiets gcc) */
    err("wait bad buffer", epoll_wait(ep, nowhere + (1ULL << 60) / sizeof *nowhere, 1, 0));
    err("create 0", epoll_create(0));
    err("create1 flags", epoll_create1(1));
    err("eventfd flags", eventfd(0, 0x10));
    v = ~0ULL;
    err("eventfd max", (int)write(e2, &v, 8));
    close(file);
    close(reg);
    close(e2);

    /* nesting, and ELOOP for a cycle */
    int outer = epoll_create1(0), ev3 = eventfd(0, EFD_NONBLOCK);
    add(outer, ep, EPOLLIN, 5);
    ev.events = EPOLLIN;
    err("loop", epoll_ctl(ep, EPOLL_CTL_ADD, outer, &ev));
    int inner = epoll_create1(0);
    add(inner, ev3, EPOLLIN, 1);
    add(outer, inner, EPOLLIN, 5);
    show(outer, 0);
    v = 1;
    write(ev3, &v, 8);
    show(outer, 1000);
    show(inner, 0);
    read(ev3, &v, 8);

    /* edge-triggered and one-shot */
    int et = epoll_create1(0);
    add(et, ev3, EPOLLIN | EPOLLET, 1);
    write(ev3, &v, 8);
    show(et, 1000);
    show(et, 0);                                  /* no new edge */
    write(ev3, &v, 8);
    show(et, 1000);                               /* a new write is a new edge */
    int os = epoll_create1(0);
    add(os, ev3, EPOLLIN | EPOLLONESHOT, 1);
    show(os, 1000);
    show(os, 0);                                  /* disabled until MOD */
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.u32 = 1;
    epoll_ctl(os, EPOLL_CTL_MOD, ev3, &ev);
    show(os, 1000);
    read(ev3, &v, 8);

    /* a ready event that cannot be copied out: EFAULT, and it stays ready */
    int lost = epoll_create1(0);
    add(lost, ev3, EPOLLIN | EPOLLET | EPOLLONESHOT, 1);
    write(ev3, &v, 8);
    struct epoll_event *unmapped = (struct epoll_event *)(uintptr_t)4096;
    err("wait into unmapped", epoll_wait(lost, unmapped, 1, 1000));
    show(lost, 0);
    read(ev3, &v, 8);
    close(lost);

    /* a dup keeps the item; the last close removes it; fork shares the instance */
    int d = dup(ev3);
    close(ev3);
    v = 5;
    write(d, &v, 8);
    show(os, 0);
    ev.events = EPOLLIN;
    epoll_ctl(os, EPOLL_CTL_MOD, ev3 = d, &ev);   /* (ev3 closed: EBADF, as Linux) */
    pid_t pid = fork();
    if (pid == 0) {
        show(et, 1000);                           /* the child sees the parent's set */
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    close(d);
    show(et, 0);                                  /* closed: no longer watched */

    /* the poll family on the same files */
    int pe = eventfd(0, EFD_NONBLOCK);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(pe, &rs);
    struct timeval tv = {0, 10000};
    printf("select: %d\n", select(pe + 1, &rs, NULL, NULL, &tv));
    write(pe, &v, 8);
    FD_SET(pe, &rs);
    printf("select: %d\n", select(pe + 1, &rs, NULL, NULL, &tv));

    /* poll of more fds than one message holds (700 dups of one eventfd) */
    static struct pollfd many[700];
    int zero = eventfd(0, EFD_NONBLOCK);
    for (int i = 0; i < 700; i++) {
        many[i].fd = dup(zero);
        many[i].events = POLLIN | POLLOUT;
    }
    many[699].fd = -1;
    int ready = poll(many, 700, 0);
    printf("poll 700: %d first %#x last %#x\n", ready, many[0].revents, many[699].revents);
    for (int i = 0; i < 700; i++)
        many[i].events = POLLIN;
    if (fork() == 0) {
        usleep(30000);
        write(zero, &v, 8);
        _exit(0);
    }
    ready = poll(many, 700, 5000);
    printf("poll 700 woken: %d %#x\n", ready, many[5].revents);
    wait(NULL);
    for (int i = 0; i < 699; i++)
        close(many[i].fd);
    err("poll too many", poll(many, 1 << 24, 0));   /* beyond RLIMIT_NOFILE */

    /* a caught signal ends epoll_wait and poll with EINTR, SA_RESTART or not */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {.it_value = {0, 30000}};
    int quiet = epoll_create1(0);
    setitimer(ITIMER_REAL, &it, NULL);
    err("epoll_wait interrupted", epoll_wait(quiet, &ev, 1, 5000));
    struct pollfd pfd = {.fd = quiet, .events = POLLIN};
    setitimer(ITIMER_REAL, &it, NULL);
    err("poll interrupted", poll(&pfd, 1, 5000));
    printf("done\n");
    return 0;
}
