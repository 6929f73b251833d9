/* Random syscalls with random and garbage arguments, for xinim-run's tracer and
 * servers: they must never raise on what a program hands them.
 *
 * fuzz SEEDS CALLS [prog args...]: for each seed 1..SEEDS a child makes CALLS
 * random calls from the list below (srand(seed): the same calls every run) under
 * alarm(2); the parent kills a child still alive after 4 s.  Calls that would end
 * or hang the fuzzer itself, or reach outside it, are not in the list: exit,
 * kill and friends, fork/clone/vfork/execve, pause, rt_sigreturn, sigaction
 * (a garbage handler), sigsuspend, mmap MAP_FIXED, munmap/mremap/madvise/mprotect/brk (its own
 * memory), setrlimit, ptrace, futex, arch_prctl, set*priority/sched_* (host pids).
 * Then it prints a summary and, with a program given, execs it: the same boot
 * still serves the next program.  It refuses to run anywhere but under XINIM
 * (uname): natively, as root, random calls on random paths would garble the host. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const long CALLS[] = {
    SYS_read, SYS_write, SYS_open, SYS_close, SYS_stat, SYS_fstat, SYS_lstat, SYS_poll,
    SYS_lseek, SYS_mmap, SYS_rt_sigprocmask, SYS_ioctl, SYS_pread64, SYS_pwrite64,
    SYS_readv, SYS_writev, SYS_access, SYS_pipe, SYS_select, SYS_sched_yield, SYS_msync,
    SYS_mincore, SYS_dup, SYS_dup2, SYS_nanosleep, SYS_getitimer, SYS_getpid,
    SYS_socket, SYS_socketpair, SYS_wait4, SYS_uname, SYS_fcntl, SYS_flock, SYS_fsync,
    SYS_fdatasync, SYS_truncate, SYS_ftruncate, SYS_getdents, SYS_getcwd, SYS_chdir,
    SYS_fchdir, SYS_rename, SYS_mkdir, SYS_rmdir, SYS_creat, SYS_link, SYS_unlink,
    SYS_symlink, SYS_readlink, SYS_chmod, SYS_fchmod, SYS_chown, SYS_fchown, SYS_lchown,
    SYS_umask, SYS_gettimeofday, SYS_getrlimit, SYS_getrusage, SYS_sysinfo, SYS_times,
    SYS_getuid, SYS_getgid, SYS_geteuid, SYS_getegid, SYS_setpgid, SYS_getppid,
    SYS_getpgrp, SYS_setsid, SYS_getgroups, SYS_getpgid, SYS_getsid, SYS_rt_sigpending,
    SYS_rt_sigtimedwait, SYS_sigaltstack, SYS_utime, SYS_mknod,
    SYS_statfs, SYS_fstatfs, SYS_prctl, SYS_sync, SYS_gettid, SYS_time, SYS_setxattr,
    SYS_lsetxattr, SYS_fsetxattr, SYS_getxattr, SYS_lgetxattr, SYS_fgetxattr,
    SYS_listxattr, SYS_llistxattr, SYS_flistxattr, SYS_getdents64, SYS_fadvise64,
    SYS_clock_gettime, SYS_clock_getres, SYS_clock_nanosleep, SYS_utimes, SYS_waitid,
    SYS_openat, SYS_mkdirat, SYS_mknodat, SYS_fchownat, SYS_futimesat, SYS_newfstatat,
    SYS_unlinkat, SYS_renameat, SYS_linkat, SYS_symlinkat, SYS_readlinkat, SYS_fchmodat,
    SYS_faccessat, SYS_pselect6, SYS_ppoll, SYS_utimensat, SYS_dup3, SYS_pipe2,
    SYS_preadv, SYS_pwritev, SYS_getrandom, SYS_statx, SYS_faccessat2, SYS_renameat2,
    SYS_readahead, SYS_getcpu, SYS_eventfd2, SYS_memfd_create, SYS_timerfd_create,
    SYS_eventfd, SYS_epoll_create, SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_wait,
    SYS_epoll_pwait, SYS_epoll_pwait2, SYS_timerfd_settime, SYS_timerfd_gettime,
    SYS_signalfd, SYS_signalfd4, SYS_inotify_init, SYS_inotify_init1, SYS_inotify_add_watch,
    SYS_inotify_rm_watch,
};
#define NCALLS (sizeof CALLS / sizeof CALLS[0])

static const char *NAMES[] = {
    "f", "d", "d/f", "/tmp", "/tmp/fz", ".", "..", "", "/", "/proc/self/status",
    "/dev/null", "/dev/zero", "/tmp/fz/d/..", "l", "\xca\xfe\xff\xfe", "f/", "//x//",
    "user.x", "security.selinux", "/proc/self/fd/0", "/nonexistent/a/b",
};
#define NNAMES (sizeof NAMES / sizeof NAMES[0])

static unsigned char *scratch;       /* 4 pages: garbage and strings */

static uint64_t rnd64(void) {
    return (uint64_t)random() << 62 ^ (uint64_t)random() << 31 ^ (uint64_t)random();
}

static long arg(void) {
    switch (random() % 16) {
    case 0: return 0;
    case 1: return -1;
    case 2: return random() % 8;
    case 3: return random() % 64;                    /* an fd, maybe */
    case 4: return (long)rnd64();
    case 5: return (long)(uint32_t)random();
    case 6: return (long)NAMES[random() % NNAMES];
    case 7: return (long)NAMES[random() % NNAMES];
    case 8: return (long)(scratch + random() % (4 * 4096));
    case 9: return (long)(scratch + 4 * 4096 - random() % 64);   /* runs into a hole */
    case 10: return 1;
    case 11: return (long)0xffff800000000000UL;
    case 12: return (long)SIZE_MAX;
    case 13: return 1L << (random() % 63);
    case 14: return INT32_MIN;
    default: return (long)scratch;
    }
}

static void fuzz(unsigned seed, int calls) {
    sigset_t alarm_only;
    sigemptyset(&alarm_only);
    sigaddset(&alarm_only, SIGALRM);
    srandom(seed);
    alarm(2);
    for (int i = 0; i < calls; i++) {
        long nr = CALLS[random() % NCALLS];
        long a[6];
        for (int j = 0; j < 6; j++)
            a[j] = arg();
        if (nr == SYS_mmap)
            a[3] &= ~(long)(MAP_FIXED | MAP_FIXED_NOREPLACE);
        if (nr == SYS_nanosleep || nr == SYS_clock_nanosleep || nr == SYS_rt_sigtimedwait)
            a[nr == SYS_clock_nanosleep ? 2 : nr == SYS_rt_sigtimedwait ? 2 : 0] = 0;
        if (random() % 8 == 0) {     /* fresh garbage, and a string or two in it */
            for (int j = 0; j < 64; j++)
                scratch[random() % (4 * 4096)] = (unsigned char)random();
            strcpy((char *)scratch + random() % 4000, NAMES[random() % NNAMES]);
        }
        syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        if (nr == SYS_rt_sigprocmask)    /* the alarm must still come */
            sigprocmask(SIG_UNBLOCK, &alarm_only, NULL);
    }
}

int main(int argc, char **argv) {
    struct utsname u;
    if (uname(&u) != 0 || (strcmp(u.sysname, "XINIM") != 0 && !strstr(u.version, "XINIM"))) {
        fprintf(stderr, "fuzz: runs only under XINIM (it would garble the host)\n");
        return 4;
    }
    int seeds = argc > 1 ? atoi(argv[1]) : 20, calls = argc > 2 ? atoi(argv[2]) : 200;
    mkdir("/tmp/fz", 0777);
    if (chdir("/tmp/fz") != 0) { perror("chdir"); return 2; }
    close(open("f", O_CREAT | O_WRONLY, 0644));
    mkdir("d", 0755);
    symlink("f", "l");
    scratch = mmap(NULL, 5 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(scratch + 4 * 4096, 4096);
    int ended = 0, killed = 0, signalled = 0;
    for (int seed = 1; seed <= seeds; seed++) {
        pid_t child = fork();
        if (child < 0) { perror("fork"); return 2; }
        if (child == 0) {
            fuzz((unsigned)seed, calls);
            _exit(0);
        }
        int status = 0;
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
            pid_t got = waitpid(child, &status, WNOHANG);
            if (got == child)
                break;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - start.tv_sec >= 4) {
                kill(child, SIGKILL);
                waitpid(child, &status, 0);
                killed++;
                break;
            }
            struct timespec t = {0, 10 * 1000 * 1000};
            nanosleep(&t, NULL);
        }
        if (WIFEXITED(status))
            ended++;
        else if (WIFSIGNALED(status))
            signalled++;
    }
    printf("fuzz: %d seeds x %d calls: %d ended, %d by a signal, %d killed after 4 s\n",
           seeds, calls, ended, signalled, killed);
    fflush(stdout);
    if (argc > 3) {
        execv(argv[3], argv + 3);
        perror("execv");
        return 3;
    }
    return 0;
}
