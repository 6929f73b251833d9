/* EPOLLEXCLUSIVE: N processes, each with its own epoll watching one pipe with
 * EPOLLIN|EPOLLET|EPOLLEXCLUSIVE, all asleep in epoll_wait; each byte written
 * wakes exactly one of them (LTP epoll_wait16).  Prints the running total of
 * woken waiters after each byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef EPOLLEXCLUSIVE
#define EPOLLEXCLUSIVE (1u << 28)
#endif
#define N 4

static char state(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : '?';
}

int main(void) {
    int data[2], note[2];
    volatile int *woken = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (woken == MAP_FAILED || pipe(data) < 0 || pipe(note) < 0)
        return 1;
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLET | EPOLLEXCLUSIVE};
            int ep = epoll_create1(0);
            if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, data[0], &ev) < 0)
                _exit(2);
            if (epoll_wait(ep, &ev, 1, -1) != 1)
                _exit(3);
            __atomic_add_fetch(woken, 1, __ATOMIC_SEQ_CST);
            if (write(note[1], "w", 1) != 1)
                _exit(4);
            _exit(0);
        }
    }
    for (int i = 0; i < N; i++)         /* every child asleep in epoll_wait */
        for (int tries = 0; state(pids[i]) != 'S'; tries++) {
            if (tries > 20000) {
                printf("child %d never slept\n", i);
                return 1;
            }
            usleep(1000);
        }
    for (int round = 1; round <= N; round++) {
        char c;
        if (write(data[1], "x", 1) != 1 || read(note[0], &c, 1) != 1)
            return 1;
        printf("byte %d: %d woken\n", round, __atomic_load_n(woken, __ATOMIC_SEQ_CST));
        if (read(data[0], &c, 1) != 1)
            return 1;
    }
    for (int i = 0; i < N; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st))
            printf("child %d: status %#x\n", i, st);
    }
    return 0;
}
