/* POSIX timers, setitimer/getitimer and alarm (issue 14): a timer's SIGALRM
 * interrupts nanosleep with EINTR and carries SI_TIMER and sigev_value; a NULL
 * sigevent means SIGALRM with the timer id; SIGEV_NONE runs silently;
 * SIGEV_THREAD_ID and glibc's SIGEV_THREAD; setitimer's SIGALRM interrupts
 * pause; alarm returns the seconds left; errors as Linux.  Prints only what
 * is the same natively and under XINIM (a differential test compares). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_sig, got_code, got_value;

static void on_signal(int sig, siginfo_t *si, void *ctx) {
    (void)ctx;
    got_sig = sig;
    got_code = si->si_code;
    got_value = si->si_value.sival_int;
}

static const char *err(int rc) { return rc == 0 ? "ok" : strerror(errno); }

static volatile int thread_ran;
static void in_thread(union sigval v) { thread_ran = v.sival_int; }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa = {.sa_sigaction = on_signal, .sa_flags = SA_SIGINFO};
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);

    /* 1. SIGEV_SIGNAL: SIGALRM with sigev_value interrupts nanosleep */
    timer_t t;
    struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM,
                          .sigev_value.sival_int = 77};
    printf("create: %s\n", err(timer_create(CLOCK_MONOTONIC, &ev, &t)));
    struct itimerspec its = {.it_value = {0, 50 * 1000 * 1000}}, cur;
    printf("settime: %s\n", err(timer_settime(t, 0, &its, NULL)));
    timer_gettime(t, &cur);
    printf("armed: %d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0);
    struct timespec nap = {5, 0}, left = {0, 0};
    int rc = nanosleep(&nap, &left);
    printf("nanosleep: %d %s left>3s=%d\n", rc, rc ? strerror(errno) : "", left.tv_sec >= 3);
    printf("signal: %d code=%s value=%d\n", got_sig,
           got_code == SI_TIMER ? "SI_TIMER" : "other", got_value);
    timer_gettime(t, &cur);
    printf("after: %ld %ld\n", (long)cur.it_value.tv_sec, cur.it_value.tv_nsec);
    printf("overrun: %d\n", timer_getoverrun(t));

    /* 2. periodic: old value reported, then disarm */
    struct itimerspec per = {.it_value = {10, 0}, .it_interval = {3, 0}}, old;
    timer_settime(t, 0, &per, NULL);
    struct itimerspec off = {{0, 0}, {0, 0}};
    timer_settime(t, 0, &off, &old);
    printf("old: interval=%ld value>9s=%d\n", (long)old.it_interval.tv_sec,
           old.it_value.tv_sec >= 9);
    printf("delete: %s\n", err(timer_delete(t)));
    printf("delete again: %s\n", err(timer_delete(t)));
    printf("gettime deleted: %s\n", err(timer_gettime(t, &cur)));

    /* 3. a NULL sigevent: SIGALRM with the timer id as si_value */
    timer_t n;
    timer_create(CLOCK_REALTIME, NULL, &n);
    got_sig = 0;
    struct itimerspec soon = {.it_value = {0, 20 * 1000 * 1000}};
    timer_settime(n, 0, &soon, NULL);
    while (!got_sig)
        pause();
    printf("null sigevent: sig=%d value_is_id=%d\n", got_sig, got_value == (int)(long)n);
    timer_delete(n);

    /* 4. an absolute time on CLOCK_REALTIME */
    timer_t a;
    timer_create(CLOCK_REALTIME, &ev, &a);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct itimerspec abs_ = {.it_value = {now.tv_sec, now.tv_nsec + 30 * 1000 * 1000}};
    if (abs_.it_value.tv_nsec >= 1000000000) {
        abs_.it_value.tv_sec++;
        abs_.it_value.tv_nsec -= 1000000000;
    }
    got_sig = 0;
    timer_settime(a, TIMER_ABSTIME, &abs_, NULL);
    while (!got_sig)
        pause();
    printf("abstime: sig=%d\n", got_sig);
    timer_delete(a);

    /* 5. SIGEV_NONE: armed, counts down, no signal */
    timer_t s;
    struct sigevent none = {.sigev_notify = SIGEV_NONE};
    timer_create(CLOCK_MONOTONIC, &none, &s);
    struct itimerspec sec = {.it_value = {1, 0}};
    timer_settime(s, 0, &sec, NULL);
    timer_gettime(s, &cur);
    printf("none: counting=%d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0);
    timer_delete(s);

    /* 6. SIGEV_THREAD_ID: to this thread, taken with sigwaitinfo */
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    struct sigevent tev = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGUSR1,
                           .sigev_value.sival_int = 5};
    tev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    timer_t th;
    printf("thread id timer: %s\n", err(timer_create(CLOCK_MONOTONIC, &tev, &th)));
    timer_settime(th, 0, &soon, NULL);
    siginfo_t si;
    int sig = sigwaitinfo(&usr1, &si);
    printf("sigwaitinfo: %d code=%s value=%d\n", sig,
           si.si_code == SI_TIMER ? "SI_TIMER" : "other", si.si_value.sival_int);
    timer_delete(th);
    tev._sigev_un._tid = 999999;
    printf("thread id not ours: %s\n", err(timer_create(CLOCK_MONOTONIC, &tev, &th)));

    /* 7. glibc's SIGEV_THREAD: the function runs in a new thread */
    struct sigevent thr = {.sigev_notify = SIGEV_THREAD, .sigev_notify_function = in_thread,
                           .sigev_value.sival_int = 9};
    timer_t g;
    printf("sigev_thread: %s\n", err(timer_create(CLOCK_MONOTONIC, &thr, &g)));
    timer_settime(g, 0, &soon, NULL);
    for (int i = 0; i < 500 && !thread_ran; i++)
        usleep(10000);
    printf("thread ran: %d\n", thread_ran);
    timer_delete(g);

    /* 8. errors */
    printf("bad clock: %s\n", err(timer_create(99, &ev, &t)));
    timer_create(CLOCK_MONOTONIC, &ev, &t);
    struct itimerspec bad = {.it_value = {0, 2000000000L}};
    printf("bad nsec: %s\n", err(timer_settime(t, 0, &bad, NULL)));
    timer_delete(t);

    /* 9. setitimer(ITIMER_REAL) interrupts pause; getitimer; alarm */
    struct itimerval iv = {.it_value = {0, 40000}}, ov;
    got_sig = 0;
    printf("setitimer: %s\n", err(setitimer(ITIMER_REAL, &iv, NULL)));
    rc = pause();
    printf("pause: %d %s sig=%d\n", rc, strerror(errno), got_sig);
    getitimer(ITIMER_REAL, &ov);
    printf("getitimer: %ld %ld\n", (long)ov.it_value.tv_sec, (long)ov.it_value.tv_usec);
    struct itimerval big = {.it_value = {7, 0}, .it_interval = {2, 0}};
    setitimer(ITIMER_REAL, &big, NULL);
    getitimer(ITIMER_REAL, &ov);
    printf("getitimer armed: interval=%ld value>6s=%d\n", (long)ov.it_interval.tv_sec,
           ov.it_value.tv_sec >= 6);
    printf("alarm replaces it: %u\n", alarm(5));
    printf("alarm(0): %u\n", alarm(0));
    got_sig = 0;
    alarm(1);
    rc = nanosleep(&nap, NULL);
    printf("alarm nanosleep: %d %s sig=%d\n", rc, rc ? strerror(errno) : "", got_sig);
    printf("bad which: %s\n", err(setitimer(7, &iv, NULL)));
    struct itimerval virt = {.it_value = {100, 0}};
    printf("virtual: %s\n", err(setitimer(ITIMER_VIRTUAL, &virt, NULL)));
    getitimer(ITIMER_VIRTUAL, &ov);
    printf("virtual armed: %d\n", ov.it_value.tv_sec >= 99);
    return 0;
}
