/* bench/events.py's measurements, timed inside the runner.
 *
 *   events_bench wake N     epoll_wait wake-up latency through an eventfd: a child
 *                           writes CLOCK_MONOTONIC ns as the eventfd's value, the
 *                           parent (in epoll_wait) reads it back; ping-pong, N rounds
 *   events_bench timer N    a 1 ms interval timerfd read N times: lateness of each
 *                           wake after its expiry, and expirations per read
 * Prints "us LIST" (one figure per round, microseconds) and a summary line.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int wake(int n) {
    int go = eventfd(0, 0), back = eventfd(0, 0);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, go, &ev);
    pid_t pid = fork();
    uint64_t v;
    if (pid == 0) {
        for (int i = 0; i < n; i++) {
            v = now_ns();
            write(go, &v, 8);
            read(back, &v, 8);               /* wait for the parent to take it */
        }
        _exit(0);
    }
    printf("us");
    for (int i = 0; i < n; i++) {
        epoll_wait(ep, &ev, 1, -1);
        uint64_t t = now_ns();
        read(go, &v, 8);
        printf(" %.1f", (t - v) / 1000.0);
        v = 1;
        write(back, &v, 8);
    }
    printf("\n");
    waitpid(pid, NULL, 0);
    return 0;
}

static int timer(int n) {
    int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec its = {.it_interval = {0, 1000000}, .it_value = {0, 1000000}};
    uint64_t start = now_ns(), ticks = 0, v;
    timerfd_settime(tfd, 0, &its, NULL);
    printf("us");
    int reads = 0;
    while (ticks < (uint64_t)n) {
        read(tfd, &v, 8);
        uint64_t t = now_ns();
        ticks += v;
        reads++;
        uint64_t due = start + ticks * 1000000ULL;     /* the expiry this read reports */
        printf(" %.1f", t > due ? (t - due) / 1000.0 : 0.0);
    }
    double secs = (now_ns() - start) / 1e9;
    printf("\nticks %llu reads %d seconds %.3f\n", (unsigned long long)ticks, reads, secs);
    return 0;
}

int main(int argc, char **argv) {
    int n = argc > 2 ? atoi(argv[2]) : 1000;
    if (argc > 1 && !strcmp(argv[1], "wake"))
        return wake(n);
    if (argc > 1 && !strcmp(argv[1], "timer"))
        return timer(n);
    fprintf(stderr, "usage: events_bench wake|timer N\n");
    return 2;
}
