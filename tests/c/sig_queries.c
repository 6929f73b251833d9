/* sig_queries: dispositions and masks set (through PM and the host), then read
 * back with the query forms -- sigaction(sig, NULL, &old), sigprocmask(how,
 * NULL, &old) -- which the seccomp filter lets run with no stop, across an
 * exec too (what the new image inherits).  Prints the same natively. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void on_usr2(int sig) { (void)sig; }

static void show(const char *when) {
    int ign = 0, dfl = 0, caught = 0;
    for (int sig = 1; sig < 65; sig++) {
        struct sigaction old;
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        if (sigaction(sig, NULL, &old)) { printf("%s sigaction %d failed\n", when, sig); continue; }
        if (old.sa_handler == SIG_IGN) ign++;
        else if (old.sa_handler == SIG_DFL) dfl++;
        else caught++;
    }
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    printf("%s ign %d dfl %d caught %d usr1-unblocked %d term-blocked %d usr2-blocked %d\n", when,
           ign, dfl, caught, sigismember(&cur, SIGUSR1) == 0, sigismember(&cur, SIGTERM),
           sigismember(&cur, SIGUSR2));
    printf("%s bad-size %d\n", when, (int)syscall(14 /* rt_sigprocmask */, SIG_BLOCK, NULL, &cur, 4));
}

int main(int argc, char **argv) {
    if (argc > 1) {                 /* the exec'd image */
        show("after-exec");
        return 0;
    }
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, on_usr2);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGUSR2);
    sigprocmask(SIG_BLOCK, &s, NULL);
    show("set");
    fflush(stdout);
    execl("/proc/self/exe", argv[0], "again", (char *)NULL);
    perror("exec");
    return 1;
}
