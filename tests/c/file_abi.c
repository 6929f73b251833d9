/* Issue 15 acceptance: locks, space and copy calls, memfd, long paths, getdents.
 * Each section prints what it saw; the test runs it natively and under xinim-run
 * and compares.  Usage: file_abi DIR SECTION...  (locks, deadlock, setlkw, ofd,
 * pipesz, space, copies, memfd, path, getdents, tmpfile) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256];

static const char *ename(int e) {
    switch (e) {
    case 0: return "OK";
    case EAGAIN: return "EAGAIN";
    case EACCES: return "EACCES";
    case EDEADLK: return "EDEADLK";
    case EINTR: return "EINTR";
    case EINVAL: return "EINVAL";
    case EBADF: return "EBADF";
    case EPERM: return "EPERM";
    case EBUSY: return "EBUSY";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOENT: return "ENOENT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: return strerrorname_np(e) ? strerrorname_np(e) : "E?";
    }
}

#define SAY(...) do { printf(__VA_ARGS__); fflush(stdout); } while (0)

static char *at(const char *name) {
    static char buf[4][512];
    static int n;
    char *b = buf[n++ % 4];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

static int setlk(int fd, int cmd, short type, off_t start, off_t len) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &fl) == 0 ? 0 : errno;
}

static void locks(void) {
    int fd = open(at("lockf"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (write(fd, "0123456789abcdef", 16) != 16) exit(2);
    SAY("parent flock EX: %s\n", ename(flock(fd, LOCK_EX) ? errno : 0));
    SAY("parent setlk 0-9: %s\n", ename(setlk(fd, F_SETLK, F_WRLCK, 0, 10)));
    int go[2], back[2];
    if (pipe(go) || pipe(back)) exit(2);
    pid_t me = getpid();
    pid_t child = fork();
    if (child == 0) {
        int cfd = open(at("lockf"), O_RDWR);
        SAY("child flock NB: %s\n", ename(flock(cfd, LOCK_EX | LOCK_NB) ? errno : 0));
        SAY("child flock SH NB: %s\n", ename(flock(cfd, LOCK_SH | LOCK_NB) ? errno : 0));
        SAY("child setlk byte 5: %s\n", ename(setlk(cfd, F_SETLK, F_WRLCK, 5, 1)));
        SAY("child setlk byte 12: %s\n", ename(setlk(cfd, F_SETLK, F_WRLCK, 12, 1)));
        struct flock q = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 3, .l_len = 1};
        fcntl(cfd, F_GETLK, &q);
        SAY("child getlk: type=%d start=%ld len=%ld pid=%s\n", q.l_type, (long)q.l_start,
            (long)q.l_len, q.l_pid == me ? "parent" : "other");
        q = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 2};
        fcntl(cfd, F_GETLK, &q);
        SAY("child getlk 10-11: type=%s\n", q.l_type == F_UNLCK ? "UNLCK" : "locked");
        /* the parent's own lock on the same fd, shared via fork, is the parent's */
        SAY("child flock inherited fd NB: %s\n", ename(flock(fd, LOCK_EX | LOCK_NB) ? errno : 0));
        char c = 'x';
        if (write(go[1], &c, 1) != 1) _exit(2);
        /* the parent now closes another fd of the file: its record locks go */
        if (read(back[0], &c, 1) != 1) _exit(2);
        SAY("child setlk after parent close: %s\n", ename(setlk(cfd, F_SETLK, F_WRLCK, 5, 1)));
        SAY("child flock after parent close NB: %s\n",
            ename(flock(cfd, LOCK_EX | LOCK_NB) ? errno : 0));
        _exit(0);
    }
    char c;
    if (read(go[0], &c, 1) != 1) exit(2);
    int other = open(at("lockf"), O_RDONLY);
    close(other);                        /* drops the POSIX locks, not the flock */
    if (write(back[1], &c, 1) != 1) exit(2);
    usleep(100000);
    int st;
    waitpid(child, &st, 0);
    /* merge and split: lock 0-99 read, write 10-19, then unlock 50-59 */
    setlk(fd, F_SETLK, F_RDLCK, 0, 100);
    setlk(fd, F_SETLK, F_WRLCK, 10, 10);
    setlk(fd, F_SETLK, F_UNLCK, 50, 10);
    child = fork();
    if (child == 0) {
        int cfd = open(at("lockf"), O_RDWR);
        off_t probes[] = {5, 15, 25, 55, 65, 150};
        for (unsigned i = 0; i < sizeof probes / sizeof *probes; i++) {
            struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = probes[i], .l_len = 1};
            fcntl(cfd, F_GETLK, &q);
            SAY("probe %ld: %s", (long)probes[i],
                q.l_type == F_UNLCK ? "UNLCK" : q.l_type == F_RDLCK ? "RDLCK" : "WRLCK");
            if (q.l_type != F_UNLCK)
                SAY(" %ld+%ld", (long)q.l_start, (long)q.l_len);
            SAY("\n");
        }
        _exit(0);
    }
    waitpid(child, &st, 0);
    close(fd);
}

static void on_alarm(int sig) { (void)sig; }

static void setlkw(void) {
    int fd = open(at("lockw"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    int go[2];
    if (pipe(go)) exit(2);
    setlk(fd, F_SETLK, F_WRLCK, 0, 10);
    pid_t child = fork();
    if (child == 0) {
        close(fd);                     /* the parent's last close must free its flock */
        int cfd = open(at("lockw"), O_RDWR);
        struct sigaction sa = {.sa_handler = on_alarm};
        sigaction(SIGALRM, &sa, NULL);
        alarm(1);
        SAY("child setlkw interrupted: %s\n", ename(setlk(cfd, F_SETLKW, F_WRLCK, 0, 1)));
        char c = 'x';
        if (write(go[1], &c, 1) != 1) _exit(2);
        SAY("child setlkw waits: %s\n", ename(setlk(cfd, F_SETLKW, F_WRLCK, 0, 1)));
        SAY("child flock waits: %s\n", ename(flock(cfd, LOCK_EX) ? errno : 0));
        _exit(0);
    }
    char c;
    if (read(go[0], &c, 1) != 1) exit(2);
    flock(fd, LOCK_EX);
    usleep(200000);
    setlk(fd, F_SETLK, F_UNLCK, 0, 0);     /* wakes the child's F_SETLKW */
    usleep(200000);
    close(fd);                              /* last close: the flock goes */
    int st;
    waitpid(child, &st, 0);
}

static void deadlock(void) {
    int fd = open(at("lockd"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    int go[2];
    if (pipe(go)) exit(2);
    setlk(fd, F_SETLK, F_WRLCK, 0, 1);
    pid_t child = fork();
    if (child == 0) {
        int cfd = open(at("lockd"), O_RDWR);
        setlk(cfd, F_SETLK, F_WRLCK, 1, 1);
        char c = 'x';
        if (write(go[1], &c, 1) != 1) _exit(2);
        /* waits for the parent's byte 0 */
        SAY("child setlkw byte 0: %s\n", ename(setlk(cfd, F_SETLKW, F_WRLCK, 0, 1)));
        _exit(0);
    }
    char c;
    if (read(go[0], &c, 1) != 1) exit(2);
    usleep(300000);                          /* the child is waiting by now */
    SAY("parent setlkw byte 1: %s\n", ename(setlk(fd, F_SETLKW, F_WRLCK, 1, 1)));
    setlk(fd, F_SETLK, F_UNLCK, 0, 0);
    int st;
    waitpid(child, &st, 0);
    close(fd);
}

static void ofd(void) {
    int a = open(at("lockofd"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    int b = open(at("lockofd"), O_RDWR);
    SAY("ofd a: %s\n", ename(setlk(a, F_OFD_SETLK, F_WRLCK, 0, 10)));
    SAY("ofd b same process: %s\n", ename(setlk(b, F_OFD_SETLK, F_WRLCK, 5, 1)));
    SAY("posix same process over ofd: %s\n", ename(setlk(b, F_SETLK, F_WRLCK, 5, 1)));
    struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    fcntl(b, F_OFD_GETLK, &q);
    SAY("ofd getlk pid=%d type=%d\n", q.l_pid, q.l_type);
    struct flock bad = {.l_type = F_WRLCK, .l_pid = 1};
    SAY("ofd l_pid!=0: %s\n", ename(fcntl(b, F_OFD_SETLK, &bad) ? errno : 0));
    close(a);
    SAY("ofd b after a closed: %s\n", ename(setlk(b, F_OFD_SETLK, F_WRLCK, 5, 1)));
    close(b);
}

static volatile sig_atomic_t lease_sigs;
static int lease_fd;
static void on_lease(int sig) {
    (void)sig;
    lease_sigs++;
    fcntl(lease_fd, F_SETLEASE, F_UNLCK);      /* give way: the opener goes on */
}

static void lease(void) {
    int fd = open(at("leasef"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    close(fd);
    fd = lease_fd = open(at("leasef"), O_RDONLY);
    struct sigaction sa = {.sa_handler = on_lease};
    sigaction(SIGUSR2, &sa, NULL);
    SAY("setsig: %s\n", ename(fcntl(fd, F_SETSIG, SIGUSR2) ? errno : 0));
    SAY("write lease: %s\n", ename(fcntl(fd, F_SETLEASE, F_WRLCK) ? errno : 0));
    SAY("getlease %d\n", fcntl(fd, F_GETLEASE));
    pid_t child = fork();
    if (child == 0) {
        int c = open(at("leasef"), O_RDONLY | O_NONBLOCK);
        SAY("child nonblocking open: %s\n", c < 0 ? ename(errno) : "OK");
        c = open(at("leasef"), O_RDWR);
        SAY("child blocking open: %s\n", c < 0 ? ename(errno) : "OK");
        _exit(0);
    }
    int st;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR)
        ;
    SAY("lease signals %s, getlease %d\n", lease_sigs ? "yes" : "no", fcntl(fd, F_GETLEASE));
    int d = open(dir, O_RDONLY);
    SAY("lease on a directory: %s\n", ename(fcntl(d, F_SETLEASE, F_RDLCK) ? errno : 0));
    close(fd);
}

static void pipesz(void) {
    int p[2];
    if (pipe(p)) exit(2);
    SAY("pipe size %d\n", fcntl(p[0], F_GETPIPE_SZ));
    SAY("set 10000 -> %d\n", fcntl(p[1], F_SETPIPE_SZ, 10000));
    SAY("pipe size %d\n", fcntl(p[0], F_GETPIPE_SZ));
    char buf[20000] = {0};
    SAY("write 20000 nonblock: ");
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    ssize_t n = write(p[1], buf, sizeof buf);
    SAY("%zd\n", n);
    SAY("shrink below content: %s\n", ename(fcntl(p[1], F_SETPIPE_SZ, 4096) < 0 ? errno : 0));
    SAY("getsig %d\n", fcntl(p[0], F_GETSIG));
    fcntl(p[0], F_SETSIG, SIGUSR1);
    SAY("getsig %d\n", fcntl(p[0], F_GETSIG));
    int f = open(at("plain"), O_RDWR | O_CREAT, 0644);
    SAY("pipe size of a file: %s\n", ename(fcntl(f, F_GETPIPE_SZ) < 0 ? errno : 0));
    close(f);
}

static void space(void) {
    int fd = open(at("space"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    struct stat st;
    SAY("fallocate 1MiB: %s\n", ename(fallocate(fd, 0, 0, 1 << 20) ? errno : 0));
    fstat(fd, &st);
    SAY("size %ld\n", (long)st.st_size);
    SAY("keep size: %s\n", ename(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 2 << 20) ? errno : 0));
    fstat(fd, &st);
    SAY("size %ld\n", (long)st.st_size);
    char buf[8192];
    memset(buf, 'a', sizeof buf);
    pwrite(fd, buf, sizeof buf, 0);
    SAY("punch: %s\n", ename(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 5000) ? errno : 0));
    SAY("punch without keep: %s\n", ename(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 10) ? errno : 0));
    memset(buf, 0, sizeof buf);
    pread(fd, buf, sizeof buf, 0);
    int zeros = 0;
    for (int i = 0; i < 8192; i++) zeros += buf[i] == 0;
    SAY("zeros after punch %d, [99]=%c [5100]=%c\n", zeros, buf[99], buf[5100]);
    SAY("zero range: %s\n", ename(fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, 50) ? errno : 0));
    pread(fd, buf, 60, 0);
    SAY("[49]=%d [99]=%c\n", buf[49], buf[99]);
    ftruncate(fd, 3 * 4096);
    memset(buf, 'b', 4096);
    pwrite(fd, buf, 4096, 4096);
    SAY("collapse: %s\n", ename(fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 4096) ? errno : 0));
    fstat(fd, &st);
    pread(fd, buf, 1, 0);
    SAY("size %ld first %c\n", (long)st.st_size, buf[0]);
    SAY("insert: %s\n", ename(fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, 4096) ? errno : 0));
    fstat(fd, &st);
    pread(fd, buf, 1, 4096);
    SAY("size %ld at4096 %c\n", (long)st.st_size, buf[0]);
    SAY("collapse unaligned: %s\n", ename(fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 1, 4096) ? errno : 0));
    SAY("bad mode: %s\n", ename(fallocate(fd, 0x100, 0, 1) ? errno : 0));
    SAY("negative len: %s\n", ename(fallocate(fd, 0, 0, -1) ? errno : 0));
    SAY("fadvise: %d\n", posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED));
    SAY("readahead: %s\n", ename(readahead(fd, 0, 4096) ? errno : 0));
    SAY("sync_file_range: %s\n", ename(sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) ? errno : 0));
    SAY("sync_file_range bad: %s\n", ename(sync_file_range(fd, 0, 0, 8) ? errno : 0));
    int p[2];
    if (pipe(p)) exit(2);
    SAY("fallocate pipe: %s\n", ename(fallocate(p[0], 0, 0, 1) ? errno : 0));
    close(fd);
}

static void copies(void) {
    int in = open(at("src"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    char *data = malloc(1 << 20);
    for (int i = 0; i < 1 << 20; i++) data[i] = (char)(i * 7 + i / 4096);
    if (write(in, data, 1 << 20) != 1 << 20) exit(2);
    int out = open(at("dst"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    loff_t ioff = 1000, ooff = 0;
    ssize_t n = copy_file_range(in, &ioff, out, &ooff, 512 << 10, 0);
    SAY("copy_file_range %zd ioff %ld ooff %ld\n", n, (long)ioff, (long)ooff);
    char *back = malloc(512 << 10);
    pread(out, back, 512 << 10, 0);
    SAY("copy identical %d\n", memcmp(back, data + 1000, 512 << 10) == 0);
    lseek(in, 10, SEEK_SET);
    n = copy_file_range(in, NULL, out, NULL, 100, 0);
    SAY("copy at positions %zd in-pos %ld out-pos %ld\n", n, (long)lseek(in, 0, SEEK_CUR),
        (long)lseek(out, 0, SEEK_CUR));
    SAY("copy bad flags: %s\n", ename(copy_file_range(in, NULL, out, NULL, 1, 1) < 0 ? errno : 0));
    off_t off = 5;
    n = sendfile(out, in, &off, 3000);
    SAY("sendfile %zd off %ld in-pos %ld\n", n, (long)off, (long)lseek(in, 0, SEEK_CUR));
    int p[2];
    if (pipe(p)) exit(2);
    loff_t soff = 0;
    n = splice(in, &soff, p[1], NULL, 5000, 0);
    SAY("splice file->pipe %zd soff %ld\n", n, (long)soff);
    int q[2];
    if (pipe(q)) exit(2);
    n = tee(p[0], q[1], 3000, 0);
    SAY("tee %zd\n", n);
    int t = open(at("spliced"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    n = splice(p[0], NULL, t, NULL, 5000, 0);
    SAY("splice pipe->file %zd\n", n);
    char *chk = malloc(5000);
    pread(t, chk, 5000, 0);
    SAY("spliced identical %d\n", memcmp(chk, data, 5000) == 0);
    n = read(q[0], chk, 5000);
    SAY("tee copy %zd identical %d\n", n, memcmp(chk, data, 3000) == 0);
    struct iovec iov = {.iov_base = data, .iov_len = 100};
    n = vmsplice(p[1], &iov, 1, 0);
    SAY("vmsplice %zd\n", n);
    n = read(p[0], chk, 200);
    SAY("vmsplice read %zd identical %d\n", n, memcmp(chk, data, 100) == 0);
    SAY("splice file->file: %s\n", ename(splice(in, NULL, t, NULL, 10, 0) < 0 ? errno : 0));
    struct iovec v = {.iov_base = chk, .iov_len = 10};
    n = preadv2(in, &v, 1, 0, RWF_HIPRI);
    SAY("preadv2 %zd\n", n);
    n = preadv2(in, &v, 1, 0, 0x10000000);
    SAY("preadv2 bad flag: %s\n", ename(n < 0 ? errno : 0));
    n = pwritev2(t, &v, 1, -1, RWF_DSYNC);
    SAY("pwritev2 %zd\n", n);
    n = preadv2(in, &v, 1, -1, RWF_NOWAIT);
    SAY("preadv2 nowait %s\n", n < 0 ? ename(errno) : "OK");
    close(in); close(out); close(t);
}

static void memfd(void) {
    int fd = memfd_create("xin", MFD_ALLOW_SEALING | MFD_CLOEXEC);
    SAY("memfd %s\n", fd >= 0 ? "ok" : ename(errno));
    if (ftruncate(fd, 8192)) SAY("ftruncate %s\n", ename(errno));
    /* written through a shared map, read back through the file after munmap */
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    SAY("mmap shared %s\n", m == MAP_FAILED ? ename(errno) : "ok");
    if (m != MAP_FAILED) {
        memcpy(m + 4096, "mapped", 6);
        munmap(m, 8192);
    }
    char buf[16] = {0};
    pread(fd, buf, 6, 4096);
    SAY("pread after munmap %s\n", buf);
    /* one set of pages: a child's store through its own map is the parent's */
    char *mine = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    pid_t kid = fork();
    if (kid == 0) {
        char *its = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (its != MAP_FAILED) memcpy(its + 100, "child", 5);
        if (mine != MAP_FAILED) memcpy(mine + 200, "forked", 6);
        _exit(0);
    }
    waitpid(kid, NULL, 0);
    SAY("child's stores seen: %.5s %.6s\n", mine == MAP_FAILED ? "-----" : mine + 100,
        mine == MAP_FAILED ? "------" : mine + 200);
    if (mine != MAP_FAILED) munmap(mine, 8192);
    if (write(fd, "hello", 5) != 5) SAY("write %s\n", ename(errno));
    memset(buf, 0, sizeof buf);
    pread(fd, buf, 5, 0);
    SAY("pread %s\n", buf);
    struct stat st;
    fstat(fd, &st);
    SAY("mode %o nlink %ld size %ld\n", st.st_mode, (long)st.st_nlink, (long)st.st_size);
    SAY("seals %d\n", fcntl(fd, F_GET_SEALS));
    SAY("add grow|shrink: %s\n", ename(fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) ? errno : 0));
    SAY("seals %d\n", fcntl(fd, F_GET_SEALS));
    SAY("truncate sealed: %s\n", ename(ftruncate(fd, 100) ? errno : 0));
    SAY("write past end: %s\n", ename(pwrite(fd, "x", 1, 8192) < 0 ? errno : 0));
    SAY("write inside: %zd\n", pwrite(fd, "x", 1, 10));
    m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    SAY("seal write with shared map: %s\n", ename(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) ? errno : 0));
    if (m != MAP_FAILED) munmap(m, 8192);
    SAY("seal write: %s\n", ename(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) ? errno : 0));
    SAY("write sealed: %s\n", ename(pwrite(fd, "x", 1, 10) < 0 ? errno : 0));
    SAY("shared writable map sealed: %s\n",
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED ? ename(errno) : "OK");
    SAY("add seal seal: %s\n", ename(fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL) ? errno : 0));
    SAY("add after seal: %s\n", ename(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) ? errno : 0));
    char link[64] = {0};
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    readlink(path, link, sizeof link - 1);
    SAY("link %s\n", link);
    char *r = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    SAY("mmap private after seal %s %c\n", r == MAP_FAILED ? ename(errno) : "ok",
        r == MAP_FAILED ? '-' : r[10]);
    int nosea = memfd_create("plain", 0);
    SAY("no sealing: %s\n", ename(fcntl(nosea, F_ADD_SEALS, F_SEAL_WRITE) ? errno : 0));
    SAY("bad flags: %s\n", ename(memfd_create("x", 0x1000) < 0 ? errno : 0));
    int file = open(at("plainf"), O_RDWR | O_CREAT, 0644);
    SAY("seal a file: %s\n", ename(fcntl(file, F_ADD_SEALS, F_SEAL_WRITE) ? errno : 0));
}

static void longpath(void) {
    char path[1100];
    int n = snprintf(path, sizeof path, "%s", dir);
    int depth = 0;
    while (n < 900) {
        n += snprintf(path + n, sizeof path - n, "/%s", "dddddddddddddddddddddddddddddddddddddddddddddddddd");
        if (mkdir(path, 0755) && errno != EEXIST) { SAY("mkdir %s\n", ename(errno)); return; }
        depth++;
    }
    while (n < 999) path[n++] = 'f';
    path[n] = 0;
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    SAY("create %zu-byte path: %s\n", strlen(path), fd < 0 ? ename(errno) : "OK");
    if (fd >= 0) {
        write(fd, "x", 1);
        close(fd);
    }
    fd = open(path, O_RDONLY);
    SAY("open again: %s\n", fd < 0 ? ename(errno) : "OK");
    struct stat st;
    int sr = stat(path, &st);
    SAY("stat: %s size %ld\n", sr ? ename(errno) : "OK", sr ? -1L : (long)st.st_size);
    char *slash = strrchr(path, '/');
    *slash = 0;
    SAY("chdir deep: %s\n", chdir(path) ? ename(errno) : "OK");
    char cwd[2048];
    SAY("getcwd len %zu\n", getcwd(cwd, sizeof cwd) ? strlen(cwd) - strlen(dir) : 0);
    char big[5000];
    memset(big, 'a', sizeof big);
    big[0] = '/';
    big[4999] = 0;
    SAY("5000-byte path: %s\n", open(big, O_RDONLY) < 0 ? ename(errno) : "OK");
    memset(big, 'a', 300);
    big[0] = '/';
    big[300] = 0;
    SAY("300-byte component: %s\n", open(big, O_RDONLY) < 0 ? ename(errno) : "OK");
    chdir("/");
}

static void getdents(void) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    char buf[10];
    long r = syscall(SYS_getdents64, fd, buf, sizeof buf);
    SAY("getdents64 10-byte buffer: %s\n", r < 0 ? ename(errno) : "OK");
    close(fd);
}

static void tmpfile_(void) {
    int fd = open(dir, O_TMPFILE | O_RDWR, 0600);
    SAY("O_TMPFILE: %s\n", fd < 0 ? ename(errno) : "OK");
    if (fd < 0) return;
    write(fd, "tmp", 3);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    SAY("linkat AT_EMPTY_PATH: %s\n",
        ename(linkat(fd, "", AT_FDCWD, at("linked"), AT_EMPTY_PATH) ? errno : 0));
    char buf[8] = {0};
    int g = open(at("linked"), O_RDONLY);
    read(g, buf, 7);
    SAY("linked holds %s\n", buf);
    int ex = open(dir, O_TMPFILE | O_RDWR | O_EXCL, 0600);
    SAY("O_EXCL tmpfile link: %s\n",
        ename(linkat(ex, "", AT_FDCWD, at("linked2"), AT_EMPTY_PATH) ? errno : 0));
}

struct how { unsigned long long flags, mode, resolve; };

static const char *o2(int dirfd, const char *path, unsigned long long flags,
                      unsigned long long resolve) {
    struct how h = {.flags = flags, .resolve = resolve};
    long fd = syscall(437, dirfd, path, &h, sizeof h);
    if (fd < 0) return ename(errno);
    close(fd);
    return "OK";
}

static void openat2_(void) {
    char sub[512];
    snprintf(sub, sizeof sub, "%s/o2", dir);
    mkdir(sub, 0755);
    mkdir(at("o2/in"), 0755);
    close(open(at("o2/in/f"), O_CREAT | O_WRONLY, 0644));
    symlink("/etc/passwd", at("o2/abs"));
    symlink("in/f", at("o2/rel"));
    int d = open(sub, O_RDONLY | O_DIRECTORY);
    SAY("plain: %s\n", o2(d, "in/f", O_RDONLY, 0));
    SAY("beneath ok: %s\n", o2(d, "in/../in/f", O_RDONLY, 0x08));
    SAY("beneath dotdot: %s\n", o2(d, "../o2/in/f", O_RDONLY, 0x08));
    SAY("beneath absolute: %s\n", o2(d, "/etc/passwd", O_RDONLY, 0x08));
    SAY("beneath abs link: %s\n", o2(d, "abs", O_RDONLY, 0x08));
    SAY("no symlinks: %s\n", o2(d, "rel", O_RDONLY, 0x04));
    SAY("no symlinks nofollow path: %s\n", o2(d, "rel", O_PATH | O_NOFOLLOW, 0x04));
    SAY("in root dotdot: %s\n", o2(d, "../../in/f", O_RDONLY, 0x10));
    SAY("in root abs: %s\n", o2(d, "/in/f", O_RDONLY, 0x10));
    SAY("magic: %s\n", o2(AT_FDCWD, "/proc/self/exe", O_RDONLY, 0x02));
    SAY("cached creat: %s\n", o2(d, "new", O_CREAT | O_WRONLY, 0x20));
    SAY("bad resolve: %s\n", o2(d, "in/f", O_RDONLY, 0x40));
    SAY("beneath+in_root: %s\n", o2(d, "in/f", O_RDONLY, 0x18));
    struct how big[2] = {{.flags = O_RDONLY}, {.flags = 1}};
    SAY("size too big with junk: %s\n",
        syscall(437, d, "in/f", big, sizeof big) < 0 ? ename(errno) : "OK");
    SAY("size too small: %s\n", syscall(437, d, "in/f", big, 16) < 0 ? ename(errno) : "OK");
    struct how m = {.flags = O_RDONLY, .mode = 0644};
    SAY("mode without creat: %s\n", syscall(437, d, "in/f", &m, sizeof m) < 0 ? ename(errno) : "OK");
    close(d);
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    snprintf(dir, sizeof dir, "%s", argv[1]);
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        SAY("== %s\n", s);
        if (!strcmp(s, "locks")) locks();
        else if (!strcmp(s, "setlkw")) setlkw();
        else if (!strcmp(s, "deadlock")) deadlock();
        else if (!strcmp(s, "ofd")) ofd();
        else if (!strcmp(s, "pipesz")) pipesz();
        else if (!strcmp(s, "lease")) lease();
        else if (!strcmp(s, "openat2")) openat2_();
        else if (!strcmp(s, "space")) space();
        else if (!strcmp(s, "copies")) copies();
        else if (!strcmp(s, "memfd")) memfd();
        else if (!strcmp(s, "path")) longpath();
        else if (!strcmp(s, "getdents")) getdents();
        else if (!strcmp(s, "tmpfile")) tmpfile_();
        else return 2;
    }
    return 0;
}
