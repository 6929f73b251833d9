/* Test program for the interceptor tests (tests/test_intercept_*.py).
 * Usage: intercept_prog MODE [ARGS...]; each mode exercises one mechanism.
 * getppid is the "trapped" syscall most modes use: the test handler decides
 * what it returns. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long trap3(long a, long b, long c) { return syscall(SYS_getppid, a, b, c, 0, 0, 0); }

static const char ro_text[] = "read-only text";

static void *exec_thread(void *arg) {
    (void)arg;
    char *argv[] = {"/bin/echo", "exec from thread", NULL};
    execv(argv[0], argv);
    perror("execv");
    _exit(99);
}

static void *getppid_thread(void *arg) {
    *(long *)arg = syscall(SYS_getppid);
    return NULL;
}

static volatile sig_atomic_t got_usr1;
static void on_usr1(int s) { (void)s; got_usr1 = 1; }

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "getppid";
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(mode, "getppid")) {           /* getppid N: print last answer */
        long n = argc > 2 ? atol(argv[2]) : 1, r = 0;
        for (long i = 0; i < n; i++) r = syscall(SYS_getppid);
        printf("%ld\n", r);
    } else if (!strcmp(mode, "exit")) {       /* exit CODE */
        return atoi(argv[2]);
    } else if (!strcmp(mode, "segv")) {
        *(volatile int *)0 = 1;
    } else if (!strcmp(mode, "fork")) {       /* child: getppid, exit 7 */
        pid_t pid = fork();
        if (pid == 0) { printf("child %ld\n", (long)syscall(SYS_getppid)); _exit(7); }
        int st;
        waitpid(pid, &st, 0);
        printf("parent %ld status %d\n", (long)syscall(SYS_getppid), WEXITSTATUS(st));
    } else if (!strcmp(mode, "vfork")) {
        pid_t pid = vfork();
        if (pid == 0) { char *a[] = {"/bin/true", NULL}; execv(a[0], a); _exit(98); }
        int st;
        waitpid(pid, &st, 0);
        printf("vfork child status %d\n", WEXITSTATUS(st));
    } else if (!strcmp(mode, "thread")) {     /* a thread calls getppid */
        pthread_t th; long r = 0;
        pthread_create(&th, NULL, getppid_thread, &r);
        pthread_join(th, NULL);
        printf("thread %ld\n", r);
    } else if (!strcmp(mode, "exec_thread")) { /* a non-leader thread execs */
        pthread_t th;
        pthread_create(&th, NULL, exec_thread, NULL);
        for (;;) pause();
    } else if (!strcmp(mode, "exec")) {       /* exec PROGRAM ARGS... */
        execv(argv[2], argv + 2);
        perror("execv");
        return 99;
    } else if (!strcmp(mode, "mem")) {        /* handler reads/writes our memory */
        char rw[32] = "????????";
        long r = trap3((long)"hello tracer", (long)ro_text, (long)rw);
        printf("r=%ld rw=%s ro=%s\n", r, rw, ro_text);
    } else if (!strcmp(mode, "badptr")) {     /* trapped call with a bad pointer */
        long r = trap3(1, 0, 0);
        printf("r=%ld errno=%d\n", r, r < 0 ? errno : 0);
        printf("still running\n");
    } else if (!strcmp(mode, "inject")) {     /* handler maps memory for us */
        long r = syscall(SYS_getppid);
        printf("addr=%#lx\n", r);
        if (r > 0) printf("content=%s\n", (char *)r);
    } else if (!strcmp(mode, "signal")) {     /* SIGUSR1 to self, handled */
        signal(SIGUSR1, on_usr1);
        raise(SIGUSR1);
        printf("got_usr1=%d\n", (int)got_usr1);
    } else if (!strcmp(mode, "signal_trap")) { /* SIGUSR1 arrives while trapped */
        signal(SIGUSR1, on_usr1);
        long r = syscall(SYS_getppid);
        printf("r=%ld got_usr1=%d\n", r, (int)got_usr1);
    } else if (!strcmp(mode, "stop")) {       /* stop self; test sends SIGCONT */
        printf("stopping\n");
        raise(SIGSTOP);
        printf("continued %ld\n", (long)syscall(SYS_getppid));
    } else if (!strcmp(mode, "x32")) {
        long r = syscall(0x40000000 | SYS_getpid);
        printf("r=%ld errno=%d\n", r, errno);
    } else if (!strcmp(mode, "int80")) {     /* i386 entry: filter kills us */
        long r;
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
        printf("int80 %ld\n", r);
    } else if (!strcmp(mode, "write")) {      /* write(1, "abcdef\n", 7) */
        long r = write(1, "abcdef\n", 7);
        printf("\nr=%ld\n", r);
    } else if (!strcmp(mode, "sleep")) {
        long r = syscall(SYS_getppid);
        printf("woke %ld\n", r);
    } else if (!strcmp(mode, "forkbomb")) {   /* N children, each getppid, not waited */
        int n = atoi(argv[2]);
        for (int i = 0; i < n; i++)
            if (fork() == 0) { syscall(SYS_getppid); _exit(0); }
        syscall(SYS_getppid);
        sleep(60); /* killed by the test */
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
