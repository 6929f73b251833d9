/* ppoll, pselect and epoll_pwait with a signal mask, the race-free pattern: SIGCHLD
 * (or SIGUSR1) blocked everywhere else, let through only during the wait.  The
 * handler must run inside the wait (EINTR) and the old mask come back after it. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got;
static void on_sig(int sig) { got = sig; }

static void report(const char *what, int rc) {
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("%s: %d %s handler %d still blocked %d\n", what, rc, rc < 0 ? strerror(errno) : "-",
           (int)got, sigismember(&now, SIGUSR1));
    got = 0;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t block, open;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &open);
    sigdelset(&open, SIGUSR1);
    int p[2];
    pipe(p);
    struct pollfd f = {.fd = p[0], .events = POLLIN};
    struct timespec ten = {10, 0};

    /* a signal that comes during the wait */
    pid_t parent = getpid();
    if (fork() == 0) {
        usleep(50000);
        kill(parent, SIGUSR1);
        _exit(0);
    }
    report("ppoll", ppoll(&f, 1, &ten, &open));
    wait(NULL);

    /* one pending before the wait: at once */
    kill(getpid(), SIGUSR1);
    printf("pending, handler %d\n", (int)got);
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    report("pselect", pselect(p[0] + 1, &rs, NULL, NULL, &ten, &open));

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    if (fork() == 0) {
        usleep(50000);
        kill(parent, SIGUSR1);
        _exit(0);
    }
    report("epoll_pwait", epoll_pwait(ep, &ev, 1, 10000, &open));
    wait(NULL);

    /* a mask that keeps it blocked: the wait ends by its timeout, the signal waits */
    kill(getpid(), SIGUSR1);
    struct timespec short_ = {0, 20000000};
    report("ppoll masked", ppoll(&f, 1, &short_, &block));
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    printf("after unblock, handler %d\n", (int)got);
    return 0;
}
