/* Root-writable /proc/sys files (vfs_fuse/sysctl.py).
 *
 *   sysctl_write errors   -- what fails, and how (safe to run natively: nothing changes)
 *   sysctl_write set      -- writes limits and shows their owners honour them
 *                            (run under XINIM only: natively it would change the host)
 *
 * Every line printed is a fact Linux documents (proc(5), sysctl/kernel.rst).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SHM_HUGETLB
#define SHM_HUGETLB 04000
#endif

static const char *err(int e) {
    switch (e) {
    case 0: return "OK";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case ENOSPC: return "ENOSPC";
    case ENOMEM: return "ENOMEM";
    case EROFS: return "EROFS";
    default: return strerror(e);
    }
}

/* open for writing and write ``text``: "OK" or the errno of the step that failed */
static const char *put(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_TRUNC);
    if (fd < 0)
        return err(errno);
    ssize_t n = write(fd, text, strlen(text));
    int e = n < 0 ? errno : 0;
    close(fd);
    return err(e);
}

static long get(const char *path) {
    char buf[64] = "";
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n > 0 ? atol(buf) : -1;
}

static void as_nobody(void (*fn)(void)) {
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(65534) || setuid(65534))
            _exit(1);
        fn();
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
}

static void nobody_writes(void) {
    printf("nobody writes pipe-max-size: %s\n", put("/proc/sys/fs/pipe-max-size", "8192"));
    struct rlimit none = {0, 0};         /* as LTP shmget02: no locked memory either */
    setrlimit(RLIMIT_MEMLOCK, &none);
    printf("nobody shmget SHM_HUGETLB: %s\n",
           shmget(IPC_PRIVATE, 4096, IPC_CREAT | SHM_HUGETLB | 0600) < 0 ? err(errno) : "OK");
}

static void errors(void) {
    printf("ostype: %s\n", put("/proc/sys/kernel/ostype", "Hurd"));
    printf("pipe-max-size -1: %s\n", put("/proc/sys/fs/pipe-max-size", "-1"));
    printf("pipe-max-size 2^31+1: %s\n", put("/proc/sys/fs/pipe-max-size", "2147483649"));
    printf("msgmni x: %s\n", put("/proc/sys/kernel/msgmni", "x"));
    printf("msgmni 32769: %s\n", put("/proc/sys/kernel/msgmni", "32769"));
    printf("shmmni 40000: %s\n", put("/proc/sys/kernel/shmmni", "40000"));
    printf("shmmax -5: %s\n", put("/proc/sys/kernel/shmmax", "-5"));
    as_nobody(nobody_writes);
    /* over pipe-max-size takes CAP_SYS_RESOURCE: XINIM root has it when the host
     * side has it (a container may not), so this is the same either way */
    int p[2];
    if (pipe(p) == 0) {
        long over = get("/proc/sys/fs/pipe-max-size") * 2;
        int r = fcntl(p[0], F_SETPIPE_SZ, (int)over);
        printf("root F_SETPIPE_SZ 2*max: %s\n", r < 0 ? err(errno) : "OK");
        close(p[0]);
        close(p[1]);
    }
}

static int pipe_size_as_nobody;

static void nobody_pipe(void) {
    int p[2];
    if (pipe(p))
        return;
    int r = fcntl(p[0], F_SETPIPE_SZ, pipe_size_as_nobody);
    printf("nobody F_SETPIPE_SZ %d: %s\n", pipe_size_as_nobody, r < 0 ? err(errno) : "OK");
}

static void set(void) {
    long old_pipe = get("/proc/sys/fs/pipe-max-size");
    printf("pipe-max-size 5000: %s\n", put("/proc/sys/fs/pipe-max-size", "5000"));
    printf("reads %ld\n", get("/proc/sys/fs/pipe-max-size"));       /* rounded: 8192 */
    pipe_size_as_nobody = 8192;
    as_nobody(nobody_pipe);
    pipe_size_as_nobody = 16384;
    as_nobody(nobody_pipe);

    printf("shmmax 8192: %s\n", put("/proc/sys/kernel/shmmax", "8192"));
    printf("reads %ld\n", get("/proc/sys/kernel/shmmax"));
    int id = shmget(IPC_PRIVATE, 8193, IPC_CREAT | 0600);
    printf("shmget 8193: %s\n", id < 0 ? err(errno) : "OK");
    id = shmget(IPC_PRIVATE, 8192, IPC_CREAT | 0600);
    printf("shmget 8192: %s\n", id < 0 ? err(errno) : "OK");
    if (id >= 0)
        shmctl(id, IPC_RMID, NULL);
    printf("shmget SHM_HUGETLB as root: %s\n",
           shmget(IPC_PRIVATE, 4096, IPC_CREAT | SHM_HUGETLB | 0600) < 0 ? err(errno) : "OK");

    struct msginfo info;
    int used = msgctl(0, MSG_INFO, (struct msqid_ds *)&info);
    char text[32];
    snprintf(text, sizeof text, "%d\n", used + 2);
    printf("msgmni used+2: %s\n", put("/proc/sys/kernel/msgmni", text));
    int q[3];
    for (int i = 0; i < 3; i++) {
        q[i] = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
        printf("msgget %d: %s\n", i, q[i] < 0 ? err(errno) : "OK");
    }
    for (int i = 0; i < 3; i++)
        if (q[i] >= 0)
            msgctl(q[i], IPC_RMID, NULL);
    printf("msgmax 100: %s\n", put("/proc/sys/kernel/msgmax", "100"));
    struct { long mtype; char mtext[200]; } m = { 1, "" };
    int mq = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    printf("msgsnd 101: %s\n", msgsnd(mq, &m, 101, IPC_NOWAIT) < 0 ? err(errno) : "OK");
    printf("msgsnd 100: %s\n", msgsnd(mq, &m, 100, IPC_NOWAIT) < 0 ? err(errno) : "OK");
    msgctl(mq, IPC_RMID, NULL);
    printf("domainname: %s\n", put("/proc/sys/kernel/domainname", "xinim.test\n"));
    char dn[80] = "";
    int fd = open("/proc/sys/kernel/domainname", O_RDONLY);
    if (fd >= 0 && read(fd, dn, sizeof dn - 1) > 0)
        printf("reads %s", dn);
    if (fd >= 0)
        close(fd);
    (void)old_pipe;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "errors"))
        errors();
    else if (!strcmp(argv[1], "set"))
        set();
    else
        return 2;
    return 0;
}
