/* Issue 15 items 4-6: System V IPC, POSIX message queues, shared file maps,
 * mount.  Run natively and under xinim-run; the outputs must match.
 * usage: sysv_ipc DIR SECTION...  (DIR: a scratch directory) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/mount.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *dir;

static const char *en(int e) {
    switch (e) {
    case 0: return "OK";
    case EINVAL: return "EINVAL";
    case EEXIST: return "EEXIST";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EIDRM: return "EIDRM";
    case EAGAIN: return "EAGAIN";
    case ENOMSG: return "ENOMSG";
    case E2BIG: return "E2BIG";
    case EINTR: return "EINTR";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EBADF: return "EBADF";
    case EMSGSIZE: return "EMSGSIZE";
    case ENODEV: return "ENODEV";
    case EBUSY: return "EBUSY";
    case ENOTDIR: return "ENOTDIR";
    case EFAULT: return "EFAULT";
    default: { static char b[32]; snprintf(b, sizeof b, "errno%d", e); return b; }
    }
}
#define R(call) ((call) < 0 ? en(errno) : "OK")

static void waitchild(pid_t pid) {
    int st;
    waitpid(pid, &st, 0);
    printf("child status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

/* --- shared memory ---------------------------------------------------------------- */
static void sec_shm(void) {
    key_t key = 0x5eed0000 + (getpid() & 0xffff);
    int id = shmget(key, 10000, IPC_CREAT | IPC_EXCL | 0600);
    printf("shmget create: %s\n", id >= 0 ? "OK" : en(errno));
    printf("shmget excl again: %s\n", R(shmget(key, 10000, IPC_CREAT | IPC_EXCL | 0600)));
    printf("shmget same: %s\n", shmget(key, 0, 0) == id ? "same id" : en(errno));
    printf("shmget bigger: %s\n", R(shmget(key, 20000, 0)));
    printf("shmget missing: %s\n", R(shmget(key + 0x10000000, 100, 0)));
    printf("shmget size 0: %s\n", R(shmget(IPC_PRIVATE, 0, 0600)));
    char *p = shmat(id, NULL, 0);
    printf("shmat: %s\n", p == (void *)-1 ? en(errno) : "OK");
    printf("fresh zero: %d\n", p[0] == 0 && p[9999] == 0);
    pid_t pid = fork();
    if (pid == 0) {                 /* the child attaches anew and writes */
        char *q = shmat(id, NULL, 0);
        if (q == (void *)-1) _exit(3);
        strcpy(q, "written by the child");
        strcpy(p + 5000, "through the inherited attach");
        shmdt(q);
        _exit(0);
    }
    waitchild(pid);
    printf("parent reads: %s / %s\n", p, p + 5000);
    struct shmid_ds ds;
    printf("IPC_STAT: %s\n", R(shmctl(id, IPC_STAT, &ds)));
    printf("segsz %zu nattch %lu mode %o cpid-is-me %d lpid-is-child %d\n", ds.shm_segsz,
           (unsigned long)ds.shm_nattch, ds.shm_perm.mode & 0777, ds.shm_cpid == getpid(),
           ds.shm_lpid == pid);
    ds.shm_perm.mode = 0640;
    printf("IPC_SET: %s\n", R(shmctl(id, IPC_SET, &ds)));
    shmctl(id, IPC_STAT, &ds);
    printf("mode now %o\n", ds.shm_perm.mode & 0777);
    char *p2 = shmat(id, NULL, SHM_RDONLY);
    printf("second attach sees: %s\n", p2 == (void *)-1 ? en(errno) : p2);
    shmctl(id, IPC_STAT, &ds);
    printf("nattch %lu\n", (unsigned long)ds.shm_nattch);
    printf("shmdt unaligned: %s\n", R(shmdt(p + 1)));
    printf("shmdt not attached: %s\n", R(shmdt(p + 8192)));
    printf("shmdt: %s\n", R(shmdt(p2)));
    printf("IPC_RMID: %s\n", R(shmctl(id, IPC_RMID, NULL)));
    printf("key gone: %s\n", R(shmget(key, 0, 0)));
    shmctl(id, IPC_STAT, &ds);
    printf("still attached, dest %d, data %s\n", !!(ds.shm_perm.mode & SHM_DEST), p);
    printf("shmdt last: %s\n", R(shmdt(p)));
    printf("IPC_STAT after: %s\n", R(shmctl(id, IPC_STAT, &ds)));
    printf("shmat bad id: %s\n", shmat(-1, NULL, 0) == (void *)-1 ? en(errno) : "OK");
    /* a segment survives its creator, until IPC_RMID */
    int id2 = shmget(IPC_PRIVATE, 4096, 0600);
    pid = fork();
    if (pid == 0) {
        char *q = shmat(id2, NULL, 0);
        strcpy(q, "left by an exited child");
        _exit(0);                    /* exit detaches */
    }
    waitchild(pid);
    char *r = shmat(id2, NULL, 0);
    printf("after the child's exit: %s\n", r);
    shmctl(id2, IPC_STAT, &ds);
    printf("nattch %lu\n", (unsigned long)ds.shm_nattch);
    shmdt(r);
    shmctl(id2, IPC_RMID, NULL);
}

/* --- semaphores ------------------------------------------------------------------- */
union semun { int val; struct semid_ds *buf; unsigned short *array; };

static void on_alarm(int s) { (void)s; }

static void sec_sem(void) {
    int id = semget(IPC_PRIVATE, 2, 0600);
    printf("semget: %s\n", id >= 0 ? "OK" : en(errno));
    printf("semget nsems 0 private: %s\n", R(semget(IPC_PRIVATE, 0, 0600)));
    union semun u = {.val = 0};
    printf("GETVAL: %d\n", semctl(id, 0, GETVAL));
    u.val = 1;
    printf("SETVAL: %s\n", R(semctl(id, 0, SETVAL, u)));
    struct sembuf op = {0, -1, 0};
    printf("semop down: %s\n", R(semop(id, &op, 1)));
    op.sem_flg = IPC_NOWAIT;
    printf("semop down nowait: %s\n", R(semop(id, &op, 1)));
    struct timespec ts = {0, 50000000};
    op.sem_flg = 0;
    printf("semtimedop: %s\n", R(semtimedop(id, &op, 1, &ts)));
    pid_t pid = fork();
    if (pid == 0) {                  /* blocks until the parent's up */
        struct sembuf d = {0, -1, 0};
        int r = semop(id, &d, 1);
        printf("child woke: %s val %d\n", r < 0 ? en(errno) : "OK", semctl(id, 0, GETVAL));
        fflush(stdout);
        _exit(0);
    }
    usleep(200000);
    printf("GETNCNT: %d\n", semctl(id, 0, GETNCNT));
    fflush(stdout);
    struct sembuf up = {0, 2, 0};    /* up by 2: the woken down takes one, once */
    semop(id, &up, 1);
    waitchild(pid);
    printf("left: %d\n", semctl(id, 0, GETVAL));
    struct sembuf down1 = {0, -1, 0};
    semop(id, &down1, 1);
    /* SEM_UNDO: a child's down is undone at its exit */
    pid = fork();
    if (pid == 0) {
        struct sembuf d = {1, 5, SEM_UNDO};
        semop(id, &d, 1);
        _exit(0);
    }
    waitchild(pid);
    printf("after SEM_UNDO child: %d\n", semctl(id, 1, GETVAL));
    /* a blocked semop is interrupted by a signal */
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    alarm(1);
    struct sembuf d = {1, -1, 0};
    printf("blocked semop + alarm: %s\n", R(semop(id, &d, 1)));
    unsigned short all[2] = {3, 4};
    u.array = all;
    printf("SETALL: %s\n", R(semctl(id, 0, SETALL, u)));
    unsigned short got[2] = {0, 0};
    u.array = got;
    semctl(id, 0, GETALL, u);
    printf("GETALL: %d %d\n", got[0], got[1]);
    printf("GETPID is me: %d\n", semctl(id, 0, GETPID) == getpid());
    struct sembuf two[2] = {{0, -3, 0}, {1, -4, 0}};
    printf("semop two: %s\n", R(semop(id, two, 2)));
    printf("values %d %d\n", semctl(id, 0, GETVAL), semctl(id, 1, GETVAL));
    struct sembuf bad = {5, 1, 0};
    printf("semop bad num: %s\n", R(semop(id, &bad, 1)));
    struct semid_ds ds;
    u.buf = &ds;
    const char *r = R(semctl(id, 0, IPC_STAT, u));
    printf("IPC_STAT: %s nsems %lu mode %o\n", r, (unsigned long)ds.sem_nsems, ds.sem_perm.mode & 0777);
    printf("IPC_RMID: %s\n", R(semctl(id, 0, IPC_RMID)));
    printf("GETVAL after: %s\n", R(semctl(id, 0, GETVAL)));
}

/* --- message queues --------------------------------------------------------------- */
struct msg { long type; char text[64]; };

static void sec_msg(void) {
    int id = msgget(IPC_PRIVATE, 0600);
    printf("msgget: %s\n", id >= 0 ? "OK" : en(errno));
    struct msg m = {2, "two"};
    printf("msgsnd: %s\n", R(msgsnd(id, &m, 4, 0)));
    m.type = 1; strcpy(m.text, "one");
    msgsnd(id, &m, 4, 0);
    m.type = 3; strcpy(m.text, "three");
    msgsnd(id, &m, 6, 0);
    struct msg r;
    ssize_t n = msgrcv(id, &r, sizeof r.text, 1, 0);
    printf("msgrcv type 1: %zd %s\n", n, r.text);
    n = msgrcv(id, &r, sizeof r.text, 0, 0);
    printf("msgrcv first: %zd %ld %s\n", n, r.type, r.text);
    n = msgrcv(id, &r, 2, 0, IPC_NOWAIT);
    printf("msgrcv too small: %s\n", n < 0 ? en(errno) : "OK");
    n = msgrcv(id, &r, 2, 0, MSG_NOERROR);
    printf("msgrcv noerror: %zd\n", n);
    n = msgrcv(id, &r, sizeof r.text, 0, IPC_NOWAIT);
    printf("msgrcv empty: %s\n", n < 0 ? en(errno) : "OK");
    pid_t pid = fork();
    if (pid == 0) {
        struct msg c;
        ssize_t k = msgrcv(id, &c, sizeof c.text, 7, 0);
        printf("child got %zd %s\n", k, k > 0 ? c.text : en(errno));
        fflush(stdout);
        _exit(0);
    }
    usleep(200000);
    m.type = 7; strcpy(m.text, "seven");
    msgsnd(id, &m, 6, 0);
    waitchild(pid);
    struct msqid_ds ds;
    const char *rs = R(msgctl(id, IPC_STAT, &ds));
    printf("IPC_STAT: %s qnum %lu qbytes %lu lrpid-is-child %d\n", rs, (unsigned long)ds.msg_qnum,
           (unsigned long)ds.msg_qbytes, ds.msg_lrpid == pid);
    /* a blocked send that goes on once there is room for it: sent once */
    ds.msg_qbytes = 16;
    msgctl(id, IPC_SET, &ds);
    m.type = 1;
    memset(m.text, 'A', 16);
    msgsnd(id, &m, 16, 0);
    pid = fork();
    if (pid == 0) {
        struct msg c = {2, "BBBBBBB"};
        _exit(msgsnd(id, &c, 8, 0) < 0);
    }
    usleep(200000);
    msgrcv(id, &r, sizeof r.text, 1, 0);
    waitchild(pid);
    msgctl(id, IPC_STAT, &ds);
    printf("after the blocked send: qnum %lu cbytes %lu\n", (unsigned long)ds.msg_qnum,
           (unsigned long)ds.__msg_cbytes);
    printf("msgsnd bad type: %s\n", (m.type = 0, R(msgsnd(id, &m, 4, 0))));
    printf("IPC_RMID: %s\n", R(msgctl(id, IPC_RMID, NULL)));
    printf("msgsnd after: %s\n", (m.type = 1, R(msgsnd(id, &m, 4, 0))));
}

static void sec_bigmsg(void) {            /* longer than one XINIM message's data */
    static struct { long type; char text[8192]; } m, r;
    int id = msgget(IPC_PRIVATE, 0600);
    m.type = 5;
    for (int i = 0; i < 8192; i++) m.text[i] = 'a' + i % 26;
    printf("msgsnd 8192: %s\n", R(msgsnd(id, &m, 8192, 0)));
    printf("msgsnd 8193: %s\n", R(msgsnd(id, &m, 8193, IPC_NOWAIT)));
    ssize_t n = msgrcv(id, &r, 8192, 0, 0);
    printf("msgrcv: %zd type %ld same %d\n", n, r.type, memcmp(m.text, r.text, 8192) == 0);
    msgctl(id, IPC_RMID, NULL);
}

/* --- POSIX message queues --------------------------------------------------------- */
static void sec_mq(void) {
    char name[64];
    snprintf(name, sizeof name, "/xinim-test-%d", getpid());
    struct mq_attr at = {.mq_maxmsg = 4, .mq_msgsize = 32};
    mqd_t q = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &at);
    printf("mq_open: %s\n", q == (mqd_t)-1 ? en(errno) : "OK");
    printf("mq_open excl: %s\n", mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &at) == (mqd_t)-1
           ? en(errno) : "OK");
    printf("send low: %s\n", R(mq_send(q, "low", 4, 1)));
    printf("send high: %s\n", R(mq_send(q, "high", 5, 9)));
    printf("send too big: %s\n", R(mq_send(q, "0123456789012345678901234567890123456789", 40, 1)));
    struct mq_attr now;
    mq_getattr(q, &now);
    printf("curmsgs %ld maxmsg %ld msgsize %ld\n", now.mq_curmsgs, now.mq_maxmsg, now.mq_msgsize);
    char buf[64];
    unsigned prio;
    ssize_t n = mq_receive(q, buf, sizeof buf, &prio);
    printf("receive: %zd %s prio %u\n", n, buf, prio);
    n = mq_receive(q, buf, 8, &prio);
    printf("receive small buf: %s\n", n < 0 ? en(errno) : "OK");
    pid_t pid = fork();
    if (pid == 0) {
        mqd_t c = mq_open(name, O_WRONLY);
        usleep(200000);
        mq_send(c, "from child", 11, 3);
        _exit(0);
    }
    n = mq_receive(q, buf, sizeof buf, &prio);
    printf("receive: %zd %s prio %u\n", n, buf, prio);
    n = mq_receive(q, buf, sizeof buf, &prio);
    printf("blocked receive: %zd %s prio %u\n", n, buf, prio);
    waitchild(pid);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100000000;
    if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
    n = mq_timedreceive(q, buf, sizeof buf, &prio, &ts);
    printf("timed receive: %s\n", n < 0 ? en(errno) : "OK");
    struct mq_attr nb = {.mq_flags = O_NONBLOCK};
    mq_setattr(q, &nb, NULL);
    n = mq_receive(q, buf, sizeof buf, &prio);
    printf("nonblocking receive: %s\n", n < 0 ? en(errno) : "OK");
    struct pollfd pf = {q, POLLIN | POLLOUT, 0};
    int np = poll(&pf, 1, 0);
    printf("poll empty: %d %s%s\n", np, pf.revents & POLLIN ? "IN" : "",
           pf.revents & POLLOUT ? "OUT" : "");
    mq_send(q, "x", 1, 0);
    pf.revents = 0;
    np = poll(&pf, 1, 0);
    printf("poll one: %d %s%s\n", np, pf.revents & POLLIN ? "IN" : "",
           pf.revents & POLLOUT ? "OUT" : "");
    printf("mq_unlink: %s\n", R(mq_unlink(name)));
    printf("mq_unlink again: %s\n", R(mq_unlink(name)));
    printf("open after unlink: %s\n", mq_open(name, O_RDONLY) == (mqd_t)-1 ? en(errno) : "OK");
    printf("mq_close: %s\n", R(mq_close(q)));
}

/* --- shared file maps -------------------------------------------------------------- */
static void sec_mapfile(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/mapfile", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (ftruncate(fd, 8192) < 0) perror("ftruncate");
    char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("mmap: %s\n", p == MAP_FAILED ? en(errno) : "OK");
    pid_t pid = fork();
    if (pid == 0) {
        strcpy(p, "child wrote the map");
        _exit(0);
    }
    waitchild(pid);
    printf("parent map: %s\n", p);
    char buf[64] = {0};
    pread(fd, buf, 19, 0);
    printf("read(): %s\n", buf);
    pwrite(fd, "WRITE", 5, 100);
    printf("map sees write(): %.5s\n", p + 100);
    pid = fork();
    if (pid == 0) {                 /* a separate mapping in another process */
        int f2 = open(path, O_RDWR);
        char *q = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, f2, 0);
        printf("child's own map: %.19s\n", q);
        strcpy(q + 200, "second mapper");
        msync(q, 4096, MS_SYNC);
        munmap(q, 4096);
        fflush(stdout);
        _exit(0);
    }
    waitchild(pid);
    printf("parent map sees: %s\n", p + 200);
    memset(buf, 0, sizeof buf);
    pread(fd, buf, 13, 200);
    printf("read() sees: %s\n", buf);
    /* a map made after the file was opened elsewhere shares the pages too */
    int f3 = open(path, O_RDWR);
    char *p3 = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, f3, 0);
    strcpy(p3 + 300, "third map");
    printf("first map sees the third: %s\n", p + 300);
    munmap(p3, 4096);
    close(f3);
    printf("ftruncate: %s\n", R(ftruncate(fd, 4096)));
    pid = fork();
    if (pid == 0) {                 /* past the end of the file: SIGBUS */
        signal(SIGBUS, SIG_DFL);
        p[4096] = 1;
        _exit(0);
    }
    waitchild(pid);
    printf("msync: %s\n", R(msync(p, 4096, MS_SYNC)));
    munmap(p, 8192);
    memset(buf, 0, sizeof buf);
    pread(fd, buf, 9, 300);
    printf("after munmap read(): %s\n", buf);
    close(fd);
}

/* --- mount -------------------------------------------------------------------------- */
static void show_mount(const char *where) {
    FILE *f = fopen("/proc/mounts", "r");
    char line[512];
    int found = 0;
    while (f && fgets(line, sizeof line, f)) {
        char src[128], mnt[256], type[64], opts[256];
        if (sscanf(line, "%127s %255s %63s %255s", src, mnt, type, opts) == 4
            && strcmp(mnt, where) == 0) {
            char *o = strchr(opts, ',');
            if (o) *o = 0;
            printf("mounts: %s %s %s\n", src, type, opts);
            found = 1;
        }
    }
    if (f) fclose(f);
    if (!found) printf("mounts: none there\n");
}

static void sec_mount(void) {
    char a[256], b[256], f[300];
    snprintf(a, sizeof a, "%s/mnt_a", dir);
    snprintf(b, sizeof b, "%s/mnt_b", dir);
    mkdir(a, 0755);
    mkdir(b, 0755);
    printf("mount tmpfs: %s\n", R(mount("xtmp", a, "tmpfs", 0, "size=1m")));
    show_mount(a);
    snprintf(f, sizeof f, "%s/inside", a);
    int fd = open(f, O_CREAT | O_WRONLY, 0644);
    write(fd, "hello", 5);
    close(fd);
    printf("bind: %s\n", R(mount(a, b, NULL, MS_BIND, NULL)));
    show_mount(b);
    snprintf(f, sizeof f, "%s/inside", b);
    char buf[16] = {0};
    fd = open(f, O_RDONLY);
    read(fd, buf, 15);
    close(fd);
    printf("through the bind: %s\n", buf);
    printf("remount ro: %s\n", R(mount(NULL, b, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL)));
    snprintf(f, sizeof f, "%s/new", b);
    printf("create on ro bind: %s\n", R(open(f, O_CREAT | O_WRONLY, 0644)));
    fd = open(f, O_RDONLY);          /* a file of the bind is open: busy */
    snprintf(f, sizeof f, "%s/inside", b);
    fd = open(f, O_RDONLY);
    printf("umount bind while open: %s\n", R(umount2(b, 0)));
    close(fd);
    printf("umount bind: %s\n", R(umount2(b, 0)));
    show_mount(b);
    printf("umount a: %s\n", R(umount2(a, 0)));
    show_mount(a);
    printf("ext4: %s\n", R(mount("/dev/sda1", a, "ext4", 0, NULL)));
    printf("bogus type: %s\n", R(mount("x", a, "nosuchfs", 0, NULL)));
    printf("umount not mounted: %s\n", R(umount2(a, 0)));
    pid_t pid = fork();
    if (pid == 0) {
        if (setuid(65534) < 0) _exit(3);
        printf("non-root mount: %s\n", R(mount("x", "/", "tmpfs", 0, NULL)));
        printf("non-root umount: %s\n", R(umount2("/proc", 0)));
        _exit(0);
    }
    waitchild(pid);
    rmdir(a);
    rmdir(b);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) {
        fprintf(stderr, "usage: %s DIR SECTION...\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    for (int i = 2; i < argc; i++) {
        printf("== %s\n", argv[i]);
        if (!strcmp(argv[i], "shm")) sec_shm();
        else if (!strcmp(argv[i], "sem")) sec_sem();
        else if (!strcmp(argv[i], "msg")) sec_msg();
        else if (!strcmp(argv[i], "mq")) sec_mq();
        else if (!strcmp(argv[i], "mapfile")) sec_mapfile();
        else if (!strcmp(argv[i], "mount")) sec_mount();
        else if (!strcmp(argv[i], "mkseg"))      /* left for ipcs to list */
            printf("mkseg: %s\n", R(shmget(0x0badcafe, 8192, IPC_CREAT | 0644)));
        else if (!strcmp(argv[i], "rmseg"))
            printf("rmseg: %s\n", R(shmctl(shmget(0x0badcafe, 0, 0), IPC_RMID, NULL)));
        else if (!strcmp(argv[i], "bigmsg")) sec_bigmsg();
        else if (!strcmp(argv[i], "hold")) {     /* attached and parked, to be killed */
            char *p = shmat(shmget(0x0badcafe, 0, 0), NULL, 0);
            int s = semget(IPC_PRIVATE, 1, 0600);
            struct sembuf d = {0, -1, SEM_UNDO};
            printf("hold: %s\n", p == (void *)-1 ? en(errno) : "attached");
            semop(s, &d, 1);                      /* never returns */
        }
        else if (!strcmp(argv[i], "mksem")) {    /* a set and a queue for ipcs -s -q */
            int s = semget(0x0badbeef, 3, IPC_CREAT | 0640), q = msgget(0x0badf00d, IPC_CREAT | 0604);
            struct msg m = {1, "queued"};
            printf("mksem: %s %s %s\n", s < 0 ? en(errno) : "OK", q < 0 ? en(errno) : "OK",
                   R(msgsnd(q, &m, 7, 0)));
        } else if (!strcmp(argv[i], "rmsem"))
            printf("rmsem: %s %s\n", R(semctl(semget(0x0badbeef, 0, 0), 0, IPC_RMID)),
                   R(msgctl(msgget(0x0badf00d, 0), IPC_RMID, NULL)));
        else if (!strcmp(argv[i], "mkmq")) {    /* left for ls/cat of /dev/mqueue */
            struct mq_attr at = {.mq_maxmsg = 5, .mq_msgsize = 100};
            mqd_t q = mq_open("/kept", O_CREAT | O_RDWR, 0640, &at);
            printf("mkmq: %s %s\n", q == (mqd_t)-1 ? en(errno) : "OK",
                   R(mq_send(q, "twelve bytes", 12, 1)));
        }
        else { fprintf(stderr, "unknown section %s\n", argv[i]); return 2; }
    }
    return 0;
}
