/* Stops and continues seen by the parent (issue 14): waitpid(WUNTRACED) reports
 * WIFSTOPPED with the signal that stopped the child (SIGSTOP, SIGTSTP, SIGTTIN),
 * waitpid(WCONTINUED) WIFCONTINUED, waitid's CLD_STOPPED/CLD_CONTINUED, the
 * parent gets SIGCHLD for each (its si_code is not compared: PM's own SIGCHLD,
 * which says SI_USER, can come after the host's); a child in an orphaned process group ignores
 * SIGTSTP (and SIGSTOP still stops it).  Prints only what is the same natively
 * and under XINIM. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t chld_code;   /* si_code + 100: never 0 once caught */

static void on_chld(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    chld_code = si->si_code + 100;
}

static const char *code_name(int code) {
    switch (code) {
    case CLD_EXITED: return "CLD_EXITED";
    case CLD_KILLED: return "CLD_KILLED";
    case CLD_STOPPED: return "CLD_STOPPED";
    case CLD_CONTINUED: return "CLD_CONTINUED";
    default: return "other";
    }
}

static void show(const char *what, int status) {
    if (WIFSTOPPED(status))
        printf("%s: stopped by %s\n", what, strsignal(WSTOPSIG(status)));
    else if (WIFCONTINUED(status))
        printf("%s: continued\n", what);
    else if (WIFSIGNALED(status))
        printf("%s: killed by %s\n", what, strsignal(WTERMSIG(status)));
    else
        printf("%s: exited %d\n", what, WEXITSTATUS(status));
}

static pid_t child(int own_group) {
    pid_t pid = fork();
    if (pid == 0) {
        if (own_group)
            setpgid(0, 0);
        for (;;)
            pause();
    }
    if (own_group)
        setpgid(pid, pid);
    return pid;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa = {.sa_sigaction = on_chld, .sa_flags = SA_SIGINFO | SA_RESTART};
    sigaction(SIGCHLD, &sa, NULL);
    setpgid(0, 0);   /* our own group: the children's groups have a parent outside them */
    int status;
    int sigs[] = {SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU};
    for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        pid_t pid = child(1);
        chld_code = 0;
        kill(pid, sigs[i]);
        pid_t got = waitpid(pid, &status, WUNTRACED);
        show(got == pid ? "wait" : "wrong pid", status);
        while (!chld_code)
            usleep(1000);
        printf("sigchld: %d\n", chld_code != 0);
        chld_code = 0;
        kill(pid, SIGCONT);
        got = waitpid(pid, &status, WCONTINUED);
        show(got == pid ? "wait" : "wrong pid", status);
        while (!chld_code)
            usleep(1000);
        printf("sigchld: %d\n", chld_code != 0);
        kill(pid, SIGTSTP);
        siginfo_t si = {0};
        waitid(P_PID, pid, &si, WSTOPPED);
        printf("waitid: %s %s\n", code_name(si.si_code), strsignal(si.si_status));
        kill(pid, SIGCONT);
        memset(&si, 0, sizeof si);
        waitid(P_PID, pid, &si, WCONTINUED);
        printf("waitid: %s %s\n", code_name(si.si_code), strsignal(si.si_status));
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        show("end", status);
    }
    /* a child that made itself a session leader is alone in an orphaned group */
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        for (;;)
            pause();
    }
    usleep(100000);
    kill(pid, SIGTSTP);
    usleep(200000);                  /* time to stop, had it been going to */
    pid_t got = waitpid(pid, &status, WUNTRACED | WNOHANG);
    printf("orphan after SIGTSTP: %s\n", got == 0 ? "running" : "changed");
    kill(pid, SIGSTOP);
    got = waitpid(pid, &status, WUNTRACED);
    show("orphan", status);
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    show("orphan end", status);
    return 0;
}
