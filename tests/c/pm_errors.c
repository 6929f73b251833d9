/* wait/kill error answers and signal plumbing, one line per check:
 * "name ok" or "name FAIL ...". Exit status = number of failures.
 * Meant to run under xinim-run (natively the kill checks of pids 2-4 fail). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;
#define CHECK(name, cond, ...) do { if (cond) printf("%s ok\n", name); else { \
    failures++; printf("%s FAIL: ", name); printf(__VA_ARGS__); printf("\n"); } \
    fflush(stdout); } while (0)

static volatile sig_atomic_t got_usr1;
static void on_usr1(int sig) { (void)sig; got_usr1++; }

static void handler(int sig, int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static void msleep(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static pid_t sleeper(long ms) {
    pid_t pid = fork();
    if (pid == 0) { msleep(ms); _exit(0); }
    return pid;
}

/* A child blocked reading a pipe gets SIGUSR1 (handler with or without
 * SA_RESTART), then data: it reports what read answered. */
static void read_interrupted(int restart) {
    int data[2], report[2];
    if (pipe(data) || pipe(report)) { perror("pipe"); exit(1); }
    pid_t pid = fork();
    if (pid == 0) {
        close(data[1]); close(report[0]);
        got_usr1 = 0;
        handler(SIGUSR1, restart ? SA_RESTART : 0);
        char c = 0;
        ssize_t n = read(data[0], &c, 1);
        int err = n < 0 ? errno : 0;
        char line[64];
        int len = snprintf(line, sizeof line, "%zd %d %d %c", n, err, (int)got_usr1, n == 1 ? c : '-');
        write(report[1], line, len);
        _exit(0);
    }
    close(report[1]);                /* data[0] stays open: the write below must not EPIPE */
    msleep(150);                     /* the child is parked in its read by now */
    kill(pid, SIGUSR1);
    msleep(100);
    write(data[1], "x", 1);
    char line[64] = {0};
    ssize_t n = read(report[0], line, sizeof line - 1);
    int status;
    waitpid(pid, &status, 0);
    close(data[0]); close(data[1]); close(report[0]);
    if (restart)
        CHECK("read_sa_restart", n > 0 && strcmp(line, "1 0 1 x") == 0, "child said '%s'", line);
    else
        CHECK("read_eintr", n > 0 && strcmp(line, "-1 4 1 -") == 0, "child said '%s'", line);
}

/* A host timer (setitimer: its SIGALRM comes from the host kernel, not through
 * PM) fires while the child is parked reading a pipe in the VFS. */
static void host_timer(int with_handler) {
    int data[2];
    pipe(data);
    pid_t pid = fork();
    if (pid == 0) {
        if (with_handler) handler(SIGALRM, 0);
        struct itimerval it = {{0, 0}, {0, 100000}};
        setitimer(ITIMER_REAL, &it, NULL);
        char c;
        ssize_t n = read(data[0], &c, 1);
        _exit(n < 0 && errno == EINTR ? 42 : 1);
    }
    int status;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    waitpid(pid, &status, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    close(data[0]); close(data[1]);
    if (with_handler)
        CHECK("host_timer_eintr", WIFEXITED(status) && WEXITSTATUS(status) == 42 && took < 2,
              "status=%#x took=%.2f", status, took);
    else
        CHECK("host_timer_kills", WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM &&
              took < 2, "status=%#x took=%.2f", status, took);
}

/* SIGSTOP and SIGCONT for a child parked reading a pipe: it stops, continues,
 * and its read goes on (restarted) to get the byte written afterwards. */
static void read_stopped(void) {
    int data[2];
    pipe(data);
    pid_t pid = fork();
    if (pid == 0) {
        char c = 0;
        ssize_t n = read(data[0], &c, 1);
        _exit(n == 1 && c == 'y' ? 0 : 1);
    }
    msleep(150);
    int status, ok = 1;
    kill(pid, SIGSTOP);
    ok &= waitpid(pid, &status, WUNTRACED) == pid && WIFSTOPPED(status);
    kill(pid, SIGCONT);
    ok &= waitpid(pid, &status, WCONTINUED) == pid && WIFCONTINUED(status);
    write(data[1], "y", 1);
    ok &= waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    close(data[0]); close(data[1]);
    CHECK("read_stop_cont", ok, "status=%#x", status);
}

int main(void) {
    int status;
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* wait with no children at all */
    errno = 0;
    pid_t r = waitpid(-1, &status, 0);
    CHECK("wait_echild", r == -1 && errno == ECHILD, "r=%d errno=%d", r, errno);
    errno = 0;
    r = waitpid(-1, &status, WNOHANG);
    CHECK("wnohang_echild", r == -1 && errno == ECHILD, "r=%d errno=%d", r, errno);

    /* WNOHANG with a child that is not ready */
    pid_t kid = sleeper(5000);
    r = waitpid(-1, &status, WNOHANG);
    CHECK("wnohang_zero", r == 0, "r=%d errno=%d", r, errno);
    CHECK("child_pid", kid >= 5, "kid=%d", kid);

    /* WUNTRACED / WCONTINUED: stop and continue the sleeping child */
    kill(kid, SIGSTOP);
    r = waitpid(kid, &status, WUNTRACED);
    CHECK("wuntraced", r == kid && WIFSTOPPED(status) && WSTOPSIG(status) == SIGSTOP,
          "r=%d status=%#x", r, status);
    kill(kid, SIGCONT);
    r = waitpid(kid, &status, WCONTINUED);
    CHECK("wcontinued", r == kid && WIFCONTINUED(status), "r=%d status=%#x", r, status);

    /* a signal ends the (restarted) sleep: the status says which */
    kill(kid, SIGTERM);
    r = waitpid(kid, &status, 0);
    CHECK("killed_status", r == kid && WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM,
          "r=%d status=%#x", r, status);

    /* the reaped pid is free: kill answers ESRCH */
    errno = 0;
    int k = kill(kid, SIGTERM);
    CHECK("kill_esrch", k == -1 && errno == ESRCH, "k=%d errno=%d", k, errno);
    errno = 0;
    k = kill(30999, 0);
    CHECK("kill_esrch_unused", k == -1 && errno == ESRCH, "k=%d errno=%d", k, errno);

    /* the servers may not be signalled (SIGTERM to the VFS; signal 0, the permission check,
     * to the others) */
    for (int pid = 2; pid <= 4; pid++) {
        errno = 0;
        k = kill(pid, pid == 2 ? SIGTERM : 0);
        char name[32];
        snprintf(name, sizeof name, "kill_%d_eperm", pid);
        CHECK(name, k == -1 && errno == EPERM, "k=%d errno=%d", k, errno);
    }

    /* raise() goes through tgkill with glibc's host tid */
    handler(SIGUSR1, 0);
    got_usr1 = 0;
    raise(SIGUSR1);
    CHECK("raise_handler", got_usr1 == 1, "got=%d", (int)got_usr1);
    k = syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR1);
    CHECK("tgkill_own_tid", k == 0 && got_usr1 == 2, "k=%d got=%d", k, (int)got_usr1);

    /* a handled signal interrupts nanosleep: EINTR and the time left */
    pid_t parent = getpid();
    pid_t pinger = fork();
    if (pinger == 0) { msleep(200); kill(parent, SIGUSR1); _exit(0); }
    struct timespec req = {3, 0}, rem = {0, 0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    errno = 0;
    int s = nanosleep(&req, &rem);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK("nanosleep_eintr", s == -1 && errno == EINTR && took < 2.0 && rem.tv_sec >= 1 &&
          rem.tv_sec < 3, "s=%d errno=%d took=%.2f rem=%ld.%09ld", s, errno, took,
          (long)rem.tv_sec, rem.tv_nsec);
    waitpid(pinger, &status, 0);

    /* pipe reads parked in the VFS: EINTR, or restarted with SA_RESTART */
    read_interrupted(0);
    read_interrupted(1);

    read_stopped();

    /* signals the host raised behind PM's back end parked calls too */
    host_timer(0);
    host_timer(1);

    /* EPIPE comes with SIGPIPE */
    int fds[2];
    pipe(fds);
    close(fds[0]);                   /* no reader left anywhere */
    pid_t writer = fork();
    if (writer == 0) { write(fds[1], "x", 1); _exit(0); }
    close(fds[1]);
    waitpid(writer, &status, 0);
    CHECK("sigpipe_kills", WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE,
          "status=%#x", status);
    signal(SIGPIPE, SIG_IGN);
    pipe(fds);
    close(fds[0]);
    errno = 0;
    ssize_t w = write(fds[1], "x", 1);
    CHECK("epipe_ignored", w == -1 && errno == EPIPE, "w=%zd errno=%d", w, errno);
    close(fds[1]);

    printf("failures %d\n", failures);
    return failures;
}
